"""[I] Tool approval from the chat, end to end: producer → moto FIFO → consumer → runtime stub
(which opens and resumes approvals in the store as the real runtime does) → local Bot API.
What is asserted is what a user sees: the buttons message, the press's answer, the edited
message, and how often the runtime was asked to resume."""

from __future__ import annotations

import copy
import json
import threading
import time
import unicodedata
from typing import Any

import pytest
from agentbot_testing.telegram_support import (
    BOT_USERNAME,
    WEBHOOK_SECRET,
    as_read,
    mentions,
    queue_inbound,
    update,
    webhook_event,
)
from botocore.exceptions import ClientError
from local_stack import TelegramFault, sqs_lambda_event
from session_core import SessionKey, grant_token, utf16_len
from structlog.testing import capture_logs
from telegram_core import InboundMessage, stop_callback_data
from telegram_producer import Producer, ProducerConfig
from telegram_producer import handler as producer_handler

CHAT = 501
GROUP = -100300
KEY = SessionKey(tenant="default", chat_id=CHAT)
GROUP_KEY = SessionKey(tenant="default", chat_id=GROUP)


def post(stack: Any, body: dict[str, Any], producer: Any = None) -> dict[str, Any]:
    """Deliver a webhook call; the JSON body of its 200 answer."""
    response = (producer or stack.producer).handle_event(webhook_event(body))
    assert response["statusCode"] == 200, response
    return dict(json.loads(response["body"]))


def buttons_of(message: dict[str, Any]) -> list[tuple[str, str]]:
    markup = message.get("reply_markup") or {}
    return [(b["text"], b["callback_data"]) for row in markup.get("inline_keyboard", []) for b in row]


def asking_message(stack: Any, chat_id: int = CHAT) -> dict[str, Any]:
    """The bot's last message with approval buttons in the chat, as the user saw it then (the
    server edits its own copy in place)."""
    asking = [m for m in stack.replies(chat_id) if any(d.startswith("ap:") for _, d in buttons_of(m))]
    assert asking, [m["text"] for m in stack.replies(chat_id)]
    return copy.deepcopy(asking[-1])


def message_now(stack: Any, message_id: int, chat_id: int = CHAT) -> dict[str, Any]:
    [found] = [m for m in stack.replies(chat_id) if m["message_id"] == message_id]
    return found


def resumes(stack: Any) -> list[dict[str, Any]]:
    return [run for run in stack.runs() if run["resume_approval"]]


def ask(stack: Any, update_id: int, what: str = "ls -la <src>", **fields: Any) -> dict[str, Any]:
    assert stack.post(update(update_id, text=f"ask:Bash {what}", **fields)) == 200
    stack.drain(stack.consumer())
    return asking_message(stack, fields.get("chat_id", CHAT))


def test_a_question_telegram_showed_after_the_consumer_gave_it_up_leaves_one_question_to_press(
    stack,
) -> None:
    """Telegram held the question's send past the time for delivery, then showed it all the
    same, and the record's retry asked again. Buttons under that late copy would never be
    edited to the answer (its message_id never came back): only the question the answer edits
    carries them, and once answered, no message in the chat still asks."""
    ends = [time.monotonic() + 600]
    held = threading.Event()

    def holds_the_question(method: str, params: dict[str, Any]) -> None:
        text = str(params.get("text", ""))
        if method == "sendMessage" and text == "I need to use Bash for this.":
            ends[0] = time.monotonic() + 2.0 + 5.0 + 1.5  # the end reserve, a part's 5 s, 1.5 s
        elif method == "sendMessage" and "May I run this?" in text and not held.is_set():
            time.sleep(10)  # past the time for delivery: the consumer gives the send up
            held.set()

    stack.telegram.on_call = holds_the_question
    assert stack.post(update(330, text="ask:Bash ls -la")) == 200
    first_try = stack.hand_over(
        stack.consumer(delivery_reserve_s=6.0),  # a third of it kept after the sends: 2 s
        stack.receive(),
        remaining_time_ms=lambda: int((ends[0] - time.monotonic()) * 1000),
    )
    assert first_try["batchItemFailures"]  # retried for the question
    assert held.wait(30)  # Telegram showed it all the same
    stack.telegram.on_call = None
    stack.drain(stack.consumer())
    questions = [m for m in stack.replies(CHAT) if "May I run this?" in m["text"]]
    assert len(questions) == 2  # the late one, and the retry's
    asking = [copy.deepcopy(m) for m in questions if buttons_of(m)]
    assert len(asking) == 1, "the late copy's buttons would answer nothing the chat then shows"
    [live] = asking
    approval = stack.approvals().current(KEY)
    assert approval is not None and approval.message_id == live["message_id"]

    post(stack, stack.telegram.press_button(live, text="Allow once", username="ada"))
    stack.drain(stack.consumer())
    assert as_read(message_now(stack, live["message_id"])["text"]).startswith("✅ Allowed once by @ada")
    assert not [m["message_id"] for m in stack.replies(CHAT) if buttons_of(m)], "a question still asks"


def test_a_question_whose_buttons_telegram_refused_for_now_gets_them_from_the_retry(stack) -> None:
    """The buttons go under the question by an edit after it is recorded; a Telegram failing
    that edit leaves a question nobody can answer unless the record's retry puts them there
    (the question itself, recorded, is not sent again)."""
    stack.telegram.inject("editMessageReplyMarkup", TelegramFault.server_error(), times=5)
    assert stack.post(update(331, text="ask:Bash ls -la")) == 200
    stack.drain(stack.consumer())
    [question] = [m for m in stack.replies(CHAT) if "May I run this?" in m["text"]]
    assert buttons_of(question)
    approval = stack.approvals().current(KEY)
    assert approval is not None and approval.message_id == question["message_id"]


