"""Several people in one group or forum, as they use the bot together: who may answer whose
approval, stop or reset whose conversation, what two people writing at once get, and whose
budget a turn counts against. Driven through the producer, the queue, the consumer and the
runtime stub, as in test_telegram_approvals."""

from __future__ import annotations

import copy
import json
from typing import Any

from agentbot_testing.telegram_support import BOT_USERNAME, as_read, mentions, message, update, webhook_event
from session_core import LiveTurns, SessionKey
from telegram_core import stop_callback_data
from telegram_producer import handler as producer_handler

ALICE, BOB = 501, 502
GROUP = -100300
GROUP_KEY = SessionKey(tenant="default", chat_id=GROUP)
IN_GROUP = {"chat_id": GROUP, "chat_type": "supergroup"}
BOB_SENDS = {"from": {"id": BOB, "is_bot": False, "first_name": "Bob", "username": "bob"}}


def post(stack: Any, body: dict[str, Any], producer: Any = None) -> dict[str, Any]:
    """Deliver a webhook call; the JSON body of its 200 answer."""
    response = (producer or stack.producer).handle_event(webhook_event(body))
    assert response["statusCode"] == 200, response
    return dict(json.loads(response["body"]))


def buttons_of(sent: dict[str, Any]) -> list[str]:
    markup = sent.get("reply_markup") or {}
    return [b["text"] for row in markup.get("inline_keyboard", []) for b in row]


def alice_asks(stack: Any, update_id: int, **where: Any) -> dict[str, Any]:
    """Alice's message that makes the agent ask for a Bash call; the asking message."""
    fields = {**IN_GROUP, **where}
    assert stack.post(update(update_id, text=f"@{BOT_USERNAME} ask:Bash rm -rf build", **fields)) == 200
    stack.drain(stack.consumer())
    asking = [m for m in stack.replies(GROUP) if "Allow once" in buttons_of(m)]
    assert asking, [m["text"] for m in stack.replies(GROUP)]
    return copy.deepcopy(asking[-1])


def now_shown(stack: Any, message_id: int) -> dict[str, Any]:
    [found] = [m for m in stack.replies(GROUP) if m["message_id"] == message_id]
    return found


def test_bob_cannot_answer_alices_call_with_any_of_its_buttons(stack) -> None:
    asking = alice_asks(stack, 600)
    for label in ("Allow once", "Always in this chat", "Deny"):
        press = stack.telegram.press_button(asking, user_id=BOB, text=label, username="bob")
        assert post(stack, press)["text"] == "Only the person who asked can answer this."
    pending = stack.approvals().current(GROUP_KEY)
    assert pending is not None and pending.state == "pending"
    assert stack.approvals().grants(GROUP_KEY) == []
    stack.drain(stack.consumer())
    assert [r for r in stack.runs() if r["resume_approval"]] == []
    assert buttons_of(now_shown(stack, asking["message_id"]))  # still Alice's to answer


def test_bobs_stop_stops_alices_running_turn(stack) -> None:
    live = LiveTurns(dynamodb=stack.aws.dynamodb, table=stack.aws.resources.table)
    live.begin(GROUP_KEY, 610)  # Alice's turn runs
    answer = post(stack, update(611, text="/stop", **IN_GROUP, **BOB_SENDS))
    assert answer["text"] == "Stopping…"
    assert live.stop_requested(GROUP_KEY, 610)


def test_bobs_new_while_alices_call_waits_says_so_on_her_question(stack) -> None:
    """Bob resets the conversation: Alice's question must not keep buttons that only answer
    "no longer waiting", nor leave the group guessing why her call never ran."""
    asking = alice_asks(stack, 620)
    assert stack.post(update(621, text="/new", **IN_GROUP, **BOB_SENDS)) == 200
    stack.drain(stack.consumer())
    assert stack.approvals().current(GROUP_KEY) is None
    shown = now_shown(stack, asking["message_id"])
    assert not buttons_of(shown)
    assert as_read(shown["text"]) == "❌ Declined: @bob started a new conversation: Bash rm -rf build"
    assert mentions(shown["text"]) == []  # Bob is named, not notified


