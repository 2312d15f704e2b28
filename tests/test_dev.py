"""`agentbot dev` as a user runs it: the real command, piped stdin, the offline demo model."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.failing_credential_processes import FAILING_CREDENTIAL_PROCESSES

pytestmark = pytest.mark.slow


def _clean_env(marker: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "ANTHROPIC_", "CLAUDE_", "TELEGRAM_"))
    }
    env["AGENTBOT_TEST_MARKER"] = marker
    env["DEEPWIKI_MCP_URL"] = "http://127.0.0.1:9/mcp"  # unreachable everywhere, internet or not
    return env


def _run_dev(
    lines: list[str],
    *,
    marker: str,
    state_dir: Path | None = None,
    extra: tuple[str, ...] = (),
    shell: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "agentbot.cli", "dev", *extra]
    if state_dir is not None:
        command += ["--state-dir", str(state_dir)]
    return subprocess.run(
        command,
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        env={**_clean_env(marker), **(shell or {})},
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


def test_terminal_chat_resumes_the_session_commands_work_and_a_state_dir_keeps_it_across_restarts(
    agent_tmp_path: Path,
) -> None:
    """The demo model's message and tool ids must not repeat those of the restored transcript."""
    marker = uuid.uuid4().hex
    state = agent_tmp_path / "state"
    lines = [
        *("hello there", "what did I say?", "and before that?", "/status", "/new"),
        *("and now?", "run echo first-run-output"),
    ]
    done = _run_dev(lines, marker=marker, state_dir=state)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "you> " not in done.stdout and done.stdout.startswith("bot> ")  # piped input: no prompt
    replies = _replies(done.stdout)
    assert len(replies) >= 7, (done.stdout, done.stderr[-3000:])
    first, second, _, status, new, after_new, tool = replies[:7]
    # every reply of the offline model says so; the second saw the first turn from the store
    assert "offline demo model" in first and "offline demo model" in second
    assert re.search(r"\b0 earlier user turns?\b", first), first
    assert re.search(r"\b1 earlier user turn\b", second), second
    # the offline model bills nothing and says so
    assert "This conversation (since /new): 3 turns, $0 (nothing billed)" in status, status
    assert "[offline demo model, costs $0]" in first
    assert "fresh conversation" in new.lower()
    assert re.search(r"\b0 earlier user turns?\b", after_new), after_new
    assert "first-run-output" in tool, tool
    # banner and one progress line per turn
    assert "AWS" in done.stderr and "offline demo model" in done.stderr
    assert re.search(r"update \d+: replied after [\d.]+ s", done.stderr)
    assert "cost $0 (nothing billed)" in done.stderr
    # The MCP server it could not reach is named once, not once per turn.
    unreachable = "warning: MCP server 'deepwiki' failed: the agent ran without its tools"
    assert done.stderr.count(unreachable) == 1, done.stderr[-3000:]
    assert _survivors(marker, str(state.resolve())) == []

    # started again on the same state directory: the conversation since /new (2 turns, not the
    # 3 before it) goes on
    again = _run_dev(["which word?", "run echo second-run-output"], marker=marker, state_dir=state)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed, tool = _replies(again.stdout)
    assert re.search(r"\b2 earlier user turns\b", resumed), resumed
    assert "The tool ran" in tool and "second-run-output" in tool, tool
    assert "(no content)" not in tool
    assert _survivors(marker, str(state.resolve())) == []


def test_aws_endpoint_runs_the_bot_against_the_test_aws_and_an_approved_call_runs_once(
    aws_backend: Any, tmp_path: Path
) -> None:
    """`--aws-endpoint`: the test session's AWS (LocalStack's S3 and SQS when it runs, per
    service; DynamoDB and SSM on the embedded moto server), as a user points it at LocalStack.
    The run's secrets (bot token, API key) stay in the embedded moto server's SSM: an endpoint
    such as LocalStack lets anything that reaches it read them, and may keep them on disk.

    [I] The shipped claude-config asks before a Bash command that is not read-only: the
    terminal shows the call and how to answer; /allow runs it, once."""
    from local_stack import local_client

    marker = uuid.uuid4().hex
    target = tmp_path / "made-by-the-agent"
    if aws_backend.services:
        extra = tuple(f"--aws-endpoint={s}={url}" for s, url in sorted(aws_backend.services.items()))
    else:
        extra = (f"--aws-endpoint={aws_backend.default}",)
    lines = ["hello endpoint", "again", f"run touch {target}; echo touched-{marker}", "/allow", "/allow"]
    done = _run_dev(lines, marker=marker, extra=extra)
    assert done.returncode == 0, done.stderr[-3000:]
    replies = _replies(done.stdout)
    assert re.search(r"\b1 earlier user turn\b", replies[1]), done.stdout
    s3 = local_client("s3", aws_backend.url_for("s3"))
    sqs = local_client("sqs", aws_backend.url_for("sqs"))
    assert any(b["Name"].startswith("agentbot-dev") for b in s3.list_buckets()["Buckets"])
    assert sqs.list_queues(QueueNamePrefix="agentbot-dev").get("QueueUrls")  # (unnamed: 1,000 at most)
    ssm = local_client("ssm", aws_backend.url_for("ssm"))
    assert ssm.get_parameters_by_path(Path="/agentbot-dev", Recursive=True)["Parameters"] == []

    asked = next(r for r in replies if "May I run this?" in r and f"touch {target}" in r)
    assert "/allow, /always or /deny" in done.stdout
    ran = [r for r in replies if f"touched-{marker}" in r and "The tool ran" in r]
    assert len(ran) == 1, replies
    assert replies.index(asked) < replies.index(ran[0])
    assert any("Allowed once by" in r for r in replies), replies  # the asking message, edited
    assert "nothing is waiting for your approval" in done.stdout  # the second /allow
    assert _survivors(marker, _state_root(done.stderr)) == []


