"""Per-package releases of the uv workspace: each package has its own version and tag.

Tag scheme: ``NAME-vX.Y.Z`` (``session-core-v0.2.0``, ``agentbot-v1.0.0``), on the commit
whose ``pyproject.toml`` carries that version. A package has changed since its last tag when
what its wheel is built from differs: files under its ``src/``, its README, or its
``pyproject.toml`` ``[project]`` / ``[build-system]`` tables (the version aside). Tests and
other files do not count. A changed package must carry a higher version than its last tag.

    python -m agentbot.release check          # exit 1 naming each changed package not bumped
    python -m agentbot.release tags           # the tags to create for versions not yet tagged
    python -m agentbot.release build --out D  # `uv build --package NAME` for every package
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# X.Y.Z with an optional pre-release (PEP 440 subset): what the tag scheme accepts.
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:(a|b|rc)(\d+))?")
_PRE_ORDER = {"a": 0, "b": 1, "rc": 2, None: 3}
_DUNDER_VERSION = re.compile(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", re.M)


class ReleaseError(Exception):
    """Raised when the workspace or git cannot be read (not a repository, bad pyproject)."""


@dataclass(frozen=True, order=True)
class Version:
    """A version of the form X.Y.Z[aN|bN|rcN], ordered like PEP 440."""

    key: tuple[int, int, int, int, int]
    text: str

    @classmethod
    def parse(cls, text: str) -> Version | None:
        """The version, or None when ``text`` is not of the form X.Y.Z[aN|bN|rcN]."""
        match = _VERSION.fullmatch(text.strip())
        if match is None:
            return None
        major, minor, patch, pre, pre_n = match.groups()
        key = (int(major), int(minor), int(patch), _PRE_ORDER[pre], int(pre_n or 0))
        return cls(key=key, text=text.strip())

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Package:
    """One distribution of the workspace and the paths its wheel is built from."""

    name: str
    version: str
    directory: Path  # relative to the repository root ("." for the root project)
    project: dict[str, Any]  # the [project] table
    build_system: dict[str, Any]

    @property
    def pyproject(self) -> Path:
        return self.directory / "pyproject.toml"

    @property
    def tag(self) -> str:
        """The tag this version gets: ``NAME-vX.Y.Z``."""
        return f"{self.name}-v{self.version}"

    @property
    def sources(self) -> list[Path]:
        """Paths whose content goes into the wheel (besides pyproject.toml)."""
        paths = [self.directory / "src"]
        readme = self.project.get("readme")
        if isinstance(readme, str):
            paths.append(self.directory / readme)
        return paths


@dataclass(frozen=True)
class Problem:
    """A package that cannot be released as it is; ``reason`` says what to fix."""

    package: str
    reason: str

    def __str__(self) -> str:
        return f"{self.package}: {self.reason}"


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=60
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise ReleaseError(f"git {' '.join(args)} failed in {root}: {detail.strip()}") from exc
    return done.stdout


def _read_package(root: Path, directory: Path) -> Package:
    path = root / directory / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        project = data["project"]
        return Package(
            name=project["name"],
            version=project["version"],
            directory=directory,
            project=project,
            build_system=data.get("build-system", {}),
        )
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise ReleaseError(f"{path}: cannot read [project] name and version ({exc})") from exc


def workspace_packages(root: Path) -> list[Package]:
    """The root project and every workspace member (``[tool.uv.workspace] members``)."""
    root_pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    packages = [_read_package(root, Path("."))] if "project" in root_pyproject else []
    members = root_pyproject.get("tool", {}).get("uv", {}).get("workspace", {}).get("members", [])
    for pattern in members:
        for directory in sorted(root.glob(pattern)):
            if (directory / "pyproject.toml").is_file():
                packages.append(_read_package(root, directory.relative_to(root)))
    return packages


def last_release(root: Path, package: Package) -> tuple[str, Version] | None:
    """The highest ``NAME-vX.Y.Z`` tag of ``package``, or None when it was never released."""
    prefix = f"{package.name}-v"
    found = []
    for tag in _git(root, "tag", "--list", f"{prefix}*").split():
        version = Version.parse(tag[len(prefix) :])
        if version is not None:  # `session-core-v…` never matches `session-core-extra-v…`
            found.append((version, tag))
    if not found:
        return None
    version, tag = max(found)
    return tag, version


def _wheel_tables(package: Package) -> dict[str, Any]:
    project = {k: v for k, v in package.project.items() if k != "version"}
    return {"project": project, "build-system": package.build_system}


def changes_since(root: Path, package: Package, tag: str) -> list[str]:
    """What of the package's wheel inputs differs between ``tag`` and the working tree."""
    paths = [str(p) for p in package.sources]
    changed = set(_git(root, "diff", "--name-only", tag, "--", *paths).split())
    changed |= set(_git(root, "ls-files", "--others", "--exclude-standard", "--", *paths).split())
    try:
        then = tomllib.loads(_git(root, "show", f"{tag}:{package.pyproject.as_posix()}"))
        tagged = Package(
            name=package.name,
            version="",
            directory=package.directory,
            project=then.get("project", {}),
            build_system=then.get("build-system", {}),
        )
        if _wheel_tables(tagged) != _wheel_tables(package):
            changed.add(f"{package.pyproject.as_posix()} [project]/[build-system]")
    except ReleaseError:
        changed.add(f"{package.pyproject.as_posix()} (not in {tag})")
    return sorted(c for c in changed if not c.endswith(".pyc") and "__pycache__" not in c)