def test_two_people_writing_at_once_in_one_topic_each_get_their_own_answer_in_order(stack) -> None:
    topic = {**IN_GROUP, "thread_id": 7}
    assert stack.post(update(630, message_id=40, text=f"@{BOT_USERNAME} one", **topic)) == 200
    assert stack.post(update(631, message_id=41, text=f"@{BOT_USERNAME} two", **topic, **BOB_SENDS)) == 200
    stack.drain(stack.consumer())
    answers = [m for m in stack.replies(GROUP) if m["text"].startswith("Answer to:")]
    assert [m["reply_to_message"]["message_id"] for m in answers] == [40, 41]
    assert all(m["message_thread_id"] == 7 for m in answers)
    assert answers[0]["text"].startswith("Answer to: [From @alice]")
    assert answers[1]["text"].startswith("Answer to: [From @bob]")


def test_two_people_writing_at_once_in_two_topics_are_answered_each_in_their_topic(stack) -> None:
    assert stack.post(update(640, message_id=50, text=f"@{BOT_USERNAME} one", **IN_GROUP, thread_id=7)) == 200
    assert (
        stack.post(
            update(641, message_id=51, text=f"@{BOT_USERNAME} two", **IN_GROUP, thread_id=8, **BOB_SENDS)
        )
        == 200
    )
    stack.drain(stack.consumer())
    where = {m["reply_to_message"]["message_id"]: m["message_thread_id"] for m in stack.replies(GROUP)}
    assert where == {50: 7, 51: 8}
    assert {r["session_key"] for r in stack.runs()} == {"default/-100300/7", "default/-100300/8"}


def test_an_edit_of_a_queued_message_is_not_a_second_turn(stack) -> None:
    first = message(message_id=60, text=f"@{BOT_USERNAME} waht is 2+2", **IN_GROUP)
    assert stack.post({"update_id": 650, "message": first}) == 200
    edited = {**first, "text": f"@{BOT_USERNAME} what is 2+2", "edit_date": first["date"] + 1}
    assert stack.post({"update_id": 651, "edited_message": edited}) == 200
    stack.drain(stack.consumer())
    assert [r["update_id"] for r in stack.runs()] == [650]


def test_bob_may_revoke_the_grant_alice_made(stack) -> None:
    asking = alice_asks(stack, 660)
    press = stack.telegram.press_button(asking, text="Always in this chat", username="alice")
    assert post(stack, press)["text"] == "Always allowed in this chat."
    stack.drain(stack.consumer())
    assert stack.post(update(661, text=f"/permissions@{BOT_USERNAME}", **IN_GROUP, **BOB_SENDS)) == 200
    stack.drain(stack.consumer())
    listing = copy.deepcopy(stack.replies(GROUP)[-1])
    revoke = stack.telegram.press_button(listing, user_id=BOB, username="bob")
    assert post(stack, revoke)["text"] == "Revoked: Bash(*). It will ask again."
    assert stack.approvals().grants(GROUP_KEY) == []


def test_an_approvers_allow_counts_against_the_budget_of_who_asked(stack, monkeypatch) -> None:
    """Bob, an approver, allows Alice's call: the turn that runs it is Alice's request going
    on, so it counts against her allowance (else an approver's press would spend his, and
    he would be "the person who asked" any call that turn asks next)."""
    monkeypatch.setenv("BUDGET_USER_DAILY_USD", "5")
    monkeypatch.setenv("APPROVER_USER_IDS", str(BOB))
    trusted = producer_handler.build_producer()
    asking = alice_asks(stack, 670)
    press = stack.telegram.press_button(asking, user_id=BOB, text="Allow once", username="bob")
    assert post(stack, press, trusted)["text"] == "Allowed once."
    stack.drain(stack.consumer())
    assert stack.replies(GROUP)[-1]["text"] == "Ran Bash: rm -rf build"
    assert stack.post(update(671, text=f"/cost@{BOT_USERNAME}", **IN_GROUP, **BOB_SENDS)) == 200
    stack.drain(stack.consumer())
    assert "You, today: $0.00 of $5.00" in stack.replies(GROUP)[-1]["text"]
    assert stack.post(update(672, text=f"/cost@{BOT_USERNAME}", **IN_GROUP)) == 200
    stack.drain(stack.consumer())
    assert "You, today: $0.02 of $5.00" in stack.replies(GROUP)[-1]["text"]


