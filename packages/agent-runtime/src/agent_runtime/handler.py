"""Lambda entry point: ``python -m awslambdaric agent_runtime.handler.handle``.

Thin on purpose: decode the TurnRequest, call ``Runtime.run_turn``, return the TurnResult
as plain builtins. The runtime (config, clients, store, model access) is built on the
first invocation and reused while the container stays warm.
"""

from __future__ import annotations

import os
import threading
from typing import Any, cast

import msgspec
from session_core import (
    TURN_VERSION,
    MessageDecodeError,
    SecretAccessDeniedError,
    TurnResult,
    configure_logging,
    decode_turn_request,
    encode,
    get_logger,
    json_event_bytes,
)

from ._build import build_runtime
from ._config_report import config_error_result, report_config_error
from ._preflight import PERMANENT_CONFIG_ERRORS
from ._process_sweep import sweep_before_the_first_invoke
from ._settings import DEFAULT_SESSIONS_ROOT
from ._temp_leftovers import remove_strays_before_the_first_invoke
from ._turn import Runtime

log = get_logger(__name__)

# awslambdaric asks for the first invoke once this module is imported (the runtime itself is
# built on that invoke): whatever an earlier runtime of this environment left must not see it,
# nor must the build read what its tools left in /tmp (HOME).
_SCOPE = os.environ.get("PROCESS_SWEEP_SCOPE", "").strip()
sweep_before_the_first_invoke(_SCOPE)
remove_strays_before_the_first_invoke(
    _SCOPE, os.environ.get("SESSIONS_ROOT", "").strip() or DEFAULT_SESSIONS_ROOT
)
_runtime: Runtime | None = None
_config_error: Exception | None = None
_lock = threading.Lock()
# Leave this much of the Lambda timeout for recording the result and answering.
_SAFETY_MARGIN_S = 15.0


def get_runtime() -> Runtime:
    """The container's runtime, built once (config validated, clients created).

    A permanent configuration error is kept and raised again on every later invocation
    without rebuilding: it is reported once per container (see ``report_config_error``).
    A transient failure (SSM throttled) is raised as is; the next invocation builds again.
    A secret the role may not read is reported as a configuration error on every try, yet
    raised as transient: a role's permissions just deployed take seconds to reach it.
    """
    global _runtime, _config_error
    with _lock:
        if _config_error is not None:
            raise _config_error
        if _runtime is None:
            configure_logging()
            try:
                _runtime = build_runtime()
            except SecretAccessDeniedError as exc:
                report_config_error(exc, tenant=os.environ.get("TENANT") or "default")
                raise
            except PERMANENT_CONFIG_ERRORS as exc:
                if getattr(exc, "retryable", False):
                    raise
                _config_error = exc
                report_config_error(exc, tenant=os.environ.get("TENANT") or "default")
                raise
        return _runtime


def handle(event: Any, context: Any) -> dict[str, Any]:
    """Run one turn for a TurnRequest payload and return a TurnResult payload."""
    try:
        request = decode_turn_request(json_event_bytes(event, "TurnRequest"))
    except MessageDecodeError as exc:
        log.warning("turn.bad_request", detail=str(exc)[:200])
        fields = event if isinstance(event, dict) else {}
        key, turn = fields.get("session_key"), fields.get("turn_id", fields.get("update_id"))
        result = TurnResult(
            version=TURN_VERSION,
            session_key=key if isinstance(key, str) else "",
            turn_id=turn if isinstance(turn, int) else 0,
            error_kind="bad_request",
            retryable=False,
        )
        return _payload(result)
    budget = None
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        budget = remaining() / 1000 - _SAFETY_MARGIN_S
    try:
        runtime = get_runtime()
    except PERMANENT_CONFIG_ERRORS as exc:
        if getattr(exc, "retryable", False):
            raise
        # No turn can run; the consumer words the user's notice and does not retry.
        return _payload(config_error_result(request))
    result = runtime.run_turn(
        request, time_budget_s=budget, request_id=getattr(context, "aws_request_id", None)
    )
    return _payload(result)


def _payload(result: TurnResult) -> dict[str, Any]:
    # Through the one safe encoder: the answer's text is valid Unicode on the wire.
    return cast(dict[str, Any], msgspec.json.decode(encode(result)))
