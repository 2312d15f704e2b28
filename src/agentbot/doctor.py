"""`agentbot doctor`: check everything the bot needs and print a checklist with a fix per failure.

Without ``--stack`` it checks what `agentbot dev` would use (claude-config, the model from
``ANTHROPIC_API_KEY`` / ``CLAUDE_CODE_USE_BEDROCK``, ``TELEGRAM_BOT_TOKEN``); with ``--stack NAME``
a deployed stack (its parameters name the SSM secrets, the model backend and the queues).
Exit code 1 when anything failed. No secret is ever printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import IO, Any, Literal

import boto3
import httpx
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError, ReadTimeoutError
from session_core import (
    KEY_REFUSED,
    SESSIONS_PREFIX,
    TRANSCRIPTS_PREFIX,
    ConfigError,
    SessionCoreError,
    aws_error_code,
    read_secret,
)
from sqs_consumer import command_menu
from telegram_core import BotApi, TelegramApiError
from telegram_producer import SECRET_RULE, WebhookSecretError, check_secret

from .bedrock_profile import names_an_anthropic_api_id, profile_called_for
from .bedrock_route import DIRECT_TO_BEDROCK, BedrockRoute, shell_bedrock_route
from .budget_settings import budget_caps, turn_cap_missing
from .deployed_environment import RUNTIME_FUNCTION, deployed_problems, runtime_environment
from .model_probe import (
    DEFAULT_ANTHROPIC_BASE,
    DEFAULT_ANTHROPIC_MODEL,
    NEW_SHELL_KEY,
    ask_for_one_token,
)
from .ops import (
    ALLOWED_UPDATES,
    NO_REGION,
    OpsError,
    StackInfo,
    describe_stack,
    guarded,
    named_stack,
    operator_bot_api,
    operator_clients,
    queue_depth,
    telegram_api_base,
    webhook_info,
)
from .preflight import (
    BOTH_MODELS,
    ConfigurationProblem,
    check_config_readable,
    check_dev_shell,
    describe,
    mcp_secret_variable,
    programs_for,
)
from .profile_credentials import CREDENTIAL_PROCESS_NOT_RUN, credentials_unreadable
from .shown_url import NOT_A_BASE_URL, shown_base_url

Status = Literal["ok", "warn", "FAIL", "skip"]
ClientFactory = Callable[[str], Any]

# Where the model ids agents.json names come from, as a check line shows it.
AGENTS_JSON = "agents.json: "
# A delivery error Telegram reports this recently means the webhook is failing now.
RECENT_WEBHOOK_ERROR_S = 3600


@dataclass(frozen=True)
class Check:
    """One line of the checklist; ``fix`` says what to do when it is not ok. ``uncertain``: a
    FAIL that need not fail the bot's turns (busy, slow, or a permission only the check
    needs), on which `agentbot dev` starts anyway."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    uncertain: bool = False


@dataclass(frozen=True)
class Target:
    """What is being checked: the local set-up of `agentbot dev`, or a deployed stack."""

    clients: ClientFactory
    http: httpx.Client
    stack: StackInfo | None
    telegram_base: str
    # --profile: locally, the profile `agentbot dev --aws-profile` would use (its SSM counts)
    profile: str | None = None

    def parameter(self, name: str) -> str:
        assert self.stack is not None
        value = self.stack.parameters.get(name, "")
        if not value:
            raise OpsError(
                f"stack {self.stack.name!r} has no parameter {name!r} (deployed from infra/template.yaml?)"
            )
        return value


# ------------------------------------------------------------------------ checks


def check_claude_config(target: Target) -> Check | list[Check]:
    """claude-config validates as the runtime loads it (the same loader, the same errors; for a
    stack, with the environment its runtime function has): a line for each problem found."""
    from agent_runtime import ClaudeConfigError, default_config_path, load_claude_config
    from local_stack import agent_user

    root, user = default_config_path(), agent_user()
    where = str(root)
    unreadable: list[Check] = []
    opened: list[str] = []
    if target.stack is None and user is not None and root.is_dir():
        try:  # `agentbot dev` refuses to start on a file the agent's user cannot read
            opened = check_config_readable(user, root)
        except ConfigurationProblem as exc:
            unreadable = [Check("claude-config", "FAIL", f"{exc.where}: {exc.reason}", exc.fix)]
    if opened:  # doctor changed modes on this machine, as dev would: it says which, as dev does
        where += f" (made passable for {user}, as agentbot dev does: {', '.join(opened)})"
    # this machine is where `agentbot dev` starts the command servers' programs
    programs = programs_for(user) if target.stack is None else None
    # a stack's runtime expands mcp.json's ${NAME}s from its own variables, not this shell's
    environ = None
    if target.stack is not None:
        function = RUNTIME_FUNCTION.format(bot=target.parameter("BotName"))
        try:
            environ = runtime_environment(target.clients("lambda"), function)
        except ClientError as exc:  # AWS's own message, a role ARN first, is cut before the permission
            code = _error_code(exc)
            return Check(
                "claude-config",
                "FAIL",
                f"cannot read the variables of the stack's runtime function {function} ({code}), "
                "which mcp.json's ${NAME}s expand from",
                f"allow lambda:GetFunctionConfiguration on {function} to the credentials doctor runs "
                "with, then run doctor again",
            )
    try:
        config = load_claude_config(environ=environ, programs=programs)
    except ClaudeConfigError as exc:
        found = describe(exc, deployed=False).problems if environ is None else deployed_problems(exc, environ)
        return unreadable + [Check("claude-config", "FAIL", f"{p.where}: {p.reason}", p.fix) for p in found]
    if unreadable:
        return unreadable
    if missing := _missing_mcp_secrets(target, config):
        return missing
    counts = (
        f"{len(config.agents)} subagent(s), {len(config.skills)} skill(s), "
        f"{len(config.mcp_servers)} MCP server(s)"
    )
    unused = [name for name in config.mcp_servers if not _allowed_tools_of(config, name)]
    if unused:
        return Check(
            "claude-config",
            "warn",
            f"{where}: {counts}; MCP server(s) {', '.join(unused)} have no tool in main.allowed_tools",
            "list the tools the agent may call as mcp__<server>__<tool> in agents.json main.allowed_tools "
            "(see docs/customise.md)",
        )
    baked = " (baked into the image at `sam build`)" if target.stack is not None else ""
    return Check("claude-config", "ok", f"{where}{baked}: {counts}")


