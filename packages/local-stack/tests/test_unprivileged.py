"""Opening the sessions root to the agent's user never follows what that user put inside it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from local_stack import make_directory_reachable, prepare_for_agent_user, unreadable_for


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands a directory to another user")
def test_a_link_the_agent_plants_in_its_sessions_root_opens_nothing_of_roots(tmp_path: Path) -> None:
    """The agent owns the sessions root: a link there to a private directory of root's must not
    make that directory (or those above it) passable at the next start."""
    private = tmp_path / "private" / "inner"
    private.mkdir(parents=True)
    (tmp_path / "private").chmod(0o700)
    private.chmod(0o700)
    sessions = tmp_path / "work"
    prepare_for_agent_user("nobody", writable=sessions)
    (sessions / "x").symlink_to(private)  # what the agent can do: it owns `work`

    opened = prepare_for_agent_user("nobody", writable=sessions)

    for directory in (tmp_path / "private", private):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, opened
    assert stat.S_IMODE(sessions.stat().st_mode) & stat.S_IXOTH  # its own root is passable


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can try reading as another user")
def test_a_link_that_leads_nowhere_is_not_taken_for_a_file_the_agent_cannot_read(tmp_path: Path) -> None:
    """The config loader names a link that leads nowhere itself; "cannot read it, chmod o+r"
    beside that would send the operator after permissions that are fine."""
    root = tmp_path / "claude-config"
    (root / "skills" / "notes").mkdir(parents=True)
    (root / "skills" / "notes" / "SKILL.md").write_text("---\nname: notes\n---\n")
    (root / "skills" / "notes" / "extra.md").symlink_to(tmp_path / "gone.md")
    for path in (root, root / "skills", root / "skills" / "notes"):
        path.chmod(0o755)
    (root / "skills" / "notes" / "SKILL.md").chmod(0o644)
    make_directory_reachable(root)

    assert unreadable_for("nobody", root) is None

    private = root / "skills" / "notes" / "private.md"
    private.write_text("x")
    private.chmod(0o600)
    assert unreadable_for("nobody", root) == str(private)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can try reading as another user")
def test_a_link_out_of_the_config_is_not_walked(tmp_path: Path) -> None:
    """The loader refuses a link out of claude-config; walking it (a link to /) would read the
    machine as the agent's user and name some private file there, after the wrong problem."""
    root = tmp_path / "claude-config"
    root.mkdir()
    root.chmod(0o755)
    outside = tmp_path / "private"
    outside.mkdir(mode=0o700)
    (outside / "key").write_text("x")
    (root / "mcp").symlink_to(outside)
    make_directory_reachable(root)

    assert unreadable_for("nobody", root) is None
