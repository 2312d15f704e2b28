"""[H] The local Bot API server's live-turn methods answer like Telegram: drafts (private chats
only, with the stop control a test can press), edits and deletes of the bot's messages, callback
answers, inline buttons a test can press, and the 20-a-minute group limit with 429s."""

from __future__ import annotations

import httpx
import pytest
from local_stack import TEST_BOT_TOKEN, LocalTelegram
from telegram_core import BotApi, TelegramApiError


@pytest.fixture
def telegram():
    with LocalTelegram(group_limit_per_minute=3) as server:
        yield server


def api(server: LocalTelegram) -> BotApi:
    return BotApi(
        http=httpx.Client(timeout=5),
        token=TEST_BOT_TOKEN,
        base_url=server.base_url,
        backoff_s=0.01,
        max_retry_after_s=0,
    )


def test_drafts_go_to_private_chats_and_their_stop_control_can_be_pressed(telegram) -> None:
    bot = api(telegram)
    assert (
        bot.call(
            "sendMessageDraft",
            {"chat_id": 5, "draft_id": 7, "text": "<b>so</b> far", "parse_mode": "HTML", "can_stop": True},
        )
        is True
    )
    [draft] = telegram.drafts(5)
    assert draft["visible"] == "so far" and draft["can_stop"]
    pressed = telegram.press_draft_stop(5)
    assert pressed["stopped_message_generation"] == {"chat": {"id": 5, "type": "private"}, "draft_id": 7}
    with pytest.raises(TelegramApiError) as refused:
        bot.call("sendMessageDraft", {"chat_id": -100, "draft_id": 7, "text": "x"})
    assert refused.value.kind == "bad_request"
    with pytest.raises(TelegramApiError):
        bot.call("sendMessageDraft", {"chat_id": 5, "draft_id": 0, "text": "x"})


def test_messages_are_edited_deleted_and_their_buttons_pressed(telegram) -> None:
    bot = api(telegram)
    markup = {"inline_keyboard": [[{"text": "Stop", "callback_data": "stop:9"}]]}
    sent = bot.call("sendMessage", {"chat_id": 5, "text": "working", "reply_markup": markup})
    edited = bot.call("editMessageText", {"chat_id": 5, "message_id": sent["message_id"], "text": "still"})
    assert edited["text"] == "still" and telegram.edits(5)[0]["visible"] == "still"
    assert "reply_markup" not in edited  # like Telegram: an edit without the keyboard drops it
    again = {"chat_id": 5, "message_id": sent["message_id"], "text": "still", "reply_markup": markup}
    assert bot.call("editMessageText", again)["reply_markup"] == markup  # the keyboard is back
    with pytest.raises(TelegramApiError) as same:
        bot.call(
            "editMessageText",
            {"chat_id": 5, "message_id": sent["message_id"], "text": "still", "reply_markup": markup},
        )
    assert "not modified" in same.value.description
    [shown] = telegram.sent_messages(5)
    pressed = telegram.press_button(shown)["callback_query"]
    assert pressed["data"] == "stop:9" and pressed["message"]["message_id"] == sent["message_id"]
    assert bot.call("answerCallbackQuery", {"callback_query_id": pressed["id"], "text": "ok"}) is True
    assert telegram.callback_answers == [{"callback_query_id": pressed["id"], "text": "ok"}]
    assert bot.call("deleteMessage", {"chat_id": 5, "message_id": sent["message_id"]}) is True
    assert telegram.sent_messages(5) == [] and len(telegram.sent_messages(5, include_deleted=True)) == 1


def test_a_group_gets_a_429_with_retry_after_beyond_its_limit_a_private_chat_never(telegram) -> None:
    bot = api(telegram)
    for n in range(3):
        bot.send_message(-100, f"m{n}", html=False)
    with pytest.raises(TelegramApiError) as limited:
        bot.send_message(-100, "one too many", html=False)
    assert limited.value.kind == "rate_limited" and 55 <= limited.value.retry_after <= 61
    with pytest.raises(TelegramApiError):  # edits count too
        bot.call(
            "editMessageText",
            {"chat_id": -100, "message_id": telegram.sent_messages(-100)[0]["message_id"], "text": "edited"},
        )
    assert telegram.group_limited == ["sendMessage", "editMessageText"]
    for n in range(5):
        bot.send_message(5, f"p{n}", html=False)


def test_text_that_is_all_markup_is_empty_and_an_edit_too_long_is_refused_like_telegram(telegram) -> None:
    bot = api(telegram)
    all_markup = '<pre><code class="language-python"></code></pre>'
    sent = bot.call("sendMessage", {"chat_id": 5, "text": "working"})
    for method, params in [
        ("sendMessage", {"chat_id": 5}),
        ("sendMessageDraft", {"chat_id": 5, "draft_id": 7}),
        ("editMessageText", {"chat_id": 5, "message_id": sent["message_id"]}),
    ]:
        with pytest.raises(TelegramApiError) as empty:
            bot.call(method, {**params, "text": all_markup, "parse_mode": "HTML"}, attempts=1)
        assert "text is empty" in empty.value.description, method
    with pytest.raises(TelegramApiError) as long:
        bot.call("editMessageText", {"chat_id": 5, "message_id": sent["message_id"], "text": "é" * 4097})
    assert long.value.kind == "too_long"
