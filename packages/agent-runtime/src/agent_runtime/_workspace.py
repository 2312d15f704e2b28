"""Per-session directories inside a (possibly warm) container.

``<SESSIONS_ROOT>/<sha256(session key)[:24]>/`` holds ``work/`` (the agent's cwd, whose
path gives the SDK project key, so it must be the same in every container), ``config/``
(``CLAUDE_CONFIG_DIR``), ``home/`` and ``tmp/``. Before a turn everything else under
SESSIONS_ROOT, and any transcript copy the SDK left in the system temp dir, is deleted (in
Lambda, everything of the function's uid in ``/tmp`` (and any other directory every user may
write) but SESSIONS_ROOT, which a tool may have written on a kernel without Landlock, and
SESSIONS_ROOT's ``.bin`` too, which the turn installs anew; elsewhere, where the uid is shared,
what the turn newly left there goes when it ends; see ``_temp_leftovers``): the next
session's tools cannot read what the previous session left, and ``/tmp`` stays bounded (one
session's files, capped by ``SESSION_DISK_LIMIT_MB``). In Lambda this comes before the turn
writes anything, its own directory included: a tool may have filled the disk, or put a file
or a link in place of SESSIONS_ROOT.

Of the session's own files only the user's work carries over to its next turn in a warm
container (in Lambda, only from the directory this runtime prepared for the turn before: one
a tool made for another chat is emptied): ``work/`` less what configures the CLI there
(``.claude/``, ``CLAUDE.md``, ..., made anew from claude-config), and the transcripts under
``config/projects``. ``home/``, ``tmp/`` and the rest of ``config/`` start empty: a tool
cannot plant a hook, a setting, a shell start-up file or a CLI state file that a later turn
would run. Tools may write only inside those four directories (Landlock), and a link a tool
put in place of one of the runtime's own paths is removed, never followed.

A turn holds an advisory lock on its session directory, so where several runtime processes
share one file system (the local Lambda runtime, `agentbot dev`) a cleanup never removes a
directory another process is using.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import math
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import msgspec
from session_core import SessionKey, get_logger

from ._claude_config import ClaudeConfig
from ._owned_trees import reclaim_rights, remove_tree, tree_size
from ._subagent_files import FOLDER as SUBAGENTS_FOLDER
from ._temp_leftovers import remove_stale_sdk_copies, remove_strays_in_temp, strays_of_the_turn_removed

_RESERVED = {".bin"}
# In the working directory: where the agent leaves the files it sends (see _outbox).
OUTBOX = "outbox"
_LOCK = ".lock"
# Read by the CLI from its cwd: what only claude-config may set.
_CLI_CONFIGURATION_IN_CWD = (".claude", "CLAUDE.md", "CLAUDE.local.md", "AGENTS.md", ".mcp.json")
_TRANSCRIPTS = "projects"  # under config/: <project>/<session>.jsonl, the transcripts (_restore.py)

log = get_logger("agent_runtime._workspace")


class SessionWorkspace(msgspec.Struct, frozen=True, kw_only=True):
    """Paths of one session's directories (all exist once prepared)."""

    root: str
    cwd: str
    config_dir: str
    home: str
    tmp: str
    attachments: str


def workspace_paths(sessions_root: str | os.PathLike[str], key: SessionKey) -> SessionWorkspace:
    """Where the session's directories live; a pure function of the key and the root."""
    digest = hashlib.sha256(key.canonical.encode()).hexdigest()[:24]
    root = Path(sessions_root) / digest
    return SessionWorkspace(
        root=str(root),
        cwd=str(root / "work"),
        config_dir=str(root / "config"),
        home=str(root / "home"),
        tmp=str(root / "tmp"),
        attachments=str(root / "work" / "attachments"),
    )


# Per sessions root, the session directory this process prepared last, as (path, device,
# inode): alone, the only one a turn of this runtime may have left (every other goes first).
_last_prepared: dict[str, tuple[str, int, int]] = {}


