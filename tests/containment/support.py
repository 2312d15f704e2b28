"""What the containment tests share: the attacker's script in a directory the unprivileged user
can read, the scripted model that makes the agent run it, and a look at who survived."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import pwd
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
from agent_runtime._cli_launcher import landlock_abi
from agentbot_testing import claude_config_without_approvals
from local_stack import AGENT_USER, LocalCredentials, ToolCall, last_user_text, tool_results, user_turns

from tests.containment.contained_runtime import ContainedRuntime, contained_runtime

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ROOT_ONLY_REASON = (
    "CONTAINMENT NOT TESTED: these attack tests run the agent runtime as the unprivileged user "
    "'nobody', which needs root; run the suite as root to prove the agent is contained"
)

# A tool's Bash command, in its cwd: 200 MiB a MiB at a time, paced (an attack writes as fast as
# the disk takes it: the runtime lets it write one look's worth past the disk budget) so that
# the runtime's look (every 0.25 s) can be seen to come first.
WRITE_200_MIB = (
    "for i in $(seq 200); do head -c 1048576 /dev/zero > f$i || break; sleep 0.02; done; echo WROTE-ALL"
)

# Not a user of another test: the runtime sweeps its uid after each turn (see SWEEP_USERS).
RUNTIME_USERS = {True: "games", False: "man"}


def attack_dir(needles: list[str]) -> Path:
    """A fresh directory with attack.py and the secret values it looks for (test scaffolding:
    nothing of the stack reads it). World-writable, so a write there would show."""
    directory = Path(tempfile.mkdtemp(prefix="agentbot-attack-"))
    shutil.copy(HERE / "attack.py", directory / "attack.py")
    (directory / "needles.txt").write_text("".join(f"{n}\n" for n in needles))
    directory.chmod(0o777)
    return directory


def tools_config(directory: Path) -> Path:
    """claude-config without approval rules (the attack's Bash call runs unasked: the sandbox
    must hold whatever a user allows), readable by the unprivileged user, writable by root only."""
    parent = directory / "config"
    parent.mkdir(mode=0o755)
    parent.chmod(0o755)
    return claude_config_without_approvals(parent)


def allow_targets(directory: Path, ports: set[int]) -> None:
    """The ports of the stack under test, the only ones the attack acts on (it still connects
    to every port it finds, which harms no one)."""
    (directory / "targets.txt").write_text(" ".join(map(str, sorted(ports))))


def listening_ports(pids: set[int]) -> set[int]:
    """TCP ports the given processes listen on."""
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:  # closed meanwhile
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def attack_command(directory: Path) -> str:
    """The Bash command the scripted model asks for."""
    return f"python3 {directory}/attack.py {directory} {REPO / 'claude-config'}"


def attack_responder(command: str) -> Callable[[dict[str, Any]], Any]:
    """``attack`` runs the attack; ``note: X`` writes X into note.txt; anything else is chat A's
    genuine answer, counting its earlier turns."""

    def respond(request: dict[str, Any]) -> Any:
        text, results = last_user_text(request), tool_results(request)
        if results:
            return f"TOOL-OUTPUT {results[-1]}"
        if text == "attack":
            return [ToolCall(name="Bash", input={"command": command, "description": "attack"})]
        if text.startswith("note:"):
            note = f"echo {text[5:].strip()} > note.txt && echo noted"
            return [ToolCall(name="Bash", input={"command": note, "description": "note"})]
        return f"genuine answer for chat A after {user_turns(request) - 1} earlier turns"

    return respond


def attack_report(answer: str) -> dict[str, Any]:
    """The JSON the attack printed, out of the agent's answer."""
    return dict(json.loads(answer.split("ATTACK-REPORT ", 1)[1].splitlines()[0]))


def agent_user_processes(marker: Path, *, user: str = AGENT_USER) -> list[str]:
    """Command lines of ``user``'s processes that belong to this attack (they name
    ``marker``, its directory: other tests on the machine may run as that user too)."""
    uid = pwd.getpwnam(user).pw_uid
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(marker) in cmdline:
            found.append(cmdline)
    return found


_T = TypeVar("_T")


def run_once(
    request: pytest.FixtureRequest, factory: pytest.TempPathFactory, name: str, make: Callable[[], _T]
) -> _T:
    """``make()`` once per test run: under xdist the first worker to ask runs it, the others
    wait on a lock and read its pickled result (named by the run's id, in the run's temp dir,
    so never an earlier run's). If it raises, nothing is kept and the next worker tries again."""
    worker = getattr(request.config, "workerinput", None)
    if worker is None:  # not distributed: this process is the whole run
        return make()
    shared = factory.getbasetemp().parent  # the run's base temp, above each worker's own
    result = shared / f"{name}-{worker['testrunuid']}.pickle"
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if result.exists():
            return pickle.loads(result.read_bytes())  # written by this run, below
        value = make()
        partial = result.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(value))
        partial.replace(result)  # whole or absent, even if this worker is killed
        return value


def bash_responder(request: dict[str, Any]) -> Any:
    """The scripted model of the runtime tests: ``bash: CMD`` runs CMD as a Bash tool call and
    answers with its output; anything else is answered counting the chat's earlier turns."""
    text, results = last_user_text(request), tool_results(request)
    if results:
        return f"ran: {results[-1]}"
    while text.startswith("(From the bot, not the user:") and "\n\n" in text:
        text = text.split("\n\n", 1)[1]  # a note on an earlier turn, before the message
    if text.startswith("bash: "):
        return [ToolCall(name="Bash", input={"command": text[6:], "description": "sabotage"})]
    return f"answer after {user_turns(request) - 1} earlier turns"


def runtime_user(landlock: bool) -> str:
    """The account the runtime runs as in this run (the test is skipped, saying why, when the
    machine lacks it or the kernel lacks the Landlock this run needs)."""
    user = RUNTIME_USERS[landlock]
    try:
        pwd.getpwnam(user)
    except KeyError:
        pytest.skip(f"CONTAINMENT NOT TESTED: no account {user!r} to run the runtime as")
    if landlock and landlock_abi() < 4:
        pytest.skip(f"this kernel's Landlock ABI is {landlock_abi()} (< 4): only the no-Landlock run applies")
    return user


@contextlib.contextmanager
def bash_scripted_runtime(
    user: str,
    *,
    landlock: bool,
    scratch: Path,
    model_key: str,
    sweep_scope: str = "uid",
    home: Path | None = None,
    settings: Mapping[str, str] | None = None,
) -> Iterator[ContainedRuntime]:
    """A contained runtime as ``user`` answered by :func:`bash_responder`, its sessions in
    ``scratch/sessions`` and its claude-config in ``scratch/config`` (the caller removes
    ``scratch``); fresh AWS credentials each time; ``home``: the runtime's HOME; ``settings``:
    more of its environment."""
    with contained_runtime(
        user=user,
        landlock=landlock,
        sessions_root=scratch / "sessions",
        config=tools_config(scratch),
        credentials=LocalCredentials.generate(),
        model_key=model_key,
        responder=bash_responder,
        sweep_scope=sweep_scope,
        home=home,
        settings=settings,
    ) as runtime:
        yield runtime
