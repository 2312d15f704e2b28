"""Faults: damaged or missing parts, crashes half-way, S3/DynamoDB errors, lost responses.

Storage errors come from a small fault-injecting HTTP proxy on 127.0.0.1 in front of the
moto server (boto3 is never patched); damaged parts are written straight into the bucket
and table. Each case gives a clear typed error or is tolerated, and nothing stored is lost.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from agentbot_testing import AwsFault, FaultProxy
from botocore.config import Config
from botocore.exceptions import ClientError
from session_core import CorruptTranscriptError, StorageError, TranscriptStore
from session_core._snapshot_padding import PADDING_KEY
from session_core._zstd_frames import FrameScan

pytestmark = pytest.mark.anyio

KEY = {"project_key": "proj", "session_id": "sess"}
SMALL = {"tail_limit_bytes": 6_000, "chunk_limit_bytes": 4_000}


def turn(n: int) -> list[dict[str, Any]]:
    text = " ".join(f"w{(n * 31 + i * i) % 997}" for i in range(300))
    return [
        {"type": "user", "uuid": f"u{n}", "message": {"content": f"question {n}"}},
        {"type": "assistant", "uuid": f"a{n}", "message": {"content": text}},
    ]


def history(turns: int) -> list[dict[str, Any]]:
    return [e for n in range(turns) for e in turn(n)]


# --- the fault-injecting proxy (agentbot_testing) ------------------------------------------


@pytest.fixture
def proxy(aws: Any) -> Iterator[FaultProxy]:
    with FaultProxy(aws.endpoint, services=aws.endpoints.services) as started:
        yield started


def proxied_store(aws: Any, proxy: FaultProxy, **kwargs: Any) -> TranscriptStore:
    config = Config(retries={"max_attempts": 2, "mode": "standard"})
    return TranscriptStore(
        s3=proxy.client("s3", config=config),
        dynamodb=proxy.client("dynamodb", config=config),
        bucket=aws.resources.bucket,
        table=aws.resources.table,
        **kwargs,
    )


def direct_store(aws: Any, **kwargs: Any) -> TranscriptStore:
    return TranscriptStore(
        s3=aws.s3, dynamodb=aws.dynamodb, bucket=aws.resources.bucket, table=aws.resources.table, **kwargs
    )


def items(aws: Any) -> dict[tuple[str, str], dict[str, Any]]:
    scanned = aws.dynamodb.scan(TableName=aws.resources.table, ConsistentRead=True)["Items"]
    return {(i["pk"]["S"], i["sk"]["S"]): i for i in scanned}


def objects(aws: Any) -> dict[str, bytes]:
    """The sessions' objects (not the padding every snapshot starts with, one per bucket)."""
    listed = aws.s3.list_objects_v2(Bucket=aws.resources.bucket).get("Contents", [])
    return {
        o["Key"]: aws.s3.get_object(Bucket=aws.resources.bucket, Key=o["Key"])["Body"].read()
        for o in listed
        if o["Key"] != PADDING_KEY
    }


# --- damaged or missing parts -----------------------------------------------------------------


async def test_a_corrupt_chunk_is_reported_by_location_and_left_untouched(aws: Any) -> None:
    await direct_store(aws).append(KEY, turn(0))
    await direct_store(aws).append(KEY, turn(1))
    pk = "tx|proj|sess|~"
    item = items(aws)[(pk, "c#000000000001")]
    aws.dynamodb.put_item(TableName=aws.resources.table, Item={**item, "data": {"B": b"not zlib at all"}})
    before = items(aws)

    for attempt in (direct_store(aws).load(KEY), direct_store(aws).append(KEY, turn(2))):
        with pytest.raises(CorruptTranscriptError) as info:
            await attempt
        assert info.value.location == f"dynamodb://{aws.resources.table}/{pk}/c#000000000001"
        assert not info.value.retryable
    assert items(aws) == before  # nothing rewritten over the damaged part


async def test_a_missing_chunk_is_reported_not_skipped(aws: Any) -> None:
    for n in range(3):
        await direct_store(aws).append(KEY, turn(n))
    aws.dynamodb.delete_item(
        TableName=aws.resources.table, Key={"pk": {"S": "tx|proj|sess|~"}, "sk": {"S": "c#000000000001"}}
    )
    with pytest.raises(CorruptTranscriptError, match="chunk is missing"):
        await direct_store(aws).load(KEY)


