"""The webhook: verify the secret, decode the update, decide, dedupe, enqueue.

Answers 200 only once the update is on the queue (or was decided to need no turn), so a
lost update is always a 5xx that Telegram redelivers.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import re
import time
from collections.abc import Callable
from typing import Any, Protocol, TypedDict

import msgspec
from botocore.exceptions import BotoCoreError, ClientError
from session_core import (
    AlbumParts,
    AlbumVerdict,
    Approval,
    ApprovalNotPending,
    ChatBacklog,
    FixedSecret,
    InvalidSessionKeyError,
    MessageDecodeError,
    PasteParts,
    PasteVerdict,
    SecretSource,
    StopOutcome,
    StorageError,
    add_correlation,
    bind_correlation,
    counted,
    decode_json,
    emit_metric,
    encode_json,
    get_logger,
    is_paste,
    well_formed,
)
from telegram_core import (
    ENVELOPE_VERSION,
    ApprovalButton,
    EditClaim,
    GroupMessage,
    InboundMessage,
    MovedChats,
    QueueEnvelope,
    RateLimiter,
    RateVerdict,
    RevokeButton,
    encode_envelope,
    this_place,
)

from ._approval import (
    NOT_ALLOWED_TEXT,
    NOT_VALID_TEXT,
    NOT_WAITING_TEXT,
    STOP_AS_THE_GROUP_TEXT,
    TOPIC_UNKNOWN_TEXT,
    ApprovalStore,
    ButtonPress,
    already_answered_text,
    button_press,
    callback_answer,
    decided_text,
    presser_name,
    refusal,
    revoked_text,
)
from ._config import ProducerConfig
from ._edits import decide_edit
from ._errors import WebhookSecretError
from ._routing import allowed, decide
from ._stop import StopRequest, StopRequests, stop_reply, stop_request
from ._updates import Update, chat_of, update_decoder

log = get_logger(__name__)

SECRET_HEADER = "x-telegram-bot-api-secret-token"
# Count of messages dropped by the rate limits (EMF; see session_core.emit_metric).
RATE_LIMITED_METRIC = "RateLimitedMessages"
# Count of authenticated webhook calls that carry an update the producer can never process
# (malformed, or beyond Telegram's own limits): answered 200, so Telegram does not retry them.
UNPROCESSABLE_UPDATES_METRIC = "UnprocessableUpdates"
# Telegram's own limits are 4096 (text) and 1024 (caption); anything far above is not
# from Telegram and would only bloat the queue (SQS takes at most 256 KiB a message).
MAX_TEXT_CHARS = 16_384
MAX_BODY_BYTES = 1_048_576
MAX_QUEUE_MESSAGE_BYTES = 262_144
# Telegram takes 1-256 of these characters; the secret is all that tells its calls from a
# forged update "from" an allowed user, so one short enough to guess is refused too.
MIN_SECRET_CHARS = 16
SECRET_RULE = f"{MIN_SECRET_CHARS}-256 characters of A-Z, a-z, 0-9, '_' and '-'"
_SECRET_RE = re.compile(rf"[A-Za-z0-9_-]{{{MIN_SECRET_CHARS},256}}")
# SQS accepts only #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF;
# the JSON encoder escapes control characters but writes U+FFFE/U+FFFF literally.
_SQS_UNSAFE = {"\ufffe": "\\ufffe", "\uffff": "\\uffff"}


class Registry(Protocol):
    """The producer's durable update dedup (telegram_core.UpdateDedup)."""

    def update_seen(self, tenant: str, update_id: int) -> bool: ...

    def mark_update_seen(
        self, tenant: str, update_id: int, *, answered: GroupMessage | None = None, as_stop: bool = False
    ) -> None: ...

    def record_queued(self, tenant: str, message: GroupMessage, update_id: int) -> bool: ...

    def claim_edited_message(
        self, tenant: str, message: GroupMessage, update_id: int, *, sent_at: int
    ) -> EditClaim: ...

    def claim_stop_edit(
        self, tenant: str, message: GroupMessage, update_id: int, *, sent_at: int
    ) -> EditClaim: ...

    def release_edit_claim(self, tenant: str, message: GroupMessage) -> None: ...

    def update_acted(self, tenant: str, update_id: int) -> bool: ...

    def mark_update_acted(self, tenant: str, update_id: int) -> None: ...


class _HttpEvent(msgspec.Struct, kw_only=True):
    """The API Gateway HTTP API (payload 2.0) fields the webhook reads."""

    headers: dict[str, str] = {}
    body: str | None = None
    is_base64: bool = msgspec.field(default=False, name="isBase64Encoded")


