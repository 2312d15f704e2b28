"""One SQS record → at most one turn and exactly one reply.

- A record that fails is reported in ``batchItemFailures``; later records of the same chat
  (FIFO group) in the batch are reported too, unprocessed, so the chat's order holds; other
  chats in the batch carry on.
- Exactly one reply: each delivered chunk is recorded (``record_delivered_chunk``) and skipped
  on a retry; the retried turn is not re-run, the runtime replays the result it recorded.
- A turn that fails for good (a permanent error, or any error on the queue's last receive)
  tells the user once (``notice_sent``), sends the record to the DLQ with its context and is
  acknowledged. Retryable errors before the last receive are simply retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from session_core import (
    TURN_VERSION,
    InboundMessage,
    InvalidSessionKeyError,
    MessageDecodeError,
    SessionKey,
    SessionRegistry,
    StorageError,
    TurnRequest,
    bind_correlation,
    decode_envelope,
    get_logger,
)

from ._attachments import stage_attachments
from ._commands import parse_command, run_command
from ._config import ConsumerConfig
from ._errors import (
    AttachmentTooLargeError,
    ConsumerError,
    TelegramApiError,
    TurnFailedError,
)
from ._render import escape_html, html_to_plain, render_reply, split_plain
from ._runtime import RuntimeClient
from ._telegram import BotApi
from ._typing import TYPING_REFRESH_S, TypingIndicator

log = get_logger(__name__)

FAILED_NOTICE = (
    "Sorry, I could not answer this message. Please try again in a moment, "
    "or send /new to start a fresh conversation."
)
EMPTY_ANSWER = "(I have nothing to add.)"
_MAX_PARALLEL_CHATS = 8
FILE_ONLY_PROMPT = "The user sent the attached file(s) without a message."


RETRY_BASE_DELAY_S = 10
RETRY_MAX_DELAY_S = 300


def retry_delay_s(receive_count: int) -> int:
    """Seconds before a failed record is received again: 10, 20, 40 … capped at 5 minutes."""
    return min(RETRY_BASE_DELAY_S * 2 ** max(0, receive_count - 1), RETRY_MAX_DELAY_S)


@dataclass(frozen=True)
class RecordOutcome:
    """What became of one record: ``done`` (delete it) or to be retried, and why."""

    done: bool
    status: str  # replied | command | unsupported | refused | dead_lettered | retry


class Consumer:
    """Processes queue records; one instance per Lambda container, clients injected."""

    def __init__(
        self,
        *,
        config: ConsumerConfig,
        registry: SessionRegistry,
        runtime: RuntimeClient,
        bot: BotApi,
        s3: Any,
        sqs: Any,
        clock: Callable[[], float] = time.time,
        typing_interval_s: float = TYPING_REFRESH_S,
    ) -> None:
        self._config = config
        self._registry = registry
        self._runtime = runtime
        self._bot = bot
        self._s3 = s3
        self._sqs = sqs
        self._clock = clock
        self._typing_interval_s = typing_interval_s

    def handle_batch(self, event: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
        """Process an SQS event and return the partial batch response.

        Records of one chat (FIFO group) run in order, one at a time; different chats in
        the batch run in parallel threads, as they would in separate invocations.
        """
        records = list(event.get("Records") or [])
        groups: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            group = str((record.get("attributes") or {}).get("MessageGroupId", ""))
            groups.setdefault(group, []).append(record)
        if len(groups) <= 1:
            failed = [i for recs in groups.values() for i in self._handle_group(recs)]
        else:
            with ThreadPoolExecutor(max_workers=min(len(groups), _MAX_PARALLEL_CHATS)) as pool:
                failed = [i for ids in pool.map(self._handle_group, groups.values()) for i in ids]
        order = {str(r.get("messageId", "")): n for n, r in enumerate(records)}
        failed.sort(key=lambda i: order.get(i, 0))
        self._delay_retries([r for r in records if str(r.get("messageId", "")) in set(failed)])
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}

    def _delay_retries(self, records: list[dict[str, Any]]) -> None:
        """Bring records to retry back after a short, growing backoff rather than the queue's
        visibility timeout (6 x the consumer's 900 s, which would leave a chat silent for 90 min)."""
        if not self._config.inbound_queue_url:
            return
        for record in records:
            receives = int((record.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
            try:
                self._sqs.change_message_visibility(
                    QueueUrl=self._config.inbound_queue_url,
                    ReceiptHandle=record["receiptHandle"],
                    VisibilityTimeout=retry_delay_s(receives),
                )
            except (ClientError, BotoCoreError, KeyError) as exc:
                log.warning("retry_delay_not_set", error=type(exc).__name__)

    def _handle_group(self, records: list[dict[str, Any]]) -> list[str]:
        failed: list[str] = []
        for record in records:
            message_id = str(record.get("messageId", ""))
            if failed:  # keep the chat's order: its later records wait for the failed one
                failed.append(message_id)
                continue
            try:
                outcome = self.handle_record(record)
            except Exception:  # one broken record must not fail its neighbours
                log.exception("record_crashed", message_id=message_id)
                outcome = RecordOutcome(done=False, status="retry")
            if not outcome.done:
                failed.append(message_id)
        return failed

    def handle_record(self, record: dict[str, Any]) -> RecordOutcome:
        """Process one SQS record (Lambda event shape)."""
        attributes = record.get("attributes") or {}
        receive_count = int(attributes.get("ApproximateReceiveCount") or 1)
        last_receive = receive_count >= self._config.max_receive_count
        bind_correlation(request_id=str(record.get("messageId", "")))
        try:
            envelope = decode_envelope(record.get("body") or "")
            key = SessionKey.parse(envelope.message.session_key)
        except (MessageDecodeError, InvalidSessionKeyError) as exc:
            log.error("record_undecodable", error=str(exc))
            return self._dead_letter(record, None, None, error_kind="bad_message", detail=str(exc))
        msg = envelope.message
        bind_correlation(
            update_id=msg.update_id, session_key=key.canonical, request_id=record.get("messageId")
        )
        try:
            status = self.process_message(msg, key)
            log.info("record_done", status=status, receive_count=receive_count)
            return RecordOutcome(done=True, status=status)
        except Exception as exc:
            retryable = bool(getattr(exc, "retryable", not isinstance(exc, ConsumerError)))
            kind = str(getattr(exc, "error_kind", type(exc).__name__))
            # Our own errors carry no secrets or user text; others are named by type only.
            detail = str(exc) if isinstance(exc, ConsumerError) else type(exc).__name__
            if retryable and not last_receive:
                log.warning("record_retry", error_kind=kind, receive_count=receive_count,
                            error=detail)
                return RecordOutcome(done=False, status="retry")
            log.error("record_failed", error_kind=kind, receive_count=receive_count, error=detail)
            self._tell_user_once(msg, key, getattr(exc, "user_message", None))
            return self._dead_letter(record, msg, key, error_kind=kind, detail=detail)

    def process_message(self, msg: InboundMessage, key: SessionKey) -> str:
        """Answer one inbound message; raises on failure (``retryable`` says whether to retry)."""
        if msg.kind == "unsupported":
            what = (msg.unsupported_what or "this kind of").replace("_", " ")
            self.deliver(msg, key, [f"Sorry, {what} messages are not supported yet. "
                                    "Send text, a photo or a document."])
            return "unsupported"
        command = parse_command(msg.text, self._config.bot_username)
        if command is not None:
            if not self._registry.delivered_chunks(key, msg.update_id):  # not done on a retry
                reply = run_command(command, key, registry=self._registry,
                                    retention_days=self._config.retention_days, clock=self._clock)
                self.deliver(msg, key, [reply])
            return "command"
        with TypingIndicator(self._bot, msg.chat_id, thread_id=msg.thread_id,
                             interval_s=self._typing_interval_s):
            try:
                staged = stage_attachments(
                    msg.attachments, key=key, update_id=msg.update_id, bot=self._bot,
                    s3=self._s3, bucket=self._config.bucket,
                )
            except AttachmentTooLargeError as exc:
                self.deliver(msg, key, [
                    f"Sorry, {escape_html(exc.file_name)} is too large: I can read files up to 20 MB."
                ])
                return "refused"
            prompt = msg.text or (FILE_ONLY_PROMPT if staged else "")
            result = self._runtime.run_turn(
                TurnRequest(version=TURN_VERSION, session_key=key.canonical,
                            update_id=msg.update_id, prompt=prompt, attachments=staged)
            )
            if not result.ok:
                raise TurnFailedError(str(result.error_kind), result.user_message,
                                      retryable=result.retryable)
            log.info("turn_answered", replayed=result.replayed, cost_usd=result.cost_usd,
                     duration_ms=result.duration_ms)
            self.deliver(msg, key, render_reply(result.text) or [EMPTY_ANSWER])
        return "replied"

    def deliver(self, msg: InboundMessage, key: SessionKey, chunks: list[str]) -> None:
        """Send the chunks not yet delivered for this update, recording each one as it goes.

        The first chunk quotes the user's message; all go to the message's forum topic.
        """
        delivered = self._registry.delivered_chunks(key, msg.update_id)
        for index, chunk in enumerate(chunks):
            if index in delivered:
                continue
            message_id = self._send_chunk(
                msg, chunk, reply_to=msg.message_id if index == 0 else None
            )
            self._registry.record_delivered_chunk(key, msg.update_id, index, message_id)

    def _send_chunk(self, msg: InboundMessage, chunk: str, *, reply_to: int | None) -> int:
        try:
            return self._bot.send_message(msg.chat_id, chunk, html=True, thread_id=msg.thread_id,
                                          reply_to_message_id=reply_to)
        except TelegramApiError as exc:
            if exc.kind not in ("bad_html", "too_long"):
                raise
            rejected = exc.kind
            log.warning("chunk_sent_as_plain_text", kind=rejected)
        plain = html_to_plain(chunk)
        if rejected == "bad_html":
            return self._bot.send_message(msg.chat_id, plain, html=False, thread_id=msg.thread_id,
                                          reply_to_message_id=reply_to)
        message_id = 0
        for part in split_plain(plain, len(plain) // 2 + 1):  # Telegram counted more than we did
            message_id = self._bot.send_message(msg.chat_id, part, html=False,
                                                thread_id=msg.thread_id,
                                                reply_to_message_id=reply_to)
            reply_to = None
        return message_id

    def _tell_user_once(self, msg: InboundMessage, key: SessionKey, user_message: str | None) -> None:
        try:
            if not self._registry.notice_sent(key, msg.update_id, "failed"):
                return
            self._bot.send_message(msg.chat_id, user_message or FAILED_NOTICE, html=False,
                                   thread_id=msg.thread_id, reply_to_message_id=msg.message_id)
        except (ConsumerError, StorageError, ValueError) as exc:
            log.warning("failure_notice_not_sent", error=type(exc).__name__)

    def _dead_letter(
        self,
        record: dict[str, Any],
        msg: InboundMessage | None,
        key: SessionKey | None,
        *,
        error_kind: str,
        detail: str,
    ) -> RecordOutcome:
        attributes = record.get("attributes") or {}
        context = {
            "error_kind": error_kind,
            "error_detail": detail[:256],
            "update_id": str(msg.update_id) if msg else "",
            "session_key": key.canonical if key else "",
            "receive_count": str(attributes.get("ApproximateReceiveCount", "")),
            "source_message_id": str(record.get("messageId", "")),
        }
        try:
            self._sqs.send_message(
                QueueUrl=self._config.dead_letter_queue_url,
                MessageBody=record.get("body") or "(empty)",
                MessageGroupId=key.canonical if key else str(
                    attributes.get("MessageGroupId") or "undecodable"),
                MessageDeduplicationId=f"dlq-{record.get('messageId', '')}"[:128],
                MessageAttributes={
                    name: {"DataType": "String", "StringValue": value}
                    for name, value in context.items() if value
                },
            )
        except (ClientError, BotoCoreError) as exc:
            # Leave it on the queue: the redrive policy moves it to the DLQ after the last receive.
            log.error("dead_letter_failed", error=type(exc).__name__)
            return RecordOutcome(done=False, status="retry")
        log.error("record_dead_lettered", error_kind=error_kind)
        return RecordOutcome(done=True, status="dead_lettered")