@pytest.mark.parametrize(
    "damage",
    [
        lambda body: bytes(b ^ 0x5A for b in body),  # same size, garbage
        lambda body: body[: len(body) // 2],  # half-written object
        lambda body: body[:-8] + b"\x00" * 8,  # the frame's checksum broken
    ],
    ids=["garbage", "truncated", "bad-crc"],
)
async def test_a_corrupt_snapshot_is_reported_by_location(aws: Any, damage: Any) -> None:
    store = direct_store(aws, **SMALL)
    for n in range(12):
        await store.append(KEY, turn(n))
    [(snap_key, body)] = objects(aws).items()
    aws.s3.put_object(Bucket=aws.resources.bucket, Key=snap_key, Body=damage(body))
    with pytest.raises(CorruptTranscriptError) as info:
        await direct_store(aws).load(KEY)
    assert info.value.location == f"s3://{aws.resources.bucket}/{snap_key}"
    # The process that wrote it still serves its cache; a warm load never reads S3.
    assert await store.load(KEY) == history(12)


def snapshot_frames(body: bytes, start: int) -> list[bytes]:
    frames = []
    while start < len(body):
        end = FrameScan(start).end(body[start:])
        assert end is not None
        frames.append(body[start : start + end])
        start += end
    return frames


async def test_a_snapshot_with_its_parts_in_the_wrong_order_is_reported_not_served(aws: Any) -> None:
    """Frames of a snapshot swapped in place (each intact, same size in all) are a typed error
    naming the object, never a transcript with its history silently reordered."""
    store = direct_store(aws, **SMALL)
    for n in range(30):
        await store.append(KEY, turn(n))
    [(snap_key, body)] = objects(aws).items()
    head = items(aws)[("tx|proj|sess|~", "head")]
    frames = snapshot_frames(body, start := int(head["snap_start"]["N"]))
    assert len(frames) >= 3
    for i, j in ((0, 1), (1, 2)):
        frames[i], frames[j] = frames[j], frames[i]
        aws.s3.put_object(Bucket=aws.resources.bucket, Key=snap_key, Body=body[:start] + b"".join(frames))
        with pytest.raises(CorruptTranscriptError) as info:
            await direct_store(aws).load(KEY)
        assert info.value.location == f"s3://{aws.resources.bucket}/{snap_key}"
        frames[i], frames[j] = frames[j], frames[i]


async def test_a_missing_snapshot_object_is_a_typed_error_and_items_are_kept(aws: Any) -> None:
    store = direct_store(aws, **SMALL)
    for n in range(12):
        await store.append(KEY, turn(n))
    [snap_key] = objects(aws)
    aws.s3.delete_object(Bucket=aws.resources.bucket, Key=snap_key)
    before = items(aws)
    with pytest.raises(CorruptTranscriptError, match="snapshot object is missing") as info:
        await direct_store(aws).load(KEY)
    assert info.value.location.endswith(snap_key)
    with pytest.raises(CorruptTranscriptError):
        await direct_store(aws).append(KEY, turn(99))
    assert items(aws) == before


async def test_an_orphan_snapshot_is_never_read_and_is_cleaned_up_later(aws: Any) -> None:
    store = direct_store(aws, orphan_grace_s=0, **SMALL)
    for n in range(12):
        await store.append(KEY, turn(n))
    [current] = objects(aws)
    orphan = current.rsplit("/", 1)[0] + "/snap-000000000099-deadbeef.jsonl.gz"
    aws.s3.put_object(Bucket=aws.resources.bucket, Key=orphan, Body=b"half an upload")
    assert await direct_store(aws).load(KEY) == history(12)
    for n in range(12, 24):  # the next compaction removes it
        await store.append(KEY, turn(n))
    assert orphan not in objects(aws)
    assert await direct_store(aws).load(KEY) == history(24)


async def test_a_crash_between_snapshot_upload_and_head_move_loses_nothing(
    aws: Any, proxy: FaultProxy
) -> None:
    store = proxied_store(aws, proxy, **SMALL)
    for n in range(5):
        await store.append(KEY, turn(n))
    proxy.faults.append(AwsFault("dynamodb:TransactWriteItems", times=-1))
    big = [e for n in range(5, 20) for e in turn(n)]  # too big for a chunk: goes to a snapshot
    with pytest.raises(StorageError):
        await store.append(KEY, big)  # uploaded, then could not move the head
    assert "s3:CompleteMultipartUpload" in proxy.seen
    assert objects(aws) == {}  # the would-be orphan was removed at once
    assert await direct_store(aws).load(KEY) == history(5)
    proxy.faults.clear()
    await store.append(KEY, big)
    assert await direct_store(aws).load(KEY) == history(20)


# --- S3 and DynamoDB errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "status", "code", "action"),
    [
        ("dynamodb:TransactWriteItems", 500, "InternalServerError", "append"),
        ("dynamodb:Query", 500, "InternalServerError", "load"),
        ("s3:GetObject", 503, "SlowDown", "load"),
        ("s3:UploadPart", 500, "InternalError", "compact"),
        ("s3:UploadPartCopy", 503, "SlowDown", "compact"),
    ],
)
async def test_storage_errors_are_retryable_storage_errors_and_lose_nothing(
    aws: Any, proxy: FaultProxy, operation: str, status: int, code: str, action: str
) -> None:
    writer = direct_store(aws, **SMALL)
    for n in range(12):
        await writer.append(KEY, turn(n))
    store = proxied_store(aws, proxy, **SMALL)
    if action != "load":
        await store.load(KEY)
    proxy.faults.append(AwsFault(operation, times=-1, status=status))
    with pytest.raises(StorageError) as info:
        if action == "load":
            await store.load(KEY)
        else:
            for n in range(12, 30):
                await store.append(KEY, turn(n))
    error = info.value
    assert error.retryable and error.error_code == code
    assert isinstance(error.__cause__, ClientError)
    assert proxy.seen.count(operation) >= 2  # botocore's own retries ran first
    assert (await direct_store(aws).load(KEY) or [])[:24] == history(12)

    proxy.faults.clear()  # the fault passes: the same store carries on
    await store.append(KEY, turn(50))
    loaded = await direct_store(aws).load(KEY)
    assert loaded is not None and loaded[:24] == history(12) and loaded[-2:] == turn(50)


