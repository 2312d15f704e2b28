"""What a turn's tools or a crashed turn left in the system temp dir, or in any other directory
every user may write, outside any session: deleted before the next chat's turn (see
``_workspace``), so the next chat's tools cannot read it and ``/tmp`` stays bounded."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ._owned_trees import remove_tree

_STALE_SDK_COPY_S = 20 * 60  # longer than any Lambda invocation
# Besides the system temp dir, where any user may write on a Linux machine: none of them is
# writable in Lambda; on the machine of `agentbot dev` a tool without Landlock may use them all.
_OTHER_SHARED_TEMP_DIRS = ("/var/tmp", "/dev/shm", "/run/lock")


def shared_temp_dirs() -> list[Path]:
    """The system temp dir and the other directories every user may write, those that exist."""
    found = [Path(os.path.realpath(tempfile.gettempdir()))]
    for directory in map(Path, _OTHER_SHARED_TEMP_DIRS):
        with contextlib.suppress(OSError):
            if directory.is_dir() and not directory.is_symlink() and directory.resolve() not in found:
                found.append(directory.resolve())
    return found


def remove_stale_sdk_copies(*, older_than_s: float = _STALE_SDK_COPY_S) -> None:
    """Delete transcript copies the SDK materialized for resumes (``claude-resume-*``) and
    did not clean up (a crashed turn). The SDK removes its own copy after every turn."""
    now = time.time()
    for leftover in Path(tempfile.gettempdir()).glob("claude-resume-*"):
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > older_than_s:
                remove_tree(leftover)


def remove_strays_in_temp(*, keep: Path, uid: int | None = None) -> None:
    """Delete everything of this uid (``uid``: this process's) in the system temp dir but
    ``keep`` (the sessions root), for a runtime that has the environment to itself (Lambda,
    where nothing else of its uid survives the sweep): on a kernel without Landlock a tool may
    write anywhere its uid can, and in Lambda that is ``/tmp``. The next chat's tools must not
    find what it left there, nor the disk stay full. The SDK's resume copies of crashed turns
    go with the rest. A link a tool put at ``keep`` is not followed: what it points to goes
    (it may be what the tool left for the runtime, e.g. HOME's ``.aws``), the link stays for
    the turn to replace."""
    kept = Path(os.path.realpath(keep.parent)) / keep.name
    uid = os.getuid() if uid is None else uid
    if uid == 0:  # root's temp files are the machine's (never so in Lambda): the SDK's only
        remove_stale_sdk_copies(older_than_s=0)
        return
    for temp in shared_temp_dirs():
        _remove_all_of(uid, temp, but=kept)


def remove_strays_before_the_first_invoke(scope: str, sessions_root: str) -> None:
    """In Lambda (``scope`` "uid"), while the runtime starts and before it builds its clients,
    what an earlier runtime's turns left in ``/tmp`` goes, but ``sessions_root``: the image sets
    the runtime's HOME to ``/tmp``, boto3 reads its configuration and service models from
    ``~/.aws`` when a client is made, and a tool without Landlock may have written there before
    that runtime ended (a crash, a timeout, a kill by a thread's tid), which leaves ``/tmp`` as
    it was. Never as root."""
    if scope == "uid" and os.getuid() != 0:
        remove_strays_in_temp(keep=Path(sessions_root))


@contextlib.contextmanager
def strays_of_the_turn_removed(
    *, keep: Path, uid: int | None = None, login_uid: int | None = None
) -> Iterator[None]:
    """For a runtime that does not run alone (`agentbot dev`, whose agent's user is the
    machine's ``nobody``): what this uid newly put at the top of a shared temp dir while the
    block ran (a turn: its processes are gone when it ends) is deleted when it ends, but
    ``keep`` (the sessions root) and the directories on the way to it. What was there before
    stays: it may be another program's of that user. Nothing goes when ``uid`` (this
    process's) is the one its user logged in as (``login_uid``: the kernel's audit login uid,
    kept across sudo and su): `agentbot dev` started by a developer as themselves runs the
    agent as them, and their own programs make temp files during the turn too."""
    uid = os.getuid() if uid is None else uid
    login_uid = _login_uid() if login_uid is None else login_uid
    if uid in (0, login_uid):  # root's temp files are the machine's; a login's, its person's
        yield
        return
    kept = Path(os.path.realpath(keep))
    before = {directory: _entries_of(uid, directory) for directory in shared_temp_dirs()}
    try:
        yield
    finally:
        for directory, seen in before.items():
            for name, inode in _entries_of(uid, directory) - seen:
                entry = directory / name
                with contextlib.suppress(OSError):
                    if entry.lstat().st_ino == inode and not kept.is_relative_to(entry):
                        remove_tree(entry)  # a link goes itself, never what it points to


def _login_uid() -> int | None:
    """The uid this process's login session began as (None: no login, e.g. a service)."""
    try:
        with open("/proc/self/loginuid") as recorded:
            login = int(recorded.read())
    except (OSError, ValueError):
        return None
    return None if login == 0xFFFFFFFF else login  # (uid_t)-1: not set


def _entries_of(uid: int, directory: Path) -> set[tuple[str, int]]:
    """(name, inode) of each entry of ``uid`` directly in ``directory``."""
    found = set()
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                info = entry.stat(follow_symlinks=False)
                if info.st_uid == uid:
                    found.add((entry.name, info.st_ino))
    return found


def _remove_all_of(uid: int, directory: Path, *, but: Path) -> None:
    """Delete every entry of ``uid`` in ``directory`` but ``but``; a directory on the way to it
    (a SESSIONS_ROOT deeper in the temp dir) is entered, and what lies beside the path goes."""
    for entry in list(directory.iterdir()):
        with contextlib.suppress(OSError):
            if entry.lstat().st_uid != uid or entry == but:
                continue
            if but.is_relative_to(entry) and not entry.is_symlink():
                _remove_all_of(uid, entry, but=but)
                continue
            remove_tree(entry)  # a link goes itself, never what it points to