def test_a_call_needing_approval_shows_it_with_three_buttons_and_a_press_resumes_it(stack) -> None:
    asking = ask(stack, 300)
    approval = stack.approvals().current(KEY)
    assert approval is not None and approval.state == "pending"
    texts = [m["text"] for m in stack.replies(CHAT)]
    assert texts[0] == "I need to use Bash for this."  # the turn's text first, then the question
    assert "Bash" in asking["text"] and "ls -la <src>" in asking["text"]  # escaped, shown as is
    assert "Bash(*)" in asking["text"]  # what "always" would allow
    aid = approval.approval_id
    assert buttons_of(asking) == [
        ("Allow once", f"ap:{aid}:o"),
        ("Always in this chat", f"ap:{aid}:a"),
        ("Deny", f"ap:{aid}:d"),
    ]
    assert all(len(data.encode()) <= 64 for _, data in buttons_of(asking))
    assert approval.message_id == asking["message_id"]  # attached, so it can be edited later
    assert approval.requested_by == CHAT and stack.runs()[0]["user_id"] == CHAT

    answer = post(stack, stack.telegram.press_button(asking, text="Allow once", username="ada"))
    assert answer["method"] == "answerCallbackQuery" and answer["text"] == "Allowed once."
    decided = stack.approvals().current(KEY)
    assert decided is not None and decided.state == "decided" and decided.decided_by == "@ada"
    stack.drain(stack.consumer())

    [resume] = resumes(stack)
    assert resume["resume_approval"] == aid and resume["prompt"] == "" and resume["user_id"] == CHAT
    assert stack.replies(CHAT)[-1]["text"] == "Ran Bash: ls -la <src>"
    edited = message_now(stack, asking["message_id"])
    assert as_read(edited["text"]) == "✅ Allowed once by @ada: Bash ls -la <src>"
    assert not edited.get("reply_markup")  # the buttons are gone
    # Pressed again once it ran (buttons a failed edit left, a stale copy of the chat): told
    # what was decided, as a press before it ran is; "no longer waiting" left the user to guess.
    late = post(stack, stack.telegram.press_button(asking, text="Deny", username="ada"))
    assert late["text"] == "Already answered: Allowed once by @ada."
    stack.drain(stack.consumer())
    assert len(resumes(stack)) == 1


def test_a_toast_longer_than_telegram_shows_is_cut_between_whole_characters(stack) -> None:
    """A name can make a toast long: the ligature U+FDFA reads as the 18 letters of its words. The
    toast stays within Telegram's 200 characters as Telegram counts them (an emoji is two),
    so it is shown at all, and never ends in half an emoji (a family cut to a man alone)."""
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    asking = ask(stack, 312)
    name = "\ufdfa" * 9 + family * 3
    first = post(stack, stack.telegram.press_button(asking, text="Deny", first_name=name))
    again = post(stack, stack.telegram.press_button(asking, text="Deny", first_name=name))
    assert first["text"] == "Denied."
    shown_name = unicodedata.normalize("NFKC", "\ufdfa") * 9 + family
    assert again["text"] == f"Already answered: Denied by {shown_name}…"
    assert utf16_len(again["text"]) <= 200


def test_a_double_press_is_answered_once_and_resumes_once(stack) -> None:
    asking = ask(stack, 310)
    first = post(stack, stack.telegram.press_button(asking, text="Deny", username="ada"))
    again = post(stack, stack.telegram.press_button(asking, text="Deny", username="ada"))
    other = post(stack, stack.telegram.press_button(asking, text="Allow once", username="ada"))
    assert first["text"] == "Denied."
    assert again["text"] == other["text"] == "Already answered: Denied by @ada."
    stack.drain(stack.consumer())
    assert len(resumes(stack)) == 1
    assert stack.replies(CHAT)[-1]["text"] == "Did not run Bash."
    assert as_read(message_now(stack, asking["message_id"])["text"]) == "❌ Denied by @ada: Bash ls -la <src>"


def test_a_press_telegram_sends_again_is_processed_once(stack) -> None:
    asking = ask(stack, 315)
    press = stack.telegram.press_button(asking, text="Allow once", username="ada")
    assert post(stack, press)["text"] == "Allowed once."
    assert post(stack, press) == {"ok": True, "outcome": "duplicate"}
    stack.drain(stack.consumer())
    assert len(resumes(stack)) == 1


