"""A turn cut while its tool had not yet made ``outbox/``: the runtime looks at the outbox
(there is none), then kills the turn's processes. A tool that makes the outbox and half
writes a file in between must not have that file sent half-written."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from agent_runtime._outbox import stage_outbox
from agent_runtime._outbox_at_end import look_at_outbox
from agent_runtime._workspace import workspace_paths
from session_core import SessionKey


def test_a_file_in_an_outbox_made_after_the_turns_end_was_looked_at_is_named_unfinished(
    aws, tmp_path: Path
) -> None:
    key = SessionKey.parse("default/3002/0")
    workspace = workspace_paths(tmp_path, key)
    os.makedirs(workspace.cwd)
    at_end = look_at_outbox(workspace, pids=[])  # the turn ends: no outbox yet
    # Its tool, not yet killed: `mkdir -p outbox && python3 -c "...write('half')..."`
    os.makedirs(os.path.join(workspace.cwd, "outbox"))
    Path(workspace.cwd, "outbox", "draft.txt").write_bytes(b"half of it")

    sent, not_sent, _ = asyncio.run(stage_outbox(aws.s3, aws.resources.bucket, key, 1, workspace, at_end))
    assert [f.file_name for f in sent] == []
    assert [(f.file_name, f.reason) for f in not_sent] == [("draft.txt", "unfinished")]
