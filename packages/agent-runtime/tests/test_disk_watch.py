"""The watch that stops a turn once its session's files pass SESSION_DISK_LIMIT_MB (_disk_watch)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from agent_runtime._disk_watch import disk_limit_passed
from agent_runtime._owned_trees import tree_size
from agent_runtime._process_sweep import find_turn_processes
from session_core import boot_ticks


def _none() -> Iterable[int]:
    return ()


def test_a_flood_of_empty_files_during_the_turn_passes_the_limit_soon(tmp_path: Path) -> None:
    """Inodes, not bytes: the file system's inode count is watched too, at a block each."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("the user's own")
    stop = threading.Event()

    def flood() -> None:
        for i in range(5000):
            if stop.is_set():
                return
            (tmp_path / "work" / f"empty-{i}").touch()
            time.sleep(0.0005)

    async def watch() -> tuple[float, float]:
        started = time.monotonic()
        size = await asyncio.wait_for(
            disk_limit_passed(str(tmp_path), 1024 * 1024, turn_processes=_none), timeout=20
        )
        return size, time.monotonic() - started

    flooding = threading.Thread(target=flood)
    flooding.start()
    try:
        size, took = asyncio.run(watch())
    finally:
        stop.set()
        flooding.join()

    assert size > 1024 * 1024 and took < 5, (size, took)
    assert len(list((tmp_path / "work").iterdir())) < 5000  # stopped before the flood ended


def _write_to_disk(path: Path, size: int) -> None:
    with path.open("wb") as out:
        out.write(bytes(size))
        out.flush()
        os.fsync(out.fileno())


def test_space_freed_elsewhere_on_the_file_system_hides_no_write_past_the_limit(tmp_path: Path) -> None:
    """The file system's use fell (another program deleted a big file) before a tool wrote
    past the limit: its net growth stayed under the room left, and the write went unseen until
    the next sizing (a test of the flood failed so beside others' clean-ups)."""
    session = tmp_path / "session"
    (session / "work").mkdir(parents=True)
    elsewhere = tmp_path / "another-program"
    elsewhere.mkdir()
    _write_to_disk(elsewhere / "build.bin", 64 * 1024 * 1024)
    written_at: list[float] = []

    def programs() -> None:
        time.sleep(0.3)  # the watch sized the session and reads the file system's use
        (elsewhere / "build.bin").unlink()
        time.sleep(0.5)  # read as less in use
        _write_to_disk(session / "work" / "output.bin", 24 * 1024 * 1024)
        written_at.append(time.monotonic())

    async def watch() -> float:
        return await asyncio.wait_for(
            disk_limit_passed(
                str(session), 8 * 1024 * 1024, turn_processes=_none, interval_s=0.01, resize_every_s=60
            ),
            timeout=30,
        )

    running = threading.Thread(target=programs)
    running.start()
    try:
        size = asyncio.run(watch())
        fired_at = time.monotonic()
    finally:
        running.join()

    assert size > 8 * 1024 * 1024
    assert fired_at - written_at[0] < 2, fired_at - written_at[0]  # seen at once, not at the resize


def test_space_freed_elsewhere_while_a_tool_writes_hides_none_of_its_writes(
    tmp_path: Path,
) -> None:
    """Another program frees as much as the tool writes, write by write: the file system's
    use never grows, and only the session's own sizing sees the tool pass its limit (a tool
    of `agentbot dev` wrote all of 200 MiB past a 16 MiB limit beside a busy test run)."""
    session = tmp_path / "session"
    (session / "work").mkdir(parents=True)
    elsewhere = tmp_path / "another-program"
    elsewhere.mkdir()
    chunk = 1024 * 1024
    for index in range(60):
        _write_to_disk(elsewhere / f"build-{index}.bin", chunk)
    written: list[int] = []
    fired = threading.Event()

    def tool_beside_a_clean_up() -> None:
        for index in range(60):
            if fired.is_set():
                return
            _write_to_disk(session / "work" / f"out-{index}.bin", chunk)
            (elsewhere / f"build-{index}.bin").unlink()
            written.append(chunk)
            time.sleep(0.1)

    async def watch() -> float:
        try:
            return await asyncio.wait_for(
                disk_limit_passed(str(session), 8 * chunk, turn_processes=_none, interval_s=0.01), timeout=30
            )
        finally:
            fired.set()

    running = threading.Thread(target=tool_beside_a_clean_up)
    running.start()
    try:
        size = asyncio.run(watch())
    finally:
        running.join()

    assert size > 8 * chunk
    # Seen at the next sizing after the limit, not at the one every 10 s, after all 60 MiB.
    assert sum(written) < 40 * chunk, sum(written) / chunk


