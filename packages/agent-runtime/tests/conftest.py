"""Fixtures for agent-runtime tests: the scripted model server, a runtime wired to the local
AWS (moto) and helpers to build turn requests. Real CLI, real boto3, real HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_runtime import Runtime, build_runtime, load_settings
from agentbot_testing import AwsFault, FaultProxy
from botocore.config import Config
from local_stack import ModelServer, ToolCall, last_user_text, tool_results, user_turns
from session_core import (
    TURN_VERSION,
    SessionKey,
    SessionRegistry,
    StagedAttachment,
    TranscriptStore,
    TurnRequest,
    UnsentFile,
    configure_logging,
    undelivered_files,
)

API_KEY_PARAMETER = "/agentbot/test/anthropic-api-key"
# Looks like a key so a leak would be obvious; opens nothing.
FAKE_API_KEY = "sk-ant-test-DO-NOT-LEAK-0123456789"


class ManualClock:
    """A lease clock that moves only when a test says so (``advance``); a runtime's lease
    renewer waiting on it wakes once enough of its time has passed. ``wait_for`` waits (in
    real time, bounded) for what the runtime does in response."""

    def __init__(self, now: float = 1_760_000_000.0) -> None:
        self.now = now
        self.sleeping = 0  # how many waits on this clock are running (the lease renewer's)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        # The renewer must be waiting first: one that starts its wait after this move would
        # count its interval from the new time, and the time the test means to pass never would.
        self.wait_for(lambda: self.sleeping > 0, "the lease renewer to wait on the clock")
        with self._lock:
            self.now += seconds

    async def sleep(self, seconds: float) -> None:
        until = self() + seconds
        with self._lock:
            self.sleeping += 1
        try:
            while self() < until:
                await asyncio.sleep(0.005)
        finally:
            with self._lock:
                self.sleeping -= 1

    @staticmethod
    def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.01)


# Said by the note about the last answer's losses (``_undelivered_note``), once per telling.
LOSSES_TOLD = "could not be sent to the user"


def answer_lost(aws: Any, key: str, turn_id: int) -> None:
    """Turn ``turn_id``'s answer failed for good (its text and logs.zip), as the consumer keeps it."""
    registry = SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table)
    lost = undelivered_files(turn_id, [UnsentFile(file_name="logs.zip", reason="failed")], text_lost=True)
    assert lost is not None
    registry.keep_undelivered_files(SessionKey.parse(key), lost)


def staged_file(
    aws: Any, turn_id: int, file_name: str, mime_type: str, body: bytes
) -> tuple[StagedAttachment, ...]:
    """``body`` put where the consumer stages a file the user sent with turn ``turn_id`` of the
    default chat: the request's ``attachments``."""
    s3_key = f"{SessionKey.parse('default/1001/0').s3_prefix}attachments/{turn_id}/{file_name}"
    aws.s3.put_object(Bucket=aws.resources.bucket, Key=s3_key, Body=body)
    return (StagedAttachment(s3_key=s3_key, file_name=file_name, mime_type=mime_type, size=len(body)),)


def lease_renewals(target: str, body: bytes) -> bool:
    return target == "UpdateItem" and b"lease_owner" in body


def stall_past_the_lease(lease_clock: ManualClock, dynamo_faults: DynamoFaults) -> None:
    """This container stalls: its lease renewals fail (one is seen failing) while 3.5 s of
    lease time pass, longer than the 3 s lease (a runtime built with ``LEASE_DURATION_S=3``)."""
    dynamo_faults.fail = lease_renewals
    lease_clock.advance(1.0)  # one renewal interval
    lease_clock.wait_for(lambda: "UpdateItem" in dynamo_faults.failed, "a failed renewal")
    lease_clock.advance(2.5)


@pytest.fixture
def lease_clock() -> ManualClock:
    """The clock of a runtime's leases and of the test's own registry (pass ``clock=``)."""
    return ManualClock()


def flow_responder(request: dict[str, Any]) -> Any:
    """A model that follows simple commands in the user's text, one tool step at a time.

    ``bash: CMD`` runs Bash; ``mcp: TEXT`` calls the agentbot-tools word_count tool;
    ``agent: TEXT`` delegates to the summarizer subagent; ``skill: NAME`` uses the
    hello-world skill and then its script. Anything else is answered with the number of
    user turns the request carried and the last text.
    """
    system = json.dumps(request.get("system"))
    if "You are a summarizer" in system:
        return "SUBAGENT-SUMMARY: one, two, three"
    results = tool_results(request)
    text = _past_day_note(last_user_text(request))
    notice = re.search(
        r"<task-notification>.*?<result>(.*?)</result>", json.dumps(request["messages"][-1]), re.S
    )
    if notice:  # a background agent finished
        return f"DONE: {notice.group(1)}"
    if results:
        last = results[-1]
        # Only once the CLI launched the skill (an unknown one is an error result).
        if text.startswith("skill:") and "Launching skill: hello-world" in last:
            name = text.split(":", 1)[1].strip()
            return [
                ToolCall(
                    name="Bash",
                    input={
                        "command": f'python3 .claude/skills/hello-world/hello.py "{name}"',
                        "description": "run the skill script",
                    },
                )
            ]
        return f"DONE: {last}"
    if text.startswith("bash:"):
        return [ToolCall(name="Bash", input={"command": text[5:].strip(), "description": "test"})]
    if text.startswith("mcp:"):
        return [ToolCall(name="mcp__agentbot-tools__word_count", input={"text": text[4:].strip()})]
    if text.startswith("agent:"):
        return [
            ToolCall(
                name="Agent",
                input={
                    "subagent_type": "summarizer",
                    "description": "summarize",
                    "prompt": text[6:].strip(),
                    "run_in_background": False,
                },
            )
        ]
    if text.startswith("skill:"):
        return [ToolCall(name="Skill", input={"skill": "hello-world"})]
    return f"turns={user_turns(request)} last={text}"


