"""The transcript store passes the Claude Agent SDK's own SessionStore suite, every contract,
and works with the SDK's store helpers (import replay, listing, subagent reads)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import (
    fold_session_summary,
    get_session_messages_from_store,
    get_subagent_messages_from_store,
    import_session_to_store,
    list_sessions_from_store,
    project_key_for_directory,
)
from claude_agent_sdk.testing import run_session_store_conformance
from local_stack import ResourceNames, provision
from session_core import TranscriptStore

pytestmark = pytest.mark.anyio


async def test_transcript_store_passes_the_sdk_conformance_suite(aws: Any) -> None:
    def make_store() -> TranscriptStore:
        # Each contract gets its own freshly provisioned table and bucket.
        resources = provision(
            dynamodb=aws.dynamodb,
            s3=aws.s3,
            sqs=aws.sqs,
            names=ResourceNames(prefix=f"c{uuid.uuid4().hex[:12]}"),
        )
        return TranscriptStore(
            s3=aws.s3,
            dynamodb=aws.dynamodb,
            bucket=resources.bucket,
            table=resources.table,
            fold_summary=fold_session_summary,
        )

    await run_session_store_conformance(make_store, skip_optional=frozenset())


def _write_jsonl(path: Path, entries: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))


async def test_the_sdk_can_replay_a_local_transcript_twice_without_duplicates(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir, cwd = tmp_path / "claude", tmp_path / "work"
    cwd.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config_dir))
    project_key = project_key_for_directory(str(cwd))
    session_id = str(uuid.uuid4())
    parent = None
    main: list[dict[str, Any]] = []
    for n in range(6):
        entry_uuid = str(uuid.uuid4())
        kind = "user" if n % 2 == 0 else "assistant"
        content = f"prompt {n}" if kind == "user" else [{"type": "text", "text": f"answer {n}"}]
        main.append(
            {
                "type": kind,
                "uuid": entry_uuid,
                "parentUuid": parent,
                "sessionId": session_id,
                "cwd": str(cwd),
                "timestamp": f"2026-01-01T00:00:0{n}.000Z",
                "message": {"role": kind, "content": content},
            }
        )
        parent = entry_uuid
    sub = [{**main[0], "uuid": str(uuid.uuid4()), "isSidechain": True, "agentId": "abc"}]
    project_dir = config_dir / "projects" / project_key
    _write_jsonl(project_dir / f"{session_id}.jsonl", main)
    _write_jsonl(project_dir / session_id / "subagents" / "agent-abc.jsonl", sub)

    store = TranscriptStore(
        s3=aws.s3,
        dynamodb=aws.dynamodb,
        bucket=aws.resources.bucket,
        table=aws.resources.table,
        fold_summary=fold_session_summary,
    )
    # After a MirrorErrorMessage the runtime re-imports; a second replay must change nothing.
    await import_session_to_store(session_id, store, directory=str(cwd))
    await import_session_to_store(session_id, store, directory=str(cwd))

    key = {"project_key": project_key, "session_id": session_id}
    assert await store.load(key) == main
    assert await store.list_subkeys(key) == ["subagents/agent-abc"]
    assert await store.load({**key, "subpath": "subagents/agent-abc"}) == sub

    messages = await get_session_messages_from_store(store, session_id, directory=str(cwd))
    assert [m.uuid for m in messages] == [e["uuid"] for e in main]
    sub_messages = await get_subagent_messages_from_store(store, session_id, "abc", directory=str(cwd))
    assert [m.uuid for m in sub_messages] == [sub[0]["uuid"]]
    [info] = await list_sessions_from_store(store, directory=str(cwd))
    assert info.session_id == session_id and info.first_prompt == "prompt 0"
