"""Files of an answer that never reached the user (too large, a folder, one too many, an upload
failed or its answer lost), and whether its text did (a delivery that failed for good, see
sqs-consumer's ``_undelivered``), kept on the session's meta item until the next turn's agent
is told of them: the user is told under the answer, but the agent's outbox is cleared and its
answer may say "here it is", so without this it would insist on having sent them, or believe
the user read an answer they never got.

The channel's consumer writes them after it delivered the answer; the runtime reads them with
the session's record and tells the next turn's agent; recording that turn removes them
(``record_turn``), so the agent is told once. The same chat's next turn cannot start before the
consumer has written them: its messages run one at a time, in order. A group upgraded to a
supergroup while its answer was out keeps them too: written after the move carried the
conversation over, they follow it (``moved_to``) to the chat where the next turn runs, once
(``LIST_TURN_ATTRIBUTE``), and never over a list of that chat's own. A later try of the same
delivery (the dead-letter queue refused the record, or ``dlq redrive``) that delivers it all
forgets the list of its turn (``forget_undelivered_files``): nothing is lost any more (a list
kept before the item named its turn too, read for it).

A stuck attempt of an older delivery may still write its list late, so recording a turn that
told the agent leaves its id (``TOLD_BY_TURN_ATTRIBUTE``) and a list is written only while no
other turn's agent was told since its own turn was recorded: an older turn's list never replaces
a newer one's, nor comes back once a later turn's agent was told or ``/new`` began another
conversation (``NO_TURN_TOLD``). Turn ids are compared for equality only: they are Telegram
update ids, which restart at a random number after a week without updates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from ._dynamo_table import ConditionFailed, DynamoTable, item_str, number
from ._errors import MessageDecodeError
from ._keys import SessionKey
from ._logging import get_logger
from ._models import UnsentFile, UnsentReason, encode
from ._newer_values import NewerValues, Tolerated, decode_tolerating
from ._registry_keys import META, session_item_pk

# The meta item's attribute that holds them (JSON bytes; JSON text for a lost text alone,
# see ``_stored``).
UNDELIVERED_ATTRIBUTE = "undelivered_files"
# The last recorded turn whose agent was told: a list of any other turn is stale (``:turn``:
# the list's turn; a session recorded before this attribute existed has none).
TOLD_BY_TURN_ATTRIBUTE = "undelivered_told_by_turn_id"
# The turn of the list last kept on the item (left when the list is told and removed, and
# carried by a chat's move): a moved chat's list follows where it went once, never again.
LIST_TURN_ATTRIBUTE = "undelivered_list_turn_id"
# What /new leaves as the last turn told: no turn's id (update ids are positive), so a list of
# the old conversation written late is stale too.
NO_TURN_TOLD = -1
_STILL_THE_LAST_TURN = f"(attribute_not_exists({TOLD_BY_TURN_ATTRIBUTE}) OR {TOLD_BY_TURN_ATTRIBUTE} = :turn)"
# Where a moved chat's list follows: not over that chat's own list (newer: the old chat's last
# answer was held back), nor once it lay there (told since, or written again late).
_NOT_FOLLOWED_YET = (
    f"attribute_not_exists({UNDELIVERED_ATTRIBUTE}) AND "
    f"(attribute_not_exists({LIST_TURN_ATTRIBUTE}) OR {LIST_TURN_ATTRIBUTE} <> :turn)"
)
# The list kept is this turn's (``forget_undelivered_files``); or, kept before the item named
# its turn, the one read (``:list``).
_THIS_TURNS_LIST = f"attribute_exists({UNDELIVERED_ATTRIBUTE}) AND {LIST_TURN_ATTRIBUTE} = :turn"
_THE_UNMARKED_LIST_READ = f"attribute_not_exists({LIST_TURN_ATTRIBUTE}) AND {UNDELIVERED_ATTRIBUTE} = :list"
# Named at most, the rest counted: a few lines for the agent, a small attribute.
MAX_NAMED_UNDELIVERED = 10

log = get_logger(__name__)


class UndeliveredFiles(msgspec.Struct, frozen=True, kw_only=True):
    """The files of the answer to ``turn_id`` that did not reach the user, with why, and how
    many more did not (unnamed); ``text_lost``: its text did not reach the user either, or not
    all of it (its delivery failed for good)."""

    turn_id: int
    files: tuple[UnsentFile, ...] = ()
    more: int = 0
    text_lost: bool = False


_decoder = msgspec.json.Decoder(UndeliveredFiles)
# A newer consumer's reason reads as a file that failed (as a result's does).
_NEWER_VALUES = NewerValues(
    "undelivered_files.unknown_value", (Tolerated.field("files.reason", UnsentReason, "failed"),)
)


def undelivered_files(
    turn_id: int, unsent: Sequence[UnsentFile], more: int = 0, *, text_lost: bool = False
) -> UndeliveredFiles | None:
    """What to keep of ``unsent`` (and ``more`` unnamed) for turn ``turn_id``: the first
    ``MAX_NAMED_UNDELIVERED`` named, the rest counted, and whether its text was lost; None
    when the text and every file went."""
    if not unsent and more <= 0 and not text_lost:
        return None
    named = tuple(unsent[:MAX_NAMED_UNDELIVERED])
    return UndeliveredFiles(
        turn_id=turn_id, files=named, more=len(unsent) - len(named) + max(more, 0), text_lost=text_lost
    )


def read_undelivered(item: Mapping[str, Any]) -> UndeliveredFiles | None:
    """The undelivered files a meta item holds, or None (none, or unreadable: logged)."""
    value = item.get(UNDELIVERED_ATTRIBUTE)
    stored = value.get("B", value.get("S")) if isinstance(value, dict) else None
    if stored is None:
        return None
    try:
        return decode_tolerating(stored, _decoder, "UndeliveredFiles", _NEWER_VALUES)
    except MessageDecodeError as exc:  # the agent is told nothing, as before this existed
        log.warning("undelivered_files_unreadable", detail=str(exc)[:200])
        return None


def _stored(undelivered: UndeliveredFiles) -> dict[str, Any]:
    """The attribute value of ``undelivered``: JSON bytes, but JSON text for a lost text with no
    file. A runtime of the release before ``text_lost`` (a rolling deploy) reads only bytes, as
    files not sent: it would tell the agent of files naming none. Text it passes over, saying
    nothing of a loss it cannot say, as it did before."""
    encoded = encode(undelivered)
    if undelivered.files or undelivered.more:
        return {"B": encoded}
    return {"S": encoded.decode()}


class UndeliveredFilesVerbs:
    """The undelivered-files verb of SessionRegistry (see ``_registry.py``)."""

    _table: DynamoTable

    def keep_undelivered_files(self, key: SessionKey, undelivered: UndeliveredFiles) -> None:
        """Keep ``undelivered`` for the session's next turn, in place of any kept before; nothing
        is kept by a session without a record (none ran a turn), nor once another turn's agent
        ran after the list's turn (a newer turn's list, or one told already). A chat
        that moved since and has not started a conversation of its own (see
        ``_chat_moves.py``) keeps them where its conversation went, as its next turn runs
        there."""
        kept = self._keep(key, undelivered)
        if kept is None:
            return
        moved_to = item_str(kept, "moved_to")
        if moved_to is not None and item_str(kept, "sdk_session_id") is None:
            # Not judged by the new chat's turns: its messages queue apart from the old chat's,
            # so one of its turns may be recorded before this list was written, told nothing.
            self._keep(SessionKey.parse(moved_to), undelivered, its_own_turn=False)

    def forget_undelivered_files(self, key: SessionKey, turn_id: int) -> None:
        """Forget the list of turn ``turn_id`` (a later try delivered that answer in full), here
        and where it followed a move; a list of any other turn stays. Its turn stays noted
        (``LIST_TURN_ATTRIBUTE``): a late write of it never follows a move again."""
        forgotten = self._forget(key, turn_id)
        if forgotten is None:
            return
        moved_to = item_str(forgotten, "moved_to")
        if moved_to is not None and item_str(forgotten, "sdk_session_id") is None:
            self._forget(SessionKey.parse(moved_to), turn_id)

    def _forget(self, key: SessionKey, turn_id: int) -> dict[str, Any] | None:
        try:
            return self._remove_list(key, _THIS_TURNS_LIST, {":turn": number(turn_id)})
        except ConditionFailed as failed:
            return self._forget_unmarked(key, turn_id, failed.item)  # else no list, or another turn's

    def _forget_unmarked(
        self, key: SessionKey, turn_id: int, item: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        # A list kept before the item named its turn (``LIST_TURN_ATTRIBUTE``) names it only
        # inside: forgotten when that is ``turn_id`` and the list is still the one read.
        if item is None or LIST_TURN_ATTRIBUTE in item:
            return None
        unmarked = read_undelivered(item)
        if unmarked is None or unmarked.turn_id != turn_id:
            return None
        try:
            return self._remove_list(key, _THE_UNMARKED_LIST_READ, {":list": item[UNDELIVERED_ATTRIBUTE]})
        except ConditionFailed:
            return None  # written again meanwhile

    def _remove_list(self, key: SessionKey, condition: str, values: dict[str, Any]) -> dict[str, Any]:
        """Remove the chat's list if ``condition`` holds: the item as it is after (ConditionFailed,
        carrying the item as it was, when the condition does not hold)."""
        out = self._table.update(
            "forget_undelivered_files",
            session_item_pk(key),
            META,
            UpdateExpression=f"REMOVE {UNDELIVERED_ATTRIBUTE}",
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        attributes: dict[str, Any] = out.get("Attributes", {})
        return attributes

    def _keep(
        self, key: SessionKey, undelivered: UndeliveredFiles, *, its_own_turn: bool = True
    ) -> dict[str, Any] | None:
        stale_check = _STILL_THE_LAST_TURN if its_own_turn else _NOT_FOLLOWED_YET
        condition = f"attribute_exists(pk) AND {stale_check}"
        try:
            out = self._table.update(
                "keep_undelivered_files",
                session_item_pk(key),
                META,
                UpdateExpression=f"SET {UNDELIVERED_ATTRIBUTE} = :files, {LIST_TURN_ATTRIBUTE} = :turn",
                ConditionExpression=condition,
                ExpressionAttributeValues={
                    ":files": _stored(undelivered),
                    ":turn": number(undelivered.turn_id),
                },
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            # no record, or a newer turn's list, or a later turn's agent was told already
            log.info("undelivered_files_not_kept_stale_or_without_session", turn_id=undelivered.turn_id)
            return None
        attributes: dict[str, Any] = out.get("Attributes", {})
        return attributes