def test_a_budget_refusal_of_an_approvers_allow_names_the_asker_not_the_approver(stack, monkeypatch) -> None:
    """Bob, an approver, allows Alice's call when her day's allowance is spent: the refusal
    must not tell Bob "you have reached your budget" (he has spent nothing), nor promise the
    answer goes with "your next message" as if his were held."""
    monkeypatch.setenv("BUDGET_USER_DAILY_USD", "0.01")
    monkeypatch.setenv("MAX_TURN_COST_USD", "0.01")
    monkeypatch.setenv("APPROVER_USER_IDS", str(BOB))
    trusted = producer_handler.build_producer()
    asking = alice_asks(stack, 690)  # spends Alice's $0.01
    press = stack.telegram.press_button(asking, user_id=BOB, text="Allow once", username="bob")
    assert post(stack, press, trusted)["text"] == "Allowed once."
    stack.drain(stack.consumer())
    assert stack.replies(GROUP)[-1]["text"].startswith(
        "The person who asked has reached their daily budget of $0.01 (spent $0.01), so I did not "
        "pass the answer on to the AI model yet: it goes with the next message here that the "
        "budgets allow. The budget resets at 00:00 UTC, in "
    )


def test_a_members_cap_stops_only_that_member_and_the_chats_cap_everyone(stack, monkeypatch) -> None:
    monkeypatch.setenv("BUDGET_USER_DAILY_USD", "0.01")
    monkeypatch.setenv("BUDGET_CHAT_DAILY_USD", "0.03")
    monkeypatch.setenv("MAX_TURN_COST_USD", "0.01")
    carol = {"from": {"id": 503, "is_bot": False, "first_name": "Carol", "username": "carol"}}
    dave = {"from": {"id": 504, "is_bot": False, "first_name": "Dave", "username": "dave"}}
    for update_id, sender in ((680, {}), (681, {}), (682, BOB_SENDS), (683, carol), (684, dave)):
        text = f"@{BOT_USERNAME} question {update_id}"
        assert stack.post(update(update_id, message_id=update_id, text=text, **IN_GROUP, **sender)) == 200
    stack.drain(stack.consumer())
    said = {m["reply_to_message"]["message_id"]: m["text"] for m in stack.replies(GROUP)}
    assert [said[n].startswith("Answer to:") for n in (680, 682, 683)] == [True] * 3
    assert said[681].startswith("You have reached your daily budget of $0.01")  # Alice's own cap
    assert said[684].startswith("This chat has reached its daily budget of $0.03")  # everyone's


def test_a_stop_in_a_group_while_a_call_waits_sends_nobody_to_a_button_they_may_not_press(stack) -> None:
    alice_asks(stack, 690)
    told_bob = post(stack, update(691, text="/stop", **IN_GROUP, **BOB_SENDS))["text"]
    assert "Deny" not in told_bob
    assert told_bob == (
        "Nothing is running in this chat right now. A tool call is waiting for the answer of "
        "whoever asked for it; a new message to me drops it."
    )
    # Alice reads the same: the question is hers to answer.
    assert post(stack, update(692, text="/stop", **IN_GROUP))["text"] == told_bob


