"""People in a busy forum supergroup, through the producer, the queue, the consumer and the
runtime stub: what the topic shows while a turn runs and after it is answered, when Telegram
is slow to do what the bot asks."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from agentbot_testing.telegram_stack import wait_until
from agentbot_testing.telegram_support import BOT_USERNAME, as_read, mentions, update, webhook_event
from local_stack import TelegramFault
from session_core import LiveTurns, SessionKey
from sqs_consumer import FAILURE_WORDING
from telegram_producer import handler as producer_handler

GROUP = -100300
TOPIC = 7
IN_TOPIC = {"chat_id": GROUP, "chat_type": "supergroup", "thread_id": TOPIC}
TOPIC_KEY = SessionKey(tenant="default", chat_id=GROUP, thread_id=TOPIC)
BOB_SENDS = {"from": {"id": 502, "is_bot": False, "first_name": "Bob", "username": "bob"}}


def shown(stack: Any) -> list[tuple[str, int | None, bool]]:
    """What the group shows of the bot: each message's text, topic and whether it has buttons."""
    return [
        (m["text"], m.get("message_thread_id"), bool(m.get("reply_markup"))) for m in stack.replies(GROUP)
    ]


@pytest.mark.parametrize(
    "fault",
    [
        TelegramFault.server_error(),
        TelegramFault.retry_after_seconds(1),
        TelegramFault.retry_after_seconds(6),
    ],
    ids=["server_error", "retry_after", "retry_after_over_5s"],
)
def test_the_progress_message_goes_once_answered_even_when_telegram_fails_its_first_delete(
    stack, fault: TelegramFault
) -> None:
    """A 502 (or a 429) on the delete left "Working, step 3" with a Stop button in the topic
    for good, under the answer: a step long done and a button that stops nothing (a 429 asking
    for more than 5 s did so until the delete waited it out)."""
    assert stack.post(update(700, message_id=70, text=f"@{BOT_USERNAME} work:2 go", **IN_TOPIC)) == 200
    stack.telegram.inject("deleteMessage", fault, times=1)
    stack.drain(stack.consumer(progress_poll_s=0.1))
    progress = [m for m in stack.replies(GROUP) if m.get("reply_markup")]
    assert progress == [], shown(stack)  # it was there while the turn ran, and is gone
    assert [c.status for c in stack.telegram.calls("deleteMessage")] == [fault.status, 200]
    [answer] = stack.replies(GROUP)
    assert answer["text"] == "Answer to: [From @alice]\n\nwork:2 go"
    assert (answer["message_thread_id"], answer["reply_to_message"]["message_id"]) == (TOPIC, 70)


def test_a_turn_the_model_failed_is_told_before_the_progress_message_waits_for_its_delete(stack) -> None:
    """Telegram asked to wait before the progress message's delete, and the user waited that
    long (up to a minute) for the word that the model failed, under a Stop that stops nothing."""
    stack.post(update(701, message_id=71, text=f"@{BOT_USERNAME} work:1 fail:model_error", **IN_TOPIC))
    stack.telegram.inject("deleteMessage", TelegramFault.retry_after_seconds(1), times=1)
    stack.hand_over(stack.consumer(progress_poll_s=0.1), [stack.receive_for_the_last_time()])
    said = [c for c in stack.telegram.calls() if c.method in ("sendMessage", "deleteMessage")]
    assert [(c.method, c.status) for c in said] == [
        ("sendMessage", 200),  # the progress message, with its Stop
        ("sendMessage", 200),  # the failure, at once
        ("deleteMessage", 429),
        ("deleteMessage", 200),  # the progress message, once Telegram's wait is over
    ]
    assert said[1].params["text"] == FAILURE_WORDING["model_error"]
    assert [m["text"] for m in stack.replies(GROUP)] == [FAILURE_WORDING["model_error"]]


