"""A session's subagent transcripts in its config dir, exactly as the store holds them.

The CLI keeps a subagent's transcript beside the session's, in
``<session>/subagents/agent-<id>.jsonl``, and its metadata in ``agent-<id>.meta.json``; the
store holds each as a transcript of its own under the session (subpath ``subagents/agent-<id>``),
the metadata as ``agent_metadata`` entries in it (the last one wins), as the SDK mirrors them.
The CLI reads them only to resume that agent, never to resume the conversation: they cost the
runtime's memory (the store keeps them), not the CLI's.

The agent's tools can write the config dir, so the ``subagents`` folder is made to hold exactly
the stored files (what a tool edited, removed or planted there is undone), written as the main
transcript is (``_guarded_writes``), and recognised next turn by what ``folder_state`` says.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from session_core import StoredTranscript

from ._guarded_writes import matched_in_place, real_directories, write_atomically
from ._owned_trees import reclaim_rights, remove_tree
from ._prompt_marks import decode_entry

FOLDER = "subagents"
# Plain names only, at most four folders deep: nothing the store hands back leaves the folder.
_SUBPATH = re.compile(r"subagents(?:/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}){1,4}")
_DEEPEST = 4  # names a subpath may have under ``subagents`` (its file's among them)
_METADATA = b'"agent_metadata"'
# config dir, projects, the project's folder, the session's folder: above every file here
_LEVELS_TO_SESSION = 4

# One entry under the folder: its path in it, kind and size, and when it last changed.
EntryState = tuple[str, int, int, int, int]


def session_folder(transcript: Path) -> Path:
    """Where the CLI keeps what belongs to the session whose transcript is ``transcript``."""
    return transcript.with_suffix("")


def is_subagent_subpath(subpath: str) -> bool:
    """Whether ``subpath`` (from the store) names a subagent's transcript the runtime writes."""
    return _SUBPATH.fullmatch(subpath) is not None


def stored_files(transcripts: Mapping[str, StoredTranscript]) -> dict[str, bytes]:
    """The files of the subagents ``transcripts`` (by subpath) as stored, by their path in the
    session's folder."""
    files: dict[str, bytes] = {}
    for subpath, stored in transcripts.items():
        files.update(_files_of(subpath, stored))
    return files


def _files_of(subpath: str, stored: StoredTranscript) -> dict[str, bytes]:
    """One subagent's files: its transcript's lines as stored, and the metadata sidecar when
    the stream carries one."""
    lines: list[bytes] = []
    metadata: dict[str, Any] | None = None
    for line in b"".join(stored.jsonl).splitlines(keepends=True):
        if _METADATA in line:
            entry = decode_entry(line)
            if entry.get("type") == "agent_metadata":
                metadata = entry
                continue
        lines.append(line)
    files: dict[str, bytes] = {}
    if lines:
        files[f"{subpath}.jsonl"] = b"".join(lines)
    if metadata is not None:
        sidecar = {name: value for name, value in metadata.items() if name != "type"}
        files[f"{subpath}.meta.json"] = json.dumps(sidecar).encode()
    return files


def local_subpaths(session: Path) -> set[str] | None:
    """The subagent transcripts in the session's folder now (the CLI's, or a tool's); None if
    a tool made it unknowable what is there (a link in place of a folder, or a folder it took
    our rights to). Only as deep as a subpath may be: a tool's nesting is not walked (Python
    3.11's os.walk recursed once per folder, past the recursion limit), a link never followed."""
    found: set[str] = set()
    for directory in (session, session / FOLDER):
        try:
            mode = os.lstat(directory).st_mode
        except FileNotFoundError:
            return found
        except OSError:
            return None
        if not stat.S_ISDIR(mode):
            return None
    pending = [(session / FOLDER, 1)]
    while pending:
        directory, depth = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return None
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if depth < _DEEPEST:
                    pending.append((Path(entry.path), depth + 1))
            elif entry.name.endswith(".jsonl"):
                found.add(str(Path(entry.path).relative_to(session))[: -len(".jsonl")])
    return found


def put_files(session: Path, files: Mapping[str, bytes]) -> tuple[EntryState, ...]:
    """Make the session's ``subagents`` folder hold exactly ``files`` (by their path in
    ``session``): a file that already holds its bytes stays where it lies, the others are
    written, anything else there is removed. Returns the folder's state after."""
    folder = session / FOLDER
    if not files and not os.path.lexists(folder):
        return ()
    # The folder and every directory above it real, before anything in it is touched.
    real_directories(folder / "-", _LEVELS_TO_SESSION + 1)
    keep = {session / name for name in files}
    _remove_all_but(folder, keep)
    for name, content in files.items():
        path = session / name
        levels = _LEVELS_TO_SESSION + len(Path(name).parts) - 1
        if not matched_in_place(path, (content,), levels=levels):
            write_atomically(path, (content,), levels=levels)
    return folder_state(session)


def folder_state(session: Path) -> tuple[EntryState, ...]:
    """What is in the session's ``subagents`` folder, to tell next turn whether it changed."""
    # A whole walk is safe here, unlike in ``local_subpaths``: it follows ``put_files`` (which
    # leaves nothing deeper than a subpath) and no process of the turn outlives the turn.
    folder = session / FOLDER
    entries: list[EntryState] = []
    try:
        info = os.lstat(folder)
    except OSError:
        return ()
    entries.append(_state(".", info))
    for root, dirs, names in os.walk(folder):
        for name in sorted(dirs + names):
            path = Path(root) / name
            with contextlib.suppress(OSError):
                entries.append(_state(str(path.relative_to(folder)), os.lstat(path)))
    return tuple(sorted(entries))


def _state(name: str, info: os.stat_result) -> EntryState:
    # ctime too: unlike mtime, no process can set it back after a write
    return (name, stat.S_IFMT(info.st_mode), info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _remove_all_but(folder: Path, keep: set[Path]) -> None:
    """Remove everything under ``folder`` that is neither in ``keep`` nor a folder above it
    (however a tool shaped it: ``remove_tree``); the folders kept are made ours to write."""
    keep_folders = {parent for path in keep for parent in path.parents}
    reclaim_rights(folder)
    for root, dirs, names in os.walk(folder):  # never follows a link
        for name in names:
            path = Path(root) / name
            if path not in keep:
                remove_tree(path)
        for name in list(dirs):
            path = Path(root) / name
            if os.path.islink(path) or path not in keep_folders:
                remove_tree(path)  # a link itself, never what it points to
                dirs.remove(name)
            else:
                reclaim_rights(path)  # before the walk lists it