def check_secret(expected: str) -> str:
    """Validate the configured webhook secret (``SECRET_RULE``: Telegram's characters, and
    long enough not to be guessed)."""
    if not _SECRET_RE.fullmatch(expected):
        raise WebhookSecretError(f"the webhook secret must be {SECRET_RULE}")
    return expected


class Producer:
    """Turns webhook calls into queue messages; one instance per Lambda container."""

    def __init__(
        self,
        *,
        config: ProducerConfig,
        secret: str | SecretSource,
        sqs: Any,
        registry: Registry,
        clock: Callable[[], float] = time.time,
        rate_limiter: RateLimiter | None = None,
        backlog: ChatBacklog | None = None,
        stops: StopRequests | None = None,
        approvals: ApprovalStore | None = None,
        albums: AlbumParts | None = None,
        pastes: PasteParts | None = None,
        moved_chats: MovedChats | None = None,
    ) -> None:
        self._config = config
        self._moved_chats = moved_chats  # supergroups allowed as the groups they were
        self._albums = albums  # the parts of photo albums, answered as one turn
        self._pastes = pastes  # the parts of long texts the apps split, answered as one turn
        self._approvals = approvals  # [I] where button presses are decided (session_core.Approvals)
        self._stops = stops  # [H] where stop requests go (session_core.LiveTurns)
        self._rate_limiter = rate_limiter
        self._backlog = backlog
        # The secret Telegram sends; a call with another one makes the source read it again
        # (the operator rotated it), at most once per interval whoever sends wrong ones.
        self._secret = FixedSecret(secret, name="the webhook secret") if isinstance(secret, str) else secret
        check_secret(self._secret.current())
        self._sqs = sqs
        self._registry = registry
        self._clock = clock

    def _secret_matches(self, given: bytes) -> bool:
        held = self._secret.current()
        if hmac.compare_digest(given, held.encode()):
            return True
        return self._secret.renew(held) and hmac.compare_digest(given, self._secret.current().encode())

    def handle_event(self, event: object, *, request_id: str | None = None) -> dict[str, Any]:
        """Answer one API Gateway v2 event with an HTTP response dict (never raises on input)."""
        bind_correlation(request_id=request_id)
        try:
            http = msgspec.convert(event, _HttpEvent)
        except (msgspec.ValidationError, RecursionError):
            log.warning("webhook_rejected", status=400, reason="not an API Gateway HTTP API event")
            return _response(400, "not an API Gateway HTTP API event")
        headers = {str(k).lower(): v for k, v in http.headers.items()}
        given = headers.get(SECRET_HEADER)
        if given is None:
            log.warning("webhook_rejected", reason="missing secret token")
            return _response(401, "unauthorized")
        if not self._secret_matches(given.encode("utf-8", "replace")):
            log.warning("webhook_rejected", reason="wrong secret token")
            return _response(403, "forbidden")
        body = _body_bytes(http)
        if body is None:
            return self._unprocessable("body is not valid base64")
        if len(body) > MAX_BODY_BYTES:
            return self._unprocessable("body too large")
        try:
            update = decode_json(body, update_decoder.decode, "Telegram update")
        except MessageDecodeError as exc:
            return self._unprocessable(f"not a Telegram update: {exc.detail[:200]}")
        bind_correlation(update_id=update.update_id, request_id=request_id)
        config = self._config_for(update)
        if config is None:
            return _response(503, "allow-list lookup failed, retry")
        try:
            stop = stop_request(update, config)  # [H] never queued behind the turn
        except InvalidSessionKeyError as exc:
            return self._unprocessable(f"unusable chat: {exc.field}")
        if stop is not None:
            return self._stop(update, stop, config)
        try:
            press = button_press(update, config)  # [I] approval and revoke buttons
        except InvalidSessionKeyError as exc:
            return self._unprocessable(f"unusable chat: {exc.field}")
        if press is not None:
            return self._press(update.update_id, press, config)
        edit = update.edited_message is not None
        try:
            decision = (decide_edit if edit else decide)(update, config, now=self._clock())
        except InvalidSessionKeyError as exc:
            return self._unprocessable(f"unusable chat: {exc.field}")
        # In a group, a text not addressed to the bot is answered only as a further part of its
        # sender's paste (the first part was addressed).
        unaddressed = decision.paste_part
        if (
            unaddressed
            and len(unaddressed.text) <= MAX_TEXT_CHARS
            and self._record_paste_part(unaddressed, decision.near_limit, addressed=False) == "joins"
        ):
            return self._joined_paste(update.update_id, unaddressed)
        if decision.album_part is not None:
            self._record_album_part(decision.album_part, addressed=False)
            log.info("update_ignored", reason="album part not addressed to the bot")
            return _response(200, "ignored: album part not addressed to the bot (kept for its album)")
        if decision.message is None:
            log.info("update_ignored", reason=decision.ignored)
            return _response(200, f"ignored: {decision.ignored}")
        if len(decision.message.text) > MAX_TEXT_CHARS:
            return self._unprocessable("text too long")
        message = decision.message
        if message.kind == "chat_moved":
            return self._move_chat(update.update_id, message)
        if edit:
            return self._enqueue_edit(update.update_id, message)
        if is_paste(message.album_id):
            return self._enqueue_paste_part(update.update_id, message, decision.near_limit)
        verdict = self._record_album_part(message, addressed=True)
        if verdict == "joins":
            log.info("album_part_joined")
            return _response(200, "album part: answered with its album")
        if verdict in ("late", None) and message.album_id is not None:
            # Its album was answered already, or it was not recorded: a message of its own.
            message = msgspec.structs.replace(message, album_id=None)
        return self._enqueue(update.update_id, message)

    def _unprocessable(self, reason: str) -> dict[str, Any]:
        """Drop an authenticated update the producer can never process, with a 200: Telegram
        retries any other answer for up to a day and the same update would be refused every
        time. The log line and the metric tell the operator; nobody answers that message."""
        log.warning("update_unprocessable", reason=reason)
        emit_metric(UNPROCESSABLE_UPDATES_METRIC, 1, unit="Count", tenant=self._config.tenant)
        return _response(200, f"dropped: {reason}")

    def _enqueue_paste_part(
        self, update_id: int, message: InboundMessage, near_limit: bool
    ) -> dict[str, Any]:
        """Queue a plain text message: as the start of its sender's paste (its turn gathers
        the parts that follow), as a message of its own, or not at all when it is a further
        part of a paste (answered with it)."""
        verdict = self._record_paste_part(message, near_limit, addressed=True)
        if verdict == "joins":
            return self._joined_paste(update_id, message)
        if verdict != "starts":  # no paste of its sender open, or not recorded: as before pastes
            return self._enqueue(update_id, msgspec.structs.replace(message, album_id=None))
        # Dropped (rate limit, full backlog), no turn will gather its paste, which must not
        # keep the sender's next messages.
        return self._enqueue(update_id, message, if_dropped=lambda: self._forget_paste(message))

    def _enqueue_edit(self, update_id: int, message: InboundMessage) -> dict[str, Any]:
        """Queue an edited group message that now addresses the bot, unless the message was
        queued already (as sent, or by an earlier edit) or may have been (sent before edits
        were tracked): claimed first, so two edits never both start a turn."""
        add_correlation(session_key=message.session_key)
        edited = _group_message(message)
        assert edited is not None  # decide_edit answers group messages only
        try:
            claim = self._registry.claim_edited_message(
                self._config.tenant, edited, update_id, sent_at=message.sent_at
            )
        except StorageError as exc:
            log.error("edit_claim_failed", error=str(exc)[:200])
            return _response(503, "edit not checked, retry")
        if claim != "claimed":
            reason = f"edit of a message {claim}"
            log.info("update_ignored", reason=reason)
            return _response(200, f"ignored: {reason}")
        return self._enqueue(update_id, message, if_dropped=lambda: self._release_edit_claim(edited))

    def _release_edit_claim(self, edited: GroupMessage) -> None:
        """An edit dropped (a limit, too large for the queue) answered nothing: its message may
        be edited in again."""
        try:
            self._registry.release_edit_claim(self._config.tenant, edited)
        except StorageError as exc:  # its next edits are ignored, as if it had been answered
            log.warning("edit_claim_not_released", error=str(exc)[:200])

    def _config_for(self, update: Update) -> ProducerConfig | None:
        """The configuration for ``update``: with its chat on ALLOWED_CHAT_IDS too when it is a
        supergroup that was a group on the list (``_moved_chats``); None when that could not be
        looked up (the update is answered 503, so Telegram sends it again)."""
        config, chat_id = self._config, chat_of(update)
        if (
            self._moved_chats is None
            or chat_id is None
            or not config.allowed_chat_ids
            or chat_id in config.allowed_chat_ids
        ):
            return config
        try:
            moved = self._moved_chats.allowed_as_moved(config.tenant, chat_id, config.allowed_chat_ids)
        except StorageError as exc:
            log.error("moved_chat_lookup_failed", error=str(exc)[:200])
            return None
        if not moved:
            return config
        return dataclasses.replace(config, allowed_chat_ids=config.allowed_chat_ids | {chat_id})

    def _record_album_part(self, message: InboundMessage, *, addressed: bool) -> AlbumVerdict | None:
        """Keep a part of an album for the turn of its first addressed part (None: not a part
        of an album, or not recorded: then it is answered on its own, as before albums)."""
        if message.album_id is None or self._albums is None:
            return None
        try:
            return self._albums.record(
                message.session_key,
                message.album_id,
                message.update_id,
                encode_json(message).decode(),
                addressed=addressed,
            )
        except StorageError as exc:
            log.warning("album_part_not_recorded", error=str(exc)[:200])
            return None

    def _record_paste_part(
        self, message: InboundMessage, near_limit: bool, *, addressed: bool
    ) -> PasteVerdict | None:
        """Write a plain text message to its sender's paste (session_core.PasteParts; None: not
        written, so it is answered on its own, as before pastes)."""
        if self._pastes is None or message.user_id is None:
            return None
        try:
            return self._pastes.record(
                message.session_key,
                message.user_id,
                message.update_id,
                encode_json(message).decode(),
                near_limit=near_limit,
                addressed=addressed,
            )
        except StorageError as exc:
            log.warning("paste_part_not_recorded", error=str(exc)[:200])
            return None

    def _joined_paste(self, update_id: int, part: InboundMessage) -> dict[str, Any]:
        """A part answered with its paste: in a group, recorded as queued (as its paste's first
        part is), so an edit of it is no second turn."""
        log.info("paste_part_joined")
        answered = _group_message(part)
        if answered is not None:
            self._mark_seen(update_id, answered=answered)
        return _response(200, "paste part: answered with its paste")

    def _forget_paste(self, message: InboundMessage) -> None:
        assert self._pastes is not None and message.user_id is not None
        try:
            self._pastes.forget(message.session_key, message.user_id, starter=message.update_id)
        except StorageError as exc:  # its sender's next pastes are answered part by part a while
            log.warning("paste_not_forgotten", error=str(exc)[:200])

    def _move_chat(self, update_id: int, moved: InboundMessage) -> dict[str, Any]:
        """Queue the move of a group's conversation to the supergroup it became, ahead of the
        supergroup's messages (its FIFO group). Never rate limited or refused for a full
        backlog: dropped, the chat would lose its conversation for good."""
        add_correlation(session_key=moved.session_key)
        if self._seen_before(update_id):
            return _response(200, "duplicate")
        allowed_chats = self._config.allowed_chat_ids
        if (
            allowed_chats
            and moved.chat_id not in allowed_chats
            and not self._record_move_of_allowed_group(moved)
        ):
            return _response(503, "chat move not recorded, retry")
        if not self._send_to_queue(update_id, moved.session_key, _queue_body(moved, self._clock())):
            return _response(503, "queue unavailable, retry")
        self._mark_seen(update_id)
        log.info("chat_move_enqueued", moved_from_chat_id=moved.moved_from_chat_id)
        return _response(200, "enqueued: chat moved")

    def _record_move_of_allowed_group(self, moved: InboundMessage) -> bool:
        """The supergroup ``moved`` names is not on ALLOWED_CHAT_IDS: when the group it was is,
        the move is recorded, so the supergroup is allowed from now on (``_moved_chats``);
        either way the operator is told to list it. False only when the move could not be
        recorded (the update is answered 503, so Telegram sends it again)."""
        old = moved.moved_from_chat_id
        fix = f"add {moved.chat_id} to ALLOWED_CHAT_IDS (group {old} became this supergroup)"
        if old not in self._config.allowed_chat_ids or self._moved_chats is None:
            log.warning(
                "moved_chat_not_on_allow_list", chat_id=moved.chat_id, moved_from_chat_id=old, fix=fix
            )
            return True
        try:
            self._moved_chats.record(self._config.tenant, moved.chat_id, old)
        except StorageError as exc:
            log.error("chat_move_not_recorded", error=str(exc)[:200])
            return False
        log.warning("allowed_chat_moved", chat_id=moved.chat_id, moved_from_chat_id=old, fix=fix)
        return True

    def _seen_before(self, update_id: int) -> bool:
        """Whether Telegram sent this update already (``_mark_seen`` records it, once queued)."""
        try:
            if self._registry.update_seen(self._config.tenant, update_id):
                log.info("update_duplicate")
                return True
        except StorageError as exc:
            # SQS dedup and the runtime's replay still hold; availability wins.
            log.warning("dedup_check_failed", error=str(exc))
        return False

    def _enqueue(
        self, update_id: int, message: InboundMessage, *, if_dropped: Callable[[], None] = lambda: None
    ) -> dict[str, Any]:
        """Queue ``message`` unless Telegram sent it before; ``if_dropped`` is called when the
        limits drop it or it is too large for the queue (answered 200: Telegram will not send
        it again)."""
        add_correlation(session_key=message.session_key)
        if self._seen_before(update_id):
            return _response(200, "duplicate")
        if self._rate_limiter is not None:
            limited = self._rate_limited(message)
            if limited is not None:
                if_dropped()
                return limited
        body = _queue_body(message, self._clock())
        if len(body.encode()) > MAX_QUEUE_MESSAGE_BYTES:
            if_dropped()
            return self._unprocessable("update too large for the queue")
        if self._backlog is not None:
            refused = self._backlog_full(message)
            if refused is not None:
                if_dropped()
                return refused
        recorded = self._record_queued(update_id, message)
        if recorded is None:
            return self._not_queued(message, "message not recorded, retry")
        if not recorded:
            return self._answered_by_its_edit(update_id, message)
        if not self._send_to_queue(update_id, message.session_key, body):
            return self._not_queued(message, "queue unavailable, retry")
        self._mark_seen(update_id)
        log.info("update_enqueued")
        return _response(200, "enqueued")

    def _record_queued(self, update_id: int, message: InboundMessage) -> bool | None:
        """Record a group message as answered before it is queued: written after, a failed
        write left it editable into a second answer. None when it could not be written; False
        when an edit of it was answered first (a /stop included)."""
        answered = _group_message(message)
        if answered is None:
            return True
        try:
            return self._registry.record_queued(self._config.tenant, answered, update_id)
        except StorageError as exc:
            log.error("message_not_recorded", error=str(exc)[:200])
            return None

    def _answered_by_its_edit(self, update_id: int, message: InboundMessage) -> dict[str, Any]:
        """The copy Telegram sent again of a message whose record failed, edited meanwhile into
        one the bot answered: queued too, it would be a second answer (and, counted, a second
        message against the limits)."""
        self._give_back_counted(message)
        self._mark_seen(update_id)
        log.info("update_ignored", reason="message answered by its edit")
        return _response(200, "ignored: message answered by its edit")

    def _not_queued(self, message: InboundMessage, outcome: str) -> dict[str, Any]:
        """The 503 for a message not queued after all: Telegram sends it again, and that copy
        is counted against the limits then, not a second time."""
        self._give_back_counted(message)
        return _response(503, outcome)

    def _give_back_counted(self, message: InboundMessage) -> None:
        """Undo what taking ``message`` counted (its rate-limit slots, its place in the chat's
        backlog): it was not queued after all."""
        now = self._clock()
        if self._rate_limiter is not None:
            self._rate_limiter.give_back(**_counted_as(message), now=now)
        if self._backlog is not None:
            self._backlog.release(message.session_key, now=now)

    def _send_to_queue(self, update_id: int, group: str, body: str) -> bool:
        try:
            self._sqs.send_message(
                QueueUrl=self._config.queue_url,
                MessageBody=body,
                MessageGroupId=group,
                MessageDeduplicationId=f"{self._config.tenant}:{update_id}",
            )
        except (ClientError, BotoCoreError) as exc:
            log.error("enqueue_failed", error=type(exc).__name__)
            return False
        return True

    def _mark_seen(self, update_id: int, *, answered: GroupMessage | None = None) -> None:
        try:
            self._registry.mark_update_seen(self._config.tenant, update_id, answered=answered)
        except StorageError as exc:
            # The update is on the queue; a redelivery is caught by SQS dedup or the replay.
            log.warning("dedup_mark_failed", error=str(exc))

    def _press(self, update_id: int, press: ButtonPress, config: ProducerConfig) -> dict[str, Any]:
        """[I] Answer an approval or revoke press in the webhook reply; an approval it decides
        is resumed by an ``approval`` message queued in the chat's FIFO group. Never a 5xx for
        a press it refuses; a 503 only when the store or the queue failed (Telegram sends the
        press again, and the ``acted`` mark tells that copy from a second press)."""
        approver = press.user_id in config.approver_user_ids
        if not approver and not allowed(config, user_id=press.user_id, chat_id=press.chat_id):
            return _stranger(press.callback_query_id)
        add_correlation(session_key=press.key.canonical)
        if self._seen_before(update_id):
            return _response(200, "duplicate")
        button = press.button
        if button == "invalid":
            log.warning("button_invalid")
            return _reply(callback_answer(press, NOT_VALID_TEXT))
        if press.topic_unknown:
            log.info("button_topic_unknown")
            return _reply(callback_answer(press, TOPIC_UNKNOWN_TEXT))
        if self._approvals is None:
            return _reply(callback_answer(press, NOT_WAITING_TEXT))
        try:
            if isinstance(button, RevokeButton):
                grant = self._approvals.revoke(press.key, button.token)
                self._mark_seen(update_id)
                log.info("grant_revoked" if grant else "grant_already_revoked")
                return _reply(callback_answer(press, revoked_text(grant)))
            current = self._approvals.current(press.key)
            redelivered = self._registry.update_acted(self._config.tenant, update_id)
        except StorageError as exc:
            log.error("approval_not_read", error=str(exc)[:200])
            return _response(503, "approval store unavailable, retry")
        if redelivered and _decided_by(current, button, press):
            log.info("approval_press_redelivered")
        else:
            refused = refusal(current, button, press, config)
            if refused is not None:
                log.info("approval_press_refused", answer=refused)
                self._mark_seen(update_id)
                return _reply(callback_answer(press, refused))
            try:
                self._registry.mark_update_acted(self._config.tenant, update_id)
                self._approvals.decide(
                    press.key,
                    button.approval_id,
                    button.choice,
                    decided_by=presser_name(current, press),
                    decided_by_id=press.user_id,
                )
            except ApprovalNotPending as lost:  # another press won the race
                answer = already_answered_text(lost.current) if lost.current else NOT_WAITING_TEXT
                if lost.current is not None and lost.current.approval_id != button.approval_id:
                    answer = NOT_WAITING_TEXT
                self._mark_seen(update_id)
                return _reply(callback_answer(press, answer))
            except StorageError as exc:
                log.error("approval_not_decided", error=str(exc)[:200])
                return _response(503, "approval not recorded, retry")
        resume = InboundMessage(
            update_id=update_id,
            session_key=press.key.canonical,
            kind="approval",
            chat_id=press.chat_id,
            chat_type=press.chat_type,
            message_id=press.message_id,
            thread_id=press.thread_id,
            forum=press.forum,
            in_reply_thread=press.in_reply_thread,
            # The asker's request goes on (an approver's press included): it counts against
            # their budget, and a call the turn asks next is theirs to answer.
            user_id=_asker(current, press),
            user_name=presser_name(current, press),
            approval_id=button.approval_id,
            sent_at=int(self._clock()),
        )
        # Not counted in the chat's backlog: it answers a turn that already ran, and dropping
        # it after the decision is written would leave the call waiting for nothing.
        if not self._send_to_queue(update_id, press.key.canonical, _queue_body(resume, self._clock())):
            return _response(503, "queue unavailable, retry")
        self._mark_seen(update_id)
        log.info("approval_decided", choice=button.choice)
        return _reply(callback_answer(press, decided_text(button.choice, press)))

    def _stop(self, update: Update, stop: StopRequest, config: ProducerConfig) -> dict[str, Any]:
        """Write the stop request for the chat's running turn (or for the turn still waiting to
        start: a queued message's, or a pressed approval's, see session_core's
        LiveTurnsWithBacklog) and answer in the reply. A stop Telegram sends
        again (its answer was lost) is dropped: a /stop names no turn, and a late copy would
        stop the next one. So is a message edited into a /stop a second time (or sent as one)."""
        if not allowed(config, user_id=stop.user_id, chat_id=stop.chat_id):
            as_the_group = stop.chat_id in config.allowed_user_ids
            return _stranger(stop.callback_query_id, hint=STOP_AS_THE_GROUP_TEXT if as_the_group else "")
        add_correlation(session_key=stop.key.canonical)
        tenant, update_id = self._config.tenant, update.update_id
        try:
            if self._registry.update_seen(tenant, update_id):
                log.info("update_duplicate")
                return _response(200, "duplicate")
        except StorageError as exc:
            log.warning("dedup_check_failed", error=str(exc))
        if stop.edited:
            refused = self._claim_stop_edit(update_id, stop)
            if refused is not None:
                return refused
        if self._stops is None:
            outcome: StopOutcome = "nothing_running"
        else:
            try:
                outcome = self._stops.request_stop(
                    stop.key, turn_id=stop.turn_id, update_id=update_id, by=stop.stopper
                )
                if stop.edited and stop.command_message is not None:
                    # Its sender took the message back: its own turn, should it come later
                    # (queued, or sent again by Telegram), does not run either.
                    self._stops.keep_stop_for_message(
                        stop.key, stop.command_message.message_id, by=stop.stopper
                    )
            except StorageError as exc:
                log.error("stop_not_written", error=str(exc)[:200])
                return _response(503, "stop not recorded, retry")
        # A /stop is answered here: recorded as a queued message is, so an edit of it (a
        # mention added, a word fixed) stops nothing more and queues no "/stop". Still one
        # write; an edit into a /stop recorded it when it claimed it.
        answered = None if stop.edited else stop.command_message
        try:
            self._registry.mark_update_seen(
                tenant, update_id, answered=answered, as_stop=answered is not None
            )
        except StorageError as exc:
            log.warning("dedup_mark_failed", error=str(exc))
        log.info("stop_requested", via=stop.via, outcome=outcome)
        if stop.album_id is not None:
            self._keep_album_from_a_turn(update, config)
        reply = stop_reply(stop, outcome)
        if reply is None:
            return _response(200, f"stop: {outcome}")
        verdict, which = self._stop_reply_rate(stop)
        if verdict == "drop":
            return _response(200, f"stop: {outcome}")
        if verdict == "notify":  # the one message of a burst says why the next get none
            assert self._rate_limiter is not None
            reply["text"] += (
                f"\n\n{_too_fast(self._rate_limiter, which)}: further stops still count, but get no "
                "answer until the rate falls."
            )
        return _reply(reply)

    def _claim_stop_edit(self, update_id: int, stop: StopRequest) -> dict[str, Any] | None:
        """None when the message edited into ``stop`` was no stop yet (now it is one); else the
        answer that drops it, so two edits (or a /stop and its edit) never stop twice."""
        assert stop.command_message is not None
        try:
            claim = self._registry.claim_stop_edit(
                self._config.tenant, stop.command_message, update_id, sent_at=stop.sent_at
            )
        except StorageError as exc:
            log.error("edit_claim_failed", error=str(exc)[:200])
            return _response(503, "edit not checked, retry")
        if claim == "claimed":
            return None
        reason = f"edit of a message {claim}"
        log.info("update_ignored", reason=reason)
        return _response(200, f"ignored: {reason}")

    def _keep_album_from_a_turn(self, update: Update, config: ProducerConfig) -> None:
        """Record the album part captioned /stop as the part that starts its album, and queue
        it not: the album's other parts, which Telegram sends apart, then join a turn that never
        comes (the /stop's answer says they went unread). Recorded after another part that
        started the album, its "/stop" is that turn's text: a command, so no paid turn either."""
        part = decide(update, config, now=self._clock()).message
        if part is not None:
            self._record_album_part(part, addressed=True)

    def _stop_reply_rate(self, stop: StopRequest) -> tuple[RateVerdict, str]:
        """The rate verdict on answering a /stop in a group: it counts all the same, but past
        the first one over the sender's limit it gets no message, which would spend the bot's
        sending allowance in that group (about 20 a minute) on "Nothing is running"."""
        limiter = self._rate_limiter
        if limiter is None or stop.via != "command" or stop.chat_id > 0:
            return "allowed", ""
        verdict, which = limiter.check(
            user_id=stop.user_id, chat_id=stop.chat_id, private=False, now=self._clock()
        )
        if verdict != "allowed":
            log.warning("stop_reply_rate_limited", limit=which, notified=verdict == "notify")
        return verdict, which

    def _rate_limited(self, message: InboundMessage) -> dict[str, Any] | None:
        """None when the message may be queued; else the 200 that drops it: the first one over
        the limit answers with a "slow down" sendMessage in the webhook reply (no bot token
        needed, no extra request), the rest with nothing."""
        limiter = self._rate_limiter
        assert limiter is not None
        verdict, which = limiter.check(**_counted_as(message), now=self._clock())
        if verdict == "allowed":
            return None
        log.warning("update_rate_limited", limit=which, notified=verdict == "notify")
        emit_metric(RATE_LIMITED_METRIC, 1, unit="Count", tenant=self._config.tenant)
        if verdict == "drop":
            return _response(200, f"rate limited ({which})")
        return _notice(
            message,
            f"{_too_fast(limiter, which)}. Please slow down: I skip messages sent until the rate "
            "falls again.",
        )

    def _backlog_full(self, message: InboundMessage) -> dict[str, Any] | None:
        """None when the chat has room in the queue; else the 200 that drops the message,
        with one notice for the first message of a burst over the limit."""
        backlog = self._backlog
        assert backlog is not None
        verdict = backlog.admit(message.session_key, now=self._clock())
        if verdict == "queued":
            return None
        log.warning("update_over_chat_backlog", notified=verdict == "notify")
        emit_metric(RATE_LIMITED_METRIC, 1, unit="Count", tenant=self._config.tenant)
        if verdict == "drop":
            return _response(200, "chat backlog full")
        where = this_place(message.thread_id, forum=message.forum)
        return _notice(
            message,
            f"I still have {counted(backlog.limit, 'message')} of {where} to answer. "
            "I skip new ones until I have caught up: please wait for my answers, then ask again.",
        )


