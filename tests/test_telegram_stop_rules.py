"""[H] Which updates are stop requests (a pure rule, tested directly) and how the webhook answers
them: the stop is written for the running turn only, never queued, answered in the reply."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import msgspec
import pytest
from agentbot_testing.telegram_support import (
    BOT_USERNAME,
    WEBHOOK_SECRET,
    message,
    receive_all,
    webhook_event,
)
from session_core import ChatBacklog, LiveTurns, SessionKey, TurnProgress
from telegram_core import stop_callback_data
from telegram_producer import ProducerConfig, Update, stop_request
from telegram_producer import handler as producer_handler

CONFIG = ProducerConfig(
    queue_url="q", table="t", secret_parameter="/s", tenant="default", bot_username=BOT_USERNAME
)
PRIVATE = {"id": 501, "type": "private"}
GROUP = {"id": -100200, "type": "supergroup", "is_forum": True}
BOT = {"id": 77, "is_bot": True, "first_name": "Other bot"}
# A post of the group's linked channel, which Telegram forwards into the group: the channel speaks
CHANNEL = {"id": -1002, "type": "channel", "title": "News"}
CHANNEL_FORWARDS = {"id": 777000, "is_bot": False, "first_name": "Telegram"}
PHOTO = [{"file_id": "p1", "file_unique_id": "u1", "width": 8, "height": 6}]
SCAN = {"file_id": "d1", "file_unique_id": "u2", "file_name": "scan.pdf"}


def _update(**fields: Any) -> Update:
    return msgspec.convert({"update_id": 1, **fields}, Update)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"message": message(text="/stop")}, ("command", "default/501/0", None)),
        ({"message": message(text="/STOP@agent_test_bot now")}, ("command", "default/501/0", None)),
        ({"message": message(text="/stop@other_bot")}, None),
        (
            {"message": message(text=f"@{BOT_USERNAME} /stop", chat_id=-100200, chat_type="supergroup")},
            ("command", "default/-100200/0", None),
        ),
        ({"message": message(text="@other_bot /stop", chat_id=-100200, chat_type="supergroup")}, None),
        (
            {"message": {**message(text="/stop", chat_id=-100200, chat_type="supergroup"), "from": BOT}},
            None,
        ),
        ({"message": message(text="please /stop")}, None),
        (
            {
                "message": message(
                    text="/stop", forward_origin={"type": "hidden_user", "sender_user_name": "B", "date": 1}
                )
            },
            None,
        ),
        (
            {
                "message": {
                    **message(
                        text="/stop",
                        chat_id=-100200,
                        chat_type="supergroup",
                        sender_chat=CHANNEL,
                        is_automatic_forward=True,
                        forward_origin={"type": "channel", "chat": CHANNEL, "date": 1, "message_id": 3},
                    ),
                    "from": CHANNEL_FORWARDS,
                }
            },
            ("command", "default/-100200/0", None),
        ),
        ({"message": message(text="/stopwatch")}, None),
        ({"message": message(text=None, caption="/stop", photo=PHOTO)}, ("command", "default/501/0", None)),
        ({"message": message(text=None, caption="please /stop", photo=PHOTO)}, None),
        (
            {"message": message(text="/stop", chat_id=-100200, chat_type="supergroup", thread_id=7)},
            ("command", "default/-100200/7", None),
        ),
        ({"stopped_message_generation": {"chat": PRIVATE, "draft_id": 42}}, ("draft", "default/501/0", 42)),
        (
            {
                "callback_query": {
                    "id": "q1",
                    "from": {"id": 501},
                    "data": "stop:43",
                    "message": {
                        "message_id": 9,
                        "chat": GROUP,
                        "message_thread_id": 7,
                        "is_topic_message": True,
                    },
                }
            },
            ("button", "default/-100200/7", 43),
        ),
        (
            {
                "callback_query": {
                    "id": "q1r",
                    "from": {"id": 501},
                    "data": "stop:44",
                    # a reply in a group without topics: Telegram names the reply chain's root
                    "message": {"message_id": 9, "chat": GROUP, "message_thread_id": 5},
                }
            },
            ("button", "default/-100200/0", 44),
        ),
        (
            {
                "callback_query": {
                    "id": "q2",
                    "from": {"id": 501},
                    "data": "other",
                    "message": {"message_id": 9, "chat": GROUP},
                }
            },
            None,
        ),
        *(
            (
                {
                    "callback_query": {
                        "id": "q3",
                        "from": {"id": 501},
                        "data": forged,
                        "message": {
                            "message_id": 9,
                            "chat": GROUP,
                            "message_thread_id": 7,
                            "is_topic_message": True,
                        },
                    }
                },
                ("button", "default/-100200/7", None),  # not our turn id: stops what runs there
            )
            for forged in ("stop:²", "stop:" + "9" * 40, "stop:x")
        ),
    ],
    ids=[
        "command",
        "addressed",
        "other_bot",
        "mention_first",
        "other_bots_mention_first",
        "from_a_bot",
        "not_first",
        "forwarded",
        "linked_channels_post",
        "longer_word",
        "caption",
        "caption_not_first",
        "topic",
        "draft",
        "button",
        "button_on_a_reply_without_topics",
        "other_button",
        "forged_superscript_digit",
        "forged_huge_turn",
        "forged_text",
    ],
)
def test_stop_requests_are_recognised(fields: dict[str, Any], expected: Any) -> None:
    found = stop_request(_update(**fields), CONFIG)
    got = None if found is None else (found.via, found.key.canonical, found.turn_id)
    assert got == expected


THIS_BOT = {"id": 4242, "is_bot": True, "first_name": "Agent", "username": BOT_USERNAME}
IN_GROUP = {"chat_id": -100200, "chat_type": "supergroup"}


def _without_entities(msg: dict[str, Any]) -> dict[str, Any]:
    """``msg`` as a client of an older Bot API may post it: nothing marked."""
    return {field: value for field, value in msg.items() if field not in ("entities", "caption_entities")}


@pytest.mark.parametrize(
    ("msg", "stops"),
    [
        # Telegram ends a command at the first character that cannot be in one.
        (message(text="/stop, wrong file"), True),
        (message(text="/stop!", **IN_GROUP), True),
        (message(text=None, caption="/stop.", photo=PHOTO), True),
        (message(text="/stop@AGENT_Test_Bot", **IN_GROUP), True),
        (message(text="/stop@other_bot!", **IN_GROUP), False),
        # The bot named by a name Telegram links to it, then the command.
        (
            message(
                text="Agent /stop",
                entities=[
                    {"type": "text_mention", "offset": 0, "length": 5, "user": THIS_BOT},
                    {"type": "bot_command", "offset": 6, "length": 5},
                ],
                **IN_GROUP,
            ),
            True,
        ),
        # Shown as code, "/stop" is text about the command: Telegram marks no command in it.
        (message(text="/stop", entities=[{"type": "code", "offset": 0, "length": 5}], **IN_GROUP), False),
        (
            message(
                text="/stop now",
                entities=[
                    {"type": "bold", "offset": 0, "length": 9},
                    {"type": "bot_command", "offset": 0, "length": 5},
                ],
                **IN_GROUP,
            ),
            True,
        ),
        # Where Telegram marked nothing at all, the first word is read.
        (_without_entities(message(text="/stop please", **IN_GROUP)), True),
        (_without_entities(message(text=f"@{BOT_USERNAME} /stop", **IN_GROUP)), True),
    ],
    ids=[
        "comma_after",
        "exclamation_after",
        "caption_full_stop_after",
        "username_in_other_case",
        "other_bot_exclaimed",
        "name_linked_to_the_bot_first",
        "shown_as_code",
        "bold",
        "unmarked_update_first_word",
        "unmarked_update_mention_first",
    ],
)
def test_a_stop_is_the_command_telegram_marks_at_the_start(msg: dict[str, Any], stops: bool) -> None:
    """/stop is what Telegram marks as a command (a ``bot_command`` entity) at the start of the
    text or caption, after a mention of the bot if any: "/stop, wrong file" stops the turn
    instead of queueing a paid one behind it."""
    assert (stop_request(_update(message=msg), CONFIG) is not None) is stops


def test_an_anonymous_admins_stop_counts_against_the_group_not_the_shared_placeholder() -> None:
    """Rate limits are per sender: every group's anonymous admins share one placeholder user."""
    anonymous = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
    update = {"message_id": 4, "chat": GROUP, "sender_chat": GROUP, "from": anonymous, "text": "/stop"}
    found = stop_request(_update(message=update), CONFIG)
    assert found is not None and (found.via, found.user_id) == ("command", GROUP["id"])


