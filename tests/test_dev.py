"""`agentbot dev` as a user runs it: the real command, piped stdin, the offline demo model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def _clean_env(marker: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "ANTHROPIC_", "CLAUDE_", "TELEGRAM_"))
    }
    env["AGENTBOT_TEST_MARKER"] = marker
    return env


def _run_dev(
    lines: list[str], *, marker: str, state_dir: Path | None = None, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "agentbot.cli", "dev", *extra]
    if state_dir is not None:
        command += ["--state-dir", str(state_dir)]
    return subprocess.run(
        command,
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        env=_clean_env(marker),
        timeout=240,
        check=False,
    )


def _state_root(stderr: str) -> str:
    found = re.search(r"^\s+state\s+(\S+)", stderr, re.M)
    assert found, stderr[-2000:]
    return found.group(1)


def _survivors(marker: str, state_root: str | None = None) -> list[str]:
    """Processes still carrying the run's marker, or its state directory (the agent's CLI runs
    with an explicit environment whose config and home directories live there)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        mentions_state = state_root is not None and state_root.encode() in environ
        if f"AGENTBOT_TEST_MARKER={marker}".encode() in environ or marker in cmdline or mentions_state:
            found.append(f"{proc.name}: {cmdline}")
    return found


def _replies(stdout: str) -> list[str]:
    """Each reply starts with 'bot> '; its further lines are indented by five spaces."""
    replies: list[str] = []
    for line in stdout.splitlines():
        if line.startswith("bot> "):
            replies.append(line[5:])
        elif line.startswith("     ") and replies:
            replies[-1] += "\n" + line[5:]
    return replies


