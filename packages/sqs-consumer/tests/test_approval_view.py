"""[I] The approval message as the chat shows it: once answered, it says what was decided and
by whom; whatever the call, Telegram accepts it."""

from __future__ import annotations

import httpx
import pytest
from agentbot_testing.telegram_support import as_read
from local_stack import LocalTelegram
from session_core import ApprovalOutcome, ApprovalRequest, utf16_len
from sqs_consumer import TELEGRAM_MESSAGE_LIMIT, html_to_plain
from sqs_consumer._approval_view import approval_keyboard, approval_outcome_html, approval_request_html
from telegram_core import BotApi


def outcome(**fields: object) -> ApprovalOutcome:
    return ApprovalOutcome(
        **{"approval_id": "0123456789ab", "tool_name": "Bash", "summary": "rm -rf build", **fields}  # type: ignore[arg-type]
    )


def test_an_allowed_call_reads_allowed_whatever_the_presser_is_named() -> None:
    allowed = outcome(choice="once", decided_by="a new message")

    shown = html_to_plain(approval_outcome_html(allowed))

    assert shown == "✅ Allowed once by a new message: Bash rm -rf build"


def test_a_call_declined_by_a_new_message_says_so() -> None:
    declined = outcome(choice="deny", decided_by="a new message", answered_by="new_message")
    denied = outcome(choice="deny", decided_by="ada")

    assert html_to_plain(approval_outcome_html(declined)) == (
        "❌ Declined: you sent a new message: Bash rm -rf build"
    )
    assert html_to_plain(approval_outcome_html(denied)) == "❌ Denied by ada: Bash rm -rf build"


WIDE = "\U0001f600"  # an emoji: one character, two UTF-16 units as Telegram counts


@pytest.mark.parametrize(
    "request_",
    [
        ApprovalRequest(
            approval_id="0123456789ab",
            tool_name="Bash",
            summary="env " + WIDE * 1995,
            grant_rule=f"Bash(env {WIDE * 1995})",
        ),
        ApprovalRequest(
            approval_id="0123456789ab",
            tool_name="mcp__" + WIDE * 400,
            summary=WIDE * 3000,
            grant_rule="mcp__" + WIDE * 400,
        ),
    ],
    ids=["bash-command-of-emoji", "mcp-call-of-emoji"],
)
def test_an_approval_of_wide_characters_is_asked_and_answered_in_the_chat(request_: ApprovalRequest) -> None:
    """Telegram counts a message in UTF-16 units: a call of emoji is shown shortened, not
    refused (which left the call waiting with no buttons to press)."""
    answered = ApprovalOutcome(
        approval_id=request_.approval_id,
        choice="always",
        decided_by=WIDE * 100,
        tool_name=request_.tool_name,
        summary=request_.summary,
    )
    with LocalTelegram() as telegram, httpx.Client() as http:
        bot = BotApi(http=http, token=telegram.token, base_url=telegram.base_url, max_attempts=1)

        asking = bot.send_message(
            5, approval_request_html(request_), html=True, reply_markup=approval_keyboard("0123456789ab")
        )
        bot.edit_message_text(5, asking, approval_outcome_html(answered), html=True)

    [shown] = telegram.sent_messages(5)  # asked with its buttons, then edited to the answer
    assert shown["text"].startswith("✅ Always allowed in this chat by 😀") and WIDE * 1000 in shown["text"]


def test_a_call_the_runtime_shows_whole_is_shown_whole() -> None:
    command = "env " + WIDE * 998  # 2000 UTF-16 units: the most the runtime asks about
    request_ = ApprovalRequest(
        approval_id="0123456789ab", tool_name="Bash", summary=command, grant_rule=f"Bash({command})"
    )

    shown = html_to_plain(approval_request_html(request_))

    assert f"\n{command}\n" in shown
    assert utf16_len(shown) <= TELEGRAM_MESSAGE_LIMIT


@pytest.mark.parametrize(
    ("argument", "page"), [("", 1), ("2", 2), (" 3 ", 3), ("0", 1), ("-2", 1), ("two", 1), ("2 more", 2)]
)
def test_permissions_takes_a_page_number_and_anything_else_as_the_first_page(
    argument: str, page: int
) -> None:
    from sqs_consumer._approval_view import permissions_page

    assert permissions_page(argument) == page


def test_a_page_past_the_grants_says_where_they_are() -> None:
    from session_core import Grant
    from sqs_consumer._approval_view import permissions_html, permissions_keyboard

    few = [Grant(rule=f"Bash(t{n} *)", granted_by="@ada", token=f"t{n}") for n in range(3)]
    assert (
        permissions_html(few, page=2)
        == "Only one page: send /permissions to see what is always allowed in this chat."
    )
    assert permissions_keyboard(few, page=2) is None
    many = [Grant(rule=f"Bash(t{n:02d} *)", granted_by="@ada", token=f"t{n}") for n in range(61)]
    assert permissions_html(many, page=3).startswith("Always allowed in this chat (61-61 of 61):")
    assert permissions_html(many, page=4, where="this topic") == (
        "Always allowed in this topic: 61 rules, on 3 pages. Send /permissions 3 for the last one."
    )


