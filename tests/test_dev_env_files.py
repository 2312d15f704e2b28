"""`agentbot dev` started as root takes other users' read away from the checkout's `.env` (the
README has the token and the key copied into one): the agent runs as `nobody`."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agentbot.dev import _keep_env_files_private

# The developer who ran `sudo agentbot dev` in their own checkout: not root, no process of theirs runs here.
_DEVELOPER_UID = 54_322


@pytest.mark.skipif(os.geteuid() != 0, reason="dev takes the read away only when started as root")
def test_a_checkouts_env_readable_by_all_is_made_private_whoever_owns_it(tmp_path: Path) -> None:
    mine, theirs, example = tmp_path / ".env", tmp_path / ".env.local", tmp_path / ".env.example"
    for path in (mine, theirs, example):
        path.write_text("TELEGRAM_BOT_TOKEN=1:not-a-real-token\n")
        path.chmod(0o644)
    os.chown(theirs, _DEVELOPER_UID, _DEVELOPER_UID)  # sudo from the developer's own checkout

    changed = _keep_env_files_private([tmp_path])

    assert changed == [str(mine), str(theirs)]
    assert stat.S_IMODE(mine.stat().st_mode) == stat.S_IMODE(theirs.stat().st_mode) == 0o640
    assert stat.S_IMODE(example.stat().st_mode) == 0o644  # no secret in it: left as it is
    assert theirs.stat().st_uid == _DEVELOPER_UID  # still the developer's