def test_in_a_group_only_the_asker_or_an_approver_may_answer(stack, monkeypatch) -> None:
    group = {"chat_id": GROUP, "chat_type": "supergroup"}
    asking = ask(stack, 320, f"rm -rf build @{BOT_USERNAME}", **group)  # the mention is dropped
    refused = post(stack, stack.telegram.press_button(asking, user_id=777, text="Allow once"))
    assert refused["text"] == "Only the person who asked can answer this."
    pending = stack.approvals().current(GROUP_KEY)
    assert pending is not None and pending.state == "pending" and pending.requested_by == CHAT
    stack.drain(stack.consumer())
    assert resumes(stack) == []
    # Being allowed to talk to the bot is not being trusted to approve another person's call.
    monkeypatch.setenv("ALLOWED_USER_IDS", f"{CHAT},777")
    allowed = producer_handler.build_producer()
    refused = post(stack, stack.telegram.press_button(asking, user_id=777, text="Allow once"), allowed)
    assert refused["text"] == "Only the person who asked can answer this."
    # On the producer's approver list, another member may answer for the chat (an approver
    # needs no place on the allow-list for that).
    monkeypatch.setenv("ALLOWED_USER_IDS", f"{CHAT}")
    monkeypatch.setenv("APPROVER_USER_IDS", "777")
    trusted = producer_handler.build_producer()
    answer = post(
        stack, stack.telegram.press_button(asking, user_id=777, text="Deny", username="bob"), trusted
    )
    assert answer["text"] == "Denied."
    stack.drain(stack.consumer())
    [resume] = resumes(stack)
    assert resume["user_id"] == CHAT  # the asker's request goes on, whoever allowed it
    # Named as the group knows him, and not notified: he did nothing since.
    decided = message_now(stack, asking["message_id"], GROUP)["text"]
    assert as_read(decided).startswith("❌ Denied by @bob: Bash") and mentions(decided) == [], decided


def test_a_press_by_someone_off_the_allow_list_is_answered_and_changes_nothing(stack, monkeypatch) -> None:
    """Alice is listed, Bob is not: his press must not leave the button loading."""
    monkeypatch.setenv("ALLOWED_USER_IDS", str(CHAT))
    strict = producer_handler.build_producer()
    group = {"chat_id": GROUP, "chat_type": "supergroup"}
    asking = ask(stack, 327, f"rm -rf build @{BOT_USERNAME}", **group)
    press = stack.telegram.press_button(asking, user_id=502, text="Allow once", username="bob")
    answer = post(stack, press, strict)
    assert answer["method"] == "answerCallbackQuery"
    assert answer["text"] == "Only people allowed to use this bot can press its buttons."
    pending = stack.approvals().current(GROUP_KEY)
    assert pending is not None and pending.state == "pending"


def test_an_anonymous_admins_request_is_answered_by_an_approver_only(stack, monkeypatch) -> None:
    """Asked on behalf of the group: no press comes from that id, so it says whom it needs."""
    anonymous = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
    group = {"chat_id": GROUP, "chat_type": "supergroup"}
    on_behalf = {"from": anonymous, "sender_chat": {"id": GROUP, "type": "supergroup", "title": "Team"}}
    asking = ask(stack, 325, f"rm -rf build @{BOT_USERNAME}", **group, **on_behalf)
    pending = stack.approvals().current(GROUP_KEY)
    assert pending is not None and pending.requested_by == GROUP
    monkeypatch.setenv("APPROVER_USER_IDS", "888")
    refused = post(
        stack,
        stack.telegram.press_button(asking, user_id=777, text="Allow once"),
        producer_handler.build_producer(),
    )
    assert refused["text"] == "This was asked anonymously: only an approver of this bot can answer it."
    monkeypatch.setenv("APPROVER_USER_IDS", "777")
    answer = post(
        stack,
        stack.telegram.press_button(asking, user_id=777, text="Allow once"),
        producer_handler.build_producer(),
    )
    assert answer["text"] == "Allowed once."


def test_an_anonymous_admins_request_never_names_who_answered_it(stack, monkeypatch) -> None:
    """Asked anonymously: a press comes from the real person, who may be that very admin (an
    approver too). "Allowed once by @dora" under the group's anonymous request would tell the
    group who asked, as a stop's "Stopped by" would; so neither the message nor a toast names them."""
    anonymous = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
    group = {"chat_id": GROUP, "chat_type": "supergroup"}
    on_behalf = {"from": anonymous, "sender_chat": {"id": GROUP, "type": "supergroup", "title": "Team"}}
    asking = ask(stack, 326, f"rm -rf build @{BOT_USERNAME}", **group, **on_behalf)
    monkeypatch.setenv("APPROVER_USER_IDS", "777")
    approvers = producer_handler.build_producer()
    press = stack.telegram.press_button(asking, user_id=777, text="Allow once", username="dora")
    assert post(stack, press, approvers)["text"] == "Allowed once."
    # Any member pressing too is told it was answered, not by whom.
    again = post(stack, stack.telegram.press_button(asking, user_id=CHAT, text="Deny"), approvers)
    assert again["text"] == "Already answered: Allowed once by an approver."
    stack.drain(stack.consumer())
    shown = message_now(stack, asking["message_id"], GROUP)["text"]
    assert as_read(shown) == "✅ Allowed once by an approver: Bash rm -rf build"


def test_an_anonymous_admins_request_answered_before_that_rule_still_names_nobody(stack, monkeypatch) -> None:
    """A request answered by an older producer stored the presser's own name: pressed again, the
    toast must not name them either (it said "Allowed once by @dora", telling the group who asked)."""
    anonymous = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
    group = {"chat_id": GROUP, "chat_type": "supergroup"}
    on_behalf = {"from": anonymous, "sender_chat": {"id": GROUP, "type": "supergroup", "title": "Team"}}
    asking = ask(stack, 327, f"rm -rf build @{BOT_USERNAME}", **group, **on_behalf)
    approval = stack.approvals().current(GROUP_KEY)
    assert approval is not None
    # As the producer before the rule recorded dora's press.
    stack.approvals().decide(GROUP_KEY, approval.approval_id, "once", decided_by="@dora", decided_by_id=777)
    monkeypatch.setenv("APPROVER_USER_IDS", "777")

    again = post(
        stack,
        stack.telegram.press_button(asking, user_id=CHAT, text="Deny"),
        producer_handler.build_producer(),
    )

    assert again["text"] == "Already answered: Allowed once by an approver."