def test_terminal_chat_resumes_the_session_and_commands_work(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    done = _run_dev(["hello there", "what did I say?", "/status", "/new", "and now?"], marker=marker)
    assert done.returncode == 0, done.stderr[-3000:]
    replies = _replies(done.stdout)
    assert len(replies) >= 5, (done.stdout, done.stderr[-3000:])
    first, second, status, new, after_new = replies[:5]
    # every reply of the offline model says so; the second saw the first turn from the store
    assert "offline demo model" in first and "offline demo model" in second
    assert re.search(r"\b0 earlier user turns?\b", first), first
    assert re.search(r"\b1 earlier user turn\b", second), second
    # the offline model bills nothing and says so
    assert "This conversation (since /new): 2 turns, $0 (nothing billed)" in status, status
    assert "[offline demo model, costs $0]" in first
    assert "fresh conversation" in new.lower()
    assert re.search(r"\b0 earlier user turns?\b", after_new), after_new
    # banner and one progress line per turn
    assert "AWS" in done.stderr and "offline demo model" in done.stderr
    assert re.search(r"update \d+: replied after [\d.]+ s", done.stderr)
    assert "cost $0 (nothing billed)" in done.stderr
    assert _survivors(marker, _state_root(done.stderr)) == []


def test_aws_endpoint_runs_the_bot_against_the_test_aws(aws_backend: Any) -> None:
    """`--aws-endpoint`: the test session's AWS (LocalStack's S3 and SQS when it runs, per
    service; DynamoDB and SSM on the embedded moto server), as a user points it at LocalStack."""
    from agentbot.local_aws import local_client

    marker = uuid.uuid4().hex
    if aws_backend.services:
        extra = tuple(f"--aws-endpoint={s}={url}" for s, url in sorted(aws_backend.services.items()))
    else:
        extra = (f"--aws-endpoint={aws_backend.default}",)
    done = _run_dev(["hello endpoint", "again"], marker=marker, extra=extra)
    assert done.returncode == 0, done.stderr[-3000:]
    replies = _replies(done.stdout)
    assert len(replies) == 2 and re.search(r"\b1 earlier user turn\b", replies[1]), done.stdout
    s3 = local_client("s3", aws_backend.url_for("s3"))
    sqs = local_client("sqs", aws_backend.url_for("sqs"))
    assert any(b["Name"].startswith("agentbot-dev") for b in s3.list_buckets()["Buckets"])
    assert any("agentbot-dev" in q for q in sqs.list_queues().get("QueueUrls", []))
    assert _survivors(marker, _state_root(done.stderr)) == []


def test_state_dir_keeps_the_session_across_restarts(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    state = tmp_path / "state"
    first = _run_dev(["remember the word heron"], marker=marker, state_dir=state)
    assert first.returncode == 0, first.stderr[-3000:]
    assert re.search(r"\b0 earlier user turns?\b", _replies(first.stdout)[0])
    second = _run_dev(["which word?"], marker=marker, state_dir=state)
    assert second.returncode == 0, second.stderr[-3000:]
    reply = _replies(second.stdout)[0]
    assert re.search(r"\b1 earlier user turn\b", reply), reply
    assert _survivors(marker, str(state.resolve())) == []


def test_ctrl_c_stops_everything_and_leaves_no_process_behind() -> None:
    import signal
    import time

    marker = uuid.uuid4().hex
    process = subprocess.Popen(
        [sys.executable, "-m", "agentbot.cli", "dev"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_clean_env(marker),
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("hello\n")
        process.stdin.flush()
        first = process.stdout.readline()  # blocks until the first reply is printed
        assert first.startswith("bot> ") and "offline demo model" in first
        assert _survivors(marker)  # the functions' processes are running now
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
        stderr = process.stderr.read() if process.stderr else ""
        assert "stopped" in stderr
        state_root = _state_root(stderr)
    finally:
        if process.poll() is None:
            process.kill()
    deadline = time.monotonic() + 10
    while _survivors(marker, state_root) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _survivors(marker, state_root) == []


def _start_fails(
    marker: str,
    *,
    extra_env: dict[str, str],
    args: list[str] = (),  # type: ignore[assignment]
) -> subprocess.CompletedProcess[str]:
    env = {**_clean_env(marker), **extra_env}
    return subprocess.run(
        [sys.executable, "-m", "agentbot.cli", "dev", *args],
        input="",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("case", "fix"),
    [
        ("wrong token", "copy the token from @BotFather again"),
        ("telegram unreachable", "check the network"),
        ("bad aws endpoint", "--aws-endpoint http://127.0.0.1:9"),
        ("unknown aws profile", "--aws-profile no-such-profile: no such profile"),
    ],
)
def test_a_start_up_mistake_is_one_line_without_traceback_or_token(
    case: str, fix: str, tmp_path: Path
) -> None:
    from agentbot.local_telegram import LocalTelegram

    token = "7000002:AAH-real-looking-token-SHOULD-NOT-PRINT"
    marker = uuid.uuid4().hex
    with LocalTelegram(token="7000002:the-right-token") as telegram:
        env = {"TELEGRAM_BOT_TOKEN": token, "TELEGRAM_API_BASE": telegram.base_url}
        args: list[str] = []
        if case == "telegram unreachable":
            env["TELEGRAM_API_BASE"] = "http://127.0.0.1:9"
        elif case == "bad aws endpoint":
            env = {"AWS_MAX_ATTEMPTS": "1", "AWS_CONNECT_TIMEOUT": "2"}
            args = ["--aws-endpoint", "http://127.0.0.1:9"]
        elif case == "unknown aws profile":
            (tmp_path / "config").write_text("[profile other]\nregion = eu-west-1\n")
            env = {
                "AWS_CONFIG_FILE": str(tmp_path / "config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "c"),
            }
            args = ["--aws-profile", "no-such-profile"]
        done = _start_fails(marker, extra_env=env, args=args)
    said = done.stdout + done.stderr
    assert done.returncode == 2, said[-3000:]
    assert "Traceback" not in said and token not in said
    failure = [line for line in done.stderr.splitlines() if "cannot start" in line]
    assert len(failure) == 1 and fix in failure[0], done.stderr[-2000:]
    assert _survivors(marker) == []


def test_a_real_token_without_an_allow_list_is_warned_about_in_the_banner() -> None:
    import signal
    import time

    from agentbot.local_telegram import LocalTelegram

    token = "7000003:AAH-fake-token"
    marker = uuid.uuid4().hex
    with LocalTelegram(token=token, bot_username="my_real_bot") as telegram:
        env = {**_clean_env(marker), "TELEGRAM_BOT_TOKEN": token, "TELEGRAM_API_BASE": telegram.base_url}
        process = subprocess.Popen(
            [sys.executable, "-m", "agentbot.cli", "dev"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert telegram.wait_for(lambda t: bool(t.calls("getUpdates")), timeout_s=60)
            time.sleep(0.5)
        finally:
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=60)
    warning = [line for line in stderr.splitlines() if "WARNING" in line]
    assert len(warning) == 1 and "ALLOWED_USER_IDS" in warning[0] and "run commands" in warning[0]
    assert token not in stderr