async def test_a_transaction_whose_response_was_lost_is_not_applied_twice(
    aws: Any, proxy: FaultProxy
) -> None:
    store = proxied_store(aws, proxy)
    await store.append(KEY, turn(0))
    untagged = [{"type": "tag", "tag": "no uuid, so no dedup"}]
    proxy.faults.append(AwsFault("dynamodb:TransactWriteItems", times=1, forward_first=True))
    await store.append(KEY, untagged)  # committed, reply lost, botocore retried
    # moto ignores ClientRequestToken, so the retry fails its condition; the store re-reads
    # the head, finds its own transaction token there and stops (real DynamoDB would have
    # answered the retry from the token without running it again).
    assert proxy.seen[1:] == ["dynamodb:TransactWriteItems", "dynamodb:TransactWriteItems", "dynamodb:Query"]
    assert await direct_store(aws).load(KEY) == turn(0) + untagged
    await store.append(KEY, turn(1))
    assert await direct_store(aws).load(KEY) == turn(0) + untagged + turn(1)


async def test_an_append_whose_replies_were_all_lost_succeeds_and_is_stored_once(
    aws: Any, proxy: FaultProxy
) -> None:
    """An append that committed although no reply came back reports success: the SDK retries a
    failed append, and entries without a uuid (titles, tags) would otherwise be stored twice."""
    store = proxied_store(aws, proxy)
    await store.append(KEY, turn(0))
    untagged = [{"type": "summary", "summary": "no uuid", "leafUuid": "a0"}]
    # The transaction commits; every reply to it (botocore's retry included) is lost.
    proxy.faults.append(AwsFault("dynamodb:TransactWriteItems", times=-1, forward_first=True))
    await store.append(KEY, untagged)
    proxy.faults.clear()
    assert await direct_store(aws).load(KEY) == turn(0) + untagged
    await store.append(KEY, turn(1))
    assert await direct_store(aws).load(KEY) == turn(0) + untagged + turn(1)


async def test_a_compaction_whose_replies_were_all_lost_succeeds_and_is_stored_once(
    aws: Any, proxy: FaultProxy
) -> None:
    """Same for a batch big enough to be compacted into a new snapshot."""
    store = proxied_store(aws, proxy, **SMALL)
    for n in range(3):
        await store.append(KEY, turn(n))
    rng = random.Random(0)
    untagged = [{"type": "tag", "tag": f"t{i}", "pad": rng.randbytes(400).hex()} for i in range(20)]
    proxy.faults.append(AwsFault("dynamodb:TransactWriteItems", times=-1, forward_first=True))
    await store.append(KEY, untagged)  # too big for a chunk: a compaction
    assert "s3:CompleteMultipartUpload" in proxy.seen
    proxy.faults.clear()
    assert await direct_store(aws).load(KEY) == history(3) + untagged
    await store.append(KEY, turn(3))
    assert await direct_store(aws).load(KEY) == history(3) + untagged + turn(3)


