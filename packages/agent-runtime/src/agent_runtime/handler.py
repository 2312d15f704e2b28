"""Lambda entry point: ``python -m awslambdaric agent_runtime.handler.handle``.

Thin on purpose: decode the TurnRequest, call ``Runtime.run_turn``, return the TurnResult
as plain builtins. The runtime (config, clients, store, model access) is built on the
first invocation and reused while the container stays warm.
"""

from __future__ import annotations

import threading
from typing import Any, cast

import msgspec
from session_core import (
    TURN_VERSION,
    MessageDecodeError,
    TurnResult,
    configure_logging,
    decode_turn_request,
    encode,
    get_logger,
    json_event_bytes,
)

from ._build import build_runtime
from ._turn import USER_MESSAGES, Runtime

log = get_logger(__name__)
_runtime: Runtime | None = None
_lock = threading.Lock()
# Leave this much of the Lambda timeout for recording the result and answering.
_SAFETY_MARGIN_S = 15.0


def get_runtime() -> Runtime:
    """The container's runtime, built once (config validated, clients created)."""
    global _runtime
    with _lock:
        if _runtime is None:
            configure_logging()
            _runtime = build_runtime()
        return _runtime


def handle(event: Any, context: Any) -> dict[str, Any]:
    """Run one turn for a TurnRequest payload and return a TurnResult payload."""
    try:
        request = decode_turn_request(json_event_bytes(event, "TurnRequest"))
    except MessageDecodeError as exc:
        log.warning("turn.bad_request", detail=str(exc)[:200])
        fields = event if isinstance(event, dict) else {}
        key, update = fields.get("session_key"), fields.get("update_id")
        result = TurnResult(
            version=TURN_VERSION,
            session_key=key if isinstance(key, str) else "",
            update_id=update if isinstance(update, int) else 0,
            error_kind="bad_request",
            user_message=USER_MESSAGES["bad_request"],
            retryable=False,
        )
        return _payload(result)
    budget = None
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        budget = remaining() / 1000 - _SAFETY_MARGIN_S
    result = get_runtime().run_turn(
        request, time_budget_s=budget, request_id=getattr(context, "aws_request_id", None)
    )
    return _payload(result)


def _payload(result: TurnResult) -> dict[str, Any]:
    # Through the one safe encoder: the answer's text is valid Unicode on the wire.
    return cast(dict[str, Any], msgspec.json.decode(encode(result)))
