"""The agent's runtime as an unprivileged user when the local stack is started as root.

In Lambda every process runs as one non-root uid. Locally, as root, the runtime worker (and so
the CLI and every tool) runs as ``nobody`` instead: it cannot read root's processes (the bot
token, the model key, the webhook secret) nor write anything root owns.
"""

from __future__ import annotations

import os
import pwd
import stat
import sys
from pathlib import Path

AGENT_USER = "nobody"


def agent_user() -> str | None:
    """The user to run the agent runtime as: ``nobody`` when we are root, else None (ourselves)."""
    return AGENT_USER if os.geteuid() == 0 else None


def make_reachable(path: str | os.PathLike[str]) -> list[str]:
    """Let every user pass through (``o+x``, not list) each directory above ``path``, so the
    unprivileged user can run the interpreter and read the code beneath (a pyenv Python under
    ``/root`` for example). Returns the directories changed."""
    changed = []
    for directory in reversed(Path(os.path.realpath(path)).parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
            changed.append(str(directory))
    return changed


def unreadable_for(user: str, root: Path) -> Path | None:
    """The first directory or file at or under ``root`` that ``user`` cannot read (a directory
    must also be enterable), judged by its owner, group and mode bits as the kernel would;
    None when all can be read. (``os.access`` answers for root, not for ``user``.)"""
    import grp

    record = pwd.getpwnam(user)
    groups = {record.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}

    def readable(path: Path) -> bool:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            info = path.stat()
        need = 0o5 if stat.S_ISDIR(info.st_mode) else 0o4
        if info.st_uid == record.pw_uid:
            bits = info.st_mode >> 6
        elif info.st_gid in groups:
            bits = info.st_mode >> 3
        else:
            bits = info.st_mode
        return bits & need == need

    for directory, dirs, files in os.walk(root):
        for path in (Path(directory), *(Path(directory, name) for name in files)):
            if not readable(path):
                return path
        dirs.sort()
    return None


def prepare_for_agent_user(user: str, *, writable: Path, python: str = sys.executable) -> list[str]:
    """Everything the runtime needs to run as ``user``: the interpreter (and the venv) reachable,
    ``writable`` (its sessions root) owned by it. Returns the directories opened for passing."""
    changed = [*make_reachable(python), *make_reachable(os.path.realpath(python))]
    record = pwd.getpwnam(user)
    writable.mkdir(parents=True, exist_ok=True)
    changed += make_reachable(writable / "x")
    for root, dirs, files in os.walk(writable):
        for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.lchown(name, record.pw_uid, record.pw_gid)
    return sorted(set(changed))
