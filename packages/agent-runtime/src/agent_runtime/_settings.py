"""The runtime's environment settings (set by infra/template.yaml), read once per container."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Literal

import msgspec
from session_core import (
    DEFAULT_RETENTION_DAYS,
    DEFAULT_TENANT,
    ConfigError,
    env_int,
    retention_days_from_env,
    tenant_from_env,
)

from ._bedrock_route import ENDPOINT_NOT_A_URL, ENDPOINT_VARIABLE, GATEWAY_VARIABLE, read_bedrock_endpoints

DEFAULT_SESSIONS_ROOT = "/tmp/agentbot-sessions"
# What infra/template.yaml's AnthropicBaseUrl lets through: a gateway's http(s) URL, no user:pass@;
# a host name with '_' (a Compose service) or an IPv6 address in brackets, as the CLI takes them.
_BASE_URL_SHAPE = re.compile(r"https?://([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/\S*)?")

# No turn runs longer than a Lambda may (15 minutes): a longer silence could never be waited
# out, and one past what a socket's timeout takes would fail every model call.
LONGEST_TURN_S = 900

Backend = Literal["anthropic", "bedrock"]
SweepScope = Literal["descendants", "uid"]


class RuntimeSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the runtime reads from its environment.

    ``sessions_root`` is part of every session's project key (the SDK derives it from the
    working directory), so it must be the same path in every container.
    """

    sessions_table: str
    sessions_bucket: str
    tenant: str = DEFAULT_TENANT
    retention_days: int = DEFAULT_RETENTION_DAYS
    backend: Backend = "anthropic"
    anthropic_api_key_parameter: str | None = None
    anthropic_base_url: str | None = None
    bedrock_base_url: str | None = None
    # AWS_ENDPOINT_URL_BEDROCK_RUNTIME: where Bedrock calls go without a gateway (_bedrock_route).
    bedrock_endpoint_url: str | None = None
    # The geography whose inference profiles the CLI calls for Anthropic API ids ("eu",
    # "global"...) instead of the region's: an operator who sets it means the turns to use it.
    bedrock_region_prefix: str | None = None
    model: str | None = None
    small_model: str | None = None
    aws_region: str = "us-east-1"
    model_invoke_role_arn: str | None = None
    sessions_root: str = DEFAULT_SESSIONS_ROOT
    session_disk_limit_mb: int = 512
    lease_duration_s: float = 120.0
    model_max_retries: int = 2
    model_timeout_ms: int = 120_000
    # A model call whose model sends nothing this long is given up, and a second one ends the
    # turn (see _model_proxy): a model that never answers costs a message about 2 x this
    # (MODEL_TIMEOUT_MS for each call not streamed).
    model_silence_s: int = 90
    # The longest the CLI waits for one MCP tool call. Its own limit is past any turn (30 min
    # for a command server), so a server that takes a call and never answers would hold the
    # turn to its time limit; at this one the model is told the call timed out and answers.
    mcp_tool_timeout_ms: int = 120_000
    # How long the CLI waits at a turn's start for an MCP server to connect (its own: 30 s),
    # then goes on without it; a warm container then leaves it out for a while (_mcp_rest).
    mcp_startup_timeout_ms: int = 10_000
    # "uid": also kill every process of the runtime's uid that is not the runtime or its
    # ancestors (Lambda, where the execution environment is ours alone); see _process_sweep.
    process_sweep_scope: SweepScope = "descendants"
    # Confine the CLI and its tools with Landlock where the kernel has it (LANDLOCK=off: don't,
    # e.g. to tell whether the sandbox is what breaks a tool).
    landlock: bool = True
    # The function's memory (Lambda's AWS_LAMBDA_FUNCTION_MEMORY_SIZE, which agentbot dev's
    # local Lambda sets too); 0 where it is not set: then no history is refused for its size
    # (see _history_limit).
    memory_mb: int = 0


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def uses_bedrock(environ: Mapping[str, str]) -> bool:
    """Whether CLAUDE_CODE_USE_BEDROCK turns Bedrock on, as the runtime reads it (1, true, yes,
    on): `agentbot dev` and `doctor` choose the model by the same reading."""
    return _flag(environ.get("CLAUDE_CODE_USE_BEDROCK", ""))


def is_anthropic_base_url(value: str) -> bool:
    """Whether ``value`` is an ANTHROPIC_BASE_URL the runtime takes: `agentbot dev` and
    `doctor` check the shell's by the same reading before they reach it."""
    return _BASE_URL_SHAPE.fullmatch(value) is not None


