"""Static checks of the runtime image's Dockerfile: every path it copies exists, dependencies
come from uv.lock, the entrypoint is awslambdaric. The image itself is built and run by
`.ci/run` when Docker can start (tests/test_runtime_image.py)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "packages" / "agent-runtime" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_every_copied_path_exists_in_the_repository() -> None:
    copies = [shlex.split(rest) for word, rest in instructions() if word == "COPY"]
    local = [args for args in copies if not any(a.startswith("--from=") for a in args)]
    assert "# syntax=" not in DOCKERFILE.read_text(), "a syntax line pulls a frontend image"
    assert local
    for args in local:
        sources = [a for a in args[:-1] if not a.startswith("--")]
        for source in sources:
            assert (REPO / source).exists(), f"Dockerfile copies {source}, which does not exist"
    copied = {s for args in local for s in args[:-1]}
    members = {p.relative_to(REPO).as_posix() for p in (REPO / "packages").glob("*/pyproject.toml")}
    assert members <= copied, "uv needs every workspace member's pyproject.toml"


def test_image_installs_dependencies_from_the_lock_before_copying_code() -> None:
    steps = instructions()
    runs = [rest for word, rest in steps if word == "RUN"]
    lock_step = next(i for i, (w, r) in enumerate(steps) if w == "RUN" and "uv export --frozen" in r)
    code_copy = next(i for i, (w, r) in enumerate(steps) if w == "COPY" and "agent-runtime/src" in r)
    assert lock_step < code_copy, "the dependency layer must come before the code so it stays cached"
    lock_run = next(r for r in runs if "uv export --frozen" in r)
    code_run = next(r for r in runs if "./packages/agent-runtime" in r)
    assert "--package agent-runtime" in lock_run and "--require-hashes" in lock_run
    assert "--compile-bytecode" in lock_run and "--compile-bytecode" in code_run
    assert "--no-deps" in code_run
    # The export the image runs works on this lock and carries the SDK with hashes.
    exported = subprocess.run(
        ["uv", "export", "--frozen", "--no-dev", "--no-emit-workspace", "--package", "agent-runtime"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.search(r"^claude-agent-sdk==", exported, re.M) and "--hash=sha256:" in exported
    assert not re.search(r"^(moto|pytest|telegram-producer)==", exported, re.M)


def test_image_is_python_313_from_an_argument_base_started_by_awslambdaric() -> None:
    steps = instructions()
    args = dict(rest.split("=", 1) for word, rest in steps if word == "ARG" and "=" in rest)
    assert args["BASE_IMAGE"].endswith("python:3.13-slim-trixie"), "a public multi-arch Python base"
    froms = [rest for word, rest in steps if word == "FROM"]
    # the build stage runs natively; the final stage is the (arm64) base and only copies
    assert froms[0].startswith("--platform=$BUILDPLATFORM ${BUILD_IMAGE}")
    assert froms[-1] == "--platform=linux/arm64 ${BASE_IMAGE}"
    final = steps[[i for i, (w, _) in enumerate(steps) if w == "FROM"][-1] :]
    assert not [r for w, r in final if w == "RUN"], "no emulated RUN steps in the arm64 stage"
    assert "aarch64" in args["WHEEL_PLATFORM"]
    steps = dict((w, r) for w, r in steps if w in {"ENTRYPOINT", "CMD", "USER"})
    assert steps["ENTRYPOINT"] == '["/opt/agentbot/bin/python", "-m", "awslambdaric"]'
    assert steps["CMD"] == '["agent_runtime.handler.handle"]'
    assert not steps["USER"].startswith("0") and steps["USER"] != "root"


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions, by its name (the last, unnamed one as "final")."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, rest in instructions():
        if word == "FROM":
            current = []
            stages[rest.split(" AS ")[-1] if " AS " in rest else "final"] = current
        current.append((word, rest))
    return stages


def test_the_build_fails_on_a_claude_config_the_runtime_would_refuse() -> None:
    """The image's claude-config is the copy a native stage loaded with the runtime's own check
    (agent_runtime.build_check, offline), looked up where and as the image has it: a mistake
    stops `sam build` naming the file and field instead of failing every message deployed."""
    stages = _stages()
    final = stages["final"]
    (config_copy,) = [shlex.split(r) for w, r in final if w == "COPY" and "claude-config" in r]
    source_stage = config_copy[0].removeprefix("--from=")
    steps = stages[source_stage]
    base = steps[0][1].split(" AS ")[0]
    origin = stages[base][0][1] if base in stages else base
    assert origin.startswith("--platform=$BUILDPLATFORM "), "the check runs natively, not emulated"
    copied = next(i for i, (w, r) in enumerate(steps) if w == "COPY" and r.startswith("claude-config "))
    image_path = shlex.split(steps[copied][1])[-1]
    assert config_copy[1:] == [image_path, image_path]
    check = next(i for i, (w, r) in enumerate(steps) if w == "RUN" and "-m agent_runtime.build_check" in r)
    assert copied < check
    run = steps[check][1]
    image_env = dict(
        item.split("=", 1) for w, r in final if w == "ENV" for item in shlex.split(r) if "=" in item
    )
    assert f"CLAUDE_CONFIG_PATH={image_env['CLAUDE_CONFIG_PATH']}" in run
    assert f"PATH={image_env['PATH']}" in run
    assert run.split()[-3] == "/opt/agentbot/bin/python"  # the interpreter ${PYTHON} names in the image
    installed = " ".join(r for w, r in steps[:check] if w == "RUN")
    assert "--require-hashes" in installed and "uv export --frozen" in installed


def test_doctor_checks_a_stacks_claude_config_with_the_images_own_variables() -> None:
    """`agentbot doctor --stack` loads claude-config with the runtime function's variables over
    the image's ENV and under Lambda's own: an mcp.json ``${HOME}`` the image gives passes there
    as it does in a container."""
    from agent_runtime import lambda_started_environment

    image_env = dict(
        item.split("=", 1)
        for w, r in _stages()["final"]
        if w == "ENV"
        for item in shlex.split(r)
        if "=" in item
    )
    started = lambda_started_environment({"SESSIONS_ROOT": "/tmp/elsewhere", "AWS_REGION": "xx-none-0"})

    assert {name: started[name] for name in image_env} == {**image_env, "SESSIONS_ROOT": "/tmp/elsewhere"}
    assert started["AWS_REGION"] != "xx-none-0" and started["AWS_LAMBDA_FUNCTION_NAME"]  # Lambda's own win
