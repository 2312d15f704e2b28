"""[I] Tool calls waiting for the user's approval, and the chat's "always allowed" grants.

A run that reaches a tool call needing approval ends with the call deferred (the Claude Agent
SDK's ``permissionDecision: "defer"``); the runtime keeps it here as the session's one pending
approval. The producer records the user's answer (a button press) with a conditional write, so
a double press or a stale button changes nothing; a later runtime invocation resumes the
session with the decision and marks the approval settled. Nothing waits in memory meanwhile.

Items live in the session's partition: ``approval`` (at most one per chat or topic: a deferred
run stops at its call) and ``grant|<rule>`` (kept across ``/new``, revoked with /permissions).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from typing import Any, Literal

import msgspec

from ._dynamo_table import ConditionFailed, TableStore, item_int, item_key, item_str, number
from ._keys import SessionKey
from ._newer_values import NewerValues, Tolerated, convert_tolerating
from ._registry_keys import session_item_pk
from ._staged_attachment import StagedAttachment

APPROVAL_SK = "approval"
GRANT_PREFIX = "grant|"

# pending → decided (a press, or a new message; a /stop after a press leaves it decided, its
# choice made deny) → used (the allowed call was let through: it never is again) → settled
# (the turn that answered it is recorded).
ApprovalState = Literal["pending", "decided", "used", "settled"]
# once: run this call; always: run it and every later call the grant's rule matches; deny: don't.
ApprovalChoice = Literal["once", "always", "deny"]
APPROVAL_CHOICES: tuple[ApprovalChoice, ...] = ("once", "always", "deny")
# How an approval was answered: a press of its buttons (``decided_by`` names who pressed), a
# new message from the user, which declines it, or a /stop after the press and before the call
# ran, which declines it too. Said apart from ``decided_by``, a free display name that anyone
# can choose, so nothing about a press is read from a name.
ApprovalAnsweredBy = Literal["button", "new_message", "stop"]


class ApprovalRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A deferred tool call as the chat shows it (the runtime's TurnResult carries it)."""

    approval_id: str
    tool_name: str
    summary: str  # what would run: escaped for nothing, shortened, secrets masked
    grant_rule: str  # what "Always in this chat" would allow (e.g. "Bash(git *)", "Write")


class ApprovalOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How a pending approval was answered (the TurnResult of the run that resumed it)."""

    approval_id: str
    choice: ApprovalChoice
    decided_by: str  # who pressed (a display name), or "a new message"
    tool_name: str
    summary: str
    message_id: int | None = None  # the chat message with the buttons, to edit
    answered_by: ApprovalAnsweredBy = "button"  # absent in results of older runtimes


class Approval(msgspec.Struct, frozen=True, kw_only=True):
    """The session's approval item."""

    approval_id: str
    state: ApprovalState
    tool_name: str
    tool_use_id: str
    call_fingerprint: str  # what the call does, hashed: an allowed call made again must match
    summary: str
    grant_rule: str
    sdk_session_id: str
    requested_by: int | None = None
    message_id: int | None = None
    choice: ApprovalChoice | None = None
    reason: str = ""
    decided_by: str = ""
    decided_by_id: int | None = None
    answered_by: ApprovalAnsweredBy = "button"  # absent in items written by older versions
    # The files the user sent with the message whose turn asked: the call may work on them, and
    # the turn that makes it (in another container, maybe) needs them in its workspace again.
    attachments: tuple[StagedAttachment, ...] = ()

    def request(self) -> ApprovalRequest:
        return ApprovalRequest(
            approval_id=self.approval_id,
            tool_name=self.tool_name,
            summary=self.summary,
            grant_rule=self.grant_rule,
        )

    def outcome(self) -> ApprovalOutcome:
        assert self.choice is not None, "only a decided approval has an outcome"
        return ApprovalOutcome(
            approval_id=self.approval_id,
            choice=self.choice,
            decided_by=self.decided_by,
            tool_name=self.tool_name,
            summary=self.summary,
            message_id=self.message_id,
            answered_by=self.answered_by,
        )


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    """A rule the chat allowed "always"; ``token`` names it in a revoke button."""

    rule: str
    granted_by: str
    token: str
    expires_at: int = 0  # epoch seconds; 0: never (not written by this release)


class ApprovalNotPending(Exception):
    """``decide`` found no pending approval with that id: ``current`` is the session's approval
    item as it is now (None when there is none: never asked, expired, or cleared by /new)."""

    def __init__(self, current: Approval | None) -> None:
        super().__init__("approval not pending")
        self.current = current


def new_approval_id() -> str:
    """An unguessable id for a button's callback data (12 hex digits, 48 bits)."""
    return secrets.token_hex(6)


def grant_token(rule: str) -> str:
    """A short stable name of a grant rule for a revoke button's callback data."""
    return hashlib.sha256(rule.encode()).hexdigest()[:12]


