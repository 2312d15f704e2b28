"""The house rules that tools can check: ruff clean everywhere, mypy strict on every workspace member."""

from __future__ import annotations

import fcntl
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

from agentbot_testing import kept_dir

ROOT = Path(__file__).resolve().parents[1]
MEMBER_SRCS = sorted(ROOT.glob("packages/*/src"))


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_finds_nothing() -> None:
    done = _run(sys.executable, "-m", "ruff", "check", ".", "--output-format", "concise")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_every_member_is_under_mypy_strict() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    strict = {m for o in config.get("overrides", []) if o.get("strict") for m in o["module"]}
    modules = {p.name for src in MEMBER_SRCS for p in src.iterdir() if (p / "__init__.py").is_file()}
    assert modules, "no workspace member found under packages/*/src"
    missing = sorted({f"{m}.*" for m in modules} - strict)
    assert not missing, f"not in a strict [[tool.mypy.overrides]] of pyproject.toml: {missing}"


def test_every_member_is_mypy_strict_clean() -> None:
    assert MEMBER_SRCS, "no workspace member found under packages/*/src"
    srcs = [str(src.relative_to(ROOT)) for src in MEMBER_SRCS]
    # One cache for every checkout (of one mypy version): mypy checks each cached module against
    # its source's hash, and a new clone's first run would otherwise spend ~20 CPU-s on boto3's
    # and the SDK's types. Locked: the cache is one SQLite database, and two checkouts' runs
    # writing it at once lose entries (or, in older mypy, fail).
    cache = kept_dir("mypy", importlib.metadata.version("mypy"))
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = _run(sys.executable, "-m", "mypy", "--cache-dir", str(cache), *srcs)
    assert done.returncode == 0, done.stdout[-4000:]
