"""A local Lambda service: Lambda's Invoke API on one side, the Runtime API on the other.

Each function runs as real `python -m awslambdaric <handler>` processes that long-poll
this server for work, exactly as they do inside Lambda. Pointing `AWS_ENDPOINT_URL_LAMBDA`
at `LocalLambda.endpoint` makes `boto3.client("lambda").invoke(...)` reach them, so the
caller's code is the production code in tests and in `agentbot dev`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import pwd
import queue
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import IO, Any

from session_core import AWS_CREDENTIAL_VARIABLES, DEFAULT_RUNTIME_MEMORY_MB, is_secret_variable, runs

from ._loopback import LoopbackServer, QuietHTTPServer
from ._process_tree import dying, kill_descendants
from ._sigv4 import LocalCredentials, signed_by

_INVOKE_PREFIX = "/2015-03-31/functions/"
_RUNTIME_PREFIX = "/2018-06-01/runtime/"
# How often a server checks whether it is asked to stop (socketserver's default is 0.5 s, and
# stopping `agentbot dev` stops one server per worker).
_STOP_POLL_S = 0.1
# Workers an invocation is offered to when each dies before taking it (then it fails).
_HAND_OVERS = 3


@dataclass(frozen=True)
class FunctionSpec:
    """How to run one function: its handler path, extra environment and limits.

    With ``image`` the function runs from that container image (its entrypoint is
    awslambdaric, as in Lambda) through ``docker run`` on the host network, on
    ``image_platform`` (e.g. ``linux/arm64``, emulated on another machine), instead of as a
    local process. The container gets ``env``, the Lambda variables and the caller's
    ``AWS_*`` settings (local credentials and endpoints), nothing else of this process.
    """

    handler: str
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 900.0
    max_concurrency: int = 2
    # The deployed runtime's (the one function that reads it: it sizes the history it loads)
    memory_mb: int = DEFAULT_RUNTIME_MEMORY_MB
    image: str | None = None
    image_platform: str | None = None
    # Run the function's processes as this user (the local stack started as root runs the
    # agent runtime as an unprivileged user, as Lambda does). Not with ``image``: the docker
    # client needs the engine's socket, and the image names its own user.
    user: str | None = None


@dataclass
class _Outcome:
    payload: bytes
    function_error: str | None = None  # "Unhandled" when the handler raised or the runtime died


@dataclass
class _Invocation:
    request_id: str
    payload: bytes
    deadline: float
    done: threading.Event = field(default_factory=threading.Event)
    outcome: _Outcome | None = None
    delivered: bool = False  # a worker's process asked for it and was sent it

    def finish(self, outcome: _Outcome) -> None:
        if not self.done.is_set():
            self.outcome = outcome
            self.done.set()


def _error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class _Worker:
    """One warm execution environment: a Runtime API port and one awslambdaric process."""

    def __init__(
        self, name: str, spec: FunctionSpec, python: str, log: IO[str] | None, endpoint: str
    ) -> None:
        self.name = name
        self.spec = spec
        self.inbox: queue.Queue[_Invocation | None] = queue.Queue()
        self.current: _Invocation | None = None
        self.init_error: bytes | None = None
        self._server = QuietHTTPServer(("127.0.0.1", 0), _runtime_handler_for(self))
        threading.Thread(target=self._server.serve_forever, args=(_STOP_POLL_S,), daemon=True).start()
        port = self._server.server_address[1]
        env = {
            # No secret of the caller's environment (a bot token, a model key) is passed on, only
            # AWS credentials (as Lambda gives every function its role's); the spec adds the rest.
            **_inherited(os.environ, spec.env),
            # functions of this service reach each other through it, as within one account
            "AWS_ENDPOINT_URL_LAMBDA": endpoint,
            **spec.env,
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "_HANDLER": spec.handler,
        }
        env.setdefault("AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1"))
        self.container: str | None = None
        command = [python, "-m", "awslambdaric", spec.handler]
        user = spec.user
        if spec.image:
            self.container = f"agentbot-fn-{name}-{uuid.uuid4().hex[:8]}"
            command = _container_command(self.container, spec, env)
            user = None
        # Under a subreaper (local_stack._process_tree): whatever the handler spawns, daemonized
        # or in its own session, stays in the worker's tree and ends with it.
        # The function's environment (its credentials) goes through a pipe, so the reaper's own
        # environment block, readable by any process of its user, holds no secret.
        pid_read, pid_write = os.pipe()
        env_read, env_write = os.pipe()
        # Each end is closed exactly once: a second close could hit a descriptor another
        # thread has been given meanwhile (a socket of one of our servers).
        theirs = [pid_write, env_read]
        try:
            self.process = subprocess.Popen(
                [
                    python,
                    "-m",
                    "local_stack._reaper",
                    "--pid-fd",
                    str(pid_write),
                    "--env-fd",
                    str(env_read),
                    "--",
                    *command,
                ],
                env={"PATH": env.get("PATH", os.defpath)},
                stdin=subprocess.DEVNULL,
                stdout=log if log is not None else None,
                stderr=subprocess.STDOUT if log is not None else None,
                start_new_session=True,
                pass_fds=tuple(theirs),
                **_as_user(user),
            )
        except BaseException:
            os.close(env_write)
            os.close(pid_read)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        with os.fdopen(env_write, "wb") as pipe, os.fdopen(pid_read, "rb") as pid_pipe:
            pipe.write(json.dumps(env).encode())
            pipe.close()
            # The function's own process (what a caller would kill); 0 if it never started.
            self.pid = int(pid_pipe.read(32) or b"0")

    @property
    def alive(self) -> bool:
        # The function's own process, not only its reaper: a crashed function's reaper needs a
        # moment to end the tree and exit, and must not be handed the next invocation meanwhile.
        return (
            self.process.poll() is None and self.init_error is None and runs(self.pid) and not dying(self.pid)
        )

    def run(self, invocation: _Invocation, *, may_hand_back: bool = True) -> _Outcome | None:
        """Hand one invocation to the process and wait for its result, a crash or the timeout.
        None: the process died before it took the invocation (killed while idle), which
        Lambda would have given to a new environment; with ``may_hand_back`` False that is a
        crash as well."""
        self.current = invocation
        self.inbox.put(invocation)
        try:
            while not invocation.done.wait(0.05):
                if self.init_error is not None:
                    invocation.finish(_Outcome(self.init_error, "Unhandled"))
                elif self.process.poll() is not None:
                    if may_hand_back and not invocation.delivered:
                        return None
                    invocation.finish(
                        _Outcome(
                            _error_payload(
                                "Runtime.ExitError",
                                f"RequestId: {invocation.request_id} Error: Runtime exited with "
                                f"status {self.process.returncode}",
                            ),
                            "Unhandled",
                        )
                    )
                elif time.monotonic() > invocation.deadline:
                    self.stop()  # Lambda discards the sandbox of a timed-out invocation
                    invocation.finish(
                        _Outcome(
                            _error_payload(
                                "Sandbox.Timedout",
                                f"Task timed out after {self.spec.timeout_s:.2f} seconds",
                            ),
                            "Unhandled",
                        )
                    )
        finally:
            self.current = None
        assert invocation.outcome is not None
        return invocation.outcome

    def stop(self) -> None:
        """End the worker and every process in its tree (the reaper kills the tree; if the
        reaper does not answer, this process finds what is left through /proc)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                kill_descendants(self.process.pid)
                self.process.kill()
                self.process.wait()
        if self.container:  # the container outlives a killed `docker run`
            subprocess.run(["docker", "rm", "-f", self.container], capture_output=True, check=False)
        self.inbox.put(None)  # releases a long-poll still waiting
        self._server.shutdown()
        self._server.server_close()


