"""[I] The approval and revoke buttons' callback data: written within Telegram's 64 bytes and
read strictly (anything with our prefix we could not have written is "invalid")."""

from __future__ import annotations

import pytest
from session_core import APPROVAL_CHOICES, grant_token, new_approval_id
from telegram_core import (
    ApprovalButton,
    RevokeButton,
    approval_button_of,
    approval_callback_data,
    revoke_button_of,
    revoke_callback_data,
)


def test_what_the_consumer_writes_the_producer_reads_back() -> None:
    approval_id = new_approval_id()
    for choice in APPROVAL_CHOICES:
        data = approval_callback_data(approval_id, choice)
        assert len(data.encode()) <= 64
        assert approval_button_of(data) == ApprovalButton(approval_id=approval_id, choice=choice)
    token = grant_token("Bash(git *)")
    assert revoke_button_of(revoke_callback_data(token)) == RevokeButton(token=token)


@pytest.mark.parametrize(
    "data",
    [
        "ap:zz:q",
        "ap:0123456789ab:q",
        "ap:0123456789ab",
        "ap:0123456789AB:o",
        "ap:0123456789ab:o\n",
        "ap:0123456789ab:o:o",
        "ap:" + "a" * 70 + ":o",
        "ap:" + "\u0660" * 10 + "ab:o",  # Arabic-Indic digits are digits to str, not to us
    ],
)
def test_forged_approval_data_is_invalid(data: str) -> None:
    assert approval_button_of(data) == "invalid"


@pytest.mark.parametrize("data", ["rv:", "rv:xyz", "rv:" + "a" * 40, "rv:abcdefabcdef "])
def test_forged_revoke_data_is_invalid(data: str) -> None:
    assert revoke_button_of(data) == "invalid"


@pytest.mark.parametrize("data", [None, "", "stop:1", "other", "rv:abcdefabcdef"])
def test_other_buttons_are_not_approval_buttons(data: str | None) -> None:
    assert approval_button_of(data) is None


def test_ids_a_button_cannot_carry_are_refused_when_writing() -> None:
    with pytest.raises(ValueError):
        approval_callback_data("not:hex", "once")
    with pytest.raises(ValueError):
        revoke_callback_data("x" * 80)