# The runtime's note before the first message of a day (_day_note): a command after it is
# still the message's, as a model reads it.
_DAY_NOTE = "(From the bot, not the user: the message below was sent on "


def _past_day_note(text: str) -> str:
    note, _, message = text.partition("\n\n")
    return message if note.startswith(_DAY_NOTE) and message else text


@pytest.fixture(autouse=True)
def _logging_to_this_tests_stderr() -> None:
    # session-core's logging binds sys.stderr when configured; a test that configured it under
    # capsys leaves it bound to a closed stream. Rebind to the current one.
    configure_logging(json_lines=False)


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    with ModelServer(flow_responder) as server:
        yield server


@pytest.fixture
def sessions_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # A fixed-length path under the pytest temp dir; it is part of the project key, so every
    # "container" of one test uses the same path (as /tmp/agentbot-sessions in Lambda).
    root = tmp_path_factory.mktemp("sessions")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def runtime_env(
    aws: Any,
    model_server: ModelServer,
    sessions_root: Path,
    tools_config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """Environment of a runtime container: storage from the `aws` fixture, the API key in
    (moto) SSM, the model server as Anthropic endpoint."""
    aws.client("ssm").put_parameter(
        Name=API_KEY_PARAMETER, Value=FAKE_API_KEY, Type="SecureString", Overwrite=True
    )
    env = {
        **aws.resources.environment(),
        "ANTHROPIC_API_KEY_PARAMETER": API_KEY_PARAMETER,
        "ANTHROPIC_BASE_URL": model_server.base_url,
        "SESSIONS_ROOT": str(sessions_root),
        "CLAUDE_CONFIG_PATH": str(tools_config),  # no approvals: tests of them set their own
        "MODEL_MAX_RETRIES": "0",
        # the example HTTP MCP entry points at a closed local port in tests (offline)
        "DEEPWIKI_MCP_URL": "http://127.0.0.1:9/mcp",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def make_runtime(aws: Any, runtime_env: dict[str, str]) -> Iterator[Callable[..., Runtime]]:
    """Build a runtime as a fresh container would (its own clients, store and caches)."""
    built: list[Runtime] = []

    def make(**overrides: Any) -> Runtime:
        clients = {"s3": aws.client("s3"), "dynamodb": aws.client("dynamodb"), "ssm": aws.client("ssm")}
        runtime = build_runtime(
            load_settings({**runtime_env, **overrides.pop("env", {})}),
            **{**clients, **overrides},
        )
        built.append(runtime)
        return runtime

    yield make
    for runtime in built:
        runtime.model.close()


@pytest.fixture
def make_dated_runtime(
    aws: Any, make_runtime: Callable[..., Runtime], lease_clock: ManualClock
) -> Callable[..., Runtime]:
    """``make_runtime`` whose every clock (leases, registry, approvals, transcript expiry) is
    ``lease_clock``: a test moves ``lease_clock.now`` by days to see what weeks do."""

    def make(**overrides: Any) -> Runtime:
        store = TranscriptStore(
            s3=aws.client("s3"),
            dynamodb=aws.client("dynamodb"),
            bucket=aws.resources.bucket,
            table=aws.resources.table,
            clock=lease_clock,
        )
        return make_runtime(store=store, clock=lease_clock, **overrides)

    return make


def _turn_request(
    prompt: str, *, turn_id: int, session_key: str = "default/1001/0", **kw: Any
) -> TurnRequest:
    return TurnRequest(version=TURN_VERSION, session_key=session_key, turn_id=turn_id, prompt=prompt, **kw)


@pytest.fixture
def turn_request() -> Callable[..., TurnRequest]:
    """Build a TurnRequest: ``turn_request(prompt, turn_id=..., session_key=...)``."""
    return _turn_request


@pytest.fixture
def fresh_container(sessions_root: Path) -> Callable[[], None]:
    """Make the file system look like a new Lambda container's: same /tmp path, empty."""

    def wipe() -> None:
        shutil.rmtree(sessions_root, ignore_errors=True)
        sessions_root.mkdir()

    return wipe


class DynamoFaults:
    """The test's DynamoDB behind agentbot's fault-injecting proxy: requests are answered with
    a 500 (as DynamoDB does in an outage) while ``fail(target, body)`` says so. Real HTTP, real
    boto3: ``client`` is a DynamoDB client that goes through it; ``failed`` lists the
    operations (``"UpdateItem"``) refused."""

    def __init__(self, upstream: str) -> None:
        self.fail: Callable[[str, bytes], bool] = lambda target, body: False
        outage = AwsFault("dynamodb:*", when=lambda operation, body: self.fail(_target(operation), body))
        self.proxy = FaultProxy(upstream, [outage]).start()
        self.client = self.proxy.client(
            "dynamodb", config=Config(retries={"max_attempts": 2, "mode": "standard"})
        )

    @property
    def failed(self) -> list[str]:
        return [_target(operation) for operation in self.proxy.failed]

    def stop(self) -> None:
        self.proxy.stop()


def _target(operation: str) -> str:
    return operation.removeprefix("dynamodb:")


@pytest.fixture
def dynamo_faults(aws: Any, runtime_env: dict[str, str]) -> Iterator[DynamoFaults]:
    """A fault-injecting proxy in front of the test's DynamoDB (see DynamoFaults)."""
    faults = DynamoFaults(aws.endpoint)
    yield faults
    faults.stop()