def test_an_anonymous_admins_request_declined_by_a_new_message_of_an_older_runtime_says_so(stack) -> None:
    """A runtime before ``answered_by`` recorded a new message's decline as a presser named "a
    new message" (with nobody's id): pressed again, the toast said so; hiding the presser's name
    under an anonymous request must not turn it into "Denied by an approver", whom nobody was."""
    anonymous = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
    group = {"chat_id": GROUP, "chat_type": "supergroup"}
    on_behalf = {"from": anonymous, "sender_chat": {"id": GROUP, "type": "supergroup", "title": "Team"}}
    asking = ask(stack, 328, f"rm -rf build @{BOT_USERNAME}", **group, **on_behalf)
    approval = stack.approvals().current(GROUP_KEY)
    assert approval is not None
    stack.approvals().decide(GROUP_KEY, approval.approval_id, "deny", decided_by="a new message")

    again = post(stack, stack.telegram.press_button(asking, user_id=CHAT, text="Allow once"))

    assert again["text"] == "Already answered: Denied by a new message."


NOTHING_BUT_A_CALL_WAITS = (
    "Nothing is running in this chat right now."
    " A tool call is waiting for your answer; a new message to me drops it."
)


def test_a_stop_while_a_call_waits_says_nothing_runs_and_how_to_drop_the_call(stack) -> None:
    """The way it names must work whether or not the question is still there: "deny it" left a
    user who had deleted the question (its buttons with it) with no Deny to press."""
    ask(stack, 328)
    answer = post(stack, update(329, text="/stop"))
    assert answer["text"] == NOTHING_BUT_A_CALL_WAITS
    still = stack.approvals().current(KEY)
    assert still is not None and still.state == "pending"  # a stop decides nothing
    # The Stop button of the turn that asked (it has ended) says the same.
    button = post(
        stack,
        {
            "update_id": 330,
            "callback_query": {
                "id": "cb-330",
                "from": {"id": CHAT, "is_bot": False, "first_name": "Ada"},
                "data": stop_callback_data(328),
                "message": {"message_id": 9, "chat": {"id": CHAT, "type": "private"}},
            },
        },
    )
    assert button == {
        "method": "answerCallbackQuery",
        "callback_query_id": "cb-330",
        "text": NOTHING_BUT_A_CALL_WAITS,
    }
    # Taking the advice, no button needed: the new message drops the call and is answered.
    assert stack.post(update(331, text="never mind")) == 200
    stack.drain(stack.consumer())
    assert stack.replies(CHAT)[-1]["text"] == "Answer to: never mind"
    dropped = stack.approvals().current(KEY)
    assert dropped is not None and dropped.choice == "deny" and dropped.answered_by == "new_message"
    assert resumes(stack) == []


def test_after_new_the_buttons_are_stale_and_change_nothing(stack) -> None:
    asking = ask(stack, 330)
    assert stack.post(update(331, text="/new")) == 200
    stack.drain(stack.consumer())
    assert stack.approvals().current(KEY) is None
    dropped = message_now(stack, asking["message_id"])
    assert dropped["text"] == "❌ Declined: you started a new conversation: Bash ls -la <src>"
    assert not dropped.get("reply_markup")
    stale = post(stack, stack.telegram.press_button(asking, text="Allow once"))
    assert stale["text"] == "This request is no longer waiting for an answer."
    stack.drain(stack.consumer())
    assert resumes(stack) == []


@pytest.mark.parametrize(
    "data",
    ["ap:zz:q", "ap:0123456789ab:x", "ap:0123456789ab:o:extra", "ap:" + "a" * 70 + ":o", "rv:", "rv:NOTHEX"],
)
def test_forged_button_data_is_not_valid_and_changes_nothing(stack, data: str) -> None:
    asking = ask(stack, 340)
    press = stack.telegram.press_button(asking)
    press["callback_query"]["data"] = data
    answer = post(stack, press)
    assert answer == {
        "method": "answerCallbackQuery",
        "callback_query_id": answer["callback_query_id"],
        "text": "This button is not valid.",
    }
    still = stack.approvals().current(KEY)
    assert still is not None and still.state == "pending"
    assert stack.receive() == []


def test_a_new_message_declines_the_waiting_call_and_the_buttons_say_so(stack) -> None:
    asking = ask(stack, 350)
    assert stack.post(update(351, text="never mind")) == 200
    stack.drain(stack.consumer())
    assert stack.replies(CHAT)[-1]["text"] == "Answer to: never mind"
    edited = message_now(stack, asking["message_id"])
    assert edited["text"] == "❌ Declined: you sent a new message: Bash ls -la <src>"
    assert not edited.get("reply_markup")
    late = post(stack, stack.telegram.press_button(asking, text="Allow once", username="ada"))
    assert late["text"] == "Already answered: declined by a new message."
    stack.drain(stack.consumer())
    assert resumes(stack) == []


