"""A small Telegram Bot API client on httpx: retries what Telegram says to retry, no more.

429 waits ``retry_after``; 5xx and network errors back off and retry; every other error
is raised at once as TelegramApiError. The bot token is part of the URL, so no URL or
httpx error text is ever put in an error message or a log line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from session_core import MessageDecodeError, decode_json, encode_json, get_logger

from ._errors import TelegramApiError

log = get_logger(__name__)

MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024


class BotApi:
    """Calls the Bot API at ``base_url`` for the bot with ``token`` through ``http``."""

    def __init__(
        self,
        *,
        http: httpx.Client,
        token: str,
        base_url: str = "https://api.telegram.org",
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        max_retry_after_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self._token = token
        self._base = base_url.rstrip("/")
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._max_retry_after_s = max_retry_after_s
        self._sleep = sleep

    def call(self, method: str, params: dict[str, Any], *, attempts: int | None = None) -> Any:
        """Call ``method`` with JSON ``params`` and return its ``result``.

        Retries 429 (after ``retry_after``, if no longer than ``max_retry_after_s``), 5xx
        and network errors up to ``attempts`` times in all; raises TelegramApiError.
        """
        total = attempts or self._max_attempts
        for attempt in range(1, total + 1):
            try:
                return self._call_once(method, params)
            except TelegramApiError as error:
                if not error.retryable or attempt == total:
                    raise
                if error.kind == "rate_limited":
                    wait = float(error.retry_after or 1)
                    if wait > self._max_retry_after_s:
                        raise  # let SQS bring the record back later instead of idling
                else:
                    wait = self._backoff_s * 2 ** (attempt - 1)
                log.warning("telegram_retry", method=method, kind=error.kind, wait_s=wait)
                self._sleep(wait)
        raise AssertionError("unreachable")

    def _call_once(self, method: str, params: dict[str, Any]) -> Any:
        try:
            response = self._http.post(
                f"{self._base}/bot{self._token}/{method}", content=encode_json(params),
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise TelegramApiError(method, 0, type(exc).__name__) from None
        try:
            body = decode_json(response.content, json.loads, "Bot API answer")
        except MessageDecodeError:
            body = None
        if not isinstance(body, dict):
            raise TelegramApiError(method, response.status_code or 0, "answer is not JSON")
        if body.get("ok") is True:
            return body.get("result")
        parameters = body.get("parameters")
        if not isinstance(parameters, dict):
            parameters = {}
        raise TelegramApiError(
            method,
            int(body.get("error_code") or response.status_code),
            str(body.get("description") or ""),
            retry_after=parameters.get("retry_after"),
        )

    def send_message(
        self,
        chat_id: int,
        text: str,
        *,
        html: bool,
        thread_id: int = 0,
        reply_to_message_id: int | None = None,
    ) -> int:
        """Send one message (HTML or plain); returns its message_id."""
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
        result = self.call("sendMessage", params)
        return int(result["message_id"])

    def send_typing(self, chat_id: int, *, thread_id: int = 0) -> None:
        """Show "typing…" for up to 5 s; one attempt only (the next refresh is the retry)."""
        params: dict[str, Any] = {"chat_id": chat_id, "action": "typing"}
        if thread_id:
            params["message_thread_id"] = thread_id
        self.call("sendChatAction", params, attempts=1)

    def get_file(self, file_id: str) -> dict[str, Any]:
        """``getFile``: the file's ``file_path`` and ``file_size``."""
        result = self.call("getFile", {"file_id": file_id})
        return dict(result)

    def download(self, file_path: str, *, max_bytes: int = MAX_DOWNLOAD_BYTES) -> bytes:
        """Download a file returned by ``getFile``; refuses more than ``max_bytes``."""
        url = f"{self._base}/file/bot{self._token}/{file_path}"
        for attempt in range(1, self._max_attempts + 1):
            try:
                with self._http.stream("GET", url) as response:
                    if response.status_code >= 500 and attempt < self._max_attempts:
                        self._sleep(self._backoff_s * 2 ** (attempt - 1))
                        continue
                    if response.status_code != 200:
                        raise TelegramApiError("downloadFile", response.status_code, "download failed")
                    data = bytearray()
                    for part in response.iter_bytes():
                        data.extend(part)
                        if len(data) > max_bytes:
                            raise TelegramApiError("downloadFile", 400, "file is too big")
                    return bytes(data)
            except httpx.HTTPError as exc:
                if attempt == self._max_attempts:
                    raise TelegramApiError("downloadFile", 0, type(exc).__name__) from None
                self._sleep(self._backoff_s * 2 ** (attempt - 1))
        raise TelegramApiError("downloadFile", 0, "no attempts left")
