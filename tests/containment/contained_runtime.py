"""The agent runtime as Lambda runs it, for the containment tests: the real awslambdaric behind
the local Lambda service, as an unprivileged user, with the role's credentials in its
environment, the model key in SSM and an AWS that demands a signature made with them."""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_runtime import bundled_cli_path
from botocore.config import Config
from local_stack import (
    FunctionSpec,
    LocalCredentials,
    LocalLambda,
    ModelServer,
    ResourceNames,
    local_client,
    moto_endpoint,
    prepare_for_agent_user,
    provision,
)
from session_core import TURN_VERSION, TurnRequest, TurnResult, decode_turn_result, encode

MODEL_KEY_PARAMETER = "/contain/model-key"


@dataclass
class ContainedRuntime:
    """One warm runtime: ``turn(session_key, turn_id, prompt)`` invokes it."""

    turn: Callable[[str, int, str], TurnResult]
    lam: LocalLambda
    model: ModelServer
    aws_url: str
    read_object: Callable[[str], bytes]  # an object of the runtime's bucket (a file it sent)


@contextlib.contextmanager
def contained_runtime(
    *,
    user: str,
    landlock: bool,
    sessions_root: Path,
    config: Path,
    credentials: LocalCredentials,
    model_key: str,
    responder: Callable[[dict[str, Any]], Any],
    sweep_scope: str = "uid",
    home: Path | None = None,
    settings: Mapping[str, str] | None = None,
) -> Iterator[ContainedRuntime]:
    """``sweep_scope``: "uid" as in Lambda, "descendants" as `agentbot dev` (whose agent user
    the machine shares). ``home``: the runtime's HOME (the image sets ``/tmp``); else the
    caller's. ``settings``: more of the runtime's environment (a small SESSION_DISK_LIMIT_MB)."""
    with _the_only_runtime_of(user), moto_endpoint(require=credentials) as aws_url:
        prepare_for_agent_user(user, writable=sessions_root, run_only=[bundled_cli_path()])

        def client(service: str, endpoint: str = aws_url, **config: Any) -> Any:
            return local_client(
                service,
                endpoint,
                aws_access_key_id=credentials.access_key_id,
                aws_secret_access_key=credentials.secret_access_key,
                **config,
            )

        resources = provision(
            dynamodb=client("dynamodb"),
            s3=client("s3"),
            sqs=client("sqs"),
            names=ResourceNames(prefix=f"contain{uuid.uuid4().hex[:8]}"),
        )
        client("ssm").put_parameter(
            Name=MODEL_KEY_PARAMETER, Value=model_key, Type="SecureString", Overwrite=True
        )
        with ModelServer(responder) as model:
            env = {
                **resources.environment(),
                **credentials.environment(),  # as Lambda sets the role's credentials
                "AWS_SESSION_TOKEN": "role-session-token-" + credentials.secret_access_key[::-1],
                "AWS_ENDPOINT_URL": aws_url,
                "AWS_DEFAULT_REGION": "us-east-1",
                "ANTHROPIC_API_KEY_PARAMETER": MODEL_KEY_PARAMETER,
                "ANTHROPIC_BASE_URL": model.base_url,
                "SESSIONS_ROOT": str(sessions_root),
                "CLAUDE_CONFIG_PATH": str(config),
                "DEEPWIKI_MCP_URL": "http://127.0.0.1:9/mcp",
                "MODEL_MAX_RETRIES": "0",
                "PROCESS_SWEEP_SCOPE": sweep_scope,
                "LANDLOCK": "on" if landlock else "off",
                **({"HOME": str(home)} if home is not None else {}),
                **(settings or {}),
            }
            spec = FunctionSpec(handler="agent_runtime.handler.handle", env=env, timeout_s=180, user=user)
            with LocalLambda({"agent-runtime": spec}, require=credentials) as lam:
                invoker = client(
                    "lambda", lam.endpoint, config=Config(read_timeout=300, retries={"total_max_attempts": 1})
                )

                def turn(key: str, turn_id: int, prompt: str) -> TurnResult:
                    payload = encode(
                        TurnRequest(version=TURN_VERSION, session_key=key, turn_id=turn_id, prompt=prompt)
                    )
                    out = invoker.invoke(FunctionName="agent-runtime", Payload=payload)
                    return decode_turn_result(out["Payload"].read())

                def read_object(key: str) -> bytes:
                    body = client("s3").get_object(Bucket=resources.bucket, Key=key)["Body"]
                    return bytes(body.read())

                yield ContainedRuntime(
                    turn=turn, lam=lam, model=model, aws_url=aws_url, read_object=read_object
                )


@contextlib.contextmanager
def _the_only_runtime_of(user: str) -> Iterator[None]:
    """The runtime sweeps every process of its uid after each turn, as in Lambda. Two of one
    user at once (tests on two xdist workers) would kill each other's turns ("Runtime exited
    with status -9"), so a lock shared by every process of the test run keeps them one at a time."""
    with (Path(tempfile.gettempdir()) / f"agentbot-tests-runtime-as-{user}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