def test_in_a_group_a_new_message_declining_the_call_names_who_sent_it(stack) -> None:
    """Alice's call waits; Bob's message declines it. "you sent a new message" under Alice's
    question would blame her (or whoever reads it): the group is told it was Bob."""
    group = {"chat_id": GROUP, "chat_type": "supergroup"}
    asking = ask(stack, 352, f"rm -rf build @{BOT_USERNAME}", **group)
    bob = {"from": {"id": 502, "is_bot": False, "first_name": "Bob", "username": "bob"}}
    assert stack.post(update(353, text=f"@{BOT_USERNAME} what time is it?", **group, **bob)) == 200
    stack.drain(stack.consumer())
    edited = message_now(stack, asking["message_id"], GROUP)
    assert as_read(edited["text"]) == "❌ Declined: @bob sent a new message: Bash rm -rf build"
    assert mentions(edited["text"]) == []  # Bob is not notified of Alice's declined call


@pytest.mark.parametrize("hidden", ["\u202e", "\u2067", "\u200f", "\x1b"], ids=["RLO", "RLI", "RLM", "ESC"])
def test_a_first_name_cannot_reorder_what_the_group_is_told_was_allowed(stack, hidden: str) -> None:
    """A first name ending in a right-to-left override (or holding another invisible control)
    would make the rest of the line read backwards: the command that was allowed, or the one
    a new message declined, disguised in the group's record of it."""
    group = {"chat_id": GROUP, "chat_type": "supergroup"}
    asking = ask(stack, 356, f"rm -rf build @{BOT_USERNAME}", **group)
    press = stack.telegram.press_button(asking, text="Allow once", first_name=f"Ad{hidden}a{hidden}")
    assert post(stack, press)["text"] == "Allowed once."
    stack.drain(stack.consumer())
    allowed = message_now(stack, asking["message_id"], GROUP)["text"]
    assert allowed == "✅ Allowed once by Ada: Bash rm -rf build"

    asking = ask(stack, 357, f"rm -rf dist @{BOT_USERNAME}", **group)
    bob = {"from": {"id": 502, "is_bot": False, "first_name": f"Bo{hidden}b{hidden}"}}
    assert stack.post(update(358, text=f"@{BOT_USERNAME} what time is it?", **group, **bob)) == 200
    stack.drain(stack.consumer())
    declined = message_now(stack, asking["message_id"], GROUP)["text"]
    assert declined == "❌ Declined: Bob sent a new message: Bash rm -rf dist"


def test_always_grants_are_listed_by_permissions_and_revoked_by_their_button(stack) -> None:
    nothing = "Nothing is always allowed in this chat. Tools that need approval ask each time."
    assert stack.post(update(360, text="/permissions")) == 200
    stack.drain(stack.consumer())
    assert stack.replies(CHAT)[-1]["text"] == nothing
    asking = ask(stack, 361)
    assert (
        post(stack, stack.telegram.press_button(asking, text="Always in this chat", username="ada"))["text"]
        == "Always allowed in this chat."
    )
    stack.drain(stack.consumer())
    assert as_read(message_now(stack, asking["message_id"])["text"]).startswith(
        "✅ Always allowed in this chat by @ada"
    )
    assert stack.post(update(362, text="ask:Bash pwd")) == 200  # granted: no question this time
    stack.drain(stack.consumer())
    assert stack.replies(CHAT)[-1]["text"] == "Ran Bash: pwd"
    assert stack.approvals().current(KEY).state == "settled"  # type: ignore[union-attr]

    assert stack.post(update(363, text="/permissions")) == 200
    stack.drain(stack.consumer())
    listing = copy.deepcopy(stack.replies(CHAT)[-1])
    assert as_read(listing["text"]) == "Always allowed in this chat:\n• Bash(*) (by @ada)"
    assert buttons_of(listing) == [("Revoke Bash(*)", f"rv:{grant_token('Bash(*)')}")]
    revoke = stack.telegram.press_button(listing, text="Revoke Bash(*)")
    assert post(stack, revoke)["text"] == "Revoked: Bash(*). It will ask again."
    assert post(stack, stack.telegram.press_button(listing))["text"] == "Already revoked."
    assert stack.approvals().grants(KEY) == []
    # /new keeps grants; this one is gone, so the next call asks again.
    ask(stack, 364, "pwd")
    assert stack.approvals().current(KEY).state == "pending"  # type: ignore[union-attr]


def test_buttons_on_a_reply_in_a_group_without_topics_act_on_the_groups_session(stack) -> None:
    """Telegram puts message_thread_id (the reply chain's first message) on every reply in a
    group without topics, so a buttons message sent as a reply carries one. That names no topic:
    the press must still find the group's approval and grants, not an empty session."""
    group = {"chat_id": GROUP, "chat_type": "supergroup"}
    asking = ask(stack, 370, f"rm -rf build @{BOT_USERNAME}", **group)
    asking["message_thread_id"] = 42  # a reply to the user's message 42, as Telegram shows it
    answer = post(stack, stack.telegram.press_button(asking, text="Always in this chat", username="ada"))
    assert answer["text"] == "Always allowed in this chat."
    stack.drain(stack.consumer())
    assert [g.rule for g in stack.approvals().grants(GROUP_KEY)] == ["Bash(*)"]

    assert stack.post(update(371, text=f"/permissions@{BOT_USERNAME}", **group)) == 200
    stack.drain(stack.consumer())
    listing = copy.deepcopy(stack.replies(GROUP)[-1])
    listing["message_thread_id"] = 50  # likewise a reply
    assert post(stack, stack.telegram.press_button(listing))["text"] == "Revoked: Bash(*). It will ask again."
    assert stack.approvals().grants(GROUP_KEY) == []


