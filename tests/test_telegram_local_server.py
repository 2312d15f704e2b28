"""The local Bot API server answers like Telegram, records calls and injects faults; and the
public surface of the Telegram packages is exactly what their __all__ lists."""

from __future__ import annotations

import threading
import time
import types

import httpx
import pytest
import sqs_consumer
import telegram_producer
from local_stack import TEST_BOT_TOKEN, LocalTelegram, TelegramFault
from telegram_core import (
    BotApi,
    TelegramBadMarkup,
    TelegramBadRequest,
    TelegramFileTooBig,
    TelegramMessageTooLong,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorized,
)


@pytest.fixture
def telegram():
    with LocalTelegram() as server:
        yield server


def api(server: LocalTelegram, **kwargs) -> BotApi:
    return BotApi(
        http=httpx.Client(timeout=5), token=TEST_BOT_TOKEN, base_url=server.base_url, backoff_s=0.01, **kwargs
    )


def test_serves_the_methods_the_bot_and_agentbot_dev_use(telegram) -> None:
    bot = api(telegram)
    assert bot.call("getMe", {})["username"] == "agent_test_bot"
    assert bot.call("setWebhook", {"url": "https://example.test/hook", "secret_token": "s"}) is True
    assert bot.call("getWebhookInfo", {})["url"] == "https://example.test/hook"
    assert bot.call("deleteWebhook", {}) is True
    bot.send_typing(5)
    seen = []
    telegram.on_send = seen.append
    message_id = bot.send_message(5, "<b>hi</b> &amp; bye", html=True, thread_id=3, reply_to_message_id=9)
    assert seen[0]["message_id"] == message_id and seen[0]["text"] == "hi & bye"
    assert seen[0]["message_thread_id"] == 3 and seen[0]["reply_to_message"]["message_id"] == 9
    file_id = telegram.add_file(b"payload", file_path="documents/a.txt")
    info = bot.get_file(file_id)
    assert bot.download(info["file_path"]) == b"payload"
    assert [c.method for c in telegram.calls()] == [
        "getMe",
        "setWebhook",
        "getWebhookInfo",
        "deleteWebhook",
        "sendChatAction",
        "sendMessage",
        "getFile",
        "downloadFile",
    ]


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def test_uploads_are_recorded_saved_and_shown_like_telegram_messages(telegram) -> None:
    bot = api(telegram)
    seen = []
    telegram.on_send = seen.append
    photo_id = bot.send_file(
        -100, "chart.png", PNG, mime_type="image/png", thread_id=7, reply_to_message_id=3
    )
    doc_id = bot.send_file(-100, 'data "v2".csv', b"a,b\r\n1,2\r\n", mime_type="text/csv", caption="the data")
    photo, document = telegram.sent_files(-100)
    assert (photo.method, photo.file_name, photo.mime_type, photo.content()) == (
        "sendPhoto",
        "chart.png",
        "image/png",
        PNG,
    )
    assert photo.message["message_id"] == photo_id and photo.message["message_thread_id"] == 7
    assert (
        photo.message["reply_to_message"]["message_id"] == 3 and photo.message["photo"][0]["file_size"] == 264
    )
    assert document.message["message_id"] == doc_id and document.message["caption"] == "the data"
    assert document.message["document"]["file_name"] == 'data "v2".csv'
    assert document.content() == b"a,b\r\n1,2\r\n" and document.size == 10
    # saved as a file of its own, named after the message, nowhere but the server's folder
    assert document.path.name == f"{doc_id}-data_v2_.csv" and document.path.stat().st_mode & 0o077 == 0
    assert seen[1]["_file"] == {
        "name": 'data "v2".csv',
        "mime_type": "text/csv",
        "size": 10,
        "path": str(document.path),
    }
    assert [m["message_id"] for m in telegram.sent_messages(-100)] == [photo_id, doc_id]
    [call] = telegram.calls("sendDocument")  # recorded without its bytes
    assert call.params["document"] == {"file_name": 'data "v2".csv', "mime_type": "text/csv", "size": 10}
    assert call.params["caption"] == "the data"
    telegram.stop()
    assert not photo.path.exists()  # its own temporary folder goes with it


def test_uploads_fail_like_telegram_and_take_injected_faults(telegram) -> None:
    waits: list[float] = []
    bot = api(telegram, sleep=waits.append)
    telegram.inject("sendDocument", TelegramFault.retry_after_seconds(2))
    bot.send_file(1, "a.txt", b"hello", mime_type="text/plain")
    assert [c.status for c in telegram.calls("sendDocument")] == [429, 200] and waits == [2.0]
    # a 5xx after the file went through: it is in the chat, and the client does not send it again
    telegram.inject("sendDocument", TelegramFault.served_then_server_error(504))
    with pytest.raises(TelegramServerError):
        bot.send_file(1, "b.txt", b"bye", mime_type="text/plain")
    assert [c.status for c in telegram.calls("sendDocument")][2:] == [504]
    assert [f.file_name for f in telegram.sent_files(1)] == ["a.txt", "b.txt"]
    # a photo Telegram cannot process (not an image, or an injected refusal) goes as a document
    bot.send_file(1, "fake.png", b"not an image", mime_type="image/png")
    telegram.inject("sendPhoto", TelegramFault.photo_invalid_dimensions())
    bot.send_file(1, "wide.png", PNG, mime_type="image/png")
    assert [c.status for c in telegram.calls("sendPhoto")] == [400, 400]
    assert [f.method for f in telegram.sent_files(1)] == ["sendDocument"] * 4
    with pytest.raises(TelegramBadRequest) as empty:
        bot.call("sendDocument", {"chat_id": 1})
    assert "there is no document" in empty.value.description


