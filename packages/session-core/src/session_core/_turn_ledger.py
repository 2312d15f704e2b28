"""Exactly-once turns, in one place: in progress (the lease) → run → save (the result recorded
together with the head advance); a turn already saved is replayed, never run again.

Modelled on an idempotency handler: the caller asks ``start`` whether to run, runs, then
``save``s; every branch that may find another run's answer (a lease held by someone else, a
lease lost or a head moved while saving) looks the turn up and returns that answer instead.
The runtime and the test doubles that stand in for it use this class, so the rules live here.
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

from ._errors import LeaseHeldError, LeaseLostError, StaleHeadError
from ._keys import SessionKey
from ._leases import Lease
from ._models import TurnResult


class TurnRecords(Protocol):
    """The registry's verbs the ledger needs (``SessionRegistry`` has them)."""

    def acquire_lease(self, key: SessionKey, *, owner: str, duration_s: float) -> Lease:
        """Take the session's lease; LeaseHeldError while another owner's lease is live."""
        ...

    def release_lease(self, lease: Lease) -> None:
        """Give the lease back; a lease already lost is fine."""
        ...

    def get_turn_result(self, key: SessionKey, turn_id: int) -> TurnResult | None:
        """The result saved for ``turn_id`` (``replayed=True``), or None."""
        ...

    def record_turn(self, lease: Lease, *, result: TurnResult, new_conversation: bool = False) -> TurnResult:
        """Save ``result`` and advance the head atomically; answer the result that counts
        (``new_conversation``: the conversation's figures start again from it)."""
        ...


class TurnStart(msgspec.Struct, frozen=True, kw_only=True):
    """What ``TurnLedger.start`` found: a saved answer to replay, or the lease to run under."""

    replay: TurnResult | None = None
    lease: Lease | None = None


SaveOutcome = Literal["saved", "saved_by_another_run", "not_saved"]


class TurnSaved(msgspec.Struct, frozen=True, kw_only=True):
    """What ``TurnLedger.save`` did. ``result`` is the answer that counts for the turn (ours,
    or another run's, ``replayed=True``); None when nothing could be saved (``not_saved``:
    the lease was lost or the head moved, and no run saved this turn)."""

    outcome: SaveOutcome
    result: TurnResult | None


class TurnLedger:
    """The exactly-once rules over a registry of leases and turn records.

    ``owner`` names this process in the lease (one per container). Methods block (boto3);
    async callers run them in a thread.
    """

    def __init__(self, records: TurnRecords, *, owner: str) -> None:
        self._records = records
        self.owner = owner

    def start(self, key: SessionKey, turn_id: int, *, lease_s: float) -> TurnStart:
        """Take the session's lease for ``turn_id``, or answer its saved result.

        The turn record is read once: after the lease is ours (a racing run that saved the
        turn before we got the lease is seen then), or when another live lease refuses us
        (a saved turn replays even while the chat's next turn runs). Raises LeaseHeldError
        when another run holds the lease and this turn has no saved answer (busy).
        """
        try:
            lease = self._records.acquire_lease(key, owner=self.owner, duration_s=lease_s)
        except LeaseHeldError:
            saved = self._records.get_turn_result(key, turn_id)
            if saved is None:
                raise
            return TurnStart(replay=_replayed(saved))
        try:
            saved = self._records.get_turn_result(key, turn_id)
        except BaseException:
            self.release(lease)
            raise
        if saved is not None:
            self.release(lease)
            return TurnStart(replay=_replayed(saved))
        return TurnStart(lease=lease)

    def save(self, lease: Lease, result: TurnResult, *, new_conversation: bool = False) -> TurnSaved:
        """Save ``result`` with the head advance, exactly once (``new_conversation``: the run
        began a new conversation, see ``record_turn``).

        If another run saved this turn first (before or after losing us the lease), its
        answer counts. StorageError propagates: the caller decides whether to try again.
        """
        try:
            counted = self._records.record_turn(lease, result=result, new_conversation=new_conversation)
        except (StaleHeadError, LeaseLostError):
            saved = self.saved(lease.session_key, result.turn_id)
            if saved is None:
                return TurnSaved(outcome="not_saved", result=None)
            return TurnSaved(outcome="saved_by_another_run", result=saved)
        if counted is not result:
            return TurnSaved(outcome="saved_by_another_run", result=_replayed(counted))
        return TurnSaved(outcome="saved", result=result)

    def saved(self, key: SessionKey, turn_id: int) -> TurnResult | None:
        """The answer saved for ``turn_id`` (``replayed=True``), or None."""
        saved = self._records.get_turn_result(key, turn_id)
        return None if saved is None else _replayed(saved)

    def release(self, lease: Lease) -> None:
        """Give the lease back (the turn ended, saved or not)."""
        self._records.release_lease(lease)


def _replayed(result: TurnResult) -> TurnResult:
    return msgspec.structs.replace(result, replayed=True)
