"""Reading claude-config's files and checking the shapes of their fields: every problem a
:class:`ClaudeConfigError` naming the file and the field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._errors import ClaudeConfigError


def read_text(path: Path, field: str | None) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ClaudeConfigError(str(path), field, "file does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ClaudeConfigError(str(path), field, f"cannot be read: {exc}") from exc


def read_json(path: Path, *, required: bool) -> dict[str, Any]:
    if not path.exists() and not required:
        return {}
    try:
        data = json.loads(read_text(path, None))
    except json.JSONDecodeError as exc:
        raise ClaudeConfigError(str(path), None, f"invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ClaudeConfigError(str(path), None, "must be a JSON object")
    return data


def string_list(value: object, file: Path, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ClaudeConfigError(str(file), field, "must be a list of strings")
    return tuple(value)


def check_string_map(value: object, file: Path, field: str) -> None:
    """An MCP server's ``env`` or ``headers``: the program check reads ``env.PATH``, and the
    CLI's MCP schema takes strings only, so anything else is named here, not met at a turn."""
    if not isinstance(value, dict):
        raise ClaudeConfigError(
            str(file), field, 'must be an object of name → string, e.g. {"LOG_LEVEL": "info"}'
        )
    for name, item in value.items():
        if not isinstance(item, str):
            raise ClaudeConfigError(str(file), f"{field}.{name}", "must be a string (quote numbers)")


def refuse_unknown_fields(spec: Mapping[str, Any], known: tuple[str, ...], file: Path, field: str) -> None:
    """A misspelt field would otherwise be ignored (``mcpservers``: no server at all)."""
    if extra := sorted(set(spec) - set(known)):
        where = f"{field}.{extra[0]}" if field else extra[0]
        raise ClaudeConfigError(str(file), where, f"unknown field (known: {', '.join(known)})")
