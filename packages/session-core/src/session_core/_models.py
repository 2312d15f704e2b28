"""Messages that cross the consumer ⇄ runtime boundary (turn request and result), each with a
schema version, and the versioned decode every boundary message (the queue envelope too) uses."""

from __future__ import annotations

from typing import Literal, TypeVar

import msgspec

from ._approvals import ApprovalAnsweredBy, ApprovalOutcome, ApprovalRequest
from ._errors import MessageDecodeError, UnsupportedVersionError
from ._json import as_json_bytes, decode_json, encode_json
from ._newer_values import NewerValues, Tolerated, convert_tolerating, decode_tolerating
from ._staged_attachment import StagedAttachment

# 2: the turn is named by a channel-neutral ``turn_id`` (was Telegram's ``update_id`` in 1).
# Version 1 still decodes (turn records stored before, a request in flight during a deploy).
TURN_VERSION = 2
_TURN_VERSIONS = (1, 2)


class TurnRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Ask the runtime to run (or replay) turn ``turn_id`` of a session.

    ``turn_id`` is chosen by the channel (the consumer uses the Telegram update id): a
    non-negative integer, unique per session, the same for every retry of that turn."""

    version: int
    session_key: str
    turn_id: int
    prompt: str
    attachments: tuple[StagedAttachment, ...] = ()
    new_session: bool = False
    # Wall-clock time (epoch ms) by which the answer must be back with the caller, so the
    # runtime never outlasts the consumer that waits for it; None means the runtime's own limit.
    deadline_epoch_ms: int | None = None
    # The most this turn may spend (USD), passed to the SDK as max_budget_usd; None: no cap.
    max_cost_usd: float | None = None
    # [I] This turn answers the session's pending approval ``resume_approval`` (a button
    # press): the runtime reads the decision from the store and resumes the deferred call.
    resume_approval: str | None = None
    # Who sent the message (Telegram user id): the one whose buttons an approval shows.
    user_id: int | None = None
    # When the user sent the message (epoch seconds, the channel's clock); None: not known.
    # A turn that starts well after it tells the agent (the runtime's ``_late_note``).
    sent_at_epoch_s: int | None = None


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0


# "config": the deployment is misconfigured (claude-config, a missing key parameter, the model
# refusing the key); permanent, the operator has been told by a log line, metric and alarm.
ErrorKind = Literal["busy", "model_error", "bad_request", "internal", "config"]
# Why a turn failed, where its kind alone does not say what the user should do: it ran out of
# time, hit the agent's step limit or the turn's budget, could not open an attachment, the
# session's history has outgrown what the runtime's memory can load, the message's files with
# the conversation are too large for the model's API (request_too_large), the agent's process
# died mid-run (so far only the reason of a stopped answer, see ``TurnResult.stop_reason``),
# the chat's files passed the disk space a session may use (SESSION_DISK_LIMIT_MB), or the
# model accepted the turn's calls and sent nothing (MODEL_SILENCE_S).
ErrorReason = Literal[
    "timeout",
    "max_turns",
    "max_budget",
    "attachment",
    "history_too_large",
    "context_full",
    "model_refused",
    "request_too_large",
    "crashed",
    "disk_limit",
    "model_silent",
    "model_unreachable",
]


class HistorySize(msgspec.Struct, frozen=True, kw_only=True):
    """A session's stored history next to the most the runtime's memory can load (MB)."""

    mb: float
    limit_mb: float
    # What of it the CLI loads: from the last compaction on (None: unknown, the history was not
    # downloaded; or an older runtime).
    loaded_mb: float | None = None

    @property
    def too_large(self) -> bool:
        """Loading this history would need more memory than the runtime has."""
        return self.mb > self.limit_mb


# Whose time a turn stopped by "timeout" ran out of (see ``TurnResult.timed_out_by``).
TimedOutBy = Literal["runtime", "caller"]

UnsentReason = Literal[
    "too_large",
    "too_many",
    "not_a_file",
    "folder",
    "empty",
    "failed",
    "unfinished",
    "unconfirmed",
    "not_allowed",
    "refused",
    "refused_too_large",
]


class UnsentFile(msgspec.Struct, frozen=True, kw_only=True):
    """A file in the agent's outbox that was not sent: ``too_large`` (above what Telegram
    takes from a bot), ``too_many`` (past the most sent with one answer), ``not_a_file`` (a
    link, a device: only regular files of the agent's own are sent), ``folder`` (a directory:
    only the files directly in the outbox are sent), ``empty``
    (Telegram sends no file of 0 bytes), ``failed``
    (it could not be stored for sending), ``unfinished`` (a tool was still writing it when the
    turn ended: the user stopped it, its time ran out, its process died), ``unconfirmed``
    (the consumer's upload went out but Telegram did not confirm it, its answer lost or a 5xx:
    it may have arrived), ``not_allowed`` (the group's permissions let the bot write there but
    not send files), ``refused`` (Telegram would not take it, for good), ``refused_too_large``
    (Telegram refused it as too large: ``size``, its bytes, says how large it was)."""

    file_name: str
    reason: UnsentReason
    size: int | None = None


class TurnResult(msgspec.Struct, frozen=True, kw_only=True):
    """The runtime's answer. On failure ``error_kind`` is set, with ``error_reason`` where the
    kind alone does not tell what happened; ``retryable`` says whether trying again may help.
    The runtime words nothing for users: the consumer turns kind and reason into what the
    user reads (results stored before this carried a ``user_message``; it is ignored)."""

    version: int
    session_key: str
    turn_id: int
    text: str = ""
    session_id: str | None = None
    # What this turn cost (USD), not the SDK session's running total.
    cost_usd: float = 0.0
    # The SDK session's running total after this turn (the CLI's ``total_cost_usd``): the
    # registry keeps it so the next turn of the same SDK session is priced by difference.
    session_cost_usd: float = 0.0
    usage: Usage = Usage()
    num_turns: int = 0
    duration_ms: int = 0
    error_kind: ErrorKind | None = None
    error_reason: ErrorReason | None = None
    retryable: bool = False
    # Seconds the model asked to wait before it is called again (its 429 or 529 said so): a
    # retry before then is refused the same way.
    retry_after_s: float | None = None
    replayed: bool = False
    # The user stopped the turn: ``text`` is what was written until then, and the turn is
    # recorded (a retry replays it; the next message resumes the session after it).
    stopped: bool = False
    # Stopped by a limit, not by the user (``stopped`` is set too): "timeout" (its time ran
    # out), "max_turns", "max_budget", "crashed" (the agent's process died) or "disk_limit"
    # (the chat's files passed the disk space a session may use). ``text`` is
    # what was written until then, recorded the same way. A turn stopped so before it wrote
    # anything fails instead (``error_kind``, unrecorded).
    stop_reason: ErrorReason | None = None
    # Whose time ran out, with reason "timeout": the runtime's own (its function's Timeout) or
    # the caller's deadline, when the caller had spent part of its own invocation before the
    # turn (a wait for the chat's previous turn, a voice transcription). None: no timeout, or
    # a runtime older than this field.
    timed_out_by: TimedOutBy | None = None
    # With ``timed_out_by`` "caller": the seconds by which the caller's deadline came before
    # the runtime's own time would have ended the turn. A caller that spent at least this much
    # before the turn (a wait) was cut by that wait, not by its Timeout as set. None: no such
    # timeout, or a runtime older than this field.
    caller_short_by_s: float | None = None
    # Stopped before its run began (the stop came while it waited to start): its prompt never
    # reached the model, so a prompt an earlier, failed attempt of it left in the transcript is
    # no part of the conversation either (the next turn leaves it out, as for a failed turn).
    stopped_before_start: bool = False
    # [I] The run ended at a tool call that waits for the user's approval (``text`` is what
    # the agent wrote before it); the consumer shows the call with Allow/Always/Deny buttons.
    approval_request: ApprovalRequest | None = None
    # [I] The pending approval this turn answered (a button, or a new message declining it).
    approval_outcome: ApprovalOutcome | None = None
    # The session's history, set when it nears (or, with reason "history_too_large", passed)
    # the most the runtime's memory can load: the consumer tells the user before it breaks.
    history: HistorySize | None = None
    # Files the agent put in its outbox this turn, copied to S3 (``outbox_key``) for the
    # consumer to send after ``text``; and those it could not send, with why.
    files: tuple[StagedAttachment, ...] = ()
    files_not_sent: tuple[UnsentFile, ...] = ()
    # Outbox entries past those the runtime looks at (a tool can make millions, and each one
    # named makes this result larger): only counted, so the user's note counts every file
    # that did not go (past ten, each is one too many). At least this many: the listing stops
    # at some thousands.
    more_files_not_sent: int = 0
    # A failed turn whose agent had called tools (in this attempt or a failed one before it):
    # what they did (a file written, a mail sent) stands, and the user is told so. The next
    # message's turn is told which calls ran.
    tools_ran: bool = False
    # The CLI compacted the conversation during this turn (summarised its earlier part; the
    # agent keeps only the summary of it from then on): /status tells the user when.
    summarised: bool = False

    @property
    def ok(self) -> bool:
        return self.error_kind is None


class _Versioned(msgspec.Struct):
    version: object = None


_version_probe = msgspec.json.Decoder(_Versioned)
_request_decoder = msgspec.json.Decoder(TurnRequest)
_result_decoder = msgspec.json.Decoder(TurnResult)

# A result from a runtime one release newer (or recorded by one) may carry values this release
# does not know: read as what the consumer can say truthfully. An unknown reason is no reason
# (the kind's own words, a plain "Stopped."); an unknown kind still a failure, of ours; a file
# not sent for an unknown reason, one that "could not be prepared". Logged: the operator sees
# the skew; a timeout charged to an unknown deadline, the runtime's. (Approval choices and
# states have no truthful fallback: they stay strict.)
_RESULT_NEWER_VALUES = NewerValues(
    "result.unknown_value",
    (
        Tolerated.field("error_kind", ErrorKind, "internal"),
        Tolerated.field("error_reason", ErrorReason, None),
        Tolerated.field("stop_reason", ErrorReason, None),
        # A deadline of a kind this release cannot name: told as it told every timeout before.
        Tolerated.field("timed_out_by", TimedOutBy, None),
        Tolerated.field("files_not_sent.reason", UnsentReason, "failed"),
        Tolerated.field("approval_outcome.answered_by", ApprovalAnsweredBy, "button"),
    ),
)


# Version 1 on the wire named the turn id ``update_id``: read as fields, renamed, then checked
# against the current model, so a version 1 message passes the same validation.
_v1_fields_decoder = msgspec.json.Decoder(dict[str, object])


_T = TypeVar("_T")


_NO_NEWER_VALUES = NewerValues("", ())


def decode_versioned(
    data: bytes | str,
    decoder: msgspec.json.Decoder[_T],
    model: str,
    version: int,
    newer: NewerValues = _NO_NEWER_VALUES,
) -> _T:
    """Decode ``data`` as ``model`` once its ``version`` field equals ``version``, the values of
    ``newer`` fields this release does not know read as their fallbacks; anything else (another
    version, malformed or too deeply nested JSON) raises a MessageDecodeError subclass."""
    raw = as_json_bytes(data, model)
    found = decode_json(raw, _version_probe.decode, model).version
    if found != version:
        raise UnsupportedVersionError(model, found, (version,))
    return decode_tolerating(raw, decoder, model, newer)


def encode(message: msgspec.Struct) -> bytes:
    """JSON bytes of a boundary message; text that is not valid Unicode (lone surrogates)
    is written with U+FFFD instead of raising."""
    return encode_json(message)


def decode_turn_request(data: bytes | str) -> TurnRequest:
    """Decode a runtime invoke payload (version 1 or 2, answered as the current model);
    rejects other versions with UnsupportedVersionError."""
    raw, version = _turn_version(data, "TurnRequest")
    if version == 1:
        return _from_v1(raw, TurnRequest, "TurnRequest")
    return decode_json(raw, _request_decoder.decode, "TurnRequest")


def decode_turn_result(data: bytes | str) -> TurnResult:
    """Decode a runtime answer or a stored turn record (version 1 or 2, answered as the
    current model); rejects other versions with UnsupportedVersionError."""
    raw, version = _turn_version(data, "TurnResult")
    if version == 1:
        fields = _v1_fields(raw, "TurnResult")
        return convert_tolerating(fields, TurnResult, "TurnResult", _RESULT_NEWER_VALUES)
    return decode_tolerating(raw, _result_decoder, "TurnResult", _RESULT_NEWER_VALUES)


def _from_v1(raw: bytes, model: type[_T], name: str) -> _T:
    try:
        return msgspec.convert(_v1_fields(raw, name), model)
    except msgspec.ValidationError as exc:
        raise MessageDecodeError(name, str(exc)[:300]) from exc


def _v1_fields(raw: bytes, name: str) -> dict[str, object]:
    """A version 1 message's fields, renamed as the current model names them."""
    fields = decode_json(raw, _v1_fields_decoder.decode, name)
    if "update_id" in fields:
        fields["turn_id"] = fields.pop("update_id")
    fields["version"] = TURN_VERSION
    fields.pop("user_message", None)  # version 1's wording, now the consumer's
    return fields


def _turn_version(data: bytes | str, model: str) -> tuple[bytes, int]:
    raw = as_json_bytes(data, model)
    found = decode_json(raw, _version_probe.decode, model).version
    if isinstance(found, bool) or found not in _TURN_VERSIONS:
        raise UnsupportedVersionError(model, found, _TURN_VERSIONS)
    assert isinstance(found, int)
    return raw, found