def test_a_429_the_progress_of_one_request_got_holds_back_the_next_ones_in_the_batch(stack) -> None:
    """Telegram's limit is the group's: the next request's progress, in the same invocation,
    spent a failed call to learn it again (each one more the group is refused)."""
    assert stack.post(update(702, message_id=72, text=f"@{BOT_USERNAME} work:1 first", **IN_TOPIC)) == 200
    assert stack.post(update(703, message_id=73, text=f"@{BOT_USERNAME} work:1 second", **IN_TOPIC)) == 200
    stack.telegram.inject("sendMessage", TelegramFault.retry_after_seconds(30), times=1)
    [response] = stack.drain(stack.consumer(progress_poll_s=0.1))  # one batch, both requests
    assert response["batchItemFailures"] == []
    progress = [c for c in stack.telegram.calls("sendMessage") if c.params.get("reply_markup")]
    assert [c.status for c in progress] == [429]  # the first request's; the second waited
    assert [m["text"] for m in stack.replies(GROUP)] == [
        "Answer to: [From @alice]\n\nwork:1 first",
        "Answer to: [From @alice]\n\nwork:1 second",
    ]


def in_a_topic_another_bot_opened(update_id: int, text: str, **sender: Any) -> dict[str, Any]:
    """A message of a topic that a helpdesk bot opened, as Telegram sends it: replying to
    nothing, it names the topic's opening (the other bot's service message) as replied to."""
    sent = update(update_id, message_id=update_id, text=text, **IN_TOPIC, **sender)
    sent["message"]["reply_to_message"] = {
        "message_id": TOPIC,
        "from": {"id": 777, "is_bot": True, "first_name": "Helpdesk", "username": "helpdesk_bot"},
        "chat": sent["message"]["chat"],
        "date": sent["message"]["date"] - 60,
        "message_thread_id": TOPIC,
        "is_topic_message": True,
        "forum_topic_created": {"name": "Ticket 42", "icon_color": 7322096},
    }
    return sent


def test_in_a_topic_another_bot_opened_the_bots_bare_commands_are_still_the_bots(stack) -> None:
    """Every message there "replies" to the other bot's opening, which made each bare /status
    (as the command menu sends it) and /stop that bot's: ignored, a running turn unstoppable."""
    live = LiveTurns(dynamodb=stack.aws.dynamodb, table=stack.aws.resources.table)
    live.begin(TOPIC_KEY, 710)  # Alice's turn runs in the topic
    stop = stack.producer.handle_event(
        webhook_event(in_a_topic_another_bot_opened(711, "/stop", **BOB_SENDS))
    )
    assert json.loads(stop["body"])["text"] == "Stopping…"
    assert live.stop_requested(TOPIC_KEY, 710)
    live.end(TOPIC_KEY, 710)
    assert stack.post(in_a_topic_another_bot_opened(712, "/status", **BOB_SENDS)) == 200
    stack.drain(stack.consumer())
    [status] = stack.replies(GROUP)
    assert status["text"].startswith("No conversation yet")
    assert (status["message_thread_id"], status["reply_to_message"]["message_id"]) == (TOPIC, 712)


def test_a_revoke_pressed_on_a_topics_list_too_old_to_name_its_topic_revokes_nothing_elsewhere(stack) -> None:
    """Telegram sends a press on a message over about two days old with the message's chat and
    id alone (an InaccessibleMessage): no topic. Taken for the General topic, it revoked the
    General topic's grant and said "Revoked", while the topic's own grant, the one the user
    meant, stayed."""
    general = SessionKey(tenant="default", chat_id=GROUP)
    for key in (TOPIC_KEY, general):
        stack.approvals().grant(key, "Bash(*)", granted_by="@alice")
    assert stack.post(update(720, message_id=72, text=f"/permissions@{BOT_USERNAME}", **IN_TOPIC)) == 200
    stack.drain(stack.consumer())
    [listing] = stack.replies(GROUP)
    press = stack.telegram.press_button(listing, user_id=502, username="bob")
    press["callback_query"]["message"] = {
        "chat": {"id": GROUP, "type": "supergroup", "title": "Team", "is_forum": True},
        "message_id": listing["message_id"],
        "date": 0,
    }
    answer = json.loads(stack.producer.handle_event(webhook_event(press))["body"])
    assert answer["text"].startswith("This message is too old"), answer
    assert [g.rule for g in stack.approvals().grants(general)] == ["Bash(*)"]
    assert [g.rule for g in stack.approvals().grants(TOPIC_KEY)] == ["Bash(*)"]