def _container_command(container: str, spec: FunctionSpec, env: Mapping[str, str]) -> list[str]:
    """`docker run` of the function's image; values travel in the environment, not argv."""
    names = [n for n in env if n in spec.env or n.startswith(("AWS_", "_HANDLER"))]
    command = ["docker", "run", "--rm", "--name", container, "--network", "host"]
    if spec.image_platform:
        command += ["--platform", spec.image_platform]
    for name in sorted(names):
        command += ["-e", name]
    assert spec.image is not None
    return [*command, spec.image, spec.handler]


def _caller_secret(name: str) -> bool:
    return is_secret_variable(name) and name not in AWS_CREDENTIAL_VARIABLES


# The caller's own AWS identity. A function whose spec gives it credentials (as Lambda gives
# its role's) takes none of these: the shell's session token would be sent with another key,
# and a profile the function's user cannot read (root's ~/.aws, for the agent's user) stops
# every boto3 client it makes with ProfileNotFound.
_CALLER_IDENTITY = frozenset({*AWS_CREDENTIAL_VARIABLES, "AWS_PROFILE", "AWS_DEFAULT_PROFILE"})


# Where the caller's boto3 sends requests (its endpoint variables and the switch that skips them).
_CALLER_ENDPOINTS = ("AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")


def _inherited(caller: Mapping[str, str], spec_env: Mapping[str, str]) -> dict[str, str]:
    """What a function takes from the caller's environment ``caller``, under its spec's."""
    own_credentials = "AWS_ACCESS_KEY_ID" in spec_env
    # A spec naming the endpoint of every service (AWS_ENDPOINT_URL) takes none of the caller's:
    # a caller's AWS_ENDPOINT_URL_S3 (another stack's) would send the function's S3 there, and
    # its AWS_IGNORE_CONFIGURED_ENDPOINT_URLS every service to AWS itself.
    own_endpoints = "AWS_ENDPOINT_URL" in spec_env
    return {
        name: value
        for name, value in caller.items()
        if not _caller_secret(name)
        and not (own_credentials and name in _CALLER_IDENTITY)
        and not (own_endpoints and name.startswith(_CALLER_ENDPOINTS))
    }