def test_aws_endpoints_left_in_the_shell_do_not_reach_devs_functions() -> None:
    """A shell holding another stack's AWS_ENDPOINT_URL_<SERVICE> (LocalStack's, a finished
    test's) passed them on to the functions, whose reads then went there instead of to the
    AWS dev chose: every message failed. The functions get only the endpoints dev chose."""
    marker = uuid.uuid4().hex
    nowhere = "http://127.0.0.1:9"  # nothing listens: a read sent there fails
    shell = {f"AWS_ENDPOINT_URL_{service}": nowhere for service in ("DYNAMODB", "S3", "SQS", "SSM", "STS")}

    done = _run_dev(["hello there"], marker=marker, shell=shell)

    assert done.returncode == 0, done.stderr[-3000:]
    replies = _replies(done.stdout)
    assert len(replies) == 1 and "offline demo model" in replies[0], (done.stdout, done.stderr[-3000:])
    assert _survivors(marker, _state_root(done.stderr)) == []


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
        ("aws endpoint without scheme", "--aws-endpoint 'localhost:4566' is not an http(s) URL"),
        ("aws endpoint port out of range", "Port out of range"),
        ("aws endpoint of an unknown service", "'dynamdb' is not one of the services"),
        (
            "ssm endpoint elsewhere",
            "--aws-endpoint ssm=http://192.0.2.7:4566: the run's secrets (bot token, API key, AWS "
            "credentials) stay on the embedded moto server",
        ),
        # LocalStack on this machine answers anyone who reaches it: the agent's tools too
        (
            "ssm endpoint on this machine",
            "--aws-endpoint ssm=http://127.0.0.1:4566: the run's secrets (bot token, API key, AWS "
            "credentials) stay on the embedded moto server",
        ),
        ("state dir that is a file", "not usable as a directory (it is a file)"),
        ("state dir it cannot write", "cannot write"),
        ("unknown aws profile", "--aws-profile no-such-profile: no such profile"),
        # boto3 reads it for dev's own clients too, whatever AWS they reach
        (
            "unknown AWS_PROFILE in the shell",
            "AWS_PROFILE=no-such-profile: no such profile in ~/.aws/config or ~/.aws/credentials "
            "(known: other;",
        ),
        ("bad webhook secret", "TELEGRAM_WEBHOOK_SECRET: must be 16-256 characters"),
        # the same line `agentbot doctor` shows (test_doctor)
        ("bad limit in the shell", "RATE_LIMIT_USER_PER_MINUTE: must be an integer, got 'lots'"),
        # the runtime's own setting, from the same shell: said to fix it there, not "set it"
        (
            "bad runtime setting in the shell",
            "LEASE_DURATION_S: must be >= 3, got 1; fix or unset it in your shell",
        ),
        (
            "runtime limit longer than any turn in the shell",
            "MODEL_TIMEOUT_MS: 3600000 ms must be at most 900000 ms (900 s, the longest a turn runs",
        ),
        ("key and bedrock both set", "ANTHROPIC_API_KEY and CLAUDE_CODE_USE_BEDROCK are both set: unset"),
        ("http webhook url", "--webhook-url http://tunnel.example/hook: 'http://tunnel.example/hook' is not"),
        ("webhook url without token", "--webhook-url needs TELEGRAM_BOT_TOKEN"),
    ],
)
def test_a_start_up_mistake_is_one_line_without_traceback_or_token(
    case: str, fix: str, tmp_path: Path
) -> None:
    from local_stack import LocalTelegram

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
        elif case == "aws endpoint without scheme":
            args = ["--aws-endpoint", "localhost:4566"]
        elif case == "aws endpoint port out of range":
            args = ["--aws-endpoint", "http://127.0.0.1:99999"]
        elif case == "aws endpoint of an unknown service":
            args = ["--aws-endpoint", "dynamdb=http://127.0.0.1:4566"]
        elif case == "ssm endpoint elsewhere":  # LocalStack on another host (TEST-NET-1: none)
            env = {"AWS_MAX_ATTEMPTS": "1", "AWS_CONNECT_TIMEOUT": "2"}
            args = ["--aws-endpoint", "http://192.0.2.7:4566", "--aws-endpoint", "ssm=http://192.0.2.7:4566"]
        elif case == "ssm endpoint on this machine":  # (nothing listens there: no call is made)
            args = ["--aws-endpoint", "ssm=http://127.0.0.1:4566"]
        elif case == "state dir that is a file":
            (tmp_path / "state").write_text("")
            args = ["--state-dir", str(tmp_path / "state")]
        elif case == "state dir it cannot write":
            # Root writes any directory, so the lock is made unopenable instead: the same refusal
            # as a read-only directory's (EACCES) for a user.
            (tmp_path / "state" / ".agentbot-dev.lock").mkdir(parents=True)
            args = ["--state-dir", str(tmp_path / "state")]
        elif case == "unknown aws profile":
            (tmp_path / "config").write_text("[profile other]\nregion = eu-west-1\n")
            env = {
                "AWS_CONFIG_FILE": str(tmp_path / "config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "c"),
            }
            args = ["--aws-profile", "no-such-profile"]
        elif case == "unknown AWS_PROFILE in the shell":
            (tmp_path / "config").write_text("[profile other]\nregion = eu-west-1\n")
            env = {"AWS_CONFIG_FILE": str(tmp_path / "config"), "AWS_PROFILE": "no-such-profile"}
        elif case == "bad webhook secret":
            env["TELEGRAM_WEBHOOK_SECRET"] = "bad secret!"
        elif case == "bad limit in the shell":
            env["RATE_LIMIT_USER_PER_MINUTE"] = "lots"
        elif case == "key and bedrock both set":  # dev took the key, its runtime Bedrock
            env = {"ANTHROPIC_API_KEY": "sk-ant-x", "CLAUDE_CODE_USE_BEDROCK": "1"}
        elif case == "bad runtime setting in the shell":
            env = {"LEASE_DURATION_S": "1"}  # checked once AWS is up: after the token's check
        elif case == "runtime limit longer than any turn in the shell":
            env = {"MODEL_TIMEOUT_MS": "3600000"}
        elif case == "http webhook url":
            args = ["--webhook-url", "http://tunnel.example/hook"]
        elif case == "webhook url without token":
            env = {}
            args = ["--webhook-url", "https://tunnel.example/hook"]
        done = _start_fails(marker, extra_env=env, args=args)
    said = done.stdout + done.stderr
    assert done.returncode == 2, said[-3000:]
    assert "Traceback" not in said and token not in said
    failure = [line for line in done.stderr.splitlines() if "cannot start" in line]
    assert len(failure) == 1 and fix in failure[0], done.stderr[-2000:]
    assert _survivors(marker) == []


@pytest.mark.parametrize(
    ("profile_given", "named"),
    [
        # dev's own AWS through it
        ("--aws-profile", "--aws-profile broken"),
        # the shell's profile, whose credentials dev hands the runtime for Bedrock
        ("AWS_PROFILE", "AWS profile broken"),
    ],
)
@pytest.mark.parametrize("process", FAILING_CREDENTIAL_PROCESSES)
def test_a_profile_whose_credential_process_fails_is_one_line_without_its_output(
    profile_given: str, named: str, process: str, tmp_path: Path
) -> None:
    """A credential_process that exits 1 stopped the start with a traceback ending in what the
    process wrote, which may be a credential; said how it fails, "CredentialRetrievalError"
    did not say which part of the profile to look at. One whose program is not there, or that
    writes no JSON, still stopped it with a traceback after that."""
    written = "PROCESS-WROTE-" + uuid.uuid4().hex
    (tmp_path / "config").write_text(
        f"[profile broken]\nregion = eu-west-1\ncredential_process = {process.format(written=written)}\n"
    )
    env = {"AWS_CONFIG_FILE": str(tmp_path / "config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "c")}
    args: list[str] = []
    if profile_given == "--aws-profile":
        args = ["--aws-profile", "broken"]
    else:
        env |= {
            "AWS_PROFILE": "broken",
            "CLAUDE_CODE_USE_BEDROCK": "1",
            "BEDROCK_MODEL_ID": "anthropic.x-v1:0",
        }
    marker = uuid.uuid4().hex

    done = _start_fails(marker, extra_env=env, args=args)

    said = done.stdout + done.stderr
    assert done.returncode == 2, said[-3000:]
    assert "Traceback" not in said and written not in said, said[-3000:]
    failure = [line for line in done.stderr.splitlines() if "cannot start" in line]
    assert len(failure) == 1 and f"{named}: its credential_process failed" in failure[0], done.stderr[-2000:]
    assert _survivors(marker) == []


def test_aws_profile_takes_the_region_aws_region_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """boto3 reads AWS_DEFAULT_REGION only: with the README's `export AWS_REGION=eu-central-1`
    and a profile without a region, `--aws-profile` made its resources in us-east-1."""
    from agentbot.dev import _profile_aws

    (tmp_path / "config").write_text("[profile dev]\n")
    (tmp_path / "credentials").write_text("[dev]\naws_access_key_id = AKIDEV\naws_secret_access_key = s\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-central-1")

    label, env, _credentials = _profile_aws("dev")

    assert label == "real AWS, profile dev (eu-central-1)"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-central-1"


@pytest.mark.parametrize("whose", ["another user's", "anyone's to write"])
def test_a_state_dir_the_agent_could_have_made_or_can_write_is_refused(whose: str, tmp_path: Path) -> None:
    """The agent runs as another user: a state directory it owns, or may write, would let it
    put links where the run writes every chat's sessions."""
    state = tmp_path / "state"
    state.mkdir()
    if whose == "another user's":
        if os.geteuid() != 0:
            pytest.skip("only root can give a directory to another user")
        os.chown(state, 65534, 65534)
        said = "it belongs to another user; choose a directory of your own"
    else:
        state.chmod(0o777)
        said = f"every user may write it; chmod o-w {state}"
    done = _start_fails(uuid.uuid4().hex, extra_env={}, args=["--state-dir", str(state)])
    assert done.returncode == 2, done.stderr[-2000:]
    assert said in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not (state / "aws").exists() and not (state / "functions.log").exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--webhook-port", "70000"], "70000 is not a port (0 for any free one, up to 65535)"),
        (["--tenant", "a/b"], "argument --tenant: use 1-32 characters"),  # the flag, not TENANT
        # --state-dir "$UNSET": not the current directory (the checkout) by accident
        (["--state-dir", ""], "argument --state-dir: is empty; name a directory"),
        # dev's own usage, not the top-level one, and the flag meant
        (
            ["--state_dir", "/tmp/x"],
            "agentbot dev: error: unrecognized arguments: --state_dir /tmp/x (did you mean --state-dir?)",
        ),
    ],
    ids=["webhook_port", "tenant", "empty_state_dir", "misspelt_flag"],
)
def test_a_bad_flag_value_is_refused_naming_the_flag_before_anything_starts(
    args: list[str], said: str
) -> None:
    done = _start_fails(uuid.uuid4().hex, extra_env={}, args=args)
    assert done.returncode == 2
    assert said in done.stderr
    assert "Traceback" not in done.stderr


def test_when_its_output_is_closed_it_stops_and_leaves_nothing_running(agent_tmp_path: Path) -> None:
    """`agentbot dev | head -3`: nobody reads the replies any more, so it stops (as for SIGPIPE)."""
    marker = uuid.uuid4().hex
    dev = subprocess.Popen(
        [sys.executable, "-m", "agentbot.cli", "dev", "--state-dir", str(agent_tmp_path / "state")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_clean_env(marker),
    )
    assert dev.stdin is not None and dev.stdout is not None
    try:
        dev.stdin.write("hello\n")
        dev.stdin.flush()
        assert dev.stdout.readline().startswith("agentbot dev")  # the banner's first line
        dev.stdout.close()  # the reader goes away, as `head` does
        assert dev.wait(timeout=60) == 141
    finally:
        dev.kill()
        dev.wait()
    assert _survivors(marker, str(agent_tmp_path / "state")) == []


def test_a_state_dir_another_run_uses_is_refused(tmp_path: Path) -> None:
    """Two runs on one --state-dir would each save over the other's sessions when they stop."""
    state = tmp_path / "state"
    state.mkdir()
    with (state / ".agentbot-dev.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242")
        held.flush()
        done = _start_fails(uuid.uuid4().hex, extra_env={}, args=["--state-dir", str(state)])
    assert done.returncode == 2
    assert f"--state-dir {state} is in use by another agentbot dev (pid 4242)" in done.stderr
    assert "Traceback" not in done.stderr


class _Dev:
    """A running `agentbot dev` whose stdout and stderr lines are collected as they come."""

    def __init__(
        self,
        marker: str,
        *,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        stdin: Any = subprocess.PIPE,
    ) -> None:
        import threading

        self.lines: list[tuple[float, str, str]] = []
        self.partial = {"out": "", "err": ""}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agentbot.cli", "dev", *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**_clean_env(marker), **(env or {})},
        )
        self._readers = [
            threading.Thread(target=self._read, args=(stream, name), daemon=True)
            for stream, name in ((self.process.stdout, "out"), (self.process.stderr, "err"))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, name: str) -> None:
        """Lines as they end; a line still being written (a prompt) is kept in ``partial``.
        Read as bytes from the pipe (``text=True`` serves stdin only)."""
        import codecs
        import time

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            chunk = os.read(stream.fileno(), 65536)
            text = self.partial[name] + decoder.decode(chunk, final=not chunk)
            *ended, self.partial[name] = text.replace("\r\n", "\n").split("\n")
            self.lines.extend((time.monotonic(), name, line) for line in ended)
            if not chunk:
                break
        if self.partial[name]:
            self.lines.append((time.monotonic(), name, self.partial[name]))
        self.partial[name] = ""

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def wait_for(self, pattern: str, *, timeout_s: float = 180, unfinished: bool = False) -> float:
        """When the first line matching ``pattern`` appeared (monotonic time). ``unfinished``:
        a line not ended yet counts too (a prompt waits at the end of one)."""
        import time

        deadline = time.monotonic() + timeout_s
        ended_at: float | None = None
        while time.monotonic() < deadline:
            for at, _, line in list(self.lines):
                if re.search(pattern, line):
                    return at
            if unfinished and any(re.search(pattern, line) for line in list(self.partial.values()) if line):
                return time.monotonic()
            if self.process.poll() is not None:
                ended_at = ended_at or time.monotonic()
                if time.monotonic() - ended_at > 1:  # the readers have caught up: it never came
                    break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r}:\n{self.text()[-3000:]}")

    def text(self, name: str | None = None) -> str:
        """Every line so far; once the process has ended, its last ones too (a prompt left
        unended reaches ``lines`` only when its reader meets the end of the stream)."""
        if self.process.poll() is not None:
            for reader in self._readers:
                reader.join(timeout=10)
        return "\n".join(line for _, n, line in self.lines if name is None or n == name)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _gone(marker: str, state_root: str, timeout_s: float = 10) -> list[str]:
    import time

    deadline = time.monotonic() + timeout_s
    while _survivors(marker, state_root) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _survivors(marker, state_root)


