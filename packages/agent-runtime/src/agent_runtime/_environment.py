"""What the Claude Code CLI (and so every tool the agent runs) may see: an environment built
explicitly, and model credentials that only reach the model.

- The SDK starts the CLI with ``os.environ`` merged in, and in Lambda that holds the runtime
  role's AWS credentials. So the CLI is started through a launcher (``cli_path``, see
  ``_cli_launcher``) that keeps only the variables named here and confines the CLI and its
  tools with Landlock where the kernel offers it.
- Anthropic backend: the API key (read from SSM, again when the API refuses it: see
  ``session_core.RotatingSecret``) never enters the CLI. The CLI talks to a key-injecting proxy on
  127.0.0.1 (see ``_model_proxy``) with a placeholder key, so a tool can at most call the
  model, never read the key.
- Bedrock backend: the same proxy signs each model call with short-lived credentials of
  ``MODEL_INVOKE_ROLE_ARN`` (a role that may only invoke models, further narrowed by a session
  policy); the CLI holds no AWS credentials, only this turn's key.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from session_core import RotatingSecret, report_secret_access_denied

from . import _cli_launcher
from ._bedrock_route import bedrock_signing_credentials, bedrock_upstream
from ._errors import ModelBackendError
from ._model_proxy import AnthropicKey, BedrockSigner, ModelProxy
from ._owned_trees import reclaim_rights, remove_tree
from ._settings import RuntimeSettings
from ._usage_meter import MeteredSpend

# Variables the SDK itself sets for the CLI (protocol, not secrets).
_SDK_VARIABLES = (
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_AGENT_SDK_VERSION",
    "CLAUDE_CODE_SDK_READS_SESSION_STATE",
    "CLAUDE_AGENT_SDK_CLIENT_APP",
    "CLAUDE_CODE_ENABLE_SDK_FILE_CHECKPOINTING",
    "PWD",
)
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


def tool_search_path(environ: Mapping[str, str]) -> str:
    """The PATH the CLI and its tools (MCP servers included) are started with."""
    return environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin"


def bundled_cli_path() -> str:
    """The Claude Code CLI shipped inside the claude-agent-sdk wheel (else ``claude`` on PATH)."""
    # Found, not imported: the SDK takes ~1 s to import, and `agentbot dev`/`doctor` check the
    # configuration without running a turn.
    sdk = importlib.util.find_spec("claude_agent_sdk")
    if sdk is not None and sdk.origin is not None:
        bundled = Path(sdk.origin).parent / "_bundled" / "claude"
        if bundled.is_file():
            return str(bundled)
    found = shutil.which("claude")
    if found is None:
        raise ModelBackendError("claude-agent-sdk", "no bundled Claude Code CLI and no `claude` on PATH")
    return found


def install_cli_launcher(directory: str | os.PathLike[str]) -> str:
    """Write the confining launcher (``_cli_launcher.py`` run by this interpreter in isolated
    mode, no site-packages) into ``directory`` once and return its path: the SDK's ``cli_path``.
    The same file goes to ``tool_shell_path`` of it: the tools' shell."""
    source = f"#!{sys.executable} -IS\n" + Path(_cli_launcher.__file__).read_text()
    path = Path(directory) / "claude-confined"
    for target in (path, Path(tool_shell_path(str(path)))):
        for parent in (target.parent.parent, target.parent):
            if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
                parent.unlink()  # a file or link where a directory of ours belongs
            parent.mkdir(parents=True, exist_ok=True)
            reclaim_rights(parent)  # a tool's chmod (Landlock does not cover it)
        if not _holds(target, source):
            if target.is_dir() and not target.is_symlink():  # not ours: replace() cannot
                remove_tree(target)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_text(source)
            tmp.chmod(0o755)
            tmp.replace(target)
    return str(path)