def _peer_gone(connection: socket.socket) -> bool:
    """True when the other end closed the connection (readable with nothing to read)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _peer_is_worker(connection: socket.socket, worker: _Worker) -> bool:
    """Whether the other end of ``connection`` (on 127.0.0.1) is a socket of the worker's own
    process. In Lambda only the function's execution environment reaches its Runtime API;
    here every worker's port is on one machine, where an agent's tool (another user, but
    one TCP lets in) could ask for another function's invocations. Found as root (`agentbot
    dev`, the tests): the socket's inode among the worker's descriptors. Without root all
    processes are one user, with no containment to keep, and a worker in a container is
    reached through Docker's proxy: then any peer is taken."""
    if os.geteuid() != 0 or worker.container is not None:
        return True
    waited_until = time.monotonic() + 5
    while getattr(worker, "pid", None) is None and time.monotonic() < waited_until:
        time.sleep(0.01)  # a process asking this soon is its own: its pid is being read
    try:
        inode = _tcp_socket_inode(local=connection.getpeername(), remote=connection.getsockname())
        if inode is None:
            return False
        target = f"socket:[{inode}]"
        for fd in os.listdir(f"/proc/{worker.pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{worker.pid}/fd/{fd}") == target:
                    return True
    except OSError:
        return False
    return False


def _tcp_socket_inode(*, local: tuple[str, int], remote: tuple[str, int]) -> str | None:
    """The inode of the IPv4 TCP socket from ``local`` to ``remote`` (address, port): both
    addresses too, so a connection of the same ports to another host is not taken for it."""
    wanted = (_proc_net_address(*local), _proc_net_address(*remote))
    with open("/proc/net/tcp") as table:
        for line in itertools.islice(table, 1, None):
            fields = line.split()
            if (fields[1].upper(), fields[2].upper()) == wanted:
                return fields[9]
    return None


def _proc_net_address(address: str, port: int) -> str:
    # /proc/net/tcp writes the address as the kernel holds it (a host-order integer) in hex.
    (number,) = struct.unpack("=I", socket.inet_aton(address))
    return f"{number:08X}:{port:04X}"


def _as_user(user: str | None) -> dict[str, Any]:
    if user is None:
        return {}
    record = pwd.getpwnam(user)
    return {"user": record.pw_uid, "group": record.pw_gid, "extra_groups": []}


def _runtime_handler_for(worker: _Worker) -> type[BaseHTTPRequestHandler]:
    class RuntimeApi(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: bytes = b"", headers: Mapping[str, str] = {}) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _from_the_worker(self) -> bool:
            if _peer_is_worker(self.connection, worker):
                return True
            self._reply(403, b'{"errorMessage": "not this function\'s runtime"}')
            self.close_connection = True
            return False

        def do_GET(self) -> None:
            if self.path != _RUNTIME_PREFIX + "invocation/next":
                self._reply(404)
                return
            if not self._from_the_worker():
                return
            invocation = worker.inbox.get()
            if invocation is None:  # shutting down: the process is gone already
                self.close_connection = True
                return
            if _peer_gone(self.connection) or (worker.container is None and dying(worker.pid)):
                # A poller that gave up (a killed tool that asked for work, or the runtime
                # killed while it waited) must not swallow the invocation: it goes back to
                # whoever asks next, the runtime itself or the environment that replaces it.
                worker.inbox.put(invocation)
                self.close_connection = True
                return
            deadline_ms = int((time.time() + invocation.deadline - time.monotonic()) * 1000)
            invocation.delivered = True
            self._reply(
                200,
                invocation.payload,
                {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": (
                        f"arn:aws:lambda:us-east-1:000000000000:function:{worker.name}"
                    ),
                    "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
                },
            )

        def do_POST(self) -> None:
            body = self._body()
            if not self._from_the_worker():
                return
            if self.path == _RUNTIME_PREFIX + "init/error":
                worker.init_error = body or _error_payload("Runtime.InitError", "init failed")
                self._reply(202)
                return
            parts = self.path[len(_RUNTIME_PREFIX) :].split("/")
            invocation = worker.current
            if (
                len(parts) != 3
                or parts[0] != "invocation"
                or invocation is None
                or parts[1] != invocation.request_id
            ):
                self._reply(400, b'{"errorMessage": "unknown invocation"}')
                return
            if parts[2] == "response":
                invocation.finish(_Outcome(body))
            elif parts[2] == "error":
                invocation.finish(_Outcome(body, "Unhandled"))
            else:
                self._reply(404)
                return
            self._reply(202)

    return RuntimeApi


class _Function:
    """The warm workers of one function, up to `max_concurrency` at a time."""

    def __init__(self, name: str, spec: FunctionSpec, spawn: Callable[[], _Worker]) -> None:
        self.name = name
        self.spec = spec
        self._spawn = spawn
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._slots = threading.BoundedSemaphore(spec.max_concurrency)
        self._lock = threading.Lock()

    def invoke(self, payload: bytes) -> _Outcome:
        with self._slots:
            invocation = _Invocation(
                request_id=str(uuid.uuid4()),
                payload=payload,
                deadline=time.monotonic() + self.spec.timeout_s,
            )
            for attempt in range(_HAND_OVERS):
                worker = self._take_worker()
                try:
                    outcome = worker.run(invocation, may_hand_back=attempt < _HAND_OVERS - 1)
                finally:
                    self._put_back(worker)
                if outcome is not None:
                    return outcome
            raise AssertionError("the last worker's run always has an outcome")

    def _put_back(self, worker: _Worker) -> None:
        with self._lock:
            if worker.alive:
                self._idle.append(worker)
            else:
                worker.stop()
                if worker in self._all:  # stop() of the whole function may have run
                    self._all.remove(worker)

    def _take_worker(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker
                worker.stop()
                self._all.remove(worker)
            worker = self._spawn()
            self._all.append(worker)
            return worker

    def stop(self) -> None:
        with self._lock:
            for worker in self._all:
                worker.stop()
            self._all.clear()
            self._idle.clear()

    @property
    def process_ids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in self._all]


class LocalLambda(LoopbackServer):
    """Serve Lambda's Invoke API on 127.0.0.1 for the given functions (a context manager)."""

    def __init__(
        self,
        functions: Mapping[str, FunctionSpec],
        *,
        python: str = sys.executable,
        log: IO[str] | None = None,
        require: LocalCredentials | None = None,
    ) -> None:
        """``require``: callers of the Invoke API must sign with these credentials (SigV4), so
        nobody without the functions' secret key (an agent's tool) can invoke a function."""
        self._functions = {
            name: _Function(name, spec, self._spawner(name, spec, python, log))
            for name, spec in functions.items()
        }
        self._require = require
        super().__init__()

    def _spawner(
        self, name: str, spec: FunctionSpec, python: str, log: IO[str] | None
    ) -> Callable[[], _Worker]:
        return lambda: _Worker(name, spec, python, log, self.endpoint)

    @property
    def endpoint(self) -> str:
        """Base URL to use as `AWS_ENDPOINT_URL_LAMBDA`."""
        if self._server is None:
            raise RuntimeError("LocalLambda is not started")
        return self.base_url

    @property
    def process_ids(self) -> list[int]:
        """Process ids of the running awslambdaric workers (for leak checks)."""
        return [pid for fn in self._functions.values() for pid in fn.process_ids]

    poll_interval_s = _STOP_POLL_S
    server_class = QuietHTTPServer

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _invoke_handler_for(self._functions, self._require)

    def stop(self) -> None:
        super().stop()
        # Each function's workers are stopped side by side: a stop waits for its process to
        # exit and for its Runtime API server to notice, which adds up one after another.
        stoppers = [threading.Thread(target=function.stop) for function in self._functions.values()]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()


def _invoke_handler_for(
    functions: Mapping[str, _Function], require: LocalCredentials | None
) -> type[BaseHTTPRequestHandler]:
    class InvokeApi(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: bytes, headers: Mapping[str, str] = {}) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            payload = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if require is not None and not signed_by(
                require,
                method="POST",
                url=f"http://{self.headers.get('Host', '')}{self.path}",
                headers=dict(self.headers.items()),
                body=payload,
            ):
                self._reply(
                    403,
                    b'{"message": "The security token included in the request is invalid."}',
                    {"x-amzn-ErrorType": "UnrecognizedClientException"},
                )
                return
            path = self.path.split("?", 1)[0]
            if not (path.startswith(_INVOKE_PREFIX) and path.endswith("/invocations")):
                self._reply(404, b'{"message": "unknown path"}')
                return
            name = path[len(_INVOKE_PREFIX) : -len("/invocations")]
            name = name.rsplit(":function:", 1)[-1]  # accept ARNs as well as names
            function = functions.get(name)
            if function is None:
                self._reply(
                    404,
                    json.dumps({"Type": "User", "message": f"Function not found: {name}"}).encode(),
                    {"x-amzn-ErrorType": "ResourceNotFoundException"},
                )
                return
            invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
            if invocation_type == "DryRun":
                self._reply(204, b"")
                return
            if invocation_type == "Event":
                threading.Thread(target=function.invoke, args=(payload or b"{}",), daemon=True).start()
                self._reply(202, b"")
                return
            outcome = function.invoke(payload or b"{}")
            headers = {"X-Amz-Executed-Version": "$LATEST"}
            if outcome.function_error:
                headers["X-Amz-Function-Error"] = outcome.function_error
            self._reply(200, outcome.payload, headers)

    return InvokeApi
