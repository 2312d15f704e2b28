"""A prompt-injected agent in one chat reaches nothing outside its own turn.

The runtime runs as Lambda runs it: the real awslambdaric behind the local Lambda service, as
an unprivileged user (an account of its own, see ``SWEEP_USERS``; the tests must run as root
to start it so), with the role's
credentials in its environment and the model key in SSM. Its AWS demands a signature made with
those credentials (as AWS does). The scripted model makes chat B run ``attack.py`` from its
Bash tool; chat A talks before and after. Everything is run twice: with Landlock (this kernel
has it) and with ``LANDLOCK=off``, which shows what holds on a kernel without it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_runtime._cli_launcher import landlock_abi
from local_stack import (
    LocalCredentials,
)
from session_core import TurnResult

from tests.containment.contained_runtime import contained_runtime
from tests.containment.support import (
    ROOT_ONLY_REASON,
    agent_user_processes,
    allow_targets,
    attack_command,
    attack_dir,
    attack_report,
    attack_responder,
    listening_ports,
    run_once,
    tools_config,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason=ROOT_ONLY_REASON),
]
MODEL_KEY = "sk-ant-containment-MODEL-KEY-never-visible-0042"
CHAT_A, CHAT_B = "default/1111/0", "default/2222/0"


# The runtime here sweeps by uid, as in Lambda: every process of its uid dies after a turn.
# On a shared test machine that would also kill the turns of tests running beside it as
# `nobody`, so each scenario runs as an unprivileged system account of its own (Debian's
# base-passwd has both; nothing else runs as them).
SWEEP_USERS = {True: "games", False: "man"}


@dataclass
class Scenario:
    landlock: bool
    user: str
    a_first: TurnResult
    attack: TurnResult
    a_second: TurnResult
    report: dict[str, Any]
    runtime_pid: int
    survivors: list[str]
    proxy_after_turn: int
    model_calls_after_turn: int
    model_calls_at_return: int
    allowed_ports: set[int]
    local_service_ports: set[int]
    aws_port: int
    invoke_port: int
    sent_files: dict[str, bytes]  # what the runtime sent of the attack's outbox, by name


def run_scenario(landlock: bool) -> Scenario:
    credentials = LocalCredentials.generate()
    attacker = attack_dir([MODEL_KEY, credentials.secret_access_key])
    sessions_root = Path(tempfile.mkdtemp(prefix="agentbot-contained-"))
    user = SWEEP_USERS[landlock]
    try:
        with contained_runtime(
            user=user,
            landlock=landlock,
            sessions_root=sessions_root,
            config=tools_config(attacker),
            credentials=credentials,
            model_key=MODEL_KEY,
            responder=attack_responder(attack_command(attacker)),
        ) as runtime:
            turn, lam, model = runtime.turn, runtime.lam, runtime.model
            a_first = turn(CHAT_A, 1, "note: private-of-chat-a")
            (runtime_pid,) = lam.process_ids
            # Everything this test serves: the Runtime API, moto, the model server...
            local_service_ports = listening_ports({os.getpid()})
            allow_targets(attacker, local_service_ports)
            attack = turn(CHAT_B, 2, "attack")
            sent_files = {f.file_name: runtime.read_object(f.s3_key) for f in attack.files}
            survivors = agent_user_processes(attacker, user=user)
            report = attack_report(attack.text)
            # The attacker kept the key it was given; outside its turn it is worth nothing.
            after_turn = httpx.post(
                f"{report['model_url']}/v1/messages",
                json={"model": "m", "messages": []},
                headers={"x-api-key": report["model_key"]},
            ).status_code
            calls_at_return = len(model.model_calls)
            time.sleep(1.5)  # the daemon, were it alive, tries every 0.1 s
            calls_after = len(model.model_calls)
            a_second = turn(CHAT_A, 3, "hello again")
            invoke_port = int(lam.endpoint.rsplit(":", 1)[1])
            proxy_port = int(report["model_url"].rsplit(":", 1)[1])
            return Scenario(
                landlock=landlock,
                user=user,
                a_first=a_first,
                attack=attack,
                a_second=a_second,
                report=report,
                runtime_pid=runtime_pid,
                survivors=survivors,
                proxy_after_turn=after_turn,
                model_calls_after_turn=calls_after,
                model_calls_at_return=calls_at_return,
                allowed_ports={proxy_port, 443, 80, 53},
                local_service_ports=local_service_ports,
                aws_port=int(runtime.aws_url.rsplit(":", 1)[1]),
                invoke_port=invoke_port,
                sent_files=sent_files,
            )
    finally:
        shutil.rmtree(attacker, ignore_errors=True)
        shutil.rmtree(sessions_root, ignore_errors=True)


@pytest.fixture(scope="module", params=["landlock", "no-landlock"])
def scenario(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    landlock = request.param == "landlock"
    try:
        pwd.getpwnam(SWEEP_USERS[landlock])
    except KeyError:
        pytest.skip(f"CONTAINMENT NOT TESTED: no account {SWEEP_USERS[landlock]!r} to run the runtime as")
    if landlock and landlock_abi() < 4:
        pytest.skip(f"this kernel's Landlock ABI is {landlock_abi()} (< 4): only the no-Landlock run applies")
    # Once per test run, however the module's tests are spread over xdist's workers: two runs
    # of one scenario at a time share its user, and each one's uid sweep would kill the other.
    yield run_once(
        request, tmp_path_factory, f"runtime-containment-{request.param}", lambda: run_scenario(landlock)
    )


def test_the_attack_ran_as_the_unprivileged_user_and_every_chat_got_its_own_answer(
    scenario: Scenario,
) -> None:
    assert scenario.report["uid"] == pwd.getpwnam(scenario.user).pw_uid != 0
    assert scenario.a_first.ok and "noted" in scenario.a_first.text
    assert scenario.attack.ok and not scenario.attack.replayed
    assert scenario.a_second.ok, scenario.a_second
    assert scenario.a_second.text == "genuine answer for chat A after 1 earlier turns"
    assert "FORGED" not in scenario.a_second.text + scenario.attack.text.split("ATTACK-REPORT", 1)[0]


def test_no_secret_is_readable_from_any_process(scenario: Scenario) -> None:
    report = scenario.report
    assert report["proc_leaks"] == [] and report["mem_leaks"] == []
    # The runtime holds the role's credentials and the model key: neither its environment block
    # nor its memory can be read (it is non-dumpable), although it runs as the same user.
    assert scenario.runtime_pid not in report["environ_readable"]
    assert scenario.runtime_pid not in report["mem_readable"]
    names = set(report["env_names"])
    assert not {n for n in names if n.startswith("AWS_")}, names
    assert not {"ANTHROPIC_API_KEY_PARAMETER", "SESSIONS_TABLE", "SESSIONS_BUCKET"} & names
    assert report["model_key"] != MODEL_KEY and report["model_key"].startswith("sk-ant-agentbot-turn-")


def test_no_process_of_the_turn_outlives_it_and_the_next_invocation_is_not_stolen(scenario: Scenario) -> None:
    # The attack left a double-forked setsid daemon and a nohup'd sleep; both died with the turn.
    assert scenario.survivors == []
    assert scenario.report["stolen"] == []
    assert scenario.a_second.ok and "FORGED" not in scenario.a_second.text


def test_the_model_key_dies_with_its_turn(scenario: Scenario) -> None:
    assert scenario.proxy_after_turn == 401
    # Nothing the attacker tried after its turn reached the model.
    assert scenario.model_calls_after_turn == scenario.model_calls_at_return


def test_no_local_aws_or_lambda_call_succeeds_without_the_functions_credentials(scenario: Scenario) -> None:
    # (Only this stack's endpoints count: other test servers on this machine take any signature.)
    ours = {scenario.aws_port, scenario.invoke_port}
    assert [call for call in scenario.report["aws"] if int(call.split(":")[0]) in ours] == []


def test_no_other_chats_files_are_readable(scenario: Scenario) -> None:
    assert scenario.report["other_sessions"] == []


def test_with_landlock_only_the_listed_ports_are_reachable_and_writes_stay_in_the_session(
    scenario: Scenario,
) -> None:
    if not scenario.landlock:
        # What a kernel without Landlock allows; the checks above still hold there.
        assert scenario.aws_port in scenario.report["connectable"]
        return
    connectable = set(scenario.report["connectable"])
    assert connectable <= scenario.allowed_ports, connectable
    assert not connectable & (scenario.local_service_ports | {scenario.aws_port, scenario.invoke_port})
    assert scenario.report["writes"] == []
    if landlock_abi() >= 6:
        assert scenario.report["signals"] == []  # cannot signal the runtime (or anything outside)


def test_no_tool_can_reach_the_clis_pipes_to_the_runtime(scenario: Scenario) -> None:
    """Neither /proc/<cli>/fd nor pidfd_getfd hands a tool the pipes through which it could speak
    for the CLI. With Landlock each Bash tool call runs in a domain nested in the CLI's; without
    it, the CLI's program is one the agent's user may run but not read (as in the runtime
    image), so the kernel starts the CLI non-dumpable."""
    assert scenario.report["cli_pipes"] == [], scenario.report


def test_the_outbox_sends_only_the_agents_own_files_never_what_it_links_to(scenario: Scenario) -> None:
    planted = scenario.report["outbox_planted"]
    assert any(name.startswith("environ-") for name in planted), planted  # the runtime's, at least
    assert scenario.sent_files == {"proof.txt": b"the agent's own file"}, sorted(scenario.sent_files)
    refused = {(f.file_name, f.reason) for f in scenario.attack.files_not_sent}
    assert refused == {(name, "not_a_file") for name in planted}
