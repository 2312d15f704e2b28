"""Which of the outbox's files were finished when the turn's processes were stopped.

A turn can end while a tool is still writing a file into ``outbox/`` (the user pressed Stop, the
time ran out, the agent's process died). Once the sweep has killed the CLI and its tools every
file is as final as it will get, and a half-written file looks like a short one: so the runtime
looks at the outbox at the instant the turn ends, while those processes still run, and notes
each file's identity (inode, size, modification time) and which files a process of the turn
holds open for writing (its ``/proc/<pid>/fd``). A file that was open for writing then, that
changed after that look, or that appeared after it, was unfinished: it is named, not sent.

Best effort against honest tools (a hostile one controls its files' content anyway): a process
whose descriptors this user may not read (a non-dumpable one, e.g. a CLI whose program the user
may not read, whose own Write tool writes a file in one go) shows no file open.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from session_core import get_logger

from ._outbox import entry_names
from ._workspace import OUTBOX, SessionWorkspace

log = get_logger(__name__)

_WRITE_MODES = (os.O_WRONLY, os.O_RDWR)


@dataclass(frozen=True)
class OutboxAtEnd:
    """The outbox's regular files at the turn's end: (inode, size, mtime in ns) by name, and the
    inodes a process of the turn then held open for writing."""

    files: dict[str, tuple[int, int, int]]
    being_written: frozenset[int]

    @property
    def any_finished(self) -> bool:
        """Whether a file was there and closed at the turn's end (one to send, unless it changed)."""
        return any(ino not in self.being_written for ino, _, _ in self.files.values())

    def finished(self, name: str, info: os.stat_result) -> bool:
        """Whether the file ``name`` (``info``, its fstat now) was finished at the turn's end:
        there then, closed, and unchanged since."""
        if info.st_ino in self.being_written:
            return False
        return self.files.get(name) == (info.st_ino, info.st_size, info.st_mtime_ns)


def look_at_outbox(workspace: SessionWorkspace, pids: Iterable[int]) -> OutboxAtEnd | None:
    """The outbox as the turn ends, before its processes (``pids``) are killed: empty when there
    is no outbox yet; None when it cannot be looked at (then files are sent as they are)."""
    try:
        outbox = os.open(
            os.path.join(workspace.cwd, OUTBOX), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        )
    except FileNotFoundError:
        # A tool not yet killed may still make it and half write a file there: anything in it
        # later was not there at the end, so it is named unfinished, never sent half-written.
        return OutboxAtEnd(files={}, being_written=frozenset())
    except OSError:
        return None
    try:
        files: dict[str, tuple[int, int, int]] = {}
        for name in entry_names(outbox):  # the ones staging looks at
            with contextlib.suppress(OSError):
                info = os.stat(name, dir_fd=outbox, follow_symlinks=False)
                if stat.S_ISREG(info.st_mode):
                    files[name] = (info.st_ino, info.st_size, info.st_mtime_ns)
        device = os.fstat(outbox).st_dev
    except OSError as exc:
        log.warning("turn.outbox_look_failed", error_type=type(exc).__name__)
        return None
    finally:
        os.close(outbox)
    inodes = {identity[0] for identity in files.values()}
    being_written = frozenset(_open_for_writing(pids, device, inodes)) if inodes else frozenset()
    if being_written:
        log.info("turn.outbox_files_unfinished", count=len(being_written))
    return OutboxAtEnd(files=files, being_written=being_written)


def _open_for_writing(pids: Iterable[int], device: int, inodes: set[int]) -> set[int]:
    """Which of ``inodes`` (on ``device``) a process of ``pids`` holds open for writing."""
    found: set[int] = set()
    for pid in pids:
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # gone, or not ours to read
            continue
        for fd in descriptors:
            try:
                target = os.stat(f"/proc/{pid}/fd/{fd}")
                if target.st_dev != device or target.st_ino not in inodes:
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    flags = next(int(line.split()[1], 8) for line in info if line.startswith("flags:"))
            except (OSError, StopIteration, ValueError, IndexError):
                continue
            if (flags & os.O_ACCMODE) in _WRITE_MODES:
                found.add(target.st_ino)
    return found
