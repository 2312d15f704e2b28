"""Per-package releases: the bump check in a scratch git repository, and every real wheel builds."""

from __future__ import annotations

import os
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

from agentbot.release import Version, build_wheels, check, main, untagged, workspace_packages

ROOT = Path(__file__).resolve().parents[1]
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, env={**os.environ, **_GIT_ENV}, check=True, capture_output=True, text=True
    ).stdout


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def member(repo: Path, name: str, version: str, deps: str = "") -> None:
    module = name.replace("-", "_")
    write(
        repo / "packages" / name / "pyproject.toml",
        f'[project]\nname = "{name}"\nversion = "{version}"\nreadme = "README.md"\n'
        f'dependencies = [{deps}]\n\n[build-system]\nrequires = ["uv_build"]\nbuild-backend = "uv_build"\n',
    )
    write(repo / "packages" / name / "README.md", f"# {name}\n")
    write(repo / "packages" / name / "src" / module / "__init__.py", f'__version__ = "{version}"\n')


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A workspace with packages alpha and beta, both released as 0.1.0."""
    write(tmp_path / "pyproject.toml", '[tool.uv.workspace]\nmembers = ["packages/*"]\n')
    member(tmp_path, "alpha", "0.1.0")
    member(tmp_path, "beta", "0.1.0")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "first")
    git(tmp_path, "tag", "alpha-v0.1.0")
    git(tmp_path, "tag", "beta-v0.1.0")
    return tmp_path


def commit(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")


def problems(repo: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for problem in check(repo):
        found[problem.package] = "; ".join(filter(None, [found.get(problem.package), problem.reason]))
    return found


def test_nothing_changed_is_releasable(repo: Path) -> None:
    assert problems(repo) == {}


def test_changed_code_without_a_bump_names_the_package_and_file(repo: Path) -> None:
    write(repo / "packages/alpha/src/alpha/work.py", "x = 1\n")
    commit(repo)
    found = problems(repo)
    assert set(found) == {"alpha"}
    assert "changed since alpha-v0.1.0 (packages/alpha/src/alpha/work.py)" in found["alpha"]
    assert "bump the version in packages/alpha/pyproject.toml" in found["alpha"]


def test_bumped_version_makes_it_releasable_again(repo: Path) -> None:
    write(repo / "packages/alpha/src/alpha/work.py", "x = 1\n")
    member(repo, "alpha", "0.2.0")
    commit(repo)
    assert problems(repo) == {}
    assert [p.tag for p in untagged(repo)] == ["alpha-v0.2.0"]


def test_uncommitted_and_untracked_changes_count(repo: Path) -> None:
    (repo / "packages/beta/src/beta/__init__.py").write_text('__version__ = "0.1.0"\nX = 2\n')
    write(repo / "packages/alpha/src/alpha/new.py", "y = 1\n")
    assert set(problems(repo)) == {"alpha", "beta"}


def test_tests_and_other_files_do_not_need_a_bump(repo: Path) -> None:
    write(repo / "packages/alpha/tests/test_alpha.py", "def test(): pass\n")
    write(repo / "docs/notes.md", "notes\n")
    commit(repo)
    assert problems(repo) == {}


def test_dependency_change_needs_a_bump_but_version_alone_does_not(repo: Path) -> None:
    text = (repo / "packages/beta/pyproject.toml").read_text()
    (repo / "packages/beta/pyproject.toml").write_text(
        text.replace("dependencies = []", 'dependencies = ["httpx"]')
    )
    assert "[project]/[build-system]" in problems(repo)["beta"]
    member(repo, "beta", "0.1.1", deps='"httpx"')
    assert problems(repo) == {}


def test_dunder_version_must_match_and_versions_never_go_back(repo: Path) -> None:
    (repo / "packages/alpha/src/alpha/__init__.py").write_text('__version__ = "9.9.9"\n')
    member(repo, "beta", "0.0.9")
    found = problems(repo)
    assert "__version__ = '9.9.9'" in found["alpha"]
    assert "lower than the last tag beta-v0.1.0" in found["beta"]


def test_latest_tag_counts_and_similar_names_do_not_mix(repo: Path) -> None:
    member(repo, "alpha", "0.3.0")
    commit(repo)
    git(repo, "tag", "alpha-v0.3.0")
    git(repo, "tag", "alpha-v0.10.0rc1", "HEAD~1")  # 0.10.0rc1 > 0.3.0: it is the last release
    assert "lower than the last tag alpha-v0.10.0rc1" in problems(repo)["alpha"]


def test_unreleased_package_is_fine_and_listed_for_tagging(repo: Path) -> None:
    member(repo, "gamma", "0.1.0")
    commit(repo)
    assert problems(repo) == {}
    assert [p.tag for p in untagged(repo)] == ["gamma-v0.1.0"]


def test_version_ordering() -> None:
    order = ["0.9.9", "1.0.0a1", "1.0.0b2", "1.0.0rc1", "1.0.0", "1.0.1", "1.10.0"]
    parsed = [Version.parse(v) for v in order]
    assert parsed == sorted(parsed) and None not in parsed
    assert Version.parse("1.0") is None and Version.parse("v1.0.0") is None


def test_check_command_exit_codes(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--root", str(repo)]) == 0
    write(repo / "packages/beta/src/beta/more.py", "z = 3\n")
    assert main(["check", "--root", str(repo)]) == 1
    assert "not releasable: beta: changed since beta-v0.1.0" in capsys.readouterr().err


def test_this_repository_is_releasable() -> None:
    assert [str(p) for p in check(ROOT)] == []


def test_every_workspace_package_builds_its_own_wheel(tmp_path: Path) -> None:
    """What CI runs: `uv build --package NAME` per package; each wheel carries its own version."""
    packages = {p.name: p for p in workspace_packages(ROOT)}
    assert {"agentbot", "session-core", "telegram-producer", "sqs-consumer", "agent-runtime"} <= set(packages)
    wheels = build_wheels(ROOT, tmp_path)
    assert len(wheels) == len(packages)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            metadata = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            fields = dict(
                line.split(": ", 1) for line in zf.read(metadata).decode().splitlines() if ": " in line
            )
            package = packages[fields["Name"]]
            assert fields["Version"] == package.version
            module = package.name.replace("-", "_")
            assert any(n.startswith(f"{module}/") for n in zf.namelist()), f"{wheel.name} lacks {module}/"
            declared = tomllib.loads((ROOT / package.pyproject).read_text())["project"]["version"]
            assert wheel.name.startswith(f"{module}-{declared}-")


def test_verify_tag_without_a_release_tag_says_the_form_and_this_commits_tags(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["verify-tag"], ["verify-tag", "foo"], ["verify-tag", "alpha-v9.9.9"]):
        assert main([*argv, "--root", str(repo)]) == 1
        err = capsys.readouterr().err
        assert "NAME-vX.Y.Z" in err and "alpha-v0.1.0, beta-v0.1.0" in err, err
    assert main(["verify-tag", "alpha-v9.9.9", "--root", str(repo)]) == 1
    assert "alpha is at 0.1.0" in capsys.readouterr().err