def _missing_mcp_secrets(target: Target, config: Any) -> list[Check]:
    """The secret headers of mcp.json (``headers_from_ssm``) the runtime would not find, which
    stop `agentbot dev` (given as MCP_SECRET_* variables) and fail a deployed runtime at start."""
    from agent_runtime import ClaudeConfigError, McpSecretMissingError, read_mcp_secret_headers

    missing: list[ClaudeConfigError] = []
    if target.stack is None:
        not_given = "not given for agentbot dev"
        if target.profile:
            not_given += f", nor in SSM of profile {target.profile}"
        missing = [
            McpSecretMissingError(
                f"{config.root}/mcp.json",
                f"mcpServers.{server}.headers_from_ssm.{header}",
                parameter,
                not_given,
            )
            for server, headers in config.mcp_secret_headers.items()
            for header, parameter in headers.items()
            if not os.environ.get(mcp_secret_variable(server, header), "").strip()
            and not (target.profile and _in_ssm(target, parameter))
        ]
    else:
        if outside := _outside_mcp_secrets_path(target.stack, config):
            return outside
        try:
            read_mcp_secret_headers(config, target.clients("ssm"))
        except ClaudeConfigError as exc:
            missing = list(exc.problems)
    found = [describe(exc, deployed=target.stack is not None, profile=target.profile) for exc in missing]
    return [Check("claude-config", "FAIL", f"{p.where}: {p.reason}", p.fix) for p in found]


def _in_ssm(target: Target, parameter: str) -> bool:
    """Whether the profile's SSM gives ``parameter`` as `agentbot dev --aws-profile` reads it
    when its MCP_SECRET_* variable is unset: decrypted, so a profile without the key's
    kms:Decrypt fails here as it would there. The value is dropped unread."""
    try:
        target.clients("ssm").get_parameter(Name=parameter, WithDecryption=True)
    except (ClientError, BotoCoreError):
        return False  # not there, or not readable with the profile: dev would fail on it too
    return True


def _outside_mcp_secrets_path(stack: StackInfo, config: Any) -> list[Check]:
    """The secret headers whose parameter the deployed runtime may not read: its role allows
    only the parameters under the stack's McpSecretsParameterPath."""
    root = stack.parameters.get("McpSecretsParameterPath", "").rstrip("/")
    if not root:
        return []  # a stack from before the parameter: nothing to compare with
    return [
        Check(
            "claude-config",
            "FAIL",
            f"{config.root}/mcp.json: mcpServers.{server}.headers_from_ssm.{header}: {parameter} is "
            f"outside the stack's McpSecretsParameterPath {root}, the only SSM path the runtime may read",
            f"name a parameter under {root}/ (then sam build && sam deploy), or deploy with "
            "McpSecretsParameterPath set to a path above it",
        )
        for server, headers in config.mcp_secret_headers.items()
        for header, parameter in headers.items()
        if not ("/" + parameter.lstrip("/")).startswith(root + "/")
    ]


def check_shell(target: Target) -> list[Check]:
    """Locally: the limits, budgets, id lists and webhook secret `agentbot dev` takes from the
    shell, read by the functions' own loaders (dev's start-up check): a line for each bad one."""
    if target.stack is None:
        try:
            check_dev_shell(os.environ)
        except ConfigurationProblem as exc:
            return [Check("shell settings", "FAIL", f"{p.where}: {p.reason}", p.fix) for p in exc.problems]
        return [
            Check(
                "shell settings",
                "ok",
                "limits, budgets, allowed ids and webhook secret read as dev reads them",
            )
        ]
    return []  # a stack's settings are its parameters, which CloudFormation checked


def check_who_may_chat(target: Target) -> list[Check]:
    """A deployed bot without AllowedUserIds or AllowedChatIds (the template's defaults) answers
    anyone who finds it, on the operator's model key: a warning, as it may be meant. Locally
    `agentbot dev` says so itself when it starts."""
    if target.stack is None:
        return []
    parameters = target.stack.parameters
    if (parameters.get("AllowedUserIds") or "").strip() or (parameters.get("AllowedChatIds") or "").strip():
        return []
    bot = parameters.get("BotUsername") or "the bot"
    return [
        Check(
            "who may chat",
            "warn",
            f"AllowedUserIds and AllowedChatIds are empty: anyone who finds @{bot} can chat with "
            "the agent, on your model key",
            "sam deploy --parameter-overrides AllowedUserIds=<your numeric Telegram id,...> (or "
            "AllowedChatIds), or set budgets (BudgetUserDailyUsd) if it is meant to be open",
        )
    ]


