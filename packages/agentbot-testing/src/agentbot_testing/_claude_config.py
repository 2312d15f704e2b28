"""The repository's claude-config for tests, as shipped or without its approval rules.

The shipped example asks the user before Bash, Write and Edit calls ([I]); tests of other
things (the sandbox, live progress, secrets) run tools without a user to press Allow, so they
use a copy without ``approvals.json``."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO_CLAUDE_CONFIG = Path(__file__).resolve().parents[4] / "claude-config"


def claude_config_without_approvals(directory: Path) -> Path:
    """A copy of the repository's claude-config under ``directory`` in which no tool asks."""
    copy = directory / "claude-config"
    if not copy.exists():
        shutil.copytree(
            REPO_CLAUDE_CONFIG, copy, ignore=shutil.ignore_patterns("approvals.json", "__pycache__")
        )
    return copy
