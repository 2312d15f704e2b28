"""The test run compiles an environment's stale modules once: it must find exactly what an
import would recompile, and leave bytecode an import accepts as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from agentbot_testing._bytecode import compile_sources, stale_sources


def _import_writes_bytecode(folder: Path, module: str) -> bool:
    """Imports ``module`` from ``folder`` in a new interpreter; True when it wrote bytecode."""
    cached = folder / "__pycache__"
    before = {p: p.stat().st_mtime_ns for p in cached.glob("*.pyc")} if cached.exists() else {}
    subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=folder,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(folder)},
        check=True,
    )
    after = {p: p.stat().st_mtime_ns for p in cached.glob("*.pyc")} if cached.exists() else {}
    return after != before


def test_stale_is_what_an_import_would_recompile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # set where builds are reproducible: py_compile would then write hash-based bytecode
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000000000")
    for i in range(450):  # past the size that goes to the process pool
        (tmp_path / f"mod_{i}.py").write_text(f"VALUE = {i}\n")
    (tmp_path / "broken.py").write_text("def (:\n")  # left to fail at import, not here

    (tmp_path / "control.py").write_text("VALUE = -1\n")  # proves an import here would write
    assert _import_writes_bytecode(tmp_path, "control")
    (tmp_path / "control.py").unlink()

    assert len(stale_sources([tmp_path])) == 451
    compile_sources(stale_sources([tmp_path]))
    assert stale_sources([tmp_path]) == [str(tmp_path / "broken.py")]
    assert not _import_writes_bytecode(tmp_path, "mod_7")

    # an edit that keeps the size, dated in the past (as a checkout may date it): stale again
    source = tmp_path / "mod_8.py"
    source.write_text("VALUE = 9\n")
    os.utime(source, (1_000_000_000, 1_000_000_000))
    assert sorted(stale_sources([tmp_path])) == sorted([str(source), str(tmp_path / "broken.py")])
    compile_sources([str(source)])  # the small case: in this process
    assert not _import_writes_bytecode(tmp_path, "mod_8")
