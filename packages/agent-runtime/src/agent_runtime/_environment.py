"""What the Claude Code CLI (and so every tool the agent runs) may see: an environment built
explicitly, and model credentials that only reach the model.

- The SDK starts the CLI with ``os.environ`` merged in, and in Lambda that holds the runtime
  role's AWS credentials. So the CLI is started through a tiny ``env -i`` wrapper
  (``cli_path``) that keeps only the variables named here.
- Anthropic backend: the API key (read from SSM) never enters the CLI. The CLI talks to a
  key-injecting proxy on 127.0.0.1 (see ``_model_proxy``) with a placeholder key, so a
  tool can at most call the model, never read the key.
- Bedrock backend: the CLI gets short-lived credentials of ``MODEL_INVOKE_ROLE_ARN`` (a role
  that may only invoke models), further narrowed by a session policy; the runtime role's
  own credentials never reach it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import claude_agent_sdk
from session_core import read_secret

from ._errors import ModelBackendError
from ._model_proxy import ModelProxy
from ._settings import RuntimeSettings

# Variables the SDK itself sets for the CLI (protocol, not secrets).
_SDK_VARIABLES = (
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_AGENT_SDK_VERSION",
    "CLAUDE_CODE_SDK_READS_SESSION_STATE",
    "CLAUDE_AGENT_SDK_CLIENT_APP",
    "CLAUDE_CODE_ENABLE_SDK_FILE_CHECKPOINTING",
    "PWD",
)
PROXY_PLACEHOLDER_KEY = "sk-ant-agentbot-proxy-placeholder"
# Only model invocation, whatever MODEL_INVOKE_ROLE_ARN itself allows.
_BEDROCK_SESSION_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                "Resource": "*",
            }
        ],
    }
)

_WRAPPER = """#!/bin/sh
# agentbot: start the Claude Code CLI with only the variables the runtime named.
set -f
# The runtime kills this pid (the CLI after exec) and its descendants when a turn is cancelled.
[ -n "${AGENTBOT_CLI_PID_FILE-}" ] && echo $$ > "$AGENTBOT_CLI_PID_FILE"
set -- "$AGENTBOT_CLI_PATH" "$@"
for name in $AGENTBOT_CLI_ENV_NAMES; do
  eval "isset=\\${$name+x} value=\\${$name-}"
  [ -n "$isset" ] && set -- "$name=$value" "$@"
