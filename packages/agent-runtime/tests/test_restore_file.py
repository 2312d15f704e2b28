"""A cold restore's transcript file: the CLI resumes from the stored transcript byte for byte,
however the snapshot's download went (its JSONL goes into the file while it downloads), and a
restore that writes no file leaves no partial one behind."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import pytest
from agent_runtime._restore import TranscriptRestorer, transcript_path
from session_core import TranscriptStore, TranscriptTooLargeError

pytestmark = pytest.mark.anyio

KEY = {"project_key": "-tmp-agentbot-sessions-acme-1-0", "session_id": "0b6e-sess"}


def _store(aws: Any) -> TranscriptStore:
    return TranscriptStore(
        s3=aws.s3,
        dynamodb=aws.dynamodb,
        bucket=aws.resources.bucket,
        table=aws.resources.table,
        tail_limit_bytes=14_000,
        chunk_limit_bytes=10_000,
    )


async def _history_with_a_snapshot(aws: Any) -> None:
    """Six batches too big for a chunk (a snapshot of six frames, read in two ranges), then a
    tail entry after it."""
    store = _store(aws)
    for n in range(6):
        blob = base64.b64encode(random.Random(n).randbytes(450_000)).decode()
        await store.append(KEY, [{"type": "user", "uuid": f"b{n}", "blob": blob}])
    await store.append(KEY, [{"type": "user", "uuid": "after", "text": "a tail entry"}])


def _point_the_index_at(aws: Any, change: str) -> None:
    [index] = [
        i
        for i in aws.dynamodb.scan(TableName=aws.resources.table)["Items"]
        if i["pk"]["S"].startswith("proj|")
    ]
    named = json.loads(index["main_snap"]["S"])
    if change == "offsets one byte off":
        named["frames_raw"] = [raw + 1 for raw in named["frames_raw"]]
    elif change == "an older snapshot":  # a compaction landed between the index read and the Query
        older = named["key"].replace("snap-", "snap-older-")
        source = {"Bucket": aws.resources.bucket, "Key": named["key"]}
        aws.s3.copy_object(Bucket=aws.resources.bucket, Key=older, CopySource=source)
        named["key"] = older
    index["main_snap"] = {"S": json.dumps(named)}
    aws.dynamodb.put_item(TableName=aws.resources.table, Item=index)


def _leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.glob("*")) if path.parent.exists() else []


@pytest.mark.parametrize("index", ["as written", "offsets one byte off", "an older snapshot"])
async def test_a_cold_restore_leaves_the_stored_transcript_byte_for_byte(
    aws: Any, tmp_path: Path, index: str
) -> None:
    await _history_with_a_snapshot(aws)
    if index != "as written":
        _point_the_index_at(aws, index)
    path = transcript_path(str(tmp_path / "config"), "-work", KEY["session_id"])

    restored = await TranscriptRestorer(_store(aws)).restore("slot", KEY, path)

    assert restored is not None and restored.local and restored.written
    assert path.read_bytes() == b"".join(restored.stored.jsonl)
    assert [json.loads(line)["uuid"] for line in path.read_bytes().splitlines()][-2:] == ["b5", "after"]
    assert _leftovers(path) == [path.name]


async def test_a_refused_or_subagent_restore_leaves_no_file(aws: Any, tmp_path: Path) -> None:
    await _history_with_a_snapshot(aws)
    path = transcript_path(str(tmp_path / "config"), "-work", KEY["session_id"])
    restorer = TranscriptRestorer(_store(aws))

    with pytest.raises(TranscriptTooLargeError):
        await restorer.restore("slot", KEY, path, max_bytes=100_000)
    assert _leftovers(path) == []

    # A session with subagent transcripts is left to the SDK's own resume.
    await _store(aws).append({**KEY, "subpath": "subagents/agent-1"}, [{"type": "user", "uuid": "sub"}])
    restored = await restorer.restore("slot", KEY, path)
    assert restored is not None and not restored.local
    assert _leftovers(path) == []


async def test_a_partial_file_swapped_during_the_download_is_not_put_in_place(
    aws: Any, tmp_path: Path
) -> None:
    """Whatever replaced the file being written (a link to a file outside, here) is never
    installed as the transcript, nor written through."""
    await _history_with_a_snapshot(aws)
    path = transcript_path(str(tmp_path / "config"), "-work", KEY["session_id"])
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    store = _store(aws)

    class SwappingStore:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        async def load_for_restore(self, key: Any, **kwargs: Any) -> Any:
            loaded = await store.load_for_restore(key, **kwargs)
            [partial] = path.parent.glob("*.partial")
            partial.rename(tmp_path / "moved-away")
            partial.symlink_to(outside)
            return loaded

    with pytest.raises(OSError, match="was replaced"):
        await TranscriptRestorer(SwappingStore()).restore("slot", KEY, path)
    assert not path.exists() and not path.is_symlink()
    assert outside.read_text() == "untouched"
