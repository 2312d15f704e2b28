"""One SQS record → at most one turn and exactly one reply.

- A record that fails is reported in ``batchItemFailures``; later records of the same chat
  (FIFO group) in the batch are reported too, unprocessed, so the chat's order holds; other
  chats in the batch carry on. It comes back after max(backoff, Telegram's ``retry_after``).
- Exactly one reply: each delivered chunk is recorded (``record_delivered_chunk``, retried
  locally: the send cannot be undone) and skipped on a retry; the retried turn is not re-run,
  the runtime replays the result it recorded.
- Time: the runtime gets a deadline (the invocation's remaining time minus a reserve for
  delivery), so the consumer never times out after the turn. A session busy with another
  live turn is waited for inside the invocation, then invoked again (the runtime replays
  the other run's answer or runs the turn once the lease is free).
- A turn that fails for good (a permanent error, or a retryable one on the queue's last
  receive) tells the user once (``notice_sent``), sends the record to the DLQ with its
  context and is acknowledged. A *deferrable* failure (the session stayed busy, or only
  delivery is left) is never dead-lettered on the last receive: a copy is re-enqueued
  (at most ``MAX_REQUEUES`` times) and the original acknowledged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError
from session_core import (
    TURN_VERSION,
    BudgetExceeded,
    BudgetHold,
    BudgetLedger,
    InboundMessage,
    InvalidSessionKeyError,
    MessageDecodeError,
    SessionKey,
    SessionRegistry,
    StorageError,
    TurnRequest,
    TurnResult,
    bind_correlation,
    decode_envelope,
    get_logger,
    well_formed,
)

from ._attachments import stage_attachments
from ._budget import refusal_text, report_deployment_spend
from ._commands import parse_command, run_command
from ._config import RUNTIME_MAX_TIMEOUT_S, ConsumerConfig
from ._errors import (
    AttachmentTooLargeError,
    ConsumerError,
    DeferredError,
    DeliveryFailedError,
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
_MAX_VISIBILITY_S = 43_200  # SQS's limit for ChangeMessageVisibility
# Kept free of the runtime's deadline: sending a long answer, with Telegram's own retries.
DELIVERY_RESERVE_S = 45.0
# Busy waiting stops when less than this (plus the delivery reserve) is left for our own turn.
TURN_RESERVE_S = 120.0
BUSY_POLL_S = 5.0
# Copies a deferrable record may make of itself on its last receive before it is dead-lettered.
MAX_REQUEUES = 5
REQUEUES_ATTRIBUTE = "requeues"
_RECORD_WRITE_ATTEMPTS = 5

RemainingTimeMs = Callable[[], int]


def retry_delay_s(receive_count: int, *, base_s: int = RETRY_BASE_DELAY_S) -> int:
    """Seconds before a failed record is received again: 10, 20, 40 … capped at 5 minutes."""
    return int(min(base_s * 2 ** max(0, receive_count - 1), RETRY_MAX_DELAY_S))


@dataclass(frozen=True)
class RecordOutcome:
    """What became of one record: ``done`` (delete it) or to be retried, and why.

    ``retry_delay_s``: when not done, how long the record stays hidden before its retry.
    """

    done: bool
    status: str  # replied | command | unsupported | refused | dead_lettered | requeued | retry
    retry_delay_s: int | None = None


class Consumer:
    """Processes queue records; one instance per Lambda container, clients injected.

    The timing knobs (``busy_poll_s``, reserves, ``retry_base_delay_s``,
    ``record_retry_backoff_s``) have production defaults; tests shorten them.
    """

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
        sleep: Callable[[float], None] = time.sleep,
        typing_interval_s: float = TYPING_REFRESH_S,
        busy_poll_s: float = BUSY_POLL_S,
        delivery_reserve_s: float = DELIVERY_RESERVE_S,
        turn_reserve_s: float = TURN_RESERVE_S,
        retry_base_delay_s: int = RETRY_BASE_DELAY_S,
        record_retry_backoff_s: float = 0.2,
        budgets: BudgetLedger | None = None,
    ) -> None:
        self._config = config
        self._budgets = budgets
        self._registry = registry
        self._runtime = runtime
        self._bot = bot
        self._s3 = s3
        self._sqs = sqs
        self._clock = clock
        self._sleep = sleep
        self._typing_interval_s = typing_interval_s
        self._busy_poll_s = busy_poll_s
        self._delivery_reserve_s = delivery_reserve_s
        self._turn_reserve_s = turn_reserve_s
        self._retry_base_delay_s = retry_base_delay_s
        self._record_retry_backoff_s = record_retry_backoff_s

    def handle_batch(
        self, event: dict[str, Any], *, remaining_time_ms: RemainingTimeMs | None = None
    ) -> dict[str, list[dict[str, str]]]:
        """Process an SQS event and return the partial batch response.

        ``remaining_time_ms`` is the Lambda context's ``get_remaining_time_in_millis``
        (without it: Lambda's maximum from now). Records of one chat (FIFO group) run in
        order, one at a time; different chats in the batch run in parallel threads, as
        they would in separate invocations.
        """
        remaining = remaining_time_ms or _time_left_of(RUNTIME_MAX_TIMEOUT_S)
        records = list(event.get("Records") or [])
        groups: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            group = str((record.get("attributes") or {}).get("MessageGroupId", ""))
            groups.setdefault(group, []).append(record)

        def run_group(recs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
            return self._handle_group(recs, remaining)

        if len(groups) <= 1:
            failed = [f for recs in groups.values() for f in run_group(recs)]
        else:
            with ThreadPoolExecutor(max_workers=min(len(groups), _MAX_PARALLEL_CHATS)) as pool:
                failed = [f for found in pool.map(run_group, groups.values()) for f in found]
        order = {id(r): n for n, r in enumerate(records)}
        failed.sort(key=lambda f: order.get(id(f[0]), 0))
        self._delay_retries(failed)
        return {
            "batchItemFailures": [{"itemIdentifier": str(r.get("messageId", ""))} for r, _ in failed]
        }

    def _delay_retries(self, failed: list[tuple[dict[str, Any], int]]) -> None:
        """Bring records to retry back after their delay rather than the queue's visibility
        timeout (6 x the consumer's 900 s, which would leave a chat silent for 90 min)."""
        if not self._config.inbound_queue_url:
            return
        for record, delay in failed:
            try:
                self._sqs.change_message_visibility(
                    QueueUrl=self._config.inbound_queue_url,
                    ReceiptHandle=record["receiptHandle"],
                    VisibilityTimeout=delay,
                )
            except (ClientError, BotoCoreError, KeyError) as exc:
                log.warning("retry_delay_not_set", error=type(exc).__name__)

    def _retry_delay(self, record: dict[str, Any], retry_after: float | None = None) -> int:
        backoff = retry_delay_s(_receive_count(record), base_s=self._retry_base_delay_s)
        return min(max(backoff, math.ceil(retry_after or 0)), _MAX_VISIBILITY_S)

    def _handle_group(
        self, records: list[dict[str, Any]], remaining_time_ms: RemainingTimeMs
    ) -> list[tuple[dict[str, Any], int]]:
        failed: list[tuple[dict[str, Any], int]] = []
        for record in records:
            if failed:  # keep the chat's order: its later records wait for the failed one
                failed.append((record, self._retry_delay(record)))
                continue
            try:
                outcome = self.handle_record(record, remaining_time_ms=remaining_time_ms)
            except Exception:  # one broken record must not fail its neighbours
                log.exception("record_crashed", message_id=str(record.get("messageId", "")))
                outcome = RecordOutcome(done=False, status="retry")
            if not outcome.done:
                failed.append((record, outcome.retry_delay_s or self._retry_delay(record)))
        return failed

    def handle_record(
        self, record: dict[str, Any], *, remaining_time_ms: RemainingTimeMs | None = None
    ) -> RecordOutcome:
        """Process one SQS record (Lambda event shape)."""
        receive_count = _receive_count(record)
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
            status = self.process_message(msg, key, remaining_time_ms=remaining_time_ms)
            log.info("record_done", status=status, receive_count=receive_count)
            return RecordOutcome(done=True, status=status)
        except Exception as exc:
            retryable = bool(getattr(exc, "retryable", not isinstance(exc, ConsumerError)))
            deferrable = retryable and bool(getattr(exc, "deferrable", False))
            kind = str(getattr(exc, "error_kind", type(exc).__name__))
            # Our own errors carry no secrets or user text; others are named by type only.
            detail = str(exc) if isinstance(exc, ConsumerError) else type(exc).__name__
            if retryable and not last_receive:
                delay = self._retry_delay(record, getattr(exc, "retry_after", None))
                log.warning("record_retry", error_kind=kind, receive_count=receive_count,
                            retry_in_s=delay, error=detail)
                return RecordOutcome(done=False, status="retry", retry_delay_s=delay)
            if deferrable:
                requeued = self._requeue(record, key, reason=kind)
                if requeued is not None:
                    return requeued
            log.error("record_failed", error_kind=kind, receive_count=receive_count, error=detail)
            # A deferred record's own text (say the runtime's "still busy") is no final answer.
            user_message = None if deferrable else getattr(exc, "user_message", None)
            self._tell_user_once(msg, key, user_message)
            return self._dead_letter(record, msg, key, error_kind=kind, detail=detail)

    def process_message(
        self,
        msg: InboundMessage,
        key: SessionKey,
        *,
        remaining_time_ms: RemainingTimeMs | None = None,
    ) -> str:
        """Answer one inbound message; raises on failure (``retryable`` says whether to retry).

        ``remaining_time_ms`` bounds the turn (the runtime's deadline) and busy waiting.
        """
        remaining = remaining_time_ms or _time_left_of(RUNTIME_MAX_TIMEOUT_S)
        if msg.kind == "unsupported":
            what = (msg.unsupported_what or "this kind of").replace("_", " ")
            self.deliver(msg, key, [f"Sorry, {what} messages are not supported yet. "
                                    "Send text, a photo or a document."])
            return "unsupported"
        command = parse_command(msg.text, self._config.bot_username)
        if command is not None:
            if not self._registry.delivered_chunks(key, msg.update_id):  # not done on a retry
                reply = run_command(command, key, registry=self._registry,
                                    retention_days=self._config.retention_days, clock=self._clock,
                                    budgets=self._budgets, user_id=msg.user_id)
                self.deliver(msg, key, [reply])
            return "command"
        hold = BudgetHold()
        if self._budgets is not None:
            admitted = self._budgets.hold(chat_id=msg.chat_id, user_id=msg.user_id)
            if isinstance(admitted, BudgetExceeded):
                log.warning("turn_over_budget", scope=admitted.scope, period=admitted.period,
                            cap_usd=admitted.cap_usd)
                self.deliver(msg, key, [escape_html(refusal_text(admitted, self._budgets.now()))])
                return "over_budget"
            hold = admitted
        try:
            result = self._answer(msg, key, remaining)
        except Exception:
            # The turn may have spent up to its cap: the hold stays until the period ends.
            log.warning("budget_hold_kept", held_usd=hold.held_usd)
            raise
        if self._budgets is not None:
            # A replayed answer was paid for by the run that recorded it.
            self._budgets.settle(hold, 0.0 if result is None or result.replayed else result.cost_usd)
            report_deployment_spend(self._budgets, self._config.tenant)
        if result is None:
            return "refused"
        if not result.ok:
            raise TurnFailedError(str(result.error_kind), result.user_message, retryable=result.retryable)
        return "replied"

    def _answer(self, msg: InboundMessage, key: SessionKey, remaining: RemainingTimeMs) -> TurnResult | None:
        """Run the turn and deliver its answer; None when an attachment is refused, the
        runtime's failed result (not raised here, so its cost is still counted)."""
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
                return None
            prompt = msg.text or (FILE_ONLY_PROMPT if staged else "")
            result = self._run_turn_when_free(
                TurnRequest(version=TURN_VERSION, session_key=key.canonical,
                            update_id=msg.update_id, prompt=prompt, attachments=staged,
                            max_cost_usd=self._config.budgets.turn_usd),
                remaining,
            )
            if not result.ok:
                return result
            log.info("turn_answered", replayed=result.replayed, cost_usd=result.cost_usd,
                     duration_ms=result.duration_ms)
            self.deliver(msg, key, render_reply(result.text) or [EMPTY_ANSWER])
        return result

    def _run_turn_when_free(self, request: TurnRequest, remaining_time_ms: RemainingTimeMs) -> TurnResult:
        """Invoke the runtime with a deadline that leaves time for delivery; while another
        live turn holds the session ("busy"), wait and invoke again: the runtime replays the
        other run's answer to this update, or runs the turn once the lease is free."""
        polls = 0
        while True:
            budget_s = remaining_time_ms() / 1000 - self._delivery_reserve_s
            if budget_s < 1:
                raise DeferredError("out_of_time", f"{budget_s + self._delivery_reserve_s:.0f} s "
                                    "left of the invocation, not enough for a turn and its delivery")
            deadline_ms = int((self._clock() + budget_s) * 1000)
            result = self._runtime.run_turn(
                msgspec.structs.replace(request, deadline_epoch_ms=deadline_ms)
            )
            if result.error_kind != "busy":
                if polls:
                    log.info("session_free_again", polls=polls, replayed=result.replayed)
                return result
            wait_left_s = budget_s - self._turn_reserve_s
            if wait_left_s < self._busy_poll_s:
                raise DeferredError("busy", f"another turn held the session through {polls} polls")
            if not polls:
                log.info("session_busy_waiting", poll_s=self._busy_poll_s, up_to_s=round(wait_left_s))
            polls += 1
            self._sleep(self._busy_poll_s)

    def deliver(self, msg: InboundMessage, key: SessionKey, chunks: list[str]) -> None:
        """Send the chunks not yet delivered for this update, recording each one as it goes.

        The first chunk quotes the user's message; all go to the message's forum topic.
        Raises DeliveryFailedError (retryable ones are deferrable) when Telegram or the
        delivery record fails after the local retries.
        """
        index = 0
        try:
            delivered = self._registry.delivered_chunks(key, msg.update_id)
            for index, chunk in enumerate(chunks):
                if index in delivered:
                    continue
                message_id = self._send_chunk(
                    msg, chunk, reply_to=msg.message_id if index == 0 else None
                )
                self._record_chunk(key, msg.update_id, index, message_id)
        except (TelegramApiError, StorageError) as exc:
            raise DeliveryFailedError(msg.update_id, index, exc) from exc

    def _record_chunk(self, key: SessionKey, update_id: int, index: int, message_id: int) -> None:
        # The chunk is out and cannot be taken back: a lost record would send it twice on
        # the record's retry, so a throttled or failing write is retried here first.
        for attempt in range(1, _RECORD_WRITE_ATTEMPTS + 1):
            try:
                self._registry.record_delivered_chunk(key, update_id, index, message_id)
                return
            except StorageError as exc:
                if attempt == _RECORD_WRITE_ATTEMPTS:
                    log.error("delivery_not_recorded", chunk=index, error_code=exc.error_code)
                    raise
                wait = self._record_retry_backoff_s * 2 ** (attempt - 1)
                log.warning("delivery_record_retry", chunk=index, attempt=attempt,
                            error_code=exc.error_code, wait_s=wait)
                self._sleep(wait)

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

    def _requeue(
        self, record: dict[str, Any], key: SessionKey, *, reason: str
    ) -> RecordOutcome | None:
        """Put a copy of a deferrable record on the queue (its receive count starts over)
        and acknowledge this one; None when it may not (``MAX_REQUEUES`` reached, or no
        INBOUND_QUEUE_URL), so it is dead-lettered instead."""
        requeues = _requeue_count(record)
        if requeues >= MAX_REQUEUES or not self._config.inbound_queue_url:
            return None
        try:
            self._sqs.send_message(
                QueueUrl=self._config.inbound_queue_url,
                MessageBody=_body_text(record),
                MessageGroupId=key.canonical,
                # A retry of this same record (crashed after the send) reuses the id: one copy.
                MessageDeduplicationId=f"requeue-{record.get('messageId', '')}"[:128],
                MessageAttributes={
                    REQUEUES_ATTRIBUTE: {"DataType": "Number", "StringValue": str(requeues + 1)},
                    "requeue_reason": {"DataType": "String", "StringValue": reason},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            log.error("requeue_failed", error=type(exc).__name__)
            return RecordOutcome(done=False, status="retry")
        log.warning("record_requeued", reason=reason, requeues=requeues + 1)
        return RecordOutcome(done=True, status="requeued")

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
            "error_detail": well_formed(detail[:256]),
            "update_id": str(msg.update_id) if msg else "",
            "session_key": key.canonical if key else "",
            "receive_count": str(attributes.get("ApproximateReceiveCount", "")),
            "source_message_id": str(record.get("messageId", "")),
            "requeues": str(_requeue_count(record) or ""),
        }
        try:
            self._sqs.send_message(
                QueueUrl=self._config.dead_letter_queue_url,
                MessageBody=_body_text(record) or "(empty)",
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


def _body_text(record: dict[str, Any]) -> str:
    """The record's body as SQS can take it again (valid Unicode text)."""
    body = record.get("body")
    return well_formed(body if isinstance(body, str) else str(body or ""))


def _receive_count(record: dict[str, Any]) -> int:
    return int((record.get("attributes") or {}).get("ApproximateReceiveCount") or 1)


def _requeue_count(record: dict[str, Any]) -> int:
    attribute = (record.get("messageAttributes") or {}).get(REQUEUES_ATTRIBUTE) or {}
    try:
        return max(0, int(attribute.get("stringValue") or 0))
    except ValueError:
        return 0


def _time_left_of(seconds: float) -> RemainingTimeMs:
    ends = time.monotonic() + seconds
    return lambda: int((ends - time.monotonic()) * 1000)
