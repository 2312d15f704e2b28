"""A scripted stand-in for agent_runtime.handler.handle, run behind LocalLambda.

It keeps the real runtime's (packages/agent-runtime/src/agent_runtime/_turn.py) contract
with the consumer: a recorded update is replayed (no second "model run"); otherwise the
session's lease is taken (another live holder → a ``busy`` result with the runtime's busy
text), the answer is recorded with ``complete_turn`` and the lease released. Error results
are never recorded (a retry runs the model again), ``model_error`` and ``internal`` are
retryable, ``bad_request`` is not. A crash keeps the lease: like a killed container, it
blocks the chat until the lease expires (``$STUB_LEASE_S`` seconds beyond the scripted
sleep; the real runtime renews its lease while the model works).

Every model run is appended to ``$STUB_RUNTIME_DIR/runs.jsonl`` (with the request's
``deadline_epoch_ms``) so tests can count and order them.

The prompt scripts the answer:
  "sleep:<s> ..."      wait s seconds, then answer
  "long:<n>"           a Markdown answer of about n characters with code blocks
  "fail:<kind>"        an error result of that kind (model_error, internal, bad_request)
  "crash"              the handler raises (a function error) and keeps the lease
  anything else        "Answer to: <prompt>"
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import boto3
from session_core import (
    LeaseHeldError,
    SessionKey,
    SessionRegistry,
    TurnResult,
    decode_turn_request,
    encode,
)
from telegram_support import BUSY_TEXT, long_markdown

_registry = SessionRegistry(dynamodb=boto3.client("dynamodb"), table=os.environ["SESSIONS_TABLE"])

# The real runtime's retry flags (agent_runtime._turn's _error calls).
FAILED_TEXT = "The model could not answer this one."
RETRYABLE = {"model_error": True, "internal": True, "bad_request": False}


def handle(event, context):
    request = decode_turn_request(json.dumps(event))
    key = SessionKey.parse(request.session_key)
    recorded = _registry.get_turn_result(key, request.update_id)
    if recorded is not None:
        return _answer(recorded)
    prompt = request.prompt
    sleep_s = float(prompt.split()[0].split(":")[1]) if prompt.startswith("sleep:") else 0.0
    lease_s = float(os.environ.get("STUB_LEASE_S", "2")) + sleep_s
    try:
        lease = _registry.acquire_lease(key, owner=context.aws_request_id, duration_s=lease_s)
    except LeaseHeldError:
        return _answer(_error(request, "busy", retryable=True, user_message=BUSY_TEXT))
    recorded = _registry.get_turn_result(key, request.update_id)  # a racing run answered
    if recorded is not None:
        _registry.release_lease(lease)
        return _answer(recorded)
    started = time.time()
    if prompt == "crash":
        _log_run(request, started)
        raise RuntimeError("scripted crash")  # the lease stays held until it expires
    time.sleep(sleep_s)
    if prompt.startswith("fail:"):
        kind = prompt.split(":")[1].strip()
        result = _error(request, kind, retryable=RETRYABLE[kind], user_message=FAILED_TEXT)
    else:
        text = long_markdown(int(prompt.split(":")[1])) if prompt.startswith("long:") else None
        result = TurnResult(
            version=1,
            session_key=request.session_key,
            update_id=request.update_id,
            text=text or f"Answer to: {prompt}",
            session_id=f"sess-{request.session_key.replace('/', '-')}",
            cost_usd=0.01,
            num_turns=1,
            duration_ms=int((time.time() - started) * 1000),
        )
        _registry.complete_turn(lease, result=result)
    _log_run(request, started)
    _registry.release_lease(lease)
    return _answer(result)


def _error(request, kind: str, *, retryable: bool, user_message: str) -> TurnResult:
    return TurnResult(
        version=1,
        session_key=request.session_key,
        update_id=request.update_id,
        error_kind=kind,
        retryable=retryable,
        user_message=user_message,
    )


def _answer(result: TurnResult) -> dict:
    return json.loads(encode(result))


def _log_run(request, started: float) -> None:
    state = Path(os.environ["STUB_RUNTIME_DIR"])
    with open(state / "runs.jsonl", "a") as runs:
        runs.write(
            json.dumps(
                {
                    "update_id": request.update_id,
                    "session_key": request.session_key,
                    "prompt": request.prompt,
                    "attachments": [a.s3_key for a in request.attachments],
                    "deadline_epoch_ms": request.deadline_epoch_ms,
                    "started": started,
                    "ended": time.time(),
                    "pid": os.getpid(),
                }
            )
            + "\n"
        )
