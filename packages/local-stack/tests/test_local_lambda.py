"""The local Lambda service drives real awslambdaric processes behind Lambda's Invoke API,
so boto3's `lambda.invoke` in the consumer is the same code locally and in production."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from botocore.config import Config
from local_stack import FunctionSpec, LocalLambda, local_client
from session_core import DEFAULT_RUNTIME_MEMORY_MB

FIXTURES = str(Path(__file__).parent / "lambda_fixtures")


def _client(endpoint: str):
    return local_client("lambda", endpoint, config=Config(read_timeout=30, retries={"total_max_attempts": 1}))


def _invoke(client, payload: dict, name: str = "probe") -> tuple[dict, str | None]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
    return json.loads(response["Payload"].read()), response.get("FunctionError")


@pytest.fixture
def local_lambda():
    spec = FunctionSpec(
        handler="probe_handler.handle",
        env={"PYTHONPATH": FIXTURES},
        timeout_s=3,
        max_concurrency=2,
    )
    with LocalLambda({"probe": spec}) as service:
        yield service


def test_invoke_reaches_the_handler_and_reuses_the_warm_process(local_lambda) -> None:
    client = _client(local_lambda.endpoint)
    first, error = _invoke(client, {"hello": "world"})
    assert error is None
    assert first["echo"] == {"hello": "world"} and first["function"] == "probe"
    assert 0 < first["remaining_ms"] <= 3000
    # the deployed runtime's memory unless the spec says another (tests/test_template.py ties it)
    assert first["memory_mb"] == str(DEFAULT_RUNTIME_MEMORY_MB)
    second, _ = _invoke(client, {"n": 2})
    assert second["pid"] == first["pid"] and second["calls"] == 2
    assert second["request_id"] != first["request_id"]


def test_handler_error_is_reported_as_function_error_and_the_worker_stays(local_lambda) -> None:
    client = _client(local_lambda.endpoint)
    body, error = _invoke(client, {"action": "raise"})
    assert error == "Unhandled"
    assert body["errorType"] == "ValueError" and "asked to fail" in body["errorMessage"]
    ok, error = _invoke(client, {})
    assert error is None and ok["calls"] == 2


def test_crash_and_timeout_give_errors_and_a_fresh_process_next_time(local_lambda) -> None:
    client = _client(local_lambda.endpoint)
    before, _ = _invoke(client, {})
    body, error = _invoke(client, {"action": "exit"})
    assert error == "Unhandled" and "exited" in body["errorMessage"]
    body, error = _invoke(client, {"action": "sleep", "seconds": 10})
    assert error == "Unhandled" and "timed out" in body["errorMessage"]
    after, error = _invoke(client, {})
    assert error is None and after["pid"] != before["pid"]


def test_concurrent_invokes_run_in_parallel_up_to_the_limit(local_lambda) -> None:
    client = _client(local_lambda.endpoint)
    results: list[dict] = []

    def call() -> None:
        results.append(_invoke(client, {"action": "sleep", "seconds": 1})[0])

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # a second warm process is started only while the first is busy
    assert len({r["pid"] for r in results}) == 2


def test_unknown_function_is_resource_not_found(local_lambda) -> None:
    client = _client(local_lambda.endpoint)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="nope", Payload=b"{}")


def test_stop_leaves_no_process_behind() -> None:
    spec = FunctionSpec(handler="probe_handler.handle", env={"PYTHONPATH": FIXTURES})
    service = LocalLambda({"probe": spec}).start()
    _invoke(_client(service.endpoint), {})
    pids = service.process_ids
    assert pids
    service.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _escaped_tool(client, tmp_path: Path, name: str, **extra) -> int:
    """Invoke the probe so that it starts a tool that calls setsid and double-forks; its pid."""
    pid_file = tmp_path / f"{name}.pid"
    payload = {"action": "escape", "pid_file": str(pid_file), **extra}
    if extra.get("then_sleep"):

        def invoke_cut_short_by_stop() -> None:
            with contextlib.suppress(Exception):
                _invoke(client, payload)

        threading.Thread(target=invoke_cut_short_by_stop, daemon=True).start()
    else:
        _invoke(client, payload)
    deadline = time.monotonic() + 15
    while not pid_file.exists():
        assert time.monotonic() < deadline, "the tool never started"
        time.sleep(0.02)
    pid = int(pid_file.read_text())
    assert os.getpgid(pid) != os.getpgid(os.getpid())  # really outside every group we know
    return pid


def _gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                if stat.read().rpartition(b")")[2].split()[0] == b"Z":
                    return True  # dead, waiting to be reaped by whoever adopted it
        except (FileNotFoundError, ProcessLookupError):  # gone before the open, or during the read
            return True
        time.sleep(0.05)
    return False


def test_stop_ends_tools_that_left_the_process_group(tmp_path: Path) -> None:
    spec = FunctionSpec(handler="probe_handler.handle", env={"PYTHONPATH": FIXTURES}, max_concurrency=2)
    service = LocalLambda({"probe": spec}).start()
    try:
        client = _client(service.endpoint)
        idle = _escaped_tool(client, tmp_path, "idle")  # handler returned, tool lives on
        busy = _escaped_tool(client, tmp_path, "busy", then_sleep=30)  # handler still running
    finally:
        started = time.monotonic()
        service.stop()
    assert time.monotonic() - started < 10
    assert _gone(idle) and _gone(busy)


@pytest.mark.parametrize("how", ["killed", "timed out", "exited"])
def test_a_worker_that_dies_takes_its_escaped_tools_with_it(local_lambda, tmp_path: Path, how) -> None:
    client = _client(local_lambda.endpoint)
    tool = _escaped_tool(client, tmp_path, "tool")
    [worker] = local_lambda.process_ids
    if how == "killed":
        os.kill(worker, signal.SIGKILL)  # what a crash (or the pipeline test) does to a worker
    elif how == "timed out":
        _, error = _invoke(client, {"action": "sleep", "seconds": 10})  # the fixture's timeout is 3 s
        assert error == "Unhandled"
    else:
        _, error = _invoke(client, {"action": "exit"})
        assert error == "Unhandled"
    assert _gone(tool), f"tool {tool} outlived its worker"
    answer, error = _invoke(client, {"n": 1})  # and the function still works, in a new process
    assert error is None and answer["pid"] != worker


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can tell the worker's sockets apart")
def test_a_process_the_function_started_cannot_take_its_next_invocation(local_lambda) -> None:
    """Under `agentbot dev` every function's Runtime API is a port on one machine: a tool of the
    runtime (or of any user) asking it for the next invocation would take another chat's turn.
    Only the worker's own process is answered."""
    client = _client(local_lambda.endpoint)
    taken, error = _invoke(client, {"action": "take_next"})
    assert error is None and taken["tool_got"] == "403", taken
    after, error = _invoke(client, {"n": 2})  # the worker itself is still answered
    assert error is None and after["calls"] == 2, after