def test_ctrl_c_during_a_turn_says_so_finishes_the_turn_and_exits_within_5_s(
    tools_config: Path, agent_tmp_path: Path
) -> None:
    import signal
    import time

    marker = uuid.uuid4().hex
    state = agent_tmp_path / "state"  # kept after the exit: a failure shows the functions' log
    dev = _Dev(
        marker, args=("--state-dir", str(state)), env={"CLAUDE_CONFIG_PATH": str(tools_config)}
    )  # tools run unasked
    try:
        dev.send(f"run sleep 4; echo finished-{marker}")
        dev.wait_for(r": running$")
        state_root = _state_root(dev.text("err"))
        time.sleep(1)  # the tool is sleeping now
        dev.process.send_signal(signal.SIGINT)
        dev.wait_for(r"stopping \(finishing the current turn, Ctrl-C again to abort\)", timeout_s=10)
        try:
            answered = dev.wait_for(f"finished-{marker}")  # the turn was not cut short
        except AssertionError as failed:
            log = state / "functions.log"
            raise AssertionError(f"{failed}\n--- functions.log:\n{log.read_text()[-6000:]}") from None
        assert dev.process.wait(timeout=30) == 130
        exited = time.monotonic()
    finally:
        dev.stop()
    assert exited - answered < 5, dev.text()
    assert "Traceback" not in dev.text()
    assert _gone(marker, state_root) == []