def _dunder_versions(root: Path, package: Package) -> list[tuple[Path, str]]:
    found = []
    for init in sorted((root / package.directory / "src").glob("*/__init__.py")):
        match = _DUNDER_VERSION.search(init.read_text(encoding="utf-8"))
        if match:
            found.append((init.relative_to(root), match.group(1)))
    return found


def check(root: Path) -> list[Problem]:
    """Every reason a package cannot be released as it stands (empty list = all fine)."""
    problems = []
    for package in workspace_packages(root):
        version = Version.parse(package.version)
        if version is None:
            problems.append(Problem(package.name, f"version {package.version!r} is not X.Y.Z[aN|bN|rcN]"))
            continue
        for init, declared in _dunder_versions(root, package):
            if declared != package.version:
                problems.append(
                    Problem(
                        package.name,
                        f"{init} says __version__ = {declared!r}, pyproject.toml {package.version!r}",
                    )
                )
        released = last_release(root, package)
        if released is None:
            continue
        tag, tagged = released
        if version < tagged:
            problems.append(Problem(package.name, f"version {version} is lower than the last tag {tag}"))
            continue
        if version == tagged:
            changed = changes_since(root, package, tag)
            if changed:
                shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
                problems.append(
                    Problem(
                        package.name,
                        f"changed since {tag} ({shown}) but still at {version}: bump the version in "
                        f"{package.pyproject.as_posix()}",
                    )
                )
    return problems


def untagged(root: Path) -> list[Package]:
    """Packages whose current version has no tag yet (the tags a release would create)."""
    tags = set(_git(root, "tag", "--list").split())
    return [p for p in workspace_packages(root) if p.tag not in tags]


def build_wheels(root: Path, out: Path, *, uv: str | None = None) -> list[Path]:
    """Build every package's wheel with ``uv build --package NAME``; the wheel paths."""
    uv = uv or shutil.which("uv")
    if uv is None:
        raise ReleaseError("uv is not on PATH (pip install uv)")
    out.mkdir(parents=True, exist_ok=True)
    wheels = []
    for package in workspace_packages(root):
        before = set(out.glob("*.whl"))
        subprocess.run(
            [uv, "build", "--quiet", "--package", package.name, "--wheel", "--out-dir", str(out)],
            cwd=root,
            check=True,
            timeout=300,
        )
        wheels.extend(sorted(set(out.glob("*.whl")) - before))
    return wheels


def verify_tag(root: Path, tag: str) -> Package:
    """The package a release tag ``NAME-vX.Y.Z`` names, once its version is the tag's and
    ``check`` passes; raises ReleaseError saying what does not match."""
    packages = {p.tag: p for p in workspace_packages(root)}
    if tag not in packages:
        names = [p.name for p in packages.values() if tag.startswith(f"{p.name}-v")]
        found = f"{names[0]} is at {packages_by_name(packages)[names[0]].version}" if names else "no package"
        this_commit = ", ".join(sorted(packages))
        raise ReleaseError(
            f"tag {tag!r} names no package version of this commit ({found}); a release tag is "
            f"NAME-vX.Y.Z, this commit's are: {this_commit}"
        )
    problems = check(root)
    if problems:
        raise ReleaseError("; ".join(str(p) for p in problems))
    return packages[tag]


def packages_by_name(packages: dict[str, Package]) -> dict[str, Package]:
    return {p.name: p for p in packages.values()}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agentbot.release check|tags|build|verify-tag TAG``."""
    parser = argparse.ArgumentParser(
        prog="python -m agentbot.release",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["check", "tags", "build", "verify-tag"])
    parser.add_argument("tag", nargs="?", help="verify-tag: the pushed tag, NAME-vX.Y.Z")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: .)")
    parser.add_argument("--out", type=Path, default=Path("dist"), help="where `build` puts wheels")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.action == "check":
            problems = check(root)
            for problem in problems:
                print(f"not releasable: {problem}", file=sys.stderr)
            if not problems:
                print("every package's version matches its changes")
            return 1 if problems else 0
        if args.action == "verify-tag":
            package = verify_tag(root, args.tag or "")
            # key=value lines, for $GITHUB_OUTPUT
            print(f"package={package.name}\nversion={package.version}\ndirectory={package.directory}")
            return 0
        if args.action == "tags":
            for package in untagged(root):
                print(f"git tag {package.tag}")
            return 0
        for wheel in build_wheels(root, args.out):
            print(wheel)
        return 0
    except (ReleaseError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