def _holds(path: Path, source: str) -> bool:
    """Whether ``path`` is a plain file of exactly ``source`` that we may run (anything
    unreadable is not)."""
    try:
        info = path.lstat()
        runnable = stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o755
        return runnable and path.read_bytes() == source.encode()
    except OSError:
        return False


def tool_shell_path(cli_path: str) -> str:
    """Where ``install_cli_launcher`` puts the tools' shell beside the launcher at ``cli_path``."""
    return str(Path(cli_path).parent / "tool-shell" / _cli_launcher.TOOL_SHELL_NAME)


def _port(url: str | None) -> int | None:
    if not url:
        return None
    parts = urlsplit(url)
    return parts.port or {"https": 443, "http": 80}.get(parts.scheme)


def sandbox_connect_ports(model_env: dict[str, str], mcp_servers: dict[str, Any]) -> list[int]:
    """TCP ports the CLI and its tools may connect to: the web (443, 80, DNS over TCP), the
    model endpoint it was given and the configured HTTP MCP servers. Nothing else on this host:
    not Lambda's Runtime API, not a local service."""
    urls = [
        model_env.get("ANTHROPIC_BASE_URL"),
        model_env.get("ANTHROPIC_BEDROCK_BASE_URL"),
        *(spec.get("url") for spec in mcp_servers.values() if isinstance(spec, dict)),
    ]
    return sorted({443, 80, 53, *(port for url in urls if (port := _port(url)) is not None)})


class ModelAccess(Protocol):
    """Gives the CLI what it needs to reach the model, and nothing more."""

    def cli_environment(self, *, max_cost_usd: float | None = None) -> dict[str, str]:
        """Variables for the CLI of the turn that starts now (base URL, this turn's proxy key
        or scoped credentials, model). Once the turn's metered calls cost ``max_cost_usd``,
        no further call of it reaches the model."""
        ...

    def end_turn(self) -> MeteredSpend:
        """The turn ended: whatever credential it was given stops working where we can.
        Returns what its model calls reported (their usage and its price)."""
        ...

    def key_unreadable(self) -> bool:
        """Whether the model's refusal of the key in use is told already: SSM refused the
        rotated key to the role when the proxy read it again (config.invalid names what to fix)."""
        ...

    def close(self) -> None:
        """Stop anything started (the proxy)."""
        ...


class _TurnProxy:
    """The container's model proxy, started on the first turn by ``start()``; hands out one
    key per turn and revokes it when the turn ends. Shared by both model backends."""

    def __init__(self, start: Callable[[], ModelProxy]) -> None:
        self._start = start
        self._proxy: ModelProxy | None = None
        self._lock = threading.Lock()

    def open_turn(self, max_cost_usd: float | None = None) -> tuple[str, str]:
        """(the proxy's base URL, a key valid for the turn that starts now)."""
        with self._lock:
            if self._proxy is None:
                self._proxy = self._start()
            return self._proxy.base_url, self._proxy.open_turn(max_cost_usd=max_cost_usd)

    def end_turn(self) -> MeteredSpend:
        with self._lock:
            return MeteredSpend() if self._proxy is None else self._proxy.close_turn()

    def close(self) -> None:
        with self._lock:
            if self._proxy is not None:
                self._proxy.stop()
                self._proxy = None


def _model_names(settings: RuntimeSettings) -> dict[str, str]:
    names = {"ANTHROPIC_MODEL": settings.model, "ANTHROPIC_SMALL_FAST_MODEL": settings.small_model}
    if settings.backend == "bedrock":
        # The aliases an agents.json model or the CLI itself may use ("opus", "sonnet",
        # "haiku") resolve to the chosen models too, never to the CLI's default ids.
        names |= {
            "ANTHROPIC_DEFAULT_OPUS_MODEL": settings.model,
            "ANTHROPIC_DEFAULT_SONNET_MODEL": settings.model,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": settings.small_model,
        }
    return {name: value for name, value in names.items() if value}


