"""Run part of a bench with the CPU share of a small Lambda function.

Lambda gives a function CPU in proportion to its memory: one vCPU's worth at 1,769 MB, so the
runtime's default 1,024 MB gets 0.58 of one. ``cpu_share(0.58)`` moves this process (every
thread; not its children, which play remote services) into a cgroup with a CFS quota of that
share per 100 ms period, and back out when the block ends. It needs a writable cgroup file
system with the ``cpu`` controller (root, cgroup v1 ``cpu`` or v2): ``cpu_share_unavailable()``
tries one and says why not, and a bench then leaves that row out.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

LAMBDA_MB_PER_VCPU = 1769
PERIOD_US = 100_000
_V1 = Path("/sys/fs/cgroup/cpu")
_V2 = Path("/sys/fs/cgroup")


def lambda_cpu_share(memory_mb: int) -> float:
    """The share of one vCPU Lambda gives a function of ``memory_mb``."""
    return memory_mb / LAMBDA_MB_PER_VCPU


def cpu_share_unavailable() -> str | None:
    """Why ``cpu_share`` cannot run here, or None when it can (a limited group is made and
    removed again to find out; this process does not move)."""
    if os.geteuid() != 0:
        return "needs root to create a cgroup"
    if not (_V1 / "cpu.cfs_quota_us").exists() and "cpu" not in _read(_V2 / "cgroup.controllers"):
        return "no cgroup file system with the cpu controller (/sys/fs/cgroup)"
    try:
        with _limited_group(0.5):
            pass
    except OSError as exc:
        return f"cannot make a CPU-limited cgroup: {exc}"
    return None


@contextlib.contextmanager
def cpu_share(share: float) -> Iterator[None]:
    """This process, all its threads, limited to ``share`` of one CPU inside the block."""
    pid = str(os.getpid())
    with _limited_group(share) as (group, home):
        (group / "cgroup.procs").write_text(pid)
        try:
            yield
        finally:
            (home / "cgroup.procs").write_text(pid)


@contextlib.contextmanager
def _limited_group(share: float) -> Iterator[tuple[Path, Path]]:
    """A new cgroup limited to ``share`` of one CPU and the one this process is in now; the new
    one is removed when the block ends (it must be empty by then)."""
    quota_us = max(1000, round(share * PERIOD_US))
    v1 = (_V1 / "cpu.cfs_quota_us").exists()
    root = _V1 if v1 else _V2
    home = _own_cgroup(root)
    if not (home / "cgroup.procs").exists():
        raise OSError(f"this process's cgroup {home} is not under {root}")
    if not v1 and "cpu" not in _read(_V2 / "cgroup.subtree_control"):
        (_V2 / "cgroup.subtree_control").write_text("+cpu")
    group = root / f"bench-share-{os.getpid()}-{os.urandom(3).hex()}"
    group.mkdir()
    try:
        if v1:
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota_us))
        else:
            (group / "cpu.max").write_text(f"{quota_us} {PERIOD_US}")
        yield group, home
    finally:
        group.rmdir()


def _read(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _own_cgroup(root: Path) -> Path:
    """The cgroup this process is in now, under ``root`` (where it goes back to)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        names = controllers.split(",") if controllers else []
        if ("cpu" in names) if root == _V1 else not names:
            return root / path.lstrip("/")
    return root