def _run_a_tool_that_never_ends(dev: _Dev, marker: str) -> Path:
    """Start a turn whose tool runs until killed; return the state root once the tool runs."""
    import time

    # (the CLI refuses long `sleep`s; a tail that never ends is as good)
    dev.send(f"run timeout 120 tail -f /dev/null; echo {marker}")
    dev.wait_for(r": running$")
    state_root = _state_root(dev.text("err"))
    deadline = time.monotonic() + 60
    while not any("tail -f /dev/null" in s for s in _survivors(marker, state_root)):
        assert time.monotonic() < deadline, "the tool never started"
        time.sleep(0.2)
    return state_root


@pytest.mark.parametrize("how", ["double ctrl-c", "sigterm"])
def test_an_abort_during_a_turn_is_quick_quiet_and_leaves_no_process(how: str, tools_config: Path) -> None:
    """The tool (its shell has the marker in its command line), the agent's CLI and the
    function workers all go, at once, with no traceback."""
    import signal
    import time

    from agentbot.dev_stop import SAME_PRESS_S

    marker = uuid.uuid4().hex
    dev = _Dev(marker, env={"CLAUDE_CONFIG_PATH": str(tools_config)})  # tools run unasked
    try:
        state_root = _run_a_tool_that_never_ends(dev, marker)
        started = time.monotonic()
        if how == "sigterm":
            dev.process.send_signal(signal.SIGTERM)
            expected = 143
        else:
            dev.process.send_signal(signal.SIGINT)
            # As a user would: the second press after the first was answered (two presses
            # before Python runs its handler are one signal to it), and after SAME_PRESS_S (one
            # within it is taken for the copy `uv run` passes on of the first).
            dev.wait_for(r"stopping \(finishing the current turn", timeout_s=10)
            time.sleep(SAME_PRESS_S + 0.1)
            dev.process.send_signal(signal.SIGINT)
            expected = 130
        try:
            code = dev.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running 30 s after the abort:\n{dev.text()[-3000:]}") from None
        assert code == expected
        took = time.monotonic() - started
    finally:
        dev.stop()
    assert took < 5, (took, dev.text())
    assert "Traceback" not in dev.text() and "aborting" in dev.text("err")
    # The killed attempt is not announced as one to retry (nothing retries after an abort).
    assert "will retry" not in dev.text("err"), dev.text("err")[-2000:]
    assert _gone(marker, state_root, timeout_s=2) == []


def test_a_waiting_call_survives_a_state_dir_restart_and_deny_keeps_it_from_running(
    agent_tmp_path: Path,
) -> None:
    """[I] The approval waits in the store, not in memory: after `agentbot dev --state-dir`
    is started again, the terminal still shows it; /deny answers it and nothing runs."""
    marker = uuid.uuid4().hex
    state = agent_tmp_path / "state"
    target = agent_tmp_path / "never-made"
    first = _run_dev([f"run touch {target}"], marker=marker, state_dir=state)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "/allow, /always or /deny" in first.stdout

    second = _run_dev(["/deny"], marker=marker, state_dir=state)

    assert second.returncode == 0, second.stderr[-3000:]
    assert f"A call still waits for your approval: Bash: touch {target}" in second.stdout
    # the agent is told (the message that asked is gone with the first run's chat server)
    assert any("I declined your Bash call" in r for r in _replies(second.stdout)), second.stdout
    assert not target.exists()


def test_a_file_sent_from_the_terminal_reaches_the_agent_as_telegram_would_deliver_it(tmp_path: Path) -> None:
    """An operator tries a skill that reads files before deploying it: `/file <path>` sends a
    file of this machine as a document; one Telegram would not hand over gets its answer."""
    marker = uuid.uuid4().hex
    notes = tmp_path / "my notes.txt"
    notes.write_text("the secret word is plover\n")
    big = tmp_path / "video.mp4"
    with big.open("wb") as sparse:  # 21 MB on paper: past the Bot API's download limit
        sparse.truncate(21 * 1024 * 1024)
    lines = [
        f'/file "{notes}" run: cat attachments/*',
        f"/file {tmp_path / 'missing.txt'}",
        f"/file {notes} what is in it?",  # unquoted: the path ends at `my`
        f"/file {big}",
    ]
    done = _run_dev(lines, marker=marker)
    assert done.returncode == 0, done.stderr[-3000:]
    read, too_large = _replies(done.stdout)
    assert "The tool ran" in read and "the secret word is plover" in read, read
    assert "(cannot send " in done.stdout and "missing.txt: No such file or directory)" in done.stdout
    unquoted = f"cannot send {tmp_path / 'my'}: No such file or directory; if the path has spaces, quote it"
    assert unquoted in done.stdout, done.stdout
    assert too_large == "Sorry, video.mp4 is too large: I can read files up to 20 MB.", too_large
    assert _survivors(marker) == []


def test_files_of_the_same_name_or_with_url_characters_in_it_each_reach_the_agent_as_they_are(
    tmp_path: Path,
) -> None:
    """The local Bot API serves a file by its path: a second `notes.txt` must not be served
    the first one's bytes, and a name with `?`, `#` or `%` must not make the download fail."""
    marker = uuid.uuid4().hex
    names = ["a/notes.txt", "b/notes.txt", "what?.txt", "no#1.txt", "50%25.txt"]
    lines = []
    for index, name in enumerate(names):
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"content {index}\n")
        lines.append(f"/file {path} run: cat attachments/*")
    done = _run_dev(lines, marker=marker)
    assert done.returncode == 0, done.stderr[-3000:]
    replies = _replies(done.stdout)
    assert len(replies) == len(names), (done.stdout, done.stderr[-3000:])
    for index, reply in enumerate(replies):
        assert "The tool ran" in reply and f"content {index}" in reply, (names[index], reply)
    assert "gave up" not in done.stderr, done.stderr[-3000:]
    assert _survivors(marker) == []


def test_terminal_chat_prompts_at_a_terminal_and_its_help_does_not_invite_photos() -> None:
    import pty

    marker = uuid.uuid4().hex
    controller, terminal = pty.openpty()
    dev = _Dev(marker, stdin=terminal)
    os.close(terminal)
    try:
        dev.wait_for(r"Ctrl-D ends")
        os.write(controller, b"/help\n")
        dev.wait_for(r"bot> ")
        dev.wait_for(r"update \d+: replied")
        dev.wait_for(r"^you> $", unfinished=True)  # asked again after the answer
        os.write(controller, b"\x04")  # Ctrl-D at the start of a line: end of input
        assert dev.process.wait(timeout=60) == 0
    finally:
        dev.stop()
        os.close(controller)
    out = dev.text("out")
    assert out.startswith("you> bot> "), out[:200]  # the prompt, then the answer to the typed line
    assert out.count("you> ") >= 2  # asked again after the answer
    assert "photo" not in out and "/file <path> [caption] sends a file" in out, out
    assert "button" not in out, out  # nor buttons it cannot show (/permissions' revoke)
    assert "/allow, /always or /deny" in out, out  # how to answer a call that waits, typed


