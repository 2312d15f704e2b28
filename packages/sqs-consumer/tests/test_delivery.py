"""Delivery, called directly: each chunk goes out once and is recorded; HTML Telegram refuses
goes again as plain text; one failure notice per update. The Bot API is an httpx mock
transport and the delivery records an in-memory stand-in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from session_core import SessionKey, StorageError
from sqs_consumer import FAILED_NOTICE, Delivery, DeliveryFailedError
from telegram_core import BotApi, InboundMessage

KEY = SessionKey.parse("default/5/0")
MSG = InboundMessage(
    update_id=11, session_key=KEY.canonical, kind="message", chat_id=5, chat_type="private", message_id=3
)


class Records:
    def __init__(self, *, failing_writes: int = 0) -> None:
        self.chunks: dict[tuple[int, int], int] = {}
        self.halves: dict[tuple[int, int, int], int] = {}
        self.notices: set[tuple[int, str]] = set()
        self.failing_writes = failing_writes

    def delivered_chunks(self, key: SessionKey, update_id: int) -> dict[int, int]:
        return {index: mid for (uid, index), mid in self.chunks.items() if uid == update_id}

    def record_delivered_chunk(self, key: SessionKey, update_id: int, index: int, message_id: int) -> None:
        if self.failing_writes:
            self.failing_writes -= 1
            raise StorageError("record_delivered_chunk", "throttled")
        self.chunks[(update_id, index)] = message_id

    def halves_sent(self, key: SessionKey, update_id: int, index: int) -> dict[int, int]:
        return {half: mid for (uid, i, half), mid in self.halves.items() if (uid, i) == (update_id, index)}

    def record_half_sent(
        self, key: SessionKey, update_id: int, index: int, half: int, message_id: int
    ) -> None:
        self.halves[(update_id, index, half)] = message_id

    def notice_sent(self, key: SessionKey, update_id: int, kind: str) -> bool:
        first = (update_id, kind) not in self.notices
        self.notices.add((update_id, kind))
        return first


class Telegram:
    """A scripted Bot API: answers sendMessage with growing message ids, or a scripted error."""

    def __init__(self, errors: Iterator[str | None] | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self._errors = errors or iter(())

    def __call__(self, request: httpx.Request) -> httpx.Response:
        params = json.loads(request.content)
        error = next(self._errors, None)
        if error is not None:
            return httpx.Response(400, json={"ok": False, "error_code": 400, "description": error})
        self.sent.append(params)
        return httpx.Response(200, json={"ok": True, "result": {"message_id": 100 + len(self.sent)}})


def delivery(telegram: Telegram, records: Records) -> tuple[Delivery, list[float]]:
    waits: list[float] = []
    bot = BotApi(http=httpx.Client(transport=httpx.MockTransport(telegram)), token="1:x", base_url="http://t")
    return Delivery(bot=bot, registry=records, sleep=waits.append, record_retry_backoff_s=0.1), waits


def test_each_chunk_goes_out_once_and_only_the_first_quotes_the_message() -> None:
    telegram, records = Telegram(), Records()
    send, _ = delivery(telegram, records)
    send.deliver(MSG, KEY, ["one", "two"])
    assert [p["text"] for p in telegram.sent] == ["one", "two"]
    assert (
        telegram.sent[0]["reply_parameters"]["message_id"] == 3 and "reply_parameters" not in telegram.sent[1]
    )
    assert records.delivered_chunks(KEY, 11) == {0: 101, 1: 102}
    send.deliver(MSG, KEY, ["one", "two"])  # a retry of the record sends nothing again
    assert len(telegram.sent) == 2


def test_html_telegram_refuses_goes_again_as_plain_text() -> None:
    telegram = Telegram(iter(["Bad Request: can't parse entities: unclosed tag"]))
    send, _ = delivery(telegram, Records())
    send.deliver(MSG, KEY, ["<b>bold &amp; more"])
    [plain] = telegram.sent
    assert "parse_mode" not in plain and plain["text"] == "bold & more"


def test_a_chunk_telegram_counts_as_too_long_goes_as_two_plain_halves() -> None:
    telegram = Telegram(iter(["Bad Request: message is too long"]))
    send, _ = delivery(telegram, Records())
    send.deliver(MSG, KEY, ["word " * 10])
    assert len(telegram.sent) == 2 and all("parse_mode" not in p for p in telegram.sent)
    assert (
        telegram.sent[0]["reply_parameters"]["message_id"] == 3 and "reply_parameters" not in telegram.sent[1]
    )


def test_a_throttled_delivery_record_is_retried_before_the_record_fails() -> None:
    telegram, records = Telegram(), Records(failing_writes=2)
    send, waits = delivery(telegram, records)
    send.deliver(MSG, KEY, ["one"])
    assert waits == [0.1, 0.2] and records.delivered_chunks(KEY, 11) == {0: 101}
    send, _ = delivery(Telegram(), Records(failing_writes=99))
    with pytest.raises(DeliveryFailedError) as failed:
        send.deliver(MSG, KEY, ["one"])
    assert failed.value.retryable and failed.value.deferrable  # sent already: never dead-lettered


def test_a_bad_request_is_a_delivery_failure_that_no_retry_can_fix() -> None:
    send, _ = delivery(Telegram(iter(["Bad Request: message text is empty"])), Records())
    with pytest.raises(DeliveryFailedError) as failed:
        send.deliver(MSG, KEY, ["one"])
    assert not failed.value.retryable and failed.value.chunk_index == 0


def test_the_failure_notice_is_sent_once_per_update() -> None:
    telegram = Telegram()
    send, _ = delivery(telegram, Records())
    send.tell_user_once(MSG, KEY, None)
    send.tell_user_once(MSG, KEY, "another text")
    assert [p["text"] for p in telegram.sent] == [FAILED_NOTICE]


KEYBOARD = {"inline_keyboard": [[{"text": "Allow once", "callback_data": "ap:1:once"}]]}


def test_a_question_with_buttons_telegram_counts_as_too_long_still_reaches_the_user() -> None:
    """Telegram counts UTF-16 units (an emoji is two), so a question we measured as fitting
    can be refused as too long: it arrives as plain parts, the buttons under the last one,
    instead of never (a dead letter, the tool call waiting for a press that cannot come)."""
    from local_stack import TEST_BOT_TOKEN, LocalTelegram

    records = Records()
    with LocalTelegram() as telegram, httpx.Client() as http:
        bot = BotApi(http=http, token=TEST_BOT_TOKEN, base_url=telegram.base_url, backoff_s=0.01)
        send = Delivery(bot=bot, registry=records)
        question = "<b>Bash</b> <code>env " + "\U0001f600" * 2100 + "</code>"
        message_id = send.deliver_with_buttons(MSG, KEY, 1, question, KEYBOARD, quote=False)
        parts = telegram.sent_messages(MSG.chat_id)
    assert len(parts) > 1 and "".join(p["text"] for p in parts) == "Bash env " + "\U0001f600" * 2100
    assert [bool(p.get("reply_markup")) for p in parts] == [False] * (len(parts) - 1) + [True]
    assert message_id == parts[-1]["message_id"] and records.delivered_chunks(KEY, 11) == {1: message_id}


def test_a_question_with_buttons_refused_as_html_goes_as_plain_text_with_its_buttons() -> None:
    telegram = Telegram(iter(["Bad Request: can't parse entities: unclosed tag"]))
    send, _ = delivery(telegram, Records())
    message_id = send.deliver_with_buttons(MSG, KEY, 0, "<b>Allow?", KEYBOARD, quote=True)
    [plain] = telegram.sent
    assert plain["text"] == "Allow?" and plain["reply_markup"] == KEYBOARD and message_id == 101


def upgraded_group(migrate_to: int) -> Any:
    """A Bot API whose group became supergroup ``migrate_to``: the old id is refused with the
    new one in ``parameters``, as Telegram does."""
    sent: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        params = json.loads(request.content)
        if params["chat_id"] != migrate_to:
            return httpx.Response(
                400,
                json={
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: group chat was upgraded to a supergroup chat",
                    "parameters": {"migrate_to_chat_id": migrate_to},
                },
            )
        sent.append(params)
        return httpx.Response(200, json={"ok": True, "result": {"message_id": 200 + len(sent)}})

    return answer, sent


def test_an_answer_to_a_group_upgraded_meanwhile_reaches_the_supergroup_it_became() -> None:
    answer, sent = upgraded_group(-1009)
    records = Records()
    bot = BotApi(http=httpx.Client(transport=httpx.MockTransport(answer)), token="1:x", base_url="http://t")
    group_message = InboundMessage(
        update_id=12, session_key=KEY.canonical, kind="message", chat_id=-5, chat_type="group", message_id=3
    )
    Delivery(bot=bot, registry=records).deliver(group_message, KEY, ["one", "two"])
    assert [(p["chat_id"], p["text"]) for p in sent] == [(-1009, "one"), (-1009, "two")]
    # The user's message has another id there, if any: nothing is quoted.
    assert not any("reply_parameters" in p for p in sent)
    assert records.delivered_chunks(KEY, 12) == {0: 201, 1: 202}


def test_a_question_with_buttons_does_not_follow_an_upgraded_group() -> None:
    """A press in the supergroup would come from another chat (another session): the chat is
    unreachable for the question, which the consumer logs and acknowledges."""
    answer, sent = upgraded_group(-1009)
    bot = BotApi(http=httpx.Client(transport=httpx.MockTransport(answer)), token="1:x", base_url="http://t")
    with pytest.raises(DeliveryFailedError) as failed:
        Delivery(bot=bot, registry=Records()).deliver_with_buttons(
            MSG, KEY, 0, "Allow?", KEYBOARD, quote=True
        )
    assert failed.value.chat_unreachable and not failed.value.retryable and sent == []