def _stranger(callback_query_id: str | None, *, hint: str = "") -> dict[str, Any]:
    """The 200 for a stop or a press from someone off the allow-list: nothing is done, and a
    button press is answered (only the presser sees it, with ``hint`` if any) so it does not
    show loading."""
    log.info("update_ignored", reason="not on the allow-list")
    if callback_query_id is None:
        return _response(200, "ignored: not on the allow-list")
    text = f"{NOT_ALLOWED_TEXT} {hint}" if hint else NOT_ALLOWED_TEXT
    return _reply({"method": "answerCallbackQuery", "callback_query_id": callback_query_id, "text": text})


class _RateOwners(TypedDict):
    user_id: int | None
    chat_id: int
    private: bool


def _counted_as(message: InboundMessage) -> _RateOwners:
    """Whose rate limits ``message`` counts against (``RateLimiter.check`` and ``give_back``)."""
    return {"user_id": message.user_id, "chat_id": message.chat_id, "private": message.chat_type == "private"}


def _too_fast(limiter: RateLimiter, which: str) -> str:
    """Who is over which rate limit ("user" or "chat", as ``RateLimiter.check`` says), in words."""
    if which == "user":
        return f"You are sending messages faster than I can answer (at most {limiter.per_user} a minute)"
    return f"This chat is sending messages faster than I can answer (at most {limiter.per_chat} a minute)"


