"""The running turn of a session as others see it while it runs: its progress (written by the
runtime, read by the consumer) and a stop request (written by the producer, read by the
runtime). One item per session in the registry table, apart from the turn-written meta item:

==============================  ==========  ===================================================
pk                              sk          holds
==============================  ==========  ===================================================
``session|<canonical key>``     ``live``    turn_id, started_at, ended_at, progress (JSON),
                                            stop_requested_at
==============================  ==========  ===================================================

Why a table item and not a stream: the runtime is invoked synchronously and Lambda response
streaming is not offered to a Python container run by awslambdaric, and a stop must reach a
turn outside its FIFO group (ARCHITECTURE.md, "Control signals do not queue behind a turn").

A stop targets the turn running (or about to run) when it is written: ``request_stop`` only
lands on a live item that has not ended; the consumer ``expect``s its turn before invoking the
runtime (so a stop during the runtime's start is kept), and ``begin`` keeps a stop only when
the item is that same turn's: a stop for a turn that already ended never stops the next one.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import msgspec

from ._dynamo_table import ConditionFailed, TableStore, item_int, number
from ._json import encode_json
from ._keys import SessionKey
from ._registry_keys import session_item_pk

_LIVE = "live"
# Enough for a draft (Telegram shows at most 4096 characters) and a progress line.
MAX_PROGRESS_TEXT = 4000

StopOutcome = Literal["stopping", "nothing_running"]


class ToolActivity(msgspec.Struct, frozen=True, kw_only=True):
    """What the agent is doing now: a tool (or subagent) and its main argument, shortened and
    with secrets masked by the runtime; the channel words and escapes it."""

    kind: Literal["tool", "subagent"]
    name: str
    argument: str = ""


class TurnProgress(msgspec.Struct, frozen=True, kw_only=True):
    """The running turn's state as last published (at most about once a second)."""

    turn_id: int
    text: str = ""  # the answer so far (the last MAX_PROGRESS_TEXT characters)
    activity: ToolActivity | None = None  # None: the model is writing or thinking
    seq: int = 0  # grows with each publication; a reader renders only what is new
    stopped: bool = False


_progress_decoder = msgspec.json.Decoder(TurnProgress)


class LiveTurns(TableStore):
    """The ``live`` item of each session: begin/publish/end (runtime), progress (consumer),
    request_stop (producer), stop_requested (runtime). ``dynamodb`` is a boto3 client;
    ``clock`` returns epoch seconds; ``retention_days`` as the registry's."""

    _label = "live_turns"

    def expect(self, key: SessionKey, turn_id: int) -> bool:
        """Mark ``turn_id`` as the session's coming turn (the consumer, before it invokes the
        runtime), so a stop pressed while the runtime starts is not lost; done only when no
        other turn is running (answers whether it was). The same turn expected again (a retry:
        its runtime crashed or its invoke failed) starts over with no progress, and the stop
        the user asked for is kept."""
        try:
            self._start(
                "expect",
                key,
                turn_id,
                ConditionExpression=(
                    "attribute_not_exists(turn_id) OR (attribute_exists(ended_at) AND turn_id <> :t)"
                ),
                ExpressionAttributeValues={":t": number(turn_id)},
            )
            return True
        except ConditionFailed:
            pass
        try:
            self._update_turn(
                "expect",
                key,
                turn_id,
                "SET started_at = :now, expires_at = :ttl, progress = :p REMOVE ended_at",
                self._fresh_values(turn_id),
            )
        except ConditionFailed:  # another turn is running
            return False
        return True

    def begin(self, key: SessionKey, turn_id: int) -> None:
        """Mark ``turn_id`` as the session's running turn: a stop requested for it since the
        consumer expected it is kept, any earlier turn's item (and stop) is replaced."""
        try:
            self._update_turn(
                "begin",
                key,
                turn_id,
                "SET started_at = :now, expires_at = :ttl, progress = :p",
                self._fresh_values(turn_id),
                condition="turn_id = :t AND attribute_not_exists(ended_at)",
            )
        except ConditionFailed:
            self._start("begin", key, turn_id)

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

    def stop_requested(self, key: SessionKey, turn_id: int) -> bool:
        """Whether a stop was requested for the running turn ``turn_id``."""
        item = self._table.get("stop_requested", session_item_pk(key), _LIVE)
        return bool(item and _is_turn(item, turn_id) and "stop_requested_at" in item)

    def progress(self, key: SessionKey, turn_id: int) -> TurnProgress | None:
        """The last published progress of turn ``turn_id`` (None before it began or after
        another turn replaced it)."""
        item = self._table.get("progress", session_item_pk(key), _LIVE)
        if not item or not _is_turn(item, turn_id) or "progress" not in item:
            return None
        try:
            return _progress_decoder.decode(item["progress"]["S"])
        except msgspec.DecodeError:
            return None

    def request_stop(self, key: SessionKey, *, turn_id: int | None = None) -> StopOutcome:
        """Ask the session's running turn (only if it is ``turn_id``, when given) to stop;
        "nothing_running" when no such turn runs now."""
        condition = "attribute_exists(turn_id) AND attribute_not_exists(ended_at)"
        values = {":now": number(self._table.clock())}
        if turn_id is not None:
            condition += " AND turn_id = :t"
            values[":t"] = number(turn_id)
        try:
            self._table.update(
                "request_stop",
                session_item_pk(key),
                _LIVE,
                UpdateExpression="SET stop_requested_at = if_not_exists(stop_requested_at, :now)",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ConditionFailed:
            return "nothing_running"
        return "stopping"

    def _fresh_values(self, turn_id: int) -> dict[str, Any]:
        """A turn (re)starting now: its start, expiry and empty progress (the runtime that
        runs it counts its publications from 1)."""
        now = self._table.clock()
        return {
            ":now": number(now),
            ":ttl": number(self._table.expires_at(now)),
            ":p": _progress_value(TurnProgress(turn_id=turn_id)),
        }

    def _start(self, operation: str, key: SessionKey, turn_id: int, **condition: Any) -> None:
        """Write a fresh live item for ``turn_id`` (no progress, no stop), under ``condition``."""
        now = self._table.clock()
        attributes = {
            "turn_id": number(turn_id),
            "started_at": number(now),
            "progress": _progress_value(TurnProgress(turn_id=turn_id)),
            "expires_at": number(self._table.expires_at(now)),
        }
        self._table.put(operation, session_item_pk(key), _LIVE, attributes, **condition)

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
            _LIVE,
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues={**values, ":t": number(turn_id)},
            **kwargs,
        )


def _is_turn(item: dict[str, Any], turn_id: int) -> bool:
    return "turn_id" in item and item_int(item, "turn_id") == turn_id


def _progress_value(progress: TurnProgress) -> dict[str, str]:
    # The answer so far may hold lone surrogates (a model's half emoji): written as U+FFFD.
    return {"S": encode_json(progress).decode()}
