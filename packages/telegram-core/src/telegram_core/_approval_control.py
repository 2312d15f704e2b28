"""[I] The approval and revoke buttons' wire format, written by the consumer (on the message
that shows a tool call waiting for approval, and on /permissions) and read by the producer
(the ``callback_query`` a press sends): one definition for both.

``ap:<approval_id>:<o|a|d>`` answers a pending approval (once, always, deny);
``rv:<grant token>`` revokes an "always" grant. Any client may send any callback_data, so a
press is read strictly: anything with our prefix that we could not have written is "invalid".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from session_core import ApprovalChoice

APPROVAL_CALLBACK_PREFIX = "ap:"
REVOKE_CALLBACK_PREFIX = "rv:"

_CHOICE_LETTERS: dict[ApprovalChoice, str] = {"once": "o", "always": "a", "deny": "d"}
_CHOICE_OF_LETTER: dict[str, ApprovalChoice] = {letter: choice for choice, letter in _CHOICE_LETTERS.items()}
# session_core.new_approval_id writes 12 hex digits and grant_token 12; a little room either way.
_APPROVAL_BUTTON = re.compile(r"ap:(?P<id>[0-9a-f]{8,32}):(?P<choice>[oad])")
_REVOKE_BUTTON = re.compile(r"rv:(?P<token>[0-9a-f]{8,32})")

InvalidButton = Literal["invalid"]


@dataclass(frozen=True)
class ApprovalButton:
    """A press of Allow once / Always in this chat / Deny on approval ``approval_id``."""

    approval_id: str
    choice: ApprovalChoice


@dataclass(frozen=True)
class RevokeButton:
    """A press of "Revoke <rule>" on the /permissions message (``token``: the grant's)."""

    token: str


def approval_callback_data(approval_id: str, choice: ApprovalChoice) -> str:
    """``callback_data`` of the ``choice`` button of approval ``approval_id`` (≤ 64 bytes)."""
    data = f"{APPROVAL_CALLBACK_PREFIX}{approval_id}:{_CHOICE_LETTERS[choice]}"
    if _APPROVAL_BUTTON.fullmatch(data) is None:
        raise ValueError(f"not an approval id a button can carry: {approval_id!r}")
    return data


def revoke_callback_data(token: str) -> str:
    """``callback_data`` of the button that revokes the grant named ``token``."""
    data = f"{REVOKE_CALLBACK_PREFIX}{token}"
    if _REVOKE_BUTTON.fullmatch(data) is None:
        raise ValueError(f"not a grant token a button can carry: {token!r}")
    return data


def approval_button_of(callback_data: str | None) -> ApprovalButton | InvalidButton | None:
    """The approval press ``callback_data`` stands for; None when it is not an approval
    button, "invalid" when it has the prefix but is not one we could have written."""
    if not callback_data or not callback_data.startswith(APPROVAL_CALLBACK_PREFIX):
        return None
    # re's [0-9a-f] is ASCII-only; fullmatch refuses trailing text and newlines.
    match = _APPROVAL_BUTTON.fullmatch(callback_data)
    if match is None:
        return "invalid"
    return ApprovalButton(approval_id=match["id"], choice=_CHOICE_OF_LETTER[match["choice"]])


def revoke_button_of(callback_data: str | None) -> RevokeButton | InvalidButton | None:
    """The revoke press ``callback_data`` stands for (None: not a revoke button, "invalid":
    the prefix without a token we could have written)."""
    if not callback_data or not callback_data.startswith(REVOKE_CALLBACK_PREFIX):
        return None
    match = _REVOKE_BUTTON.fullmatch(callback_data)
    return "invalid" if match is None else RevokeButton(token=match["token"])
