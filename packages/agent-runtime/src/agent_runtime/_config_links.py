"""The links in claude-config that the runtime cannot follow safely, named at start.

A link that leads nowhere (one out of claude-config on the operator's machine is not in the
image, which holds claude-config alone) loads fine and then fails every turn that reads it. A
link whose target is outside claude-config reads whatever the runtime's image holds there, and
skills are copied for each turn, links followed, where the agent's tools read them: a link to
``/proc/self/environ`` would hand them the runtime's environment, its AWS credentials among it.
Links from one part of claude-config to another stay allowed.

Hidden names are skipped as everything else that reads claude-config skips them (`agentbot
doctor`'s check of what the agent's user can read), except inside ``skills/``, whose copy takes
every file.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._errors import ClaudeConfigError

_COPIED_WHOLE = "skills"


def link_problems(root: Path) -> list[ClaudeConfigError]:
    """Every link under ``root`` that leads nowhere or out of ``root``, each named with where it
    points; the directories its links lead to inside ``root`` are walked once."""
    inside = root.resolve()
    problems: list[ClaudeConfigError] = []
    # A directory is walked once as part of the skills and once as not (where hidden names are skipped).
    walked = {(inside, False)}
    pending = [(root, False)]
    while pending:
        directory, copied_whole = pending.pop()
        try:
            entries = sorted(directory.iterdir())
        except OSError as exc:
            problems.append(ClaudeConfigError(str(directory), None, f"cannot be read: {exc}"))
            continue
        for path in entries:
            if path.name.startswith(".") and not copied_whole:
                continue
            if path.is_symlink() and (problem := _link_problem(path, inside)):
                problems.append(problem)
                continue
            walk = (path.resolve(), copied_whole or path == root / _COPIED_WHOLE)
            if path.is_dir() and walk not in walked:
                walked.add(walk)
                pending.append((path, walk[1]))
    return sorted(problems, key=lambda problem: problem.file)


def _link_problem(link: Path, inside: Path) -> ClaudeConfigError | None:
    target = os.readlink(link)
    if not link.exists():  # its target is missing, or it is a loop of links
        return ClaudeConfigError(
            str(link),
            None,
            f"is a link to {target!r}, which does not exist: put the file itself in claude-config "
            "(a link out of claude-config leads nowhere in the runtime's image)",
        )
    if not link.resolve().is_relative_to(inside):
        return ClaudeConfigError(
            str(link),
            None,
            f"is a link to {target!r}, outside claude-config: the agent's tools could read what the "
            "runtime's image holds there; put the file itself in claude-config",
        )
    return None
