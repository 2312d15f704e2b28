"""What happens to a record that failed: retried after a delay, re-enqueued, or dead-lettered.

- A retry comes back after max(backoff, the ``retry_after`` Telegram or the model asked for),
  set on the record's visibility rather than left to the queue's (which would leave a chat
  silent for 90 min).
- A turn that fails for good (a permanent error, or a retryable one on the queue's last
  receive) goes to the DLQ with its context. A *deferrable* failure (the session stayed
  busy, or only delivery is left) is never dead-lettered on the last receive: a copy is
  re-enqueued (at most ``MAX_REQUEUES`` times) and the original acknowledged.
- A chat the bot may no longer post in (``Failure.chat_unreachable``) is none of these: the
  consumer logs it and acknowledges the record.
- A bot token Telegram refuses (``Failure.token_refused``) is retried, at the earliest when the
  token's parameter may be read again: it is most often a rotation under way (BotFather's
  /revoke refuses the old token before the operator can put the new one in SSM). A token still
  refused on the last receive is dead-lettered, to be redriven once it is right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from session_core import SECRET_REREAD_INTERVAL_S, SessionKey, StorageError, get_logger, well_formed
from telegram_core import TelegramApiError

from ._batch import REQUEUES_ATTRIBUTE, SqsRecord
from ._errors import ConsumerError, TurnFailedError
from ._outcomes import RecordOutcome
from ._timing import RETRY_BASE_DELAY_S

log = get_logger(__name__)

RETRY_MAX_DELAY_S = 300
_MAX_VISIBILITY_S = 43_200  # SQS's limit for ChangeMessageVisibility
# The longest a model's "retry after" puts a message off: the chat's queue waits behind it
# (its /new and /help too), and a gateway may ask for hours; the retry may be told to wait again.
MODEL_WAIT_MAX_S = 900
# Copies a deferrable record may make of itself on its last receive before it is dead-lettered.
MAX_REQUEUES = 5


class SqsClient(Protocol):
    """The SQS calls the failure policy makes (a boto3 SQS client)."""

    def send_message(self, **kwargs: Any) -> Any: ...

    def change_message_visibility(self, **kwargs: Any) -> Any: ...


def retry_delay_s(receive_count: int, *, base_s: int = RETRY_BASE_DELAY_S) -> int:
    """Seconds before a failed record is received again: 10, 20, 40 … capped at 5 minutes."""
    return int(min(base_s * 2 ** max(0, receive_count - 1), RETRY_MAX_DELAY_S))


@dataclass(frozen=True)
class Failure:
    """Why handling a message failed, as the policy needs it.

    ``kind``: the error kind written to logs and the dead letter; ``detail``: text free of
    secrets and user text; ``retryable``: trying again may help; ``deferrable``: must not
    be dead-lettered (re-enqueued instead); ``retry_after``: seconds before a retry makes
    sense; ``user_message``: what the runtime said the user may read, if anything;
    ``chat_unreachable``: Telegram said the bot may no longer post in the chat (nothing to
    retry, nobody to tell, nothing for the operator to fix); ``token_refused``: Telegram
    refused the bot token, read again already (the operator's to fix); ``model_busy``: the
    model asked to wait (``retry_after``), which the user hears before the wait.
    """

    kind: str
    detail: str
    retryable: bool
    deferrable: bool = False
    retry_after: float | None = None
    user_message: str | None = None
    chat_unreachable: bool = False
    token_refused: bool = False
    model_busy: bool = False


def classify(exc: Exception) -> Failure:
    """The Failure an exception stands for. Our own errors and Telegram's carry their kind and
    a safe detail; any other is named by its type only and retried unless it says otherwise."""
    failure = _failure_of(exc)
    if failure.token_refused:  # see the module's docstring
        retry_after = max(failure.retry_after or 0.0, SECRET_REREAD_INTERVAL_S)
        return replace(failure, retryable=True, deferrable=False, retry_after=retry_after)
    return failure


def _failure_of(exc: Exception) -> Failure:
    if isinstance(exc, ConsumerError):
        return Failure(
            kind=exc.error_kind,
            detail=str(exc),
            retryable=exc.retryable,
            deferrable=exc.retryable and exc.deferrable,
            retry_after=min(exc.retry_after, MODEL_WAIT_MAX_S)
            if isinstance(exc, TurnFailedError) and exc.retry_after is not None
            else exc.retry_after,
            user_message=exc.user_message if isinstance(exc, TurnFailedError) else None,
            chat_unreachable=exc.chat_unreachable,
            token_refused=exc.token_refused,
            model_busy=isinstance(exc, TurnFailedError) and exc.retry_after is not None,
        )
    if isinstance(exc, TelegramApiError):
        return Failure(
            kind="telegram",
            detail=str(exc),
            retryable=exc.retryable,
            retry_after=exc.retry_after,
            chat_unreachable=exc.chat_unreachable,
            token_refused=exc.token_refused,
        )
    if isinstance(exc, StorageError):
        # Named by what failed and the service's code, never by its detail (AWS's message may
        # quote an item's values): "StorageError" alone left the operator nothing to look at.
        return Failure(
            kind=type(exc).__name__,
            detail=f"{type(exc).__name__} in {exc.operation} ({exc.error_code or 'no error code'})",
            retryable=exc.retryable,
        )
    # Other errors (a bug) may say whether retrying helps.
    return Failure(
        kind=str(getattr(exc, "error_kind", type(exc).__name__)),
        detail=type(exc).__name__,
        retryable=bool(getattr(exc, "retryable", True)),
    )


class FailurePolicy:
    """Retry delays, re-enqueued copies and dead letters, over the queues of ``sqs``.

    ``inbound_queue_url`` empty: no retry delays are set and nothing is re-enqueued.
    """

    def __init__(
        self,
        *,
        sqs: SqsClient,
        inbound_queue_url: str,
        dead_letter_queue_url: str,
        retry_base_delay_s: int = RETRY_BASE_DELAY_S,
    ) -> None:
        self._sqs = sqs
        self._inbound_queue_url = inbound_queue_url
        self._dead_letter_queue_url = dead_letter_queue_url
        self._retry_base_delay_s = retry_base_delay_s

    def retry_delay(self, record: SqsRecord, retry_after: float | None = None) -> int:
        """Seconds until ``record`` is retried: the backoff for its receive count, or longer
        when Telegram or the model asked for it (``retry_after``)."""
        backoff = retry_delay_s(record.receive_count, base_s=self._retry_base_delay_s)
        return min(max(backoff, math.ceil(retry_after or 0)), _MAX_VISIBILITY_S)

    def delay_retries(self, failed: list[tuple[SqsRecord, int]]) -> None:
        """Bring records to retry back after their delay rather than the queue's visibility
        timeout (6 x the consumer's 900 s, which would leave a chat silent for 90 min)."""
        if not self._inbound_queue_url:
            return
        for record, delay in failed:
            if record.receipt_handle is None:
                log.warning("retry_delay_not_set", error="KeyError")
                continue
            try:
                self._sqs.change_message_visibility(
                    QueueUrl=self._inbound_queue_url,
                    ReceiptHandle=record.receipt_handle,
                    VisibilityTimeout=delay,
                )
            except (ClientError, BotoCoreError) as exc:
                log.warning("retry_delay_not_set", error=type(exc).__name__)

    def requeue(self, record: SqsRecord, key: SessionKey, *, reason: str) -> RecordOutcome | None:
        """Put a copy of a deferrable record on the queue (its receive count starts over)
        and acknowledge this one; None when it may not (``MAX_REQUEUES`` reached, or no
        INBOUND_QUEUE_URL), so it is dead-lettered instead."""
        if record.requeues >= MAX_REQUEUES or not self._inbound_queue_url:
            return None
        try:
            self._sqs.send_message(
                QueueUrl=self._inbound_queue_url,
                MessageBody=record.body_text,
                MessageGroupId=key.canonical,
                # A retry of this same record (crashed after the send) reuses the id: one copy.
                MessageDeduplicationId=f"requeue-{record.message_id}"[:128],
                MessageAttributes={
                    REQUEUES_ATTRIBUTE: {"DataType": "Number", "StringValue": str(record.requeues + 1)},
                    "requeue_reason": {"DataType": "String", "StringValue": reason},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            log.error("requeue_failed", error=type(exc).__name__)
            return RecordOutcome(done=False, status="retry")
        log.warning("record_requeued", reason=reason, requeues=record.requeues + 1)
        return RecordOutcome(done=True, status="requeued")

    def dead_letter(
        self,
        record: SqsRecord,
        *,
        update_id: int | None,
        key: SessionKey | None,
        error_kind: str,
        detail: str,
    ) -> RecordOutcome:
        """Send the record to the DLQ with its context (error kind and detail, update, session,
        receive and requeue counts) and acknowledge it; on failure leave it to the queue's
        redrive policy (retry)."""
        context = {
            "error_kind": error_kind,
            "error_detail": well_formed(detail[:256]),
            "update_id": str(update_id) if update_id is not None else "",
            "session_key": key.canonical if key else "",
            "receive_count": record.receive_count_attribute,
            "source_message_id": record.message_id,
            "requeues": str(record.requeues or ""),
        }
        try:
            self._sqs.send_message(
                QueueUrl=self._dead_letter_queue_url,
                MessageBody=record.body_text or "(empty)",
                MessageGroupId=key.canonical if key else (record.group_id or "undecodable"),
                MessageDeduplicationId=f"dlq-{record.message_id}"[:128],
                MessageAttributes={
                    name: {"DataType": "String", "StringValue": value}
                    for name, value in context.items()
                    if value
                },
            )
        except (ClientError, BotoCoreError) as exc:
            # Leave it on the queue: the redrive policy moves it to the DLQ after the last receive.
            log.error("dead_letter_failed", error=type(exc).__name__)
            return RecordOutcome(done=False, status="retry")
        log.error("record_dead_lettered", error_kind=error_kind)
        return RecordOutcome(done=True, status="dead_lettered")
