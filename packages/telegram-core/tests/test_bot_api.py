"""The one Bot API client: each kind of failure is its own error type, decided from the answer
in one place; only what Telegram says to retry is retried; the token never reaches error text.
The network is an httpx MockTransport, so these run without a server."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from telegram_core import (
    TELEGRAM_API_BASE,
    BotApi,
    TelegramApiError,
    TelegramBadMarkup,
    TelegramBadPhoto,
    TelegramBadRequest,
    TelegramChatMigrated,
    TelegramChatUnavailable,
    TelegramFileTooBig,
    TelegramForbidden,
    TelegramMediaForbidden,
    TelegramMessageNotFound,
    TelegramMessageNotModified,
    TelegramMessageTooLong,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorized,
    check_response,
)

TOKEN = "123456:SECRET-token-never-shown"


def failure(code: int, description: str, **parameters: Any) -> bytes:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("status", "content", "expected", "retryable"),
    [
        (429, failure(429, "Too Many Requests: retry after 7", retry_after=7), TelegramRetryAfter, True),
        (502, failure(502, "Bad Gateway"), TelegramServerError, True),
        (502, b"<html>bad gateway</html>", TelegramServerError, True),
        (400, failure(400, "Bad Request: message is too long"), TelegramMessageTooLong, False),
        (400, failure(400, "Bad Request: can't parse entities: unclosed tag"), TelegramBadMarkup, False),
        (
            400,
            failure(400, "Bad Request: can't find end tag corresponding to start tag b"),
            TelegramBadMarkup,
            False,
        ),
        (400, failure(400, "Bad Request: file is too big"), TelegramFileTooBig, False),
        # an upload past what Telegram takes, answered by its front end (JSON or not)
        (413, failure(413, "Request Entity Too Large"), TelegramFileTooBig, False),
        (413, b"<html><h1>413 Request Entity Too Large</h1></html>", TelegramFileTooBig, False),
        (400, failure(400, "Bad Request: PHOTO_INVALID_DIMENSIONS"), TelegramBadPhoto, False),
        (
            400,
            failure(400, "Bad Request: not enough rights to send documents to the chat"),
            TelegramMediaForbidden,
            False,
        ),
        (
            400,
            failure(400, "Bad Request: not enough rights to send text messages to the chat"),
            TelegramChatUnavailable,
            False,
        ),
        (403, failure(403, "Forbidden: bot was blocked by the user"), TelegramForbidden, False),
        (401, failure(401, "Unauthorized"), TelegramUnauthorized, False),
        (400, failure(400, "Bad Request: message text is empty"), TelegramBadRequest, False),
        (404, failure(404, "Not Found"), TelegramBadRequest, False),
    ],
)
def test_each_failure_is_decided_once_into_its_type(
    status: int, content: bytes, expected: type[TelegramApiError], retryable: bool
) -> None:
    with pytest.raises(TelegramApiError) as caught:
        check_response("sendMessage", status, content)
    assert type(caught.value) is expected
    assert caught.value.retryable is retryable and caught.value.method == "sendMessage"
    assert caught.value.error_code == status


def test_retry_after_is_an_attribute_not_text() -> None:
    with pytest.raises(TelegramRetryAfter) as caught:
        check_response("sendMessage", 429, failure(429, "Too Many Requests", retry_after=12))
    assert caught.value.retry_after == 12.0
    with pytest.raises(TelegramRetryAfter) as unsaid:  # no parameters: a short wait, not none
        check_response("sendMessage", 429, failure(429, "Too Many Requests"))
    assert unsaid.value.retry_after == 1.0


@pytest.mark.parametrize(
    ("status", "description", "expected"),
    [
        (403, "Forbidden: bot was blocked by the user", TelegramForbidden),
        (403, "Forbidden: bot was kicked from the supergroup chat", TelegramForbidden),
        (403, "Forbidden: user is deactivated", TelegramForbidden),
        (400, "Bad Request: TOPIC_CLOSED", TelegramChatUnavailable),
        (400, "Bad Request: message thread not found", TelegramChatUnavailable),
        (400, "Bad Request: not enough rights to send text messages to the chat", TelegramChatUnavailable),
        (400, "Bad Request: group chat was upgraded to a supergroup chat", TelegramChatMigrated),
        # a deleted group, a deleted account: the chat is gone for the bot
        (400, "Bad Request: chat not found", TelegramChatUnavailable),
        (400, "Bad Request: group chat was deactivated", TelegramChatUnavailable),
        (400, "Bad Request: group is deactivated", TelegramChatUnavailable),
        (403, "Forbidden: the group chat was deleted", TelegramForbidden),
        (403, "Forbidden: bot is not a member of the channel chat", TelegramForbidden),
        (403, "Forbidden: bot can't initiate conversation with a user", TelegramForbidden),
        # the bot may no longer write there
        (400, "Bad Request: TOPIC_DELETED", TelegramChatUnavailable),
        (400, "Bad Request: have no rights to send a message", TelegramChatUnavailable),
        (400, "Bad Request: have no write access to the chat", TelegramChatUnavailable),
        (400, "Bad Request: need administrator rights in the channel chat", TelegramChatUnavailable),
        (400, "Bad Request: CHAT_WRITE_FORBIDDEN", TelegramChatUnavailable),
        (400, "Bad Request: CHAT_RESTRICTED", TelegramChatUnavailable),
    ],
)
def test_a_chat_the_bot_can_no_longer_post_in_says_so(
    status: int, description: str, expected: type[TelegramApiError]
) -> None:
    """Blocked, removed, a closed topic, an upgraded group, a deleted group or account: the
    users' doing, not the bot's; callers read ``chat_unreachable`` instead of the description."""
    with pytest.raises(TelegramApiError) as caught:
        check_response("sendMessage", status, failure(status, description))
    assert type(caught.value) is expected
    assert caught.value.chat_unreachable and not caught.value.retryable


@pytest.mark.parametrize(
    ("method", "description"),
    [
        ("editMessageText", "Bad Request: message to edit not found"),
        ("deleteMessage", "Bad Request: message to delete not found"),
    ],
)
def test_a_message_someone_deleted_is_not_found_in_a_chat_still_reachable(
    method: str, description: str
) -> None:
    with pytest.raises(TelegramMessageNotFound) as caught:
        check_response(method, 400, failure(400, description))
    assert not caught.value.chat_unreachable and not caught.value.retryable


def test_an_edit_to_what_the_message_shows_already_is_not_modified_not_a_bad_request() -> None:
    """What a retried edit gets when its first attempt landed: callers take it as done."""
    with pytest.raises(TelegramMessageNotModified) as caught:
        check_response("editMessageText", 400, failure(400, "Bad Request: message is not modified"))
    assert not caught.value.chat_unreachable and not caught.value.retryable


def test_other_failures_leave_the_chat_reachable() -> None:
    for status, description in [
        (400, "Bad Request: chat_id is empty"),  # a chat id of ours went missing: our bug
        (400, "Bad Request: message text is empty"),
        (502, "Bad Gateway"),
        (401, "Unauthorized"),
    ]:
        with pytest.raises(TelegramApiError) as caught:
            check_response("sendMessage", status, failure(status, description))
        assert not caught.value.chat_unreachable


def test_an_upgraded_group_names_the_supergroup_it_became() -> None:
    upgraded = failure(
        400, "Bad Request: group chat was upgraded to a supergroup chat", migrate_to_chat_id=-1001234
    )
    with pytest.raises(TelegramChatMigrated) as caught:
        check_response("sendMessage", 400, upgraded)
    assert caught.value.migrate_to_chat_id == -1001234
    with pytest.raises(TelegramChatMigrated) as unsaid:  # no parameters: nowhere to resend
        check_response(
            "sendMessage", 400, failure(400, "Bad Request: group chat was upgraded to a supergroup chat")
        )
    assert unsaid.value.migrate_to_chat_id is None


def test_an_ok_answer_is_its_result() -> None:
    assert check_response("getMe", 200, b'{"ok": true, "result": {"id": 1}}') == {"id": 1}


def test_a_description_quoting_the_token_is_scrubbed() -> None:
    with pytest.raises(TelegramBadRequest) as caught:
        check_response("getMe", 400, failure(400, f"bad token {TOKEN}"), token=TOKEN)
    assert TOKEN not in str(caught.value) and "<token>" in caught.value.description


Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, **kwargs: Any) -> tuple[BotApi, list[float]]:
    waits: list[float] = []
    api = BotApi(
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        token=TOKEN,
        base_url="http://bot.test/",
        backoff_s=0.5,
        sleep=waits.append,
        **kwargs,
    )
    return api, waits


def scripted(*answers: tuple[int, bytes]) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, content = queue.pop(0)
        return httpx.Response(status, content=content)

    return handle, seen


def test_the_base_url_is_injectable_and_the_default_is_written_once() -> None:
    handle, seen = scripted((200, b'{"ok": true, "result": {"message_id": 41}}'))
    api, _ = client(handle)
    assert api.send_message(5, "hi", html=True, thread_id=3, reply_to_message_id=9) == 41
    assert str(seen[0].url) == f"http://bot.test/bot{TOKEN}/sendMessage"
    sent = json.loads(seen[0].content)
    assert sent["parse_mode"] == "HTML" and sent["message_thread_id"] == 3
    assert sent["reply_parameters"] == {"message_id": 9, "allow_sending_without_reply": True}
    assert TELEGRAM_API_BASE == "https://api.telegram.org"


def test_retry_after_is_waited_then_the_call_succeeds() -> None:
    handle, seen = scripted(
        (429, failure(429, "Too Many Requests", retry_after=3)),
        (200, b'{"ok": true, "result": true}'),
    )
    api, waits = client(handle)
    assert api.call("setWebhook", {"url": "https://x.test"}) is True
    assert waits == [3.0] and len(seen) == 2


def test_a_retry_after_longer_than_allowed_is_raised_at_once() -> None:
    handle, seen = scripted((429, failure(429, "Too Many Requests", retry_after=60)))
    api, waits = client(handle, max_retry_after_s=10)
    with pytest.raises(TelegramRetryAfter) as caught:
        api.call("sendMessage", {})
    assert caught.value.retry_after == 60 and waits == [] and len(seen) == 1


def test_a_calls_own_limit_on_retry_after_wins_over_the_clients() -> None:
    """A call that may wait only briefly (a clean-up once the answer is out) is not held for
    the client's longer limit."""
    handle, seen = scripted((429, failure(429, "Too Many Requests", retry_after=20)))
    api, waits = client(handle, max_retry_after_s=30)
    with pytest.raises(TelegramRetryAfter):
        api.call("deleteMessage", {}, max_retry_after_s=5)
    assert waits == [] and len(seen) == 1


