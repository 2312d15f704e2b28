"""Keeping a batch's records hidden while its invocation runs, and not much longer.

The inbound queue's visibility timeout is 5,400 s (AWS's guidance: 6 x the consumer's 900 s;
Lambda refuses an event source whose queue hides records for less than the function's
timeout). An invocation that returns sets what happens next itself (successes are deleted,
failures get their backoff, ``_failures``). One that dies without returning (Lambda's timeout,
out of memory, killed) says nothing, and its records would stay hidden for those 90 minutes:
a chat whose message kills the consumer every time would wait 5 x 90 min = 7.5 h before the
redrive policy dead-letters it. So, from the moment a batch arrives, its records are hidden
for a short ``HEARTBEAT_VISIBILITY_S`` renewed every ``HEARTBEAT_INTERVAL_S``: alive, the
consumer keeps them; dead, it lets them go within ``HEARTBEAT_VISIBILITY_S``.

The numbers: a renewal hides the records for 180 s and the next is due 50 s later, so two
renewals in a row may fail (at +50 s and +100 s) and the third, at +150 s, still has 30 s
before the records could reappear: more than one renewal's worst case with
``heartbeat_client_config`` (2 attempts of at most 2 s to connect + 5 s to read). A
consumer that dies brings its records back within 3 minutes, so a chat whose message kills
it every time is held for 5 x (the time until it dies + at most 3 min), not 7.5 h. Each
renewal is one ChangeMessageVisibilityBatch request per 10 records (the event source's batch
size is 1): at most 19 requests for a 15-minute invocation.

Should three renewals fail while the consumer is still running (SQS unreachable for 3
minutes), the record may be handed to a second invocation while the first still works on
it. That is safe by construction, as for any redelivery: the runtime takes the session's
lease before it runs a turn (``session_core.TurnLedger.start``); the second run finds it
held and answers "busy" (``agent_runtime._turn``, ``LeaseHeldError``), the second consumer
waits inside its invocation (``_message.MessageHandler._run_turn_when_free``) and then gets
the answer the first run saved for this update (``TurnLedger.start``/``save`` replay a saved
``turn_id``), never a second model run; each chunk of the reply is claimed before it is sent
(``telegram_core.DeliveryClaims``) and recorded after (``DeliveryLog``), so two live
deliveries send it once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from session_core import get_logger

log = get_logger(__name__)

HEARTBEAT_VISIBILITY_S = 180
HEARTBEAT_INTERVAL_S = 50.0
_BATCH_LIMIT = 10  # entries per ChangeMessageVisibilityBatch request (SQS's limit)
# A record no longer ours, whatever SenderFault says (LocalStack marks every failed entry as
# SQS's own fault): renewing it again cannot succeed.
_NOT_OURS_CODES = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "MessageNotInflight",
        "InvalidParameterValue",
        "InvalidParameterValueException",
    }
)


class VisibilityClient(Protocol):
    """The SQS call the heartbeat makes (a boto3 SQS client)."""

    def change_message_visibility_batch(self, **kwargs: Any) -> Any: ...


def heartbeat_client_config() -> Config:
    """Timeouts for the heartbeat's own SQS client: stopping the heartbeat waits for a
    renewal in flight (so it cannot land after the retry delays), and this bounds that wait
    to seconds, never boto3's default minutes."""
    return Config(connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 2, "mode": "standard"})


def receipt_handles(event: Mapping[str, Any]) -> list[str]:
    """The receipt handles of an SQS event's records (a record without one is skipped)."""
    handles = []
    for record in event.get("Records") or []:
        handle = record.get("receiptHandle") if isinstance(record, Mapping) else None
        if handle:
            handles.append(str(handle))
    return handles


class VisibilityHeartbeat:
    """Hides ``receipt_handles``' records for ``visibility_s`` every ``interval_s``, in a
    daemon thread, from ``start`` until ``stop`` (a context manager does both).

    A renewal that fails is logged and the next one is tried on schedule; it never raises.
    An entry SQS refuses as the sender's fault (the record was deleted, its handle expired or
    was replaced by another receive) is no longer ours and is not renewed again.
    """

    def __init__(
        self,
        *,
        sqs: VisibilityClient,
        queue_url: str,
        receipt_handles: Sequence[str],
        visibility_s: int = HEARTBEAT_VISIBILITY_S,
        interval_s: float = HEARTBEAT_INTERVAL_S,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._handles = [h for h in receipt_handles if h]
        self._visibility_s = visibility_s
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.renewals = 0  # requests answered, successful or not per entry

    def start(self) -> VisibilityHeartbeat:
        """Renew at once, then every ``interval_s``; nothing to do without a queue or records."""
        if self._queue_url and self._handles and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="visibility-heartbeat", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Renew no more, and wait for a renewal in flight, so whatever visibility the caller
        sets next is the last word."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> VisibilityHeartbeat:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stopping.is_set() and self._handles:
            self._renew()
            due = max(due + self._interval_s, time.monotonic())
            self._stopping.wait(due - time.monotonic())

    def _renew(self) -> None:
        gone: set[str] = set()
        for start in range(0, len(self._handles), _BATCH_LIMIT):
            chunk = self._handles[start : start + _BATCH_LIMIT]
            try:
                answer = self._sqs.change_message_visibility_batch(
                    QueueUrl=self._queue_url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": handle, "VisibilityTimeout": self._visibility_s}
                        for n, handle in enumerate(chunk)
                    ],
                )
            except (ClientError, BotoCoreError) as exc:
                log.warning("visibility_not_renewed", error=type(exc).__name__, records=len(chunk))
                continue
            except Exception:  # the records must stay hidden whatever went wrong with one request
                log.exception("visibility_not_renewed", records=len(chunk))
                continue
            self.renewals += 1
            gone |= _refused(answer, chunk)
        if gone:
            self._handles = [h for h in self._handles if h not in gone]


def _refused(answer: Any, chunk: list[str]) -> set[str]:
    """The handles of entries SQS refused as no longer ours (logged, not renewed again);
    an entry that failed on SQS's side is logged and tried again next time."""
    gone: set[str] = set()
    failed = answer.get("Failed") if isinstance(answer, Mapping) else None
    for entry in failed or []:
        index = int(entry.get("Id", -1))
        if not 0 <= index < len(chunk):
            continue
        if entry.get("SenderFault", True) or entry.get("Code") in _NOT_OURS_CODES:
            gone.add(chunk[index])
            log.info("visibility_renewal_refused", error_code=entry.get("Code", ""))
        else:
            log.warning("visibility_not_renewed", error_code=entry.get("Code", ""), records=1)
    return gone