@pytest.fixture
def producer(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    return _built_producer(aws, monkeypatch)


def _built_producer(aws: Any, monkeypatch: pytest.MonkeyPatch, **settings: str) -> Any:
    """The producer as Lambda builds it, with its webhook secret in SSM and ``settings`` set."""
    name = f"/agentbot/test-{uuid.uuid4().hex[:8]}/webhook-secret"
    aws.client("ssm").put_parameter(Name=name, Value=WEBHOOK_SECRET, Type="SecureString")
    monkeypatch.setenv("WEBHOOK_SECRET_PARAMETER", name)
    monkeypatch.setenv("BOT_USERNAME", BOT_USERNAME)
    for setting, value in settings.items():
        monkeypatch.setenv(setting, value)
    return producer_handler.build_producer()


def _post(producer: Any, update: dict[str, Any]) -> dict[str, Any]:
    response = producer.handle_event(webhook_event(update))
    assert response["statusCode"] == 200
    return dict(json.loads(response["body"]))


def _left_queue(aws: Any, key: SessionKey) -> None:
    """As the consumer does once a message is answered (or refused): the chat's backlog count
    (the producer's, CHAT_QUEUE_LIMIT on by default) no longer holds it."""
    backlog = ChatBacklog(dynamodb=aws.dynamodb, table=aws.resources.table, limit=10)
    backlog.release(key.canonical, now=time.time())


def test_a_stop_reaches_only_the_running_turn_and_is_never_queued(aws: Any, producer: Any) -> None:
    live = LiveTurns(dynamodb=aws.dynamodb, table=aws.resources.table)
    key = SessionKey.parse("default/501/0")
    stop = {"update_id": 5, "message": message(text="/stop")}
    assert _post(producer, stop)["text"] == "Nothing is running in this chat right now."
    live.begin(key, 77)
    assert not live.stop_requested(key, 77)  # the earlier /stop found nothing: it is gone
    assert _post(producer, {**stop, "update_id": 6})["text"] == "Stopping…"
    assert live.stop_requested(key, 77)
    live.end(key, 77)
    live.begin(key, 78)  # the next turn starts clean
    assert not live.stop_requested(key, 78)
    # A draft's stop names its turn: one for an earlier turn stops nothing.
    old_draft = {"update_id": 7, "stopped_message_generation": {"chat": PRIVATE, "draft_id": 77}}
    assert _post(producer, old_draft) == {"ok": True, "outcome": "stop: nothing_running"}
    assert not live.stop_requested(key, 78)
    assert receive_all(aws.sqs, aws.resources.queue_url) == []


def test_a_stop_in_a_quiet_forum_topic_says_nothing_runs_in_this_topic(aws: Any, producer: Any) -> None:
    """A turn runs in topic 3, its progress message in view of every member; a /stop sent in
    topic 4 stops nothing and must not claim that nothing runs in the whole chat."""
    live = LiveTurns(dynamodb=aws.dynamodb, table=aws.resources.table)
    live.begin(SessionKey.parse("default/-100200/3"), 80)
    in_topic_4 = message(text="/stop", chat_id=-100200, chat_type="supergroup", thread_id=4)
    answer = _post(producer, {"update_id": 10, "message": in_topic_4})
    assert answer["text"] == "Nothing is running in this topic right now."
    assert answer["message_thread_id"] == 4
    assert not live.stop_requested(SessionKey.parse("default/-100200/3"), 80)


def test_a_stop_in_a_forums_quiet_general_topic_says_nothing_runs_in_this_topic(
    aws: Any, producer: Any
) -> None:
    """The General topic is a topic: while topic 3's turn runs, "nothing is running in this
    chat" would be false."""
    live = LiveTurns(dynamodb=aws.dynamodb, table=aws.resources.table)
    live.begin(SessionKey.parse("default/-100209/3"), 81)
    forum = {"id": -100209, "type": "supergroup", "title": "Team", "is_forum": True}
    in_general = message(text="/stop", chat_id=-100209, chat_type="supergroup", chat=forum)
    answer = _post(producer, {"update_id": 11, "message": in_general})
    assert answer["text"] == "Nothing is running in this topic right now."
    assert "message_thread_id" not in answer  # the General topic takes none


def test_a_photo_captioned_stop_stops_the_running_turn_and_is_no_turn_of_its_own(
    aws: Any, producer: Any
) -> None:
    """A caption holds commands as a text does: the photo went with the /stop, so it is said
    to be unread, not queued for a paid turn after the one it stopped."""
    live = LiveTurns(dynamodb=aws.dynamodb, table=aws.resources.table)
    key = SessionKey.parse("default/501/0")
    live.begin(key, 96)
    answer = _post(producer, {"update_id": 12, "message": message(text=None, caption="/stop", photo=PHOTO)})
    assert answer["text"] == (
        "Stopping…\n\n(I did not look at the photo sent with /stop: send it again without the command.)"
    )
    assert live.stop_requested(key, 96)
    assert receive_all(aws.sqs, aws.resources.queue_url) == []


def test_a_file_captioned_with_the_bots_stop_in_a_group_is_answered_there_and_not_queued(
    aws: Any, producer: Any
) -> None:
    scan = message(
        text=None, caption=f"/stop@{BOT_USERNAME}", document=SCAN, chat_id=-100201, chat_type="supergroup"
    )
    answer = _post(producer, {"update_id": 13, "message": scan})
    assert answer["text"] == (
        "Nothing is running in this chat right now.\n\n"
        "(I did not look at the file sent with /stop: send it again without the command.)"
    )
    assert answer["reply_parameters"]["message_id"] == scan["message_id"]
    assert receive_all(aws.sqs, aws.resources.queue_url) == []


def test_a_gif_captioned_stop_stops_the_running_turn_and_says_the_gif_went_unseen(
    aws: Any, producer: Any
) -> None:
    """A GIF is answered "not supported" when sent alone; sent with /stop it stops the turn, and
    the answer says so of the GIF, as it does of a photo (the app shows it as a GIF)."""
    live = LiveTurns(dynamodb=aws.dynamodb, table=aws.resources.table)
    key = SessionKey.parse("default/501/0")
    live.begin(key, 97)
    gif = {"file_id": "g1", "file_unique_id": "gu1", "width": 480, "height": 270, "duration": 3}
    doc = {"file_id": "g1", "file_unique_id": "gu1", "file_name": "giphy.mp4", "mime_type": "video/mp4"}
    sent = message(text=None, caption="/stop", animation=gif, document=doc)
    answer = _post(producer, {"update_id": 14, "message": sent})
    assert answer["text"] == (
        "Stopping…\n\nSorry, GIFs are not supported yet. Send text, a photo or a document."
    )
    assert live.stop_requested(key, 97)
    assert receive_all(aws.sqs, aws.resources.queue_url) == []


def test_a_stop_from_outside_the_allow_list_is_ignored(aws: Any, producer: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("ALLOWED_USER_IDS", "9")
    strict = producer_handler.build_producer()
    live = LiveTurns(dynamodb=aws.dynamodb, table=aws.resources.table)
    key = SessionKey.parse("default/501/0")
    live.begin(key, 1)
    assert _post(strict, {"update_id": 8, "message": message(text="/stop")})["outcome"].startswith("ignored")
    assert not live.stop_requested(key, 1)


def test_a_stop_telegram_sends_again_does_not_stop_the_next_turn(aws: Any, producer: Any) -> None:
    # Telegram sends an update again when it missed our answer; a /stop names no turn, so a
    # late copy would stop whatever runs then.
    live = LiveTurns(dynamodb=aws.dynamodb, table=aws.resources.table)
    key = SessionKey.parse("default/501/0")
    live.begin(key, 90)
    stop = {"update_id": 9, "message": message(text="/stop")}
    assert _post(producer, stop)["text"] == "Stopping…"
    live.end(key, 90)
    live.begin(key, 91)
    assert _post(producer, stop) == {"ok": True, "outcome": "duplicate"}
    assert not live.stop_requested(key, 91)


def test_a_stop_pressed_while_the_runtime_starts_survives_a_retry_of_that_turn(
    aws: Any, producer: Any
) -> None:
    # The consumer marks the turn before invoking the runtime; the user presses Stop; the invoke
    # fails (a crash, a timeout) and the record comes back: the retry must still stop.
    live = LiveTurns(dynamodb=aws.dynamodb, table=aws.resources.table)
    key = SessionKey.parse("default/501/0")
    assert live.expect(key, 95)
    live.begin(key, 95)
    live.publish(key, TurnProgress(turn_id=95, text="half an answer", seq=7))
    assert _post(producer, {"update_id": 10, "message": message(text="/stop")})["text"] == "Stopping…"
    live.end(key, 95)  # the consumer's view ends as its invoke fails
    assert live.expect(key, 95)  # the retry's consumer
    progress = live.progress(key, 95)
    assert progress is not None and progress.seq == 0 and progress.text == ""  # no stale draft
    live.begin(key, 95)  # the retry's runtime
    assert live.stop_requested(key, 95)
    assert not live.expect(key, 96)  # another turn while 95 runs: not marked
    live.end(key, 95)
    assert live.expect(key, 96) and not live.stop_requested(key, 96)  # the next turn starts clean


def test_a_stop_sent_before_the_turn_began_stops_that_turn_once_and_no_later_one(
    aws: Any, producer: Any
) -> None:
    # The message is queued, or taken by a consumer still starting: no live turn yet.
    live = LiveTurns(dynamodb=aws.dynamodb, table=aws.resources.table)
    key = SessionKey.parse("default/501/0")
    assert _post(producer, {"update_id": 20, "message": message(text="long task")})["ok"]
    assert _post(producer, {"update_id": 21, "message": message(text="/stop")})["text"] == "Stopping…"
    assert live.expect(key, 20) and live.stop_requested(key, 20)  # the consumer starts it: stopped
    assert live.begin(key, 20)  # the runtime learns it as the turn begins: no model call
    live.end(key, 20)
    _left_queue(aws, key)
    assert _post(producer, {"update_id": 22, "message": message(text="/stop")})["text"] == (
        "Nothing is running in this chat right now."
    )
    assert _post(producer, {"update_id": 23, "message": message(text="and now?")})["ok"]
    assert live.expect(key, 23) and not live.begin(key, 23)
    assert not live.stop_requested(key, 23)
    # Several waiting: the stop is for the first to start, not also the one queued behind it.
    live.end(key, 23)
    _left_queue(aws, key)
    for update_id in (24, 25):
        assert _post(producer, {"update_id": update_id, "message": message(text="next")})["ok"]
    assert _post(producer, {"update_id": 26, "message": message(text="/stop")})["text"] == "Stopping…"
    assert live.expect(key, 24) and live.stop_requested(key, 24)
    live.end(key, 24)
    _left_queue(aws, key)
    assert live.expect(key, 25) and not live.stop_requested(key, 25)


def test_a_stop_aimed_at_a_message_that_started_no_turn_never_stops_a_later_one(
    aws: Any, producer: Any
) -> None:
    # "/status" is queued and answered by the consumer without a turn: a stop sent meanwhile
    # finds it waiting, but must not linger for the message the user sends after the stop.
    live = LiveTurns(dynamodb=aws.dynamodb, table=aws.resources.table)
    key = SessionKey.parse("default/501/0")
    assert _post(producer, {"update_id": 30, "message": message(text="/status")})["ok"]
    assert _post(producer, {"update_id": 31, "message": message(text="/stop")})["text"] == "Stopping…"
    _left_queue(aws, key)  # answered by the consumer, no turn
    assert _post(producer, {"update_id": 32, "message": message(text="/stop")})["text"] == (
        "Nothing is running in this chat right now."
    )
    assert _post(producer, {"update_id": 33, "message": message(text="hello")})["ok"]
    assert live.expect(key, 33) and not live.stop_requested(key, 33)


def test_a_stop_after_a_command_was_answered_finds_nothing_running(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentbot_testing.telegram_support import update

    monkeypatch.setenv("CHAT_QUEUE_LIMIT", "10")  # the stack turns the backlog count off
    stack.producer = producer_handler.build_producer()
    stack.post(update(50, text="/help"))
    stack.drain(stack.consumer())
    answer = json.loads(stack.producer.handle_event(webhook_event(update(51, text="/stop")))["body"])
    assert answer["text"] == "Nothing is running in this chat right now."


def test_with_the_backlog_count_off_a_stop_before_the_turn_began_finds_nothing_running(
    aws: Any, producer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CHAT_QUEUE_LIMIT=0: no count, so nothing tells the stop a message waits.
    monkeypatch.setenv("CHAT_QUEUE_LIMIT", "0")
    uncounted = producer_handler.build_producer()
    live = LiveTurns(dynamodb=aws.dynamodb, table=aws.resources.table)
    key = SessionKey.parse("default/501/0")
    assert _post(uncounted, {"update_id": 40, "message": message(text="long task")})["ok"]
    assert _post(uncounted, {"update_id": 41, "message": message(text="/stop")})["text"] == (
        "Nothing is running in this chat right now."
    )
    assert live.expect(key, 40) and not live.begin(key, 40)


def test_a_queued_message_costs_no_request_for_stops_and_a_stop_one_when_a_turn_runs(
    aws: Any, producer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The producer answers Telegram within milliseconds: queueing a message writes nothing for
    # a later /stop (the chat's backlog count serves it), and a /stop for a running turn is one
    # UpdateItem of the live item; only one with no turn running checks the count.
    import boto3

    calls: list[tuple[str, str]] = []

    def note(params: dict[str, Any], model: Any, **_: Any) -> None:
        keys = [params.get("Key")] + [
            next(iter(item.values())).get("Key") for item in params.get("TransactItems", [])
        ]
        calls.extend((model.name, key["pk"]["S"]) for key in keys if key)

    def client(service: str, *args: Any, **kwargs: Any) -> Any:
        made = make_client(service, *args, **kwargs)
        made.meta.events.register("before-parameter-build.dynamodb", note)
        return made

    make_client = boto3.client
    monkeypatch.setattr(boto3, "client", client)
    recorded = producer_handler.build_producer()
    live = LiveTurns(dynamodb=aws.dynamodb, table=aws.resources.table)
    key = SessionKey.parse("default/501/0")
    live_pk, backlog_pk = f"session|{key.canonical}", f"backlog|{key.canonical}"

    def stop_calls() -> list[tuple[str, str]]:
        found = [call for call in calls if call[1] in (live_pk, backlog_pk)]
        calls.clear()
        return found

    assert _post(recorded, {"update_id": 60, "message": message(text="long task")})["ok"]
    assert stop_calls() == [("UpdateItem", backlog_pk)]  # the count it always kept, nothing more
    assert _post(recorded, {"update_id": 61, "message": message(text="/stop")})["text"] == "Stopping…"
    assert stop_calls() == [
        ("UpdateItem", live_pk),  # no turn running yet
        ("GetItem", live_pk),  # no allowed call waits for its turn (the session's approval item)
        ("TransactWriteItems", backlog_pk),  # a message waits: the stop is kept, in one request
        ("TransactWriteItems", live_pk),
    ]
    assert live.expect(key, 60) and live.begin(key, 60)
    assert _post(recorded, {"update_id": 62, "message": message(text="/stop")})["text"] == "Stopping…"
    assert stop_calls() == [("UpdateItem", live_pk)]  # a turn runs: one request, as ever


def test_a_stop_spammed_in_a_group_still_stops_but_answers_only_within_the_senders_rate(
    aws: Any, monkeypatch: Any
) -> None:
    """Each /stop answers with a message in the group, and Telegram allows a bot about 20 a
    minute there: 30 "Nothing is running" would hold up the bot's real answers."""
    limited = _built_producer(aws, monkeypatch, RATE_LIMIT_USER_PER_MINUTE="2")
    in_group = {"chat_id": -100201, "chat_type": "supergroup", "user_id": 666}
    answers = [
        _post(limited, {"update_id": 600 + n, "message": message(text="/stop", **in_group)})
        for n in range(30)
    ]
    texts = [answer["text"] for answer in answers if "text" in answer]
    # Two within the rate; the first one over it says why the rest get no answer.
    assert texts[:2] == ["Nothing is running in this chat right now."] * 2
    assert len(texts) == 3 and "You are sending messages faster" in texts[2], texts
    assert "(at most 2 a minute): further stops still count" in texts[2]
    # Over the rate, a stop still reaches a running turn: only its message is left out.
    live = LiveTurns(dynamodb=aws.dynamodb, table=aws.resources.table)
    key = SessionKey.parse("default/-100201/0")
    live.begin(key, 5)
    assert _post(limited, {"update_id": 700, "message": message(text="/stop", **in_group)}) == {
        "ok": True,
        "outcome": "stop: stopping",
    }
    assert live.stop_requested(key, 5)
    # The group's own limit, passed by many members: the note says it is the chat's.
    monkeypatch.setenv("RATE_LIMIT_USER_PER_MINUTE", "0")
    monkeypatch.setenv("RATE_LIMIT_CHAT_PER_MINUTE", "3")
    per_chat = producer_handler.build_producer()
    other_group = {"chat_id": -100202, "chat_type": "supergroup"}
    answers = [
        _post(
            per_chat, {"update_id": 800 + n, "message": message(text="/stop", user_id=900 + n, **other_group)}
        )
        for n in range(6)
    ]
    texts = [answer["text"] for answer in answers if "text" in answer]
    assert len(texts) == 4 and texts[3].endswith(
        "\n\nThis chat is sending messages faster than I can answer (at most 3 a minute): "
        "further stops still count, but get no answer until the rate falls."
    ), texts


def test_a_stop_over_the_senders_rate_in_a_group_answers_that_sender(aws: Any, monkeypatch: Any) -> None:
    """ "You are sending messages faster…" under a /stop in a group must say whom it means: the
    answer quotes the /stop it answers, as the bot's other notices do."""
    limited = _built_producer(aws, monkeypatch, RATE_LIMIT_USER_PER_MINUTE="1")
    in_group = {"chat_id": -100205, "chat_type": "supergroup", "user_id": 667}
    answers = [
        _post(
            limited, {"update_id": 900 + n, "message": message(message_id=50 + n, text="/stop", **in_group)}
        )
        for n in range(2)
    ]
    assert "You are sending messages faster" in answers[1]["text"]
    assert answers[1]["reply_parameters"] == {"message_id": 51, "allow_sending_without_reply": True}


def test_a_stop_button_pressed_by_someone_off_the_allow_list_is_answered_not_left_spinning(
    aws: Any, producer: Any, monkeypatch: Any
) -> None:
    """Alice (listed) asked in the group; Bob (not listed) presses Stop. Telegram shows the
    button loading until the press is answered: it is answered, and stops nothing."""
    monkeypatch.setenv("ALLOWED_USER_IDS", "501")
    strict = producer_handler.build_producer()
    live = LiveTurns(dynamodb=aws.dynamodb, table=aws.resources.table)
    key = SessionKey.parse("default/-100206/0")
    live.begin(key, 5)
    press = {
        "update_id": 950,
        "callback_query": {
            "id": "q-bob",
            "from": {"id": 502, "is_bot": False, "first_name": "Bob"},
            "data": stop_callback_data(5),
            "message": {"message_id": 9, "chat": {"id": -100206, "type": "supergroup"}},
        },
    }
    answer = _post(strict, press)
    assert answer["method"] == "answerCallbackQuery" and answer["callback_query_id"] == "q-bob"
    assert answer["text"] == "Only people allowed to use this bot can press its buttons."
    assert not live.stop_requested(key, 5)
