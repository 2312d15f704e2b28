"""Reading settings from the environment with errors that name the variable."""

from __future__ import annotations

import os

from ._errors import ConfigError


def require_env(name: str) -> str:
    """Return a non-empty environment variable or raise ConfigError naming it."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(name, "is not set (see infra/template.yaml or .env.example)")
    return value


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    """An integer setting with a default; a malformed value is a ConfigError naming it."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(name, f"must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(name, f"must be >= {minimum}, got {value}")
    return value
