"""The transcript file a restore leaves and a clean turn keeps.

A cold restore: the CLI resumes from the stored transcript byte for byte, however the
snapshot's download went (its JSONL goes into the file while it downloads), and a restore that
writes no file leaves no partial one behind. After a clean turn the kept file is made exactly
what the store holds: what already matches is kept where it lies (the CLI's own lines for the
turn, a tool's edit and anything past the end are replaced), and a file that is not plainly
the session's own is replaced by a new one, never written through."""

from __future__ import annotations

import base64
import json
import os
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


async def test_a_refused_restore_leaves_no_file(aws: Any, tmp_path: Path) -> None:
    await _history_with_a_snapshot(aws)
    path = transcript_path(str(tmp_path / "config"), "-work", KEY["session_id"])
    restorer = TranscriptRestorer(_store(aws))

    with pytest.raises(TranscriptTooLargeError):
        await restorer.restore("slot", KEY, path, max_bytes=100_000)
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


KEPT_KEY = {"project_key": "-tmp-agentbot-sessions-acme-1-0", "session_id": "0b6e-kept"}
NEW = {"type": "assistant", "uuid": "new-1", "message": {"content": "an answer, ünïcode"}}


async def _a_turn_just_ended(aws: Any, tmp_path: Path) -> tuple[TranscriptStore, TranscriptRestorer, Path]:
    """A history with a snapshot restored into its file, then one more entry: mirrored to the
    store, and appended to the file the way the CLI writes it (not the store's encoding)."""
    writer = _store(aws)
    for n in range(4):
        blob = base64.b64encode(random.Random(n).randbytes(300_000)).decode()
        await writer.append(KEPT_KEY, [{"type": "user", "uuid": f"b{n}", "blob": blob}])
    await writer.append(KEPT_KEY, [{"type": "user", "uuid": "after", "text": "a tail entry"}])
    store = _store(aws)
    restorer = TranscriptRestorer(store)
    path = transcript_path(str(tmp_path / "config"), "-work", KEPT_KEY["session_id"])
    assert await restorer.restore("slot", KEPT_KEY, path) is not None
    await store.append(KEPT_KEY, [NEW])
    with path.open("ab") as cli:
        cli.write(json.dumps(NEW, separators=(", ", ": ")).encode() + b"\n")
    return store, restorer, path


def _stored_bytes(store: TranscriptStore) -> bytes:
    stored = store.known_stored(KEPT_KEY)
    assert stored is not None
    return b"".join(stored.jsonl)


async def test_the_kept_file_becomes_the_stored_bytes_in_place(aws: Any, tmp_path: Path) -> None:
    store, restorer, path = await _a_turn_just_ended(aws, tmp_path)
    before = path.stat()
    assert path.read_bytes() != _stored_bytes(store)  # the CLI's spacing, not the store's

    assert restorer.remember("slot", KEPT_KEY, path)

    assert path.read_bytes() == _stored_bytes(store)
    assert path.stat().st_ino == before.st_ino  # the matching history was not written again
    again = await restorer.restore("slot", KEPT_KEY, path)  # next turn: the copy is current
    assert again is not None and again.local and not again.written


@pytest.mark.parametrize("edit", ["an early byte", "a line appended", "cut short"])
async def test_a_tools_edit_of_the_kept_file_does_not_survive(aws: Any, tmp_path: Path, edit: str) -> None:
    store, restorer, path = await _a_turn_just_ended(aws, tmp_path)
    content = path.read_bytes()
    if edit == "an early byte":  # inside the snapshot's JSONL
        at = content.index(b'"blob"') + 20
        content = content[:at] + b"Z" + content[at + 1 :]
    elif edit == "a line appended":
        content += json.dumps({**NEW, "uuid": "planted"}).encode() + b"\n"
        store_last = json.dumps(NEW, separators=(", ", ": ")).encode() + b"\n"
        content += store_last  # still ends with the turn's last entry
    else:
        content = content[: len(content) // 3] + content[-(len(content) // 3) :]
    path.write_bytes(content)
    inode = path.stat().st_ino

    assert restorer.remember("slot", KEPT_KEY, path)  # it still ends with the turn's last entry

    assert path.read_bytes() == _stored_bytes(store)
    assert path.stat().st_ino == inode  # undone where it lies
    again = await restorer.restore("slot", KEPT_KEY, path)
    assert again is not None and again.local and not again.written


async def test_a_hard_link_to_the_kept_file_is_not_written_through(aws: Any, tmp_path: Path) -> None:
    store, restorer, path = await _a_turn_just_ended(aws, tmp_path)
    elsewhere = tmp_path / "elsewhere.jsonl"
    os.link(path, elsewhere)
    linked = elsewhere.read_bytes()

    assert restorer.remember("slot", KEPT_KEY, path)

    assert path.read_bytes() == _stored_bytes(store)
    assert elsewhere.read_bytes() == linked  # a new file took the name; the link's is untouched
    assert path.stat().st_ino != elsewhere.stat().st_ino


async def test_a_kept_file_whose_mode_a_tool_changed_is_replaced(aws: Any, tmp_path: Path) -> None:
    store, restorer, path = await _a_turn_just_ended(aws, tmp_path)
    path.chmod(0o644)  # would let other users of the machine read the next turns
    inode = path.stat().st_ino

    assert restorer.remember("slot", KEPT_KEY, path)

    assert path.read_bytes() == _stored_bytes(store)
    assert path.stat().st_ino != inode and path.stat().st_mode & 0o777 == 0o600


async def test_a_kept_file_grown_by_a_hole_is_not_read_to_its_end(aws: Any, tmp_path: Path) -> None:
    store, restorer, path = await _a_turn_just_ended(aws, tmp_path)
    with path.open("r+b") as tool:
        tool.truncate(path.stat().st_size + 64 * 2**30)  # 64 GiB more, none of it on disk

    assert not restorer.remember("slot", KEPT_KEY, path)  # its last line is not the store's

    again = await restorer.restore("slot", KEPT_KEY, path)  # the next turn writes it from the store
    assert again is not None and again.written
    assert path.read_bytes() == _stored_bytes(store)


async def test_a_kept_file_written_and_its_mtime_set_back_is_restored_again(aws: Any, tmp_path: Path) -> None:
    store, restorer, path = await _a_turn_just_ended(aws, tmp_path)
    assert restorer.remember("slot", KEPT_KEY, path)
    kept = path.stat()
    # Something that wrote the file after the turn, same size, and put its mtime back.
    content = path.read_bytes()
    at = content.index(b'"after"')
    path.write_bytes(content[:at] + b'"AFTER"' + content[at + 7 :])
    os.utime(path, ns=(kept.st_atime_ns, kept.st_mtime_ns))

    again = await restorer.restore("slot", KEPT_KEY, path)

    assert again is not None and again.written  # not taken for the copy the turn left
    assert path.read_bytes() == _stored_bytes(store)


def test_a_session_id_that_is_not_a_uuid_names_no_transcript_path(tmp_path: Path) -> None:
    """The CLI's session id names the file the runtime writes: a path in it must not climb out."""
    good = "51dc03a8-0a5b-4c1e-9f57-1f0e8d9a7b21"
    assert transcript_path(str(tmp_path), "p", good) == tmp_path / "projects" / "p" / f"{good}.jsonl"
    for forged in ("../../../../.bin/claude-confined/x", "a/b", "..", "", ".hidden", good + "\n"):
        with pytest.raises(ValueError, match="not a session id"):
            transcript_path(str(tmp_path), "p", forged)