def _notice(message: InboundMessage, text: str) -> dict[str, Any]:
    """A 200 whose body (``_reply``) is a sendMessage to the message's chat (and topic), quoting
    the message it skips (in a group, "You are sending…" must say whom it means)."""
    reply: dict[str, Any] = {
        "method": "sendMessage",
        "chat_id": message.chat_id,
        "text": text,
        "reply_parameters": {"message_id": message.message_id, "allow_sending_without_reply": True},
    }
    if message.thread_id:
        reply["message_thread_id"] = message.thread_id
    return _reply(reply)


def _asker(approval: Approval | None, press: ButtonPress) -> int:
    """Whose request an approval press resumes: who asked (a chat, for an anonymous admin's)."""
    if approval is None or approval.requested_by is None:
        return press.user_id
    return approval.requested_by


def _decided_by(approval: Approval | None, button: ApprovalButton, press: ButtonPress) -> bool:
    """Whether ``approval`` holds the very decision ``press`` would make (its own, recorded
    before its answer was lost)."""
    return (
        approval is not None
        and approval.approval_id == button.approval_id
        and approval.state == "decided"
        and approval.choice == button.choice
        and approval.decided_by_id == press.user_id
    )


def _group_message(message: InboundMessage) -> GroupMessage | None:
    """The group message ``message`` answers, as an edit of it names it (None in a private
    chat, where edits start no turn)."""
    if message.chat_type not in ("group", "supergroup"):
        return None
    return GroupMessage(chat_id=message.chat_id, thread_id=message.thread_id, message_id=message.message_id)


def _queue_body(message: InboundMessage, now: float) -> str:
    envelope = QueueEnvelope(version=ENVELOPE_VERSION, message=message, enqueued_at=now)
    return sqs_safe_json(encode_envelope(envelope))


def _reply(method_call: dict[str, Any]) -> dict[str, Any]:
    """A 200 whose body is a Bot API call Telegram makes for us (no bot token needed)."""
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": msgspec.json.encode(method_call).decode(),
    }


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