def test_server_errors_back_off_and_bad_requests_are_not_retried() -> None:
    handle, seen = scripted(*[(500, failure(500, "Internal"))] * 3)
    api, waits = client(handle, max_attempts=3)
    with pytest.raises(TelegramServerError):
        api.call("sendMessage", {})
    assert waits == [0.5, 1.0] and len(seen) == 3
    handle, seen = scripted((400, failure(400, "Bad Request: message text is empty")))
    api, waits = client(handle)
    with pytest.raises(TelegramBadRequest):
        api.call("sendMessage", {})
    assert waits == [] and len(seen) == 1


def test_one_attempt_means_no_retry() -> None:
    handle, seen = scripted((502, failure(502, "Bad Gateway")))
    api, waits = client(handle, max_attempts=1)
    with pytest.raises(TelegramServerError):
        api.call("getWebhookInfo", {})
    assert waits == [] and len(seen) == 1


def test_a_network_failure_names_no_url_and_no_token() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {request.url}", request=request)

    api, waits = client(refuse, max_attempts=2)
    with pytest.raises(TelegramNetworkError) as caught:
        api.call("getMe", {})
    assert caught.value.retryable and caught.value.error_code == 0 and len(waits) == 1
    assert TOKEN not in str(caught.value) and "bot.test" not in str(caught.value)
    assert "ConnectError" in str(caught.value)