def check_budgets(target: Target) -> list[Check]:
    """Daily or monthly caps without MaxTurnCostUsd (MAX_TURN_COST_USD locally) bound nothing
    while turns run: a warning naming the setting to add, as the bot works without it."""
    parameters = target.stack.parameters if target.stack is not None else None
    try:
        caps = budget_caps(parameters, os.environ)
    except ConfigError:
        return []  # the shell settings line names it (a stack's, CloudFormation refused)
    problem = turn_cap_missing(caps, deployed=target.stack is not None)
    if problem is None:
        return []
    return [Check("budgets", "warn", f"{problem.where}: {problem.reason}", problem.fix)]


def _allowed_tools_of(config: Any, server: str) -> list[str]:
    return [t for t in config.main.allowed_tools if t.startswith(f"mcp__{server}__")]


def _models_of(model: str, source: str, small: tuple[str, str] | None = None) -> list[tuple[str, str]]:
    """(model id, where it is set) of each model the agents ask for: agents.json's main.model,
    which the CLI is started with over ``model`` (from ``source``), with Bedrock the ``small``
    model of the CLI's background calls and "haiku" (see ``_bedrock_small``), and the
    subagents' ids."""
    from agent_runtime import ClaudeConfigError, load_claude_config, model_id_of

    try:
        config = load_claude_config()
    except ClaudeConfigError:
        config = None  # the claude-config line names its problems
    main_model = model_id_of(config.main.model) if config is not None else None
    # The settings' ids too as the CLI sends them (without a "[1m]"); an alias stays as named.
    models = {main_model: f"{AGENTS_JSON}main.model"} if main_model else {model_id_of(model) or model: source}
    if small is not None:
        small_model, small_source = small
        models.setdefault(model_id_of(small_model) or small_model, small_source)
    for agent in config.agents if config is not None else ():
        if agent_model := model_id_of(agent.model):
            models.setdefault(agent_model, f"{AGENTS_JSON}agents.{agent.name}.model")
    return list(models.items())


def _bedrock_small(small: str, small_source: str, model: str, source: str) -> tuple[str, str]:
    """The runtime's reading of the small/fast model with Bedrock: its own setting, else the
    main model (never the CLI's default Haiku)."""
    return (small, small_source) if small else (model, source)


def _probe_each(models: list[tuple[str, str]], probe: Callable[[str, str], Check]) -> list[Check]:
    """A line per model, until one fails (a refused key would fail them all alike)."""
    checks: list[Check] = []
    for model, source in models:
        checks.append(probe(model, source))
        if checks[-1].status != "ok":
            break
    return checks


def check_model(target: Target) -> Check | list[Check]:
    """The model answers a 1-token request with the key or credentials the bot would use, for
    each model id the agents ask for."""
    if target.stack is not None:
        if target.parameter("ModelBackend") == "bedrock":
            model = target.parameter("BedrockModelId")
            small = _bedrock_small(
                target.stack.parameters.get("SmallFastModel", ""), "SmallFastModel", model, "BedrockModelId"
            )
            models = _models_of(model, "BedrockModelId", small)
            return probe_bedrock_models(target.clients("bedrock-runtime"), target.clients("bedrock"), models)
        name = target.parameter("AnthropicApiKeyParameterName")
        try:
            key = read_secret(target.clients("ssm"), name)
        except ConfigError as exc:
            problem = describe(exc, deployed=True)
            return Check("model", "FAIL", f"{problem.where}: {problem.reason}", problem.fix)
        base = target.stack.parameters.get("AnthropicBaseUrl") or DEFAULT_ANTHROPIC_BASE
        model = target.stack.parameters.get("AnthropicModel") or DEFAULT_ANTHROPIC_MODEL
        refused_fix = (
            "put the right key: read -rs KEY && aws ssm put-parameter --overwrite "
            f'--type SecureString --name {name} --value "$KEY"'
        )
        return _probe_each(
            _models_of(model, "AnthropicModel"),
            lambda model_id, source: _probe_anthropic(
                target.http, base, key, model_id, source, refused_fix=refused_fix
            ),
        )
    from agent_runtime import is_anthropic_base_url, uses_bedrock

    if os.environ.get("ANTHROPIC_API_KEY", "").strip() and uses_bedrock(os.environ):
        both, _, unset = BOTH_MODELS.partition(": ")
        return Check("model", "FAIL", both, unset)
    if os.environ.get("ANTHROPIC_API_KEY", "").strip():
        base = os.environ.get("ANTHROPIC_BASE_URL", "").strip() or DEFAULT_ANTHROPIC_BASE
        if not is_anthropic_base_url(base):  # as the runtime reads it
            return Check(
                "model", "FAIL", f"ANTHROPIC_BASE_URL: {NOT_A_BASE_URL}", "fix or unset it in your shell"
            )
        model = os.environ.get("ANTHROPIC_MODEL", "").strip() or DEFAULT_ANTHROPIC_MODEL
        key = os.environ["ANTHROPIC_API_KEY"].strip()
        return _probe_each(
            _models_of(model, "ANTHROPIC_MODEL"),
            lambda model_id, source: _probe_anthropic(
                target.http,
                base,
                key,
                model_id,
                source,
                refused_fix=NEW_SHELL_KEY,
            ),
        )
    if uses_bedrock(os.environ):
        session = boto3.Session()
        region = os.environ.get("AWS_REGION") or session.region_name
        if not region:
            return Check(
                "model",
                "FAIL",
                "Bedrock: AWS_REGION is not set",
                "export AWS_REGION=<a region where the model is enabled in the Bedrock console>",
            )
        models = shell_bedrock_models()
        if not models:
            return Check(
                "model",
                "FAIL",
                "Bedrock: BEDROCK_MODEL_ID is not set",
                "export BEDROCK_MODEL_ID=<a model or inference-profile id enabled in the account>",
            )
        return probe_shell_bedrock_models(session, region, models)
    return Check(
        "model", "skip", "no ANTHROPIC_API_KEY or CLAUDE_CODE_USE_BEDROCK: dev uses the offline demo model"
    )