# What the runtime offers for `echo '<RLO>txt.exe' <ZWSP><600 spaces>| wc -c` (shell syntax: that
# exact command), and what the chat must show of it.
HIDING_RULE = "Bash(echo '\u202etxt.exe' \u200b" + " " * 600 + "| wc -c)"
HIDING_RULE_SHOWN = "Bash(echo '⟨U+202E⟩txt.exe' ⟨U+200B⟩ ⟨600 spaces⟩ | wc -c)"


def _asking(grant_rule: str, summary: str = "the command") -> str:
    request_ = ApprovalRequest(
        approval_id="0123456789ab", tool_name="Bash", summary=summary, grant_rule=grant_rule
    )
    return html_to_plain(approval_request_html(request_))


def _would_allow_line(shown: str) -> str:
    return shown.rsplit("\n", 1)[-1]


def test_always_shows_a_rule_with_hidden_characters_as_the_command_is_shown() -> None:
    """A right-to-left override, a zero-width space and 600 spaces in what "Always" would allow
    are shown as code points and a count, as in the command above it: nothing reordered,
    hidden or pushed out of sight."""
    shown = _asking(HIDING_RULE)

    assert _would_allow_line(shown) == f"“Always in this chat” would allow: {HIDING_RULE_SHOWN}"
    assert "\u202e" not in shown and "\u200b" not in shown and " " * 3 not in shown


def test_an_ordinary_rule_reads_as_before() -> None:
    assert _would_allow_line(_asking("Bash(git *)")) == "“Always in this chat” would allow: Bash(git *)"


def test_permissions_shows_a_rule_with_hidden_characters_as_the_command_is_shown() -> None:
    from session_core import Grant, grant_token
    from sqs_consumer._approval_view import permissions_html, permissions_keyboard

    grants = [Grant(rule=r, granted_by="@ada", token=grant_token(r)) for r in (HIDING_RULE, "Bash(git *)")]

    assert as_read(html_to_plain(permissions_html(grants))) == (
        f"Always allowed in this chat:\n• {HIDING_RULE_SHOWN} (by @ada)\n• Bash(git *) (by @ada)"
    )
    labels = [row[0]["text"] for row in permissions_keyboard(grants)["inline_keyboard"]]  # type: ignore[index]
    assert labels[1] == "Revoke Bash(git *)"
    assert "\u202e" not in labels[0] and "\u200b" not in labels[0] and " " * 3 not in labels[0]
    assert labels[0].startswith("Revoke Bash(echo '⟨U+202E⟩txt.exe' ⟨U+200B⟩")


def test_a_rule_too_long_to_show_whole_is_never_cut_where_it_could_read_as_another() -> None:
    """The exact command of a long command is the command shown whole just above; in
    /permissions, its start and how much is left out (a bare "…" could read as a wildcard)."""
    from session_core import Grant
    from sqs_consumer._approval_view import permissions_html

    command = "python3 -c 'print(1)' " + "xy " * 140  # short words: nothing taken for a secret
    rule = f"Bash({command})"

    assert _would_allow_line(_asking(rule, command)) == (
        "“Always in this chat” would allow: Bash(the exact command above)"
    )
    listed = as_read(html_to_plain(permissions_html([Grant(rule=rule, granted_by="@ada", token="t1")])))
    assert "Bash(python3 -c 'print(1)' xy xy" in listed
    assert "… (" in listed and " more characters not shown) (by @ada)" in listed
    assert utf16_len(listed) < 400


def test_a_secret_in_what_always_would_allow_is_masked_as_in_the_command() -> None:
    """A command with shell syntax is granted exactly, secrets and all; what the chat shows of
    that rule masks them as the command above it does (they were shown whole, to a group too)."""
    from session_core import Grant, grant_token
    from sqs_consumer._approval_view import permissions_html, permissions_keyboard

    secret = "sk-live-0123456789abcdefghij"
    rule = f"Bash(curl -H 'Authorization: Bearer {secret}' https://api.example.com/x | jq .)"
    grants = [Grant(rule=rule, granted_by="@ada", token=grant_token(rule))]
    shown = [
        _would_allow_line(_asking(rule)),
        html_to_plain(permissions_html(grants)),
        *(row[0]["text"] for row in permissions_keyboard(grants)["inline_keyboard"]),  # type: ignore[index]
    ]
    for text in shown:
        assert secret not in text and "0123456789abcdefghij" not in text, text
        assert "| jq .)" in text or text.startswith("Revoke"), text  # the syntax stays in sight
