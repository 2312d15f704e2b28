"""Keep the runtime role's credentials out of every ``/proc/<pid>/environ`` a tool can read.

Lambda starts ``python -m awslambdaric agent_runtime.handler.handle`` with the role's
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` in its initial
environment block. ``unsetenv`` cannot erase that block, and any process of the same user
(the CLI and the agent's tools) can read it through ``/proc/<runtime pid>/environ``. Lambda
offers no setuid or user namespaces, so the block itself has to go:

1. On the first import of agent_runtime in the awslambdaric process (during init, before it
   asks the Runtime API for an invocation) the secret variables are written into a pipe and
   the same command line is ``execve``'d without them; only the pipe's fd number travels in
   ``AGENTBOT_MOVED_ENV_FD``. Same pid, so Lambda and the local Lambda (local_stack) see nothing.
2. The re-executed process reads the pipe, closes it (no child ever inherits it) and keeps
   the values in this module; boto3 gets them through an explicit Session (``aws_session``).
   Lambda's static credentials are valid for the execution environment's lifetime.

Residual risk: the values live in this process's heap; a same-uid process can read them via
``/proc/<pid>/mem`` only where the kernel's ptrace policy lets it attach to its ancestor.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

# Anything named like a secret is moved too; the runtime reads it from here, the CLI never sees it.
from session_core import AWS_CREDENTIAL_VARIABLES, is_secret_variable

SECRETS_FD_VARIABLE = "AGENTBOT_MOVED_ENV_FD"
# awslambdaric deletes it from os.environ before importing the handler; the fd stays open.
_TELEMETRY_FD = "_LAMBDA_TELEMETRY_LOG_FD"
_PIPE_LIMIT = 60_000  # below the 64 KiB pipe buffer: the write must not block before exec

_held: dict[str, str] = {}


def held_secrets() -> Mapping[str, str]:
    """The secret variables this process took out of its environment (empty if none)."""
    return dict(_held)


def config_environ() -> dict[str, str]:
    """The environment claude-config expands ``${NAME}`` from: the process environment plus
    moved secrets other than the runtime role's AWS credentials."""
    extra = {k: v for k, v in _held.items() if k not in AWS_CREDENTIAL_VARIABLES}
    return {**os.environ, **extra}


def aws_session() -> Any:
    """A boto3 Session with the runtime role's credentials taken out of the environment, or
    the default credential chain when none were moved (tests, local runs)."""
    import boto3

    if _held.get("AWS_ACCESS_KEY_ID") and _held.get("AWS_SECRET_ACCESS_KEY"):
        return boto3.Session(
            aws_access_key_id=_held["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=_held["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=_held.get("AWS_SESSION_TOKEN") or _held.get("AWS_SECURITY_TOKEN"),
        )
    if any(name.startswith("AWS_CONTAINER_") for name in _held):
        # Container credentials (SnapStart, ECS-style): the provider is given the moved
        # token/URI explicitly, as it would have read them from the environment.
        import botocore.session
        from botocore.credentials import ContainerProvider, CredentialResolver

        core = botocore.session.get_session()
        provider = ContainerProvider(environ={**os.environ, **_held})
        core.register_component("credential_provider", CredentialResolver([provider]))
        return boto3.Session(botocore_session=core)
    return boto3.Session()


def _initial_environ() -> dict[str, str]:
    # What /proc/<pid>/environ shows: the block execve gave us, whatever os.environ says now.
    try:
        with open("/proc/self/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return dict(os.environ)
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in pairs}


def _awslambdaric_argv() -> list[str] | None:
    argv = list(getattr(sys, "orig_argv", []))
    for i, arg in enumerate(argv[:-1]):
        if arg == "-m" and argv[i + 1] == "awslambdaric":
            return argv
    return None


def isolate_process_secrets() -> None:
    """Run at the first import of agent_runtime: receive secrets moved by a previous exec, or,
    in an awslambdaric process whose environment block holds secrets, move them into a pipe
    and re-exec the same command line without them. Elsewhere (tests, tools) it does nothing."""
    fd_text = os.environ.pop(SECRETS_FD_VARIABLE, None)
    if fd_text is not None:
        _receive(int(fd_text))
        return
    argv = _awslambdaric_argv()
    if (
        argv is None
        or "AWS_LAMBDA_RUNTIME_API" not in os.environ
        or os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY")
    ):
        return  # not the Lambda runtime process (or multi-concurrent mode, which forks workers)
    initial = _initial_environ()
    names = {n for n in (*initial, *os.environ) if is_secret_variable(n)}
    if not names:
        return
    secrets = {n: os.environ.get(n, initial.get(n, "")) for n in names}
    payload = json.dumps(secrets).encode()
    if len(payload) > _PIPE_LIMIT:
        raise RuntimeError(f"secret environment variables exceed {_PIPE_LIMIT} bytes: {sorted(names)}")
    env = {k: v for k, v in os.environ.items() if k not in names}
    if _TELEMETRY_FD in initial and _TELEMETRY_FD not in env:
        env[_TELEMETRY_FD] = initial[_TELEMETRY_FD]
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as pipe:
        pipe.write(payload)
    os.set_inheritable(read_end, True)
    env[SECRETS_FD_VARIABLE] = str(read_end)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)


def _receive(fd: int) -> None:
    try:
        with os.fdopen(fd, "rb") as pipe:  # closes the fd: no child process inherits it
            data = pipe.read()
    except OSError as exc:
        raise RuntimeError(f"{SECRETS_FD_VARIABLE}={fd}: cannot read the moved secrets: {exc}") from exc
    _held.update(json.loads(data) if data else {})
