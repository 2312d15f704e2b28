"""The FIFO batch processor: typed records, chats in parallel, a chat's records in order, and
the partial batch response (``batchItemFailures``).

A record that fails is reported, not raised, so it never re-runs its neighbours; the later
records of its FIFO group in the batch are reported too, unprocessed, so the chat's order
holds; other chats in the batch carry on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from session_core import get_logger, well_formed

from ._outcomes import RecordOutcome

log = get_logger(__name__)

REQUEUES_ATTRIBUTE = "requeues"
# Set by `agentbot dlq redrive` on each message it sends back: SQS counts the copy's receives
# from 1 again, so without it a redriven record would pass for one no try ever ran.
REDRIVES_ATTRIBUTE = "redrives"
MAX_PARALLEL_CHATS = 8

BatchResponse = dict[str, list[dict[str, str]]]


@dataclass(frozen=True)
class SqsRecord:
    """One record of an SQS event, with the fields the consumer reads typed."""

    message_id: str
    receipt_handle: str | None
    body: object
    group_id: str
    receive_count: int
    # ApproximateReceiveCount as SQS wrote it ("" when absent), for the dead letter's context.
    receive_count_attribute: str
    requeues: int
    redrives: int = 0

    @classmethod
    def from_event(cls, record: Mapping[str, Any]) -> SqsRecord:
        """Read one record of a Lambda SQS event; missing fields get harmless defaults."""
        attributes = record.get("attributes") or {}
        receipt = record.get("receiptHandle")
        return cls(
            message_id=str(record.get("messageId", "")),
            receipt_handle=str(receipt) if receipt is not None else None,
            body=record.get("body"),
            group_id=str(attributes.get("MessageGroupId", "")),
            receive_count=int(attributes.get("ApproximateReceiveCount") or 1),
            receive_count_attribute=str(attributes.get("ApproximateReceiveCount", "")),
            requeues=_count_attribute(record, REQUEUES_ATTRIBUTE),
            redrives=_count_attribute(record, REDRIVES_ATTRIBUTE),
        )

    @property
    def first_try(self) -> bool:
        """No try of this record ran before: not a retry, a requeued copy or a redriven one."""
        return self.receive_count == 1 and not self.requeues and not self.redrives

    @property
    def body_text(self) -> str:
        """The body as SQS can take it again (valid Unicode text)."""
        body = self.body
        return well_formed(body if isinstance(body, str) else str(body or ""))


def _count_attribute(record: Mapping[str, Any], name: str) -> int:
    attribute = (record.get("messageAttributes") or {}).get(name) or {}
    try:
        return max(0, int(attribute.get("stringValue") or 0))
    except ValueError:
        return 0


RecordHandler = Callable[[SqsRecord], RecordOutcome]
RetryDelay = Callable[[SqsRecord], int]


def process_fifo_batch(
    event: Mapping[str, Any],
    handle: RecordHandler,
    *,
    retry_delay: RetryDelay,
    max_parallel: int = MAX_PARALLEL_CHATS,
) -> list[tuple[SqsRecord, int]]:
    """Run ``handle`` on every record of ``event``: one FIFO group at a time in order, groups
    in parallel threads (as separate invocations would run them). Returns the records to
    retry, in event order, each with its delay in seconds; a record after a failure in its
    group is not handled and waits ``retry_delay(record)``."""
    records = [SqsRecord.from_event(raw) for raw in event.get("Records") or []]
    groups: dict[str, list[SqsRecord]] = {}
    for record in records:
        groups.setdefault(record.group_id, []).append(record)

    def run_group(group: list[SqsRecord]) -> list[tuple[SqsRecord, int]]:
        failed: list[tuple[SqsRecord, int]] = []
        for record in group:
            if failed:  # keep the chat's order: its later records wait for the failed one
                failed.append((record, retry_delay(record)))
                continue
            try:
                outcome = handle(record)
            except Exception:  # one broken record must not fail its neighbours
                log.exception("record_crashed", message_id=record.message_id)
                outcome = RecordOutcome(done=False, status="retry")
            if not outcome.done:
                failed.append((record, outcome.retry_delay_s or retry_delay(record)))
        return failed

    if len(groups) <= 1:
        failed = [f for group in groups.values() for f in run_group(group)]
    else:
        with ThreadPoolExecutor(max_workers=min(len(groups), max_parallel)) as pool:
            failed = [f for found in pool.map(run_group, groups.values()) for f in found]
    order = {id(r): n for n, r in enumerate(records)}
    failed.sort(key=lambda f: order.get(id(f[0]), 0))
    return failed


def batch_response(failed: list[tuple[SqsRecord, int]]) -> BatchResponse:
    """Lambda's partial batch response naming the records to retry."""
    return {"batchItemFailures": [{"itemIdentifier": record.message_id} for record, _ in failed]}