def _telegram_message(update_id: int, user_id: int, text: str, *, kind: str = "message") -> dict[str, Any]:
    return {
        "update_id": update_id,
        kind: {
            "message_id": update_id,
            "from": {"id": user_id, "is_bot": False, "first_name": "U"},
            "chat": {"id": user_id, "type": "private", "first_name": "U"},
            "date": 1_700_000_000,
            "text": text,
        },
    }


def test_progress_says_what_became_of_each_update() -> None:
    """Not "queued" for what the webhook ignored; not "replied" for what was dead-lettered."""
    import signal

    from local_stack import LocalTelegram, TelegramFault

    token = "7000004:AAH-fake-token"
    marker = uuid.uuid4().hex
    with LocalTelegram(token=token) as telegram:
        env = {"TELEGRAM_BOT_TOKEN": token, "TELEGRAM_API_BASE": telegram.base_url, "ALLOWED_USER_IDS": "777"}
        dev = _Dev(marker, env=env, stdin=subprocess.DEVNULL)
        try:
            # polling starts (updates pushed now are what its first long poll returns)
            assert telegram.wait_for(lambda t: bool(t.calls("deleteWebhook")), timeout_s=120)
            # the bot's command menu (typing "/" in the apps) lists /help's commands
            assert telegram.wait_for(lambda t: bool(t.commands), timeout_s=30)
            assert "new" in [entry["command"] for entry in telegram.commands]
            telegram.push_update(_telegram_message(5001, 888, "hello from a stranger"))
            telegram.push_update(_telegram_message(5002, 777, "fixed typo", kind="edited_message"))
            dev.wait_for(r"update 5001: not queued \(ignored: not on the allow-list\)")
            dev.wait_for(r"update 5002: not queued \(ignored: edited_message\)")
            # A permanent error: the consumer dead-letters the record.
            telegram.inject("sendMessage", TelegramFault(400, "Bad Request: message text is empty"), times=20)
            telegram.push_update(_telegram_message(5003, 777, "/help"))
            dev.wait_for(r"update 5003: gave up \(moved to the dead-letter queue")
            state_root = _state_root(dev.text("err"))
            # The line says why, and where more is (this run's queues are gone at exit: not
            # `agentbot dlq list`).
            assert "update 5003: gave up (moved to the dead-letter queue: delivery: " in dev.text("err")
            assert (
                f"(400): Bad Request: message text is empty; more in {state_root}/functions.log) after"
                in dev.text("err")
            )
            # The user blocked the bot: not a dead letter (any user could fill the queue), not "replied".
            telegram.clear_faults()
            telegram.inject(
                "sendMessage", TelegramFault(403, "Forbidden: bot was blocked by the user"), times=20
            )
            telegram.push_update(_telegram_message(5004, 777, "/help"))
            dev.wait_for(
                r"update 5004: not answered \(Telegram will not post in that chat: .*blocked by the user"
            )
            # Telegram answers every try of one attempt (5) with a 5xx: the attempt is retried,
            # and the line says why.
            telegram.clear_faults()
            telegram.inject("sendMessage", TelegramFault(502, "Bad Gateway"), times=5)
            telegram.push_update(_telegram_message(5005, 777, "/help"))
            dev.wait_for(
                r"update 5005: will retry \(attempt 1 failed: delivery: .*\(502\): Bad Gateway; more in /"
            )
            dev.wait_for(r"update 5005: replied")
        finally:
            dev.process.send_signal(signal.SIGINT)
            dev.process.wait(timeout=60)
            dev.stop()
    err = dev.text("err")
    assert not re.search(r"update 500[12].*queued$", err, re.M), err
    assert "update 5003: replied" not in err
    assert "Traceback" not in dev.text()
    assert _gone(marker, state_root) == []


def test_webhook_url_is_registered_with_the_configured_secret_and_removed_at_exit() -> None:
    """`--webhook-url`: setWebhook with TELEGRAM_WEBHOOK_SECRET instead of long polling; a
    tunnel (here: this test) calls the local webhook shown in the banner with that secret.
    With a real token and no ALLOWED_USER_IDS, the banner warns that anyone can use the bot.
    A command menu Telegram refuses (a 429 after setWebhook) is said, and dev runs on (it
    stopped at start, leaving the bot's webhook set to the tunnel)."""
    import signal

    import httpx
    from local_stack import LocalTelegram, TelegramFault

    token = "7000005:AAH-fake-token"
    secret = "dev-tunnel_secret-42"
    public = "https://tunnel.example/hook"
    marker = uuid.uuid4().hex
    with LocalTelegram(token=token) as telegram:
        telegram.inject("setMyCommands", TelegramFault.retry_after_seconds(9))
        env = {
            "TELEGRAM_BOT_TOKEN": token,
            "TELEGRAM_API_BASE": telegram.base_url,
            "TELEGRAM_WEBHOOK_SECRET": secret,
            "ALLOWED_USER_IDS": "",  # none: the banner warns (and anyone may use the bot)
            "ALLOWED_CHAT_IDS": "",
        }
        dev = _Dev(marker, args=("--webhook-url", public), env=env, stdin=subprocess.DEVNULL)
        try:
            dev.wait_for(r"Ctrl-C stops")
            assert telegram.webhook["url"] == public and telegram.webhook["secret_token"] == secret
            local = re.search(r"^\s+webhook\s+(http://127\.0\.0\.1:\d+/webhook)", dev.text("err"), re.M)
            assert local, dev.text("err")
            update = _telegram_message(6001, 777, "hello through the tunnel")
            wrong = httpx.post(
                local.group(1), json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"}
            )
            right = httpx.post(
                local.group(1), json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret}, timeout=60
            )
            assert wrong.status_code == 403 and right.status_code == 200, (wrong.text, right.text)
            assert telegram.wait_for(lambda t: bool(t.sent_messages(777)), timeout_s=120), dev.text()
            assert "hello through the tunnel" in telegram.sent_messages(777)[0]["text"]
            state_root = _state_root(dev.text("err"))
        finally:
            dev.process.send_signal(signal.SIGINT)
            code = dev.process.wait(timeout=60)
            dev.stop()
        assert code == 130, dev.text()
        assert telegram.webhook == {}  # removed at exit
        assert telegram.calls("getUpdates") == []  # no long polling meanwhile
    assert f"removed the webhook {public}" in dev.text("err")
    assert "command menu: not set (setMyCommands: Too Many Requests: retry after 9)" in dev.text("err")
    assert secret not in dev.text() and token not in dev.text()
    warning = [line for line in dev.text("err").splitlines() if "WARNING" in line]
    assert len(warning) == 1 and "ALLOWED_USER_IDS" in warning[0] and "run commands" in warning[0]
    assert _gone(marker, state_root) == []