class AnthropicAccess:
    """Anthropic API through a key-injecting proxy on 127.0.0.1; the key is read from SSM
    (``ANTHROPIC_API_KEY_PARAMETER``) on first use, and again when the API refuses it."""

    def __init__(self, settings: RuntimeSettings, *, ssm: Any) -> None:
        if not settings.anthropic_api_key_parameter:
            raise ModelBackendError("ANTHROPIC_API_KEY_PARAMETER", "is not set")
        self._settings = settings
        # A rotated key SSM refuses to the role (its KMS key) is what the operator fixes, not
        # the key the model then refuses: they have just put a new one in the parameter.
        self._key = RotatingSecret(
            ssm,
            settings.anthropic_api_key_parameter,
            on_denied=lambda exc: report_secret_access_denied(
                exc, setting="ANTHROPIC_API_KEY_PARAMETER", tenant=settings.tenant
            ),
        )
        self._proxy = _TurnProxy(self._start_proxy)

    def _start_proxy(self) -> ModelProxy:
        self._key.current()  # a missing or empty parameter fails the turn here, clearly
        upstream = self._settings.anthropic_base_url or "https://api.anthropic.com"
        return ModelProxy(
            upstream=upstream,
            auth=AnthropicKey(self._key),
            silence_s=self._settings.model_silence_s,
            whole_answer_s=self._settings.model_timeout_ms / 1000,
        ).start()

    def cli_environment(self, *, max_cost_usd: float | None = None) -> dict[str, str]:
        base_url, turn_key = self._proxy.open_turn(max_cost_usd)
        return {"ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": turn_key, **_model_names(self._settings)}

    def end_turn(self) -> MeteredSpend:
        return self._proxy.end_turn()

    def key_unreadable(self) -> bool:
        return self._key.unreadable

    def close(self) -> None:
        self._proxy.close()


class BedrockAccess:
    """Bedrock through the same proxy: the CLI sends this turn's key as a Bedrock bearer token
    (``AWS_BEARER_TOKEN_BEDROCK``) and holds no AWS credentials; the proxy signs each model
    call with SigV4 using credentials of ``MODEL_INVOKE_ROLE_ARN`` (assumed with ``sts``,
    narrowed to model invocation, refreshed 5 minutes before they expire).

    ``models``: the only model ids a call may ask for (``chosen_model_ids``; None: any).

    Without a role ARN (never in Lambda, where the template always sets it) the proxy signs
    with the credentials of ``session`` (``bedrock_signing_session``: in ``agentbot dev`` against real
    Bedrock the developer's own, which dev hands over; or a local gateway that ignores
    signatures, such as the test model server).
    """

    def __init__(
        self,
        settings: RuntimeSettings,
        *,
        sts: Any = None,
        session: Any = None,
        clock: Any = time.time,
        models: frozenset[str] | None = None,
    ) -> None:
        self._settings = settings
        self._models = models
        self._sts = sts
        self._session = session
        self._clock = clock
        self._cached: tuple[Any, float] | None = None
        self._proxy = _TurnProxy(self._start_proxy)
        if settings.model_invoke_role_arn and sts is None:
            raise ModelBackendError("MODEL_INVOKE_ROLE_ARN", "needs an sts client")

    def _credentials(self) -> Any:
        """botocore Credentials the proxy signs with."""
        from botocore.credentials import Credentials

        if not self._settings.model_invoke_role_arn:
            return self._own_credentials()
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
        credentials = Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
        expires = creds["Expiration"]
        expires_at = expires.timestamp() if hasattr(expires, "timestamp") else self._clock() + 3600
        self._cached = (credentials, expires_at)
        return credentials

    def _own_credentials(self) -> Any:
        return bedrock_signing_credentials(self._session, gateway=self._settings.bedrock_base_url)

    def _start_proxy(self) -> ModelProxy:
        settings = self._settings
        region = settings.aws_region
        self._credentials()  # a role that cannot be assumed fails the turn here, clearly
        upstream = bedrock_upstream(
            gateway=settings.bedrock_base_url, endpoint=settings.bedrock_endpoint_url, region=region
        )
        return ModelProxy(
            upstream=upstream,
            auth=BedrockSigner(self._credentials, region),
            silence_s=self._settings.model_silence_s,
            whole_answer_s=self._settings.model_timeout_ms / 1000,
            only_models=self._models,
        ).start()

    def cli_environment(self, *, max_cost_usd: float | None = None) -> dict[str, str]:
        base_url, turn_key = self._proxy.open_turn(max_cost_usd)
        env = {
            "CLAUDE_CODE_USE_BEDROCK": "1",
            "AWS_REGION": self._settings.aws_region,
            "ANTHROPIC_BEDROCK_BASE_URL": base_url,
            "AWS_BEARER_TOKEN_BEDROCK": turn_key,
            **_model_names(self._settings),
        }
        if self._settings.bedrock_region_prefix:
            env["ANTHROPIC_BEDROCK_REGION_PREFIX"] = self._settings.bedrock_region_prefix
        return env

    def end_turn(self) -> MeteredSpend:
        return self._proxy.end_turn()

    def key_unreadable(self) -> bool:
        return False  # the role's credentials, never read from SSM

    def close(self) -> None:
        self._proxy.close()