def test_uploads_go_to_the_folder_it_is_given(tmp_path) -> None:
    with LocalTelegram(files_dir=tmp_path / "sent") as telegram:
        api(telegram).send_file(1, "../../etc/passwd", b"x", mime_type=None)
        [sent] = telegram.sent_files()
    assert sent.path.parent == tmp_path / "sent" and sent.path.name.endswith("-passwd")
    assert sent.path.read_bytes() == b"x"  # kept after the server stops


def test_a_restarted_server_keeps_the_files_an_earlier_one_saved_in_its_folder(tmp_path) -> None:
    """Message ids start over with each server: a kept folder (dev's --state-dir) already holds
    a file of that id and name, which is neither overwritten nor a failed upload."""
    for content in (b"first run", b"second run"):
        with LocalTelegram(files_dir=tmp_path / "sent") as telegram:
            api(telegram).send_file(1, "data.csv", content, mime_type="text/csv")
            assert [c.status for c in telegram.calls("sendDocument")] == [200]
    saved = sorted(tmp_path.joinpath("sent").iterdir())
    assert [p.read_bytes() for p in saved] == [b"second run", b"first run"]  # 1000-2-data.csv, 1000-data.csv


def test_get_updates_long_polls_queued_updates(telegram) -> None:
    bot = api(telegram)
    threading.Timer(0.3, lambda: telegram.push_update({"message": {"text": "typed"}})).start()
    started = time.monotonic()
    [got] = bot.call("getUpdates", {"offset": 0, "timeout": 5})
    assert got["message"]["text"] == "typed" and time.monotonic() - started < 3
    assert bot.call("getUpdates", {"offset": got["update_id"] + 1, "timeout": 0}) == []


def test_rejects_bad_html_long_text_and_a_wrong_token_like_telegram(telegram) -> None:
    bot = api(telegram)
    with pytest.raises(TelegramBadMarkup) as bad:
        bot.send_message(1, "<b>open", html=True)
    assert bad.value.kind == "bad_html" and not bad.value.retryable
    with pytest.raises(TelegramMessageTooLong) as long:
        bot.send_message(1, "é" * 4097, html=False)
    assert long.value.kind == "too_long"
    wrong = BotApi(http=httpx.Client(), token="1:wrong", base_url=telegram.base_url)
    with pytest.raises(TelegramUnauthorized) as unauthorized:
        wrong.call("getMe", {})
    assert unauthorized.value.error_code == 401
    assert "1:wrong" not in str(unauthorized.value)  # the token never reaches error text


def test_files_above_the_download_limit_are_a_file_too_big_error(telegram) -> None:
    bot = api(telegram)
    big = telegram.add_file(b"x", file_size=25 * 1024 * 1024)
    with pytest.raises(TelegramFileTooBig) as refused:
        bot.get_file(big)
    assert refused.value.kind == "file_too_big" and not refused.value.retryable
    info = bot.get_file(telegram.add_file(b"0123456789", file_path="documents/b.bin"))
    with pytest.raises(TelegramFileTooBig) as cut:
        bot.download(info["file_path"], max_bytes=4)
    assert cut.value.kind == "file_too_big"


def test_client_honours_retry_after_and_gives_up_on_long_waits(telegram) -> None:
    waits: list[float] = []
    bot = api(telegram, sleep=waits.append, max_retry_after_s=10)
    telegram.inject("sendMessage", TelegramFault.retry_after_seconds(3))
    bot.send_message(1, "x", html=False)
    assert waits == [3.0]
    telegram.inject("sendMessage", TelegramFault.retry_after_seconds(60))
    with pytest.raises(TelegramRetryAfter) as err:
        bot.send_message(1, "x", html=False)
    assert err.value.retryable and err.value.retry_after == 60
    assert len(telegram.sent_messages()) == 1


def test_client_backs_off_on_5xx_then_raises_retryable(telegram) -> None:
    waits: list[float] = []
    bot = api(telegram, sleep=waits.append, max_attempts=3)
    telegram.inject("sendMessage", TelegramFault.server_error(502), times=3)
    with pytest.raises(TelegramServerError) as err:
        bot.send_message(1, "x", html=False)
    assert err.value.kind == "server" and err.value.retryable
    assert waits == [0.01, 0.02]
    assert telegram.sent_messages() == []


def test_unreachable_api_is_a_retryable_network_error() -> None:
    with LocalTelegram() as server:
        base = server.base_url
    bot = BotApi(
        http=httpx.Client(timeout=1),
        token=TEST_BOT_TOKEN,
        base_url=base,
        max_attempts=2,
        sleep=lambda s: None,
    )
    with pytest.raises(TelegramNetworkError) as err:
        bot.send_typing(1)
    assert err.value.kind == "network" and err.value.retryable
    assert TEST_BOT_TOKEN not in str(err.value)


@pytest.mark.parametrize("package", [telegram_producer, sqs_consumer])
def test_public_surface_is_exactly_all(package) -> None:
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(package.__all__)
    assert all(getattr(package, name) is not None for name in package.__all__)