def test_no_process_survives_when_a_worker_was_killed_under_a_running_tool(tools_config: Path) -> None:
    """The runtime's reaper is killed while a tool runs: its orphans (runtime, CLI, tool) are
    re-parented to `agentbot dev`, which still ends them when it stops."""
    import signal
    import time

    marker = uuid.uuid4().hex
    dev = _Dev(marker, env={"CLAUDE_CONFIG_PATH": str(tools_config)})  # tools run unasked
    try:
        state_root = _run_a_tool_that_never_ends(dev, marker)
        reapers = []  # the runtime's reaper: a child of `agentbot dev` (its environment is bare)
        for proc in Path("/proc").iterdir():
            try:
                parent = int((proc / "stat").read_text().rpartition(")")[2].split()[1])
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, ValueError, IndexError):
                continue
            if parent == dev.process.pid and "local_stack._reaper" in cmdline and "agent_runtime" in cmdline:
                reapers.append(int(proc.name))
        assert reapers
        for pid in reapers:
            os.kill(pid, signal.SIGKILL)
        time.sleep(1)
        assert any("tail -f /dev/null" in s for s in _survivors(marker, state_root))  # orphaned, alive
        dev.process.send_signal(signal.SIGINT)
        dev.process.wait(timeout=30)
    finally:
        dev.stop()
    assert "Traceback" not in dev.text()
    assert _gone(marker, state_root, timeout_s=2) == []


def _local_functions(tmp_path) -> dict[str, Any]:
    """The functions `agentbot dev` runs (by name: their FunctionSpec)."""
    import argparse

    from local_stack import StackResources

    from agentbot import dev

    resources = StackResources(
        table="t", bucket="b", queue_url="q", dlq_url="d", queue_arn="qa", dlq_arn="da"
    )
    return dev._functions(
        argparse.Namespace(tenant="default"),
        {},
        resources,
        {"WEBHOOK_SECRET_PARAMETER": "/w", "BOT_TOKEN_PARAMETER": "/b", "ANTHROPIC_API_KEY_PARAMETER": "/a"},
        dev.ModelChoice("demo", {}, None),
        "http://127.0.0.1:1",
        tmp_path,
        None,
        None,
    )


def _local_function_envs(tmp_path) -> dict[str, dict[str, str]]:
    """The environments `agentbot dev` gives its producer, consumer and runtime (by name)."""
    from agentbot import dev

    functions = _local_functions(tmp_path)
    return {name: functions[name].env for name in (dev.PRODUCER, dev.CONSUMER, dev.RUNTIME)}


def test_the_runtime_under_dev_has_the_memory_it_is_deployed_with(tmp_path) -> None:
    """A chat's history and files meet the limits of the deployed function (RuntimeMemoryMb's
    default): one that `agentbot dev` answers is not refused, or killed, once deployed."""
    from agentbot_testing.template_support import load_template

    from agentbot import dev

    deployed = load_template()["Parameters"]["RuntimeMemoryMb"]["Default"]
    assert _local_functions(tmp_path)[dev.RUNTIME].memory_mb == deployed


def test_the_runtime_under_dev_never_sweeps_every_process_of_its_user(monkeypatch, tmp_path) -> None:
    """PROCESS_SWEEP_SCOPE=uid is Lambda's (the environment is the function's): exported in a
    developer's shell, dev's runtime, which may run as that developer, would kill their editor,
    their shell and everything else of theirs at every start and every turn's end."""
    from agentbot import dev

    monkeypatch.setenv("PROCESS_SWEEP_SCOPE", "uid")
    runtime = _local_function_envs(tmp_path)[dev.RUNTIME]
    assert runtime["PROCESS_SWEEP_SCOPE"] == "descendants"


def test_limits_and_budgets_set_in_the_shell_reach_the_functions_that_use_them(monkeypatch, tmp_path) -> None:
    from agentbot import dev

    monkeypatch.setenv("RATE_LIMIT_USER_PER_MINUTE", "5")
    monkeypatch.setenv("CHAT_QUEUE_LIMIT", "3")
    monkeypatch.setenv("BUDGET_USER_DAILY_USD", "0.50")
    monkeypatch.setenv("MAX_TURN_COST_USD", "")  # empty: left to the function's default
    monkeypatch.setenv("SOME_OTHER_SHELL_VARIABLE", "never passed")
    envs = _local_function_envs(tmp_path)
    producer, consumer, runtime = (envs[name] for name in (dev.PRODUCER, dev.CONSUMER, dev.RUNTIME))
    assert (producer["RATE_LIMIT_USER_PER_MINUTE"], producer["CHAT_QUEUE_LIMIT"]) == ("5", "3")
    assert (consumer["CHAT_QUEUE_LIMIT"], consumer["BUDGET_USER_DAILY_USD"]) == ("3", "0.50")
    assert "BUDGET_USER_DAILY_USD" not in producer and "RATE_LIMIT_USER_PER_MINUTE" not in consumer
    assert "MAX_TURN_COST_USD" not in consumer
    assert not any("SOME_OTHER_SHELL_VARIABLE" in env for env in (producer, consumer, runtime))


def _bedrock_choice(monkeypatch: pytest.MonkeyPatch) -> Any:
    """What dev chooses for a shell set up for Bedrock with the developer's own credentials."""
    from local_stack import ModelServer, echo_responder

    from agentbot import dev

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("CLAUDE_CODE_USE_BEDROCK", "1")
    monkeypatch.setenv("BEDROCK_MODEL_ID", "anthropic.claude-test-v1:0")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSMALLMODELTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "not-a-real-session-token")
    with ModelServer(echo_responder) as model, contextlib.ExitStack() as stack:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", model.base_url)  # the start's check
        return dev.choose_model(stack)


def test_the_small_model_set_in_the_shell_reaches_devs_bedrock_runtime(monkeypatch) -> None:
    """`agentbot doctor` checks the shell's ANTHROPIC_SMALL_FAST_MODEL as the model dev's
    Bedrock runtime uses for background calls and "haiku": dev's runtime must be given it, not
    fall back to BEDROCK_MODEL_ID behind the developer's back."""
    monkeypatch.setenv("ANTHROPIC_SMALL_FAST_MODEL", "anthropic.claude-small-v1:0")
    choice = _bedrock_choice(monkeypatch)
    assert choice.runtime_env["ANTHROPIC_SMALL_FAST_MODEL"] == "anthropic.claude-small-v1:0"


def test_devs_bedrock_runtime_holds_none_of_the_developers_aws_secrets_in_its_environment(
    monkeypatch,
) -> None:
    """The runtime's initial environment block stays readable in /proc/<pid>/environ by every
    process of the agent's user until it re-executes itself: the developer's credentials go
    to dev's local SSM, as the model key does, and the runtime is told only where."""
    choice = _bedrock_choice(monkeypatch)
    runtime_env = " ".join(f"{k}={v}" for k, v in choice.runtime_env.items())
    assert "not-a-real-secret" not in runtime_env and "not-a-real-session-token" not in runtime_env


