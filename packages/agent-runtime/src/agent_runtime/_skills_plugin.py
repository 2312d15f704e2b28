"""claude-config's skills as a local plugin of the CLI, kept outside every directory a tool may
write.

The CLI reads no settings file (``setting_sources=[]``: the cwd's ``.claude/`` is writable by
tools, and the CLI would run the hooks a tool writes there mid-turn), and without them it finds
no project skills. A plugin directory (``--plugin-dir``) still gives it the skills; the
session's ``.claude/skills/`` keeps a copy for the scripts the skills run by relative path.
Written anew before every turn, so nothing a tool changed there (where a kernel without
Landlock lets it) carries over to a later turn.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ._claude_config import ClaudeConfig
from ._owned_trees import reclaim_rights, remove_tree

PLUGIN_NAME = "agentbot"


def install_skills_plugin(directory: Path, config: ClaudeConfig) -> str:
    """Write ``config``'s skills as the plugin at ``directory``; returns its path."""
    staging = directory.with_name(f".{directory.name}.{os.getpid()}.new")
    replaced = directory.with_name(f".{directory.name}.{os.getpid()}.old")
    directory.parent.mkdir(parents=True, exist_ok=True)
    reclaim_rights(directory.parent)  # a tool's chmod (Landlock does not cover it)
    for leftover in (staging, replaced):
        remove_tree(leftover)
    (staging / ".claude-plugin").mkdir(parents=True)
    manifest = {"name": PLUGIN_NAME, "description": "The skills of claude-config/skills"}
    (staging / ".claude-plugin" / "plugin.json").write_text(json.dumps(manifest))
    for skill in config.skills:
        shutil.copytree(skill.directory, staging / "skills" / skill.name)
    if directory.is_symlink() or directory.is_file():
        directory.unlink()
    elif directory.exists():
        directory.rename(replaced)
    staging.rename(directory)
    remove_tree(replaced)
    return str(directory)