def shell_bedrock_models() -> list[tuple[str, str]]:
    """(model id, where it is set) of each model a runtime started from this shell calls on
    Bedrock (``_models_of``); empty when the shell sets no model."""
    # The runtime's order (agent_runtime settings): BEDROCK_MODEL_ID, else ANTHROPIC_MODEL.
    source = "BEDROCK_MODEL_ID" if os.environ.get("BEDROCK_MODEL_ID", "").strip() else "ANTHROPIC_MODEL"
    model = os.environ.get(source, "").strip()
    if not model:
        return []
    small_model = os.environ.get("ANTHROPIC_SMALL_FAST_MODEL", "").strip()
    return _models_of(model, source, _bedrock_small(small_model, "ANTHROPIC_SMALL_FAST_MODEL", model, source))


def probe_shell_bedrock_models(
    session: Any, region: str, models: list[tuple[str, str]], config: Any = None
) -> list[Check]:
    """``probe_bedrock_models`` where a runtime started from this shell calls them
    (``shell_bedrock_route``), signed as it signs them: a gateway's answer, not
    bedrock-runtime's, is what its turns get, and one that authenticates callers itself is
    asked without AWS credentials, as the turns ask it."""
    from agent_runtime import ModelBackendError, bedrock_signing_credentials, signs_for_real

    route = shell_bedrock_route(os.environ)
    if problem := route.setting_problem():
        return [Check("model", "FAIL", problem, "fix or unset it in your shell")]
    try:
        credentials = bedrock_signing_credentials(session, gateway=route.gateway)
    except ModelBackendError:
        return [
            Check(
                "model",
                "FAIL",
                "Bedrock: no AWS credentials found",
                "configure a profile (AWS_PROFILE) that may call bedrock:InvokeModel",
            )
        ]
    # found, but not to be had: an SSO sign-in gone, a role, a credential_process that fails
    except (BotoCoreError, ClientError, *CREDENTIAL_PROCESS_NOT_RUN) as exc:
        return [
            Check(
                "model",
                "FAIL",
                f"Bedrock: {credentials_unreadable(f'AWS profile {session.profile_name}', exc)}",
                "fix the profile (an SSO one: `aws sso login`) or configure one (AWS_PROFILE) that may "
                "call bedrock:InvokeModel",
            )
        ]
    route = replace(route, signed=signs_for_real(credentials))
    signing = {
        "aws_access_key_id": credentials.access_key,
        "aws_secret_access_key": credentials.secret_key,
        "aws_session_token": credentials.token,
    }
    endpoint = route.upstream(region)
    return probe_bedrock_models(
        session.client(
            "bedrock-runtime", region_name=region, endpoint_url=endpoint, config=config, **signing
        ),
        session.client("bedrock", region_name=region, config=config, **signing),
        models,
        route,
    )


def _probe_anthropic(
    http: httpx.Client, base: str, key: str, model: str, source: str, *, refused_fix: str
) -> Check:
    try:
        answer = ask_for_one_token(http, base, key, model)
    except httpx.HTTPError as exc:
        return Check(
            "model",
            "FAIL",
            f"cannot reach {shown_base_url(base)} ({type(exc).__name__})",
            "check the network, or the base URL (ANTHROPIC_BASE_URL / AnthropicBaseUrl)",
        )
    if answer.status_code == 200:
        return Check(
            "model",
            "ok",
            f"Anthropic API at {shown_base_url(base)} answered a 1-token request ({_named(model, source)})",
        )
    if answer.status_code in KEY_REFUSED:
        return Check(
            "model", "FAIL", f"Anthropic API answered {answer.status_code}: the key is refused", refused_fix
        )
    if answer.status_code in (400, 404):
        return Check(
            "model",
            "FAIL",
            f"Anthropic API answered {answer.status_code}: {_error_message(answer)}",
            f"check the model id ({source})",
        )
    return Check(
        "model",
        "FAIL",
        f"Anthropic API answered {answer.status_code} (busy or down)",
        "try again in a minute; see status.anthropic.com",
    )


def _error_message(answer: httpx.Response) -> str:
    try:
        return str(answer.json()["error"]["message"])[:200]
    except (ValueError, KeyError, TypeError):
        return "no message"


_USUAL_MODEL_SOURCES = ("ANTHROPIC_MODEL", "AnthropicModel", "BEDROCK_MODEL_ID", "BedrockModelId")


def _named(model: str, source: str) -> str:
    """A model as a check line shows it: with where it is set, unless that is the usual place."""
    return model if source in _USUAL_MODEL_SOURCES else f"{model}, {source}"