# --- a restore's early download -------------------------------------------------------------------


async def test_a_restore_whose_early_download_fails_reads_the_snapshot_again(
    aws: Any, proxy: FaultProxy
) -> None:
    writer = direct_store(aws, **SMALL)
    for n in range(12):
        await writer.append(KEY, turn(n))
    # The early download (named by the session's index item) fails, botocore's retry too.
    proxy.faults.append(AwsFault("s3:GetObject", times=2, status=503))
    stored, subpaths = await proxied_store(aws, proxy).load_for_restore(KEY)
    assert stored is not None and subpaths == []
    assert stored.count == len(history(12))
    assert proxy.seen.count("s3:GetObject") == 3  # the head's own read fetched it


async def test_a_restore_with_s3_down_or_a_damaged_snapshot_gives_its_typed_error(
    aws: Any, proxy: FaultProxy
) -> None:
    writer = direct_store(aws, **SMALL)
    for n in range(12):
        await writer.append(KEY, turn(n))
    before = items(aws)
    proxy.faults.append(AwsFault("s3:GetObject", times=-1, status=503))
    with pytest.raises(StorageError) as down:
        await proxied_store(aws, proxy).load_for_restore(KEY)
    assert down.value.retryable

    proxy.faults.clear()
    [(snap_key, body)] = objects(aws).items()
    aws.s3.put_object(Bucket=aws.resources.bucket, Key=snap_key, Body=body[: len(body) // 2])
    with pytest.raises(CorruptTranscriptError) as damaged:
        await proxied_store(aws, proxy).load_for_restore(KEY)
    assert damaged.value.location == f"s3://{aws.resources.bucket}/{snap_key}"
    assert items(aws) == before  # nothing was rewritten over it


async def test_a_compaction_whose_transaction_response_was_lost_keeps_its_snapshot(
    aws: Any, proxy: FaultProxy
) -> None:
    store = proxied_store(aws, proxy, **SMALL)
    for n in range(3):
        await store.append(KEY, turn(n))
    proxy.faults.append(AwsFault("dynamodb:TransactWriteItems", times=1, forward_first=True))
    big = [e for n in range(3, 12) for e in turn(n)]  # too big for a chunk: a compaction
    await store.append(KEY, big)  # the head moved onto the new snapshot; the reply was lost
    assert "s3:CompleteMultipartUpload" in proxy.seen
    # The snapshot the head names is still there: a fresh process reads every entry.
    assert await direct_store(aws).load(KEY) == history(12)
    await store.append(KEY, turn(12))
    assert await direct_store(aws).load(KEY) == history(13)


async def test_a_compaction_whose_replies_were_lost_keeps_its_snapshot_when_another_writer_moved_on(
    aws: Any, proxy: FaultProxy
) -> None:
    """A compaction that committed unseen, then a second writer appended on top of it: the
    snapshot the head names (the compaction's) is kept, so no compacted history is lost, and
    the append reports success (its entries are stored)."""
    stale = proxied_store(aws, proxy, **SMALL)  # e.g. the container whose lease just ran out
    for n in range(3):
        await stale.append(KEY, turn(n))
    other = direct_store(aws, **SMALL)  # the container that took the session over
    moved_on: list[bool] = []

    def other_appends_before_the_head_is_read(operation: str, body: bytes) -> bool:
        if not moved_on:  # the stale writer's first look at the head after its transaction
            moved_on.append(True)
            asyncio.run(other.append(KEY, turn(12)))
        return False  # the Query itself goes through

    big = [e for n in range(3, 12) for e in turn(n)]  # too big for a chunk: a compaction
    # The transaction commits; every reply to it (botocore's retry included) is lost.
    proxy.faults.append(AwsFault("dynamodb:TransactWriteItems", times=-1, forward_first=True))
    proxy.faults.append(AwsFault("dynamodb:Query", when=other_appends_before_the_head_is_read))
    await stale.append(KEY, big)
    assert moved_on
    proxy.faults.clear()
    assert await direct_store(aws).load(KEY) == history(13)


async def test_clearing_chunks_left_by_an_expired_transcript_never_deletes_another_writers_new_chunk(
    aws: Any, proxy: FaultProxy
) -> None:
    """A chat that comes back after its transcript expired starts again at the same chunk keys
    while the old chunks (which outlive the head) are still there. Clearing those away after a
    compaction must not delete a chunk another writer has just written under one of the keys."""
    big = {"tail_limit_bytes": 900_000, "chunk_limit_bytes": 300_000}
    old_writer = direct_store(aws, **big)
    for n in range(20):
        await old_writer.append(KEY, turn(n))  # chunks c#0..c#19

    def later() -> float:
        return time.time() + 26 * 86400.0  # the head has expired; chunks live 4 days longer

    await direct_store(aws, clock=later, **big).append(KEY, turn(100))  # anew, from c#0
    a = proxied_store(aws, proxy, clock=later, **SMALL)
    assert await a.load(KEY) == turn(100)  # a cold load: the old c#1..c#19 are leftovers
    b = direct_store(aws, clock=later, **SMALL)
    appended: list[bool] = []

    def b_appends_before_a_clears(operation: str, body: bytes) -> bool:
        if not appended and b"Delete" in body:  # a's deletes, not its appends
            appended.append(True)
            asyncio.run(b.append(KEY, turn(200)))
        return False

    for operation in ("dynamodb:BatchWriteItem", "dynamodb:TransactWriteItems"):
        proxy.faults.append(AwsFault(operation, when=b_appends_before_a_clears))
    n = 101
    while not appended:
        await a.append(KEY, turn(n))
        n += 1
    proxy.faults.clear()
    expected = turn(100) + [e for i in range(101, n) for e in turn(i)] + turn(200)
    assert await direct_store(aws, clock=later).load(KEY) == expected
    chunks = [sk for _, sk in items(aws) if sk.startswith("c#")]
    assert len(chunks) == 1  # b's; the other leftovers were still cleared away


async def test_a_delete_that_failed_half_way_is_finished_by_the_next_one(aws: Any, proxy: FaultProxy) -> None:
    store = proxied_store(aws, proxy, **SMALL)
    for n in range(12):
        await store.append(KEY, turn(n))  # a snapshot and a tail
    proxy.faults.append(AwsFault("s3:DeleteObjects", times=-1))
    with pytest.raises(StorageError):
        await store.delete(KEY)
    assert await direct_store(aws).load(KEY) is None  # gone for readers already
    assert len(objects(aws)) == 1
    proxy.faults.clear()
    # The snapshot is young, but the retired head, still there, says it is the deleted epoch's.
    await store.delete(KEY)
    assert objects(aws) == {} and items(aws) == {}


async def test_a_compaction_that_cannot_copy_the_padding_writes_the_snapshot_whole(
    aws: Any, proxy: FaultProxy
) -> None:
    store = proxied_store(aws, proxy, **SMALL)
    for n in range(3):
        await store.append(KEY, turn(n))
    # S3 answers that the padding is missing, even after the store put it again.
    proxy.faults.append(AwsFault("s3:UploadPartCopy", times=-1, status=404, code="NoSuchKey"))
    for n in range(3, 12):
        await store.append(KEY, turn(n))
    assert proxy.seen.count("s3:AbortMultipartUpload") >= 2  # no upload is left open
    [body] = objects(aws).values()
    assert body[:4] == b"\x28\xb5\x2f\xfd"  # the frames alone, from the first byte
    assert await direct_store(aws).load(KEY) == history(12)

    proxy.faults.clear()  # S3 copies again: the next compactions use the padding
    for n in range(12, 30):
        await store.append(KEY, turn(n))
    [body] = objects(aws).values()
    assert body[:4] == b"\x50\x2a\x4d\x18"
    assert await direct_store(aws).load(KEY) == history(30)


async def test_a_padding_copy_denied_as_s3_denies_missing_keys_puts_the_padding_again(
    aws: Any, proxy: FaultProxy
) -> None:
    store = proxied_store(aws, proxy, **SMALL)
    for n in range(3):
        await store.append(KEY, turn(n))
    # What S3 answers for a missing key to a role that may not list where it would be.
    proxy.faults.append(AwsFault("s3:UploadPartCopy", times=1, status=403, code="AccessDenied"))
    for n in range(3, 12):
        await store.append(KEY, turn(n))
    assert proxy.seen.count("s3:PutObject") == 1  # the padding, put once more
    [body] = objects(aws).values()
    assert body[:4] == b"\x50\x2a\x4d\x18"  # the compaction went on, padded
    assert await direct_store(aws).load(KEY) == history(12)
