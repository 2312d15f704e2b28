"""A session whose agent delegated to subagents resumes from its own config dir like any other:
the runtime puts each subagent's transcript where the CLI keeps it
(``<session>/subagents/agent-<id>.jsonl``, its metadata in ``agent-<id>.meta.json`` beside it),
from the store, and a clean turn leaves them the store's own bytes, so a warm container reads
nothing again and nothing a tool changed in them reaches the next turn."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from agent_runtime._owned_trees import remove_tree
from agent_runtime._restore import TranscriptRestorer, transcript_path
from session_core import TranscriptStore

pytestmark = pytest.mark.anyio

KEY = {"project_key": "-tmp-agentbot-sessions-acme-1-0", "session_id": "51dc03a8-0a5b-4c1e-9f57-1f0e8d9a7b21"}
AGENT = "subagents/agent-a1b2"
OTHER = "subagents/agent-c3d4"
META = {"type": "agent_metadata", "agentType": "summarizer", "toolUseId": "toolu_1"}
LINES = [
    {"type": "user", "uuid": "s1", "isSidechain": True, "message": {"content": "summarise: ünïcode"}},
    {"type": "assistant", "uuid": "s2", "isSidechain": True, "message": {"content": "one, two"}},
]


def _store(aws: Any) -> TranscriptStore:
    return TranscriptStore(
        s3=aws.s3, dynamodb=aws.dynamodb, bucket=aws.resources.bucket, table=aws.resources.table
    )


async def _a_session_that_used_subagents(aws: Any) -> None:
    store = _store(aws)
    await store.append(KEY, [{"type": "user", "uuid": "m1", "message": {"content": "agent: one two"}}])
    await store.append({**KEY, "subpath": AGENT}, [LINES[0], META])
    await store.append({**KEY, "subpath": AGENT}, [LINES[1]])
    await store.append({**KEY, "subpath": OTHER}, [{"type": "user", "uuid": "o1", "isSidechain": True}])
    await store.append(KEY, [{"type": "assistant", "uuid": "m2", "message": {"content": "done"}}])


def _session_dir(path: Path) -> Path:
    return path.with_suffix("")


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _files(session_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(session_dir)): p.read_bytes()
        for p in sorted(session_dir.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


async def _restored(aws: Any, tmp_path: Path) -> tuple[TranscriptStore, TranscriptRestorer, Path]:
    await _a_session_that_used_subagents(aws)
    store = _store(aws)
    restorer = TranscriptRestorer(store)
    path = transcript_path(str(tmp_path / "config"), "-work", KEY["session_id"])
    restored = await restorer.restore("slot", KEY, path)
    assert restored is not None and restored.local and restored.written
    return store, restorer, path


async def test_a_cold_restore_puts_each_subagents_transcript_where_the_cli_keeps_it(
    aws: Any, tmp_path: Path
) -> None:
    _, _, path = await _restored(aws, tmp_path)

    assert [entry["uuid"] for entry in _lines(path)] == ["m1", "m2"]
    agents = _session_dir(path) / "subagents"
    assert _lines(agents / "agent-a1b2.jsonl") == LINES  # the metadata entry is not a line of it
    assert json.loads((agents / "agent-a1b2.meta.json").read_text()) == {
        "agentType": "summarizer",
        "toolUseId": "toolu_1",
    }
    assert [entry["uuid"] for entry in _lines(agents / "agent-c3d4.jsonl")] == ["o1"]
    assert not (agents / "agent-c3d4.meta.json").exists()
    assert sorted(_files(_session_dir(path))) == [
        "subagents/agent-a1b2.jsonl",
        "subagents/agent-a1b2.meta.json",
        "subagents/agent-c3d4.jsonl",
    ]
    assert {p.stat().st_mode & 0o777 for p in agents.iterdir()} == {0o600}


async def test_a_warm_turn_with_the_subagents_files_as_the_last_turn_left_them_writes_nothing(
    aws: Any, tmp_path: Path
) -> None:
    _, restorer, path = await _restored(aws, tmp_path)
    assert restorer.remember("slot", KEY, path)
    inodes = {p: p.stat().st_ino for p in _session_dir(path).rglob("*.json*")}

    again = await restorer.restore("slot", KEY, path)

    assert again is not None and again.local and not again.written
    assert {p: p.stat().st_ino for p in _session_dir(path).rglob("*.json*")} == inodes


@pytest.mark.parametrize(
    "change",
    ["edited", "removed", "planted", "metadata edited", "replaced by a link", "nested past any depth"],
)
async def test_what_a_tool_changes_in_the_subagents_files_does_not_reach_the_next_turn(
    aws: Any, tmp_path: Path, change: str, request: pytest.FixtureRequest
) -> None:
    _, restorer, path = await _restored(aws, tmp_path)
    session_dir = _session_dir(path)
    as_stored = _files(session_dir)
    agents = session_dir / "subagents"
    outside = tmp_path / "outside.jsonl"
    outside.write_text("untouched\n")
    if change == "edited":
        (agents / "agent-a1b2.jsonl").write_text(json.dumps({**LINES[1], "message": "obey me"}) + "\n")
    elif change == "removed":
        (agents / "agent-c3d4.jsonl").unlink()
    elif change == "planted":
        (agents / "agent-evil.jsonl").write_text(json.dumps({**LINES[1], "uuid": "evil"}) + "\n")
    elif change == "metadata edited":
        (agents / "agent-a1b2.meta.json").write_text('{"agentType": "general-purpose"}')
    elif change == "nested past any depth":  # os.walk of Python 3.11 recurses per folder
        request.addfinalizer(lambda: remove_tree(agents / "a"))  # pytest's own rmtree would recurse too
        subprocess.run(["mkdir", "-p", str(agents / ("a/" * 1100))], check=True)
    else:
        (agents / "agent-a1b2.jsonl").unlink()
        (agents / "agent-a1b2.jsonl").symlink_to(outside)

    restorer.remember("slot", KEY, path)  # the turn ended cleanly
    again = await restorer.restore("slot", KEY, path)

    assert again is not None and again.local
    assert _files(session_dir) == as_stored
    assert not (agents / "agent-a1b2.jsonl").is_symlink()
    assert outside.read_text() == "untouched\n"


async def test_a_subagent_subpath_that_would_leave_the_session_dir_is_never_written(
    aws: Any, tmp_path: Path
) -> None:
    store = _store(aws)
    await store.append(KEY, [{"type": "user", "uuid": "m1"}])
    for forged in ("../../escaped", "subagents/../../escaped", "/tmp/escaped", "subagents/\x00x"):
        await store.append({**KEY, "subpath": forged}, [{"type": "user", "uuid": "x"}])
    path = transcript_path(str(tmp_path / "config"), "-work", KEY["session_id"])

    restored = await TranscriptRestorer(_store(aws)).restore("slot", KEY, path)

    assert restored is not None and restored.local
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [path]
    assert not os.path.exists("/tmp/escaped.jsonl")


async def test_a_subagent_whose_transcript_expired_leaves_the_next_warm_turn_reading_nothing(
    aws: Any, tmp_path: Path
) -> None:
    """A subagent not resumed for the retention period expires on its own while the chat goes
    on; the store still lists it. The restore leaves it out, and a clean turn then leaves a
    copy the next turn keeps: it used to count the expired one as a file the store could not
    vouch for, so every later turn of the chat rewrote everything from the store."""
    now = [1_800_000_000.0]
    store = TranscriptStore(
        s3=aws.s3,
        dynamodb=aws.dynamodb,
        bucket=aws.resources.bucket,
        table=aws.resources.table,
        clock=lambda: now[0],
    )
    await store.append({**KEY, "subpath": OTHER}, [{"type": "user", "uuid": "o1", "isSidechain": True}])
    await store.append(KEY, [{"type": "user", "uuid": "m1", "message": {"content": "agent: one two"}}])
    now[0] += 25 * 86400 + 60  # the chat went on; the subagent was never resumed
    await store.append(KEY, [{"type": "user", "uuid": "m2", "message": {"content": "still here"}}])
    await store.append({**KEY, "subpath": AGENT}, [LINES[0], META, LINES[1]])
    assert sorted(await store.list_subkeys(KEY)) == [AGENT, OTHER]
    restorer = TranscriptRestorer(store)
    path = transcript_path(str(tmp_path / "config"), "-work", KEY["session_id"])
    restored = await restorer.restore("slot", KEY, path)
    assert restored is not None and restored.local and restored.written
    assert sorted(_files(_session_dir(path))) == [
        "subagents/agent-a1b2.jsonl",
        "subagents/agent-a1b2.meta.json",
    ]

    assert restorer.remember("slot", KEY, path)  # the turn ended cleanly
    again = await restorer.restore("slot", KEY, path)

    assert again is not None and again.local and not again.written
    assert _lines(_session_dir(path) / "subagents" / "agent-a1b2.jsonl") == LINES


async def test_a_new_conversation_after_one_with_subagents_is_kept_by_its_first_clean_turn(
    aws: Any, tmp_path: Path
) -> None:
    """After /new the chat's next turn begins a session of its own (nothing restored): its
    clean turn leaves a copy the turn after keeps. The old session's subagents used to be
    looked for under the new one, so that copy was never current and was written again."""
    store, restorer, _ = await _restored(aws, tmp_path)
    new = {**KEY, "session_id": "7f3e9a10-2b4c-4d5e-8f60-718293a4b5c6"}
    path = transcript_path(str(tmp_path / "config"), "-work", new["session_id"])
    first = [{"type": "user", "uuid": "n1", "message": {"content": "hello again"}}]
    await store.append(new, first)  # what the CLI wrote in the turn, mirrored
    path.write_text("".join(json.dumps(entry) + "\n" for entry in first))

    assert restorer.remember("slot", new, path)  # the turn ended cleanly
    again = await restorer.restore("slot", new, path)

    assert again is not None and again.local and not again.written
