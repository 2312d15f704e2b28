"""Bytecode for a whole environment, written once, on every core when there is much to do.

A new checkout's environment has none: compiling its ~7,000 modules one by one takes ~25 s on
2 cores (and `compileall` with a process pool, one task per file, ~16 s). Here the stale files
are found first (a stat and a 16-byte read each, ~0.4 s when all are current), then compiled
in batches by one process per core (~12 s).
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import multiprocessing
import os
import py_compile
from collections.abc import Iterable, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

_BATCH = 200  # files per task: one task per file is what made a parallel compileall slow
_SERIAL_BELOW = 2 * _BATCH
# what an import checks by the source's mtime, even where SOURCE_DATE_EPOCH would make
# py_compile write hash-based bytecode (which _current would never take as current)
_TIMESTAMP = py_compile.PycInvalidationMode.TIMESTAMP


def stale_sources(roots: Iterable[Path]) -> list[str]:
    """Every ``.py`` under ``roots`` whose cached bytecode is missing or was compiled from
    another version of it (what an import checks in timestamp-based bytecode: the source's
    mtime and size in the header)."""
    stale: list[str] = []
    for root in roots:
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = [name for name in subfolders if name != "__pycache__"]
            stale.extend(
                os.path.join(folder, name)
                for name in files
                if name.endswith(".py") and not _current(os.path.join(folder, name))
            )
    return stale


def _current(source: str) -> bool:
    try:
        stat = os.stat(source)
        with open(importlib.util.cache_from_source(source), "rb") as cached:
            header = cached.read(16)
    except OSError:
        return False
    expected = (int(stat.st_mtime) & 0xFFFFFFFF, stat.st_size & 0xFFFFFFFF)
    flags = int.from_bytes(header[4:8], "little")
    return (
        header[:4] == importlib.util.MAGIC_NUMBER
        and flags == 0  # timestamp-based, as _compile_batch writes it
        and (int.from_bytes(header[8:12], "little"), int.from_bytes(header[12:16], "little")) == expected
    )


def compile_sources(sources: Sequence[str]) -> None:
    """Writes their bytecode as an import would; a file that does not compile (a test fixture,
    a Python 2 leftover in a package) is left to fail at import. This only saves time, so a
    pool that breaks (a worker killed) leaves the rest to one process."""
    if len(sources) < _SERIAL_BELOW:
        _compile_batch(sources)
        return
    batches = [sources[i : i + _BATCH] for i in range(0, len(sources), _BATCH)]
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # spawned, not forked: the caller may have threads (an xdist worker has execnet's)
    spawn = multiprocessing.get_context("spawn")
    try:
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
            list(pool.map(_compile_batch, batches))
    except BrokenProcessPool:
        _compile_batch([source for source in sources if not _current(source)])


def _compile_batch(sources: Sequence[str]) -> None:
    for source in sources:
        try:
            py_compile.compile(source, doraise=True, invalidation_mode=_TIMESTAMP)
        except (py_compile.PyCompileError, OSError, ValueError):
            continue