def test_a_session_under_its_limit_runs_on(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "data").write_bytes(bytes(512 * 1024))

    async def watch() -> None:
        await asyncio.wait_for(
            disk_limit_passed(str(tmp_path), 1024 * 1024, turn_processes=_none, interval_s=0.01), timeout=1
        )

    with pytest.raises(TimeoutError):
        asyncio.run(watch())


def _allocate_keeping_size(path: Path, size: int) -> None:
    """Blocks for ``size`` bytes, the file's size left at 0 (fallocate's FALLOC_FL_KEEP_SIZE):
    what `fallocate -n` or any tool with ctypes does."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        if libc.fallocate(fd, 1, 0, size) != 0:  # 1: FALLOC_FL_KEEP_SIZE
            pytest.skip(f"no fallocate keep-size here: errno {ctypes.get_errno()}")
    finally:
        os.close(fd)
    assert os.stat(path).st_size == 0 and os.stat(path).st_blocks * 512 >= size


def test_blocks_allocated_past_a_files_size_pass_the_limit(tmp_path: Path) -> None:
    """A tool's fallocate(KEEP_SIZE) takes the disk's blocks while st_size stays 0: counted by
    size, 64 MiB weigh one block, in the watch and at the next turn's start alike."""
    (tmp_path / "work").mkdir()
    _allocate_keeping_size(tmp_path / "work" / "hidden", 64 * 1024 * 1024)

    assert tree_size(tmp_path) > 16 * 1024 * 1024

    async def watch() -> float:
        return await asyncio.wait_for(
            disk_limit_passed(str(tmp_path), 16 * 1024 * 1024, turn_processes=_none, interval_s=0.01), 3
        )

    assert asyncio.run(watch()) > 16 * 1024 * 1024


def test_a_tree_slow_to_size_is_sized_again_soon_once_the_disk_grew_past_the_room(tmp_path: Path) -> None:
    """Sizing 30,000 files takes ~0.1 s: at 5 % of a core the next sizing came 2 s later (20 s
    at 120,000 files, while a tool wrote 3 GB past the limit); once the disk grew past the
    room left the tree is sized again after resting as long as a sizing takes."""
    many = tmp_path / "work" / "many"
    many.mkdir(parents=True)
    for i in range(30_000):
        os.close(os.open(many / str(i), os.O_CREAT | os.O_WRONLY, 0o600))
    started = time.monotonic()
    limit = tree_size(tmp_path) + 8 * 1024 * 1024
    sizing = time.monotonic() - started
    passed_at: list[float] = []

    def tool() -> None:
        time.sleep(0.1 + 3 * sizing)  # after the watch's first sizing
        (tmp_path / "work" / "big").write_bytes(bytes(16 * 1024 * 1024))
        passed_at.append(time.monotonic())

    async def watch() -> float:
        return await asyncio.wait_for(
            disk_limit_passed(str(tmp_path), limit, turn_processes=_none, interval_s=0.05), 20
        )

    writing = threading.Thread(target=tool)
    writing.start()
    try:
        size = asyncio.run(watch())
        fired_at = time.monotonic()
    finally:
        writing.join()

    assert size > limit
    # one look, then at most three sizings (the 5 % share: ~17 of them)
    assert fired_at - passed_at[0] < 0.05 + 6 * sizing + 0.1, (fired_at - passed_at[0], sizing)


