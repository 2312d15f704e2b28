"""The running turn of a session as others see it while it runs: its progress (written by the
runtime, read by the consumer) and a stop request (written by the producer, read by the
runtime). One item per session in the registry table, apart from the turn-written meta item:

==============================  ==========  ===================================================
pk                              sk          holds
==============================  ==========  ===================================================
``session|<canonical key>``     ``live``    turn_id, started_at, ended_at, progress (JSON),
                                            stop_requested_at, stopped_by (JSON); stop_before,
                                            stop_before_at, stop_before_by (JSON),
                                            stop_before_kept (list of maps);
                                            stopped_messages (list of maps)
==============================  ==========  ===================================================

Why a table item and not a stream: the runtime is invoked synchronously and Lambda response
streaming is not offered to a Python container run by awslambdaric, and a stop must reach a
turn outside its FIFO group (ARCHITECTURE.md, "Control signals do not queue behind a turn").

A stop targets the turn running (or about to run) when it is written: ``request_stop`` lands
on a live item that has not ended; the consumer ``expect``s its turn before invoking the
runtime (so a stop during the runtime's start is kept), and ``begin`` keeps a stop only when
the item is that same turn's: a stop for a turn that already ended never stops the next one.

Before the consumer expects a turn (the message waits in the queue, or the consumer that took
it is still starting) there is no turn to stop yet: a /stop that finds none running while a
turn waits to start (the chat's backlog count says a message waits, or a call the user allowed
waits for its turn: see ``_stop_for_waiting``) is kept as ``stop_before`` (its own update id)
for the next turn to start. That
turn takes it only if it was sent before the stop, and any start removes it: a stop never
outlives the turn it was aimed at, nor stops a message sent after it. A later stop replaces
it, but each one kept is listed too (``stop_before_kept``: its update id, when, who; the first
``MAX_KEPT_STOPS``): the turn that takes the stop names the sender of the first sent after its
message, as a running turn names its first stopper, even when a stop kept for nothing came
before. One kept for a message
that started no turn (a command, a refusal, an answer already being sent) lapses once the
backlog count would no longer be trusted either: update ids only grow while updates keep coming.

A message its sender edited into a /stop is named apart (``stopped_messages``: its message id,
when, who; ``keep_stop_for_message``): whenever its own turn is expected later (it waited in
the queue, or reached the producer only after its edit), that turn is stopped before it begins,
whatever started between; other turns never take it. The turn of messages answered together
(an album, a text the app split) is named after its first, but is the turn of each: an edit of
any of them stops it. It lapses as a kept stop does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from typing import Any, Literal

import msgspec

from ._aws_errors import retry_transaction_conflicts
from ._backlog import DEFAULT_STALE_AFTER_S
from ._dynamo_table import ConditionFailed, TableStore, item_float, item_int, number
from ._errors import MessageDecodeError, StorageError
from ._json import encode_json
from ._keys import SessionKey
from ._newer_values import NewerValues, Tolerated, decode_tolerating
from ._registry_keys import session_item_pk

LIVE_SK = "live"  # the sort key of the live item, in the session's partition
# A kept stop is for a turn about to start; one no turn took within the time the backlog count
# itself is trusted was kept for nothing (a message that started no turn). It lapses then: after
# a week without updates Telegram numbers the next ones at random, lower than the stop's maybe.
_KEPT_STOP_S = DEFAULT_STALE_AFTER_S
# Stops listed while a message waits (a stop kept for nothing may come first): enough to find
# whom to name, and the item stays small whatever a group sends.
MAX_KEPT_STOPS = 10
# Messages edited into a /stop named at once (each lapses as a kept stop does): the item stays
# small, and a chat would have to edit this many within the lapse for one to give way.
MAX_STOPPED_MESSAGES = 10
_KEEP_STOP_ROUNDS = 10
# Enough for a draft (Telegram shows at most 4096 characters) and a progress line.
MAX_PROGRESS_TEXT = 4000

# "call_waiting": nothing runs, and a tool call waits for the user's answer (said only by
# LiveTurnsWithBacklog, which reads the approval anyway).
StopOutcome = Literal["stopping", "nothing_running", "call_waiting"]


ActivityKind = Literal["tool", "subagent"]


class ToolActivity(msgspec.Struct, frozen=True, kw_only=True):
    """What the agent is doing now: a tool (or subagent) and its main argument, shortened and
    with secrets masked by the runtime; the channel words and escapes it."""

    kind: ActivityKind
    name: str
    argument: str = ""


class Stopper(msgspec.Struct, frozen=True, kw_only=True):
    """Who asked a turn to stop: a person's (or a chat's) id, and the name the chat knows them
    by (their @username, else their first name; a chat's title), which the consumer shows
    notifying nobody."""

    user_id: int
    name: str


_stopper_decoder = msgspec.json.Decoder(Stopper)


class TurnProgress(msgspec.Struct, frozen=True, kw_only=True):
    """The running turn's state as last published (at most about once a second)."""

    turn_id: int
    text: str = ""  # the answer so far (its end, within MAX_PROGRESS_TEXT, see markdown_tail)
    # ``text`` is only the answer's end: the runtime cuts at a line's start, so the cut text
    # may be far shorter than MAX_PROGRESS_TEXT, and only this tells the reader of the cut.
    cut: bool = False
    activity: ToolActivity | None = None  # None: the model is writing or thinking
    seq: int = 0  # grows with each publication; a reader renders only what is new
    stopped: bool = False


_progress_decoder = msgspec.json.Decoder(TurnProgress)
# Published by a runtime one release newer than the consumer reading it (deploys update the
# runtime first): an activity of a kind the consumer does not know is shown as a tool's, by name.
_PROGRESS_NEWER_VALUES = NewerValues(
    "progress.unknown_value", (Tolerated.field("activity.kind", ActivityKind, "tool"),)
)


class LiveTurns(TableStore):
    """The ``live`` item of each session: begin/publish/end (runtime), expect/progress
    (consumer), request_stop (producer), stop_requested (runtime). ``dynamodb`` is a boto3
    client; ``clock`` returns epoch seconds; ``retention_days`` as the registry's. A stop for
    a message still waiting for its turn is kept by ``LiveTurnsWithBacklog`` (the producer's)."""

    _label = "live_turns"

    def expect(self, key: SessionKey, turn_id: int, *, message_ids: Collection[int] = ()) -> bool:
        """Mark ``turn_id`` as the session's coming turn (the consumer, before it invokes the
        runtime), so a stop pressed while the runtime starts is not lost; done only when no
        other turn is running (answers whether it was). The same turn expected again (a retry:
        its runtime crashed or its invoke failed) starts over with no progress, and the stop
        the user asked for is kept; so is one sent while the turn waited (see request_stop),
        and one kept for any of ``message_ids``, the messages the turn answers (an album's
        parts, a split text's), when it was edited into a /stop (see keep_stop_for_message)."""
        try:
            self._start(
                "expect",
                key,
                turn_id,
                "attribute_not_exists(turn_id) OR (attribute_exists(ended_at) AND turn_id <> :t)",
                message_ids=message_ids,
            )
            return True
        except ConditionFailed:
            pass
        try:
            out = self._update_turn(
                "expect",
                key,
                turn_id,
                (
                    "SET started_at = :now, expires_at = :ttl, progress = :p"
                    " REMOVE ended_at, stop_before, stop_before_at, stop_before_by, stop_before_kept,"
                    " stop_before_first"
                ),
                self._fresh_values(turn_id),
                ReturnValues="ALL_OLD",
            )
        except ConditionFailed:  # another turn is running
            return False
        # A retry waits in the queue as any message does: a stop kept meanwhile is its own.
        self._take_kept_stop("expect", key, turn_id, out.get("Attributes", {}), message_ids)
        return True

    def begin(self, key: SessionKey, turn_id: int) -> bool:
        """Mark ``turn_id`` as the session's running turn: a stop requested for it since the
        consumer expected it is kept, any earlier turn's item (and stop) is replaced. Answers
        whether the turn is stopped already (then it should not run)."""
        # A stop being kept holds the item for the moment of its transaction: DynamoDB refuses
        # a plain write meanwhile. Refused, the turn would run unstoppable.
        return retry_transaction_conflicts(lambda: self._begin(key, turn_id))

    def _begin(self, key: SessionKey, turn_id: int) -> bool:
        try:
            out = self._update_turn(
                "begin",
                key,
                turn_id,
                "SET started_at = :now, expires_at = :ttl, progress = :p",
                self._fresh_values(turn_id),
                condition="turn_id = :t AND attribute_not_exists(ended_at)",
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            return self._start("begin", key, turn_id)
        return "stop_requested_at" in out.get("Attributes", {})

    def publish(self, key: SessionKey, progress: TurnProgress) -> bool:
        """Write the running turn's progress; answers whether a stop was requested meanwhile
        (one request a second serves both). False also when another turn replaced this one."""
        values = {":p": _progress_value(progress)}
        try:
            out = self._update_turn(
                "publish", key, progress.turn_id, "SET progress = :p", values, ReturnValues="ALL_NEW"
            )
        except ConditionFailed:
            return False
        return "stop_requested_at" in out.get("Attributes", {})

    def end(self, key: SessionKey, turn_id: int, progress: TurnProgress | None = None) -> None:
        """Mark the turn ended (a later stop request finds nothing running)."""
        values = {":now": number(self._table.clock())}
        update = "SET ended_at = :now"
        if progress is not None:
            values[":p"] = _progress_value(progress)
            update += ", progress = :p"
        # A later turn took over when the condition fails: nothing of ours to end.
        with contextlib.suppress(ConditionFailed):
            self._update_turn("end", key, turn_id, update, values)

    def stopped_by(self, key: SessionKey, turn_id: int) -> Stopper | None:
        """Who asked turn ``turn_id`` to stop first (None: nobody said, as a draft's stop
        control or the consumer, or the turn was not stopped, or another replaced it)."""
        item = self._table.get("stopped_by", session_item_pk(key), LIVE_SK)
        if not item or not _is_turn(item, turn_id) or "stopped_by" not in item:
            return None
        try:
            return _stopper_decoder.decode(item["stopped_by"]["S"])
        except msgspec.DecodeError:
            return None

    def stop_requested(self, key: SessionKey, turn_id: int) -> bool:
        """Whether a stop was requested for the running turn ``turn_id``."""
        item = self._table.get("stop_requested", session_item_pk(key), LIVE_SK)
        return bool(item and _is_turn(item, turn_id) and "stop_requested_at" in item)

    def progress(self, key: SessionKey, turn_id: int) -> TurnProgress | None:
        """The last published progress of turn ``turn_id`` (None before it began or after
        another turn replaced it)."""
        item = self._table.get("progress", session_item_pk(key), LIVE_SK)
        if not item or not _is_turn(item, turn_id) or "progress" not in item:
            return None
        try:
            return decode_tolerating(
                item["progress"]["S"], _progress_decoder, "TurnProgress", _PROGRESS_NEWER_VALUES
            )
        except MessageDecodeError:
            return None

    def request_stop(
        self,
        key: SessionKey,
        *,
        turn_id: int | None = None,
        update_id: int | None = None,
        by: Stopper | None = None,
    ) -> StopOutcome:
        """Ask the session's running turn (only if it is ``turn_id``, when given) to stop, as
        asked ``by`` someone (the first who did is kept): one UpdateItem. "nothing_running"
        when none runs (``update_id``, the stop's own update, counts only where a stop may be
        kept for a waiting message: LiveTurnsWithBacklog)."""
        stopped, _ = self._stop_running(key, turn_id, by)
        return "stopping" if stopped else "nothing_running"

    def keep_stop_for_message(self, key: SessionKey, message_id: int, *, by: Stopper | None = None) -> None:
        """Keep a stop for the turn of the session's message ``message_id``, which its sender
        (``by``, None: nobody to name) edited into a /stop: should that turn be expected later,
        it is stopped before it begins (see the module). One UpdateItem; a second when the list
        is full, keeping those that have not lapsed (the oldest give way), written only over
        the list it read: another edit kept meanwhile is never overwritten (read again, it is
        kept too). StorageError when the list kept changing under it (Telegram sends the edit
        again, which claims its message anew)."""
        now = self._table.clock()
        stopped: dict[str, Any] = {"message_id": number(message_id), "at": number(now)}
        if by is not None:
            stopped["by"] = stopper_value(by)
        this = {"M": stopped}
        ttl = number(self._table.expires_at(now))
        # Each round lost means another edit was kept: a chat's edits at once are few.
        for _ in range(_KEEP_STOP_ROUNDS):
            try:
                self._table.update(
                    "keep_stop_for_message",
                    session_item_pk(key),
                    LIVE_SK,
                    UpdateExpression=(
                        "SET stopped_messages = list_append(if_not_exists(stopped_messages, :none), :this),"
                        " expires_at = :ttl"
                    ),
                    ConditionExpression=(
                        "attribute_not_exists(stopped_messages) OR size(stopped_messages) < :max"
                    ),
                    ExpressionAttributeValues={
                        ":this": {"L": [this]},
                        ":ttl": ttl,
                        ":none": {"L": []},
                        ":max": number(MAX_STOPPED_MESSAGES),
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return
            except ConditionFailed as full:
                old = (full.item or {}).get("stopped_messages", {"L": []})
            kept = [entry for entry in old["L"] if now - item_float(entry["M"], "at") <= _KEPT_STOP_S]
            try:
                self._table.update(
                    "keep_stop_for_message",
                    session_item_pk(key),
                    LIVE_SK,
                    UpdateExpression="SET stopped_messages = :this, expires_at = :ttl",
                    # Unconditioned, two edits reading the same full list each wrote back their
                    # own message alone: the first one's turn then ran.
                    ConditionExpression="stopped_messages = :old",
                    ExpressionAttributeValues={
                        ":this": {"L": [*kept[-(MAX_STOPPED_MESSAGES - 1) :], this]},
                        ":ttl": ttl,
                        ":old": old,
                    },
                )
                return
            except ConditionFailed:
                continue  # another edit rewrote the list since it was read
        raise StorageError(
            "live_turns.keep_stop_for_message",
            f"the list of messages edited into a /stop kept changing ({_KEEP_STOP_ROUNDS} tries)",
        )

    def _stop_running(
        self, key: SessionKey, turn_id: int | None, by: Stopper | None
    ) -> tuple[bool, dict[str, Any]]:
        """Ask the running turn (``turn_id`` only, when given) to stop, as asked ``by`` someone
        (None: nobody to name); whether one runs, and when none does the live item as found."""
        condition = "attribute_exists(turn_id) AND attribute_not_exists(ended_at)"
        values = {":now": number(self._table.clock())}
        update = "SET stop_requested_at = if_not_exists(stop_requested_at, :now)"
        if turn_id is not None:
            condition += " AND turn_id = :t"
            values[":t"] = number(turn_id)
        if by is not None:
            update += ", stopped_by = if_not_exists(stopped_by, :by)"
            values[":by"] = stopper_value(by)
        try:
            self._table.update(
                "request_stop",
                session_item_pk(key),
                LIVE_SK,
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as exc:
            return False, exc.item or {}
        return True, {}

    def _fresh_values(self, turn_id: int) -> dict[str, Any]:
        """A turn (re)starting now: its start, expiry and empty progress (the runtime that
        runs it counts its publications from 1)."""
        now = self._table.clock()
        return {
            ":now": number(now),
            ":ttl": number(self._table.expires_at(now)),
            ":p": _progress_value(TurnProgress(turn_id=turn_id)),
        }

    def _start(
        self,
        operation: str,
        key: SessionKey,
        turn_id: int,
        condition: str | None = None,
        *,
        message_ids: Collection[int] = (),
    ) -> bool:
        """Make ``turn_id`` (of the messages ``message_ids``, when known) the session's turn, started
        now with no progress and no stop, under ``condition`` (``:t`` is the turn); but a stop
        kept while it waited (``stop_before``) is its own when it was sent before the stop, as
        is one kept for one of its messages. Answers whether it is stopped."""
        extra = {} if condition is None else {"ConditionExpression": condition}
        out = self._table.update(
            operation,
            session_item_pk(key),
            LIVE_SK,
            UpdateExpression=(
                "SET turn_id = :t, started_at = :now, progress = :p, expires_at = :ttl"
                " REMOVE ended_at, stop_requested_at, stopped_by, stop_before, stop_before_at,"
                " stop_before_by, stop_before_kept, stop_before_first"
            ),
            ExpressionAttributeValues={**self._fresh_values(turn_id), ":t": number(turn_id)},
            ReturnValues="ALL_OLD",
            **extra,
        )
        return self._take_kept_stop(operation, key, turn_id, out.get("Attributes", {}), message_ids)

    def _take_kept_stop(
        self,
        operation: str,
        key: SessionKey,
        turn_id: int,
        old: dict[str, Any],
        message_ids: Collection[int] = (),
    ) -> bool:
        """Turn ``turn_id``, just started over ``old`` (the live item as it was, its kept stop
        now removed), takes that stop when its message was sent before it, or the stop kept
        for one of its messages ``message_ids``. Answers whether the turn is stopped."""
        now = self._table.clock()
        edited = _stopped_message(old, message_ids, now)
        if edited is not None:
            by: dict[str, str] | None = edited.get("by")
        elif item_int(old, "stop_before") <= turn_id:
            return False  # none kept, or the stop came before this turn was sent
        elif now - item_float(old, "stop_before_at") > _KEPT_STOP_S:
            return False  # kept for a message that started no turn
        else:
            by = _kept_stopper(old, turn_id, now)
        values = {":now": number(now)}
        update = "SET stop_requested_at = :now"
        if by is not None:  # who sent it, to be named as who stopped the turn
            update += ", stopped_by = :by"
            values[":by"] = by
        try:
            self._update_turn(operation, key, turn_id, update, values)
        except ConditionFailed:  # a later turn took over meanwhile
            return False
        return True

    def _update_turn(
        self,
        operation: str,
        key: SessionKey,
        turn_id: int,
        update: str,
        values: dict[str, Any],
        *,
        condition: str = "turn_id = :t",
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Update the live item while it is still turn ``turn_id``'s (``:t`` in ``condition``)."""
        return self._table.update(
            operation,
            session_item_pk(key),
            LIVE_SK,
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues={**values, ":t": number(turn_id)},
            **kwargs,
        )


def _is_turn(item: dict[str, Any], turn_id: int) -> bool:
    return "turn_id" in item and item_int(item, "turn_id") == turn_id


def stopper_value(stopper: Stopper) -> dict[str, str]:
    """``stopper`` as the live item holds it (a DynamoDB string of JSON)."""
    return {"S": encode_json(stopper).decode()}


def kept_stop_value(update_id: int, at: float, by: Stopper | None) -> dict[str, Any]:
    """A stop kept for a waiting turn as ``stop_before_kept`` lists it: its update id, when
    it was kept, and who sent it (absent: nobody to name)."""
    kept: dict[str, Any] = {"update_id": number(update_id), "at": number(at)}
    if by is not None:
        kept["by"] = stopper_value(by)
    return {"M": kept}


def kept_stops_listed(item: dict[str, Any]) -> int:
    """How many stops the live item ``item`` lists as kept for a waiting turn."""
    return len(item.get("stop_before_kept", {}).get("L", []))


def _stopped_message(old: dict[str, Any], message_ids: Collection[int], now: float) -> dict[str, Any] | None:
    """The first stop the live item ``old`` keeps for one of ``message_ids`` (edited into a
    /stop), None when it keeps none that has not lapsed. Listed in the order kept: of several
    parts edited, the first edit named stopped the turn (the later ones changed nothing)."""
    for entry in old.get("stopped_messages", {}).get("L", []):
        stopped: dict[str, Any] = entry["M"]
        if item_int(stopped, "message_id") in message_ids and now - item_float(stopped, "at") <= _KEPT_STOP_S:
            return stopped
    return None


def _kept_stopper(old: dict[str, Any], turn_id: int, now: float) -> dict[str, str] | None:
    """Who sent the kept stop that stops ``turn_id`` (of the live item ``old``): the first
    listed that came after the turn's message and has not lapsed (one before it was kept for
    a message that started no turn); otherwise the latest one."""
    kept = [entry["M"] for entry in old.get("stop_before_kept", {}).get("L", [])]
    if "stop_before_first" in old:  # the one stop the release before this one listed
        kept.append(old["stop_before_first"]["M"])
    aimed = [
        stop
        for stop in kept
        if item_int(stop, "update_id") > turn_id and now - item_float(stop, "at") <= _KEPT_STOP_S
    ]
    if aimed:
        by: dict[str, str] | None = min(aimed, key=lambda stop: item_int(stop, "update_id")).get("by")
        return by
    return old.get("stop_before_by")


def _progress_value(progress: TurnProgress) -> dict[str, str]:
    # The answer so far may hold lone surrogates (a model's half emoji): written as U+FFFD.
    return {"S": encode_json(progress).decode()}
