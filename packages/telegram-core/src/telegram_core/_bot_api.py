"""The one Bot API client: every call to Telegram in the codebase goes through ``BotApi``.

Retries what Telegram says to retry, no more: a 429 waits ``retry_after``; 5xx and network
errors back off (an upload only when Telegram cannot have taken it); every other error is
raised at once. What kind of failure an answer is gets decided in one place,
``check_response``. The bot token is part of the URL, so no URL or httpx error text ever
reaches an error message or a log line. A call Telegram answers as if the token
were wrong (``token_refused``) goes once more when the token's source has another one by then
(the operator rotated it in SSM: ``session_core.RotatingSecret``); Telegram did nothing with
the refused call, so nothing is done twice.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Mapping
from typing import IO, Any, Literal

import httpx
from session_core import FixedSecret, MessageDecodeError, SecretSource, decode_json, encode_json, get_logger

from ._call_deadline import Extensions, WholeCallUnsent, call_within
from ._errors import (
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
)

log = get_logger(__name__)

# The one place the real Bot API's address is written; tests and `agentbot dev` pass their own.
TELEGRAM_API_BASE = "https://api.telegram.org"
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
# What a bot may upload: any file up to 50 MB as a document; an image Telegram shows inline
# (these types, up to 10 MB) as a photo.
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024
PHOTO_MIME_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
# A call made with (almost) no time left still gets this long: a zero timeout is no timeout.
MIN_CALL_TIMEOUT_S = 0.1

# Telegram says which bad request it is only in the description; read here, nowhere else.
_BAD_REQUESTS: tuple[tuple[tuple[str, ...], type[TelegramBadRequest]], ...] = (
    (("message is too long",), TelegramMessageTooLong),
    (("can't parse entities", "can't find end tag"), TelegramBadMarkup),
    (("file is too big",), TelegramFileTooBig),  # getFile above the 20 MB download limit
    # an uploaded photo Telegram cannot process or show (a document of the same file goes)
    (
        ("photo_invalid", "image_process_failed", "photo_save_file_invalid", "photo_ext_invalid"),
        TelegramBadPhoto,
    ),
    # the group lets the bot write but not send this kind of file (its text still goes); before
    # the refusals below, whose "not enough rights to send" these begin with. sendDocument lets
    # Telegram tell what a file holds: an MP4 is refused as a video, a GIF as an animation.
    (
        tuple(
            f"not enough rights to send {kind}"
            for kind in ("photos", "documents", "videos", "animations", "music", "voice notes", "video notes")
        ),
        TelegramMediaForbidden,
    ),
    # the bot may no longer post there: the topic is closed or gone, the bot lost the right to
    # write (TDLib's words; a raw MTProto name at times), the group or account was deleted
    (("topic_closed", "topic_deleted", "message thread not found"), TelegramChatUnavailable),
    (
        (
            "not enough rights to send",
            "have no rights to send",
            "have no write access to the chat",
            "need administrator rights in the channel chat",
            "chat_write_forbidden",
            "chat_restricted",
        ),
        TelegramChatUnavailable,
    ),
    # Decided: the chat id is always one Telegram's own update carried, so "not found" means
    # the chat is gone for the bot (a deleted group or account), not a bug of ours.
    (("chat not found", "group chat was deactivated", "group is deactivated"), TelegramChatUnavailable),
    (("message to edit not found", "message to delete not found"), TelegramMessageNotFound),
    (("message is not modified",), TelegramMessageNotModified),
)
_MIGRATED = "group chat was upgraded to a supergroup"
# Network errors before the request was whole on the wire: Telegram cannot have acted on it.
# A read error, a read timeout or a dropped connection after it may follow a done call.
_NOT_ARRIVED = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
    WholeCallUnsent,  # its time ran out while it connected: stopped before a byte went
)


def error_for(
    method: str,
    error_code: int,
    description: str,
    *,
    retry_after: float | None = None,
    migrate_to_chat_id: int | None = None,
) -> TelegramApiError:
    """The typed error for a failed call: by ``error_code`` first (429, 0 for no answer, 5xx,
    413, 401, 403), then by the description of a bad request Telegram gives no code of its own
    (``migrate_to_chat_id``: the supergroup a group became, from the answer's ``parameters``)."""
    if error_code == 429:
        return TelegramRetryAfter(method, error_code, description, retry_after=retry_after or 1.0)
    if error_code == 0:
        return TelegramNetworkError(method, error_code, description)
    if error_code >= 500:
        return TelegramServerError(method, error_code, description)
    if error_code == 413:  # "Request Entity Too Large": an upload past what Telegram takes
        return TelegramFileTooBig(method, error_code, description)
    text = description.lower()
    if migrate_to_chat_id is not None or _MIGRATED in text:
        return TelegramChatMigrated(method, error_code, description, migrate_to_chat_id=migrate_to_chat_id)
    for phrases, kind in _BAD_REQUESTS:
        if any(phrase in text for phrase in phrases):
            return kind(method, error_code, description)
    if error_code == 401:
        return TelegramUnauthorized(method, error_code, description)
    if error_code == 403:
        return TelegramForbidden(method, error_code, description)
    return TelegramBadRequest(method, error_code, description)


def check_response(method: str, status_code: int, content: bytes, *, token: str = "") -> Any:
    """The ``result`` of a Bot API answer, or the typed TelegramApiError it stands for.

    ``token`` is scrubbed from Telegram's description, should it ever quote it.
    """
    try:
        body = decode_json(content, json.loads, "Bot API answer")
    except MessageDecodeError:
        body = None
    if not isinstance(body, dict):
        raise error_for(method, status_code or 0, f"answer is not JSON (HTTP {status_code})")
    if body.get("ok") is True:
        return body.get("result")
    parameters = body.get("parameters")
    if not isinstance(parameters, dict):
        parameters = {}
    retry_after = parameters.get("retry_after")
    migrate_to = parameters.get("migrate_to_chat_id")
    description = str(body.get("description") or "no description")
    if token:
        description = description.replace(token, "<token>")
    code = body.get("error_code")
    error_code = code if isinstance(code, int) and code else status_code
    raise error_for(
        method,
        error_code,
        description,
        retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
        # bool is an int to Python, not a chat id
        migrate_to_chat_id=migrate_to
        if isinstance(migrate_to, int) and not isinstance(migrate_to, bool)
        else None,
    )


ChatAction = Literal["typing", "upload_photo", "upload_document"]


def sent_as_photo(mime_type: str | None, size: int) -> bool:
    """Whether ``send_file`` sends a file as a photo (shown inline) rather than a document."""
    return mime_type in PHOTO_MIME_TYPES and size <= MAX_PHOTO_BYTES


class BotApi:
    """Calls the Bot API at ``base_url`` for the bot with ``token`` (a value, or a source that
    renews it when Telegram refuses it) through ``http``.

    ``max_attempts`` bounds every call's retries (1: no retry, what an operator command
    wants); ``sleep`` is injectable so tests wait for nothing.
    """

    def __init__(
        self,
        *,
        http: httpx.Client,
        token: str | SecretSource,
        base_url: str = TELEGRAM_API_BASE,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        max_retry_after_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self._token = FixedSecret(token, name="the bot token") if isinstance(token, str) else token
        self._base = base_url.rstrip("/")
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._max_retry_after_s = max_retry_after_s
        self._sleep = sleep

    def token_unreadable(self) -> bool:
        """Whether SSM refused the token's last re-read to the role (the operator was told which
        key setting to fix): Telegram refusing the old token is that, not a token to replace."""
        return self._token.unreadable

    def call(
        self,
        method: str,
        params: Mapping[str, Any],
        *,
        attempts: int | None = None,
        max_retry_after_s: float | None = None,
        time_left: Callable[[], float] | None = None,
    ) -> Any:
        """Call ``method`` with JSON ``params`` and return its ``result``.

        Retries 429 (after ``retry_after``, if no longer than ``max_retry_after_s``: this
        call's, else the client's), 5xx and network errors up to ``attempts`` times in all;
        raises TelegramApiError. ``time_left()``: the seconds the caller still has, read around
        each call; a wait is taken only when it and another call as slow as the last fit in
        what is left, else the error is raised; each call ends within it too, whole (not only
        each of its HTTP phases: a network error that may have arrived when it does not).
        """
        body = encode_json(dict(params))
        return self._with_retries(
            method,
            lambda token: self._post_within(
                time_left,
                lambda extensions: self._http.post(
                    self._method_url(method, token),
                    content=body,
                    headers={"content-type": "application/json"},
                    timeout=self._timeout_within(time_left),
                    extensions=extensions,
                ),
            ),
            attempts,
            max_retry_after_s,
            time_left=time_left,
        )

    def _with_retries(
        self,
        method: str,
        post: Callable[[str], httpx.Response],
        attempts: int | None = None,
        max_retry_after_s: float | None = None,
        *,
        resend_safe: bool = True,
        time_left: Callable[[], float] | None = None,
    ) -> Any:
        total = attempts or self._max_attempts
        longest_wait = self._max_retry_after_s if max_retry_after_s is None else max_retry_after_s
        for attempt in range(1, total + 1):
            left_before_call = time_left() if time_left is not None else 0.0
            try:
                return self._answer_of(method, post)
            except TelegramApiError as error:
                if not error.retryable or attempt == total:
                    raise
                if not resend_safe and error.may_have_arrived:
                    raise  # perhaps done, its answer lost or an error: sent again, it would show twice
                if isinstance(error, TelegramRetryAfter):
                    wait = error.retry_after
                    if wait > longest_wait:
                        raise  # let the caller come back later instead of idling
                else:
                    wait = self._backoff_s * 2 ** (attempt - 1)
                if time_left is not None:
                    left = time_left()
                    # The call after the wait is likely as slow as this one was.
                    if wait + (left_before_call - left) > left:
                        raise  # the caller's time would end during the wait or the next call
                log.warning("telegram_retry", method=method, kind=error.kind, wait_s=wait)
                self._sleep(wait)
        raise AssertionError("unreachable")

    @staticmethod
    def _post_within(
        time_left: Callable[[], float] | None, post: Callable[[Extensions], httpx.Response]
    ) -> httpx.Response:
        """``post(extensions)`` ended within the caller's time left, whole: the timeouts below
        bound each phase of it only (an answer that trickles in takes as long as it likes);
        given up before its request went out, it never sends it (see _call_deadline)."""
        if time_left is None:
            return post({})
        return call_within(max(time_left(), MIN_CALL_TIMEOUT_S), post)

    def _timeout_within(self, time_left: Callable[[], float] | None) -> httpx.Timeout:
        """The HTTP client's timeouts, none longer than the caller's time left: a slow answer
        must not hold the caller (a Lambda invocation) past its end."""
        own = self._http.timeout
        if time_left is None:
            return own
        left = max(time_left(), MIN_CALL_TIMEOUT_S)

        def bounded(seconds: float | None) -> float:
            return left if seconds is None else min(seconds, left)

        return httpx.Timeout(
            connect=bounded(own.connect),
            read=bounded(own.read),
            write=bounded(own.write),
            pool=bounded(own.pool),
        )

    def _method_url(self, method: str, token: str) -> str:
        return f"{self._base}/bot{token}/{method}"

    def _answer_of(self, method: str, post: Callable[[str], httpx.Response]) -> Any:
        token = self._token.current()
        try:
            return self._answer_with(method, post, token)
        except TelegramApiError as error:
            if not error.token_refused or not self._token.renew(token):
                raise
        log.info("telegram_resent_with_renewed_token", method=method)
        return self._answer_with(method, post, self._token.current())

    def _answer_with(self, method: str, post: Callable[[str], httpx.Response], token: str) -> Any:
        try:
            response = post(token)
        except httpx.HTTPError as exc:
            # httpx messages can quote the URL, which holds the token: name the error class only.
            raise TelegramNetworkError(
                method,
                0,
                f"cannot reach the Bot API ({type(exc).__name__})",
                may_have_arrived=not isinstance(exc, _NOT_ARRIVED),
            ) from None
        return check_response(method, response.status_code, response.content, token=token)

    def send_message(
        self,
        chat_id: int,
        text: str,
        *,
        html: bool,
        thread_id: int = 0,
        reply_to_message_id: int | None = None,
        reply_markup: Mapping[str, Any] | None = None,
        time_left: Callable[[], float] | None = None,
    ) -> int:
        """Send one message (HTML or plain), with inline buttons when ``reply_markup`` is
        given; returns its message_id. ``time_left``: as for ``call``."""
        params: dict[str, Any] = {
            "chat_id": chat_id,
            "text": text,
            "link_preview_options": {"is_disabled": True},
        }
        if html:
            params["parse_mode"] = "HTML"
        if thread_id:
            params["message_thread_id"] = thread_id
        if reply_to_message_id is not None:
            params["reply_parameters"] = {
                "message_id": reply_to_message_id,
                "allow_sending_without_reply": True,
            }
        if reply_markup is not None:
            params["reply_markup"] = dict(reply_markup)
        result = self.call("sendMessage", params, time_left=time_left)
        return int(result["message_id"])

    def edit_message_text(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        html: bool,
        reply_markup: Mapping[str, Any] | None = None,
        attempts: int | None = None,
        max_retry_after_s: float | None = None,
        time_left: Callable[[], float] | None = None,
    ) -> None:
        """Replace the text of message ``message_id``; without ``reply_markup`` its inline
        buttons go (Telegram drops a keyboard an edit does not repeat). ``attempts``,
        ``max_retry_after_s``, ``time_left``: as for ``call``."""
        params: dict[str, Any] = {
            "chat_id": chat_id,
            "message_id": message_id,
            "text": text,
            "link_preview_options": {"is_disabled": True},
        }
        if html:
            params["parse_mode"] = "HTML"
        if reply_markup is not None:
            params["reply_markup"] = dict(reply_markup)
        self.call(
            "editMessageText",
            params,
            attempts=attempts,
            max_retry_after_s=max_retry_after_s,
            time_left=time_left,
        )

    def edit_message_reply_markup(
        self,
        chat_id: int,
        message_id: int,
        reply_markup: Mapping[str, Any],
        *,
        time_left: Callable[[], float] | None = None,
    ) -> None:
        """Put the inline buttons ``reply_markup`` under message ``message_id``, its text
        unchanged (TelegramMessageNotModified when they are there already). ``time_left``: as
        for ``call``."""
        params = {"chat_id": chat_id, "message_id": message_id, "reply_markup": dict(reply_markup)}
        self.call("editMessageReplyMarkup", params, time_left=time_left)

    def send_file(
        self,
        chat_id: int,
        file_name: str,
        content: bytes,
        *,
        mime_type: str | None,
        thread_id: int = 0,
        reply_to_message_id: int | None = None,
        caption: str | None = None,
        time_left: Callable[[], float] | None = None,
        before_fallback: Callable[[], None] | None = None,
    ) -> int:
        """Upload ``content`` as ``file_name`` (multipart/form-data, retried as ``call``, but
        for a 5xx or a network error after the upload went out (the error's
        ``may_have_arrived``): resent, a file Telegram took would show twice):
        as a photo (sendPhoto) when Telegram shows it inline (``PHOTO_MIME_TYPES``, at most
        ``MAX_PHOTO_BYTES``), else as a document (sendDocument). A photo Telegram refuses
        (TelegramBadPhoto, the group's permissions, or a bad request it names no reason for) goes
        again as a document, after ``before_fallback()`` (which may raise to keep it from
        going: the caller's time to begin a send is over).
        ``caption``: plain text under the file; ``time_left``: as for ``call`` (both tries).
        Returns the message_id."""
        fields: dict[str, str] = {"chat_id": str(chat_id)}
        if thread_id:
            fields["message_thread_id"] = str(thread_id)
        if reply_to_message_id is not None:
            fields["reply_parameters"] = encode_json(
                {"message_id": reply_to_message_id, "allow_sending_without_reply": True}
            ).decode()
        if caption:
            fields["caption"] = caption
        if sent_as_photo(mime_type, len(content)):
            try:
                return self._upload("photo", fields, file_name, content, mime_type, time_left)
            except TelegramBadRequest as exc:
                if exc.chat_unreachable or exc.kind not in ("bad_photo", "media_forbidden", "bad_request"):
                    raise
                log.warning("photo_sent_as_document", kind=exc.kind, error_code=exc.error_code)
            if before_fallback is not None:
                before_fallback()
        return self._upload("document", fields, file_name, content, mime_type, time_left)

    def _upload(
        self,
        field: Literal["photo", "document"],
        fields: Mapping[str, str],
        file_name: str,
        content: bytes,
        mime_type: str | None,
        time_left: Callable[[], float] | None,
    ) -> int:
        method = "sendPhoto" if field == "photo" else "sendDocument"

        def post(token: str) -> httpx.Response:
            # Read in small chunks as it goes out: handed over as bytes, the HTTP stack makes a
            # whole second copy (50 MB, in a consumer of 256 MB).
            upload: dict[str, tuple[str, IO[bytes], str]] = {
                field: (file_name, io.BytesIO(content), mime_type or "application/octet-stream")
            }
            return self._post_within(
                time_left,
                lambda extensions: self._http.post(
                    self._method_url(method, token),
                    data=dict(fields),
                    files=upload,
                    timeout=self._timeout_within(time_left),
                    extensions=extensions,
                ),
            )

        result = self._with_retries(method, post, resend_safe=False, time_left=time_left)
        return int(result["message_id"])

    def send_typing(self, chat_id: int, *, thread_id: int = 0) -> None:
        """Show "typing…" for up to 5 s; one attempt only (the next refresh is the retry)."""
        self.send_chat_action(chat_id, "typing", thread_id=thread_id)

    def send_chat_action(
        self,
        chat_id: int,
        action: Literal["typing", "upload_photo", "upload_document"],
        *,
        thread_id: int = 0,
        time_left: Callable[[], float] | None = None,
    ) -> None:
        """Show what the bot is doing ("typing…", "sending a photo…") for up to 5 s; one
        attempt only. ``time_left``: as for ``call``."""
        params: dict[str, Any] = {"chat_id": chat_id, "action": action}
        if thread_id:
            params["message_thread_id"] = thread_id
        self.call("sendChatAction", params, attempts=1, time_left=time_left)

    def get_file(self, file_id: str) -> dict[str, Any]:
        """``getFile``: the file's ``file_path`` and ``file_size``."""
        result = self.call("getFile", {"file_id": file_id})
        return dict(result)

    def download(self, file_path: str, *, max_bytes: int = MAX_DOWNLOAD_BYTES) -> bytes:
        """Download a file returned by ``getFile``; refuses more than ``max_bytes``
        (TelegramFileTooBig)."""
        url = f"{self._base}/file/bot{self._token.current()}/{file_path}"
        for attempt in range(1, self._max_attempts + 1):
            try:
                with self._http.stream("GET", url) as response:
                    if response.status_code >= 500 and attempt < self._max_attempts:
                        self._sleep(self._backoff_s * 2 ** (attempt - 1))
                        continue
                    if response.status_code != 200:
                        raise error_for("downloadFile", response.status_code, "download failed")
                    data = bytearray()
                    for part in response.iter_bytes():
                        data.extend(part)
                        if len(data) > max_bytes:
                            raise TelegramFileTooBig("downloadFile", 400, "file is too big")
                    return bytes(data)
            except httpx.HTTPError as exc:
                if attempt == self._max_attempts:
                    raise TelegramNetworkError("downloadFile", 0, type(exc).__name__) from None
                self._sleep(self._backoff_s * 2 ** (attempt - 1))
        raise TelegramNetworkError("downloadFile", 0, "no attempts left")