def probe_bedrock_models(
    bedrock: Any, control: Any, models: list[tuple[str, str]], route: BedrockRoute = DIRECT_TO_BEDROCK
) -> list[Check]:
    """A line per model as the CLI calls it on Bedrock: an Anthropic API id (in agents.json or
    a setting) by the inference profile it calls for it (``bedrock_profile``), any other id as
    it is. ``bedrock`` calls the models where ``route`` says; the lines name it."""
    main_model = models[0][0]

    def probe(model_id: str, source: str) -> Check:
        if not names_an_anthropic_api_id(model_id):
            return _probe_bedrock(bedrock, model_id, source, route)
        if not route.signed:  # Bedrock lists its inference profiles to AWS credentials only
            return Check(
                "model",
                "warn",
                f"{model_id} ({source}) not checked: the CLI calls an inference profile for it, which "
                "Bedrock lists only to AWS credentials, and there are none",
                f"write the inference-profile id the gateway serves in {source} to have it checked",
            )
        region = control.meta.region_name
        try:
            profile = profile_called_for(control, model_id, main_model, route.region_prefix)
        except ClientError as exc:
            code = _error_code(exc)
            return Check(
                "model",
                "FAIL",
                f"Bedrock would not list its inference profiles in {region} ({code}): the CLI calls "
                f"the profile of {model_id} ({source}) there",
                "run this with credentials allowed bedrock:ListInferenceProfiles, or write the "
                f"Bedrock inference-profile id in {source}",
                uncertain=True,  # the turns may well answer: only this check needs the listing
            )
        except BotoCoreError as exc:
            return Check("model", "FAIL", f"cannot reach Bedrock ({type(exc).__name__})", "check the network")
        if profile is None:
            aliases = (
                ", or an alias: sonnet or opus (BedrockModelId / BEDROCK_MODEL_ID), haiku "
                "(SmallFastModel / ANTHROPIC_SMALL_FAST_MODEL)"
                if source.startswith(AGENTS_JSON)
                else ""  # a setting is what the aliases stand for
            )
            return Check(
                "model",
                "FAIL",
                f"Bedrock has no inference profile for {model_id} in {region} ({source}): "
                "Bedrock would refuse every call for it",
                f"name a model or inference-profile id enabled in the account in {source}{aliases}",
            )
        return _probe_bedrock(bedrock, profile, f"{source}, {model_id} on Bedrock", route)

    return _probe_each(models, probe)


def _error_code(exc: ClientError) -> str:
    """The AWS error code of ``exc`` as a check line names it ("error" when AWS gave none)."""
    return aws_error_code(exc) or "error"


# Bedrock's answers to credentials it does not take: mistyped, deleted, expired, or signed wrong.
_CREDENTIALS_REFUSED = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "IncompleteSignature",
        "MissingAuthenticationTokenException",
    }
)
# Its answers to a model the account lacks, the caller may not invoke, or no model has the id.
_MODEL_REFUSED = frozenset({"AccessDeniedException", "ValidationException", "ResourceNotFoundException"})


def _probe_bedrock(bedrock: Any, model_id: str, source: str, route: BedrockRoute) -> Check:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "ping"}],
    }
    try:
        bedrock.invoke_model(
            modelId=model_id, body=json.dumps(body), contentType="application/json", accept="application/json"
        )
    except ClientError as exc:
        code = _error_code(exc)
        if code in _CREDENTIALS_REFUSED:
            return Check(
                "model",
                "FAIL",
                f"{route.called} refused the AWS credentials ({code})",
                "configure credentials Bedrock accepts, allowed bedrock:InvokeModel (a profile: "
                "AWS_PROFILE; `aws sso login` again when they expired)",
            )
        if code in _MODEL_REFUSED:
            fix = (
                "the first call to a model subscribes the account: run this with credentials allowed "
                "aws-marketplace:Subscribe and ViewSubscriptions (or open the model in the Bedrock "
                f"console's playground), and check the model id ({source})"
            )
            refused = f"{route.called} refused a 1-token request to {model_id} ({code})"
            return Check("model", "FAIL", refused, fix)
        return Check(  # throttled, busy: the turns' retries may get through
            "model",
            "FAIL",
            f"{route.called} refused a 1-token request to {model_id} ({code})",
            "try again in a minute",
            uncertain=True,
        )
    except BotoCoreError as exc:
        return Check(
            "model",
            "FAIL",
            f"cannot reach {route.called} ({type(exc).__name__})",
            route.unreachable_fix,
            uncertain=isinstance(exc, ReadTimeoutError),  # reached, merely slow
        )
    return Check("model", "ok", f"{route.called} answered a 1-token request ({_named(model_id, source)})")


def _bot_token(target: Target) -> tuple[str | None, Check | None]:
    """The bot token, or (None, the check line saying why there is none)."""
    if target.stack is None:
        token = os.environ.get("TELEGRAM_BOT_TOKEN", "").strip()
        if not token:
            return None, Check("bot token", "skip", "no TELEGRAM_BOT_TOKEN: dev chats in the terminal")
        return token, None
    name = target.parameter("BotTokenParameterName")
    try:
        return read_secret(target.clients("ssm"), name), None
    except ConfigError as exc:
        problem = describe(exc, deployed=True)
        return None, Check("bot token", "FAIL", f"{problem.where}: {problem.reason}", problem.fix)