def test_a_download_above_the_limit_is_file_too_big() -> None:
    api, _ = client(lambda request: httpx.Response(200, content=b"0123456789"))
    assert api.download("documents/a.bin") == b"0123456789"
    with pytest.raises(TelegramFileTooBig):
        api.download("documents/a.bin", max_bytes=4)


def form(request: httpx.Request) -> dict[str, Any]:
    """The fields of a multipart/form-data request; a file field as (file name, type, bytes)."""
    import email.parser
    import email.policy

    head = f"content-type: {request.headers['content-type']}\r\n\r\n".encode()
    parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.read())
    fields: dict[str, Any] = {}
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if part.get_filename() is None:
            fields[name] = payload.decode()
        else:
            fields[name] = (part.get_filename(), part.get_content_type(), payload)
    return fields


OK_MESSAGE = (200, b'{"ok": true, "result": {"message_id": 77}}')
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_an_image_goes_as_a_photo_upload_in_the_topic_quoting_the_message() -> None:
    handle, seen = scripted(OK_MESSAGE)
    api, _ = client(handle)
    message_id = api.send_file(5, "chart.png", PNG, mime_type="image/png", thread_id=3, reply_to_message_id=9)
    assert message_id == 77
    assert str(seen[0].url) == f"http://bot.test/bot{TOKEN}/sendPhoto"
    assert seen[0].headers["content-type"].startswith("multipart/form-data; boundary=")
    sent = form(seen[0])
    assert sent["photo"] == ("chart.png", "image/png", PNG)
    assert sent["chat_id"] == "5" and sent["message_thread_id"] == "3"
    assert json.loads(sent["reply_parameters"]) == {"message_id": 9, "allow_sending_without_reply": True}
    assert "caption" not in sent