def build_cli_environment(
    *,
    home: str,
    tmp: str,
    config_dir: str,
    model_env: dict[str, str],
    settings: RuntimeSettings,
    cli_path: str,
    writable: list[str],
    connect_ports: list[int],
    tool_shell: str | None = None,
) -> dict[str, str]:
    """The complete environment of the CLI and its tools, plus the launcher's own variables:
    the real CLI, the names it keeps, and its sandbox (``writable`` paths, ``connect_ports``;
    the launcher adds the ``CLAUDE_CONFIG_DIR`` the SDK chose, see ``_cli_launcher``).
    ``tool_shell``: the shell the CLI runs Bash tool calls with (``tool_shell_path``).

    Nothing is inherited from the runtime process except ``PATH``.
    """
    env = {
        "PATH": tool_search_path(os.environ),
        "HOME": home,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "CLAUDE_CONFIG_DIR": config_dir,
        # Lambda may run us as root locally; the CLI refuses bypassPermissions as root otherwise.
        "IS_SANDBOX": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        # Instructions come from claude-config only: not from CLAUDE.md / AGENTS.md in the cwd
        # or its parents, nor from the CLI's auto-memory, which a tool could write to steer
        # later turns (the system prompt is the operator's).
        "CLAUDE_CODE_DISABLE_CLAUDE_MDS": "1",
        "CLAUDE_CODE_DISABLE_AUTO_MEMORY": "1",
        # No cross-session messaging (the CLI's switch for it): otherwise the CLI listens on a
        # Unix socket in TMPDIR, and whatever a tool writes there, without even the token,
        # reaches the model as a message from "another Claude session". Nothing here uses it.
        "CLAUDE_CODE_HARBOR_KITE": "0",
        "CLAUDE_CODE_MAX_RETRIES": str(settings.model_max_retries),
        "API_TIMEOUT_MS": str(settings.model_timeout_ms),
        "MCP_TOOL_TIMEOUT": str(settings.mcp_tool_timeout_ms),
        "MCP_TIMEOUT": str(settings.mcp_startup_timeout_ms),  # the CLI's wait to connect a server
        **model_env,
    }
    if settings.landlock and tool_shell:
        # Each Bash tool call runs in a Landlock domain of its own, nested in the CLI's.
        env["CLAUDE_CODE_SHELL"] = tool_shell
    names = sorted({*env, *_SDK_VARIABLES})
    env["AGENTBOT_CLI_PATH"] = cli_path
    env["AGENTBOT_CLI_ENV_NAMES"] = " ".join(names)
    env["AGENTBOT_SANDBOX"] = json.dumps(
        {"landlock": settings.landlock, "write": writable, "connect": connect_ports}
    )
    return env