def check_bot_token(target: Target, api: BotApi | None, missing: Check | None) -> Check | list[Check]:
    """Telegram knows the token (getMe), and it is the bot a stack was deployed for (BotUsername)."""
    if api is None:
        assert missing is not None
        return missing
    try:
        me = api.call("getMe", {})
    except TelegramApiError as exc:
        if exc.error_code in (401, 404):
            where = (
                "TELEGRAM_BOT_TOKEN" if target.stack is None else target.parameter("BotTokenParameterName")
            )
            return Check(
                "bot token",
                "FAIL",
                f"Telegram refused the token ({exc.error_code})",
                f"copy the token from @BotFather again into {where}",
            )
        return Check("bot token", "FAIL", str(exc), "check the network (or TELEGRAM_API_BASE)")
    username = str(me.get("username", "?"))
    known = Check("bot token", "ok", f"@{username} (getMe)")
    deployed = target.stack.parameters.get("BotUsername", "") if target.stack is not None else ""
    if deployed and deployed.lower() != username.lower():
        # The producer knows a mention only by this name: groups would never be answered.
        return [
            known,
            Check(
                "bot token",
                "FAIL",
                f"the token is @{username}'s, but the stack's BotUsername is {deployed}, so in groups "
                f"the bot answers no mention of @{username}",
                f"set BotUsername={username} in samconfig.toml's parameter_overrides and sam deploy (or put "
                f"@{deployed}'s token in {target.parameter('BotTokenParameterName')})",
            ),
        ]
    return known


def check_webhook(target: Target, api: BotApi | None) -> Check:
    """Telegram's webhook: pointed at the stack, its secret in SSM well-formed, no recent error."""
    if api is None:
        return Check("webhook", "skip", "needs a bot token that Telegram accepts (see above)")
    try:
        info = webhook_info(api)
    except TelegramApiError as exc:
        return Check("webhook", "FAIL", str(exc), "check the network (or TELEGRAM_API_BASE)")
    url = str(info.get("url") or "")
    pending = int(info.get("pending_update_count") or 0)
    if target.stack is None:
        if url:
            return Check(
                "webhook",
                "warn",
                f"set to {url}: `agentbot dev` removes it and long-polls",
                "afterwards, `agentbot webhook set --stack NAME` points Telegram back at the stack",
            )
        return Check("webhook", "ok", "none set (dev long-polls)")
    expected = target.stack.output("WebhookUrl")
    set_again = f"agentbot webhook set --stack {target.stack.name}"
    if url != expected:
        what = f"points at {url}" if url else "is not set"
        return Check("webhook", "FAIL", f"{what}, not the stack's {expected}", set_again)
    secret_name = target.parameter("WebhookSecretParameterName")
    try:
        secret = read_secret(target.clients("ssm"), secret_name)
    except ConfigError as exc:
        problem = describe(exc, deployed=True)
        return Check(
            "webhook",
            "FAIL",
            f"secret {problem.where}: {problem.reason}",
            problem.fix + f"; then {set_again}",
        )
    try:
        check_secret(secret)
    except WebhookSecretError:
        return Check(
            "webhook",
            "FAIL",
            f"secret {secret_name} is not {SECRET_RULE} (the producer refuses to start with it)",
            "put a new one (python3 -c 'import secrets; print(secrets.token_urlsafe(32))'), "
            f"then {set_again}",
        )
    error_at = int(info.get("last_error_date") or 0)
    if error_at and time.time() - error_at < RECENT_WEBHOOK_ERROR_S:
        when = time.strftime("%H:%M UTC", time.gmtime(error_at))
        return Check(
            "webhook",
            "FAIL",
            f"Telegram's last delivery failed at {when}: "
            f"{info.get('last_error_message', '')} ({pending} pending)",
            f"look at the producer's log (sam logs --stack-name {target.stack.name}); "
            f"a 401/403 means the secret differs: {set_again}",
        )
    # Telegram keeps the update types of the last setWebhook (none listed: all but a few): one
    # set by an older release never sends a type this one added, and its feature does nothing.
    subscribed = info.get("allowed_updates") or ALLOWED_UPDATES
    missing = [kind for kind in ALLOWED_UPDATES if kind not in subscribed]
    if missing:
        return Check(
            "webhook",
            "FAIL",
            f"Telegram sends no {', '.join(missing)} updates (the webhook was set by an older "
            "release or by hand): what this release answers them with never happens",
            f"{set_again} (registers every update type the producer handles)",
        )
    note = f"; last error {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(error_at))}" if error_at else ""
    return Check("webhook", "ok", f"{url}, secret set, {pending} pending{note}")


def check_command_menu(target: Target, api: BotApi | None) -> Check | list[Check]:
    """The "/" menu (getMyCommands) is this release's: Telegram keeps the last setMyCommands,
    and only `agentbot webhook set` sends it, so after an upgrade that adds a command the users
    never see it in the menu. A warning: every command still answers when typed. Local runs
    have none: `agentbot dev` fills the menu as it starts."""
    if target.stack is None:
        return []
    if api is None:
        return Check("command menu", "skip", "needs a bot token that Telegram accepts (see above)")
    try:
        shown = api.call("getMyCommands", {})
    except TelegramApiError as exc:
        return Check("command menu", "FAIL", str(exc), "check the network (or TELEGRAM_API_BASE)")
    wanted = command_menu()
    if shown == wanted:
        return Check("command menu", "ok", ", ".join(f"/{entry['command']}" for entry in wanted))
    shown_names = [str(entry.get("command")) for entry in shown or []]
    missing = [entry["command"] for entry in wanted if entry["command"] not in shown_names]
    extra = [name for name in shown_names if name not in {entry["command"] for entry in wanted}]
    if not shown:
        what = "is empty"
    elif missing or extra:
        lacks = f"lacks {', '.join('/' + name for name in missing)}" if missing else ""
        stale = (
            f"offers {', '.join('/' + name for name in extra)}, which this release has not" if extra else ""
        )
        what = " and ".join(part for part in (lacks, stale) if part)
    else:
        what = "says what an older release's commands did"
    return Check(
        "command menu",
        "warn",
        f'the menu the apps show when "/" is typed {what} (set by an older release or by hand): '
        "users do not find this release's commands there, though each answers when typed",
        f"agentbot webhook set --stack {target.stack.name} (fills it with this release's commands)",
    )