@pytest.mark.parametrize(
    ("mime_type", "size"),
    [
        ("text/csv", 10),
        (None, 10),
        ("image/gif", 10),
        ("image/svg+xml", 10),
        ("image/png", 10 * 1024 * 1024 + 1),
    ],
)
def test_anything_telegram_does_not_show_inline_goes_as_a_document(mime_type: str | None, size: int) -> None:
    handle, seen = scripted(OK_MESSAGE)
    api, _ = client(handle)
    content = b"x" * size
    assert api.send_file(5, "data.bin", content, mime_type=mime_type, caption="here") == 77
    assert str(seen[0].url).endswith("/sendDocument")
    sent = form(seen[0])
    assert sent["document"] == ("data.bin", mime_type or "application/octet-stream", content)
    assert sent["caption"] == "here" and "message_thread_id" not in sent and "reply_parameters" not in sent


@pytest.mark.parametrize(
    "description",
    [
        "Bad Request: PHOTO_INVALID_DIMENSIONS",
        "Bad Request: IMAGE_PROCESS_FAILED",
        "Bad Request: something Telegram gives no name for",
    ],
)
def test_a_photo_telegram_refuses_goes_again_as_a_document(description: str) -> None:
    handle, seen = scripted((400, failure(400, description)), OK_MESSAGE)
    api, waits = client(handle)
    assert api.send_file(5, "wide.png", PNG, mime_type="image/png", thread_id=3) == 77
    assert [str(r.url).rsplit("/", 1)[1] for r in seen] == ["sendPhoto", "sendDocument"]
    assert form(seen[1])["document"] == ("wide.png", "image/png", PNG)
    assert form(seen[1])["message_thread_id"] == "3" and waits == []


def test_a_photo_refused_for_the_chat_is_not_sent_again_as_a_document() -> None:
    handle, seen = scripted((400, failure(400, "Bad Request: TOPIC_CLOSED")))
    api, _ = client(handle)
    with pytest.raises(TelegramChatUnavailable):
        api.send_file(5, "chart.png", PNG, mime_type="image/png", thread_id=3)
    assert len(seen) == 1


