"""Reading settings from the environment with errors that name the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ._errors import ConfigError, InvalidSessionKeyError
from ._keys import validate_tenant

DEFAULT_TENANT = "default"
# How long an unused session's registry items live (days, refreshed on use): the one default
# every package reads; infra/template.yaml's SessionTtlDays repeats it (a test ties them).
DEFAULT_RETENTION_DAYS = 25
# The receive on which a still-failing queue record is answered for good instead of retried:
# the consumer's limit and the queue's redrive maxReceiveCount (template and local stack).
# 5, AWS Lambda's guidance for an SQS event source: a receive whose invocation was throttled
# counts although the consumer never saw it, and with 3 two throttles left a record one try.
# The consumer retries 4 times (after 10, 20, 40, 80 s) before it tells the user and
# dead-letters the record itself, on the receive SQS counts as the last.
MAX_RECEIVE_COUNT = 5
# The agent runtime's memory (MB) unless the operator sets another: infra/template.yaml's
# RuntimeMemoryMb repeats it (a test ties them), and `agentbot dev` and the local stack run the
# runtime with it, so a chat's history and files meet the same limits locally as deployed.
# 2048, not 1024 (RuntimeMemoryMb's lowest, and its default before): the biggest file a user
# can send (a 20 MB PDF the agent reads) peaks at ~1 GiB for runtime and CLI together, past
# what 1024 MB leaves.
DEFAULT_RUNTIME_MEMORY_MB = 2048


def require_env(name: str, environ: Mapping[str, str] | None = None) -> str:
    """Return a non-empty environment variable or raise ConfigError naming it.

    Read from ``environ`` when given (a settings loader's own mapping), else ``os.environ``.
    """
    value = (os.environ if environ is None else environ).get(name, "").strip()
    if not value:
        raise ConfigError(name, "is not set (see infra/template.yaml or .env.example)")
    return value


def env_int(
    name: str,
    default: int,
    *,
    minimum: int = 0,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """An integer setting with a default; a malformed value, or one outside
    ``minimum``..``maximum``, is a ConfigError naming it.

    Read from ``environ`` when given (a settings loader's own mapping), else ``os.environ``.
    """
    env = os.environ if environ is None else environ
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(name, f"must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(name, f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(name, f"must be <= {maximum}, got {value}")
    return value


def tenant_from_env(environ: Mapping[str, str] | None = None) -> str:
    """`TENANT` (default "default"), validated as a session key's tenant part.

    Read from ``environ`` when given (a settings loader's own mapping), else ``os.environ``."""
    env = os.environ if environ is None else environ
    tenant = env.get("TENANT", "").strip() or DEFAULT_TENANT
    try:
        return validate_tenant(tenant)
    except InvalidSessionKeyError as exc:
        raise ConfigError("TENANT", exc.reason) from exc


def retention_days_from_env(environ: Mapping[str, str] | None = None) -> int:
    """`SESSION_TTL_DAYS` (default ``DEFAULT_RETENTION_DAYS``): how long an unused session is kept."""
    return env_int("SESSION_TTL_DAYS", DEFAULT_RETENTION_DAYS, minimum=1, environ=environ)
