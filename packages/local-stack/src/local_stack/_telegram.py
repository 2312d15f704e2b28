"""A Telegram Bot API server on 127.0.0.1: records every call and injects faults on request.

Tests point the consumer's ``TELEGRAM_API_BASE`` at it; ``agentbot dev`` uses it as the
terminal chat (``on_send`` sees every message the bot sends, ``push_update`` queues what the
user types for ``getUpdates``). It answers like api.telegram.org does, including the errors
the consumer must survive: 429 with ``retry_after``, 5xx, "message is too long" and
"can't parse entities" (raised for real HTML mistakes as well as on request). Files the bot
uploads (``sendDocument``, ``sendPhoto``: multipart/form-data) are written to ``files_dir``
(``sent_files`` lists them); a photo that is no JPEG, PNG or WebP is refused as Telegram does.
"""

from __future__ import annotations

import html.parser
import itertools
import json
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from ._form_data import Upload, parse_form_data
from ._loopback import LoopbackServer

TEST_BOT_TOKEN = "123456789:LOCAL-test-token-not-a-real-one"
MAX_MESSAGE_UTF16 = 4096
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # a document a bot uploads
MAX_PHOTO_BYTES = 10 * 1024 * 1024
# The images Telegram processes into photos, by their first bytes (JPEG, PNG; WebP's
# signature has its size inside: see _is_image).
_IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
_UPLOAD_FIELDS = {"sendDocument": "document", "sendPhoto": "photo"}
# Tags Telegram's HTML parse mode understands (https://core.telegram.org/bots/api#html-style).
_ALLOWED_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    }
)
_KNOWN_ENTITIES = frozenset({"lt", "gt", "amp", "quot"})


@dataclass(frozen=True)
class BotApiCall:
    """One request the server received: method, its parameters, when, and what it answered."""

    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() when it arrived
    status: int


