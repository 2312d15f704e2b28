"""Building the container's Runtime from the environment (once per container)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from session_core import SessionRegistry, TranscriptStore

from ._claude_config import load_claude_config
from ._environment import AnthropicAccess, BedrockAccess, ModelAccess, bundled_cli_path
from ._settings import RuntimeSettings, load_settings
from ._turn import Runtime

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
) -> Runtime:
    """Settings, validated claude-config, clients, transcript store, registry and model access.

    Clients default to boto3 clients (endpoints from ``AWS_ENDPOINT_URL*``). Raises
    ConfigError / ClaudeConfigError naming what to fix.
    """
    settings = settings or load_settings()
    config = load_claude_config()
    s3 = s3 or boto3.client("s3", config=_BOTO)
    dynamodb = dynamodb or boto3.client("dynamodb", config=_BOTO)
    if model is None:
        if settings.backend == "bedrock":
            sts = sts or (boto3.client("sts", config=_BOTO) if settings.model_invoke_role_arn else None)
            model = BedrockAccess(settings, sts=sts, session=boto3.Session())
        else:
            model = AnthropicAccess(settings, ssm=ssm or boto3.client("ssm", config=_BOTO))
    if store is None:
        store = TranscriptStore(
            s3=s3,
            dynamodb=dynamodb,
            bucket=settings.sessions_bucket,
            table=settings.sessions_table,
            retention_days=settings.retention_days,
        )
    registry = SessionRegistry(
        dynamodb=dynamodb, table=settings.sessions_table, retention_days=settings.retention_days
    )
    return Runtime(
        settings=settings,
        config=config,
        store=store,
        registry=registry,
        s3=s3,
        model=model,
        cli_path=bundled_cli_path(),
    )
