"""The command MCP server, the CLI's explicit environment and the key-injecting proxy."""

from __future__ import annotations

import errno
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import agent_runtime
import httpx
import pytest
from agent_runtime import ModelProxy, build_cli_environment, load_settings
from agent_runtime._environment import install_cli_launcher
from local_stack import ModelFault, ModelServer

REPO = Path(__file__).resolve().parents[3]


def test_command_mcp_server_speaks_json_rpc_over_stdio() -> None:
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "word_count", "arguments": {"text": "a b\nc"}},
        },
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "nope", "arguments": {}}},
    ]
    done = subprocess.run(
        [sys.executable, "-I", str(REPO / "claude-config" / "mcp" / "agentbot_tools.py")],
        input="\n".join(map(json.dumps, messages)),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    replies = {r["id"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert set(replies) == {1, 2, 3, 4}  # no answer to the notification
    assert replies[1]["result"]["serverInfo"]["name"] == "agentbot-tools"
    assert {t["name"] for t in replies[2]["result"]["tools"]} == {"utc_now", "word_count"}
    assert replies[3]["result"]["content"][0]["text"] == "words=3 lines=2 characters=5"
    assert replies[4]["result"]["isError"] is True


def _launcher(
    tmp_path: Path, *, cli_path: str, model_env: dict[str, str] | None = None
) -> tuple[dict[str, str], str]:
    """The CLI's environment and the launcher installed in ``tmp_path``, as the runtime makes
    them, for ``cli_path`` (a stand-in for the CLI)."""
    settings = load_settings(
        {"SESSIONS_TABLE": "t", "SESSIONS_BUCKET": "b", "ANTHROPIC_API_KEY_PARAMETER": "/k"}
    )
    env = build_cli_environment(
        home=str(tmp_path),
        tmp=str(tmp_path),
        config_dir=str(tmp_path / "c"),
        model_env=model_env or {},
        settings=settings,
        cli_path=cli_path,
        writable=[str(tmp_path)],
        connect_ports=[443],
    )
    return env, install_cli_launcher(tmp_path / "bin")


def test_cli_launcher_passes_only_the_named_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_env = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:1", "SPACED": "a b  c"}
    env, wrapper = _launcher(tmp_path, cli_path="/usr/bin/env", model_env=model_env)
    # As the SDK does: the runtime's whole environment merged with ours.
    inherited = {**os.environ, "AWS_SECRET_ACCESS_KEY": "runtime-secret", "BOT_TOKEN": "1:tok", **env}
    out = subprocess.run([wrapper], env=inherited, capture_output=True, text=True, check=True).stdout
    seen = dict(line.split("=", 1) for line in out.splitlines())
    assert "AWS_SECRET_ACCESS_KEY" not in seen and "BOT_TOKEN" not in seen
    assert seen["SPACED"] == "a b  c" and seen["HOME"] == str(tmp_path) and seen["IS_SANDBOX"] == "1"
    assert set(seen) <= set(env["AGENTBOT_CLI_ENV_NAMES"].split())


# Run as the CLI: each call that would leave something in the kernel, and one that must work.
_KERNEL_CALLS = """
import ctypes, os, platform
libc = ctypes.CDLL(None, use_errno=True)
add_key, keyctl = (248, 250) if platform.machine() == "x86_64" else (217, 219)
calls = {
    "add_key": lambda: libc.syscall(add_key, b"user", b"left", b"x", 1, -4),
    "keyctl": lambda: libc.syscall(keyctl, 0, -4, 0),
    "shmget": lambda: libc.shmget(0, 4096, 0o1600),
    "msgget": lambda: libc.msgget(0, 0o1600),
    "semget": lambda: libc.semget(0, 1, 0o1600),
    "mq_open": lambda: libc.mq_open(b"/agentbot-unit-test", os.O_CREAT | os.O_RDWR, 0o600, None),
}
for name, call in calls.items():
    print(name, call(), ctypes.get_errno())
print("getpid", os.getpid() > 0)
"""


def test_the_cli_and_its_tools_get_no_keyrings_ipc_or_message_queues(tmp_path: Path) -> None:
    """What they hold outlives the process that filled them and lies in no directory the
    runtime empties: the launcher refuses the calls (tests/containment shows the attack)."""
    env, wrapper = _launcher(tmp_path, cli_path=sys.executable)
    run = subprocess.run([wrapper, "-c", _KERNEL_CALLS], env=env, capture_output=True, text=True, check=True)
    seen = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    refused = {name for name, result in seen.items() if result == f"-1 {errno.EPERM}"}
    assert refused == {"add_key", "keyctl", "shmget", "msgget", "semget", "mq_open"}, seen
    assert seen["getpid"] == "True"


# Run as the CLI: each way to signal the runtime (here: the test, its parent), and its own child.
_SIGNAL_CALLS = """
import ctypes, os, signal, subprocess
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
runtime = os.getppid()
def errno(result):
    return 0 if result >= 0 else ctypes.get_errno()
print("kill runtime=", errno(libc.kill(runtime, 0)))
print("kill -1=", errno(libc.kill(-1, 0)))
print("kill runtime's group=", errno(libc.kill(-os.getpgid(runtime), 0)))
print("pidfd_open runtime=", errno(libc.syscall(434, runtime, 0)))
print("F_SETOWN runtime=", errno(libc.fcntl(os.pipe()[0], 8, ctypes.c_long(runtime))))
child = subprocess.Popen(["sleep", "30"])
print("kill own child=", errno(libc.kill(child.pid, signal.SIGTERM)), child.wait())
print("own session=", os.getsid(0) == os.getpid())
"""


def test_the_cli_and_its_tools_cannot_signal_the_runtime_but_their_own_processes(tmp_path: Path) -> None:
    """Without Landlock ABI 6 every process of the uid may signal every other: the launcher's
    filter refuses signals to the runtime, its group and -1 (tests/containment shows the attack)."""
    env, wrapper = _launcher(tmp_path, cli_path=sys.executable)
    run = subprocess.run([wrapper, "-c", _SIGNAL_CALLS], env=env, capture_output=True, text=True, check=True)
    seen = dict(line.split("= ", 1) for line in run.stdout.splitlines())
    assert seen == {
        "kill runtime": str(errno.EPERM),
        "kill -1": str(errno.EPERM),
        "kill runtime's group": str(errno.EPERM),
        "pidfd_open runtime": str(errno.ENOSYS),
        "F_SETOWN runtime": str(errno.EPERM),
        "kill own child": "0 -15",
        "own session": "True",
    }, run.stdout


def test_proxy_swaps_the_turn_key_and_passes_broken_streams_on() -> None:
    with ModelServer(lambda request: "proxied") as upstream:
        proxy = ModelProxy(upstream=upstream.base_url, api_key="sk-real").start()
        try:
            key = {"x-api-key": proxy.open_turn()}
            body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            ok = httpx.post(
                f"{proxy.base_url}/v1/messages?beta=true",
                json=body,
                headers={**key, "authorization": "Bearer x"},
            )
            texts = re.findall(r'"text_delta", "text": "([^"]*)"', ok.text)
            assert ok.status_code == 200 and "".join(texts) == "proxied" and "message_stop" in ok.text
            upstream.inject(ModelFault(cut_after_events=2))
            with pytest.raises(httpx.RemoteProtocolError):
                httpx.post(f"{proxy.base_url}/v1/messages", json=body, headers=key)
            upstream.inject(ModelFault(status=503))
            assert httpx.post(f"{proxy.base_url}/v1/messages", json=body, headers=key).status_code == 503
        finally:
            proxy.stop()
    seen = upstream.model_calls[0]
    assert seen.headers["x-api-key"] == "sk-real" and "authorization" not in {h.lower() for h in seen.headers}
    assert seen.path == "/v1/messages?beta=true"


def test_public_surface_is_exactly_what_init_exports() -> None:
    # What runs a turn is loaded on first use (the SDK is slow to import): public all the same.
    public = {name for name in vars(agent_runtime) if not name.startswith("_")}
    public |= set(agent_runtime._TURN_NAMES)
    modules = {"handler"}
    assert set(agent_runtime.__all__) == public - modules - {"annotations"}
    for name in agent_runtime.__all__:
        assert getattr(agent_runtime, name).__doc__ or isinstance(getattr(agent_runtime, name), (str, dict))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("POST", "/v1/files"),
        ("POST", "/v1/messages/batches"),
        ("DELETE", "/v1/messages"),
        ("GET", "/v1/messages"),
        ("POST", "/v1/messages/../files"),
        ("PUT", "/v1/messages/count_tokens"),
    ],
)
def test_proxy_refuses_everything_but_messages(method: str, path: str) -> None:
    with ModelServer(lambda request: "proxied") as upstream:
        proxy = ModelProxy(upstream=upstream.base_url, api_key="sk-real").start()
        try:
            key = {"x-api-key": proxy.open_turn()}
            with httpx.Client(base_url=proxy.base_url, headers=key) as client:
                request = client.build_request(method, "/", json={"model": "m"})
                request.url = request.url.copy_with(raw_path=path.encode())
                refused = client.send(request)
                counted = client.post("/v1/messages/count_tokens?beta=true", json={"messages": []})
        finally:
            proxy.stop()
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    assert counted.status_code == 200
    # Nothing but the allowed call reached the upstream with the key.
    assert [(c.method, c.path) for c in upstream.requests] == [
        ("POST", "/v1/messages/count_tokens?beta=true")
    ]


def test_proxy_accepts_only_the_current_turns_key() -> None:
    """A key copied by a tool dies with its turn; guesses and the next turn's rivals are refused."""
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with ModelServer(lambda request: "proxied") as upstream:
        proxy = ModelProxy(upstream=upstream.base_url, api_key="sk-real").start()
        try:

            def post(key: str | None, *, bearer: bool = False) -> int:
                headers = (
                    {}
                    if key is None
                    else {"authorization": f"Bearer {key}"}
                    if bearer
                    else {"x-api-key": key}
                )
                return httpx.post(f"{proxy.base_url}/v1/messages", json=body, headers=headers).status_code

            assert post(None) == 401  # between turns nothing passes
            first = proxy.open_turn()
            assert post(first) == 200 and post(first, bearer=True) == 200
            assert post(None) == 401 and post("sk-real") == 401 and post(first[:-1]) == 401
            proxy.close_turn()
            assert post(first) == 401  # after its turn
            second = proxy.open_turn()
            assert second != first and post(first) == 401 and post(second) == 200
        finally:
            proxy.stop()
    assert len(upstream.model_calls) == 3


def test_bedrock_proxy_signs_model_calls_only_and_only_for_the_current_turn() -> None:
    from agent_runtime._model_proxy import BedrockSigner
    from botocore.credentials import Credentials
    from local_stack import LocalCredentials, signed_by

    role = LocalCredentials.generate()  # stands in for the model-invoke role's credentials
    invoke = "/model/anthropic.claude-sonnet-4-5-v1:0/invoke"
    with ModelServer(lambda request: "from bedrock") as upstream:
        signer = BedrockSigner(lambda: Credentials(role.access_key_id, role.secret_access_key), "eu-west-1")
        proxy = ModelProxy(upstream=upstream.base_url, auth=signer).start()
        try:
            key = {"Authorization": f"Bearer {proxy.open_turn()}"}
            body = {
                "anthropic_version": "bedrock-2023-05-31",
                "messages": [{"role": "user", "content": "hi"}],
            }
            raw = json.dumps(body).encode()
            ok = httpx.post(
                f"{proxy.base_url}{invoke}", content=raw, headers={**key, "content-type": "application/json"}
            )
            other = [
                httpx.get(f"{proxy.base_url}/foundation-models", headers=key).status_code,
                httpx.post(f"{proxy.base_url}/model/x/converse", json=body, headers=key).status_code,
                httpx.post(
                    f"{proxy.base_url}/guardrail/g/version/1/apply", json=body, headers=key
                ).status_code,
            ]
            proxy.close_turn()
            late = httpx.post(f"{proxy.base_url}{invoke}", json=body, headers=key).status_code
            host = upstream.base_url.split("//", 1)[1]
        finally:
            proxy.stop()
    assert ok.status_code == 200 and "from bedrock" in ok.text
    assert other == [403, 403, 403] and late == 401
    [call] = upstream.model_calls
    assert call.path == invoke and "Bearer" not in call.headers.get("Authorization", "")
    assert signed_by(
        role, method="POST", url=f"http://{host}{invoke}", headers={**call.headers, "host": host}, body=raw
    )


def test_checking_the_configuration_does_not_load_the_sdk() -> None:
    """`agentbot dev` and `doctor` check settings and claude-config before anything runs; the
    SDK (~1 s of CPU to import) is loaded only by what runs a turn."""
    probe = (
        "import sys, agent_runtime\n"
        "agent_runtime.load_claude_config(None)\n"
        "agent_runtime.bundled_cli_path()\n"
        "assert 'claude_agent_sdk' not in sys.modules, 'the check loaded the SDK'\n"
        "agent_runtime.build_runtime\n"
        "assert 'claude_agent_sdk' in sys.modules, 'what runs a turn did not load it'\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_launcher_and_the_tools_shell_are_written_again_over_whatever_took_their_place(
    tmp_path: Path,
) -> None:
    """Without Landlock a tool may write the runtime's bin directory: a directory, a link or an
    edited copy in place of either file is replaced at the next turn's start."""
    from agent_runtime._environment import install_cli_launcher, tool_shell_path

    launcher = Path(install_cli_launcher(tmp_path))
    shell = Path(tool_shell_path(str(launcher)))
    original = launcher.read_bytes()
    launcher.unlink()
    (launcher / "inside").mkdir(parents=True)
    shell.unlink()
    (tmp_path / "mine").write_bytes(original)
    shell.symlink_to(tmp_path / "mine")

    assert install_cli_launcher(tmp_path) == str(launcher)
    for placed in (launcher, shell):
        assert placed.is_file() and not placed.is_symlink() and placed.read_bytes() == original
    # Bytes that are no text, a file nobody may read, a file where the shell's directory was.
    launcher.write_bytes(b"\xff\xfe")
    shell.chmod(0)
    assert install_cli_launcher(tmp_path) == str(launcher)
    shutil.rmtree(shell.parent)
    shell.parent.write_text("in the way")
    assert install_cli_launcher(tmp_path) == str(launcher)

    for placed in (launcher, shell):
        assert placed.is_file() and not placed.is_symlink() and placed.read_bytes() == original
        assert os.access(placed, os.X_OK)


def test_the_tools_shell_is_bash_in_a_nested_domain_that_cannot_reach_whoever_started_it() -> None:
    """With Landlock, each Bash call runs one layer deeper than the CLI: it cannot read the
    memory or environment of the process that started it (ptrace-class access), and a tool that
    nests shells until Landlock has no layer left gets exit 126, never an unconfined bash."""
    from agent_runtime._cli_launcher import landlock_abi
    from agent_runtime._environment import tool_shell_path

    nobody = pwd.getpwnam("nobody")  # as the runtime runs: root may read any process
    run_as: dict[str, Any] = (
        {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []} if os.geteuid() == 0 else {}
    )
    with tempfile.TemporaryDirectory() as bin_dir:
        os.chmod(bin_dir, 0o755)
        shell = tool_shell_path(install_cli_launcher(bin_dir))
        ran = subprocess.run(
            [shell, "-c", 'echo "$0 $1"; exit 7', "zero", "one"], capture_output=True, text=True, **run_as
        )
        assert (ran.returncode, ran.stdout) == (7, "zero one\n")  # arguments and status pass through

        def peek(via: str) -> subprocess.CompletedProcess[str]:
            """A plain bash starts ``via``, which reads that bash's environment (same uid)."""
            read = "cat /proc/$PPID/environ > /dev/null"
            starter = '"$1" -c "$2"; exit $?'  # two commands: bash does not exec the first
            return subprocess.run(
                ["/bin/bash", "-c", starter, "starter", via, read], capture_output=True, text=True, **run_as
            )

        assert peek("/bin/bash").returncode == 0  # no domain: a process may read its parent
        through_shell = peek(shell)
        deeper = 'n=$((n + 1)); export n; [ "$n" -gt 40 ] && exit 0; exec "$S" -c "$C"'
        nested = subprocess.run(
            [shell, "-c", deeper],
            env={**os.environ, "S": shell, "C": deeper, "n": "0"},
            capture_output=True,
            text=True,
            **run_as,
        )
    if landlock_abi() >= 1:
        assert through_shell.returncode != 0 and "Permission denied" in through_shell.stderr
        assert nested.returncode == 126 and "cannot confine this command" in nested.stderr
    else:  # nothing to nest in: the runtime installs this shell only where Landlock enforces
        assert through_shell.returncode == 0 and nested.returncode == 0