def test_an_upload_telegram_refused_for_now_is_retried_with_the_same_bytes() -> None:
    """A 429 says Telegram did not take the call: it goes again after ``retry_after``."""
    handle, seen = scripted(
        (429, failure(429, "Too Many Requests", retry_after=2)),
        (429, failure(429, "Too Many Requests", retry_after=3)),
        OK_MESSAGE,
    )
    api, waits = client(handle)
    assert api.send_file(5, "report.csv", b"a,b\n1,2\n", mime_type="text/csv") == 77
    assert waits == [2.0, 3.0]
    assert [form(r)["document"] for r in seen] == [("report.csv", "text/csv", b"a,b\n1,2\n")] * 3


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_an_upload_answered_with_a_5xx_is_not_sent_twice(status: int) -> None:
    """The Bot API server or the proxy in front of it may fail after the file was posted:
    a second upload could show it twice in the chat."""
    handle, seen = scripted((status, failure(status, "Bad Gateway")), OK_MESSAGE)
    api, waits = client(handle)
    with pytest.raises(TelegramServerError) as caught:
        api.send_file(5, "report.csv", b"a,b\n", mime_type="text/csv")
    assert caught.value.may_have_arrived and len(seen) == 1 and waits == []


def failing_once(error: type[httpx.TransportError]) -> tuple[Handler, list[httpx.Request]]:
    """A network that breaks the first request with ``error``, then answers OK_MESSAGE."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise error("broken", request=request)
        return httpx.Response(OK_MESSAGE[0], content=OK_MESSAGE[1])

    return handle, seen


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.WriteError])
def test_an_upload_that_never_reached_telegram_is_sent_again(error: type[httpx.TransportError]) -> None:
    handle, seen = failing_once(error)
    api, _ = client(handle)
    assert api.send_file(5, "report.csv", b"a,b\n", mime_type="text/csv") == 77
    assert len(seen) == 2


@pytest.mark.parametrize("error", [httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError])
def test_an_upload_whose_answer_was_lost_is_not_sent_twice(error: type[httpx.TransportError]) -> None:
    """The whole file went out: Telegram may have posted it, and a second upload would show
    it twice in the chat."""
    handle, seen = failing_once(error)
    api, _ = client(handle)
    with pytest.raises(TelegramNetworkError) as caught:
        api.send_file(5, "report.csv", b"a,b\n", mime_type="text/csv")
    assert caught.value.may_have_arrived and len(seen) == 1


def test_an_upload_that_cannot_reach_telegram_names_no_token() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.WriteError(f"broken pipe to {request.url}", request=request)

    api, _ = client(refuse, max_attempts=2)
    with pytest.raises(TelegramNetworkError) as caught:
        api.send_file(5, "report.csv", b"a,b\n", mime_type="text/csv")
    assert caught.value.method == "sendDocument" and TOKEN not in str(caught.value)


class RotatedToken:
    """A token source whose parameter holds ``renewed`` (None: nothing new) once asked again."""

    name = "/agentbot/bot-token"

    def __init__(self, renewed: str | None) -> None:
        self.value = TOKEN
        self.renewed = renewed
        self.refused: list[str] = []
        self.unreadable = False

    def current(self) -> str:
        return self.value

    def renew(self, refused: str) -> bool:
        self.refused.append(refused)
        if self.renewed is None:
            return False
        self.value = self.renewed
        return True


@pytest.mark.parametrize("refusal", [(401, failure(401, "Unauthorized")), (404, failure(404, "Not Found"))])
def test_a_refused_token_is_renewed_and_the_call_sent_once_more_with_the_new_one(
    refusal: tuple[int, bytes],
) -> None:
    handle, seen = scripted(refusal, (200, b'{"ok": true, "result": {"message_id": 7}}'))
    token = RotatedToken("654321:NEW-token")
    api = BotApi(http=httpx.Client(transport=httpx.MockTransport(handle)), token=token, base_url="http://t")
    assert api.send_message(1, "hi", html=False) == 7
    assert [r.url.path for r in seen] == [f"/bot{TOKEN}/sendMessage", "/bot654321:NEW-token/sendMessage"]
    assert token.refused == [TOKEN]


def test_a_refused_token_with_nothing_new_is_not_sent_again() -> None:
    handle, seen = scripted((401, failure(401, "Unauthorized")))
    token = RotatedToken(None)
    api = BotApi(http=httpx.Client(transport=httpx.MockTransport(handle)), token=token, base_url="http://t")
    with pytest.raises(TelegramUnauthorized) as caught:
        api.send_message(1, "hi", html=False)
    assert caught.value.token_refused and len(seen) == 1