def load_settings(environ: Mapping[str, str] | None = None) -> RuntimeSettings:
    """Read the settings; a missing or malformed one is a ConfigError naming the variable."""
    env = os.environ if environ is None else environ

    def opt(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    def req(name: str) -> str:
        value = opt(name)
        if value is None:
            raise ConfigError(name, "is not set (see infra/template.yaml)")
        return value

    backend: Backend = "bedrock" if uses_bedrock(env) else "anthropic"
    if backend == "anthropic" and opt("ANTHROPIC_API_KEY_PARAMETER") is None:
        raise ConfigError(
            "ANTHROPIC_API_KEY_PARAMETER",
            "is not set: name the SSM SecureString holding the Anthropic API key, "
            "or set CLAUDE_CODE_USE_BEDROCK=1",
        )
    scope = opt("PROCESS_SWEEP_SCOPE") or "descendants"
    if scope not in ("descendants", "uid"):
        raise ConfigError("PROCESS_SWEEP_SCOPE", f"must be 'descendants' or 'uid', got {scope!r}")
    region = opt("AWS_REGION") or opt("AWS_DEFAULT_REGION") or "us-east-1"
    base_url = opt("ANTHROPIC_BASE_URL")
    if base_url is not None and not is_anthropic_base_url(base_url):
        # Not the value itself: a gateway's URL may carry a token in its path.
        raise ConfigError(
            "ANTHROPIC_BASE_URL",
            "must be an http(s) URL such as https://gateway.example.com (the CLI adds /v1/messages)",
        )
    bedrock = read_bedrock_endpoints(env)
    if backend == "bedrock" and bedrock.gateway is not None and not is_anthropic_base_url(bedrock.gateway):
        # Checked here, not at the first turn's model proxy: a gateway that authenticates by
        # itself skips every credential check, and each turn failed as "internal".
        raise ConfigError(
            GATEWAY_VARIABLE,
            "must be an http(s) URL such as https://gateway.example.com (the CLI adds /model/<id>/invoke)",
        )
    if (
        backend == "bedrock"
        and bedrock.gateway is None
        and bedrock.endpoint is not None
        and not is_anthropic_base_url(bedrock.endpoint)
    ):
        # The model proxy calls it (_bedrock_route): as for the gateway, here, not as every
        # turn failing "internal" (and never echoed: a user:password@ would be shown).
        raise ConfigError(ENDPOINT_VARIABLE, ENDPOINT_NOT_A_URL)
    timeout_ms = env_int("MODEL_TIMEOUT_MS", 120_000, minimum=1000, environ=env)
    if timeout_ms > LONGEST_TURN_S * 1000:
        # The turn's own budget (the Lambda's remaining time) ends the call first.
        raise ConfigError(
            "MODEL_TIMEOUT_MS",
            f"{timeout_ms} ms must be at most {LONGEST_TURN_S * 1000} ms ({LONGEST_TURN_S} s, the longest a "
            "turn runs on Lambda): a longer limit on a model call is never reached",
        )
    mcp_tool_timeout_ms = env_int(
        "MCP_TOOL_TIMEOUT_MS", 120_000, minimum=1000, maximum=LONGEST_TURN_S * 1000, environ=env
    )
    mcp_startup_timeout_ms = env_int(
        "MCP_STARTUP_TIMEOUT_MS", 10_000, minimum=1000, maximum=LONGEST_TURN_S * 1000, environ=env
    )
    lease_s = env_int("LEASE_DURATION_S", 120, minimum=3, environ=env)
    if lease_s > LONGEST_TURN_S:
        # A running turn renews its lease every third of it; only a crashed turn's lease runs
        # out, and until it does the chat's next messages wait.
        raise ConfigError(
            "LEASE_DURATION_S",
            f"{lease_s} s must be at most {LONGEST_TURN_S} s (the longest a turn runs on Lambda): "
            "a turn that crashes holds its chat until its lease ends, longer than any turn could have run",
        )
    # Shorter than the longest MODEL_TIMEOUT_MS (below), so that a silence past it is refused
    # with a bound that can be met, not sent to raise a timeout that is at its own.
    silence_s = env_int("MODEL_SILENCE_S", 90, minimum=1, maximum=LONGEST_TURN_S - 1, environ=env)
    if silence_s * 1000 >= timeout_ms:
        # The CLI would end a silent call first: the proxy never sees the model go silent, and
        # the CLI's and the queue's retries make it half an hour of "typing…" again.
        raise ConfigError(
            "MODEL_SILENCE_S",
            f"{silence_s} s must be shorter than MODEL_TIMEOUT_MS ({timeout_ms} ms), "
            "the CLI's own limit on a model call, or a silent model is never noticed",
        )
    bedrock_model = opt("BEDROCK_MODEL_ID") if backend == "bedrock" else None
    model = bedrock_model or opt("ANTHROPIC_MODEL")
    # With Bedrock the CLI's own defaults (a Haiku, an Opus) are models the account need not
    # have enabled, nor the invoke role allow: the background calls use the chosen model.
    small_model = opt("ANTHROPIC_SMALL_FAST_MODEL") or (model if backend == "bedrock" else None)
    return RuntimeSettings(
        sessions_table=req("SESSIONS_TABLE"),
        sessions_bucket=req("SESSIONS_BUCKET"),
        tenant=tenant_from_env(env),
        retention_days=retention_days_from_env(env),
        backend=backend,
        anthropic_api_key_parameter=opt("ANTHROPIC_API_KEY_PARAMETER"),
        anthropic_base_url=base_url,
        bedrock_base_url=bedrock.gateway,
        bedrock_endpoint_url=bedrock.endpoint,
        bedrock_region_prefix=opt("ANTHROPIC_BEDROCK_REGION_PREFIX"),
        model=model,
        small_model=small_model,
        aws_region=region,
        model_invoke_role_arn=opt("MODEL_INVOKE_ROLE_ARN"),
        sessions_root=opt("SESSIONS_ROOT") or DEFAULT_SESSIONS_ROOT,
        session_disk_limit_mb=env_int("SESSION_DISK_LIMIT_MB", 512, minimum=16, environ=env),
        lease_duration_s=float(lease_s),
        model_max_retries=env_int("MODEL_MAX_RETRIES", 2, minimum=0, environ=env),
        model_timeout_ms=timeout_ms,
        model_silence_s=silence_s,
        mcp_tool_timeout_ms=mcp_tool_timeout_ms,
        mcp_startup_timeout_ms=mcp_startup_timeout_ms,
        process_sweep_scope="uid" if scope == "uid" else "descendants",
        landlock=_flag(env.get("LANDLOCK", "on")),
        memory_mb=env_int("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 0, minimum=0, environ=env),
    )