def check_dead_letters(target: Target) -> Check:
    """Nothing waits in the dead-letter queue."""
    if target.stack is None:
        return Check("dead letters", "skip", "agentbot dev keeps its queues in memory")
    depth = queue_depth(target.clients("sqs"), target.stack.output("DeadLetterQueueUrl"))
    if depth:
        name = target.stack.name
        return Check(
            "dead letters",
            "FAIL",
            f"{depth} message(s) in the dead-letter queue",
            f"agentbot dlq list --stack {name}; after fixing the cause, agentbot dlq redrive --stack {name}",
        )
    return Check("dead letters", "ok", "the dead-letter queue is empty")


def check_aws_resources(target: Target) -> Check:
    """The stack's table, bucket and queue answer with the operator's credentials."""
    if target.stack is None:
        return Check("AWS resources", "skip", "agentbot dev creates its table, bucket and queues at start")
    table = target.stack.output("SessionsTableName")
    status = target.clients("dynamodb").describe_table(TableName=table)["Table"].get("TableStatus")
    if status != "ACTIVE":
        return Check(
            "AWS resources", "FAIL", f"table {table} is {status}", "wait for it, or see the stack's events"
        )
    bucket = target.stack.output("SessionsBucketName")
    target.clients("s3").head_bucket(Bucket=bucket)
    if short := _expiry_shorter_than_sessions(target, bucket):
        return short
    target.clients("sqs").get_queue_attributes(
        QueueUrl=target.stack.output("InboundQueueUrl"), AttributeNames=["QueueArn"]
    )
    if short := _concurrency_short_of_turns(target):
        return short
    return Check("AWS resources", "ok", f"table {table}, bucket {bucket} and the inbound queue answer")