def _identity(directory: Path) -> tuple[str, int, int] | None:
    try:
        info = directory.lstat()
    except FileNotFoundError:
        return None
    return str(directory), info.st_dev, info.st_ino


def _prepared_last(base: Path, mine: Path) -> bool:
    """Whether ``mine`` is the very directory this process prepared for the last turn under
    ``base`` (not one of that name a tool made since: a session's directory is named by a hash
    its tools can work out for any chat, and a kernel without Landlock lets them make it)."""
    found = _identity(mine)
    return found is None or _last_prepared.get(os.path.realpath(base)) == found


def _remember_prepared(base: Path, mine: Path) -> None:
    found = _identity(mine)
    if found is not None:
        _last_prepared[os.path.realpath(base)] = found


def _remove_if_unused(entry: Path, *, shared: bool = False) -> None:
    """``shared``: other runtimes use the sessions root, so a directory without its lock is one
    being made or removed by another (left alone); and the lock goes last, so a runtime that
    waited on it finds it gone (``_made_and_locked``) rather than take its place meanwhile."""
    if not entry.is_dir() or entry.is_symlink():
        entry.unlink(missing_ok=True)
        return
    try:
        fd = _open_lock(entry, create=not shared)
    except FileNotFoundError:
        if shared:
            return
        _remove(entry)
        return
    except OSError:
        _remove(entry)
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return  # another process is running a turn in it
    try:
        if not shared:
            _remove(entry)
            return
        reclaim_rights(entry)
        for child in entry.iterdir():
            if child.name != _LOCK:
                _remove(child)
        (entry / _LOCK).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            entry.rmdir()  # not empty: another runtime has made it its own since
    finally:
        os.close(fd)


def _open_lock(directory: Path, *, create: bool = True) -> int:
    flags = os.O_RDWR | os.O_NOFOLLOW | (os.O_CREAT if create else 0)
    return os.open(directory / _LOCK, flags, 0o600)


@contextlib.contextmanager
def session_workspace(
    sessions_root: str | os.PathLike[str],
    key: SessionKey,
    config: ClaudeConfig,
    *,
    disk_limit_mb: int,
    alone: bool = False,
    new_conversation: bool = False,
) -> Iterator[SessionWorkspace]:
    """Prepare this session's directories (deleting every other session's) and hold them for
    the block. ``alone``: nothing else of this uid runs here (Lambda, whose uid sweep makes it
    so), so whatever of this uid is in the system temp dir, but the sessions root, is an earlier
    turn's leftover (``remove_strays_in_temp``). ``new_conversation``: the turn begins one (/new,
    an expired history), so nothing of the last one carries over, as in a cold container."""
    base = Path(sessions_root)
    paths = workspace_paths(base, key)
    mine = Path(paths.root)
    fd = _cleared_then_locked(base, mine) if alone else _locked_then_cleared(base, mine)
    try:
        _fill_workspace(paths, config, disk_limit_mb=disk_limit_mb, new_conversation=new_conversation)
        with contextlib.nullcontext() if alone else strays_of_the_turn_removed(keep=base):
            yield paths
    finally:
        os.close(fd)


def _cleared_then_locked(base: Path, mine: Path) -> int:
    """Alone (nothing else of this uid runs here): what earlier turns left goes before this turn
    writes anything, since a tool may have filled the disk with it (every block or inode) or put
    a file or a link in place of the sessions root (a kernel without Landlock lets it); then the
    session's directory is made and locked (the lock's descriptor)."""
    _own_directories_to(base)
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    reclaim_rights(base)
    _remove_others(base, mine, shared=False)  # .bin too: the turn installs it anew
    remove_strays_in_temp(keep=base)
    if not _prepared_last(base, mine):
        _remove(mine)  # no turn of this runtime left it: another chat's tool may have made it
    _real_directory(mine)
    _remember_prepared(base, mine)
    return _lock(mine)


