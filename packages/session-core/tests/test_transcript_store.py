"""Transcript store behaviour an operator would notice: what is stored, where, and at what cost.

Request counts are recorded through botocore's public event hooks on dedicated clients
(nothing in boto3 is patched), so they count real HTTP requests, retries included.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import struct
import zlib
from collections import Counter
from typing import Any

import pytest
import zstandard
from session_core import (
    CorruptTranscriptError,
    InvalidSessionKeyError,
    InvalidTranscriptEntryError,
    StaleHeadError,
    StorageError,
    TranscriptFile,
    TranscriptStore,
    TranscriptTooLargeError,
    transcripts_read_as_of,
)
from session_core._snapshot_padding import PADDING_BYTES, PADDING_KEY
from session_core._transcript_format import decode_jsonl, jsonl_of
from session_core._transcript_items import MAX_FRAME_MARKS, MIN_COPY_PART_BYTES, with_frame_mark

pytestmark = pytest.mark.anyio

WORDS = [f"{w}{i}" for i, w in enumerate(["lorem", "ipsum", "dolor", "sit", "amet", "def", "self"] * 40)]
KEY = {"project_key": "-tmp-agentbot-sessions-acme-1-0", "session_id": "0b6e-sess"}


class Recorder:
    """Counts the HTTP requests a client sends, by (service, operation), and their body bytes."""

    def __init__(self, *clients: Any) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        self.sent_bytes = 0
        for client in clients:
            client.meta.events.register("before-send", self._on_send)

    def _on_send(self, request: Any, event_name: str, **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        self.requests[(service, operation)] += 1
        body = request.body
        self.sent_bytes += len(body) if isinstance(body, (bytes, bytearray)) else 0

    def count(self, service: str | None = None) -> int:
        return sum(n for (svc, _), n in self.requests.items() if service in (None, svc))

    def reset(self) -> None:
        self.requests.clear()
        self.sent_bytes = 0


def make_store(aws: Any, *, s3: Any = None, dynamodb: Any = None, **kwargs: Any) -> TranscriptStore:
    return TranscriptStore(
        s3=s3 or aws.s3,
        dynamodb=dynamodb or aws.dynamodb,
        bucket=aws.resources.bucket,
        table=aws.resources.table,
        **kwargs,
    )


def recorded_store(aws: Any, *, s3: Any = None, **kwargs: Any) -> tuple[TranscriptStore, Recorder]:
    s3, dynamodb = s3 or aws.client("s3"), aws.client("dynamodb")
    return make_store(aws, s3=s3, dynamodb=dynamodb, **kwargs), Recorder(s3, dynamodb)


def turn(n: int, size: int = 2000) -> list[dict[str, Any]]:
    """One synthetic turn: prompt, assistant tool call, tool result, answer."""
    rng = random.Random(n)
    filler = f"turn {n} " + " ".join(rng.choice(WORDS) for _ in range(size // 6))
    return [
        {"type": "user", "uuid": f"u{n}", "message": {"role": "user", "content": f"question {n}"}},
        {
            "type": "assistant",
            "uuid": f"a{n}",
            "message": {"content": [{"type": "tool_use", "id": f"t{n}", "input": {"cmd": "ls"}}]},
        },
        {"type": "user", "uuid": f"r{n}", "toolUseResult": filler},
        {"type": "assistant", "uuid": f"b{n}", "message": {"content": [{"type": "text", "text": filler}]}},
    ]


def all_objects(aws: Any) -> list[str]:
    """The sessions' objects (not the padding every snapshot starts with, one per bucket)."""
    listed = aws.s3.list_objects_v2(Bucket=aws.resources.bucket)
    return [obj["Key"] for obj in listed.get("Contents", []) if obj["Key"] != PADDING_KEY]