def test_an_idle_worker_killed_just_before_an_invoke_is_not_given_it(local_lambda) -> None:
    """Lambda hands an invocation only to an environment that asks for it: one whose process
    died while idle is replaced, and the invocation runs in the new one. Handing it to the
    dying worker failed the invocation with "Runtime exited with status -9" while the killed
    process was still exiting."""
    client = _client(local_lambda.endpoint)
    for round_ in range(10):
        before, error = _invoke(client, {"n": round_})
        assert error is None, before
        os.kill(before["pid"], signal.SIGKILL)
        after, error = _invoke(client, {"n": round_})  # at once: it is still exiting
        assert error is None, after
        assert after["pid"] != before["pid"]


def test_a_function_given_its_aws_endpoint_keeps_it_whatever_the_callers_shell_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A function whose spec names AWS_ENDPOINT_URL (agentbot dev's local AWS) sends its
    requests there: neither the caller's AWS_ENDPOINT_URL_<SERVICE> nor its
    AWS_IGNORE_CONFIGURED_ENDPOINT_URLS (which makes boto3 skip every endpoint variable) sends
    them to another AWS."""
    mine = "http://127.0.0.1:9"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:7")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    spec = FunctionSpec(
        handler="probe_handler.handle", env={"PYTHONPATH": FIXTURES, "AWS_ENDPOINT_URL": mine}, timeout_s=10
    )
    with LocalLambda({"probe": spec}) as service:
        client = _client(service.endpoint)
        for service_name in ("s3", "dynamodb"):
            answer, error = _invoke(client, {"action": "endpoint", "service": service_name})
            assert error is None and answer["endpoint"] == mine, answer