class Approvals(TableStore):
    """The pending approval and the grants of each session, in the registry table."""

    _label = "approvals"

    # -- the pending call -------------------------------------------------------------
    def open(self, key: SessionKey, approval: Approval) -> None:
        """Keep ``approval`` (state pending) as the session's approval, replacing an older one."""
        now = self._table.clock()
        self._table.put(
            "open",
            session_item_pk(key),
            APPROVAL_SK,
            {
                **_approval_attributes(approval),
                "created_at": number(int(now)),
                "expires_at": number(self._table.expires_at(now)),
            },
        )

    def current(self, key: SessionKey) -> Approval | None:
        item = self._table.get("current", session_item_pk(key), APPROVAL_SK)
        return None if item is None else _approval_of(item)

    def attach_message(self, key: SessionKey, approval_id: str, message_id: int) -> None:
        """Remember which chat message carries the approval's buttons (to edit it later);
        nothing when the approval is gone or another one."""
        self._update_if("attach_message", key, approval_id, "message_id", number(message_id))

    def decide(
        self,
        key: SessionKey,
        approval_id: str,
        choice: ApprovalChoice,
        *,
        decided_by: str,
        decided_by_id: int | None = None,
        reason: str = "",
        answered_by: ApprovalAnsweredBy = "button",
    ) -> Approval:
        """Record the answer to pending approval ``approval_id``: once only. ApprovalNotPending
        when it was answered already, is another approval, or there is none."""
        values: dict[str, Any] = {
            ":id": {"S": approval_id},
            ":pending": {"S": "pending"},
            ":decided": {"S": "decided"},
            ":choice": {"S": choice},
            ":by": {"S": decided_by},
            ":reason": {"S": reason},
            ":answered_by": {"S": answered_by},
        }
        update = (
            "SET #state = :decided, choice = :choice, decided_by = :by, reason = :reason, "
            "answered_by = :answered_by"
        )
        if decided_by_id is not None:
            update += ", decided_by_id = :by_id"
            values[":by_id"] = number(decided_by_id)
        try:
            out = self._table.update(
                "decide",
                session_item_pk(key),
                APPROVAL_SK,
                UpdateExpression=update,
                ConditionExpression="approval_id = :id AND #state = :pending",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failed:
            raise ApprovalNotPending(None if failed.item is None else _approval_of(failed.item)) from None
        return _approval_of(out["Attributes"])

    def stop_update(self, key: SessionKey, approval_id: str) -> dict[str, Any]:
        """A TransactWriteItems ``Update`` that declines decided approval ``approval_id`` because
        the user sent /stop before its call ran (``answered_by`` "stop"). It holds only while
        the approval is decided and not stopped already: once its turn took the allowance
        (``use``) the call may have run, and a stop then stops that turn instead."""
        return {
            "Update": {
                "TableName": self._table.name,
                "Key": item_key(session_item_pk(key), APPROVAL_SK),
                "UpdateExpression": _STOP_UPDATE,
                "ConditionExpression": _DECIDED_NOT_STOPPED,
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": _stop_values(approval_id),
            }
        }

    def stop(self, key: SessionKey, approval_id: str) -> Approval | None:
        """Decline decided approval ``approval_id`` because the turn that resumes it was stopped
        before it started (``answered_by`` "stop", as ``stop_update`` does, which the producer
        writes when it keeps the stop; this is for a stop that found that turn already marked
        as coming). Answers the approval as now stopped; None when it is not decided (its
        allowance was taken: the call may have run), is another one, or is gone."""
        try:
            out = self._table.update(
                "stop",
                session_item_pk(key),
                APPROVAL_SK,
                UpdateExpression=_STOP_UPDATE,
                ConditionExpression=_DECIDED,
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=_stop_values(approval_id),
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            return None
        return _approval_of(out["Attributes"])

    def use(self, key: SessionKey, approval_id: str) -> bool:
        """Take the allowance of decided approval ``approval_id`` for its one run; False when
        it was taken already (a retried turn must not run the call again), is gone, or a /stop
        declined it meanwhile (``stop``)."""
        try:
            self._table.update(
                "use",
                session_item_pk(key),
                APPROVAL_SK,
                UpdateExpression="SET #state = :used",
                ConditionExpression=_DECIDED_NOT_STOPPED,
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":used": {"S": "used"},
                    ":id": {"S": approval_id},
                    ":decided": {"S": "decided"},
                    ":stop": {"S": "stop"},
                },
            )
        except ConditionFailed:
            return False
        return True

    def settle(self, key: SessionKey, approval_id: str) -> None:
        """The run that resumed the decided approval is recorded: it is done with."""
        self._update_if("settle", key, approval_id, "state", {"S": "settled"})

    def _update_if(
        self, operation: str, key: SessionKey, approval_id: str, attribute: str, value: dict[str, str]
    ) -> None:
        """Set ``attribute`` of approval ``approval_id``; nothing when the session's approval is
        another one, or is gone."""
        with contextlib.suppress(ConditionFailed):
            self._table.update(
                operation,
                session_item_pk(key),
                APPROVAL_SK,
                UpdateExpression="SET #a = :v",
                ConditionExpression="approval_id = :id",
                ExpressionAttributeNames={"#a": attribute},
                ExpressionAttributeValues={":id": {"S": approval_id}, ":v": value},
            )

    def clear(self, key: SessionKey) -> Approval | None:
        """Forget the session's approval (``/new``): its buttons become stale. Answers it."""
        item = self._table.delete("clear", session_item_pk(key), APPROVAL_SK)
        return None if item is None else _approval_of(item)

    # -- "always in this chat" ----------------------------------------------------------
    def grant(self, key: SessionKey, rule: str, *, granted_by: str) -> None:
        now = self._table.clock()
        self._table.put(
            "grant",
            session_item_pk(key),
            _grant_sk(rule),
            {
                "rule": {"S": rule},
                "granted_by": {"S": granted_by},
                "created_at": number(int(now)),
                "expires_at": number(self._table.expires_at(now)),
            },
        )

    def grants(self, key: SessionKey) -> list[Grant]:
        """The chat's grants; one past its expiry is gone (as the chat's history is), however
        long DynamoDB's TTL sweep takes. A turn keeps those it read (``keep_grants``)."""
        items = self._table.query_prefix("grants", session_item_pk(key), GRANT_PREFIX)
        return [
            Grant(
                rule=str(item_str(item, "rule")),
                granted_by=item_str(item, "granted_by") or "",
                token=grant_token(str(item_str(item, "rule"))),
                expires_at=item_int(item, "expires_at"),
            )
            for item in items
            if not self._table.expired(item)
        ]

    def keep_grants(self, key: SessionKey, grants: list[Grant]) -> None:
        """The chat is in use: ``grants`` last as long as its history (``retention_days``
        after its last message), each written at most once a day."""
        for grant in grants:
            self._table.keep_alive(
                "keep_grants", session_item_pk(key), _grant_sk(grant.rule), grant.expires_at
            )

    def revoke(self, key: SessionKey, token: str) -> Grant | None:
        """Drop the grant named ``token``; answers it (None when no grant has that name)."""
        for grant in self.grants(key):
            if grant.token == token:
                self._table.delete("revoke", session_item_pk(key), _grant_sk(grant.rule))
                return grant
        return None


# A DynamoDB sort key holds at most 1,024 bytes; an exact grant holds a whole command.
_MAX_SK_BYTES = 1024


def _grant_sk(rule: str) -> str:
    """The sort key of the grant of ``rule``: the rule itself (as ever), or for one too long
    to be a key (a long pipeline granted exactly) its hash; the item holds the rule either way."""
    sk = GRANT_PREFIX + rule
    if len(sk.encode()) <= _MAX_SK_BYTES:
        return sk
    return f"{GRANT_PREFIX}sha256:{hashlib.sha256(rule.encode()).hexdigest()}"


_STOP_UPDATE = "SET choice = :deny, answered_by = :stop"
_DECIDED = "approval_id = :id AND #state = :decided"
# An item of an older version has no answered_by: never stopped.
_DECIDED_NOT_STOPPED = f"{_DECIDED} AND (attribute_not_exists(answered_by) OR answered_by <> :stop)"


def _stop_values(approval_id: str) -> dict[str, Any]:
    return {
        ":deny": {"S": "deny"},
        ":stop": {"S": "stop"},
        ":id": {"S": approval_id},
        ":decided": {"S": "decided"},
    }


def _approval_attributes(approval: Approval) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for name, value in msgspec.structs.asdict(approval).items():
        if value is None or name == "attachments":
            continue
        attributes["state" if name == "state" else name] = (
            number(value) if isinstance(value, int) and not isinstance(value, bool) else {"S": str(value)}
        )
    if approval.attachments:
        attributes["attachments"] = {"S": msgspec.json.encode(approval.attachments).decode()}
    return attributes


_INT_FIELDS = ("requested_by", "message_id", "decided_by_id")
# An item a newer release answered in a way this one does not know yet reads as answered by its
# buttons: its choice and who decided still say what to do and show. Its state and choice have
# no such fallback (which would run, or drop, a call?): an unknown one is refused.
_APPROVAL_NEWER_VALUES = NewerValues(
    "approval.unknown_value", (Tolerated.field("answered_by", ApprovalAnsweredBy, "button"),)
)


def _approval_of(item: dict[str, Any]) -> Approval:
    fields: dict[str, Any] = {}
    for name in Approval.__struct_fields__:
        if name not in item:
            continue
        if name == "attachments":
            fields[name] = msgspec.json.decode(item_str(item, name) or "[]")
            continue
        fields[name] = item_int(item, name) if name in _INT_FIELDS else item_str(item, name)
    return convert_tolerating(fields, Approval, "Approval", _APPROVAL_NEWER_VALUES)
