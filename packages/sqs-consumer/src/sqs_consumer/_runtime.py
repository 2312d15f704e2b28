"""The call to the agent runtime: one IAM-authenticated, synchronous Lambda Invoke."""

from __future__ import annotations

import json
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError
from session_core import (
    MessageDecodeError,
    TurnRequest,
    TurnResult,
    decode_json,
    decode_turn_result,
    encode,
)

from ._config import RUNTIME_MAX_TIMEOUT_S
from ._errors import RuntimeInvokeError

# Lambda's answers to an Invoke it refused before the function ran: the turn spent nothing.
_REFUSED_BEFORE_RUNNING = frozenset(
    {
        "TooManyRequestsException",
        "ResourceNotFoundException",
        "ResourceNotReadyException",
        "ResourceConflictException",
        "RequestTooLargeException",
        "InvalidParameterValueException",
        "AccessDeniedException",
    }
)


def runtime_client_config() -> Config:
    """botocore settings for the runtime's Lambda client.

    The read timeout outlasts the longest possible turn and retries are off: boto3's
    defaults (60 s, automatic retries) would cut a long turn short and then run it again.
    """
    return Config(
        read_timeout=RUNTIME_MAX_TIMEOUT_S + 30,
        connect_timeout=10,
        retries={"total_max_attempts": 1, "mode": "standard"},
        tcp_keepalive=True,
    )


class RuntimeClient:
    """Runs turns on the runtime function through ``lambda_client`` (built with
    ``runtime_client_config()``)."""

    def __init__(self, *, lambda_client: Any, function_name: str) -> None:
        self._lambda = lambda_client
        self._function = function_name

    def run_turn(self, request: TurnRequest) -> TurnResult:
        """Invoke the runtime and return its TurnResult; RuntimeInvokeError when the call,
        the function or its answer fails (retryable unless the answer is garbage)."""
        try:
            response = self._lambda.invoke(
                FunctionName=self._function,
                InvocationType="RequestResponse",
                Payload=encode(request),
            )
            payload = response["Payload"].read()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
            raise RuntimeInvokeError(
                self._function, f"invoke failed: {code}", may_have_run=code not in _REFUSED_BEFORE_RUNNING
            ) from exc
        except (EndpointConnectionError, ConnectTimeoutError) as exc:  # the request never left
            raise RuntimeInvokeError(
                self._function, f"invoke failed: {type(exc).__name__}", may_have_run=False
            ) from exc
        except BotoCoreError as exc:
            raise RuntimeInvokeError(self._function, f"invoke failed: {type(exc).__name__}") from exc
        if response.get("FunctionError"):
            raise RuntimeInvokeError(
                self._function, f"function error {response['FunctionError']}: {_error_type(payload)}"
            )
        try:
            result = decode_turn_result(payload)
        except MessageDecodeError as exc:
            raise RuntimeInvokeError(self._function, str(exc), retryable=False) from exc
        if result.turn_id != request.turn_id or result.session_key != request.session_key:
            raise RuntimeInvokeError(
                self._function, "answer is for another update or session", retryable=False
            )
        return result


def _error_type(payload: bytes) -> str:
    try:
        return str(decode_json(payload, json.loads, "Lambda error").get("errorType", "unknown"))
    except (MessageDecodeError, AttributeError):
        return "unknown"