def all_items(aws: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = aws.dynamodb.scan(TableName=aws.resources.table)["Items"]
    return items


# --- storage cost -------------------------------------------------------------------------


async def test_append_is_one_transaction_and_warm_load_reads_nothing_from_s3(aws: Any) -> None:
    store, rec = recorded_store(aws)
    await store.append(KEY, turn(1))
    assert rec.requests == Counter({("dynamodb", "TransactWriteItems"): 1})

    rec.reset()
    await store.append(KEY, turn(2))
    assert rec.requests == Counter({("dynamodb", "TransactWriteItems"): 1})

    rec.reset()
    assert await store.load(KEY) == turn(1) + turn(2)
    assert rec.requests == Counter({("dynamodb", "Query"): 1})
    assert store.requests[("s3", "GetObject")] == 0


async def test_cold_load_takes_at_most_three_requests_whatever_the_history(aws: Any) -> None:
    writer = make_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    expected: list[dict[str, Any]] = []
    for n in range(60):
        await writer.append(KEY, turn(n))
        expected += turn(n)
    assert writer.requests[("s3", "CompleteMultipartUpload")] >= 3  # it compacted several times

    s3 = aws.client("s3")
    starts = _range_starts(s3)
    reader, rec = recorded_store(aws, s3=s3)
    assert await reader.load(KEY) == expected
    assert rec.count() <= 3
    assert rec.requests[("s3", "GetObject")] == 1
    assert starts == [PADDING_BYTES]  # the padding is never downloaded

    # Only the current snapshot remains, compressed; replaced chunks are gone.
    objects = all_objects(aws)
    assert len(objects) == 1
    body = aws.s3.get_object(Bucket=aws.resources.bucket, Key=objects[0])["Body"].read()
    assert body[:4] == b"\x50\x2a\x4d\x18"  # a zstd skippable frame: the padding
    assert body[PADDING_BYTES : PADDING_BYTES + 4] == b"\x28\xb5\x2f\xfd"  # then zstd frames
    raw = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress(body)
    assert (len(body) - PADDING_BYTES) * 2 < len(raw)
    snapshotted = [json.loads(line) for line in raw.splitlines()]
    assert len(snapshotted) > len(expected) // 2 and snapshotted == expected[: len(snapshotted)]
    chunks = [i for i in all_items(aws) if i["sk"]["S"].startswith("c#")]
    assert len(chunks) < 10


async def test_compactions_never_upload_what_is_already_stored(aws: Any) -> None:
    s3 = aws.client("s3")
    uploads = Recorder(s3)
    writer = make_store(aws, s3=s3, tail_limit_bytes=6_000, chunk_limit_bytes=4_000)
    for n in range(80):
        await writer.append(KEY, turn(n))
    compactions = uploads.requests[("s3", "CompleteMultipartUpload")]
    assert compactions >= 10
    # Each compaction sent its new frame only: the padding every snapshot starts with was put
    # once for the bucket and copied inside S3, and the older frames were copied with it.
    [snapshot] = all_objects(aws)
    frames = aws.s3.head_object(Bucket=aws.resources.bucket, Key=snapshot)["ContentLength"] - PADDING_BYTES
    padding_sent = PADDING_BYTES
    assert uploads.requests[("s3", "PutObject")] == 1
    assert uploads.sent_bytes - padding_sent < frames * 1.05 + 1_000 * compactions
    assert await make_store(aws).load(KEY) == history(80)


async def test_a_padding_that_expired_is_put_again_by_the_next_compaction(aws: Any) -> None:
    writer = make_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    for n in range(30):
        await writer.append(KEY, turn(n))
    assert all_objects(aws)
    aws.s3.delete_object(Bucket=aws.resources.bucket, Key=PADDING_KEY)  # the lifecycle rule's doing
    s3 = aws.client("s3")
    uploads = Recorder(s3)
    other = {**KEY, "session_id": "another"}
    later = make_store(aws, s3=s3, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    for n in range(30):
        await later.append(other, turn(n))
    assert uploads.requests[("s3", "PutObject")] == 1  # the padding, once
    padding = aws.s3.get_object(Bucket=aws.resources.bucket, Key=PADDING_KEY)["Body"].read()
    assert len(padding) == PADDING_BYTES
    assert await make_store(aws).load(other) == history(30)
    assert await make_store(aws).load(KEY) == history(30)  # older snapshots hold their own copy


async def test_warm_load_after_another_writer_fetches_only_the_new_chunks(aws: Any) -> None:
    mine, rec = recorded_store(aws, tail_limit_bytes=50_000, chunk_limit_bytes=20_000)
    other = make_store(aws, tail_limit_bytes=50_000, chunk_limit_bytes=20_000)
    for n in range(30):
        await mine.append(KEY, turn(n))
    await mine.load(KEY)
    await other.append(KEY, turn(30))
    rec.reset()
    loaded = await mine.load(KEY)
    assert loaded is not None and loaded[-4:] == turn(30) and len(loaded) == 31 * 4
    assert rec.requests == Counter({("dynamodb", "Query"): 1})


async def test_loads_see_what_another_writer_compacted(aws: Any) -> None:
    limits = {"tail_limit_bytes": 14_000, "chunk_limit_bytes": 10_000}
    mine, other = make_store(aws, **limits), make_store(aws, **limits)
    await mine.append(KEY, turn(0))
    await mine.load(KEY)
    expected = turn(0)
    for n in range(1, 20):  # the other container compacts entries this one never saw
        await other.append(KEY, turn(n))
        expected += turn(n)
    assert all_objects(aws), "the other writer did not compact"
    assert await mine.load(KEY) == expected
    await mine.append(KEY, turn(20))
    assert await make_store(aws).load(KEY) == expected + turn(20)


async def test_a_batch_too_big_for_an_item_spills_into_a_snapshot(aws: Any) -> None:
    store = make_store(aws)
    # ~4 MB of digits that compress to far more than one DynamoDB item can hold
    huge = [
        {
            "type": "user",
            "uuid": f"h{i}",
            "blob": "".join(f"{(i * 7919 + j * j) % 100003}" for j in range(20_000)),
        }
        for i in range(40)
    ]
    await store.append(KEY, turn(0))
    await store.append(KEY, huge)
    await store.append(KEY, turn(1))
    reader, rec = recorded_store(aws)
    assert await reader.load(KEY) == turn(0) + huge + turn(1)
    assert rec.count() <= 3
    assert all(len(i.get("data", {}).get("B", b"")) < 400_000 for i in all_items(aws))


async def test_the_cache_stays_within_its_memory_bound(aws: Any) -> None:
    writer = make_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    other = {**KEY, "session_id": "other"}
    for n in range(30):
        await writer.append(KEY, turn(n))
    await writer.append(other, turn(0))
    small, rec = recorded_store(aws, cache_limit_bytes=50_000)  # room for one session, not two
    await small.load(KEY)
    await small.load(other)  # evicts KEY
    rec.reset()
    assert await small.load(KEY) == [e for n in range(30) for e in turn(n)]
    assert rec.requests[("s3", "GetObject")] == 1  # read again from storage
    roomy, rec = recorded_store(aws)
    await roomy.load(KEY)
    await roomy.load(other)
    rec.reset()
    await roomy.load(KEY)
    assert rec.requests[("s3", "GetObject")] == 0


# --- idempotency and isolation ---------------------------------------------------------------


async def test_entries_with_a_known_uuid_are_not_stored_twice(aws: Any) -> None:
    store = make_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    title = {"type": "custom-title", "customTitle": "t"}  # no uuid: appended as is
    history = [*turn(1), title, *turn(2)]
    await store.append(KEY, history)
    # import_session_to_store replays the whole local transcript, from a cold container too:
    await store.append(KEY, [*history, *turn(3)])
    cold = make_store(aws)
    await cold.append(KEY, [*turn(1), *turn(3), *turn(4), *turn(4)])
    expected = [*history, title, *turn(3), *turn(4)]
    assert await make_store(aws).load(KEY) == expected
    for n in range(5, 15):  # across compactions too
        await store.append(KEY, turn(n) + turn(n - 1))
        expected += turn(n)
    assert await make_store(aws).load(KEY) == expected


@pytest.mark.parametrize(
    "other",
    [
        {"project_key": "a|b", "session_id": "c"},
        {"project_key": "a", "session_id": "b|c"},
        {"project_key": "a%7Cb", "session_id": "c"},
        {"project_key": "a/b", "session_id": "c"},
        {"project_key": "a", "session_id": "b/c"},
        {"project_key": "a", "session_id": "b", "subpath": "c"},
        {"project_key": "a", "session_id": "b", "subpath": "~"},
    ],
)
async def test_keys_that_look_alike_never_share_storage(aws: Any, other: dict[str, str]) -> None:
    store = make_store(aws)
    base = {"project_key": "a", "session_id": "b"}
    await store.append(base, [{"type": "x", "who": "base"}])
    await store.append(other, [{"type": "x", "who": "other"}])
    fresh = make_store(aws)
    assert await fresh.load(base) == [{"type": "x", "who": "base"}]
    assert await fresh.load(other) == [{"type": "x", "who": "other"}]


@pytest.mark.parametrize(
    "key",
    [
        {"project_key": "..", "session_id": "..", "subpath": "../../etc/passwd"},
        {"project_key": "/abs/path", "session_id": "./.", "subpath": "subagents/../../x"},
        {"project_key": "проект 🚀", "session_id": "séance\u200b", "subpath": "子/エージェント"},
        {"project_key": "p" * 1024, "session_id": "s" * 1024, "subpath": "x/" * 512},
        {"project_key": "nul\x00byte", "session_id": "new\nline", "subpath": "%2e%2e/%2F"},
    ],
)
async def test_path_like_unicode_and_long_key_parts_stay_inside_their_prefix(
    aws: Any, key: dict[str, str]
) -> None:
    store = make_store(aws, fold_summary=fold)
    await store.append(key, turn(1, size=200))
    await store.append(_main(key), turn(2, size=200))
    assert await make_store(aws).load(key) == turn(1, size=200)
    assert await store.list_subkeys(_main(key)) == [key["subpath"]]
    listed = await store.list_sessions(key["project_key"])
    assert [s["session_id"] for s in listed] == [key["session_id"]]
    for item in all_items(aws):
        assert len(item["pk"]["S"].encode()) <= 2048 and len(item["sk"]["S"].encode()) <= 1024
    await store.delete(_main(key))
    assert await make_store(aws).load(key) is None
    assert all_objects(aws) == []


def _main(key: dict[str, str]) -> dict[str, str]:
    return {"project_key": key["project_key"], "session_id": key["session_id"]}


def test_snapshot_objects_stay_under_their_transcript_prefix() -> None:
    from session_core._transcript_format import locate

    for key in (
        {"project_key": "..", "session_id": "..", "subpath": "../.."},
        {"project_key": "a/b", "session_id": "c"},
    ):
        loc = locate(key)
        assert all(part not in ("", ".", "..") for part in loc.s3_prefix.split("/")[:-1])
        assert loc.s3_prefix.startswith(loc.session_s3_prefix)
        assert loc.s3_prefix.count("/") == 4


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ({"project_key": "", "session_id": "s"}, "project_key"),
        ({"project_key": "p", "session_id": ""}, "session_id"),
        ({"project_key": "p", "session_id": "s", "subpath": ""}, "subpath"),
        ({"project_key": "p", "session_id": 7}, "session_id"),
        ({"project_key": "p" * 1025, "session_id": "s"}, "project_key"),
        ({"project_key": "p", "session_id": "lone \ud800 surrogate"}, "session_id"),
        ({"session_id": "s"}, "project_key"),
        ("proj/sess", "key"),
    ],
)
async def test_empty_or_invalid_key_parts_are_rejected_before_any_request(
    aws: Any, key: Any, field: str
) -> None:
    store, rec = recorded_store(aws)
    with pytest.raises(InvalidSessionKeyError) as info:
        await store.append(key, turn(1))
    assert info.value.field == field
    with pytest.raises(InvalidSessionKeyError):
        await store.load(key)
    assert rec.count() == 0