# A tool that writes ``megabytes`` into a file it unlinked and keeps open, then waits.
# How long a test waits for the watch to find what its tool wrote before failing: generous (a
# loaded CI machine, an image building beside it); the tools hold their files for 60 s.
_FOUND_WITHIN_S = 45

_NAMELESS_WRITER = """
import os, sys, time
path, megabytes = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
os.unlink(path)
for _ in range(megabytes):
    os.write(fd, bytes(1 << 20))
time.sleep(60)
"""


def _watch_descendants(root: Path, since: int) -> Coroutine[Any, Any, float]:
    """The watch of ``root`` against a 16 MiB limit, the turn's processes being this test's
    descendants started after ``since`` (as under agentbot dev), looking every 0.05 s."""
    return disk_limit_passed(
        str(root),
        16 * 1024 * 1024,
        turn_processes=lambda: find_turn_processes("descendants", since),
        interval_s=0.05,
    )


def test_a_file_a_tool_unlinked_and_keeps_writing_passes_the_limit(tmp_path: Path) -> None:
    """In no directory, the file still takes the disk until its last close: 64 MiB under a
    16 MiB limit went unseen (the tree never showed it)."""
    (tmp_path / "work").mkdir()
    since = boot_ticks()
    tool = subprocess.Popen(
        [sys.executable, "-c", _NAMELESS_WRITER, str(tmp_path / "work" / "hidden"), "64"],
        stdout=subprocess.PIPE,
    )

    async def watch() -> float:
        return await asyncio.wait_for(_watch_descendants(tmp_path, since), _FOUND_WITHIN_S)

    try:
        size = asyncio.run(watch())
    finally:
        tool.kill()
        tool.wait()
    assert size > 16 * 1024 * 1024
    assert list((tmp_path / "work").iterdir()) == []


def test_a_nameless_file_no_process_of_the_turn_holds_does_not_count(tmp_path: Path) -> None:
    """The runtime's own (here the test's) and any other process's: only the turn's processes'
    files are the turn's, whatever the file system's growth."""
    (tmp_path / "work").mkdir()
    since = boot_ticks()
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    fd = os.open(tmp_path / "work" / "ours", os.O_WRONLY | os.O_CREAT, 0o600)
    os.unlink(tmp_path / "work" / "ours")

    async def watch() -> None:
        watching = asyncio.create_task(_watch_descendants(tmp_path, since))
        await asyncio.sleep(0.3)  # after the first sizing
        await asyncio.to_thread(os.write, fd, bytes(32 * 1024 * 1024))
        await asyncio.wait_for(watching, 1.5)

    try:
        with pytest.raises(TimeoutError):
            asyncio.run(watch())
    finally:
        os.close(fd)
        idle.kill()
        idle.wait()


# The same from a thread that took a descriptor table of its own (unshare(CLONE_FILES)):
# /proc/<pid>/fd shows the first thread's table only.
_NAMELESS_WRITER_IN_A_THREAD = """
import ctypes, os, sys, threading, time
def write():
    if ctypes.CDLL(None, use_errno=True).unshare(0x400) != 0:  # CLONE_FILES
        os._exit(3)
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
    os.unlink(sys.argv[1])
    for _ in range(64):
        os.write(fd, bytes(1 << 20))
    time.sleep(60)
threading.Thread(target=write).start()
"""