done
exec /usr/bin/env -i "$@"
"""


def bundled_cli_path() -> str:
    """The Claude Code CLI shipped inside the claude-agent-sdk wheel (else ``claude`` on PATH)."""
    bundled = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    if bundled.is_file():
        return str(bundled)
    found = shutil.which("claude")
    if found is None:
        raise ModelBackendError("claude-agent-sdk", "no bundled Claude Code CLI and no `claude` on PATH")
    return found


def install_cli_wrapper(directory: str | os.PathLike[str]) -> str:
    """Write the env-clearing wrapper into ``directory`` (once) and return its path."""
    path = Path(directory) / "claude-clean-env"
    if not path.exists() or path.read_text() != _WRAPPER:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(_WRAPPER)
        tmp.chmod(0o755)
        tmp.replace(path)
    return str(path)


class ModelAccess(Protocol):
    """Gives the CLI what it needs to reach the model, and nothing more."""

    def cli_environment(self) -> dict[str, str]:
        """Variables for the CLI (base URL, placeholder key or scoped credentials, model)."""
        ...

    def close(self) -> None:
        """Stop anything started (the proxy)."""
        ...


class AnthropicAccess:
    """Anthropic API through a key-injecting proxy on 127.0.0.1; the key is read from SSM
    (``ANTHROPIC_API_KEY_PARAMETER``) on first use and cached for the container."""

    def __init__(self, settings: RuntimeSettings, *, ssm: Any) -> None:
        if not settings.anthropic_api_key_parameter:
            raise ModelBackendError("ANTHROPIC_API_KEY_PARAMETER", "is not set")
        self._settings = settings
        self._ssm = ssm
        self._proxy: ModelProxy | None = None
        self._lock = threading.Lock()

    def _api_key(self) -> str:
        assert self._settings.anthropic_api_key_parameter is not None
        return read_secret(self._ssm, self._settings.anthropic_api_key_parameter)

    def cli_environment(self) -> dict[str, str]:
        with self._lock:
            if self._proxy is None:
                upstream = self._settings.anthropic_base_url or "https://api.anthropic.com"
                self._proxy = ModelProxy(upstream=upstream, api_key=self._api_key()).start()
        env = {"ANTHROPIC_BASE_URL": self._proxy.base_url, "ANTHROPIC_API_KEY": PROXY_PLACEHOLDER_KEY}
        if self._settings.model:
            env["ANTHROPIC_MODEL"] = self._settings.model
        if self._settings.small_model:
            env["ANTHROPIC_SMALL_FAST_MODEL"] = self._settings.small_model
        return env

    def close(self) -> None:
        with self._lock:
            if self._proxy is not None:
                self._proxy.stop()
                self._proxy = None


class BedrockAccess:
    """Bedrock with credentials of ``MODEL_INVOKE_ROLE_ARN`` (assumed with ``sts``, narrowed to
    model invocation, refreshed 5 minutes before they expire).

    Without a role ARN: with ``ANTHROPIC_BEDROCK_BASE_URL`` the CLI is told to skip AWS auth
    (``CLAUDE_CODE_SKIP_BEDROCK_AUTH``, for a gateway that authenticates by itself, such as the
    local model server); otherwise (``agentbot dev`` against real Bedrock) it gets the
    runtime's own credentials from ``session`` (a boto3 Session) - never in Lambda, where the
    template always sets the role.
    """

    def __init__(
        self, settings: RuntimeSettings, *, sts: Any = None, session: Any = None, clock: Any = time.time
    ) -> None:
        self._settings = settings
        self._sts = sts
        self._session = session
        self._clock = clock
        self._cached: tuple[dict[str, str], float] | None = None
        if settings.model_invoke_role_arn and sts is None:
            raise ModelBackendError("MODEL_INVOKE_ROLE_ARN", "needs an sts client")

    def _credentials(self) -> dict[str, str]:
        if self._cached is not None and self._cached[1] - 300 > self._clock():
            return self._cached[0]
        try:
            out = self._sts.assume_role(
                RoleArn=self._settings.model_invoke_role_arn,
                RoleSessionName="agentbot-model-invoke",
                DurationSeconds=3600,
                Policy=_BEDROCK_SESSION_POLICY,
            )
        except Exception as exc:  # botocore ClientError / BotoCoreError
            raise ModelBackendError("MODEL_INVOKE_ROLE_ARN", f"cannot assume role: {exc}") from exc
        creds = out["Credentials"]
        env = {
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
        }
        expires = creds["Expiration"]
        expires_at = expires.timestamp() if hasattr(expires, "timestamp") else self._clock() + 3600
        self._cached = (env, expires_at)
        return env

    def cli_environment(self) -> dict[str, str]:
        env = {"CLAUDE_CODE_USE_BEDROCK": "1", "AWS_REGION": self._settings.aws_region}
        if self._settings.bedrock_base_url:
            env["ANTHROPIC_BEDROCK_BASE_URL"] = self._settings.bedrock_base_url
        if self._settings.model:
            env["ANTHROPIC_MODEL"] = self._settings.model
        if self._settings.small_model:
            env["ANTHROPIC_SMALL_FAST_MODEL"] = self._settings.small_model
        if self._settings.model_invoke_role_arn:
            env.update(self._credentials())
        elif self._settings.bedrock_base_url or self._session is None:
            env["CLAUDE_CODE_SKIP_BEDROCK_AUTH"] = "1"
        else:
            env.update(self._own_credentials())
        return env

    def _own_credentials(self) -> dict[str, str]:
        credentials = self._session.get_credentials()
        if credentials is None:
            raise ModelBackendError("MODEL_INVOKE_ROLE_ARN", "is not set and no AWS credentials were found")
        frozen = credentials.get_frozen_credentials()
        env = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
        if frozen.token:
            env["AWS_SESSION_TOKEN"] = frozen.token
        return env

    def close(self) -> None:
        pass


def build_cli_environment(
    *,
    home: str,
    tmp: str,
    config_dir: str,
    model_env: dict[str, str],
    settings: RuntimeSettings,
    cli_path: str,
    pid_file: str | None = None,
) -> dict[str, str]:
    """The complete environment of the CLI and its tools, plus the wrapper's own variables
    (``pid_file``: where the wrapper writes the CLI's pid, see ``kill_process_tree``).

    Nothing is inherited from the runtime process except ``PATH``.
    """
    env = {
        "PATH": os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "CLAUDE_CONFIG_DIR": config_dir,
        # Lambda may run us as root locally; the CLI refuses bypassPermissions as root otherwise.
        "IS_SANDBOX": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_MAX_RETRIES": str(settings.model_max_retries),
        "API_TIMEOUT_MS": str(settings.model_timeout_ms),
        **model_env,
    }
    names = sorted({*env, *_SDK_VARIABLES})
    env["AGENTBOT_CLI_PATH"] = cli_path
    env["AGENTBOT_CLI_ENV_NAMES"] = " ".join(names)
    if pid_file is not None:
        env["AGENTBOT_CLI_PID_FILE"] = pid_file
    return env


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in (...) may hold spaces
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def kill_process_tree(pid_file: str) -> int:
    """SIGKILL the CLI named in ``pid_file`` and everything it started; returns how many.

    Only a direct child of this process is accepted (a tool may rewrite the file, but cannot
    make another process our child). Used when a turn is cancelled: the SDK's own close()
    skips its terminate/kill escalation on a plain asyncio cancellation.
    """
    try:
        pid = int(Path(pid_file).read_text().strip())
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        return 0
    if ppid != os.getpid() or pid == os.getpid():
        return 0
    tree, victims, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        victims.append(current)
        todo.extend(tree.get(current, []))
    for victim in victims:  # the CLI first, so it starts nothing new
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(victim, signal.SIGKILL)
    return len(victims)
