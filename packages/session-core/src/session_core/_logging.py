"""One structlog set-up for every package: JSON lines in Lambda, a readable console locally."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

import structlog

# Keys whose values never reach a log line: secrets and what users wrote.
_REDACTED_KEYS = frozenset(
    {
        "token",
        "bot_token",
        "secret",
        "secret_token",
        "api_key",
        "authorization",
        "password",
        "text",
        "prompt",
        "caption",
        "message_text",
    }
)


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at the time (test runners swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in event.keys() & _REDACTED_KEYS:
        event[key] = "[redacted]"
    return event


def configure_logging(*, json_lines: bool | None = None, level: str | None = None) -> None:
    """Configure structlog once per process.

    ``json_lines`` defaults to True inside Lambda (``AWS_LAMBDA_FUNCTION_NAME`` set),
    otherwise a console renderer. ``level`` defaults to ``LOG_LEVEL`` or INFO.
    """
    if json_lines is None:
        json_lines = "AWS_LAMBDA_FUNCTION_NAME" in os.environ
    level_name = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level_name, logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def bind_correlation(
    *,
    update_id: int | None = None,
    turn_id: int | None = None,
    session_key: str | None = None,
    request_id: str | None = None,
) -> None:
    """Bind the correlation fields for the rest of this invocation (clears earlier ones):
    the Telegram side logs ``update_id``, the runtime the channel-neutral ``turn_id`` (the
    consumer sends the update id as the turn id, so both name the same number)."""
    structlog.contextvars.clear_contextvars()
    fields = {
        "update_id": update_id,
        "turn_id": turn_id,
        "session_key": session_key,
        "request_id": request_id,
    }
    structlog.contextvars.bind_contextvars(**{k: v for k, v in fields.items() if v is not None})


def add_correlation(*, update_id: int | None = None, session_key: str | None = None) -> None:
    """Add what became known later in the invocation (the update, its chat) to the fields
    ``bind_correlation`` bound at entry, which stay (the request id among them)."""
    fields = {"update_id": update_id, "session_key": session_key}
    structlog.contextvars.bind_contextvars(**{k: v for k, v in fields.items() if v is not None})


def current_log_fields() -> dict[str, Any]:
    """The correlation fields bound in this thread now, to bind in another (``bound_log_fields``)."""
    return structlog.contextvars.get_contextvars()


@contextlib.contextmanager
def bound_log_fields(fields: Mapping[str, Any]) -> Iterator[None]:
    """Bind ``fields`` (``current_log_fields()`` of another thread) for the block: a thread
    starts with none, and its lines would name no update or chat."""
    with structlog.contextvars.bound_contextvars(**fields):
        yield


def with_log_context(target: Callable[[], None]) -> Callable[[], None]:
    """``target`` bound to the correlation fields of this moment, to run in another thread."""
    fields = current_log_fields()

    def run() -> None:
        with bound_log_fields(fields):
            target()

    return run


def get_logger(name: str) -> Any:
    """A structlog logger named after the calling module."""
    return structlog.get_logger(name)
