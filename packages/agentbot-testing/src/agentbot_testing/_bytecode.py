"""Bytecode for a whole environment, written once, on every core when there is much to do.

A new checkout's environment has none: compiling its ~7,000 modules one by one takes ~25 s on
2 cores, and a process pool over all of them ~16 s (one task per file). Here the stale files
are found first (a stat each, ~0.3 s when all are current), then compiled in batches by one
process per core (~11 s).
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import os
import py_compile
from collections.abc import Iterable, Sequence
from pathlib import Path

_BATCH = 200  # files per task: the pool's cost per task is what made compileall's slow
_SERIAL_BELOW = 2 * _BATCH


def stale_sources(roots: Iterable[Path]) -> list[str]:
    """Every ``.py`` under ``roots`` whose cached bytecode is missing or was compiled from
    another version of it (the check an import makes: the header's mtime and size)."""
    return [
        os.path.join(folder, name)
        for root in roots
        for folder, _, files in os.walk(root)
        for name in files
        if name.endswith(".py") and not _current(os.path.join(folder, name))
    ]


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
        and flags == 0  # timestamp-checked, as py_compile writes by default
        and (int.from_bytes(header[8:12], "little"), int.from_bytes(header[12:16], "little")) == expected
    )


def compile_sources(sources: Sequence[str]) -> None:
    """Writes their bytecode as an import would (timestamp-checked); a file that does not
    compile (a test fixture, a Python 2 leftover in a package) is left to fail at import."""
    if len(sources) < _SERIAL_BELOW:
        _compile_batch(sources)
        return
    batches = [sources[i : i + _BATCH] for i in range(0, len(sources), _BATCH)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        list(pool.map(_compile_batch, batches))


def _compile_batch(sources: Sequence[str]) -> None:
    for source in sources:
        try:
            py_compile.compile(source, doraise=True)
        except (py_compile.PyCompileError, OSError, ValueError):
            continue