def _locked_then_cleared(base: Path, mine: Path) -> int:
    """Sharing the sessions root with other runtimes: the session's directory is locked first
    (another runtime's clean-up leaves a locked one alone), then the unused others go (first,
    when the disk refuses ours: a tool may have filled it). The lock's descriptor."""
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    reclaim_rights(base)
    try:
        fd = _made_and_locked(mine)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        _remove_others(base, mine, shared=True)
        fd = _made_and_locked(mine)
    try:
        _remove_others(base, mine, shared=True)
        remove_stale_sdk_copies()
    except BaseException:
        os.close(fd)
        raise
    return fd


def _own_directories_to(directory: Path) -> None:
    """Make each directory of this uid on the way to ``directory`` (itself included) one it can
    use: a file or a link of this uid in place of one is removed (what follows is made anew),
    and rights a tool took away are taken back. Another owner's entry is left as it is, and
    root's are the machine's (never so in Lambda)."""
    if os.geteuid() == 0:
        return
    here = Path(os.path.abspath(directory))
    for step in [*reversed(here.parents), here]:
        try:
            info = step.lstat()
        except FileNotFoundError:
            return
        if info.st_uid != os.geteuid():
            continue
        if not stat.S_ISDIR(info.st_mode):
            step.unlink()
            return
        reclaim_rights(step)


def _remove_others(base: Path, mine: Path, *, shared: bool) -> None:
    """Every other session's directory under ``base`` (and whatever else is there, but
    ``.bin`` where runtimes share ``base``), unless another runtime is using it."""
    reserved = _RESERVED if shared else set()
    for entry in base.iterdir():
        if entry.name not in reserved and entry != mine:
            _remove_if_unused(entry, shared=shared)


def _made_and_locked(mine: Path) -> int:
    """Where runtimes share the sessions root: the session's directory made and locked (the
    lock's descriptor), again if another runtime removed it meanwhile (it was unused until
    locked) or the lock waited for was its removal's. Removed between ``mkdir``'s "exists" and
    its look at what exists, it is a FileExistsError."""
    while True:
        with contextlib.suppress(FileNotFoundError, FileExistsError):
            _real_directory(mine)
            fd = _lock(mine)
            try:
                if os.path.samestat(os.fstat(fd), os.lstat(mine / _LOCK)):
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)


def _lock(mine: Path) -> int:
    """The session directory's lock, held (its descriptor)."""
    try:
        fd = _open_lock(mine)
    except OSError:  # a link a tool put there (a kernel without Landlock lets it): not ours
        (mine / _LOCK).unlink(missing_ok=True)
        fd = _open_lock(mine)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _fill_workspace(
    paths: SessionWorkspace, config: ClaudeConfig, *, disk_limit_mb: int, new_conversation: bool
) -> None:
    mine = Path(paths.root)
    # Anything else in the session's directory (the CLI reads CLAUDE.md from the cwd's parents
    # too; a kernel without Landlock lets a tool write there) goes, with home/ and tmp/; over
    # budget, work/ and config/ too (the transcript lives in the store); for a new conversation
    # too: /new says the bot no longer draws on the old one, whose files and transcript its
    # agent would otherwise read in a warm container.
    kept = {_LOCK}
    _clear_last_turns_passing_files(paths)
    size = tree_size(mine)  # every entry counts a block: an inode flood is over; too deep: inf
    if size <= disk_limit_mb * 1024 * 1024:
        if not new_conversation:
            kept |= {Path(p).name for p in (paths.cwd, paths.config_dir)}
    else:
        log.warning(
            "workspace.over_disk_limit",
            size_mb=-1 if size == math.inf else round(size / 2**20),
            limit_mb=disk_limit_mb,
            setting="SESSION_DISK_LIMIT_MB",
            removed="work/ and config/ (the transcript is restored from the store)",
        )
    for child in mine.iterdir():
        if child.name not in kept:
            _remove(child)
    for directory in (paths.cwd, paths.config_dir, paths.home, paths.tmp):
        _real_directory(Path(directory))
    for name in _CLI_CONFIGURATION_IN_CWD:
        _remove(Path(paths.cwd) / name)
    for entry in Path(paths.config_dir).iterdir():
        if entry.name != _TRANSCRIPTS:
            _remove(entry)
    _keep_only_transcripts(Path(paths.config_dir) / _TRANSCRIPTS)
    # The CLI loads the skills from a plugin outside the session (_skills_plugin); this copy
    # is for the scripts they run by a path relative to the cwd.
    skills_dir = Path(paths.cwd) / ".claude" / "skills"
    for skill in config.skills:
        shutil.copytree(skill.directory, skills_dir / skill.name)