def test_in_a_forum_topic_always_says_this_topic_as_the_grant_holds_only_there(stack) -> None:
    """Each topic is its own conversation, and so are its grants: a call allowed "always" in
    one topic still asks in the next. Buttons, answers and /permissions say "this topic"."""
    topic = {"chat_id": GROUP, "chat_type": "supergroup", "thread_id": 7}
    asking = ask(stack, 380, f"rm -rf build @{BOT_USERNAME}", **topic)
    assert [label for label, _ in buttons_of(asking)] == ["Allow once", "Always in this topic", "Deny"]
    assert "“Always in this topic” would allow" in asking["text"]
    press = stack.telegram.press_button(asking, text="Always in this topic", username="alice")
    assert post(stack, press)["text"] == "Always allowed in this topic."
    stack.drain(stack.consumer())
    edited = message_now(stack, asking["message_id"], GROUP)
    assert as_read(edited["text"]).startswith("✅ Always allowed in this topic by @alice")
    assert mentions(edited["text"]) == []
    assert stack.post(update(381, text=f"/permissions@{BOT_USERNAME}", **topic)) == 200
    assert stack.post(update(382, text=f"/permissions@{BOT_USERNAME}", **{**topic, "thread_id": 8})) == 200
    stack.drain(stack.consumer())
    # Two topics, two queues: the answers may come in either order.
    listings = {m["message_thread_id"]: as_read(m["text"]) for m in stack.replies(GROUP)[-2:]}
    assert [mentions(m["text"]) for m in stack.replies(GROUP)[-2:]] == [[], []]  # nor by /permissions
    assert listings == {
        7: "Always allowed in this topic:\n• Bash(*) (by @alice)",
        8: "Nothing is always allowed in this topic. Tools that need approval ask each time.",
    }


def test_in_a_forums_general_topic_always_says_this_topic_too(stack) -> None:
    """The General topic of a forum is a topic like the others, with its own session and
    grants: "Always in this chat" there would promise the other topics, which ask again."""
    forum = {"id": -100301, "type": "supergroup", "title": "Team", "is_forum": True}
    general = {"chat_id": -100301, "chat_type": "supergroup", "chat": forum}  # no thread id
    asking = ask(stack, 385, f"rm -rf build @{BOT_USERNAME}", **general)
    assert [label for label, _ in buttons_of(asking)] == ["Allow once", "Always in this topic", "Deny"]
    press = stack.telegram.press_button(asking, text="Always in this topic", username="alice")
    press["callback_query"]["message"]["chat"] = forum  # as Telegram describes the chat
    assert post(stack, press)["text"] == "Always allowed in this topic."


def test_new_keeps_always_grants(stack) -> None:
    asking = ask(stack, 370)
    post(stack, stack.telegram.press_button(asking, text="Always in this chat", username="ada"))
    stack.drain(stack.consumer())
    assert stack.post(update(371, text="/new")) == 200
    stack.drain(stack.consumer())
    assert [g.rule for g in stack.approvals().grants(KEY)] == ["Bash(*)"]


def test_a_resume_the_runtime_finds_nothing_for_delivers_nothing(stack) -> None:
    ask(stack, 380)
    before = (len(stack.replies(CHAT)), len(stack.telegram.edits(CHAT)))
    stray = InboundMessage(
        update_id=381,
        session_key=KEY.canonical,
        kind="approval",
        chat_id=CHAT,
        chat_type="private",
        message_id=1,
        user_id=CHAT,
        approval_id="00000000beef",
    )
    queue_inbound(stack.aws.sqs, stack.aws.resources.queue_url, stray)
    stack.drain(stack.consumer())
    assert [r["resume_approval"] for r in resumes(stack)] == ["00000000beef"]  # asked, found nothing
    assert (len(stack.replies(CHAT)), len(stack.telegram.edits(CHAT))) == before
    assert stack.dead_letters() == []


