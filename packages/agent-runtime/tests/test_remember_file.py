"""After a clean turn the kept transcript file is made exactly what the store holds: what
already matches is kept where it lies (the CLI's own lines for the turn, a tool's edit and
anything past the end are replaced), and a file that is not plainly the session's own is
replaced by a new one, never written through."""

from __future__ import annotations

import base64
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
from agent_runtime._restore import TranscriptRestorer, transcript_path
from session_core import TranscriptStore

pytestmark = pytest.mark.anyio

KEY = {"project_key": "-tmp-agentbot-sessions-acme-1-0", "session_id": "0b6e-kept"}
NEW = {"type": "assistant", "uuid": "new-1", "message": {"content": "an answer, ünïcode"}}


def _store(aws: Any) -> TranscriptStore:
    return TranscriptStore(
        s3=aws.s3,
        dynamodb=aws.dynamodb,
        bucket=aws.resources.bucket,
        table=aws.resources.table,
        tail_limit_bytes=14_000,
        chunk_limit_bytes=10_000,
    )


async def _a_turn_just_ended(aws: Any, tmp_path: Path) -> tuple[TranscriptStore, TranscriptRestorer, Path]:
    """A history with a snapshot restored into its file, then one more entry: mirrored to the
    store, and appended to the file the way the CLI writes it (not the store's encoding)."""
    writer = _store(aws)
    for n in range(4):
        blob = base64.b64encode(random.Random(n).randbytes(300_000)).decode()
        await writer.append(KEY, [{"type": "user", "uuid": f"b{n}", "blob": blob}])
    await writer.append(KEY, [{"type": "user", "uuid": "after", "text": "a tail entry"}])
    store = _store(aws)
    restorer = TranscriptRestorer(store)
    path = transcript_path(str(tmp_path / "config"), "-work", KEY["session_id"])
    assert await restorer.restore("slot", KEY, path) is not None
    await store.append(KEY, [NEW])
    with path.open("ab") as cli:
        cli.write(json.dumps(NEW, separators=(", ", ": ")).encode() + b"\n")
    return store, restorer, path


def _stored_bytes(store: TranscriptStore) -> bytes:
    stored = store.known_stored(KEY)
    assert stored is not None
    return b"".join(stored.jsonl)


async def test_the_kept_file_becomes_the_stored_bytes_in_place(aws: Any, tmp_path: Path) -> None:
    store, restorer, path = await _a_turn_just_ended(aws, tmp_path)
    before = path.stat()
    assert path.read_bytes() != _stored_bytes(store)  # the CLI's spacing, not the store's

    assert restorer.remember("slot", KEY, path)

    assert path.read_bytes() == _stored_bytes(store)
    assert path.stat().st_ino == before.st_ino  # the matching history was not written again
    again = await restorer.restore("slot", KEY, path)  # next turn: the copy is current
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

    assert restorer.remember("slot", KEY, path)  # it still ends with the turn's last entry

    assert path.read_bytes() == _stored_bytes(store)
    assert path.stat().st_ino == inode  # undone where it lies
    again = await restorer.restore("slot", KEY, path)
    assert again is not None and again.local and not again.written


async def test_a_hard_link_to_the_kept_file_is_not_written_through(aws: Any, tmp_path: Path) -> None:
    store, restorer, path = await _a_turn_just_ended(aws, tmp_path)
    elsewhere = tmp_path / "elsewhere.jsonl"
    os.link(path, elsewhere)
    linked = elsewhere.read_bytes()

    assert restorer.remember("slot", KEY, path)

    assert path.read_bytes() == _stored_bytes(store)
    assert elsewhere.read_bytes() == linked  # a new file took the name; the link's is untouched
    assert path.stat().st_ino != elsewhere.stat().st_ino


async def test_a_kept_file_whose_mode_a_tool_changed_is_replaced(aws: Any, tmp_path: Path) -> None:
    store, restorer, path = await _a_turn_just_ended(aws, tmp_path)
    path.chmod(0o644)  # would let other users of the machine read the next turns
    inode = path.stat().st_ino

    assert restorer.remember("slot", KEY, path)

    assert path.read_bytes() == _stored_bytes(store)
    assert path.stat().st_ino != inode and path.stat().st_mode & 0o777 == 0o600


async def test_a_kept_file_grown_by_a_hole_is_not_read_to_its_end(aws: Any, tmp_path: Path) -> None:
    store, restorer, path = await _a_turn_just_ended(aws, tmp_path)
    with path.open("r+b") as tool:
        tool.truncate(path.stat().st_size + 64 * 2**30)  # 64 GiB more, none of it on disk

    assert not restorer.remember("slot", KEY, path)  # its last line is not the store's

    again = await restorer.restore("slot", KEY, path)  # the next turn writes it from the store
    assert again is not None and again.written
    assert path.read_bytes() == _stored_bytes(store)