def test_the_progress_message_quotes_the_request_it_works_on(stack) -> None:
    """Alice and Bob each ask in the topic: the progress message quoted nothing, so nobody
    could tell whose request was running (nor whose a Stop would stop)."""
    assert stack.post(update(740, message_id=74, text=f"@{BOT_USERNAME} work:1 first", **IN_TOPIC)) == 200
    assert (
        stack.post(update(741, message_id=75, text=f"@{BOT_USERNAME} work:1 then", **IN_TOPIC, **BOB_SENDS))
        == 200
    )
    stack.drain(stack.consumer(progress_poll_s=0.1))
    sent = stack.telegram.sent_messages(GROUP, include_deleted=True)
    progress = [m for m in sent if m.get("reply_markup")]
    assert [(m["message_thread_id"], m["reply_to_message"]["message_id"]) for m in progress] == [
        (TOPIC, 74),
        (TOPIC, 75),
    ], shown(stack)
    # As the answer's: a request deleted meanwhile does not keep its progress from showing.
    quotes = [
        c.params["reply_parameters"]
        for c in stack.telegram.calls("sendMessage")
        if c.params.get("reply_markup")
    ]
    assert all(q["allow_sending_without_reply"] for q in quotes), quotes


def running_in_the_topic(
    stack: Any, update_id: int, **consumer_timing: Any
) -> tuple[threading.Thread, dict[str, Any]]:
    """Alice's long request in the topic, its turn running in the background: the consumer's
    thread and the progress message with its Stop button."""
    request = update(update_id, message_id=update_id, text=f"@{BOT_USERNAME} work:20 long task", **IN_TOPIC)
    assert stack.post(request) == 200
    worker = threading.Thread(
        target=stack.drain, args=(stack.consumer(progress_poll_s=0.1, **consumer_timing),), daemon=True
    )
    worker.start()
    assert wait_until(lambda: any(m.get("reply_markup") for m in stack.replies(GROUP))), shown(stack)
    [progress] = stack.replies(GROUP)
    return worker, progress


def press_stop(stack: Any, progress: dict[str, Any], **presser: Any) -> None:
    press = stack.telegram.press_button(progress, **presser)
    answer = json.loads(stack.producer.handle_event(webhook_event(press))["body"])
    assert answer["text"] == "Stopping…", answer


def stopped_answer(stack: Any, worker: threading.Thread) -> str:
    worker.join(timeout=60)
    assert not worker.is_alive()
    [answer] = stack.replies(GROUP)  # the progress message is gone
    assert answer["text"].startswith("Working, step "), answer
    return str(answer["text"].partition("\n\n")[2])


def test_a_stop_someone_else_pressed_names_them_under_the_askers_answer(stack) -> None:
    """Bob pressed Stop on Alice's turn: the topic showed "⏹ Stopped." as if she had, and
    she could not tell why her answer broke off. He is named as approvals name him, and is
    not notified of it."""
    worker, progress = running_in_the_topic(stack, 750)
    press_stop(stack, progress, user_id=502, first_name="Bob", username="bob")
    note = stopped_answer(stack, worker)
    assert as_read(note) == "⏹ Stopped by @bob." and mentions(note) == [], note


def test_a_stop_sent_by_the_asker_says_stopped_alone(stack) -> None:
    worker, _ = running_in_the_topic(stack, 760)
    answer = stack.producer.handle_event(webhook_event(update(761, message_id=761, text="/stop", **IN_TOPIC)))
    assert json.loads(answer["body"])["text"] == "Stopping…"
    assert stopped_answer(stack, worker) == "⏹ Stopped."


