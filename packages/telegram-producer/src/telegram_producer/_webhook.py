"""The webhook: verify the secret, decode the update, decide, dedupe, enqueue.

Answers 200 only once the update is on the queue (or was decided to need no turn), so a
lost update is always a 5xx that Telegram redelivers.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from botocore.exceptions import BotoCoreError, ClientError
from session_core import (
    ENVELOPE_VERSION,
    Attachment,
    InboundMessage,
    InvalidSessionKeyError,
    MessageDecodeError,
    QueueEnvelope,
    SessionKey,
    StorageError,
    bind_correlation,
    decode_json,
    emit_metric,
    encode,
    get_logger,
    well_formed,
)

from ._config import ProducerConfig
from ._errors import WebhookSecretError
from ._rate_limit import RateLimiter
from ._updates import Message, Update, update_decoder

log = get_logger(__name__)

SECRET_HEADER = "x-telegram-bot-api-secret-token"
# Count of messages dropped by the rate limits (EMF; see session_core.emit_metric).
RATE_LIMITED_METRIC = "RateLimitedMessages"
# Telegram's own limits are 4096 (text) and 1024 (caption); anything far above is not
# from Telegram and would only bloat the queue (SQS takes at most 256 KiB a message).
MAX_TEXT_CHARS = 16_384
MAX_BODY_BYTES = 1_048_576
MAX_QUEUE_MESSAGE_BYTES = 262_144
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
# SQS accepts only #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF;
# the JSON encoder escapes control characters but writes U+FFFE/U+FFFF literally.
_SQS_UNSAFE = {"\ufffe": "\\ufffe", "\uffff": "\\uffff"}


class Registry(Protocol):
    """The two verbs of session_core.SessionRegistry the producer uses."""

    def update_seen(self, tenant: str, update_id: int) -> bool: ...

    def mark_update_seen(self, tenant: str, update_id: int) -> None: ...


@dataclass(frozen=True)
class Decision:
    """What to do with a decoded update: enqueue ``message``, or acknowledge with ``ignored``."""

    message: InboundMessage | None = None
    ignored: str | None = None


class _HttpEvent(msgspec.Struct, kw_only=True):
    """The API Gateway HTTP API (payload 2.0) fields the webhook reads."""

    headers: dict[str, str] = {}
    body: str | None = None
    is_base64: bool = msgspec.field(default=False, name="isBase64Encoded")


def check_secret(expected: str) -> str:
    """Validate the configured webhook secret (Telegram allows 1-256 of A-Z a-z 0-9 _ -)."""
    if not _SECRET_RE.fullmatch(expected):
        raise WebhookSecretError(
            "the webhook secret must be 1-256 characters of A-Z, a-z, 0-9, '_' and '-'"
        )
    return expected


class Producer:
    """Turns webhook calls into queue messages; one instance per Lambda container."""

    def __init__(
        self,
        *,
        config: ProducerConfig,
        secret: str,
        sqs: Any,
        registry: Registry,
        clock: Callable[[], float] = time.time,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self._config = config
        self._rate_limiter = rate_limiter
        self._secret = check_secret(secret).encode()
        self._sqs = sqs
        self._registry = registry
        self._clock = clock

    def handle_event(self, event: object, *, request_id: str | None = None) -> dict[str, Any]:
        """Answer one API Gateway v2 event with an HTTP response dict (never raises on input)."""
        bind_correlation(request_id=request_id)
        try:
            http = msgspec.convert(event, _HttpEvent)
        except (msgspec.ValidationError, RecursionError):
            return _response(400, "not an API Gateway HTTP API event")
        headers = {str(k).lower(): v for k, v in http.headers.items()}
        given = headers.get(SECRET_HEADER)
        if given is None:
            log.warning("webhook_rejected", reason="missing secret token")
            return _response(401, "unauthorized")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self._secret):
            log.warning("webhook_rejected", reason="wrong secret token")
            return _response(403, "forbidden")
        body = _body_bytes(http)
        if body is None:
            return _response(400, "body is not valid base64")
        if len(body) > MAX_BODY_BYTES:
            return _response(413, "body too large")
        try:
            update = decode_json(body, update_decoder.decode, "Telegram update")
        except MessageDecodeError as exc:
            log.warning("webhook_rejected", reason="undecodable body", detail=exc.detail[:200])
            return _response(400, f"not a Telegram update: {exc.detail[:200]}")
        bind_correlation(update_id=update.update_id, request_id=request_id)
        try:
            decision = decide(update, self._config, now=self._clock())
        except InvalidSessionKeyError as exc:
            return _response(400, f"unusable chat: {exc.field}")
        if decision.message is None:
            log.info("update_ignored", reason=decision.ignored)
            return _response(200, f"ignored: {decision.ignored}")
        if len(decision.message.text) > MAX_TEXT_CHARS:
            return _response(413, "text too long")
        return self._enqueue(update.update_id, decision.message)

    def _enqueue(self, update_id: int, message: InboundMessage) -> dict[str, Any]:
        bind_correlation(update_id=update_id, session_key=message.session_key)
        tenant = self._config.tenant
        try:
            if self._registry.update_seen(tenant, update_id):
                log.info("update_duplicate")
                return _response(200, "duplicate")
        except StorageError as exc:
            # SQS dedup and the runtime's replay still hold; availability wins.
            log.warning("dedup_check_failed", error=str(exc))
        if self._rate_limiter is not None:
            limited = self._rate_limited(message)
            if limited is not None:
                return limited
        envelope = QueueEnvelope(version=ENVELOPE_VERSION, message=message, enqueued_at=self._clock())
        body = sqs_safe_json(encode(envelope))
        if len(body.encode()) > MAX_QUEUE_MESSAGE_BYTES:
            return _response(413, "update too large for the queue")
        try:
            self._sqs.send_message(
                QueueUrl=self._config.queue_url,
                MessageBody=body,
                MessageGroupId=message.session_key,
                MessageDeduplicationId=f"{tenant}:{update_id}",
            )
        except (ClientError, BotoCoreError) as exc:
            log.error("enqueue_failed", error=type(exc).__name__)
            return _response(503, "queue unavailable, retry")
        try:
            self._registry.mark_update_seen(tenant, update_id)
        except StorageError as exc:
            # The update is on the queue; a redelivery is caught by SQS dedup or the replay.
            log.warning("dedup_mark_failed", error=str(exc))
        log.info("update_enqueued")
        return _response(200, "enqueued")


    def _rate_limited(self, message: InboundMessage) -> dict[str, Any] | None:
        """None when the message may be queued; else the 200 that drops it: the first one over
        the limit answers with a "slow down" sendMessage in the webhook reply (no bot token
        needed, no extra request), the rest with nothing."""
        limiter = self._rate_limiter
        assert limiter is not None
        verdict, which = limiter.check(
            user_id=message.user_id,
            chat_id=message.chat_id,
            private=message.chat_type == "private",
            now=self._clock(),
        )
        if verdict == "allowed":
            return None
        log.warning("update_rate_limited", limit=which, notified=verdict == "notify")
        emit_metric(RATE_LIMITED_METRIC, 1, unit="Count", tenant=self._config.tenant)
        if verdict == "drop":
            return _response(200, f"rate limited ({which})")
        per_minute = limiter.per_user if which == "user" else limiter.per_chat
        who = "You are" if which == "user" else "This chat is"
        text = (
            f"{who} sending messages faster than I can answer (at most {per_minute} a minute). "
            "Please slow down: I skip messages sent until the rate falls again."
        )
        reply: dict[str, Any] = {"method": "sendMessage", "chat_id": message.chat_id, "text": text}
        if message.thread_id:
            reply["message_thread_id"] = message.thread_id
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/json"},
            "body": msgspec.json.encode(reply).decode(),
        }


def decide(update: Update, config: ProducerConfig, *, now: float = 0.0) -> Decision:
    """Decide whether an update starts a turn; pure, so tests can call it directly."""
    if update.message is None:
        kind = next(
            (
                name
                for name in ("edited_message", "callback_query", "my_chat_member", "channel_post")
                if getattr(update, name) is not None
            ),
            "unknown update type",
        )
        # Edited messages do not start a new turn (see README "Telegram").
        return Decision(ignored=kind)
    msg = update.message
    user = msg.from_
    if user is not None and user.is_bot:
        return Decision(ignored="message from a bot")
    if not _allowed(config, user_id=user.id if user else None, chat_id=msg.chat.id):
        return Decision(ignored="not on the allow-list")
    text = msg.text if msg.text is not None else (msg.caption or "")
    attachments = _attachments(msg)
    unsupported = msg.unsupported_content() if not attachments and msg.text is None else None
    if not text and not attachments and unsupported is None:
        return Decision(ignored="no content (service message)")
    if msg.chat.type in ("group", "supergroup"):
        addressed, text = _addressed_in_group(msg, text, config)
        if not addressed:
            return Decision(ignored="group message not addressed to the bot")
    thread_id = msg.message_thread_id if msg.is_topic_message and msg.message_thread_id else 0
    key = SessionKey(tenant=config.tenant, chat_id=msg.chat.id, thread_id=thread_id)
    return Decision(
        message=InboundMessage(
            update_id=update.update_id,
            session_key=key.canonical,
            kind="unsupported" if unsupported else "message",
            chat_id=msg.chat.id,
            chat_type=msg.chat.type,
            message_id=msg.message_id,
            thread_id=thread_id,
            user_id=user.id if user else None,
            user_name=(user.username or user.first_name or None) if user else None,
            text=text,
            attachments=attachments,
            unsupported_what=unsupported,
            sent_at=msg.date or int(now),
        )
    )


def _allowed(config: ProducerConfig, *, user_id: int | None, chat_id: int) -> bool:
    # Empty lists mean everyone; otherwise an allowed user (anywhere) or an allowed chat
    # (anyone in it) passes.
    if not config.allowed_user_ids and not config.allowed_chat_ids:
        return True
    return (user_id is not None and user_id in config.allowed_user_ids) or (
        chat_id in config.allowed_chat_ids
    )


def _addressed_in_group(msg: Message, text: str, config: ProducerConfig) -> tuple[bool, str]:
    """(should the bot answer, text without the bot's @mention)."""
    username = config.bot_username
    mention = re.compile(rf"@{re.escape(username)}\b", re.IGNORECASE) if username else None
    mentioned = bool(mention and mention.search(text))
    replied = bool(
        username
        and msg.reply_to_message is not None
        and msg.reply_to_message.from_ is not None
        and (msg.reply_to_message.from_.username or "").lower() == username.lower()
    )
    if mention is not None:
        text = mention.sub("", text).strip()
    return (config.group_reply_mode == "always" or mentioned or replied), text


def _attachments(msg: Message) -> tuple[Attachment, ...]:
    if msg.photo:
        best = max(msg.photo, key=lambda p: (p.file_size or 0, p.width * p.height))
        return (
            Attachment(
                kind="photo",
                file_id=best.file_id,
                file_unique_id=best.file_unique_id,
                file_name=f"photo-{msg.message_id}.jpg",
                mime_type="image/jpeg",
                file_size=best.file_size,
            ),
        )
    if msg.document is not None:
        doc = msg.document
        return (
            Attachment(
                kind="document",
                file_id=doc.file_id,
                file_unique_id=doc.file_unique_id,
                file_name=doc.file_name,
                mime_type=doc.mime_type,
                file_size=doc.file_size,
            ),
        )
    return ()


def sqs_safe_json(data: bytes) -> str:
    """The JSON text with characters SQS refuses written as JSON escapes (same value)."""
    text = data.decode("utf-8")
    for char, escape in _SQS_UNSAFE.items():
        if char in text:
            text = text.replace(char, escape)
    return text


def _body_bytes(http: _HttpEvent) -> bytes | None:
    raw = http.body or ""
    if not http.is_base64:
        # A str body may hold lone surrogates (the event's JSON escapes them): U+FFFD each.
        return well_formed(raw).encode("utf-8")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None


def _response(status: int, outcome: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": msgspec.json.encode({"ok": 200 <= status < 300, "outcome": outcome}).decode(),
    }