def test_with_aws_profile_devs_bedrock_checks_that_profile_and_keeps_its_credentials_out_of_ssm(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With --aws-profile the runtime signs with that profile's credentials already, and dev's
    SSM is that real account's: the developer's credentials must not be written there (a
    parameter dev never deletes), and the start's check must ask as that profile."""
    from local_stack import ModelServer, echo_responder

    from agentbot import dev

    (tmp_path / "config").write_text("[profile work]\nregion = eu-west-1\n")
    (tmp_path / "credentials").write_text(
        "[work]\naws_access_key_id = AKIDPROFILEONLY00001\n"
        "aws_secret_access_key = not-a-real-profile-secret\n"
    )
    for name in (
        "ANTHROPIC_API_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("CLAUDE_CODE_USE_BEDROCK", "1")
    monkeypatch.setenv("BEDROCK_MODEL_ID", "anthropic.claude-test-v1:0")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSHELLNOTPROFILE1")  # the shell's, not the flag's
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-shell-secret")
    with ModelServer(echo_responder) as model, contextlib.ExitStack() as stack:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", model.base_url)
        choice = dev.choose_model(stack, "work")
        signers = {
            c.headers.get("Authorization", "").split("Credential=")[1].split("/")[0]
            for c in model.model_calls
        }

    assert choice.bedrock_credentials is None
    assert signers == {"AKIDPROFILEONLY00001"}, signers


def test_with_aws_profile_the_start_check_takes_that_profiles_region_and_credentials(
    aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`agentbot dev --aws-profile work` runs its runtime in the profile's region, signing with
    its credentials; the start's check of that runtime read the shell's default profile (no
    region, no credentials here) and refused to start: "AWS_REGION is not set"."""
    import argparse

    from local_stack import ModelServer, echo_responder

    from agentbot import dev
    from agentbot.preflight import check_dev_runtime

    (tmp_path / "config").write_text("[default]\n[profile work]\nregion = eu-west-1\n")
    (tmp_path / "credentials").write_text(
        "[work]\naws_access_key_id = AKIDPROFILEONLY00002\n"
        "aws_secret_access_key = not-a-real-profile-secret\n"
    )
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BEDROCK_BASE_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("CLAUDE_CODE_USE_BEDROCK", "1")
    monkeypatch.setenv("BEDROCK_MODEL_ID", "anthropic.claude-test-v1:0")
    _label, aws_env, _credentials = dev._profile_aws("work")
    with ModelServer(echo_responder) as model, contextlib.ExitStack() as stack:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", model.base_url)  # the start's model check
        choice = dev.choose_model(stack, "work")
    functions = dev._functions(
        argparse.Namespace(tenant="default"),
        aws_env,
        aws.resources,
        {"WEBHOOK_SECRET_PARAMETER": "/w", "BOT_TOKEN_PARAMETER": "/b", "ANTHROPIC_API_KEY_PARAMETER": "/a"},
        choice,
        "http://127.0.0.1:1",
        tmp_path,
        None,
        None,
    )
    runtime_env = functions[dev.RUNTIME].env
    assert runtime_env["AWS_REGION"] == "eu-west-1", runtime_env["AWS_REGION"]

    check_dev_runtime(runtime_env, ssm=aws.client("ssm"), aws_profile="work")  # no ConfigurationProblem


def test_bedrock_credentials_that_cannot_be_read_stop_devs_start_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An SSO profile whose sign-in is gone (never done, expired): the start's Bedrock check
    read the credentials before asking and let botocore's error out as a traceback, where it
    used to stop with one line saying what to do."""
    from agentbot import dev

    (tmp_path / "config").write_text(
        "[profile work]\nregion = eu-west-1\nsso_start_url = https://example.awsapps.com/start\n"
        "sso_region = eu-west-1\nsso_account_id = 123456789012\nsso_role_name = Bedrock\n"
    )
    for name in ("ANTHROPIC_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no SSO token cache
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_PROFILE", "work")
    monkeypatch.setenv("CLAUDE_CODE_USE_BEDROCK", "1")
    monkeypatch.setenv("BEDROCK_MODEL_ID", "anthropic.claude-test-v1:0")

    with contextlib.ExitStack() as stack, pytest.raises(dev.DevSetupError) as stopped:
        dev.choose_model(stack)

    assert "SSOTokenLoadError" in str(stopped.value) and "aws sso login" in str(stopped.value), stopped.value


def test_a_credentials_parameter_named_in_the_shell_never_reaches_devs_runtime(monkeypatch, tmp_path) -> None:
    """The local Lambda passes the shell's environment on: a BEDROCK_CREDENTIALS_PARAMETER
    there made the runtime sign Bedrock with whatever parameter it named (with --aws-profile,
    one of the real account's). dev names its own, or none."""
    monkeypatch.setenv("BEDROCK_CREDENTIALS_PARAMETER", "/someone-elses/credentials")
    runtime = _local_function_envs(tmp_path)["agentbot-runtime"]
    assert runtime["BEDROCK_CREDENTIALS_PARAMETER"] == ""


def test_voice_transcription_set_in_the_shell_stays_off_locally(monkeypatch, tmp_path) -> None:
    """There is no Amazon Transcribe locally (moto's never writes a transcript, so each voice
    message would fail on every receive into the dead-letter queue): VOICE_TRANSCRIPTION=auto in
    the shell a developer deploys from must not reach the functions, which LocalLambda starts
    with the shell's environment under their own."""
    import os

    from session_core import voice_transcription

    from agentbot import dev

    monkeypatch.setenv("VOICE_TRANSCRIPTION", "auto")
    envs = _local_function_envs(tmp_path)
    for name in (dev.PRODUCER, dev.CONSUMER):
        setting = {**os.environ, **envs[name]}.get("VOICE_TRANSCRIPTION", "")
        assert voice_transcription(setting) is None, (name, setting)


def _tool_gone(marker: str, state_root: str, timeout_s: float) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while any("tail -f /dev/null" in s for s in _survivors(marker, state_root)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.parametrize("stop_line", ["/stop", "/stop, wrong file"])
def test_stop_in_the_terminal_chat_shows_progress_ends_the_turn_and_the_next_resumes(
    tools_config: Path, stop_line: str
) -> None:
    """[H] The terminal chat shows what the agent does; /stop ends the running turn (its tool
    killed, the partial answer marked stopped) and the next message continues the session.
    Then Ctrl-C with no turn running stops everything at once and leaves no process behind.
    "/stop, wrong file" stops it too, as in Telegram (it waited for the turn's end)."""
    import signal
    import time

    marker = uuid.uuid4().hex
    dev = _Dev(marker, env={"CLAUDE_CONFIG_PATH": str(tools_config)})  # tools run unasked
    try:
        state_root = _run_a_tool_that_never_ends(dev, marker)
        dev.wait_for(r"^  ⋯ 🔧 Bash: timeout 120 tail", timeout_s=30)
        asked = time.monotonic()
        dev.send(stop_line)
        stopped = dev.wait_for(r"⏹ Stopped\.$", timeout_s=30)
        dead = _tool_gone(marker, state_root, timeout_s=5)
        dev.send("and now?")
        dev.wait_for(r"\b1 earlier user turn\b", timeout_s=120)
        assert _survivors(marker)  # the functions' processes are running now
        dev.process.send_signal(signal.SIGINT)
        code = dev.process.wait(timeout=60)
        dev.wait_for(r"^\[agentbot\] stopped", timeout_s=10)  # (its last line, read by a thread)
    finally:
        dev.stop()
    assert code == 130, dev.text()[-3000:]
    assert "Traceback" not in dev.text()
    assert _gone(marker, state_root) == []
    assert dead, dev.text()[-3000:]
    assert stopped - asked < 5, dev.text()[-3000:]
    replies = _replies(dev.text("out"))
    assert "Stopping…" in replies  # /stop's own answer, as Telegram shows it
    running = "[offline demo model, costs $0] Running timeout 120 tail"
    stopped_answer = next(r for r in replies if r.startswith(running))
    assert stopped_answer.endswith("⏹ Stopped.") and len([r for r in replies if "Stopped" in r]) == 1
    assert "stop: Stopping…" in dev.text("err")


@pytest.mark.parametrize("receives", range(1, 6))
def test_a_failed_attempt_is_called_a_retry_until_the_queues_last_receive(receives: int) -> None:
    """dev's progress line follows the queue's maxReceiveCount: an attempt SQS will hand out
    again is "will retry", only the last one "gave up"."""
    import io

    from local_stack import MAX_RECEIVE_COUNT, BatchOutcome
    from telegram_core import ENVELOPE_VERSION, InboundMessage, QueueEnvelope, encode_envelope

    from agentbot.dev import Progress

    inbound = InboundMessage(
        update_id=77, session_key="default/5/0", kind="message", chat_id=5, chat_type="private", message_id=1
    )
    message = {
        "MessageId": "m-77",
        "Body": encode_envelope(QueueEnvelope(version=ENVELOPE_VERSION, message=inbound)).decode(),
        "Attributes": {"ApproximateReceiveCount": str(receives)},
    }
    out = io.StringIO()
    Progress(out).finished([message], BatchOutcome(("m-77",), ("m-77",), function_error=False, seconds=0.1))
    said = out.getvalue()
    if receives < MAX_RECEIVE_COUNT:
        assert f"update 77: will retry (attempt {receives} failed" in said, said
    else:
        assert "update 77: gave up (moved to the dead-letter queue" in said, said


def test_a_line_the_terminal_mangled_is_not_sent_and_the_user_is_told_what_to_do() -> None:
    """At a terminal, an arrow key pressed out of habit arrives as an escape sequence, and a
    pasted line longer than the terminal's line buffer (4095 bytes) arrives cut: neither is
    sent (it would decline a waiting call and spend a turn on garbage); each says why."""
    import pty

    marker = uuid.uuid4().hex
    controller, terminal = pty.openpty()
    dev = _Dev(marker, stdin=terminal)
    os.close(terminal)
    try:
        dev.wait_for(r"Ctrl-D ends")
        os.write(controller, b"\x1b[A\n")  # the Up arrow, then Enter
        dev.wait_for(r"arrow keys", timeout_s=30)
        for _ in range(10):  # a 10,000-character paste
            os.write(controller, b"x" * 1000)
        os.write(controller, b"\n")
        dev.wait_for(r"4095", timeout_s=30)
        os.write(controller, b"hello\n")
        dev.wait_for(r"update \d+: replied")
        os.write(controller, b"\x04")
        assert dev.process.wait(timeout=60) == 0
    finally:
        dev.stop()
        os.close(controller)
    out = dev.text("out")
    assert "(arrow keys do not work here: this line was not sent; type it again)" in out, out
    assert "(this line was cut at 4095 bytes, the most a terminal line holds, and was not sent;" in out, out
    assert "send long text as a file: /file <path>)" in out, out
    # only "hello" reached the agent (each answer follows a prompt, at a terminal)
    assert out.count("bot> ") == 1 and "I received: 'hello'. I can see 0 earlier user turns" in out, out


def test_what_the_webhook_answers_itself_reaches_the_chat_as_telegram_carries_it_out() -> None:
    """The producer answers /stop (and a rate-limited sender, a button press) in its webhook
    response, which Telegram carries out: dev does so too, so the terminal shows the answer as
    the bot's and a chat polled with a real token gets it (and a press's spinner ends)."""
    import signal

    from local_stack import LocalTelegram

    terminal = _run_dev(["/stop"], marker=uuid.uuid4().hex)
    assert terminal.returncode == 0, terminal.stderr[-3000:]
    assert _replies(terminal.stdout) == ["Nothing is running in this chat right now."], terminal.stdout

    token = "7000005:AAH-fake-token"
    marker = uuid.uuid4().hex
    with LocalTelegram(token=token) as telegram:
        env = {"TELEGRAM_BOT_TOKEN": token, "TELEGRAM_API_BASE": telegram.base_url, "ALLOWED_USER_IDS": "777"}
        dev = _Dev(marker, env=env, stdin=subprocess.DEVNULL)
        try:
            assert telegram.wait_for(lambda t: bool(t.calls("deleteWebhook")), timeout_s=120)
            telegram.push_update(_telegram_message(6001, 777, "/stop"))
            dev.wait_for(r"update 6001: not queued \(stop: Nothing is running", timeout_s=60)
            answered = telegram.wait_for(lambda t: bool(t.sent_messages(777)), timeout_s=10)
        finally:
            dev.process.send_signal(signal.SIGINT)
            dev.process.wait(timeout=60)
            dev.stop()
        sent = [m["text"] for m in telegram.sent_messages(777)]
    assert answered and sent == ["Nothing is running in this chat right now."], sent
    assert token not in dev.text(), dev.text()[-3000:]


def test_a_command_with_words_after_it_is_read_as_the_command_telegram_marks() -> None:
    """Telegram marks "/stop" of "/stop!" and "/status" of "/status, wrong file" as the
    command: the terminal marked the whole first word, which names no command, so the agent
    was sent them as words."""
    terminal = _run_dev(["/stop!", "/status, wrong file", "/etc/hosts is it?"], marker=uuid.uuid4().hex)
    assert terminal.returncode == 0, terminal.stderr[-3000:]
    stop, status, words = _replies(terminal.stdout)
    assert stop == "Nothing is running in this chat right now.", terminal.stdout
    assert status.startswith("No conversation yet"), terminal.stdout
    assert "(I did not read what you wrote after /status:" in status, terminal.stdout
    assert "I received: " in words and "/etc/hosts is it?'" in words, terminal.stdout  # a path: words


def test_revoke_in_the_terminal_chat_takes_back_an_always_and_the_call_asks_again() -> None:
    """[I] /permissions' revoke buttons have a terminal form: /revoke <number> presses the
    numbered one of the last list, its answer shows, and the next such call asks again."""
    marker = uuid.uuid4().hex
    lines = ["run touch x", "/always", "/permissions", "/revoke 2", "/revoke 1", "/permissions"]
    lines.append("run touch y")

    ran = _run_dev(lines, marker=marker)

    assert ran.returncode == 0, ran.stderr[-3000:]
    out = ran.stdout
    assert "     (/revoke <number> revokes the rule of that line, counting from 1)" in out, out
    assert "  (no line 2: the last /permissions listed 1)" in out, out
    assert "bot> Revoked: Bash(touch *). It will ask again." in out, out
    assert "bot> Nothing is always allowed in this chat." in out, out
    assert out.count("May I run this?") == 2, out  # the second touch asked again
