"""[I] What "Always in this chat" would allow, as the chat shows it: the rule the runtime offers
for a command holding hidden characters reads as the command itself does (code points, counts),
in the asking message, in /permissions, on its Revoke button and in the revoke's answer."""

from __future__ import annotations

import copy
import json

from agent_runtime._approval_gate import describe_call
from agentbot_testing.telegram_support import as_read, update, webhook_event
from session_core import ApprovalRequest, SessionKey
from sqs_consumer import html_to_plain
from sqs_consumer._approval_view import approval_request_html

CHAT = 501
KEY = SessionKey(tenant="default", chat_id=CHAT)
# A right-to-left override, a zero-width space and 600 spaces; the pipe makes it an exact grant.
HIDING = "echo '\u202etxt.exe' \u200b" + " " * 600 + "| wc -c"
HIDING_SHOWN = "echo '⟨U+202E⟩txt.exe' ⟨U+200B⟩ ⟨600 spaces⟩ | wc -c"
RAW = ("\u202e", "\u200b", " " * 3)


def test_the_rule_always_would_allow_reads_as_the_command_above_it() -> None:
    view = describe_call("Bash", {"command": HIDING})
    request_ = ApprovalRequest(
        approval_id="0123456789ab", tool_name="Bash", summary=view.summary, grant_rule=view.grant_rule
    )

    shown = html_to_plain(approval_request_html(request_))

    assert f"\n{HIDING_SHOWN}\n" in shown  # the command, as before
    assert shown.endswith(f"“Always in this chat” would allow: Bash({HIDING_SHOWN})")
    assert not any(raw in shown for raw in RAW)


def test_permissions_shows_the_grant_as_the_command_was_shown_and_revokes_it_as_granted(stack) -> None:
    rule = describe_call("Bash", {"command": HIDING}).grant_rule
    stack.approvals().grant(KEY, rule, granted_by="@ada")
    stack.approvals().grant(KEY, "Bash(git *)", granted_by="@ada")

    assert stack.post(update(370, text="/permissions")) == 200
    stack.drain(stack.consumer())

    listing = copy.deepcopy(stack.replies(CHAT)[-1])
    assert as_read(listing["text"]) == (
        f"Always allowed in this chat:\n• Bash({HIDING_SHOWN}) (by @ada)\n• Bash(git *) (by @ada)"
    )
    labels = [b["text"] for row in listing["reply_markup"]["inline_keyboard"] for b in row]
    assert labels[1] == "Revoke Bash(git *)"
    assert not any(raw in label for label in labels for raw in RAW)
    press = stack.telegram.press_button(listing, text=labels[0])
    response = stack.producer.handle_event(webhook_event(press))
    answer = json.loads(response["body"])["text"]
    assert answer == f"Revoked: Bash({HIDING_SHOWN}). It will ask again."
    assert [grant.rule for grant in stack.approvals().grants(KEY)] == ["Bash(git *)"]  # matched as granted