def test_a_nameless_file_in_a_threads_own_descriptor_table_passes_the_limit(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    since = boot_ticks()
    hidden = str(tmp_path / "work" / "hidden")
    tool = subprocess.Popen([sys.executable, "-c", _NAMELESS_WRITER_IN_A_THREAD, hidden])

    async def watch() -> float:
        return await asyncio.wait_for(_watch_descendants(tmp_path, since), _FOUND_WITHIN_S)

    try:
        size = asyncio.run(watch())
    finally:
        tool.kill()
        tool.wait()
    assert tool.returncode != 3, "no unshare(CLONE_FILES) here"
    assert size > 16 * 1024 * 1024


def test_a_watch_that_breaks_never_ends_the_turn_it_watches(tmp_path: Path) -> None:
    """The turn ends (its CLI and tools killed) when the watch returns: a watch that cannot
    look (here its directory is gone; or a bug) must leave the turn running, and say so."""
    from structlog.testing import capture_logs

    async def watch() -> None:
        await asyncio.wait_for(
            disk_limit_passed(str(tmp_path / "gone"), 1 << 20, turn_processes=_none, interval_s=0.01), 0.5
        )

    with capture_logs() as logs, pytest.raises(TimeoutError):
        asyncio.run(watch())
    assert [entry["event"] for entry in logs] == ["disk_watch.failed"]
    assert logs[0]["error"] == "FileNotFoundError"


@contextlib.contextmanager
def _as_a_walk_reaches(
    prefix: str, act: Callable[[str], None], *, sizing_after: threading.Event
) -> Iterator[None]:
    """``act(name)`` runs in the watch's walk just before it opens a folder, or reads the size
    of a file, whose name starts with ``prefix``, in a sizing begun once ``sizing_after`` was
    set: a tool's ``rm -rf`` or ``mv`` landing at that moment (in the wild a race on a busy
    machine, here made certain)."""
    begun_after = threading.local()  # per sizing thread: whether its sizing began after

    def on_event(frame: FrameType, event: str, arg: object) -> None:
        name: object = None
        if event == "call":
            called = frame.f_code.co_name
            if called == "_sized":
                begun_after.value = sizing_after.is_set()
            if called == "_open_directory":
                name = frame.f_locals.get("name")
        elif event == "c_call" and getattr(arg, "__name__", None) == "stat":
            listed = getattr(arg, "__self__", None)  # a file's size, read from the listing
            name = listed.name if isinstance(listed, os.DirEntry) else None
        if isinstance(name, str) and name.startswith(prefix) and getattr(begun_after, "value", False):
            act(name)

    threading.setprofile(on_event)  # the watch's sizing threads start inside
    try:
        yield
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]