def _concurrency_short_of_turns(target: Target) -> Check | None:
    """A warning when the account's Lambda concurrency cannot hold MaxConcurrentTurns (each turn
    holds the consumer and the runtime, and the producer needs a few): a new account's 10 fits
    4 turns, and under more load turns are throttled until they end in the dead-letter queue."""
    assert target.stack is not None
    turns = int(target.stack.parameters.get("MaxConcurrentTurns") or 0)
    try:
        limit = int(target.clients("lambda").get_account_settings()["AccountLimit"]["ConcurrentExecutions"])
    except (ClientError, BotoCoreError, KeyError):
        return None  # not allowed to ask: the README's Prerequisites say how to look
    needed = 2 * turns + 2
    if not turns or limit >= needed:
        return None
    fits = max((limit - 2) // 2, 2)  # the parameter's MinValue
    return Check(
        "AWS resources",
        "warn",
        f"the account runs at most {limit} Lambda executions at once and MaxConcurrentTurns {turns} needs "
        f"{needed}: with more than {(limit - 2) // 2} chats at once, turns are throttled and dead-lettered",
        f"set MaxConcurrentTurns to {fits} and sam deploy, or request a higher Lambda 'Concurrent "
        "executions' quota in Service Quotas",
    )


def _expiry_shorter_than_sessions(target: Target, bucket: str) -> Check | None:
    """A FAIL when the bucket deletes objects before the sessions that point at them expire:
    SessionTtlDays raised alone (the template cannot compare two parameters) would silently
    cost an idle chat its history while its registry item still names it."""
    from local_stack import S3_EXPIRY_MARGIN_DAYS

    assert target.stack is not None
    ttl_days = int(target.parameter("SessionTtlDays"))
    try:
        rules = target.clients("s3").get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except ClientError as exc:
        if aws_error_code(exc) != "NoSuchLifecycleConfiguration":
            raise
        return None  # nothing expires
    expiring = [
        r
        for r in rules  # a Disabled rule deletes nothing
        if r.get("Status") == "Enabled" and "Days" in r.get("Expiration", {}) and _reaches_sessions(r)
    ]
    expiry = min((r["Expiration"]["Days"] for r in expiring), default=None)
    needed = ttl_days + S3_EXPIRY_MARGIN_DAYS
    if expiry is None or expiry >= needed:
        return None
    return Check(
        "AWS resources",
        "FAIL",
        f"bucket {bucket} expires objects after {expiry} days, before sessions kept {ttl_days} days "
        "(SessionTtlDays) stop pointing at them: an idle chat would lose its history",
        f"set SessionObjectExpiryDays to at least {needed} (SessionTtlDays + {S3_EXPIRY_MARGIN_DAYS}), "
        "then sam deploy",
    )


def _reaches_sessions(rule: dict[str, Any]) -> bool:
    """Whether a lifecycle rule can delete a session's objects (staged files and outboxes,
    histories): not one limited to another prefix (an operator's ``logs/``), nor to a tag (the
    bot tags no object)."""
    found = rule.get("Filter", {})
    both = found.get("And", {})
    if "Tag" in found or both.get("Tags"):
        return False
    prefix = found.get("Prefix", both.get("Prefix", rule.get("Prefix", "")))
    return any(p.startswith(prefix) or prefix.startswith(p) for p in (SESSIONS_PREFIX, TRANSCRIPTS_PREFIX))


def check_configuration_alarm(target: Target) -> Check:
    """The deployed functions have not reported a configuration error (the alarm is not firing)."""
    if target.stack is None:
        return Check("config alarm", "skip", "no deployed functions to ask")
    bot = target.parameter("BotName")
    name = f"{bot}-configuration-error"
    alarms = target.clients("cloudwatch").describe_alarms(AlarmNames=[name]).get("MetricAlarms", [])
    if not alarms:
        return Check(
            "config alarm", "warn", f"{name} does not exist", "deploy infra/template.yaml (sam deploy)"
        )
    if alarms[0].get("StateValue") == "ALARM":
        return Check(
            "config alarm",
            "FAIL",
            f"{name} is firing: a deployed function met a configuration error",
            f"see what to fix: aws logs tail /aws/lambda/{bot}-runtime --since 1h "
            f"--filter-pattern '\"config.invalid\"' (and {bot}-consumer); then fix it and redeploy "
            "(a new model key, bot token or MCP header value in its SSM parameter needs no redeploy)",
        )
    return Check("config alarm", "ok", f"{name}: {alarms[0].get('StateValue', '?')}")


# ------------------------------------------------------------------------- runner


def run_checks(target: Target) -> list[Check]:
    """Every check in checklist order; one that cannot run at all is a FAIL line, not a crash."""
    checks: list[Check] = []

    def guarded(name: str, run: Callable[[], Check | list[Check]]) -> None:
        try:
            found = run()
        except (OpsError, TelegramApiError, SessionCoreError, ClientError, BotoCoreError) as exc:
            found = Check(name, "FAIL", str(exc)[:300], "fix what the line names, then run doctor again")
        checks.extend(found if isinstance(found, list) else [found])

    guarded("claude-config", lambda: check_claude_config(target))
    guarded("shell settings", lambda: check_shell(target))
    guarded("who may chat", lambda: check_who_may_chat(target))
    guarded("budgets", lambda: check_budgets(target))
    guarded("model", lambda: check_model(target))
    api: BotApi | None = None
    missing: Check | None = None
    try:
        token, missing = _bot_token(target)
        api = operator_bot_api(target.http, token, target.telegram_base) if token else None
    except (OpsError, SessionCoreError, ClientError, BotoCoreError) as exc:
        missing = Check("bot token", "FAIL", str(exc)[:300], "fix what the line names, then run doctor again")
    guarded("bot token", lambda: check_bot_token(target, api, missing))
    # Telegram answers nothing about the webhook to a token it refuses.
    accepted = any(c.name == "bot token" and c.status == "ok" for c in checks)
    guarded("webhook", lambda: check_webhook(target, api if accepted else None))
    guarded("command menu", lambda: check_command_menu(target, api if accepted else None))
    guarded("dead letters", lambda: check_dead_letters(target))
    guarded("AWS resources", lambda: check_aws_resources(target))
    guarded("config alarm", lambda: check_configuration_alarm(target))
    return checks


def format_checklist(title: str, checks: list[Check]) -> str:
    """The checklist as printed: one line per check, a fix line under each failure or warning
    (once under a run of one check's lines that share it, e.g. claude-config's problems)."""
    lines = [title]
    for check, following in zip(checks, [*checks[1:], None], strict=True):
        lines.append(f"  {check.status:<5} {check.name:<14} {check.detail}")
        shared = following is not None and (following.name, following.fix) == (check.name, check.fix)
        if check.fix and check.status in ("FAIL", "warn") and not shared:
            lines.append(f"  {'':<5} {'':<14} fix: {check.fix}")
    failed = sum(c.status == "FAIL" for c in checks)
    lines.append(f"{failed} problem(s) found." if failed else "All checks passed.")
    return "\n".join(lines)


def run_doctor(
    args: argparse.Namespace,
    *,
    clients: ClientFactory | None = None,
    http: httpx.Client | None = None,
    out: IO[str] | None = None,
) -> int:
    """`agentbot doctor [--stack NAME]`: print the checklist; 1 when anything failed."""
    out = out or sys.stdout
    name = named_stack(args)
    with operator_clients(args, clients, http) as (clients, http):
        try:
            stack = describe_stack(clients("cloudformation"), name) if name else None
        except (OpsError, ClientError, BotoCoreError) as exc:
            print(NO_REGION if isinstance(exc, NoRegionError) else f"error: {exc}", file=sys.stderr)
            if not args.stack:  # .env.example sets it: whoever sourced it may not have deployed
                print(
                    f"  (the stack {name!r} is AGENTBOT_STACK's; unset AGENTBOT_STACK to check what "
                    "`agentbot dev` uses)",
                    file=sys.stderr,
                )
            return 1
        target = Target(
            clients=clients, http=http, stack=stack, telegram_base=telegram_api_base(), profile=args.profile
        )
        checks = run_checks(target)
        title = (
            f"agentbot doctor · stack {name}"
            if stack
            else "agentbot doctor · local (what `agentbot dev` uses)"
        )
        print(format_checklist(title, checks), file=out)
    return 1 if any(c.status == "FAIL" for c in checks) else 0


def register(subparsers: Any) -> None:
    """Add the `doctor` command."""
    doctor = subparsers.add_parser(
        "doctor",
        help="check claude-config, model, bot token, webhook and dead letters; print a fix for each problem",
        description="Check what the bot needs and print a checklist with a fix per failure (exit 1 on "
        "any). Without --stack: what `agentbot dev` would use. With --stack: a deployed stack.",
    )
    doctor.add_argument("--stack", help="check this deployed stack (or AGENTBOT_STACK)")
    doctor.add_argument("--profile", help="AWS profile (default: the usual AWS settings)")
    doctor.add_argument("--region", help="AWS region (default: the usual AWS settings)")
    doctor.set_defaults(handler=guarded(run_doctor))  # a bad --profile: one line, as in ops