class _QueueDownOnce:
    """An SQS client whose first send fails as a throttled SQS would (then the real one)."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.failed = 0

    def send_message(self, **kwargs: Any) -> Any:
        if not self.failed:
            self.failed += 1
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "SendMessage"
            )
        return self._sqs.send_message(**kwargs)


def test_a_press_whose_resume_could_not_be_queued_is_finished_by_telegrams_copy(stack) -> None:
    asking = ask(stack, 390)
    flaky = Producer(
        config=ProducerConfig.from_env(),
        secret=WEBHOOK_SECRET,
        sqs=_QueueDownOnce(stack.aws.sqs),
        registry=stack.update_dedup(),
        approvals=stack.approvals(),
    )
    press = stack.telegram.press_button(asking, text="Allow once", username="ada")
    assert flaky.handle_event(webhook_event(press))["statusCode"] == 503  # Telegram sends it again
    assert stack.approvals().current(KEY).state == "decided"  # type: ignore[union-attr]
    assert post(stack, press, flaky)["text"] == "Allowed once."  # the copy queues the resume
    second = stack.telegram.press_button(asking, text="Allow once", username="ada")
    assert post(stack, second, flaky)["text"] == "Already answered: Allowed once by @ada."
    stack.drain(stack.consumer())
    assert len(resumes(stack)) == 1
    assert as_read(message_now(stack, asking["message_id"])["text"]).startswith("✅ Allowed once by @ada")


def test_a_press_after_a_stop_declined_the_allowed_call_says_it_was_stopped(stack) -> None:
    """In a group ada allows, then someone sends /stop before the call ran: a press on the
    buttons still shown must not tell anyone that ada denied it."""
    asking = ask(stack, 350)
    assert post(stack, stack.telegram.press_button(asking, text="Allow once", username="ada"))["text"] == (
        "Allowed once."
    )
    assert post(stack, update(351, text="/stop"))["text"] == "Stopping…"
    again = post(stack, stack.telegram.press_button(asking, text="Allow once", username="ada"))
    assert again["text"] == "Already answered: stopped before it ran."
    stack.drain(stack.consumer())
    assert message_now(stack, asking["message_id"])["text"].startswith("⏹ Stopped before it ran: Bash")


def test_a_press_refused_by_the_budget_says_the_answer_waits_not_that_a_message_was_dropped(
    stack, monkeypatch
) -> None:
    """The user pressed a button, sent no message: "I did not send this message" would leave
    them guessing whether the Allow counted, and when the call would run."""
    monkeypatch.setenv("BUDGET_CHAT_DAILY_USD", "0.01")
    monkeypatch.setenv("MAX_TURN_COST_USD", "0.01")
    asking = ask(stack, 460)  # the asking turn spends the day's $0.01
    post(stack, stack.telegram.press_button(asking, text="Allow once", username="ada"))
    stack.drain(stack.consumer())
    refused = stack.replies(CHAT)[-1]["text"]
    assert refused.startswith(
        "This chat has reached its daily budget of $0.01 (spent $0.01), so I did not pass your "
        "answer on to the AI model yet: it goes with your next message once the budget allows. "
        "The budget resets at 00:00 UTC, in "
    )
    assert resumes(stack) == []


@pytest.mark.parametrize("choice", ["Allow once", "Always in this chat"])
def test_new_after_the_budget_held_back_an_allowed_call_says_on_its_question_that_it_never_ran(
    stack, monkeypatch, choice: str
) -> None:
    """The budget kept the Allow from the agent, then the user started anew: the question must
    not go on saying "Allowed" of a call that will never run (nor that a rule was kept)."""
    monkeypatch.setenv("BUDGET_CHAT_DAILY_USD", "0.01")
    monkeypatch.setenv("MAX_TURN_COST_USD", "0.01")
    asking = ask(stack, 470)  # the asking turn spends the day's $0.01
    post(stack, stack.telegram.press_button(asking, text=choice, username="ada"))
    stack.drain(stack.consumer())
    assert resumes(stack) == []
    assert stack.post(update(471, text="/new")) == 200
    stack.drain(stack.consumer())
    assert stack.approvals().current(KEY) is None
    assert stack.approvals().grants(KEY) == []
    assert message_now(stack, asking["message_id"])["text"] == (
        "❌ Not run: you started a new conversation before it could: Bash ls -la <src>"
    )
    assert buttons_of(message_now(stack, asking["message_id"])) == []


def test_permissions_past_one_page_says_how_many_more_and_shows_them_with_revoke_buttons(stack) -> None:
    """More grants than one message lists: the first page says how many more and how to see
    them, and the next page lists them with their revoke buttons."""
    rules = [f"Bash(tool-{n:02d} *)" for n in range(32)]  # listed in this (the store's) order
    for rule in rules:
        stack.approvals().grant(KEY, rule, granted_by="@ada")

    assert stack.post(update(390, text="/permissions")) == 200
    stack.drain(stack.consumer())
    first = copy.deepcopy(stack.replies(CHAT)[-1])
    lines = as_read(first["text"]).split("\n")
    assert lines[0] == "Always allowed in this chat (1-30 of 32):"
    assert lines[1:31] == [f"• {rule} (by @ada)" for rule in rules[:30]]
    assert lines[31] == "2 more: send /permissions 2 to see them."
    assert [text for text, _ in buttons_of(first)] == [f"Revoke {rule}" for rule in rules[:30]]

    assert stack.post(update(391, text="/permissions 2")) == 200
    stack.drain(stack.consumer())
    second = copy.deepcopy(stack.replies(CHAT)[-1])
    assert as_read(second["text"]) == (
        "Always allowed in this chat (31-32 of 32):\n• Bash(tool-30 *) (by @ada)\n• Bash(tool-31 *) (by @ada)"
    )
    assert [text for text, _ in buttons_of(second)] == ["Revoke Bash(tool-30 *)", "Revoke Bash(tool-31 *)"]
    revoke = stack.telegram.press_button(second, text="Revoke Bash(tool-31 *)")
    assert post(stack, revoke)["text"] == "Revoked: Bash(tool-31 *). It will ask again."
    assert [g.rule for g in stack.approvals().grants(KEY)] == rules[:31]

    assert stack.post(update(392, text="/permissions 5")) == 200
    stack.drain(stack.consumer())
    assert stack.replies(CHAT)[-1]["text"] == (
        "Always allowed in this chat: 31 rules, on 2 pages. Send /permissions 2 for the last one."
    )


@pytest.mark.parametrize("text", ["/permissions ²", "/permissions ①", "/permissions\n2"])
def test_permissions_with_a_page_number_typed_oddly_still_answers(stack, text: str) -> None:
    """A superscript or circled digit is no page number: the first page, not a consumer
    crash that retries the message until it is dead-lettered; a page number on the next
    line is read as after a space."""
    rules = [f"Bash(tool-{n:02d} *)" for n in range(32)]
    for rule in rules:
        stack.approvals().grant(KEY, rule, granted_by="@ada")

    assert stack.post(update(395, text=text)) == 200
    stack.drain(stack.consumer())
    shown = stack.replies(CHAT)[-1]
    page = "31-32" if text.endswith("\n2") else "1-30"
    assert shown["text"].split("\n")[0] == f"Always allowed in this chat ({page} of 32):"


@pytest.mark.parametrize(
    ("fault", "times", "longest_wait_s"),
    [
        (TelegramFault.server_error(502), 5, 30.0),  # every retry of the first edit
        (TelegramFault.retry_after_seconds(2), 1, 1.0),  # a wait longer than a reply's may take
    ],
    ids=["5xx", "429"],
)
def test_an_answered_question_loses_its_buttons_even_when_telegram_refuses_its_first_edit(
    stack, fault, times, longest_wait_s
) -> None:
    """The answer went through but the edit of its question failed: left as it was, the
    question would offer live Allow/Deny buttons for a call that already ran, for good."""
    asking = ask(stack, 395)
    post(stack, stack.telegram.press_button(asking, text="Allow once", username="ada"))
    stack.telegram.inject("editMessageText", fault, times=times)
    stack.drain(stack.consumer(max_retry_after_s=longest_wait_s))
    assert stack.replies(CHAT)[-1]["text"] == "Ran Bash: ls -la <src>"  # the answer came
    edited = message_now(stack, asking["message_id"])
    assert as_read(edited["text"]) == "✅ Allowed once by @ada: Bash ls -la <src>"
    assert not edited.get("reply_markup")
    assert stack.telegram.calls("editMessageText")[-1].status == 200


@pytest.mark.parametrize(
    ("fault", "times", "longest_wait_s"),
    [
        (TelegramFault.server_error(502), 5, 30.0),  # every retry of the first edit
        (TelegramFault.retry_after_seconds(2), 1, 1.0),  # a wait longer than a reply's may take
    ],
    ids=["5xx", "429"],
)
def test_new_takes_the_buttons_off_a_waiting_question_even_when_telegram_refuses_its_first_edit(
    stack, fault, times, longest_wait_s
) -> None:
    """/new dropped the call: left as it was, the question would offer live buttons for a call
    the store no longer knows, and its asker would never learn why it did not run."""
    asking = ask(stack, 396)
    stack.telegram.inject("editMessageText", fault, times=times)
    assert stack.post(update(397, text="/new")) == 200
    stack.drain(stack.consumer(max_retry_after_s=longest_wait_s))
    assert stack.approvals().current(KEY) is None
    assert stack.replies(CHAT)[-1]["text"].startswith("Started a fresh conversation.")  # /new's answer
    dropped = message_now(stack, asking["message_id"])
    assert dropped["text"] == "❌ Declined: you started a new conversation: Bash ls -la <src>"
    assert not dropped.get("reply_markup")
    assert stack.telegram.calls("editMessageText")[-1].status == 200


def test_a_telegram_that_never_answers_the_questions_edit_does_not_keep_the_consumer_past_its_end(
    stack,
) -> None:
    """Lambda stops an invocation at its end, whatever it was doing: an edit still waiting on
    Telegram then would take the record's outcome with it, and its answer would be sent again."""
    asking = ask(stack, 398)
    post(stack, stack.telegram.press_button(asking, text="Allow once", username="ada"))
    answered = threading.Event()  # set at the end: until then Telegram holds every edit
    stack.telegram.on_call = lambda method, params: method == "editMessageText" and answered.wait(120)
    invocation_s = 30.0
    ends = time.monotonic() + invocation_s
    [raw] = stack.receive()
    try:
        response = stack.consumer(delivery_reserve_s=15.0).handle_batch(
            sqs_lambda_event(
                [raw], queue_arn=stack.aws.resources.queue_arn, region=stack.aws.sqs.meta.region_name
            ),
            remaining_time_ms=lambda: int((ends - time.monotonic()) * 1000),
        )
        took_s = invocation_s - (ends - time.monotonic())
    finally:
        answered.set()
    assert response == {"batchItemFailures": []}
    assert stack.replies(CHAT)[-1]["text"] == "Ran Bash: ls -la <src>"  # the answer came
    assert took_s < invocation_s, f"the invocation ran {took_s:.1f} s of its {invocation_s:.0f} s"