def _take_at_once(path: Path, size: int) -> None:
    """``size`` bytes of the disk taken in one call: no look sees half of them."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def _watch_for_16_mib(session: Path) -> Coroutine[Any, Any, float]:
    return disk_limit_passed(
        str(session), 16 * 1024 * 1024, turn_processes=_none, interval_s=0.01, resize_every_s=60
    )


@pytest.mark.parametrize("vanishing", ["build", "out.o.tmp"], ids=["a folder", "a file"])
def test_an_entry_deleted_as_a_sizing_reaches_it_ends_no_session_under_its_limit(
    tmp_path: Path, vanishing: str
) -> None:
    """A tool's `rm -rf build/` (or a compiler's temporary file going) met a sizing while
    another program grew the disk: the walk found entries gone under it, and the watch took
    the disk's growth since the last sizing (the other program's 256 MiB) for the session's
    own, ending a session far under its limit."""
    session = tmp_path / "session"
    work = session / "work"
    for step in range(20):
        (work / "build" / f"step-{step}").mkdir(parents=True)
        (work / "build" / f"step-{step}" / "out.o").write_bytes(bytes(4096))
    (work / "out.o.tmp").write_bytes(bytes(4096))
    disk_grew = threading.Event()
    deleted: list[str] = []

    def rm_rf(name: str) -> None:
        if not deleted:
            subprocess.run(["rm", "-rf", str(work / name)], check=True)
            deleted.append(name)

    async def watch() -> None:
        watching = asyncio.create_task(_watch_for_16_mib(session))
        await asyncio.sleep(0.3)  # sized
        # Far more than the room left (others on this disk may free some meanwhile).
        _take_at_once(tmp_path / "another-programs-cache", 256 * 1024 * 1024)
        disk_grew.set()  # the sizing it sets off reaches the entry as it is deleted
        await asyncio.wait_for(watching, 1.5)

    try:
        with _as_a_walk_reaches(vanishing, rm_rf, sizing_after=disk_grew), pytest.raises(TimeoutError):
            asyncio.run(watch())
    finally:
        (tmp_path / "another-programs-cache").unlink()
    assert deleted, "no sizing met the deletion: this proves nothing"


def test_a_tool_renaming_its_folder_whenever_a_sizing_walks_it_is_still_stopped(tmp_path: Path) -> None:
    """The folder holding the tool's 32 MiB is renamed just before every walk opens it: the
    walks never see it, and the session is stopped all the same (the disk's growth since the
    last sizing counts as its own)."""
    session = tmp_path / "session"
    (session / "work" / "hide-0").mkdir(parents=True)
    dodging = threading.Event()
    renamed: list[str] = []

    def rename_away(name: str) -> None:
        renamed.append(name)
        os.rename(session / "work" / name, session / "work" / f"hide-{len(renamed)}")

    async def watch() -> float:
        watching = asyncio.create_task(_watch_for_16_mib(session))
        await asyncio.sleep(0.3)  # sized
        dodging.set()
        _take_at_once(session / "work" / "hide-0" / "data", 32 * 1024 * 1024)
        return await asyncio.wait_for(watching, _FOUND_WITHIN_S)

    with _as_a_walk_reaches("hide", rename_away, sizing_after=dodging):
        size = asyncio.run(watch())
    assert size > 16 * 1024 * 1024
    assert renamed, "no walk met the folder: this proves nothing"


def test_a_tool_renaming_its_file_whenever_a_sizing_reads_it_is_still_stopped(tmp_path: Path) -> None:
    """The tool's 32 MiB file is renamed between the walk's listing and its reading of the
    file's size, at every walk: the walks never find it under any name, and the session is
    stopped all the same (a file gone under the walk was skipped as if never there: the tool
    wrote on past the limit for as long as it kept renaming)."""
    session = tmp_path / "session"
    (session / "work").mkdir(parents=True)
    dodging = threading.Event()
    renamed: list[str] = []

    def rename_away(name: str) -> None:
        renamed.append(name)
        os.rename(session / "work" / name, session / "work" / f"hide-{len(renamed)}")

    async def watch() -> float:
        watching = asyncio.create_task(_watch_for_16_mib(session))
        await asyncio.sleep(0.3)  # sized
        dodging.set()
        _take_at_once(session / "work" / "hide-0", 32 * 1024 * 1024)
        return await asyncio.wait_for(watching, _FOUND_WITHIN_S)

    with _as_a_walk_reaches("hide", rename_away, sizing_after=dodging):
        size = asyncio.run(watch())
    assert size > 16 * 1024 * 1024
    assert renamed, "no walk met the file: this proves nothing"


def test_a_watch_cancelled_as_it_sizes_walks_no_other_directory(tmp_path: Path) -> None:
    """The turn ended (its watch cancelled) while a sizing ran: the watch let go of its
    directory's descriptor at once, the runtime's next opens took that number, and the walk
    went on in whatever it now named (here another chat's folder)."""
    session = tmp_path / "session"
    (session / "work").mkdir(parents=True)
    other = tmp_path / "another-chat"
    other.mkdir()
    (other / "its-notes").write_text("not this session's")
    walking, go_on = threading.Event(), threading.Event()
    reached: list[str] = []

    def pause_then_note(name: str) -> None:
        if name == ".":  # the walk's first step: its top, from the watch's descriptor
            walking.set()
            go_on.wait(5)
        else:
            reached.append(name)

    async def cancel_while_sizing() -> None:
        watching = asyncio.create_task(_watch_for_16_mib(session))
        for _ in range(500):
            if walking.is_set():
                break
            await asyncio.sleep(0.01)
        assert walking.is_set(), "no sizing began: this proves nothing"
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        taken = [os.open(other, os.O_RDONLY | os.O_DIRECTORY) for _ in range(64)]
        try:
            go_on.set()
            for _ in range(500):
                if reached:
                    break
                await asyncio.sleep(0.01)
        finally:
            for fd in taken:
                os.close(fd)

    always = threading.Event()
    always.set()
    with _as_a_walk_reaches("", pause_then_note, sizing_after=always):
        asyncio.run(cancel_while_sizing())
    assert reached == ["work"]
