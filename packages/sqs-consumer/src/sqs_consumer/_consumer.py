"""One SQS record → at most one turn and exactly one reply: the Consumer wires its parts.

- ``_batch``: the FIFO batch processor (a failed record is reported in ``batchItemFailures``;
  its chat's later records wait; other chats carry on).
- ``_message``: answering one message (a command, a refusal, or a turn and its reply).
- ``_delivery``: exactly one reply (each chunk recorded, skipped on a retry; the retried turn
  is not re-run, the runtime replays the result it recorded) and one failure notice.
- ``_failures``: retry delays, re-enqueued copies and dead letters.
- ``_visibility_heartbeat``: the batch's records stay hidden while it runs, and come back
  within minutes if the invocation dies without answering.
- ``_progress_cleanup``: a group's progress message is deleted after the record's outcome
  (its answer or its failure's word), as that delete may wait for Telegram; so is an approval's
  question edited again (``_question_edit``) when its first edit was refused.
- ``_last_try``: a message whose try before last died (nothing could be said then) gets a
  word to the user before its last try.

A misconfigured deployment (``error_kind="config"`` from the runtime, which told the operator)
gets one short notice and the record is acknowledged: no retry, no DLQ. A turn that fails for
good tells the user once, goes to the DLQ with its context and is acknowledged. A chat the bot
may no longer post in (the user blocked it, it was removed, the topic closed) is logged and
the record acknowledged: nobody there can be told, and it is no fault for the DLQ's alarm.
So is a message whose sender the operator took off the allow-list while it waited
(``_allow_list``): no turn is paid for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from session_core import InvalidSessionKeyError, MessageDecodeError, SessionKey, bind_correlation, get_logger
from telegram_core import InboundMessage, decode_envelope

from ._allow_list import AllowList
from ._batch import BatchResponse, SqsRecord, batch_response, process_fifo_batch
from ._chat_holds import ChatHolds
from ._config import RUNTIME_MAX_TIMEOUT_S, ConsumerConfig
from ._config_report import tell_bot_token_refused
from ._delivery import Delivery
from ._deps import ConsumerDeps
from ._errors import DeliveryFailedError
from ._failures import FailurePolicy, classify
from ._last_try import LastTryWatch
from ._message import MessageHandler
from ._outcomes import RecordOutcome
from ._progress_cleanup import ProgressCleanup
from ._timing import ConsumerTiming, RemainingTimeMs, time_left_of
from ._visibility_heartbeat import VisibilityHeartbeat, receipt_handles
from ._wording import MISCONFIGURED_NOTICE, model_busy_notice

log = get_logger(__name__)


class Consumer:
    """Processes queue records; one instance per Lambda container, collaborators injected
    (``deps``), timing knobs with production defaults (``timing``; tests shorten them)."""

    def __init__(
        self, config: ConsumerConfig, deps: ConsumerDeps, timing: ConsumerTiming | None = None
    ) -> None:
        timing = timing or ConsumerTiming()
        self._config = config
        self._deps = deps
        self._timing = timing
        self._delivery = Delivery(
            bot=deps.bot,
            registry=deps.deliveries,
            claims=deps.delivery_claims,
            sleep=deps.sleep,
            record_retry_backoff_s=timing.record_retry_backoff_s,
            claim_poll_s=min(timing.busy_poll_s, 0.5),
            end_reserve_s=timing.delivery_end_reserve_s,
        )
        self._allow_list = AllowList(config, deps.moved_chats, deps.registry)
        self._messages = MessageHandler(config=config, deps=deps, timing=timing, delivery=self._delivery)
        self._last_try = LastTryWatch(
            marks=deps.attempts, delivery=self._delivery, max_receive_count=config.max_receive_count
        )
        self._failures = FailurePolicy(
            sqs=deps.sqs,
            inbound_queue_url=config.inbound_queue_url or "",
            dead_letter_queue_url=config.dead_letter_queue_url,
            retry_base_delay_s=timing.retry_base_delay_s,
        )

    def handle_batch(
        self, event: Mapping[str, Any], *, remaining_time_ms: RemainingTimeMs | None = None
    ) -> BatchResponse:
        """Process an SQS event and return the partial batch response.

        ``remaining_time_ms`` is the Lambda context's ``get_remaining_time_in_millis``
        (without it: Lambda's maximum from now). Records of one chat (FIFO group) run in
        order, one at a time; different chats in the batch run in parallel threads, as
        they would in separate invocations.

        The records stay hidden only while the batch runs (``VisibilityHeartbeat``); it stops
        before the failed records' retry delays are set, so those are the last word.
        """
        remaining = remaining_time_ms or time_left_of(RUNTIME_MAX_TIMEOUT_S)
        began_with_ms = remaining()  # what a record spends before its turn is measured from here
        holds = ChatHolds()  # a 429 one record's progress got holds back the chat's others
        with self._heartbeat(event):
            failed = process_fifo_batch(
                event,
                lambda record: self._handle(record, remaining, holds, began_with_ms),
                retry_delay=self._failures.retry_delay,
            )
        self._failures.delay_retries(failed)
        return batch_response(failed)

    def _heartbeat(self, event: Mapping[str, Any]) -> VisibilityHeartbeat:
        # Without INBOUND_QUEUE_URL it does nothing, as no retry delay is set either.
        return VisibilityHeartbeat(
            sqs=self._deps.heartbeat_sqs or self._deps.sqs,
            queue_url=self._config.inbound_queue_url or "",
            receipt_handles=receipt_handles(event),
            visibility_s=self._timing.heartbeat_visibility_s,
            interval_s=self._timing.heartbeat_interval_s,
        )

    def handle_record(
        self, record: Mapping[str, Any], *, remaining_time_ms: RemainingTimeMs | None = None
    ) -> RecordOutcome:
        """Process one SQS record (Lambda event shape)."""
        remaining = remaining_time_ms or time_left_of(RUNTIME_MAX_TIMEOUT_S)
        return self._handle(SqsRecord.from_event(record), remaining, ChatHolds(), remaining())

    def _handle(
        self, record: SqsRecord, remaining: RemainingTimeMs, holds: ChatHolds, batch_began_with_ms: int
    ) -> RecordOutcome:
        last_receive = record.receive_count >= self._config.max_receive_count
        bind_correlation(request_id=record.message_id)
        try:
            # A malformed event's body may be anything; decoding refuses it (MessageDecodeError).
            envelope = decode_envelope(record.body or "")  # type: ignore[arg-type]
            key = SessionKey.parse(envelope.message.session_key)
        except (MessageDecodeError, InvalidSessionKeyError) as exc:
            log.error("record_undecodable", error=str(exc))
            return self._failures.dead_letter(
                record, update_id=None, key=None, error_kind="bad_message", detail=str(exc)
            )
        msg = envelope.message
        bind_correlation(update_id=msg.update_id, session_key=key.canonical, request_id=record.message_id)
        first_try = record.first_try
        if not self._allow_list.still_allows(msg, key, retry=not first_try):
            return self._no_longer_allowed(msg, key)
        # The turn's progress message goes last: the answer, or the word of its failure, first.
        with (
            ProgressCleanup(remaining) as progress_cleanup,
            self._last_try.attempt(record.receive_count, msg, key, remaining),
        ):
            try:
                status = self._messages.process(
                    msg,
                    key,
                    remaining,
                    progress_cleanup=progress_cleanup,
                    chat_holds=holds,
                    enqueued_at=envelope.enqueued_at,
                    first_try=first_try,
                    batch_began_with_ms=batch_began_with_ms,
                )
            except Exception as exc:
                return self._failed(record, msg, key, exc, last_receive=last_receive, remaining=remaining)
            log.info("record_done", status=status, receive_count=record.receive_count)
            self._left_queue(msg, key)
            return RecordOutcome(done=True, status=status)

    def _failed(
        self,
        record: SqsRecord,
        msg: InboundMessage,
        key: SessionKey,
        exc: Exception,
        *,
        last_receive: bool,
        remaining: RemainingTimeMs,
    ) -> RecordOutcome:
        failure = classify(exc)
        if failure.token_refused:
            tell_bot_token_refused(
                self._deps.bot, self._config.bot_token_parameter, tenant=self._config.tenant
            )
        if failure.kind == "config":
            return self._misconfigured(msg, key, remaining)
        if failure.chat_unreachable:
            return self._chat_unreachable(msg, key, failure.detail)
        if isinstance(exc, DeliveryFailedError) and exc.answer is not None:
            # Kept for the agent's next turn at every failed try, not only at the dead letter:
            # a later try that fails before its delivery (the runtime throttled) has no answer
            # to judge, and one that delivers the rest forgets it (``keep_undelivered``).
            self._messages.answer_not_delivered(msg, key, exc.answer, exc)
        if failure.retryable and not last_receive:
            delay = self._failures.retry_delay(record, failure.retry_after)
            log.warning(
                "record_retry",
                error_kind=failure.kind,
                receive_count=record.receive_count,
                retry_in_s=delay,
                error=failure.detail,
            )
            if failure.model_busy:
                self._delivery.tell_user_once(
                    msg, key, model_busy_notice(delay), kind="model_busy", remaining=remaining
                )
            return RecordOutcome(done=False, status="retry", retry_delay_s=delay)
        if failure.deferrable:
            requeued = self._failures.requeue(record, key, reason=failure.kind)
            if requeued is not None:
                return requeued
        log.error(
            "record_failed", error_kind=failure.kind, receive_count=record.receive_count, error=failure.detail
        )
        # A deferred record's own text (say the runtime's "still busy") is no final answer.
        # Its time ends before the invocation's, so the dead letter below is always written.
        notice = None if failure.deferrable else failure.user_message
        self._delivery.tell_user_once(msg, key, notice, remaining=remaining)
        outcome = self._failures.dead_letter(
            record, update_id=msg.update_id, key=key, error_kind=failure.kind, detail=failure.detail
        )
        if outcome.done:
            self._left_queue(msg, key)
        return outcome

    def _left_queue(self, msg: InboundMessage, key: SessionKey) -> None:
        # The chat's backlog count (the producer's burst rule) loses this message; a requeued
        # copy or a record to retry is still waiting, so it keeps its place. Some messages were
        # never counted (the producer queues them past the backlog).
        if self._deps.backlog is not None and msg.counted_in_backlog:
            self._deps.backlog.release(key.canonical, now=self._deps.clock())

    def _no_longer_allowed(self, msg: InboundMessage, key: SessionKey) -> RecordOutcome:
        """Queued while its sender was allowed, taken off the allow-list since: dropped as the
        producer now drops their messages, silently (no turn, no notice), and acknowledged."""
        log.warning("message_no_longer_allowed", user_id=msg.user_id, chat_id=msg.chat_id)
        self._left_queue(msg, key)
        return RecordOutcome(done=True, status="not_allowed")

    def _chat_unreachable(self, msg: InboundMessage, key: SessionKey, reason: str) -> RecordOutcome:
        """Telegram refused to post in the chat for good: the user blocked the bot, removed it,
        closed the topic. Any user can cause this, so it must not fire the operator's dead-letter
        alarm, and no retry or redrive can help: log it, acknowledge the record, free its place
        in the chat's backlog."""
        log.warning("chat_unreachable", chat_id=msg.chat_id, thread_id=msg.thread_id, reason=reason)
        self._left_queue(msg, key)
        return RecordOutcome(done=True, status="chat_unreachable")

    def _misconfigured(
        self, msg: InboundMessage, key: SessionKey, remaining: RemainingTimeMs
    ) -> RecordOutcome:
        """The runtime found a permanent configuration error (and reported it to the operator:
        log, metric, alarm). Retrying cannot help and the message is not at fault, so it is
        acknowledged with one short notice, neither retried nor dead-lettered."""
        log.error("record_misconfigured", error_kind="config")
        self._delivery.tell_user_once(msg, key, MISCONFIGURED_NOTICE, remaining=remaining)
        return RecordOutcome(done=True, status="misconfigured")