def test_the_name_of_whoever_stopped_shows_as_written_and_pings_nobody(stack) -> None:
    """A first name (of someone without a username) is anyone's to choose: markup in it is
    text, and an @username in it (or a link to a user) would notify that person, who did
    nothing."""
    worker, _ = running_in_the_topic(stack, 770)
    named = {"id": 503, "is_bot": False, "first_name": "<b>Eve</b> & *co* `sh` @alice"}
    answer = stack.producer.handle_event(
        webhook_event(update(771, message_id=771, text="/stop", **IN_TOPIC, **{"from": named}))
    )
    assert json.loads(answer["body"])["text"] == "Stopping…"
    note = stopped_answer(stack, worker)
    assert mentions(note) == [], note
    assert as_read(note) == "⏹ Stopped by <b>Eve</b> & *co* `sh` @alice.", note
    [sent] = [c.params for c in stack.telegram.calls("sendMessage") if not c.params.get("reply_markup")]
    assert "<a" not in sent["text"] and "tg://" not in sent["text"], sent["text"]


def test_a_turn_cut_off_when_the_bot_was_removed_posts_nothing_once_it_is_back(stack) -> None:
    """An admin removes the bot while Alice's turn runs and adds it back a moment later: the
    consumer stopped the turn (nobody there could get its answer), and the group then got its
    partial text marked "⏹ Stopped." though nobody pressed Stop."""
    worker, _ = running_in_the_topic(stack, 780, typing_interval_s=0.3)
    kicked = TelegramFault(403, "Forbidden: bot was kicked from the supergroup chat")
    stack.telegram.inject("sendChatAction", kicked, times=1)  # then it is back in the group
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert stack.replies(GROUP) == [], shown(stack)  # the progress message went too
    assert stack.dead_letters() == []
    [run] = stack.runs()  # it ran once, and was cut short: nothing more paid for
    assert run["update_id"] == 780 and run["ended"] - run["started"] < 10, run


def test_a_stop_pressed_under_an_anonymous_admins_request_names_nobody(stack) -> None:
    """An anonymous admin asked (as the group) and then pressed Stop. A press always comes from
    the person, so "⏹ Stopped by Carol." under the group's request told everyone who had asked
    anonymously; nobody can tell the asker's press from another's, so none is named."""
    group = {"id": GROUP, "type": "supergroup", "title": "Team", "is_forum": True}
    anonymous = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
    asked = update(780, message_id=780, text=f"@{BOT_USERNAME} work:20 long task", **IN_TOPIC)
    asked["message"] |= {"from": anonymous, "sender_chat": group}
    assert stack.post(asked) == 200
    worker = threading.Thread(target=stack.drain, args=(stack.consumer(progress_poll_s=0.1),), daemon=True)
    worker.start()
    assert wait_until(lambda: any(m.get("reply_markup") for m in stack.replies(GROUP))), shown(stack)
    [progress] = stack.replies(GROUP)

    press_stop(stack, progress, user_id=504, first_name="Carol", username="carol")

    assert stopped_answer(stack, worker) == "⏹ Stopped."


def test_of_two_stops_sent_while_a_request_waits_its_answer_names_the_first(
    stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob and then Carol sent /stop while Alice's request waited its turn: the answer named
    Carol, whose stop came too late to change anything (a running turn names the first)."""
    monkeypatch.setenv("CHAT_QUEUE_LIMIT", "10")  # the count that tells a stop a request waits
    stack.producer = producer_handler.build_producer()
    request = update(790, message_id=790, text=f"@{BOT_USERNAME} work:20 long task", **IN_TOPIC)
    assert stack.post(request) == 200
    for update_id, name in ((791, "bob"), (792, "carol")):
        sender = {"id": 500 + update_id, "is_bot": False, "first_name": name.title(), "username": name}
        stop = update(update_id, message_id=update_id, text="/stop", **IN_TOPIC, **{"from": sender})
        assert json.loads(stack.producer.handle_event(webhook_event(stop))["body"])["text"] == "Stopping…"
    stack.drain(stack.consumer(progress_poll_s=0.1))
    [answer] = stack.replies(GROUP)
    assert as_read(answer["text"]) == "⏹ Stopped by @bob before I wrote anything.", answer["text"]
