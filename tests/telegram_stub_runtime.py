"""A scripted stand-in for agent_runtime.handler.handle, run behind LocalLambda.

Like the real runtime, it holds the session's lease in the registry while it "thinks",
records the result with ``complete_turn`` and replays the recorded result when the same
update comes again (no second "model run"). Every model run is appended to
``$STUB_RUNTIME_DIR/runs.jsonl`` so tests can count and order them.

The prompt scripts the answer:
  "sleep:<s> ..."      wait s seconds, then answer
  "long:<n>"           a Markdown answer of about n characters with code blocks
  "fail:<kind>"        an error result (model_error / bad_request: permanent; busy: retryable)
  "crash"              the handler raises (a function error)
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
from telegram_support import long_markdown

_registry = SessionRegistry(dynamodb=boto3.client("dynamodb"), table=os.environ["SESSIONS_TABLE"])


def handle(event, context):
    request = decode_turn_request(json.dumps(event))
    state = Path(os.environ["STUB_RUNTIME_DIR"])
    key = SessionKey.parse(request.session_key)
    recorded = _registry.get_turn_result(key, request.update_id)
    if recorded is not None:
        return json.loads(encode(recorded))
    try:
        lease = _registry.acquire_lease(key, owner=context.aws_request_id, duration_s=60)
    except LeaseHeldError:
        return json.loads(
            encode(
                TurnResult(
                    version=1,
                    session_key=request.session_key,
                    update_id=request.update_id,
                    error_kind="busy",
                    retryable=True,
                )
            )
        )
    prompt = request.prompt
    started = time.time()
    kwargs: dict = {}
    if prompt.startswith("sleep:"):
        time.sleep(float(prompt.split()[0].split(":")[1]))
        kwargs["text"] = f"Answer to: {prompt}"
    elif prompt.startswith("long:"):
        kwargs["text"] = long_markdown(int(prompt.split(":")[1]))
    elif prompt.startswith("fail:"):
        kind = prompt.split(":")[1].strip()
        kwargs.update(
            error_kind=kind,
            retryable=kind == "busy",
            user_message="The model could not answer this one." if kind != "busy" else None,
        )
    elif prompt == "crash":
        _registry.release_lease(lease)
        raise RuntimeError("scripted crash")
    else:
        kwargs["text"] = f"Answer to: {prompt}"
    result = TurnResult(
        version=1,
        session_key=request.session_key,
        update_id=request.update_id,
        session_id=f"sess-{request.session_key.replace('/', '-')}",
        cost_usd=0.01,
        num_turns=1,
        duration_ms=int((time.time() - started) * 1000),
        **kwargs,
    )
    with open(state / "runs.jsonl", "a") as runs:
        runs.write(
            json.dumps(
                {
                    "update_id": request.update_id,
                    "session_key": request.session_key,
                    "prompt": prompt,
                    "attachments": [a.s3_key for a in request.attachments],
                    "started": started,
                    "ended": time.time(),
                    "pid": os.getpid(),
                }
            )
            + "\n"
        )
    if result.ok or not result.retryable:
        _registry.complete_turn(lease, result=result)
    _registry.release_lease(lease)
    return json.loads(encode(result))
