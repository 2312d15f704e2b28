"""The local Lambda's Runtime API hands invocations to its own worker only.

Lambda gives each function its own execution environment, and its Runtime API
(127.0.0.1:9001) is reachable only from inside it. The local Lambda of `agentbot dev` runs
every function on one machine, each worker with a Runtime API port on 127.0.0.1 that
answers anyone: on a kernel whose Landlock has no network rules (before 6.7, most
developers' machines) the agent's tools, as ``nobody``, reach the consumer's. A tool that asks
it for the next invocation gets another chat's messages, and answers in the consumer's place.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from botocore.config import Config
from local_stack import AGENT_USER, FunctionSpec, LocalLambda, local_client

from tests.containment.support import ROOT_ONLY_REASON, listening_ports

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason=ROOT_ONLY_REASON)]
FIXTURES = str(Path(__file__).parents[2] / "packages" / "local-stack" / "tests" / "lambda_fixtures")
# As the agent's user: ask every port given for the next invocation, at once, for a few
# seconds; answer what comes as the function would; print what was taken.
THIEF = """
import json, socket, sys, threading, urllib.request
taken = []
def ask(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=6) as s:
            s.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            head = s.recv(65536)
    except OSError:
        return
    for line in head.split(b"\\r\\n"):
        if line.lower().startswith(b"lambda-runtime-aws-request-id:"):
            taken.append(head.decode(errors="replace"))
            request_id = line.split(b":", 1)[1].strip().decode()
            url = f"http://127.0.0.1:{port}/2018-06-01/runtime/invocation/{request_id}/response"
            try:
                urllib.request.urlopen(urllib.request.Request(url, data=b'{"forged": true}'), timeout=2)
            except OSError:
                pass
threads = [threading.Thread(target=ask, args=(int(p),)) for p in sys.argv[1:]]
[t.start() for t in threads]
print("READY", flush=True)
[t.join() for t in threads]
print("TAKEN " + json.dumps(taken))
"""


def test_a_tool_cannot_take_another_functions_invocation_from_its_runtime_api() -> None:
    spec = FunctionSpec(handler="probe_handler.handle", env={"PYTHONPATH": FIXTURES}, timeout_s=10)
    with LocalLambda({"consumer": spec}) as lam:
        client = local_client(
            "lambda", lam.endpoint, config=Config(read_timeout=30, retries={"total_max_attempts": 1})
        )

        def invoke(payload: dict[str, str]) -> dict[str, object]:
            out = client.invoke(FunctionName="consumer", Payload=json.dumps(payload).encode())
            return dict(json.loads(out["Payload"].read()))

        invoke({"warm": "up"})  # a warm worker, waiting for its next invocation
        ports = sorted(listening_ports({os.getpid()}))  # the Invoke API and the Runtime API
        thief = subprocess.Popen(
            ["/usr/bin/python3", "-c", THIEF, *map(str, ports)],
            user=AGENT_USER,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert thief.stdout is not None and thief.stdout.readline().strip() == "READY"
        answers = [invoke({"message": f"another chat's message {n}"}) for n in range(3)]
        out, _ = thief.communicate(timeout=30)

    taken = json.loads(out.split("TAKEN ", 1)[1])
    assert taken == [], taken
    assert [answer.get("echo") for answer in answers] == [
        {"message": f"another chat's message {n}"} for n in range(3)
    ], answers
