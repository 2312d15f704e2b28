"""A scripted stand-in for agent_runtime.handler.handle, run behind LocalLambda.

It keeps the real runtime's (packages/agent-runtime/src/agent_runtime/_turn.py) contract
with the consumer: a recorded update is replayed (no second "model run"); otherwise the
session's lease is taken (another live holder → a ``busy`` result, which the consumer
words), the answer is saved and the lease released: the same ``session_core.TurnLedger``
the runtime uses decides replay, busy and save. Error results
are never recorded (a retry runs the model again), ``model_error`` and ``internal`` are
retryable, ``bad_request`` is not. A crash keeps the lease: like a killed container, it
blocks the chat until the lease expires (``$STUB_LEASE_S`` seconds beyond the scripted
sleep; the real runtime renews its lease while the model works).

Every model run is appended to ``$STUB_RUNTIME_DIR/runs.jsonl`` (with the request's
``deadline_epoch_ms`` and ``sent_at_epoch_s``) so tests can count and order them.

The prompt scripts the answer (its last paragraph: the message's own text, after the lines the
consumer puts before it in a group or for a reply):
  "sleep:<s> ..."      wait s seconds, then answer
  "work:<s> ..."       the same, publishing progress meanwhile as the real runtime does (the
                       live item's "Working, step <n>" about five times a second), so the
                       consumer shows a draft or a group's progress message; a stop requested
                       meanwhile ends it as the real runtime's Stop does: a recorded answer of
                       what it wrote so far ("Working, step <n>"), ``stopped``
  "long:<n>"           a Markdown answer of about n characters with code blocks
  "fail:<kind>"        an error result of that kind (model_error, internal, bad_request);
                       "work:<s> fail:<kind>": the same after s seconds of progress
  "crash"              the handler raises (a function error) and keeps the lease
  "limit:<reason>"     a run a limit stopped before it wrote anything (max_budget: the turn's
                       cost cap, max_turns: the step limit, timeout: its time, after the model
                       was paid), as the real runtime answers it: a model_error, not
                       retryable, with that reason, what it paid ($0.01) counted (a
                       timeout's ``timed_out_by`` "caller" when the request's deadline
                       comes before the stub's own end, as the real runtime's);
                       "limit:<reason> wrote": stopped so after it wrote "Step one done.", as
                       the real runtime answers it: that text, ``stopped`` with that
                       ``stop_reason``, recorded, $0.01
  "free: ..."          answered like anything else, but billed nothing (as the demo model)
  "history:<mb>/<limit> ..."  the session's history of <mb> MB next to the runtime's <limit>:
                       above it the turn is refused (reason ``history_too_large``), else
                       answered with ``history`` set, as the real runtime near its memory limit
                       (a refusal still declines a pending approval, as every message does)
  "newer:<what>"       answered as a runtime one release newer would, with values of known
                       enumerations this release does not know (``NEWER_VALUE``): "newer:failed"
                       a bad_request failure for such a reason, "newer:kind" a failure of such a
                       kind (not retryable), "newer:stopped" an answer stopped for such a reason
                       (recorded as a plain answer), one file not sent for such a reason
  "ask:<tool> <what>"  [I] ends at a tool call needing approval, as the real runtime does: the
                       call is kept as the session's pending Approval (``requested_by`` = the
                       request's user_id) and the result carries its ApprovalRequest
  anything else        "Answer to: <prompt>", costing $0.01 (1,200 tokens in, 34 out)
  ... files:<n> ...    (anywhere, with any answer, even a failure) the agent sends n files, as the
                       real runtime after a turn: each put in S3 under ``outbox_key`` and
                       named in ``TurnResult.files`` (chart.png, then data.csv, then
                       notes-<i>.txt; their bytes: telegram_support's ``OUTBOX_FILE_CONTENT``);
                       "files:big" sends none and names report.zip in ``files_not_sent`` (too
                       large); "files:gone" names data.csv, in S3, and expired.csv, which is not

[I] A request with ``resume_approval`` answers the decision in the store: "Ran <tool>: <what>"
or "Did not run <tool>.", an "always" adds the grant ``<tool>(*)``, the approval is settled and
the result carries its ApprovalOutcome; with nothing decided to resume (a duplicate, a stale id)
the result is empty. A message while an approval is pending declines it (decided by "a new
message"), like the real runtime, and says so in ``approval_outcome``.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Literal, Protocol

import boto3
import msgspec
from session_core import (
    TURN_VERSION,
    Approval,
    ApprovalOutcome,
    ApprovalRequest,
    Approvals,
    ErrorKind,
    HistorySize,
    LeaseHeldError,
    LiveTurns,
    SessionKey,
    SessionRegistry,
    StagedAttachment,
    TurnLedger,
    TurnProgress,
    TurnRequest,
    TurnResult,
    UnsentFile,
    Usage,
    decode_turn_request,
    encode,
    new_approval_id,
    outbox_key,
)

from agentbot_testing.telegram_support import NEWER_VALUE, OUTBOX_FILE_CONTENT, failed, long_markdown

_registry = SessionRegistry(dynamodb=boto3.client("dynamodb"), table=os.environ["SESSIONS_TABLE"])
_approvals = Approvals(dynamodb=boto3.client("dynamodb"), table=os.environ["SESSIONS_TABLE"])
_live = LiveTurns(dynamodb=boto3.client("dynamodb"), table=os.environ["SESSIONS_TABLE"])
_s3 = boto3.client("s3")

_FILES_RE = re.compile(r"(?:^|\s)files:(\d+|big|gone)(?:\s|$)")

# The real runtime's retry flags (agent_runtime._turn's _error calls).
RETRYABLE: dict[ErrorKind, bool] = {"model_error": True, "internal": True, "bad_request": False}
# The fields a "newer:<what>" answer carries, as a newer runtime would write them.
_NEWER_FIELDS: dict[str, dict[str, Any]] = {
    "newer:failed": {"error_kind": "bad_request", "error_reason": NEWER_VALUE, "retryable": False},
    "newer:kind": {"error_kind": NEWER_VALUE, "retryable": False},
    "newer:stopped": {
        "stopped": True,
        "stop_reason": NEWER_VALUE,
        "files_not_sent": [{"file_name": "report.bin", "reason": NEWER_VALUE}],
    },
}


class _LambdaContext(Protocol):
    """What the stub reads of the Lambda context object."""

    @property
    def aws_request_id(self) -> str: ...

    def get_remaining_time_in_millis(self) -> int: ...


def handle(event: dict[str, Any], context: _LambdaContext) -> dict[str, Any]:
    """Answer one turn request as the script in its prompt says (see the module docstring)."""
    request = decode_turn_request(json.dumps(event))
    key = SessionKey.parse(request.session_key)
    prompt = request.prompt.rpartition("\n\n")[2]
    sleep_s = float(prompt.split()[0].split(":")[1]) if prompt.startswith(("sleep:", "work:")) else 0.0
    lease_s = float(os.environ.get("STUB_LEASE_S", "2")) + sleep_s
    ledger = TurnLedger(_registry, owner=context.aws_request_id)
    try:
        start = ledger.start(key, request.turn_id, lease_s=lease_s)
    except LeaseHeldError:
        return _answer(failed(request, "busy", retryable=True))
    if start.lease is None:  # a recorded update (or a racing run answered)
        assert start.replay is not None
        return _answer(start.replay)
    lease = start.lease
    started = time.time()
    history = _history(prompt)
    newer = _NEWER_FIELDS.get(prompt.strip(), {})
    if prompt == "crash":
        _log_run(request, started)
        raise RuntimeError("scripted crash")  # the lease stays held until it expires
    failing = _scripted_failure(prompt)
    stopped_at = None
    if prompt.startswith("work:"):
        stopped_at = _work(key, request.turn_id, sleep_s)
    else:
        time.sleep(sleep_s)
    if stopped_at is not None:
        partial = TurnResult(
            version=TURN_VERSION,
            session_key=request.session_key,
            turn_id=request.turn_id,
            text=stopped_at,
            session_id=f"sess-{request.session_key.replace('/', '-')}",
            cost_usd=0.01,
            stopped=True,
            duration_ms=int((time.time() - started) * 1000),
        )
        result = ledger.save(lease, partial).result or partial
    elif request.resume_approval is not None:
        result = _resume(request, key, request.resume_approval)
        if result.approval_outcome is not None:
            result = ledger.save(lease, result).result or result
    elif "error_kind" in newer:  # a failure: never recorded
        result = failed(request, "bad_request", retryable=False)
    elif prompt.startswith("limit:") and prompt.split()[1:2] == ["wrote"]:
        wrote = TurnResult(
            version=TURN_VERSION,
            session_key=request.session_key,
            turn_id=request.turn_id,
            text="Step one done.",
            session_id=f"sess-{request.session_key.replace('/', '-')}",
            cost_usd=0.01,
            stopped=True,
            duration_ms=int((time.time() - started) * 1000),
        )
        limited = msgspec.structs.replace(wrote, stop_reason=prompt.split()[0].split(":")[1])
        result = ledger.save(lease, limited).result or limited
    elif prompt.startswith("limit:"):  # a failure: never recorded
        stopped = failed(request, "model_error", retryable=False)
        reason = prompt.split()[0].split(":")[1]
        result = msgspec.structs.replace(stopped, error_reason=reason, cost_usd=0.01)
        if reason == "timeout":
            whose, short_by = _whose_time(request, context)
            result = msgspec.structs.replace(result, timed_out_by=whose, caller_short_by_s=short_by)
    elif failing is not None:
        kind = _scripted_error_kind(failing)
        # with "files:<n>", files a failed turn should never carry (the consumer sends none)
        result = _with_files(failed(request, kind, retryable=RETRYABLE[kind]), key, prompt)
    elif prompt.startswith("ask:"):
        asked = _with_files(_ask(request, key, prompt), key, prompt)
        result = ledger.save(lease, asked).result or asked
    elif history is not None and history.too_large:
        refused = failed(request, "bad_request", retryable=False)
        result = msgspec.structs.replace(
            refused, error_reason="history_too_large", history=history, approval_outcome=_decline_pending(key)
        )
    else:
        text = long_markdown(int(prompt.split(":")[1])) if prompt.startswith("long:") else None
        free = prompt.startswith("free:")
        result = TurnResult(
            version=TURN_VERSION,
            session_key=request.session_key,
            turn_id=request.turn_id,
            text=text or f"Answer to: {request.prompt}",
            session_id=f"sess-{request.session_key.replace('/', '-')}",
            cost_usd=0.0 if free else 0.01,
            usage=Usage() if free else Usage(input_tokens=1200, output_tokens=34),
            num_turns=1,
            duration_ms=int((time.time() - started) * 1000),
            approval_outcome=_decline_pending(key),
        )
        result = _with_files(result, key, prompt)
        result = ledger.save(lease, result).result or result
        result = msgspec.structs.replace(result, history=history)  # not recorded, as the runtime's
    _log_run(request, started)
    ledger.release(lease)
    return _answer(result) | newer


def _work(key: SessionKey, turn_id: int, seconds: float) -> str | None:
    """Publish progress for ``seconds``, as the real runtime does while its agent works; the
    text written so far when a stop came first (None: it worked to the end)."""
    if _live.begin(key, turn_id):
        return ""  # stopped before it began
    ends = time.monotonic() + seconds
    step = 0
    while time.monotonic() < ends:
        step += 1
        text = f"Working, step {step}"
        if _live.publish(key, TurnProgress(turn_id=turn_id, text=text, seq=step)):
            return text
        time.sleep(0.2)
    return None


def _with_files(result: TurnResult, key: SessionKey, prompt: str) -> TurnResult:
    """``result`` with the files a "files:..." prompt sends, put in S3 as the runtime does."""
    scripted = _FILES_RE.search(prompt)
    if scripted is None:
        return result
    how = scripted.group(1)
    if how == "big":
        return msgspec.structs.replace(
            result, files_not_sent=(UnsentFile(file_name="report.zip", reason="too_large"),)
        )
    names = ["data.csv", "expired.csv"] if how == "gone" else _file_names(int(how))
    files = []
    for name in names:
        content = OUTBOX_FILE_CONTENT.get(
            name, f"note {name.removeprefix('notes-').removesuffix('.txt')}".encode()
        )
        s3_key = outbox_key(key, result.turn_id, name)
        if name != "expired.csv":
            _s3.put_object(Bucket=os.environ["SESSIONS_BUCKET"], Key=s3_key, Body=content)
        mime_type = {"png": "image/png", "csv": "text/csv"}.get(name.rsplit(".", 1)[1], "text/plain")
        files.append(StagedAttachment(s3_key=s3_key, file_name=name, mime_type=mime_type, size=len(content)))
    return msgspec.structs.replace(result, files=tuple(files))


def _file_names(count: int) -> list[str]:
    return [*["chart.png", "data.csv"][:count], *(f"notes-{i}.txt" for i in range(3, count + 1))]


def _history(prompt: str) -> HistorySize | None:
    """The history a "history:<mb>/<limit mb>" prompt scripts (None for any other prompt)."""
    if not prompt.startswith("history:"):
        return None
    mb, _, limit_mb = prompt.removeprefix("history:").split()[0].partition("/")
    return HistorySize(mb=float(mb), limit_mb=float(limit_mb))


def _ask(request: TurnRequest, key: SessionKey, script: str) -> TurnResult:
    tool, _, what = script.removeprefix("ask:").partition(" ")
    declined = _decline_pending(key)
    answer = TurnResult(
        version=TURN_VERSION,
        session_key=request.session_key,
        turn_id=request.turn_id,
        text=f"Ran {tool}: {what}",
        session_id=f"sess-{request.session_key.replace('/', '-')}",
        cost_usd=0.01,
        usage=Usage(input_tokens=1200, output_tokens=34),
        num_turns=1,
        approval_outcome=declined,
    )
    if any(grant.rule == f"{tool}(*)" for grant in _approvals.grants(key)):
        return answer  # "Always in this chat": no question
    approval = Approval(
        approval_id=new_approval_id(),
        state="pending",
        tool_name=tool,
        tool_use_id=f"toolu_{request.turn_id}",
        call_fingerprint=f"fingerprint of {what}",
        summary=what,
        grant_rule=f"{tool}(*)",
        sdk_session_id=f"sess-{request.session_key.replace('/', '-')}",
        requested_by=request.user_id,
    )
    _approvals.open(key, approval)
    return TurnResult(
        version=TURN_VERSION,
        session_key=request.session_key,
        turn_id=request.turn_id,
        text=f"I need to use {tool} for this.",
        session_id=answer.session_id,
        cost_usd=answer.cost_usd,
        usage=answer.usage,
        num_turns=1,
        approval_outcome=declined,
        approval_request=ApprovalRequest(
            approval_id=approval.approval_id,
            tool_name=tool,
            summary=what,
            grant_rule=approval.grant_rule,
        ),
    )


def _resume(request: TurnRequest, key: SessionKey, approval_id: str) -> TurnResult:
    approval = _approvals.current(key)
    empty = TurnResult(version=TURN_VERSION, session_key=request.session_key, turn_id=request.turn_id)
    if approval is None or approval.approval_id != approval_id or approval.state != "decided":
        return empty  # nothing to resume: answered already, or another approval
    if approval.choice == "always":
        _approvals.grant(key, approval.grant_rule, granted_by=approval.decided_by)
    ran = approval.choice in ("once", "always")
    _approvals.settle(key, approval_id)
    return TurnResult(
        version=TURN_VERSION,
        session_key=request.session_key,
        turn_id=request.turn_id,
        text=f"Ran {approval.tool_name}: {approval.summary}" if ran else f"Did not run {approval.tool_name}.",
        session_id=approval.sdk_session_id,
        cost_usd=0.01,
        usage=Usage(input_tokens=1200, output_tokens=34),
        num_turns=1,
        approval_outcome=approval.outcome(),
    )


def _decline_pending(key: SessionKey) -> ApprovalOutcome | None:
    pending = _approvals.current(key)
    if pending is None or pending.state != "pending":
        return None
    declined = _approvals.decide(
        key, pending.approval_id, "deny", decided_by="a new message", answered_by="new_message"
    )
    _approvals.settle(key, pending.approval_id)
    return declined.outcome()


def _scripted_failure(prompt: str) -> str | None:
    """The kind named by "fail:<kind>" first, or after "work:<s>"; None when neither."""
    words = prompt.split()[:2]
    scripted = [w for w in words if w.startswith("fail:")]
    if not scripted or (scripted[0] != words[0] and not words[0].startswith("work:")):
        return None
    return scripted[0].split(":")[1]


def _scripted_error_kind(name: str) -> ErrorKind:
    for kind in RETRYABLE:
        if kind == name:
            return kind
    raise KeyError(name)


def _whose_time(
    request: TurnRequest, context: _LambdaContext
) -> tuple[Literal["runtime", "caller"], float | None]:
    # As the real runtime decides it: the caller's deadline when it comes before its own end,
    # with by how much it does.
    if request.deadline_epoch_ms is None:
        return "runtime", None
    short_by = context.get_remaining_time_in_millis() / 1000 - (
        request.deadline_epoch_ms / 1000 - time.time()
    )
    return ("caller", round(short_by, 1)) if short_by > 0 else ("runtime", None)


def _answer(result: TurnResult) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(encode(result))
    return answer


def _log_run(request: TurnRequest, started: float) -> None:
    state = Path(os.environ["STUB_RUNTIME_DIR"])
    with open(state / "runs.jsonl", "a") as runs:
        runs.write(
            json.dumps(
                {
                    "update_id": request.turn_id,
                    "session_key": request.session_key,
                    "prompt": request.prompt,
                    "resume_approval": request.resume_approval,
                    "user_id": request.user_id,
                    "attachments": [a.s3_key for a in request.attachments],
                    "deadline_epoch_ms": request.deadline_epoch_ms,
                    "sent_at_epoch_s": request.sent_at_epoch_s,
                    "started": started,
                    "ended": time.time(),
                    "pid": os.getpid(),
                }
            )
            + "\n"
        )