def test_bobs_message_in_another_topic_leaves_alices_call_waiting(stack) -> None:
    """Each topic is its own conversation: a message elsewhere in the forum moves only its own."""
    asking = alice_asks(stack, 700, thread_id=7)
    assert stack.post(update(701, text=f"@{BOT_USERNAME} hi", **IN_GROUP, thread_id=8, **BOB_SENDS)) == 200
    stack.drain(stack.consumer())
    topic = SessionKey(tenant="default", chat_id=GROUP, thread_id=7)
    waiting = stack.approvals().current(topic)
    assert waiting is not None and waiting.state == "pending"
    assert buttons_of(now_shown(stack, asking["message_id"]))


def test_an_anonymous_admins_stop_stops_the_running_turn(stack) -> None:
    anonymous = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
    on_behalf = {"from": anonymous, "sender_chat": {"id": GROUP, "type": "supergroup", "title": "Team"}}
    live = LiveTurns(dynamodb=stack.aws.dynamodb, table=stack.aws.resources.table)
    live.begin(GROUP_KEY, 710)
    assert post(stack, update(711, text="/stop", **IN_GROUP, **on_behalf))["text"] == "Stopping…"
    assert live.stop_requested(GROUP_KEY, 710)


def test_a_stop_button_pressed_where_only_the_group_itself_is_allowed_says_how_to_stop(
    stack, monkeypatch
) -> None:
    """The group's id alone is on ALLOWED_USER_IDS: its anonymous admins talk to the bot as the
    group, but a button press always comes from the person (Telegram hides no presser), so an
    admin's press of Stop is refused. The refusal tells them what does work: /stop, sent as
    the group."""
    monkeypatch.setenv("ALLOWED_USER_IDS", str(GROUP))
    strict = producer_handler.build_producer()
    live = LiveTurns(dynamodb=stack.aws.dynamodb, table=stack.aws.resources.table)
    live.begin(GROUP_KEY, 720)
    press = {
        "update_id": 721,
        "callback_query": {
            "id": "cb-721",
            "from": {"id": 777, "is_bot": False, "first_name": "Admin"},
            "data": stop_callback_data(720),
            "message": {"message_id": 9, "chat": {"id": GROUP, "type": "supergroup"}},
        },
    }
    answer = post(stack, press, strict)
    assert answer["text"] == (
        "Only people allowed to use this bot can press its buttons. To stop it as the group, "
        "send /stop while posting anonymously."
    )
    assert not live.stop_requested(GROUP_KEY, 720)
    # Where the group is no sender on the list, a stranger's press gets the plain refusal.
    monkeypatch.setenv("ALLOWED_USER_IDS", str(ALICE))
    assert post(stack, {**press, "update_id": 722}, producer_handler.build_producer())["text"] == (
        "Only people allowed to use this bot can press its buttons."
    )


def test_an_anonymous_admins_call_where_the_bot_has_no_approvers_says_how_to_drop_it(stack) -> None:
    """Nobody may answer it (a press is always a person's, and APPROVER_USER_IDS is empty):
    "only an approver can answer it" sent the admin looking for an approver there is none of,
    while the call held the conversation. The press says what does work, and that works."""
    anonymous = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
    on_behalf = {"from": anonymous, "sender_chat": {"id": GROUP, "type": "supergroup", "title": "Team"}}
    assert stack.post(update(730, text=f"@{BOT_USERNAME} ask:Bash ls", **IN_GROUP, **on_behalf)) == 200
    stack.drain(stack.consumer())
    [asking] = [m for m in stack.replies(GROUP) if buttons_of(m)]
    for label in ("Allow once", "Deny"):
        press = stack.telegram.press_button(copy.deepcopy(asking), user_id=777, text=label, username="admin")
        assert post(stack, press)["text"] == (
            "This was asked anonymously, and this bot has no approvers to answer it: a new message "
            "to me drops it."
        )
    assert stack.post(update(731, text=f"@{BOT_USERNAME} never mind", **IN_GROUP, **on_behalf)) == 200
    stack.drain(stack.consumer())
    dropped = stack.approvals().current(GROUP_KEY)
    assert dropped is not None and (dropped.state, dropped.answered_by) == ("settled", "new_message")
    assert not buttons_of(now_shown(stack, asking["message_id"]))
