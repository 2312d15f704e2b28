"""Run part of a bench with the CPU share of a small Lambda function.

Lambda gives a function CPU in proportion to its memory: one vCPU's worth at 1,769 MB, so the
runtime's default 1,024 MB gets 0.58 of one. ``cpu_share(0.58)`` moves this process (every
thread; not its children, which play remote services) into a cgroup with a CFS quota of that
share per 100 ms period, and back out when the block ends. It needs write access to a cgroup
file system (root, cgroup v1 ``cpu`` or v2 with the ``cpu`` controller): where there is none,
``cpu_share_unavailable()`` says why and a bench leaves that row out.
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
    """Why ``cpu_share`` cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root to create a cgroup"
    if (_V1 / "cpu.cfs_quota_us").exists() or "cpu" in _v2_controllers():
        return None
    return "no cgroup file system with the cpu controller (/sys/fs/cgroup)"


@contextlib.contextmanager
def cpu_share(share: float) -> Iterator[None]:
    """This process, all its threads, limited to ``share`` of one CPU inside the block."""
    quota_us = max(1000, round(share * PERIOD_US))
    pid = str(os.getpid())
    if (_V1 / "cpu.cfs_quota_us").exists():
        root, group = _V1, _V1 / f"bench-share-{pid}"
        group.mkdir()
        (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(quota_us))
    else:
        root, group = _V2, _V2 / f"bench-share-{pid}"
        if "cpu" not in (_V2 / "cgroup.subtree_control").read_text().split():
            (_V2 / "cgroup.subtree_control").write_text("+cpu")
        group.mkdir()
        (group / "cpu.max").write_text(f"{quota_us} {PERIOD_US}")
    home = _own_cgroup(root)
    try:
        (group / "cgroup.procs").write_text(pid)
        yield
    finally:
        (home / "cgroup.procs").write_text(pid)
        group.rmdir()


def _v2_controllers() -> set[str]:
    try:
        return set((_V2 / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def _own_cgroup(root: Path) -> Path:
    """The cgroup this process is in now, under ``root`` (where it goes back to)."""
    want = "cpu" if root == _V1 else ""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if want in controllers.split(",") or (not want and not controllers):
            return root / path.lstrip("/")
    return root