@pytest.mark.parametrize(
    "faults",
    [
        # the client's retry finds the edit done: its first attempt landed, its answer lost
        [TelegramFault.served_then_server_error(502)],
        # so does the retry once the answer is out (the first try ended on a long 429)
        [TelegramFault.served_then_server_error(502), TelegramFault.retry_after_seconds(2)],
    ],
    ids=["client-retry", "retry-after-the-answer"],
)
def test_an_edit_whose_retry_finds_it_done_already_is_done_not_a_failure(stack, faults) -> None:
    """Telegram answers the retry "message is not modified": the question says what was decided
    and has no buttons, which is what the edit was for. Logged as a failure, it would send the
    operator looking for buttons left on a question that has none."""
    asking = ask(stack, 399)
    post(stack, stack.telegram.press_button(asking, text="Allow once", username="ada"))
    for fault in faults:
        stack.telegram.inject("editMessageText", fault)
    with capture_logs() as logs:
        stack.drain(stack.consumer(max_retry_after_s=1.0))
    edited = message_now(stack, asking["message_id"])
    assert as_read(edited["text"]) == "✅ Allowed once by @ada: Bash ls -la <src>"
    assert not edited.get("reply_markup")
    assert stack.telegram.calls("editMessageText")[-1].status == 400  # the retry: "not modified"
    refused = [e for e in logs if e["event"] in ("approval_message_not_edited", "approval_buttons_left")]
    assert [e for e in refused if e["kind"] != "rate_limited"] == []  # only the 429 was a refusal
