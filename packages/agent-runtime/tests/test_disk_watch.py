"""The watch that stops a turn once its session's files pass SESSION_DISK_LIMIT_MB (_disk_watch)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from agent_runtime._disk_watch import disk_limit_passed


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
        size = await asyncio.wait_for(disk_limit_passed(str(tmp_path), 1024 * 1024), timeout=20)
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


def test_a_session_under_its_limit_runs_on(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "data").write_bytes(bytes(512 * 1024))

    async def watch() -> None:
        await asyncio.wait_for(disk_limit_passed(str(tmp_path), 1024 * 1024, interval_s=0.01), timeout=1)

    with pytest.raises(TimeoutError):
        asyncio.run(watch())
