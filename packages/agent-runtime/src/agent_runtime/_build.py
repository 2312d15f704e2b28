"""Building the container's Runtime from the environment (once per container)."""

from __future__ import annotations

import os
from typing import Any

from botocore.config import Config
from session_core import (
    Approvals,
    LeaseClock,
    LiveTurns,
    SessionRegistry,
    SystemClock,
    TranscriptStore,
    become_subreaper,
    get_logger,
    make_non_dumpable,
)

from ._bedrock_signer import bedrock_signing_session
from ._chosen_models import chosen_model_ids
from ._claude_config import load_claude_config
from ._cli_launcher import landlock_abi
from ._environment import AnthropicAccess, BedrockAccess, ModelAccess, bundled_cli_path
from ._mcp_secrets import McpSecretProxies, mcp_secret_sources
from ._preflight import check_model_access, check_runtime_configuration
from ._process_secrets import aws_session, config_environ
from ._process_sweep import effective_scope
from ._settings import RuntimeSettings
from ._turn import Runtime

log = get_logger(__name__)
# Landlock network rules (TCP connect) arrived with ABI 4.
_LANDLOCK_NET_ABI = 4

_BOTO = Config(retries={"max_attempts": 4, "mode": "adaptive"}, connect_timeout=5, read_timeout=30)


def build_runtime(
    settings: RuntimeSettings | None = None,
    *,
    s3: Any = None,
    dynamodb: Any = None,
    ssm: Any = None,
    sts: Any = None,
    store: Any = None,
    model: ModelAccess | None = None,
    clock: LeaseClock | None = None,
) -> Runtime:
    """Settings, validated claude-config, clients, transcript store, registry and model access.

    ``clock`` stamps and paces leases (the wall clock unless a test moves its own).
    Clients default to clients of ``aws_session()`` (the runtime role's credentials, kept
    out of the environment; endpoints from ``AWS_ENDPOINT_URL*``). Raises ConfigError /
    ClaudeConfigError naming what to fix.
    """
    # This process holds the role's credentials and the model key: no tool may read its
    # memory or environment, and every process a turn starts must stay findable.
    make_non_dumpable()
    become_subreaper()
    session = aws_session()
    environ = config_environ()
    ssm = ssm or session.client("ssm", config=_BOTO)
    signs_bedrock = bedrock_signing_session(environ, ssm=ssm)  # the session's own, except in dev
    if sts is None and "MODEL_INVOKE_ROLE_ARN" in environ:
        sts = session.client("sts", config=_BOTO)
    # Everything a turn will need is checked now, once: a broken config fails every turn alike.
    if settings is None:
        settings, config = check_runtime_configuration(environ, ssm=ssm, session=signs_bedrock, sts=sts)
    else:
        config = load_claude_config(environ=environ)
        if model is None:
            check_model_access(settings, environ, ssm=ssm, session=signs_bedrock, sts=sts)
    _report_sandbox(settings, bundled_cli_path())
    s3 = s3 or session.client("s3", config=_BOTO)
    dynamodb = dynamodb or session.client("dynamodb", config=_BOTO)
    if model is None:
        if settings.backend == "bedrock":
            model = BedrockAccess(
                settings,
                sts=sts if settings.model_invoke_role_arn else None,
                session=signs_bedrock,
                models=chosen_model_ids(settings, config),
            )
        else:
            model = AnthropicAccess(settings, ssm=ssm)
    if store is None:
        store = TranscriptStore(
            s3=s3,
            dynamodb=dynamodb,
            bucket=settings.sessions_bucket,
            table=settings.sessions_table,
            retention_days=settings.retention_days,
        )
    clock = clock or SystemClock()
    registry = SessionRegistry(
        dynamodb=dynamodb, table=settings.sessions_table, retention_days=settings.retention_days, clock=clock
    )
    mcp_proxies = None
    if config.mcp_secret_headers:
        mcp_proxies = McpSecretProxies(
            config.mcp_servers, mcp_secret_sources(config, ssm, tenant=settings.tenant)
        )
    return Runtime(
        settings=settings,
        config=config,
        mcp_proxies=mcp_proxies,
        store=store,
        registry=registry,
        s3=s3,
        model=model,
        cli_path=bundled_cli_path(),
        clock=clock,
        live_turns=LiveTurns(
            dynamodb=dynamodb, table=settings.sessions_table, retention_days=settings.retention_days
        ),
        approvals=Approvals(
            dynamodb=dynamodb,
            table=settings.sessions_table,
            retention_days=settings.retention_days,
            clock=clock,
        ),
    )


def _report_sandbox(settings: RuntimeSettings, cli_path: str) -> None:
    """Say once per container what confines the agent's tools on this kernel."""
    if effective_scope(settings.process_sweep_scope) != settings.process_sweep_scope:
        log.warning(
            "sandbox.sweep_scope_narrowed", reason="running as root: uid scope would kill the machine"
        )
    abi = landlock_abi() if settings.landlock else 0
    missing = "network rules" if abi else "Landlock" if settings.landlock else "Landlock (LANDLOCK=off)"
    # A program this user may run but not read is started non-dumpable by the kernel: tools of
    # the same uid cannot open its /proc fds (its pipes to us), environment or memory.
    private_cli = not os.access(cli_path, os.R_OK)
    if abi >= _LANDLOCK_NET_ABI:
        log.info("sandbox.landlock", abi=abi, files="write: own session only", network="listed ports only")
        return
    still = "clean environment, non-dumpable runtime, process sweep, per-turn model key"
    extra = {}
    if private_cli:
        still += ", non-dumpable CLI"
    elif not abi:
        extra["cli_pipes"] = (
            f"a tool can write the CLI's pipes: make {cli_path} executable but not readable for "
            "this user (owned by another, mode 0711), as the runtime image does"
        )
    log.warning(
        "sandbox.landlock_incomplete",
        abi=abi,
        missing=missing,
        still_enforced=still,
        process_sweep_scope=settings.process_sweep_scope,
        **extra,
    )