@dataclass(frozen=True)
class TelegramFault:
    """An error answer to inject instead of serving a call."""

    status: int
    description: str
    retry_after: int | None = None
    migrate_to_chat_id: int | None = None  # the supergroup a group became (its answer names it)
    # The call is served (a file is sent) but the connection drops before the answer.
    answer_lost: bool = False
    # The call is served (a file is sent), then answered with this error all the same.
    served_first: bool = False
    # The call is served; its answer then trickles out a byte at a time over this many seconds.
    trickle_s: float = 0.0

    @classmethod
    def served_then_dropped(cls) -> TelegramFault:
        """The call succeeds and the connection breaks before its answer comes back: a big
        upload Telegram accepted whose answer a flaky network lost."""
        return cls(200, "", answer_lost=True)

    @classmethod
    def served_then_server_error(cls, status: int = 502) -> TelegramFault:
        """The call succeeds but the answer is a 5xx: the proxy in front of the Bot API gave up
        waiting on a send that went through."""
        return replace(cls.server_error(status), served_first=True)

    @classmethod
    def served_then_trickled(cls, seconds: float) -> TelegramFault:
        """The call succeeds and its answer comes a byte at a time over ``seconds``: a slow
        link or proxy that keeps every read of the client busy, so no read timeout ever ends it."""
        return cls(200, "", trickle_s=seconds)

    @classmethod
    def group_upgraded(cls, to_chat_id: int) -> TelegramFault:
        """What a call to a group upgraded to a supergroup gets: the supergroup's new id."""
        return cls(400, "Bad Request: group chat was upgraded to a supergroup chat", None, to_chat_id)

    @classmethod
    def retry_after_seconds(cls, seconds: int) -> TelegramFault:
        """429 Too Many Requests with ``parameters.retry_after``."""
        return cls(429, f"Too Many Requests: retry after {seconds}", seconds)

    @classmethod
    def server_error(cls, status: int = 502) -> TelegramFault:
        """A 5xx the way Telegram's front end returns them."""
        return cls(status, HTTPStatus(status).phrase)

    @classmethod
    def message_too_long(cls) -> TelegramFault:
        return cls(400, "Bad Request: message is too long")

    @classmethod
    def cant_parse_entities(cls) -> TelegramFault:
        return cls(400, 'Bad Request: can\'t parse entities: Unsupported start tag "x" at byte offset 0')

    @classmethod
    def photo_invalid_dimensions(cls) -> TelegramFault:
        """What sendPhoto answers for an image too long, too wide or too small to show."""
        return cls(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")


@dataclass(frozen=True)
class SentFile:
    """A file the bot sent (``sendDocument`` or ``sendPhoto``): its message as Telegram
    answered it (chat, topic, quoted message, caption), and where the server saved the bytes."""

    method: str
    message: dict[str, Any]
    file_name: str
    mime_type: str | None
    size: int
    path: Path

    def content(self) -> bytes:
        """The bytes the bot uploaded."""
        return self.path.read_bytes()


@dataclass
class _File:
    content: bytes
    file_path: str
    file_unique_id: str
    file_size: int
    downloadable: bool = True  # False: getFile answers with no file_path


@dataclass
class _State:
    calls: list[BotApiCall] = field(default_factory=list)
    faults: dict[str, list[TelegramFault]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    sent_files: list[SentFile] = field(default_factory=list)
    files: dict[str, _File] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)
    webhook: dict[str, Any] = field(default_factory=dict)
    commands: list[dict[str, str]] = field(default_factory=list)  # the menu set by setMyCommands
    # [H] live turns
    drafts: list[dict[str, Any]] = field(default_factory=list)  # every sendMessageDraft, in order
    edits: list[dict[str, Any]] = field(default_factory=list)  # every editMessageText that landed
    callback_answers: list[dict[str, Any]] = field(default_factory=list)
    group_sends: dict[int, list[float]] = field(default_factory=dict)  # chat → monotonic times
    limited: list[str] = field(default_factory=list)  # methods answered 429 by the group limit


class _AnswerLost(Exception):
    """The call was served; its connection is to close without an answer."""


class _Trickled(Exception):
    """The call was served; its answer (``result``) is to go out a byte at a time over ``seconds``."""

    def __init__(self, result: Any, seconds: float) -> None:
        super().__init__("trickled")
        self.result = result
        self.seconds = seconds


class _ApiError(Exception):
    def __init__(
        self,
        status: int,
        description: str,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id


class LocalTelegram(LoopbackServer):
    """The Bot API for one bot, served on 127.0.0.1 at a free port (a context manager).

    ``on_send(message)`` is called for every message the bot sends (after it is recorded);
    ``on_call(method, params)`` before any call is served (a test may inject a fault there);
    ``validate_html`` rejects malformed ``parse_mode=HTML`` text like Telegram does;
    ``files_dir``: where uploaded files are written (None: a temporary directory, removed
    on ``stop``).
    """

    def __init__(
        self,
        *,
        token: str = TEST_BOT_TOKEN,
        bot_username: str = "agent_test_bot",
        bot_id: int = 999000111,
        on_send: Callable[[dict[str, Any]], None] | None = None,
        on_call: Callable[[str, dict[str, Any]], None] | None = None,
        validate_html: bool = True,
        group_limit_per_minute: int | None = None,
        on_draft: Callable[[dict[str, Any]], None] | None = None,
        on_edit: Callable[[dict[str, Any]], None] | None = None,
        files_dir: Path | None = None,
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        self.bot_id = bot_id
        self.on_send = on_send
        self.on_call = on_call
        self.validate_html = validate_html
        # [H] Telegram's limit of messages (sends and edits) a minute per group; None: off.
        self.group_limit_per_minute = group_limit_per_minute
        self.on_draft = on_draft  # [H] called with every draft (agentbot dev's terminal chat)
        # [I] called with every edit that landed (the terminal chat); one of the buttons only
        # (editMessageReplyMarkup) also carries the whole ``message`` as it now is
        self.on_edit = on_edit
        self._files_dir = files_dir
        self._own_files_dir: Path | None = None
        self._state = _State()
        self._lock = threading.Condition()
        self._message_ids = itertools.count(1000)
        self._update_ids = itertools.count(1)
        super().__init__()

    # -- lifecycle ----------------------------------------------------------------------------

    # ``base_url`` (what ``TELEGRAM_API_BASE`` should be set to) and ``start``: LoopbackServer.
    thread_name = "local-telegram"

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def stop(self) -> None:
        """Stop serving and release long polls."""
        with self._lock:
            self._lock.notify_all()
        super().stop()
        if self._own_files_dir is not None:
            shutil.rmtree(self._own_files_dir, ignore_errors=True)
            self._own_files_dir = None

    # -- what tests and `agentbot dev` use ------------------------------------------------------

    def calls(self, method: str | None = None) -> list[BotApiCall]:
        """Every call received so far (of ``method`` only, if given), in arrival order."""
        with self._lock:
            return [c for c in self._state.calls if method is None or c.method == method]

    def sent_messages(
        self, chat_id: int | None = None, *, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        """Messages the bot sent successfully (of ``chat_id`` only, if given), without those it
        deleted since (unless ``include_deleted``)."""
        with self._lock:
            return [
                m
                for m in self._state.sent
                if (chat_id is None or m["chat"]["id"] == chat_id)
                and (include_deleted or not m.get("_deleted"))
            ]

    def sent_files(self, chat_id: int | None = None) -> list[SentFile]:
        """Files the bot sent successfully (to ``chat_id`` only, if given), in order."""
        with self._lock:
            return [
                f for f in self._state.sent_files if chat_id is None or f.message["chat"]["id"] == chat_id
            ]

    def inject(self, method: str, fault: TelegramFault, *, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with ``fault`` instead of serving them."""
        with self._lock:
            self._state.faults.setdefault(method, []).extend([fault] * times)

    def clear_faults(self) -> None:
        """Forget every injected fault not served yet."""
        with self._lock:
            self._state.faults.clear()

    def add_file(
        self,
        content: bytes,
        *,
        file_id: str | None = None,
        file_path: str | None = None,
        file_size: int | None = None,
        downloadable: bool = True,
    ) -> str:
        """Make a file available to ``getFile``/downloads; returns its file_id.

        ``file_size`` overrides the reported size (to test the 20 MB limit cheaply);
        ``downloadable=False``: ``getFile`` answers without a ``file_path``, as Telegram does for a
        file it cannot serve (the Bot API makes the field optional).
        """
        file_id = file_id or f"file-{uuid.uuid4().hex[:12]}"
        with self._lock:
            self._state.files[file_id] = _File(
                content=content,
                file_path=file_path or f"documents/{file_id}.bin",
                file_unique_id=uuid.uuid4().hex[:8],
                file_size=len(content) if file_size is None else file_size,
                downloadable=downloadable,
            )
        return file_id

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue an update for ``getUpdates`` (an ``update_id`` is assigned if missing)."""
        with self._lock:
            update = dict(update)
            update.setdefault("update_id", next(self._update_ids))
            self._state.updates.append(update)
            self._lock.notify_all()
            return int(update["update_id"])

    def wait_for(self, predicate: Callable[[LocalTelegram], bool], timeout_s: float = 10.0) -> bool:
        """Block until ``predicate(self)`` holds (re-checked on every call) or the timeout."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                self._lock.release()
                try:
                    if predicate(self):
                        return True
                finally:
                    self._lock.acquire()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.1))

    @property
    def webhook(self) -> dict[str, Any]:
        """The webhook set by ``setWebhook`` (empty when none)."""
        with self._lock:
            return dict(self._state.webhook)

    @property
    def commands(self) -> list[dict[str, str]]:
        """The command menu set by ``setMyCommands`` (empty when none)."""
        with self._lock:
            return [dict(c) for c in self._state.commands]

    # -- serving ------------------------------------------------------------------------------

    def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        if self.on_call is not None:
            self.on_call(method, params)
        fault = None
        with self._lock:
            queued = self._state.faults.get(method)
            if queued:
                fault = queued.pop(0)
        if fault is not None and not (fault.answer_lost or fault.served_first or fault.trickle_s):
            raise _fault_error(fault)
        serve = _METHODS.get(method)
        if serve is None:
            raise _ApiError(404, "Not Found: method not found")
        result = serve(self, params)
        if fault is not None and fault.trickle_s:
            raise _Trickled(result, fault.trickle_s)
        if fault is not None:
            raise _AnswerLost if fault.answer_lost else _fault_error(fault)
        return result

    def _record(self, method: str, params: dict[str, Any], status: int) -> None:
        with self._lock:
            self._state.calls.append(BotApiCall(method, params, time.monotonic(), status))
            self._lock.notify_all()

    def _get_me(self, params: dict[str, Any]) -> Any:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Agent",
            "username": self.bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _send_message(self, params: dict[str, Any]) -> Any:
        chat_id = _int_param(params, "chat_id")
        self._count_group_send(chat_id, "sendMessage")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        visible = text
        if str(params.get("parse_mode", "")).upper() == "HTML":
            visible = _parse_html(text) if self.validate_html else text
        if not visible.strip():  # all markup, nothing to show
            raise _ApiError(400, "Bad Request: message text is empty")
        if _utf16_len(visible) > MAX_MESSAGE_UTF16:
            raise _ApiError(400, "Bad Request: message is too long")
        message = self._new_message(chat_id, params)
        message["text"] = visible
        with self._lock:
            self._state.sent.append({**message, "_params": params})
        if self.on_send is not None:
            self.on_send(message)
        return message

    def _new_message(self, chat_id: int, params: dict[str, Any]) -> dict[str, Any]:
        """A message the bot sends to ``chat_id``, in the topic and quoting the message the
        parameters name, with their buttons; the caller adds its content."""
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": {"id": self.bot_id, "is_bot": True, "first_name": "Agent", "username": self.bot_username},
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "date": int(time.time()),
        }
        if params.get("message_thread_id"):
            message["message_thread_id"] = _int_param(params, "message_thread_id")
            message["is_topic_message"] = True  # what Telegram says of a message in a topic
        reply = params.get("reply_parameters")
        if isinstance(reply, str):
            reply = json.loads(reply)
        if isinstance(reply, dict) and "message_id" in reply:
            message["reply_to_message"] = {"message_id": reply["message_id"], "chat": message["chat"]}
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    def _send_file(self, method: str, params: dict[str, Any]) -> Any:
        chat_id = _int_param(params, "chat_id")
        field_name = _UPLOAD_FIELDS[method]
        upload = params.get(field_name)
        if not isinstance(upload, Upload):
            raise _ApiError(400, f"Bad Request: there is no {field_name} in the request")
        if not upload.content:
            raise _ApiError(400, "Bad Request: file must be non-empty")
        if len(upload.content) > MAX_UPLOAD_BYTES:
            raise _ApiError(413, "Request Entity Too Large")
        if field_name == "photo" and len(upload.content) > MAX_PHOTO_BYTES:
            raise _ApiError(400, "Bad Request: PHOTO_SAVE_FILE_INVALID")
        if field_name == "photo" and not _is_image(upload.content):
            raise _ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
        self._count_group_send(chat_id, method)
        message = self._new_message(chat_id, params)
        file_id = f"file-{uuid.uuid4().hex[:12]}"
        described = {
            "file_id": file_id,
            "file_unique_id": uuid.uuid4().hex[:8],
            "file_size": len(upload.content),
        }
        if field_name == "photo":
            message["photo"] = [described]
        else:
            message["document"] = {**described, "file_name": upload.file_name, "mime_type": upload.mime_type}
        if params.get("caption"):
            message["caption"] = str(params["caption"])
        path = self._save(message["message_id"], upload)
        sent = SentFile(method, message, upload.file_name, upload.mime_type, len(upload.content), path)
        local = {
            "name": upload.file_name,
            "mime_type": upload.mime_type,
            "size": sent.size,
            "path": str(path),
        }
        with self._lock:
            self._state.sent.append({**message, "_params": _recorded(params), "_file": local})
            self._state.sent_files.append(sent)
        if self.on_send is not None:
            self.on_send({**message, "_file": local})
        return message

    def _send_document(self, params: dict[str, Any]) -> Any:
        return self._send_file("sendDocument", params)

    def _send_photo(self, params: dict[str, Any]) -> Any:
        return self._send_file("sendPhoto", params)

    def _save(self, message_id: int, upload: Upload) -> Path:
        """Write an uploaded file as ``<message_id>-<its name, made harmless>`` in the files
        directory, readable by this user only; never through a link planted there."""
        with self._lock:
            if self._files_dir is None and self._own_files_dir is None:
                self._own_files_dir = Path(tempfile.mkdtemp(prefix="local-telegram-files-"))
            folder = self._files_dir or self._own_files_dir
            assert folder is not None
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Message ids start over with each server, and a kept --state-dir keeps earlier files:
        # a name taken already gets a number ("1003-2-data.csv"), never overwrites.
        name = _disk_name(upload.file_name)
        for attempt in itertools.count(1):
            path = folder / (f"{message_id}-{name}" if attempt == 1 else f"{message_id}-{attempt}-{name}")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            except FileExistsError:
                continue
            with os.fdopen(fd, "wb") as out:
                out.write(upload.content)
            return path
        raise AssertionError("unreachable")

    def _send_chat_action(self, params: dict[str, Any]) -> Any:
        _int_param(params, "chat_id")
        if params.get("action") not in {"typing", "upload_photo", "upload_document", "record_voice"}:
            raise _ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    def _get_file(self, params: dict[str, Any]) -> Any:
        with self._lock:
            found = self._state.files.get(str(params.get("file_id", "")))
        if found is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        if found.file_size > MAX_DOWNLOAD_BYTES:
            raise _ApiError(400, "Bad Request: file is too big")
        described = {
            "file_id": params["file_id"],
            "file_unique_id": found.file_unique_id,
            "file_size": found.file_size,
        }
        return {**described, "file_path": found.file_path} if found.downloadable else described

    def _set_webhook(self, params: dict[str, Any]) -> Any:
        url = str(params.get("url", ""))
        allowed = params.get("allowed_updates")
        if isinstance(allowed, str):
            allowed = json.loads(allowed)
        with self._lock:
            if allowed is None:  # Telegram keeps the previous setting when none is given
                allowed = self._state.webhook.get("allowed_updates")
            self._state.webhook = (
                {"url": url, "secret_token": params.get("secret_token"), "allowed_updates": allowed}
                if url
                else {}
            )
        return True

    def _set_my_commands(self, params: dict[str, Any]) -> Any:
        commands = params.get("commands", [])
        if isinstance(commands, str):
            commands = json.loads(commands)
        for entry in commands:  # Telegram's rules for a menu entry
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(entry.get("command", ""))):
                raise _ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(entry.get("description", "")).strip()) <= 256:
                raise _ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        with self._lock:
            self._state.commands = [dict(entry) for entry in commands]
        return True

    def _get_my_commands(self, params: dict[str, Any]) -> Any:
        with self._lock:
            return [dict(c) for c in self._state.commands]

    def _delete_webhook(self, params: dict[str, Any]) -> Any:
        with self._lock:
            self._state.webhook = {}
            if str(params.get("drop_pending_updates", "")).lower() == "true":
                self._state.updates.clear()
        return True

    def _get_webhook_info(self, params: dict[str, Any]) -> Any:
        with self._lock:
            info = {
                "url": self._state.webhook.get("url", ""),
                "has_custom_certificate": False,
                "pending_update_count": len(self._state.updates),
            }
            for name in ("last_error_date", "last_error_message"):
                if name in self._state.webhook:
                    info[name] = self._state.webhook[name]
            if self._state.webhook.get("allowed_updates"):  # absent: every type but a few
                info["allowed_updates"] = list(self._state.webhook["allowed_updates"])
            return info

    def fail_webhook_delivery(self, message: str, *, at: float | None = None) -> None:
        """Make getWebhookInfo report a failed delivery to the webhook, as Telegram does
        (``last_error_date``, ``last_error_message``)."""
        with self._lock:
            self._state.webhook["last_error_date"] = int(at if at is not None else time.time())
            self._state.webhook["last_error_message"] = message

    def _get_updates(self, params: dict[str, Any]) -> Any:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), 50.0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._state.webhook:
                raise _ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
            while True:
                # Telegram forgets updates below the offset once it is confirmed.
                self._state.updates = [u for u in self._state.updates if u["update_id"] >= offset]
                if self._state.updates or time.monotonic() >= deadline or self._server is None:
                    return self._state.updates[:limit]
                self._lock.wait(min(deadline - time.monotonic(), 0.2))

    # -- [H] live turns: drafts, edits, buttons, the group limit ---------------------------------

    def drafts(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Every draft the bot sent (``sendMessageDraft`` parameters), in order."""
        with self._lock:
            return [d for d in self._state.drafts if chat_id is None or d["chat_id"] == chat_id]

    def edits(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Every ``editMessageText`` that landed, in order."""
        with self._lock:
            return [e for e in self._state.edits if chat_id is None or e["chat_id"] == chat_id]

    @property
    def callback_answers(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._state.callback_answers)

    @property
    def group_limited(self) -> list[str]:
        """Methods the group limit answered with 429, in order."""
        with self._lock:
            return list(self._state.limited)

    def press_draft_stop(self, chat_id: int) -> dict[str, Any]:
        """The update Telegram sends when the user presses the stop control of the chat's last
        draft (sent with ``can_stop``); the test delivers it (webhook or ``push_update``)."""
        with self._lock:
            draft = next((d for d in reversed(self._state.drafts) if d["chat_id"] == chat_id), None)
        if draft is None or not draft.get("can_stop"):
            raise AssertionError(f"chat {chat_id} shows no draft with a stop control")
        stopped: dict[str, Any] = {
            "chat": {"id": chat_id, "type": "private"},
            "draft_id": draft["draft_id"],
        }
        if draft.get("message_thread_id"):
            stopped["message_thread_id"] = draft["message_thread_id"]
        return {"update_id": next(self._update_ids) + 10_000_000, "stopped_message_generation": stopped}

    def press_button(
        self,
        message: dict[str, Any],
        *,
        user_id: int = 501,
        text: str | None = None,
        first_name: str = "Alice",
        username: str | None = None,
    ) -> dict[str, Any]:
        """The ``callback_query`` update of pressing an inline button of ``message`` as user
        ``user_id``: the one labelled ``text``, or the first one."""
        markup = message.get("reply_markup")
        if isinstance(markup, str):
            markup = json.loads(markup)
        if not markup or not markup.get("inline_keyboard"):
            raise AssertionError("the message has no inline button")
        buttons = [button for row in markup["inline_keyboard"] for button in row]
        if text is not None:
            buttons = [button for button in buttons if button["text"] == text]
            if not buttons:
                raise AssertionError(f"the message has no button {text!r}")
        button = buttons[0]
        shown = {k: v for k, v in message.items() if not k.startswith("_")}
        sender: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username is not None:
            sender["username"] = username
        return {
            "update_id": next(self._update_ids) + 10_000_000,
            "callback_query": {
                "id": uuid.uuid4().hex[:16],
                "from": sender,
                "message": shown,
                "chat_instance": "1",
                "data": button["callback_data"],
            },
        }

    def _count_group_send(self, chat_id: int, method: str) -> None:
        """Refuse a group's message over ``group_limit_per_minute`` (a sliding minute) with 429."""
        limit = self.group_limit_per_minute
        if limit is None or chat_id > 0:
            return
        now = time.monotonic()
        with self._lock:
            times = [t for t in self._state.group_sends.get(chat_id, []) if t > now - 60]
            if len(times) >= limit:
                self._state.group_sends[chat_id] = times
                self._state.limited.append(method)
                raise _ApiError(429, "Too Many Requests: retry after 1", max(1, int(times[0] + 60 - now) + 1))
            times.append(now)
            self._state.group_sends[chat_id] = times

    def _send_message_draft(self, params: dict[str, Any]) -> Any:
        chat_id = _int_param(params, "chat_id")
        draft_id = _int_param(params, "draft_id")
        if chat_id < 0:
            raise _ApiError(400, "Bad Request: drafts can be sent only to private chats")
        if draft_id == 0:
            raise _ApiError(400, "Bad Request: draft_id must be non-zero")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        visible = _parse_html(text) if str(params.get("parse_mode", "")).upper() == "HTML" else text
        if not visible.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if _utf16_len(visible) > MAX_MESSAGE_UTF16:
            raise _ApiError(400, "Bad Request: message is too long")
        draft = {
            **params,
            "chat_id": chat_id,
            "draft_id": draft_id,
            "visible": visible,
            "can_stop": str(params.get("can_stop", "")).lower() == "true",
            "at": time.monotonic(),
        }
        with self._lock:
            self._state.drafts.append(draft)
        if self.on_draft is not None:
            self.on_draft(draft)
        return True

    def _edit_message_text(self, params: dict[str, Any]) -> Any:
        chat_id = _int_param(params, "chat_id")
        message_id = _int_param(params, "message_id")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        visible = _parse_html(text) if str(params.get("parse_mode", "")).upper() == "HTML" else text
        if not visible.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if _utf16_len(visible) > MAX_MESSAGE_UTF16:
            raise _ApiError(400, "Bad Request: message is too long")
        with self._lock:
            found = self._sent_message(chat_id, message_id)
        if found is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        # Telegram trims a text's surrounding whitespace and drops entities that cover none.
        same = found["text"].strip() == visible.strip()
        if same and found.get("reply_markup") == params.get("reply_markup"):
            raise _ApiError(400, "Bad Request: message is not modified")
        self._count_group_send(chat_id, "editMessageText")
        with self._lock:
            found["text"] = visible
            # Like Telegram: an edit that does not repeat the inline keyboard removes it.
            if params.get("reply_markup"):
                found["reply_markup"] = params["reply_markup"]
            else:
                found.pop("reply_markup", None)
            self._state.edits.append(
                {
                    **params,
                    "chat_id": chat_id,
                    "message_id": message_id,
                    "visible": visible,
                    "at": time.monotonic(),
                }
            )
        if self.on_edit is not None:
            self.on_edit({**params, "chat_id": chat_id, "message_id": message_id, "visible": visible})
        return {k: v for k, v in found.items() if not k.startswith("_")}

    def _edit_message_reply_markup(self, params: dict[str, Any]) -> Any:
        chat_id = _int_param(params, "chat_id")
        message_id = _int_param(params, "message_id")
        markup = params.get("reply_markup")
        if isinstance(markup, str):
            markup = json.loads(markup)
        with self._lock:
            found = self._sent_message(chat_id, message_id)
        if found is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        if (found.get("reply_markup") or None) == (markup or None):
            raise _ApiError(400, "Bad Request: message is not modified")
        self._count_group_send(chat_id, "editMessageReplyMarkup")
        with self._lock:
            if markup:
                found["reply_markup"] = markup
            else:
                found.pop("reply_markup", None)
            shown = {k: v for k, v in found.items() if not k.startswith("_")}
        if self.on_edit is not None:
            self.on_edit(
                {
                    **params,
                    "chat_id": chat_id,
                    "message_id": message_id,
                    "visible": found["text"],
                    "message": shown,
                }
            )
        return shown

    def _delete_message(self, params: dict[str, Any]) -> Any:
        chat_id = _int_param(params, "chat_id")
        message_id = _int_param(params, "message_id")
        with self._lock:
            found = self._sent_message(chat_id, message_id)
            if found is None:
                raise _ApiError(400, "Bad Request: message to delete not found")
            found["_deleted"] = True
        return True

    def _sent_message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The message sent (and not deleted) as ``message_id`` in ``chat_id``; the caller holds the lock."""
        return next(
            (
                m
                for m in self._state.sent
                if m["chat"]["id"] == chat_id and m["message_id"] == message_id and not m.get("_deleted")
            ),
            None,
        )

    def _answer_callback_query(self, params: dict[str, Any]) -> Any:
        if not params.get("callback_query_id"):
            raise _ApiError(
                400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
        with self._lock:
            self._state.callback_answers.append(dict(params))
        return True

    def _download(self, file_path: str) -> bytes | None:
        with self._lock:
            return next((f.content for f in self._state.files.values() if f.file_path == file_path), None)


_METHODS: dict[str, Callable[[LocalTelegram, dict[str, Any]], Any]] = {
    "getMe": LocalTelegram._get_me,
    "sendMessage": LocalTelegram._send_message,
    "sendChatAction": LocalTelegram._send_chat_action,
    "sendDocument": LocalTelegram._send_document,
    "sendPhoto": LocalTelegram._send_photo,
    "getFile": LocalTelegram._get_file,
    "setWebhook": LocalTelegram._set_webhook,
    "deleteWebhook": LocalTelegram._delete_webhook,
    "setMyCommands": LocalTelegram._set_my_commands,
    "getMyCommands": LocalTelegram._get_my_commands,
    "getWebhookInfo": LocalTelegram._get_webhook_info,
    "getUpdates": LocalTelegram._get_updates,
    # [H] live turns
    "sendMessageDraft": LocalTelegram._send_message_draft,
    "editMessageText": LocalTelegram._edit_message_text,
    "editMessageReplyMarkup": LocalTelegram._edit_message_reply_markup,
    "deleteMessage": LocalTelegram._delete_message,
    "answerCallbackQuery": LocalTelegram._answer_callback_query,
}


def _handler_for(api: LocalTelegram) -> type[BaseHTTPRequestHandler]:
    class BotApi(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            path, _, query = self.path.partition("?")
            file_prefix = f"/file/bot{api.token}/"
            if path.startswith(file_prefix):
                content = api._download(urllib.parse.unquote(path[len(file_prefix) :]))
                api._record(
                    "downloadFile",
                    {"file_path": path[len(file_prefix) :]},
                    200 if content is not None else 404,
                )
                if content is None:
                    self._send(404, b'{"ok":false,"error_code":404,"description":"Not Found"}')
                else:
                    self._send(200, content, "application/octet-stream")
                return
            parts = path.strip("/").split("/")
            if len(parts) != 2 or not parts[0].startswith("bot"):
                self._send(404, b'{"ok":false,"error_code":404,"description":"Not Found"}')
                return
            method = parts[1]
            try:
                params = self._params(query)
            except ValueError:
                params = {}
                api._record(method, params, 400)
                self._answer_error(_ApiError(400, "Bad Request: can't parse request body"))
                return
            if parts[0] != f"bot{api.token}":
                api._record(method, params, 401)
                self._answer_error(_ApiError(401, "Unauthorized"))
                return
            try:
                result = api._dispatch(method, params)
            except _ApiError as exc:
                api._record(method, _recorded(params), exc.status)
                self._answer_error(exc)
                return
            except _AnswerLost:
                api._record(method, _recorded(params), 200)
                self.close_connection = True  # no status line: the client sees the connection drop
                return
            except _Trickled as slow:
                api._record(method, _recorded(params), 200)
                self._trickle(json.dumps({"ok": True, "result": slow.result}).encode(), slow.seconds)
                return
            api._record(method, _recorded(params), 200)
            self._send(200, json.dumps({"ok": True, "result": result}).encode())

        def _params(self, query: str) -> dict[str, Any]:
            params: dict[str, Any] = dict(urllib.parse.parse_qsl(query))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if raw and ctype == "application/json":
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("body is not an object")
                params.update(body)
            elif raw and ctype == "multipart/form-data":
                params.update(parse_form_data(raw, self.headers.get("Content-Type") or ""))
            elif raw:
                params.update(urllib.parse.parse_qsl(raw.decode()))
            return params

        def _answer_error(self, exc: _ApiError) -> None:
            body: dict[str, Any] = {"ok": False, "error_code": exc.status, "description": exc.description}
            parameters = {"retry_after": exc.retry_after, "migrate_to_chat_id": exc.migrate_to_chat_id}
            if any(value is not None for value in parameters.values()):
                body["parameters"] = {name: value for name, value in parameters.items() if value is not None}
            self._send(exc.status, json.dumps(body).encode())

        def _trickle(self, body: bytes, seconds: float) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            for index in range(len(body)):
                if not api._serving:  # stopped: no thread of it outlives the server
                    return
                time.sleep(seconds / len(body))
                self.wfile.write(body[index : index + 1])
                self.wfile.flush()

        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return BotApi


def _fault_error(fault: TelegramFault) -> _ApiError:
    return _ApiError(fault.status, fault.description, fault.retry_after, fault.migrate_to_chat_id)


def _int_param(params: dict[str, Any], name: str) -> int:
    try:
        return int(params[name])
    except (KeyError, TypeError, ValueError) as exc:
        raise _ApiError(400, f"Bad Request: {name} is required and must be an integer") from exc


def _recorded(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as a call is recorded: an uploaded file by its name, type and size only."""
    return {
        key: {"file_name": v.file_name, "mime_type": v.mime_type, "size": len(v.content)}
        if isinstance(v, Upload)
        else v
        for key, v in params.items()
    }


def _is_image(content: bytes) -> bool:
    return content.startswith(_IMAGE_SIGNATURES) or (content[:4] == b"RIFF" and content[8:12] == b"WEBP")


def _disk_name(name: str) -> str:
    """An uploaded file's name as one harmless path step (the bot's name is its own choice)."""
    cleaned = re.sub(r"[^\w.-]+", "_", os.path.basename(name)).lstrip("._")[-100:]
    return cleaned or "file"


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _TelegramHtml(html.parser.HTMLParser):
    """Parse Bot API HTML the strict way Telegram does and collect the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _ALLOWED_TAGS:
            raise _ApiError(400, f'Bad Request: can\'t parse entities: Unsupported start tag "{tag}"')
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            raise _ApiError(400, f'Bad Request: can\'t parse entities: Unexpected end tag "{tag}"')
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        for char in "<&":
            if char in data:
                raise _ApiError(400, f'Bad Request: can\'t parse entities: Unexpected character "{char}"')
        self.text.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in _KNOWN_ENTITIES:
            raise _ApiError(400, f'Bad Request: can\'t parse entities: Unsupported entity "&{name};"')
        self.text.append({"lt": "<", "gt": ">", "amp": "&", "quot": '"'}[name])

    def handle_charref(self, name: str) -> None:
        code = int(name[1:], 16) if name[:1] in ("x", "X") else int(name)
        self.text.append(chr(code))


def _parse_html(text: str) -> str:
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    if parser.stack:
        raise _ApiError(
            400,
            f"Bad Request: can't parse entities: Can't find end tag corresponding to start tag "
            f'"{parser.stack[-1]}"',
        )
    if parser.rawdata:  # an unterminated tag or entity left behind
        raise _ApiError(400, "Bad Request: can't parse entities: unclosed tag or entity")
    return "".join(parser.text)
