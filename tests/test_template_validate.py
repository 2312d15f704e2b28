"""infra/template.yaml passes cfn-lint (with the SAM transform) and `sam validate`, and `sam build`
builds the zip functions: offline, with no AWS credentials.

The tools run through `uv tool run` in their own pinned environments: aws-sam-cli pins boto3
exactly and would fight the workspace's lock, and the transform-running cfn-lint is older
than the one moto pulls in. uv caches both, so after the first run each call takes seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agentbot_testing.template_support import ROOT, TEMPLATE, functions, load_template

pytestmark = pytest.mark.slow

# cfn-lint 1.53.x is the last line that runs the SAM transform (aws-sam-translator) before
# linting; later releases lint SAM resources against schemas without expanding them.
CFN_LINT = ("--from", "cfn-lint==1.53.3", "--with", "aws-sam-translator==1.115.0", "cfn-lint")
SAM_CLI = ("--from", "aws-sam-cli==1.170.0", "sam")


def _tool_env() -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE out: the tools' environments sit in uv's cache, and without their
    # bytecode saved every run compiles cfn-lint, botocore and the SAM translator again (a
    # cfn-lint run takes 7 s of CPU instead of 3.4).
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        # A region, and nowhere to find credentials: proves the checks need no AWS account.
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        SAM_CLI_TELEMETRY="0",
    )
    return env


@dataclass
class _Run:
    process: subprocess.Popen[str]
    output: str | None = None
    returncode: int | None = None

    def result(self, timeout: float = 300) -> tuple[int, str]:
        if self.output is None:
            self.output, _ = self.process.communicate(timeout=timeout)
            self.returncode = self.process.returncode
        assert self.returncode is not None
        return self.returncode, self.output


def _start(*args: str) -> _Run:
    uv = shutil.which("uv")
    assert uv, "uv is needed to run the pinned validators (pip install uv)"
    process = subprocess.Popen(
        [uv, "tool", "run", *args],
        cwd=ROOT,
        env=_tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return _Run(process)


ZIP_FUNCTIONS = [
    fid for fid, fn in functions(load_template()).items() if fn.properties.get("PackageType") != "Image"
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Start every validator and build at once (each is mostly interpreter start-up), then
    let the tests below collect their results."""
    work = tmp_path_factory.mktemp("sam")
    broken = work / "broken.yaml"
    # An event without its required Path: only the SAM transform notices.
    broken.write_text(TEMPLATE.read_text().replace("Path: /webhook", "Paths: /webhook"))
    started: dict[str, Any] = {
        "cfn-lint": _start(*CFN_LINT, "--regions", "us-east-1", "--", str(TEMPLATE)),
        "cfn-lint broken": _start(*CFN_LINT, "--regions", "us-east-1", "--", str(broken)),
        "sam validate": _start(
            *SAM_CLI, "validate", "--template-file", str(TEMPLATE), "--region", "us-east-1"
        ),
        "sam validate --lint": _start(
            *SAM_CLI, "validate", "--lint", "--template-file", str(TEMPLATE), "--region", "us-east-1"
        ),
    }
    for logical_id in ZIP_FUNCTIONS:
        build_dir = work / f"build-{logical_id}"
        started[f"sam build {logical_id}"] = _start(
            *SAM_CLI,
            "build",
            logical_id,
            "--template-file",
            str(TEMPLATE),
            "--build-dir",
            str(build_dir),
            "--cache-dir",
            str(work / f"cache-{logical_id}"),
        )
        started[f"artifact {logical_id}"] = build_dir / logical_id
    try:
        yield started
    finally:
        for run in started.values():
            if isinstance(run, _Run) and run.process.poll() is None:
                run.process.kill()
                run.process.wait()
        shutil.rmtree(work, ignore_errors=True)  # ~80 MB of builds the isolation test would grep


def test_cfn_lint_with_the_sam_transform_is_clean(runs: dict[str, Any]) -> None:
    code, output = runs["cfn-lint"].result()
    assert code == 0, output


def test_cfn_lint_runs_the_transform_and_catches_a_broken_event(runs: dict[str, Any]) -> None:
    code, output = runs["cfn-lint broken"].result()
    assert code != 0 and "Property 'Path' is required" in output, output


def test_sam_validate_is_clean(runs: dict[str, Any]) -> None:
    code, output = runs["sam validate"].result()
    assert code == 0 and "is a valid SAM Template" in output, output


def test_sam_validate_lint_is_clean(runs: dict[str, Any]) -> None:
    code, output = runs["sam validate --lint"].result()
    assert code == 0 and "is a valid SAM Template" in output, output


@pytest.mark.parametrize("logical_id", ZIP_FUNCTIONS)
def test_sam_build_packages_a_zip_function_for_arm64(runs: dict[str, Any], logical_id: str) -> None:
    """`sam build` (the image needs Docker, so the zip functions one by one) runs infra/Makefile
    and yields a self-contained artifact: handler, session-core, aarch64 wheels, no editable links,
    bytecode compiled by Python 3.12."""
    code, output = runs[f"sam build {logical_id}"].result()
    assert code == 0, output[-5000:]
    artifact: Path = runs[f"artifact {logical_id}"]
    module = functions(load_template())[logical_id].module
    assert (artifact / (module.replace(".", "/") + ".py")).is_file()
    assert (artifact / "session_core" / "__init__.py").is_file()
    assert list(artifact.glob("msgspec/_core.*aarch64-linux-gnu.so")), "msgspec must be the arm64 build"
    assert not list(artifact.glob("*.pth")), "a workspace package was installed editable"
    # /var/task is read-only: without bytecode for Lambda's Python every cold start compiles.
    assert (artifact / "session_core" / "__pycache__" / "__init__.cpython-312.pyc").is_file()
