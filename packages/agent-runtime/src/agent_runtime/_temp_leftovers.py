"""What a turn's tools or a crashed turn left in the system temp dir, outside any session:
deleted before the next turn (see ``_workspace``), so the next chat's tools cannot read it and
``/tmp`` stays bounded."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

from ._owned_trees import remove_tree

_STALE_SDK_COPY_S = 20 * 60  # longer than any Lambda invocation


def remove_stale_sdk_copies(*, older_than_s: float = _STALE_SDK_COPY_S) -> None:
    """Delete transcript copies the SDK materialized for resumes (``claude-resume-*``) and
    did not clean up (a crashed turn). The SDK removes its own copy after every turn."""
    now = time.time()
    for leftover in Path(tempfile.gettempdir()).glob("claude-resume-*"):
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > older_than_s:
                remove_tree(leftover)


def remove_strays_in_temp(*, keep: Path) -> None:
    """Delete everything of this uid in the system temp dir but ``keep`` (the sessions root),
    for a runtime that has the environment to itself (Lambda, where nothing else of its uid
    survives the sweep): on a kernel without Landlock a tool may write anywhere its uid can,
    and in Lambda that is ``/tmp``. The next chat's tools must not find what it left there,
    nor the disk stay full. The SDK's resume copies of crashed turns go with the rest."""
    temp = Path(os.path.realpath(tempfile.gettempdir()))
    kept = Path(os.path.realpath(keep))
    uid = os.getuid()
    if uid == 0:  # root's temp files are the machine's (never so in Lambda): the SDK's only
        remove_stale_sdk_copies(older_than_s=0)
        return
    _remove_all_of(uid, temp, but=kept)


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
