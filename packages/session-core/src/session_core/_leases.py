"""Leases: the right to write one session for a while (expiring, so a crashed container never
blocks a chat), taken, renewed and given back with conditional writes on the session's meta item."""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec

from ._dynamo_table import ConditionFailed, DynamoTable, item_float, item_int, item_str, number
from ._errors import LeaseHeldError, LeaseLostError
from ._keys import SessionKey
from ._logging import get_logger
from ._registry_keys import META, session_item_pk

_log = get_logger("session_core._registry")
# When the meta item was first leased by a release that records the CLI's compactions
# (``summarised_at``): a chat's item made by it has this at its ``created_at``, an older one
# later. /status tells by it whether "never summarised" is known or only since then.
SUMMARIES_RECORDED_SINCE = "summaries_recorded_since"


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    """The right to run one turn of a session until ``expires_at`` (epoch seconds).

    ``head_version`` is the session's head when the lease was acquired; completing
    the turn advances it by one, and only from that value.
    """

    session_key: SessionKey
    owner: str
    expires_at: float
    head_version: int


class LeaseVerbs:
    """The lease verbs of SessionRegistry (see ``_registry.py``)."""

    _table: DynamoTable

    def acquire_lease(self, key: SessionKey, *, owner: str, duration_s: float) -> Lease:
        """Take the session's lease for ``duration_s`` seconds, creating the session record.

        Succeeds when no lease is held, the held one has expired (a crashed container
        never blocks a chat), or ``owner`` already holds it. Raises LeaseHeldError when
        another owner's lease is still live.
        """
        _check_owner(owner)
        _check_duration(duration_s)
        now = self._table.clock()
        expires_at = now + duration_s
        try:
            out = self._table.update(
                "acquire_lease",
                session_item_pk(key),
                META,
                UpdateExpression=(
                    "SET lease_owner = :owner, lease_expires_at = :until, expires_at = :ttl,"
                    " session_key = :key, head_version = if_not_exists(head_version, :zero),"
                    " turns = if_not_exists(turns, :zero), cost_usd = if_not_exists(cost_usd, :zero),"
                    " created_at = if_not_exists(created_at, :now),"
                    " updated_at = if_not_exists(updated_at, :now),"
                    f" {SUMMARIES_RECORDED_SINCE} = if_not_exists({SUMMARIES_RECORDED_SINCE}, :now)"
                ),
                ConditionExpression=(
                    "attribute_not_exists(lease_owner) OR lease_expires_at <= :now OR lease_owner = :owner"
                ),
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":until": number(expires_at),
                    ":ttl": number(self._table.expires_at(now)),
                    ":key": {"S": key.canonical},
                    ":zero": number(0),
                    ":now": number(now),
                },
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as exc:
            held = exc.item or self._table.get("acquire_lease", session_item_pk(key), META)
            holder = item_str(held, "lease_owner") if held else "?"
            until = item_float(held, "lease_expires_at") if held else 0.0
            raise LeaseHeldError(key.canonical, holder or "?", until) from exc.__cause__
        before = out.get("Attributes", {})
        previous_owner = item_str(before, "lease_owner")
        if previous_owner not in (None, owner):
            # Its holder crashed or overran; operators want to see that.
            _log.warning(
                "expired_lease_taken_over",
                session_key=key.canonical,
                previous_owner=previous_owner,
                expired_at=item_float(before, "lease_expires_at"),
                owner=owner,
            )
        return Lease(
            session_key=key,
            owner=owner,
            expires_at=expires_at,
            head_version=item_int(before, "head_version"),  # the update never changes an existing head
        )

    def renew_lease(self, lease: Lease, *, duration_s: float) -> Lease:
        """Extend a lease we hold to now + ``duration_s``; LeaseLostError if it is no longer ours."""
        _check_duration(duration_s)
        now = self._table.clock()
        expires_at = now + duration_s
        values = {":until": number(expires_at), ":ttl": number(self._table.expires_at(now))}
        try:
            self._update_own_lease(
                "renew_lease", lease, "SET lease_expires_at = :until, expires_at = :ttl", values
            )
        except ConditionFailed as exc:
            raise LeaseLostError(lease.session_key.canonical, lease.owner) from exc.__cause__
        return msgspec.structs.replace(lease, expires_at=expires_at)

    def release_lease(self, lease: Lease) -> None:
        """Give the lease back so the next turn need not wait; a lease already lost is fine."""
        with contextlib.suppress(ConditionFailed):
            self._update_own_lease("release_lease", lease, "REMOVE lease_owner, lease_expires_at", {})

    def _update_own_lease(self, operation: str, lease: Lease, update: str, values: dict[str, Any]) -> None:
        """Update the session's meta item while ``lease`` is still its holder's (ConditionFailed if not)."""
        self._table.update(
            operation,
            session_item_pk(lease.session_key),
            META,
            UpdateExpression=update,
            ConditionExpression="lease_owner = :owner",
            ExpressionAttributeValues={**values, ":owner": {"S": lease.owner}},
        )


def _check_owner(owner: str) -> None:
    if not owner or len(owner) > 256:
        raise ValueError("lease owner must be a non-empty string of at most 256 characters")


def _check_duration(duration_s: float) -> None:
    if not duration_s > 0:
        raise ValueError(f"lease duration_s must be > 0, got {duration_s!r}")