def _clear_last_turns_passing_files(paths: SessionWorkspace) -> None:
    """The files the last turn's user sent and its agent sent (``attachments/``, ``OUTBOX``)
    removed before the session's files are counted: they go before this turn's come, so
    they weigh nothing against the cap (counted, a user's 20 MB files made the next turn
    start without the agent's working files), while a tool's own file given a second name
    there (a hard link) stays, counted by the name it keeps in ``work/``. Subtracted
    instead, such a file was kept past the cap turn after turn."""
    cwd = Path(paths.cwd)
    if cwd.is_symlink() or not cwd.is_dir():  # a link a tool put in work/'s place leads elsewhere
        return
    clear_attachments(paths)
    clear_outbox(paths)


def _keep_only_transcripts(projects: Path) -> None:
    """Of ``projects/`` keep the transcript files (``<project>/<session>.jsonl``) and their
    subagents' (``<project>/<session>/subagents/``, which the restore checks against the store
    before the CLI may read them, see ``_subagent_files``): the CLI keeps more there
    (auto-memory, tool results) that a tool could write for later turns."""
    if not projects.is_dir() or projects.is_symlink():
        _remove(projects)
        return
    reclaim_rights(projects)
    for project in projects.iterdir():
        if not project.is_dir() or project.is_symlink():
            _remove(project)
            continue
        reclaim_rights(project)
        for entry in project.iterdir():
            if _is_transcript(entry):
                continue
            if _is_transcript(entry.with_name(f"{entry.name}.jsonl")) and _real_directory_of_ours(entry):
                _keep_only_subagents(entry)
                continue
            _remove(entry)


def _is_transcript(entry: Path) -> bool:
    return entry.suffix == ".jsonl" and entry.is_file() and not entry.is_symlink()


def _real_directory_of_ours(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and path.stat().st_uid == os.geteuid()


def _keep_only_subagents(session: Path) -> None:
    """Of a session's own folder keep ``subagents/`` (as a tool may have left it: the restore
    makes it the store's again, or the CLI never resumes that session)."""
    reclaim_rights(session)
    for entry in session.iterdir():
        if entry.name != SUBAGENTS_FOLDER or not _real_directory_of_ours(entry):
            _remove(entry)


def forget_conversation(paths: SessionWorkspace) -> None:
    """The turn found the conversation it was to continue gone from the store (expired since
    its message was sent, or lost) and begins a new one: the old one's working files and
    transcripts go, as for /new (``new_conversation``), but what this turn put there already
    (its message's attachments, the skills copied for it)."""
    this_turns = {Path(paths.attachments).name, ".claude"}
    for child in Path(paths.cwd).iterdir():
        if child.name not in this_turns:
            _remove(child)
    _remove(Path(paths.config_dir) / _TRANSCRIPTS)


def clear_attachments(paths: SessionWorkspace) -> None:
    """Remove files of earlier turns' attachments."""
    _remove(Path(paths.attachments))


def clear_outbox(paths: SessionWorkspace) -> None:
    """Remove what an earlier turn left in the outbox (``OUTBOX`` in the working directory):
    it was sent with that turn's answer, or that turn failed."""
    _remove(Path(paths.cwd) / OUTBOX)


def _remove(path: Path) -> None:
    """Delete what is at ``path``: a link is removed itself, never what it points to; a
    directory however a tool shaped it (see _owned_trees)."""
    remove_tree(path)


def _real_directory(path: Path) -> None:
    """Make ``path`` a directory of ours: whatever else a tool put there is removed first."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)  # a tool may have taken our own rights away (chmod is no write)
