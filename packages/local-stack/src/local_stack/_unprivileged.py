"""The agent's runtime as an unprivileged user when the local stack is started as root.

In Lambda every process runs as one non-root uid. Locally, as root, the runtime worker (and so
the CLI and every tool) runs as ``nobody`` instead: it cannot read root's processes (the bot
token, the model key, the webhook secret) nor write anything root owns.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

AGENT_USER = "nobody"


def agent_user() -> str | None:
    """The user to run the agent runtime as: ``nobody`` when we are root, else None (ourselves)."""
    return AGENT_USER if os.geteuid() == 0 else None


def make_reachable(path: str | os.PathLike[str]) -> list[str]:
    """Let every user pass through (``o+x``, not list) each directory above ``path``, so the
    unprivileged user can run the interpreter and read the code beneath (a pyenv Python under
    ``/root`` for example). Returns the directories changed."""
    return _open_for_passing(reversed(Path(os.path.realpath(path)).parents))


def _open_for_passing(directories: Iterable[Path]) -> list[str]:
    changed = []
    for directory in directories:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
            changed.append(str(directory))
    return changed


def make_directory_reachable(directory: str | os.PathLike[str]) -> list[str]:
    """``make_reachable`` for ``directory`` itself and each one above it. Never through a name
    inside it: the agent's user may have put a link there (to open a path of root's)."""
    real = Path(os.path.realpath(directory))
    return _open_for_passing([*reversed(real.parents), real])


def make_run_only(program: str | os.PathLike[str]) -> None:
    """Let users other than the owner run ``program`` but not read it (``go-r``, keeping
    ``x``), as the runtime image installs the Claude Code CLI: the kernel starts a program its
    user may not read non-dumpable, so the agent's tools, running as that same user, cannot
    open its ``/proc/<pid>/fd`` (its pipes to the runtime), environment or memory. Only a file
    this process owns is changed (root, running `agentbot dev` or the tests, owns the venv)."""
    real = os.path.realpath(program)
    info = os.stat(real)
    if info.st_uid == os.geteuid() and info.st_mode & (stat.S_IRGRP | stat.S_IROTH):
        os.chmod(real, stat.S_IMODE(info.st_mode) & ~(stat.S_IRGRP | stat.S_IROTH))


def make_interpreter_reachable(python: str = sys.executable) -> list[str]:
    """``make_reachable`` for the interpreter, through its link and to its real file."""
    return [*make_reachable(python), *make_reachable(os.path.realpath(python))]


# Run as the user: list every directory and open every file under argv[1] (following links
# that stay inside it, skipping hidden names the loader never reads, and links that lead nowhere
# or out of it: the loader refuses those itself); print the first path that fails.
_READ_ALL = """
import os, sys
root = os.path.realpath(sys.argv[1])
seen = set()
def visit(path):
    if os.path.islink(path) and os.path.commonpath([root, os.path.realpath(path)]) != root:
        return
    if os.path.isdir(path):
        real = os.path.realpath(path)
        if real in seen:
            return
        seen.add(real)
        for name in sorted(os.listdir(path)):
            if not name.startswith("."):
                visit(os.path.join(path, name))
        return
    try:
        open(path, "rb").close()
    except FileNotFoundError:
        if not os.path.islink(path):
            raise
try:
    visit(sys.argv[1])
except OSError as exc:
    print(exc.filename or sys.argv[1])
    sys.exit(1)
"""


def unreadable_for(user: str, root: Path) -> str | None:
    """The first directory or file at or under ``root`` that ``user`` cannot read, found by
    trying as ``user`` with the groups the local Lambda gives it (so links, ACLs and modes are
    judged by the kernel, not guessed); None when all can be read."""
    done = _run_as(user, _READ_ALL, str(root))
    if done.returncode == 0:
        return None
    return done.stdout.strip() or f"{root} ({done.stderr.strip().splitlines()[-1:]})"


def which_for(user: str) -> Callable[[str, str], str | None]:
    """``shutil.which(command, path=search)`` asked as ``user`` (with the groups the local
    Lambda gives it): where it would find a program it may run, None where it would not."""
    pwd.getpwnam(user)  # an unknown user fails here, not at the first lookup

    def which(command: str, search: str) -> str | None:
        done = _run_as(user, _WHICH, command, search)
        return done.stdout.strip() if done.returncode == 0 else None

    return which


def _run_as(user: str, snippet: str, *args: str) -> subprocess.CompletedProcess[str]:
    """This interpreter running ``snippet`` (isolated mode) as ``user``, its output captured.
    With no environment: the caller's holds the operator's secrets, and a process of ``user``
    is readable (/proc/<pid>/environ) by that user's others, the agent's tools among them."""
    record = pwd.getpwnam(user)
    return subprocess.run(
        [sys.executable, "-I", "-c", snippet, *args],
        user=record.pw_uid,
        group=record.pw_gid,
        extra_groups=[],
        env={},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


_WHICH = """
import shutil, sys
found = shutil.which(sys.argv[1], path=sys.argv[2])
print(found or "")
sys.exit(0 if found else 1)
"""


def prepare_for_agent_user(
    user: str, *, writable: Path, python: str = sys.executable, run_only: Iterable[str] = ()
) -> list[str]:
    """Everything the runtime needs to run as ``user``: the interpreter (and the venv) reachable,
    ``writable`` (its sessions root) owned by it, each of ``run_only`` (the Claude Code CLI)
    made runnable but not readable by it (``make_run_only``). Returns the directories opened
    for passing."""
    for program in run_only:
        make_run_only(program)
    changed = make_interpreter_reachable(python)
    record = pwd.getpwnam(user)
    writable.mkdir(parents=True, exist_ok=True)
    changed += make_directory_reachable(writable)
    for root, dirs, files in os.walk(writable):
        for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.lchown(name, record.pw_uid, record.pw_gid)
    return sorted(set(changed))