@pytest.mark.parametrize(
    "entries",
    [
        [{"type": "x", "bad": {1, 2}}],
        [{"type": "x"}, "not an object"],
        [{"type": "x", "n": float("nan")}],
        "not a list",
    ],
)
async def test_entries_that_are_not_json_objects_are_rejected(aws: Any, entries: Any) -> None:
    store = make_store(aws)
    await store.append(KEY, turn(1))
    with pytest.raises(InvalidTranscriptEntryError):
        await store.append(KEY, entries)
    assert await make_store(aws).load(KEY) == turn(1)


async def test_entries_round_trip_deep_equal_including_odd_text(aws: Any) -> None:
    store = make_store(aws)
    odd = [
        {"type": "x", "uuid": "1", "text": "emoji 🚀, nul \x00, newline \n, rtl \u202e", "n": 2**60},
        {"type": "x", "uuid": "2", "lone": json.loads('"\\ud800 surrogate"'), "f": 0.1},
        {"type": "x", "nested": [{"a": None, "b": [True, False, 1.5e-300]}]},
    ]
    await store.append(KEY, odd)
    assert await make_store(aws).load(KEY) == odd
    assert await store.load(KEY) == odd


# --- retention -------------------------------------------------------------------------------


async def test_an_old_snapshot_is_rewritten_when_the_session_is_used(aws: Any) -> None:
    now = [1_800_000_000.0]
    store = make_store(aws, clock=lambda: now[0], tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    for n in range(24):
        await store.append(KEY, turn(n))
    [first] = all_objects(aws)
    now[0] += 4.5 * 86400  # the session rests, then comes back
    await store.append(KEY, turn(24))
    [second] = all_objects(aws)
    assert second != first
    head = next(i for i in all_items(aws) if i["sk"]["S"] == "head")
    assert int(head["expires_at"]["N"]) == int(now[0] + 25 * 86400)
    index = next(i for i in all_items(aws) if i["pk"]["S"].startswith("proj|"))
    assert int(index["expires_at"]["N"]) == int(now[0] + 25 * 86400)
    assert await make_store(aws).load(KEY) == [e for n in range(25) for e in turn(n)]


async def test_a_transcript_past_its_ttl_reads_as_gone_and_can_start_again(aws: Any) -> None:
    now = [1_800_000_000.0]
    store = make_store(aws, clock=lambda: now[0])
    await store.append(KEY, turn(1))
    await store.append(KEY, turn(2))
    items = {i["sk"]["S"]: i for i in all_items(aws) if i["pk"]["S"].startswith("tx|")}
    # Chunks outlive the head, so a head that is still there never points at a swept chunk.
    assert int(items["c#000000000000"]["expires_at"]["N"]) > int(items["head"]["expires_at"]["N"])

    now[0] += 25 * 86400 + 60  # DynamoDB's TTL sweep lags; the items are still there
    later = make_store(aws, clock=lambda: now[0])
    assert await later.load(KEY) is None
    assert await later.list_sessions(KEY["project_key"]) == []
    await later.append(KEY, turn(3))
    assert await make_store(aws, clock=lambda: now[0]).load(KEY) == turn(3)


async def test_a_transcript_read_as_of_a_message_sent_before_its_ttl_goes_on_and_is_kept(aws: Any) -> None:
    """A message sent before the transcript expired, answered after: read as of its sending,
    the transcript is there, and the answer's entries go on after it (and keep it 25 days)."""
    now = [1_800_000_000.0]
    store = make_store(aws, clock=lambda: now[0], tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    for n in range(24):
        await store.append(KEY, turn(n))  # a snapshot and a tail
    sent_at = now[0] + 25 * 86400 - 3600
    now[0] += 25 * 86400 + 3600

    later = make_store(aws, clock=lambda: now[0])
    with transcripts_read_as_of(sent_at):
        assert await later.load(KEY) == [e for n in range(24) for e in turn(n)]
        await later.append(KEY, turn(24))
    now[0] += 24 * 86400
    assert await make_store(aws, clock=lambda: now[0]).load(KEY) == [e for n in range(25) for e in turn(n)]


async def test_a_transcript_read_as_of_its_last_day_finds_every_chunk_dynamodb_may_not_have_swept(
    aws: Any,
) -> None:
    """The chat's last two messages came 3.9 days apart (the tail, not compacted, holds both
    chunks). A message sent an hour before its TTL is answered 12 hours after it: read as of
    its sending, the history goes on. Its first chunk once expired 29 days after it was written,
    when the head did (4 days less the tail's age past it): DynamoDB's sweep, in no order, may
    take it before the head, and the history read as missing a chunk (CorruptTranscriptError)."""
    now = [1_800_000_000.0]
    store = make_store(aws, clock=lambda: now[0])
    await store.append(KEY, turn(1))
    now[0] += 3.9 * 86400
    await store.append(KEY, turn(2))
    sent_at = now[0] + 25 * 86400 - 3600
    now[0] += 25 * 86400 + 12 * 3600
    for item in all_items(aws):  # the TTL sweep: what expired, the head not yet
        if item["sk"]["S"].startswith("c#") and float(item["expires_at"]["N"]) < now[0]:
            aws.dynamodb.delete_item(TableName=aws.resources.table, Key={"pk": item["pk"], "sk": item["sk"]})

    with transcripts_read_as_of(sent_at):
        assert await make_store(aws, clock=lambda: now[0]).load(KEY) == turn(1) + turn(2)


def _kept_as_before_5_days(aws: Any, written_at: float) -> None:
    """Give the chunks not yet marked the TTL chunks had before they were kept 5 days past
    expiry: written_at + SessionTtlDays (25) + refresh_after_days (4)."""
    for item in all_items(aws):
        if item["sk"]["S"].startswith("c#") and "marked_old" not in item:
            aws.dynamodb.update_item(
                TableName=aws.resources.table,
                Key={"pk": item["pk"], "sk": item["sk"]},
                UpdateExpression="SET expires_at = :ttl, marked_old = :yes",
                ExpressionAttributeValues={
                    ":ttl": {"N": str(int(written_at + 29 * 86400))},
                    ":yes": {"BOOL": True},
                },
            )


def _sweep_chunks(aws: Any, now: float) -> None:
    """DynamoDB's TTL sweep, in no order: the expired chunks have gone, the head not yet."""
    for item in all_items(aws):
        if item["sk"]["S"].startswith("c#") and float(item["expires_at"]["N"]) < now:
            aws.dynamodb.delete_item(TableName=aws.resources.table, Key={"pk": item["pk"], "sk": item["sk"]})


async def test_a_history_read_as_of_its_last_day_that_lost_an_older_chunk_to_the_sweep_is_gone(
    aws: Any,
) -> None:
    """A chunk written before chunks were kept 5 days past expiry expired 4 days less the
    tail's age after the head: read as of a message sent before the TTL, half a day after it,
    the sweep may have taken it. The history expired by now: gone (a new conversation), not a
    corrupt transcript that fails the message. A head still live now that misses a chunk is
    still corrupt."""
    now = [1_800_000_000.0]
    store = make_store(aws, clock=lambda: now[0])
    await store.append(KEY, turn(1))
    _kept_as_before_5_days(aws, now[0])
    now[0] += 3.9 * 86400
    await store.append(KEY, turn(2))
    _kept_as_before_5_days(aws, now[0])
    sent_at = now[0] + 25 * 86400 - 3600
    now[0] += 25 * 86400 + 12 * 3600
    _sweep_chunks(aws, now[0])

    with transcripts_read_as_of(sent_at):
        assert await make_store(aws, clock=lambda: now[0]).load(KEY) is None
    # A new conversation is written over it as over any expired one.
    await make_store(aws, clock=lambda: now[0]).append(KEY, turn(3))
    assert await make_store(aws, clock=lambda: now[0]).load(KEY) == turn(3)

    live = {"project_key": KEY["project_key"], "session_id": "0b6e-live"}
    await store.append(live, turn(4))
    await store.append(live, turn(5))
    first = next(i for i in all_items(aws) if i["sk"]["S"] == "c#000000000000" and "live" in i["pk"]["S"])
    aws.dynamodb.delete_item(TableName=aws.resources.table, Key={"pk": first["pk"], "sk": first["sk"]})
    with transcripts_read_as_of(sent_at), pytest.raises(CorruptTranscriptError, match="chunk is missing"):
        await make_store(aws, clock=lambda: now[0]).load(live)


async def test_a_transcript_is_not_read_as_of_a_moment_whose_objects_s3_may_have_deleted(aws: Any) -> None:
    """Read as of a moment before its TTL, a transcript still reads as gone a day past it: S3
    keeps its objects SessionTtlDays + 5 days from their making, and its snapshot may be
    4 days old, so later its head may name objects already deleted."""
    now = [1_800_000_000.0]
    store = make_store(aws, clock=lambda: now[0])
    await store.append(KEY, turn(1))
    sent_at = now[0] + 25 * 86400 - 3600
    now[0] += 26 * 86400 + 60

    with transcripts_read_as_of(sent_at):
        assert await make_store(aws, clock=lambda: now[0]).load(KEY) is None


# --- concurrency -----------------------------------------------------------------------------


async def test_a_concurrent_writer_is_detected_and_both_batches_kept_in_commit_order(aws: Any) -> None:
    mine, other = make_store(aws), make_store(aws)
    await mine.append(KEY, turn(1))
    await other.append(KEY, turn(2))  # other container, head moved under mine
    await mine.append(KEY, turn(3))
    assert await make_store(aws).load(KEY) == turn(1) + turn(2) + turn(3)


async def test_a_head_that_keeps_moving_gives_stale_head_error_and_loses_nothing(aws: Any) -> None:
    mine = make_store(aws, max_conflict_retries=0)
    other = make_store(aws)
    await mine.append(KEY, turn(1))
    await other.append(KEY, turn(2))
    with pytest.raises(StaleHeadError) as info:
        await mine.append(KEY, turn(3))
    assert info.value.retryable and info.value.expected_version == 1
    assert await make_store(aws).load(KEY) == turn(1) + turn(2)
    await mine.append(KEY, turn(3))  # it re-read the head; the next try succeeds
    assert await make_store(aws).load(KEY) == turn(1) + turn(2) + turn(3)


async def test_a_session_deleted_and_rewritten_elsewhere_is_not_served_from_cache(aws: Any) -> None:
    mine, other = make_store(aws), make_store(aws)
    await mine.append(KEY, [{"type": "x", "v": "old"}])
    await other.delete(KEY)
    await other.append(KEY, [{"type": "x", "v": "new"}])
    assert await mine.load(KEY) == [{"type": "x", "v": "new"}]


# --- listings and delete ---------------------------------------------------------------------


def fold(prev: Any, key: Any, entries: Any) -> Any:
    """A stand-in for the SDK's fold_session_summary: counts entries, remembers the last title."""
    data = dict(prev["data"]) if prev else {}
    data["count"] = data.get("count", 0) + len(entries)
    for entry in entries:
        if "customTitle" in entry:
            data["title"] = entry["customTitle"]
    return {"session_id": key["session_id"], "mtime": prev["mtime"] if prev else 0, "data": data}


async def test_summaries_and_listing_share_one_clock_and_survive_a_new_container(aws: Any) -> None:
    store = make_store(aws, fold_summary=fold)
    await store.append(KEY, [{"type": "x", "customTitle": "hello"}, *turn(1)])
    await make_store(aws, fold_summary=fold).append(KEY, turn(2))  # cold writer keeps the fold going
    await store.append({**KEY, "subpath": "subagents/agent-1"}, turn(9))
    [summary] = await store.list_session_summaries(KEY["project_key"])
    [listing] = await store.list_sessions(KEY["project_key"])
    assert summary["data"] == {"count": 9, "title": "hello"}
    assert summary["mtime"] == listing["mtime"] > 1e12
    with pytest.raises(NotImplementedError):
        await make_store(aws).list_session_summaries(KEY["project_key"])


async def test_delete_of_a_main_key_removes_every_item_and_object_of_the_session(aws: Any) -> None:
    store = make_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    other = {"project_key": KEY["project_key"], "session_id": "other"}
    for n in range(12):
        await store.append(KEY, turn(n))
        await store.append({**KEY, "subpath": "subagents/agent-1"}, turn(n))
    await store.append(other, turn(0))
    await store.delete(KEY)
    assert await make_store(aws).load({**KEY, "subpath": "subagents/agent-1"}) is None
    assert await store.list_subkeys(KEY) == []
    assert [s["session_id"] for s in await store.list_sessions(KEY["project_key"])] == ["other"]
    assert {i["pk"]["S"] for i in all_items(aws)} <= {
        "tx|-tmp-agentbot-sessions-acme-1-0|other|~",
        "proj|-tmp-agentbot-sessions-acme-1-0",
    }
    assert all_objects(aws) == []
    assert await store.load(other) == turn(0)


async def test_delete_removes_a_transcript_written_before_snapshots_had_epoch_folders(aws: Any) -> None:
    store = make_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    for n in range(24):
        await store.append(KEY, turn(n))
    [foldered] = all_objects(aws)
    [head] = [i for i in all_items(aws) if i["sk"]["S"] == "head"]
    transcript_prefix, epoch, name = foldered.rsplit("/", 2)
    assert epoch == head["epoch"]["S"]  # the snapshot lies in a folder of its epoch
    legacy = f"{transcript_prefix}/{name}"  # where the store put snapshots before the folders
    bucket, table = aws.resources.bucket, aws.resources.table
    aws.s3.copy_object(Bucket=bucket, Key=legacy, CopySource={"Bucket": bucket, "Key": foldered})
    aws.s3.delete_object(Bucket=bucket, Key=foldered)
    aws.dynamodb.update_item(
        TableName=table,
        Key={"pk": head["pk"], "sk": head["sk"]},
        UpdateExpression="SET snap_key = :legacy",
        ExpressionAttributeValues={":legacy": {"S": legacy}},
    )
    expected = [e for n in range(24) for e in turn(n)]
    assert await make_store(aws).load(KEY) == expected
    await store.delete(KEY)
    assert all_objects(aws) == [] and all_items(aws) == []


async def test_a_missing_table_is_a_permanent_storage_error(aws: Any) -> None:
    store = TranscriptStore(s3=aws.s3, dynamodb=aws.dynamodb, bucket=aws.resources.bucket, table="nope")
    with pytest.raises(StorageError) as info:
        await store.append(KEY, turn(1))
    assert info.value.error_code == "ResourceNotFoundException"
    assert not info.value.retryable


async def append_until_copied(
    store: TranscriptStore, rec: Recorder, expected: list[dict[str, Any]], copies: int = 1
) -> None:
    """Append turns until ``copies`` compactions copied a snapshot inside S3 (``rec`` counts
    ``store``'s requests); ``expected`` gets each turn appended."""
    n = 0
    while rec.requests[("s3", "UploadPartCopy")] < copies:
        await store.append(KEY, turn(n))
        expected += turn(n)
        n += 1


def incompressible(n_bytes: int, seed: int) -> str:
    rng = random.Random(seed)
    return base64.b64encode(rng.randbytes(n_bytes * 3 // 4)).decode()


async def test_compaction_of_a_big_history_sends_only_what_is_new(aws: Any) -> None:
    store, rec = recorded_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    big = [{"type": "user", "uuid": f"big{i}", "blob": incompressible(1_000_000, i)} for i in range(8)]
    await store.append(KEY, big)  # spills: a >5 MiB snapshot
    expected = list(big)
    rec.reset()
    await append_until_copied(store, rec, expected)
    # The old snapshot was copied inside S3; only the newer entries went over the wire.
    assert rec.requests[("s3", "PutObject")] == 0
    assert rec.sent_bytes < 200_000
    [snapshot] = all_objects(aws)
    reader, cold = recorded_store(aws)
    assert await reader.load(KEY) == expected
    # One Query, and the snapshot in byte ranges side by side: one per started 2 MiB (at most
    # 4), split where the newest frame starts (the ~5.7 MiB old frame in 2, the new one in 1).
    assert cold.count("dynamodb") == 1 and cold.requests[("s3", "GetObject")] == 3
    assert snapshot.endswith(".jsonl.zst")


async def test_a_snapshot_whose_frames_fill_a_part_leaves_the_padding_behind(aws: Any) -> None:
    store, rec = recorded_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    big = [{"type": "user", "uuid": f"big{i}", "blob": incompressible(1_000_000, i)} for i in range(8)]
    await store.append(KEY, big)  # spills: padding + a frame of more than 5 MiB
    assert int(_head_item(aws)["snap_start"]["N"]) == PADDING_BYTES
    expected = list(big)
    rec.reset()
    await append_until_copied(store, rec, expected, copies=2)  # two compactions after it
    # Only the frames were copied: the object is the frames, as long as the head says,
    # and nothing but the new frames went over the wire.
    assert rec.requests[("s3", "PutObject")] == 0 and rec.sent_bytes < 200_000
    [snapshot] = all_objects(aws)
    head = _head_item(aws)
    body = aws.s3.get_object(Bucket=aws.resources.bucket, Key=snapshot)["Body"].read()
    assert len(body) == int(head["snap_size"]["N"]) < PADDING_BYTES + 6_000_000
    assert body[:4] == b"\x28\xb5\x2f\xfd" and int(head.get("snap_start", {"N": "0"})["N"]) == 0
    marks = [int(mark) for mark in head["snap_frames"]["S"].split(",")]
    assert all(body[mark : mark + 4] == b"\x28\xb5\x2f\xfd" for mark in marks)
    assert await make_store(aws).load(KEY) == expected


@pytest.mark.parametrize("short", [0, 1])
async def test_frames_of_exactly_a_part_are_copied_alone_and_one_byte_fewer_with_the_padding(
    aws: Any, short: int
) -> None:
    writer = make_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    big = [{"type": "user", "uuid": f"big{i}", "blob": incompressible(1_000_000, i)} for i in range(4)]
    await writer.append(KEY, big)  # spills: padding + one frame of ~3 MB
    [snapshot] = all_objects(aws)
    bucket = aws.resources.bucket
    body = aws.s3.get_object(Bucket=bucket, Key=snapshot)["Body"].read()
    # A skippable frame after it makes the frames exactly a part (S3 takes one of 5 MiB), or
    # one byte fewer (S3 refuses that as a part: the padding must still come with them).
    filler = PADDING_BYTES + MIN_COPY_PART_BYTES - short - len(body)
    body += struct.pack("<II", 0x184D2A5F, filler - 8) + bytes(filler - 8)
    aws.s3.put_object(Bucket=bucket, Key=snapshot, Body=body)
    head = _head_item(aws)
    aws.dynamodb.update_item(
        TableName=aws.resources.table,
        Key={"pk": head["pk"], "sk": head["sk"]},
        UpdateExpression="SET snap_size = :size",
        ExpressionAttributeValues={":size": {"N": str(len(body))}},
    )
    s3 = aws.client("s3")
    ranges: list[str | None] = []

    def note(request: Any, **_: Any) -> None:
        header = request.headers.get("x-amz-copy-source-range")
        ranges.append(header.decode() if isinstance(header, bytes) else header)

    s3.meta.events.register("before-send.s3.UploadPartCopy", note)
    store, rec = recorded_store(aws, s3=s3, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    expected = list(big)
    await append_until_copied(store, rec, expected)
    assert rec.requests[("s3", "PutObject")] == 0
    # S3's range names its last byte, and S3 (unlike the emulator) refuses one past the end.
    assert ranges == [None if short else f"bytes={PADDING_BYTES}-{len(body) - 1}"]
    [snapshot] = all_objects(aws)
    head = _head_item(aws)
    new = aws.s3.get_object(Bucket=bucket, Key=snapshot)["Body"].read()
    assert len(new) == int(head["snap_size"]["N"])
    start = int(head.get("snap_start", {"N": "0"})["N"])
    assert new[:start] == body[:start] and new[start:].startswith(body[PADDING_BYTES:])
    assert start == (PADDING_BYTES if short else 0)
    [mark] = [int(mark) for mark in head["snap_frames"]["S"].split(",")]
    assert mark == len(body) - PADDING_BYTES + start and new[mark : mark + 4] == b"\x28\xb5\x2f\xfd"
    assert await make_store(aws).load(KEY) == expected


async def test_a_writer_rebuilds_a_snapshot_that_vanished_from_what_it_holds(aws: Any) -> None:
    store = make_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    big = [{"type": "user", "uuid": f"big{i}", "blob": incompressible(1_000_000, i)} for i in range(8)]
    await store.append(KEY, big)
    [lost] = all_objects(aws)
    aws.s3.delete_object(Bucket=aws.resources.bucket, Key=lost)
    expected = list(big)
    for n in range(30):  # the next compaction cannot copy it, so it uploads what it holds
        await store.append(KEY, turn(n))
        expected += turn(n)
    # The padding copied by the first compaction, the lost snapshot tried, the padding again.
    assert store.requests[("s3", "UploadPartCopy")] >= 3
    assert await make_store(aws).load(KEY) == expected


def _nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"k": [value]}
    return value


async def test_deep_entries_round_trip_and_too_deep_ones_are_refused_clearly(aws: Any) -> None:
    store = make_store(aws)
    deep = [{"type": "x", "uuid": "d1", "tool_input": _nested(150)}]  # 300 levels: a real input can
    await store.append(KEY, deep)
    assert await make_store(aws).load(KEY) == deep
    with pytest.raises(InvalidTranscriptEntryError) as refused:
        await store.append(KEY, [{"type": "x", "uuid": "d2", "tool_input": _nested(50_000)}])
    assert "cannot be stored" in str(refused.value)
    assert await make_store(aws).load(KEY) == deep  # nothing of the refused batch was written


@pytest.mark.parametrize("levels", [2_000, 100_000])
def test_stored_lines_nested_past_any_parser_read_as_corrupt_not_a_crash(levels: int) -> None:
    from session_core import CorruptTranscriptError
    from session_core._transcript_format import decode_lines

    line = b'{"type": "x", "deep": ' + b"[" * levels + b"]" * levels + b"}"
    with pytest.raises(CorruptTranscriptError):
        decode_lines([b'{"type": "ok"}', line], "s3://bucket/transcripts/x")


# --- upgrade: transcripts written before zstd ----------------------------------------------------


def history(turns: int) -> list[dict[str, Any]]:
    return [e for n in range(turns) for e in turn(n)]


def rewrite_in_the_format_before_zstd(aws: Any) -> None:
    """Turn every stored part into what the store wrote before zstd: zlib chunk items and a gzip
    snapshot object (``.jsonl.gz``), neither with a codec attribute."""
    unzstd = zstandard.ZstdDecompressor()
    table, bucket = aws.resources.table, aws.resources.bucket
    for item in all_items(aws):
        if item["sk"]["S"].startswith("c#") and "codec" in item:
            del item["codec"]
            raw = unzstd.decompressobj(read_across_frames=True).decompress(item["data"]["B"])
            aws.dynamodb.put_item(TableName=table, Item={**item, "data": {"B": zlib.compress(raw, 6)}})
        elif item["sk"]["S"] == "head" and "snap_key" in item:
            key = item["snap_key"]["S"]
            body = aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            raw = unzstd.decompressobj(read_across_frames=True).decompress(body)
            old = gzip.compress(raw, compresslevel=6, mtime=0)
            old_key = key.removesuffix(".jsonl.zst") + ".jsonl.gz"
            aws.s3.put_object(Bucket=bucket, Key=old_key, Body=old)
            aws.s3.delete_object(Bucket=bucket, Key=key)
            for newer in ("snap_codec", "snap_start", "snap_frames"):
                item.pop(newer, None)
            item.update(snap_key={"S": old_key}, snap_size={"N": str(len(old))})
            aws.dynamodb.put_item(TableName=table, Item=item)


async def test_a_transcript_written_before_zstd_loads_grows_and_moves_to_zstd(aws: Any) -> None:
    limits = {"tail_limit_bytes": 14_000, "chunk_limit_bytes": 10_000}
    writer = make_store(aws, **limits)
    for n in range(30):
        await writer.append(KEY, turn(n))
    rewrite_in_the_format_before_zstd(aws)
    assert [k for k in all_objects(aws) if k.endswith(".jsonl.gz")]
    assert not [i for i in all_items(aws) if "codec" in i or "snap_codec" in i]

    upgraded = make_store(aws, **limits)
    assert await upgraded.load(KEY) == history(30)
    stored = await make_store(aws).load_stored(KEY)
    assert stored is not None and stored.count == len(history(30))
    assert [json.loads(line) for line in b"".join(stored.jsonl).splitlines()] == history(30)

    for n in range(30, 60):  # its next compactions re-upload the small old snapshot as zstd
        await upgraded.append(KEY, turn(n))
    assert await make_store(aws).load(KEY) == history(60)
    [snapshot] = all_objects(aws)
    assert snapshot.endswith(".jsonl.zst")


async def test_a_big_gzip_snapshot_keeps_growing_as_gzip_without_a_reupload(aws: Any) -> None:
    store, rec = recorded_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    big = [{"type": "user", "uuid": f"big{i}", "blob": incompressible(1_000_000, i)} for i in range(8)]
    await store.append(KEY, big)  # spills: a >5 MiB snapshot
    rewrite_in_the_format_before_zstd(aws)

    upgraded, rec = recorded_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    expected = list(big)
    await append_until_copied(upgraded, rec, expected)
    assert rec.requests[("s3", "PutObject")] == 0  # copied inside S3, one gzip member added
    [snapshot] = all_objects(aws)
    assert snapshot.endswith(".jsonl.gz")
    assert await make_store(aws).load(KEY) == expected


async def test_a_big_snapshot_is_read_in_parallel_ranges_and_a_short_one_is_a_typed_error(aws: Any) -> None:
    writer = make_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    big = [{"type": "user", "uuid": f"big{i}", "blob": incompressible(1_000_000, i)} for i in range(12)]
    await writer.append(KEY, big)  # one snapshot of ~9 MB: one range per started 2 MiB, at most 4
    [snapshot] = all_objects(aws)

    reader, rec = recorded_store(aws)
    assert await reader.load(KEY) == big
    assert rec.requests[("s3", "GetObject")] == 4

    body = aws.s3.get_object(Bucket=aws.resources.bucket, Key=snapshot)["Body"].read()
    aws.s3.put_object(Bucket=aws.resources.bucket, Key=snapshot, Body=body[: len(body) * 3 // 4])
    with pytest.raises(CorruptTranscriptError) as info:
        await make_store(aws).load(KEY)
    assert info.value.location == f"s3://{aws.resources.bucket}/{snapshot}"


# --- snapshots read frame by frame ---------------------------------------------------------------


async def _snapshot_of_six_frames(aws: Any) -> list[dict[str, Any]]:
    """A ~2.7 MB snapshot grown by six compactions (each batch is too big for a chunk)."""
    writer = make_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    expected: list[dict[str, Any]] = []
    for n in range(6):
        batch = [{"type": "user", "uuid": f"b{n}", "blob": incompressible(600_000, n)}]
        await writer.append(KEY, batch)
        expected += batch
    return expected


def _head_item(aws: Any) -> dict[str, Any]:
    """The main transcript's head item."""
    [head] = [i for i in all_items(aws) if i["sk"]["S"] == "head" and i["pk"]["S"].endswith("|~")]
    return head


def _range_starts(client: Any) -> list[int]:
    """Where the byte ranges this S3 client asks for start (0 for a whole object)."""
    starts: list[int] = []

    def note(request: Any, **_: Any) -> None:
        header = request.headers.get("Range", b"bytes=0-")
        text = header.decode() if isinstance(header, bytes) else header
        starts.append(int(text.removeprefix("bytes=").split("-")[0]))

    client.meta.events.register("before-send.s3.GetObject", note)
    return starts


async def test_a_snapshot_grown_by_compactions_is_read_in_ranges_that_start_on_its_frames(aws: Any) -> None:
    expected = await _snapshot_of_six_frames(aws)
    head = _head_item(aws)
    marks = [int(mark) for mark in head["snap_frames"]["S"].split(",")]
    assert len(marks) == 5  # where frames 2..6 start

    s3 = aws.client("s3")
    starts = _range_starts(s3)
    assert await make_store(aws, s3=s3).load(KEY) == expected
    # ~2.7 MB: two ranges, the second starting where a frame starts (decompressed side by side);
    # the first starts after the padding.
    assert len(starts) == 2
    assert min(starts) == int(head["snap_start"]["N"]) == PADDING_BYTES and max(starts) in marks


async def test_frame_marks_that_are_missing_unusable_or_wrong_load_or_give_a_typed_error(aws: Any) -> None:
    expected = await _snapshot_of_six_frames(aws)
    head = _head_item(aws)
    table = aws.resources.table
    [snapshot] = all_objects(aws)

    # A head without marks (written before them) reads the snapshot as one stream.
    aws.dynamodb.put_item(TableName=table, Item={k: v for k, v in head.items() if k != "snap_frames"})
    assert await make_store(aws).load(KEY) == expected

    # A mark inside a frame: the range that starts there does not decompress.
    inside_first = str(PADDING_BYTES + 1000)
    aws.dynamodb.put_item(TableName=table, Item={**head, "snap_frames": {"S": inside_first}})
    with pytest.raises(CorruptTranscriptError) as inside:
        await make_store(aws).load(KEY)
    assert inside.value.location == f"s3://{aws.resources.bucket}/{snapshot}"

    # Marks out of order or not numbers cannot be frame starts: read as if there were none.
    for unusable in ("900000,5", "0", "12,x", f"{10**12}", str(PADDING_BYTES)):
        aws.dynamodb.put_item(TableName=table, Item={**head, "snap_frames": {"S": unusable}})
        assert await make_store(aws).load(KEY) == expected

    aws.dynamodb.put_item(TableName=table, Item=head)  # nothing else was touched
    assert all_objects(aws) == [snapshot]
    assert await make_store(aws).load(KEY) == expected


async def test_where_the_frames_start_is_checked_and_a_head_without_it_still_loads(aws: Any) -> None:
    expected = await _snapshot_of_six_frames(aws)
    head = _head_item(aws)
    table = aws.resources.table
    size = int(head["snap_size"]["N"])
    for wrong in (str(size), str(size + 1), "-1"):
        aws.dynamodb.put_item(TableName=table, Item={**head, "snap_start": {"N": wrong}})
        with pytest.raises(CorruptTranscriptError, match="head item is malformed"):
            await make_store(aws).load(KEY)

    # A head written by code from before the padding (it extended a padded snapshot and
    # recorded no start): the padding is downloaded and skipped as the zstd frame it is.
    older = {k: v for k, v in head.items() if k not in ("snap_start", "snap_frames")}
    aws.dynamodb.put_item(TableName=table, Item=older)
    assert await make_store(aws).load(KEY) == expected
    aws.dynamodb.put_item(TableName=table, Item=head)
    assert await make_store(aws).load(KEY) == expected


# --- a restore's early snapshot download ----------------------------------------------------------


async def _compacted_history(aws: Any, turns: int = 30) -> list[dict[str, Any]]:
    writer = make_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    for n in range(turns):
        await writer.append(KEY, turn(n))
    await writer.append({**KEY, "subpath": "subagents/agent-1"}, turn(99))
    assert all_objects(aws), "the history has a snapshot"
    return history(turns)


def _index_item(aws: Any) -> dict[str, Any]:
    [index] = [item for item in all_items(aws) if item["pk"]["S"].startswith("proj|")]
    return index


def _hold_queries_until_a_download_starts(s3: Any, dynamodb: Any) -> list[bool]:
    """Each Query waits (at most 5 s) until an S3 download has begun; says whether one had."""
    import threading

    download_started = threading.Event()
    s3.meta.events.register("before-send.s3.GetObject", lambda **_: download_started.set())
    overlapped: list[bool] = []
    dynamodb.meta.events.register(
        "before-send.dynamodb.Query", lambda **_: overlapped.append(download_started.wait(5))
    )
    return overlapped


async def test_a_cold_restore_downloads_the_snapshot_while_its_query_runs(aws: Any) -> None:
    expected = await _compacted_history(aws)
    s3, dynamodb = aws.client("s3"), aws.client("dynamodb")
    rec = Recorder(s3, dynamodb)
    # A restore that waited for the Query's answer to name the snapshot would never get there.
    overlapped = _hold_queries_until_a_download_starts(s3, dynamodb)
    reader = make_store(aws, s3=s3, dynamodb=dynamodb)

    stored, subpaths = await reader.load_for_restore(KEY)

    assert overlapped == [True]
    assert stored is not None and decode_jsonl(stored.jsonl, "test") == expected
    assert subpaths == ["subagents/agent-1"]
    # The same requests as load_stored + list_subkeys: one Query, one GetItem, the snapshot.
    assert rec.requests == Counter(
        {("dynamodb", "Query"): 1, ("dynamodb", "GetItem"): 1, ("s3", "GetObject"): 1}
    )
    # Warm: the cache catches up with one Query; nothing is downloaded again.
    rec.reset()
    again, _ = await reader.load_for_restore(KEY)
    assert again == stored
    assert rec.count("s3") == 0 and rec.requests[("dynamodb", "Query")] == 1


async def test_a_restore_past_its_size_limit_is_refused_without_downloading_the_history(aws: Any) -> None:
    await _compacted_history(aws)
    writer = make_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000)
    await writer.append(KEY, turn(30))  # and a tail after the snapshot
    expected = history(31)
    size = len(jsonl_of([json.dumps(e, separators=(",", ":")).encode() for e in expected]))
    snapshot_size = int(_head_item(aws)["snap_raw_size"]["N"])
    assert 0 < snapshot_size < size
    s3, dynamodb = aws.client("s3"), aws.client("dynamodb")
    rec = Recorder(s3, dynamodb)
    reader = make_store(aws, s3=s3, dynamodb=dynamodb)

    # Past the limit with the snapshot alone: the index item says so, nothing is downloaded.
    with pytest.raises(TranscriptTooLargeError) as refused:
        await reader.load_for_restore(KEY, max_bytes=snapshot_size - 1)
    assert refused.value.size == size and refused.value.max_bytes == snapshot_size - 1
    assert rec.count("s3") == 0
    # Past it only with the tail: the index item counts the tail too, nothing is downloaded.
    assert int(_index_item(aws)["main_size"]["N"]) == size
    with pytest.raises(TranscriptTooLargeError) as refused:
        await reader.load_for_restore(KEY, max_bytes=size - 1)
    assert refused.value.size == size
    assert rec.count("s3") == 0
    # An index item from before it counted the tail: refused as well, once the Query has told.
    dynamodb.update_item(
        TableName=aws.resources.table,
        Key={"pk": _index_item(aws)["pk"], "sk": _index_item(aws)["sk"]},
        UpdateExpression="REMOVE main_size",
    )
    with pytest.raises(TranscriptTooLargeError) as refused:
        await reader.load_for_restore(KEY, max_bytes=size - 1)
    assert refused.value.size == size
    # Nothing was cached from the refusals, and nothing stored changed.
    stored, _ = await reader.load_for_restore(KEY, max_bytes=size)
    assert stored is not None and stored.size == size and decode_jsonl(stored.jsonl, "test") == expected
    # A cache another writer's compaction made stale does not download past the limit either.
    snapshot_key = _head_item(aws)["snap_key"]["S"]
    for n in range(31, 80):
        await writer.append(KEY, turn(n))
        if _head_item(aws)["snap_key"]["S"] != snapshot_key:
            break
    assert _head_item(aws)["snap_key"]["S"] != snapshot_key, "the writer compacted"
    compacted = history(n + 1)
    assert int(_index_item(aws)["main_size"]["N"]) == len(
        jsonl_of([json.dumps(e, separators=(",", ":")).encode() for e in compacted])
    )
    rec.reset()
    with pytest.raises(TranscriptTooLargeError):
        await reader.load_stored(KEY, max_bytes=size)
    assert rec.count("s3") == 0


@pytest.mark.parametrize("pointer", ["stale", "damaged", "absent"])
async def test_a_restore_reads_the_heads_snapshot_whatever_the_index_names(aws: Any, pointer: str) -> None:
    expected = await _compacted_history(aws)
    index = _index_item(aws)
    named = json.loads(index["main_snap"]["S"])
    if pointer == "stale":  # e.g. a compaction landed between the index read and the Query
        old = {**named, "key": named["key"].replace("snap-", "snap-gone-")}
        aws.s3.put_object(Bucket=aws.resources.bucket, Key=old["key"], Body=b"an older snapshot")
        index["main_snap"] = {"S": json.dumps(old)}
    elif pointer == "damaged":
        index["main_snap"] = {"S": "{not json"}
    else:  # written before the index named snapshots
        del index["main_snap"]
    aws.dynamodb.put_item(TableName=aws.resources.table, Item=index)

    stored, subpaths = await make_store(aws).load_for_restore(KEY)

    assert stored is not None and subpaths == ["subagents/agent-1"]
    assert decode_jsonl(stored.jsonl, "test") == expected


@pytest.mark.parametrize("recorded", ["-1", "0.5", "1e9", "1" + "0" * 37])
async def test_a_restore_with_a_limit_ignores_a_size_the_index_cannot_state(aws: Any, recorded: str) -> None:
    expected = await _compacted_history(aws)
    index = _index_item(aws)
    # The item is only a hint: whatever DynamoDB hands back there, the head decides.
    aws.dynamodb.put_item(TableName=aws.resources.table, Item={**index, "main_size": {"N": recorded}})
    size = len(jsonl_of([json.dumps(e, separators=(",", ":")).encode() for e in expected]))

    stored, _ = await make_store(aws).load_for_restore(KEY, max_bytes=size)

    assert stored is not None and decode_jsonl(stored.jsonl, "test") == expected


async def test_a_head_without_frame_marks_still_uses_the_early_download(aws: Any) -> None:
    expected = await _snapshot_of_six_frames(aws)
    head = _head_item(aws)
    assert "snap_frames" in head
    # An older writer rewrote the head without marks; the index item still names the object.
    aws.dynamodb.put_item(
        TableName=aws.resources.table, Item={k: v for k, v in head.items() if k != "snap_frames"}
    )
    s3, dynamodb = aws.client("s3"), aws.client("dynamodb")
    rec = Recorder(s3, dynamodb)
    _hold_queries_until_a_download_starts(s3, dynamodb)
    stored, _ = await make_store(aws, s3=s3, dynamodb=dynamodb).load_for_restore(KEY)
    assert stored is not None and decode_jsonl(stored.jsonl, "test") == expected
    assert rec.requests[("s3", "GetObject")] == 2  # its two ranges once, not twice


async def test_a_restore_does_not_wait_for_a_download_it_does_not_use(aws: Any) -> None:
    import threading

    expected = await _compacted_history(aws)
    index = _index_item(aws)
    named = json.loads(index["main_snap"]["S"])
    decoy = named["key"].replace("snap-", "snap-decoy-")
    aws.s3.put_object(Bucket=aws.resources.bucket, Key=decoy, Body=b"x" * named["size"])
    index["main_snap"] = {"S": json.dumps({**named, "key": decoy})}
    aws.dynamodb.put_item(TableName=aws.resources.table, Item=index)
    s3 = aws.client("s3")
    release, held_to_the_end = threading.Event(), threading.Event()

    def hold_the_decoy(request: Any, **_: Any) -> None:
        if "decoy" in request.url:
            release.wait(10)  # a slow first byte from S3
            held_to_the_end.set()

    s3.meta.events.register("before-send.s3.GetObject", hold_the_decoy)
    try:
        stored, _ = await make_store(aws, s3=s3).load_for_restore(KEY)
        # Returned while the stale download is still held: nothing waited for it.
        assert not held_to_the_end.is_set()
        assert stored is not None and decode_jsonl(stored.jsonl, "test") == expected
    finally:
        release.set()


async def test_a_restore_never_fetches_an_object_outside_its_transcript_early(aws: Any) -> None:
    expected = await _compacted_history(aws)
    index = _index_item(aws)
    named = json.loads(index["main_snap"]["S"])
    foreign = "transcripts/other-project/other-session/~/snap-000000000001-x.jsonl.zst"
    aws.s3.put_object(Bucket=aws.resources.bucket, Key=foreign, Body=b"x" * named["size"])
    index["main_snap"] = {"S": json.dumps({**named, "key": foreign})}
    aws.dynamodb.put_item(TableName=aws.resources.table, Item=index)
    s3 = aws.client("s3")
    asked: list[str] = []
    s3.meta.events.register("before-send.s3.GetObject", lambda request, **_: asked.append(request.url))
    stored, _ = await make_store(aws, s3=s3).load_for_restore(KEY)
    assert stored is not None and decode_jsonl(stored.jsonl, "test") == expected
    assert asked and not [url for url in asked if "other-session" in url]


# --- a restore's file, filled while the snapshot downloads ---------------------------------------


def test_frame_marks_are_thinned_with_where_their_jsonl_starts() -> None:
    """The head keeps at most MAX_FRAME_MARKS marks however many compactions a snapshot has
    had, each still paired with its own frame's JSONL offset; marks from before the offsets
    were kept give way to the first mark that has one."""
    marks: tuple[int, ...] = ()
    raws: tuple[int, ...] = ()
    for n in range(1, 200):
        marks, raws = with_frame_mark(marks, raws, n * 1000, n * 7000)
        assert 0 < len(marks) <= MAX_FRAME_MARKS and [raw // 7 for raw in raws] == list(marks)
    assert marks[-1] > 100_000  # the newest frames stay marked

    assert with_frame_mark((1000, 2000), (), 3000, 21000) == ((3000,), (21000,))


async def _six_frames_and_a_tail(aws: Any) -> list[dict[str, Any]]:
    expected = await _snapshot_of_six_frames(aws)
    tail = [{"type": "user", "uuid": "after-the-snapshot", "text": "a tail entry"}]
    await make_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000).append(KEY, tail)
    return expected + tail


async def _restore_into(aws: Any, path: Any, s3: Any = None) -> tuple[Any, TranscriptFile]:
    """A cold load_for_restore that fills the file at ``path``; the file closed after it."""
    with open(path, "wb") as out:
        into = TranscriptFile(out.fileno())
        stored, _ = await make_store(aws, s3=s3).load_for_restore(KEY, into=into)
        into.close()
    return stored, into


async def test_a_restore_writes_each_range_of_the_snapshot_into_its_file_as_it_comes(
    aws: Any, tmp_path: Any
) -> None:
    expected = await _six_frames_and_a_tail(aws)
    head = _head_item(aws)
    assert len(head["snap_frames_raw"]["S"].split(",")) == len(head["snap_frames"]["S"].split(",")) == 5
    s3 = aws.client("s3")
    starts = _range_starts(s3)

    stored, into = await _restore_into(aws, tmp_path / "t.jsonl", s3)

    assert len(starts) == 2  # two ranges side by side, each written where its JSONL belongs
    assert stored is not None and decode_jsonl(stored.jsonl, "test") == expected
    snapshot_size = int(head["snap_raw_size"]["N"])
    assert into.written == snapshot_size  # the tail is the caller's to write
    assert (tmp_path / "t.jsonl").read_bytes() == b"".join(stored.jsonl)[:snapshot_size]


@pytest.mark.parametrize(
    "hint", ["offsets one byte off", "offsets past the end", "offsets from before", "no marks at all"]
)
async def test_where_the_ranges_jsonl_starts_is_only_a_hint_for_the_file(
    aws: Any, tmp_path: Any, hint: str
) -> None:
    """The early download follows what the session's index item says of the snapshot. Offsets
    that do not fit the ranges' JSONL leave the file to the caller (nothing vouched for); a
    snapshot read as one stream is written from its start."""
    expected = await _six_frames_and_a_tail(aws)
    index = _index_item(aws)
    named = json.loads(index["main_snap"]["S"])
    assert len(named["frames_raw"]) == 5
    if hint == "offsets one byte off":
        named["frames_raw"] = [raw + 1 for raw in named["frames_raw"]]
    elif hint == "offsets past the end":
        named["frames_raw"] = [10**20 + raw for raw in named["frames_raw"]]
    elif hint == "offsets from before":
        del named["frames_raw"]
    else:
        del named["frames"], named["frames_raw"]
    index["main_snap"] = {"S": json.dumps(named)}
    aws.dynamodb.put_item(TableName=aws.resources.table, Item=index)

    stored, into = await _restore_into(aws, tmp_path / "t.jsonl")

    assert stored is not None and decode_jsonl(stored.jsonl, "test") == expected
    if hint == "no marks at all":
        assert into.written == named["raw_size"]
        assert (tmp_path / "t.jsonl").read_bytes() == b"".join(stored.jsonl)[: into.written]
    else:
        assert into.written == 0


async def test_a_download_of_a_snapshot_the_head_no_longer_names_vouches_for_nothing(
    aws: Any, tmp_path: Any
) -> None:
    """The index named an older snapshot (a compaction landed between its read and the
    Query): whatever that download wrote is not vouched for, and it writes nothing once the
    file is closed."""
    expected = await _six_frames_and_a_tail(aws)
    index = _index_item(aws)
    named = json.loads(index["main_snap"]["S"])
    older = named["key"].replace("snap-", "snap-older-")
    source = {"Bucket": aws.resources.bucket, "Key": named["key"]}
    aws.s3.copy_object(Bucket=aws.resources.bucket, Key=older, CopySource=source)
    index["main_snap"] = {"S": json.dumps({**named, "key": older})}
    aws.dynamodb.put_item(TableName=aws.resources.table, Item=index)

    stored, into = await _restore_into(aws, tmp_path / "t.jsonl")

    assert stored is not None and decode_jsonl(stored.jsonl, "test") == expected
    assert into.written == 0
    size_at_close = (tmp_path / "t.jsonl").stat().st_size
    into.write_at(size_at_close, b"late")  # what a download still running would do now
    assert (tmp_path / "t.jsonl").stat().st_size == size_at_close


async def test_a_snapshot_marked_before_raw_offsets_gets_them_at_its_next_compaction(
    aws: Any, tmp_path: Any
) -> None:
    expected = await _snapshot_of_six_frames(aws)
    # As code from before the offsets left it: marks, none of them with an offset.
    for item in (_head_item(aws), _index_item(aws)):
        if "main_snap" in item:
            named = json.loads(item["main_snap"]["S"])
            del named["frames_raw"]
            item["main_snap"] = {"S": json.dumps(named)}
        item.pop("snap_frames_raw", None)
        aws.dynamodb.put_item(TableName=aws.resources.table, Item=item)

    batch = [{"type": "user", "uuid": "b6", "blob": incompressible(600_000, 6)}]
    await make_store(aws, tail_limit_bytes=14_000, chunk_limit_bytes=10_000).append(KEY, batch)
    head = _head_item(aws)
    assert head["snap_frames"]["S"].count(",") == head["snap_frames_raw"]["S"].count(",") == 0

    stored, into = await _restore_into(aws, tmp_path / "t.jsonl")
    assert stored is not None and decode_jsonl(stored.jsonl, "test") == expected + batch
    assert into.written == int(head["snap_raw_size"]["N"])  # written during the download again
    assert (tmp_path / "t.jsonl").read_bytes() == b"".join(stored.jsonl)[: into.written]
