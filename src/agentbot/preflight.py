"""What the functions need, checked before anything runs: the runtime's own start-up check
(``agent_runtime.check_runtime_configuration``: settings, claude-config, model access) worded
for the person at the terminal, with what to do. Used by `agentbot dev` (refuse to start) and
`agentbot doctor` (one checklist line each)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from session_core import ConfigError, aws_error_code

if TYPE_CHECKING:
    from agent_runtime import ClaudeConfig, ProgramLookup

# agent_runtime (and the SDK under it) takes ~1 s to import: only the commands that check
# configuration pay for it, not every `agentbot` command that merely registers its parser.


# dev would take the key and the runtime it starts Bedrock: said alike by dev and doctor.
BOTH_MODELS = (
    "ANTHROPIC_API_KEY and CLAUDE_CODE_USE_BEDROCK are both set: unset CLAUDE_CODE_USE_BEDROCK for "
    "Anthropic's API, or ANTHROPIC_API_KEY for Bedrock"
)


class ConfigurationProblem(Exception):
    """Raised when a configuration the functions need is wrong; ``where`` names the setting, or
    the file and field, ``reason`` what is wrong and ``fix`` what to do (one line together).
    ``problems`` holds each thing to fix (just this one unless it is a ConfigurationProblems)."""

    def __init__(self, where: str, reason: str, fix: str) -> None:
        super().__init__(f"{where}: {reason}; {fix}")
        self.where = where
        self.reason = reason
        self.fix = fix
        self.problems: tuple[ConfigurationProblem, ...] = (self,)


class ConfigurationProblems(ConfigurationProblem):
    """Raised when several things are wrong at once (claude-config's check names every problem
    it found): ``problems`` lists each; ``where``, ``reason`` and ``fix`` are the first one's."""

    def __init__(self, problems: Sequence[ConfigurationProblem]) -> None:
        first = problems[0]
        super().__init__(first.where, first.reason, first.fix)
        self.problems = tuple(problems)
        # A line each; a fix they share (the usual "fix the file ...") once, at the end.
        shared = first.fix if all(p.fix == first.fix for p in problems) else None
        lines = [f"{len(problems)} problems:"]
        lines += [f"  {p.where}: {p.reason}" + ("" if shared else f"; {p.fix}") for p in problems]
        self.args = ("\n".join([*lines, f"  {shared}"] if shared else lines),)


def fix_for(exc: BaseException, *, deployed: bool, profile: str | None = None) -> str:
    """What the operator does about a permanent configuration error, locally or on a stack
    (locally, ``profile``: the one `agentbot dev --aws-profile` will use, when known)."""
    from agent_runtime import ClaudeConfigError, McpSecretMissingError, ModelBackendError

    if isinstance(exc, McpSecretMissingError) and exc.field:
        _, server, _, header = exc.field.split(".", 3)
        if deployed:
            return (
                f"create it: read -rs VALUE && aws ssm put-parameter --type SecureString "
                f'--name {exc.parameter} --value "$VALUE" (the whole header value, e.g. "Bearer …")'
            )
        named = profile or "P"
        return (
            f"export {mcp_secret_variable(server, header)}=<the header's value>; dev puts it into its SSM "
            f"(or, for agentbot dev --aws-profile {named}, create it in that profile's SSM: "
            f"read -rs VALUE && aws --profile {named} ssm put-parameter --type SecureString "
            f'--name {exc.parameter} --value "$VALUE"; check with agentbot doctor --profile {named})'
        )
    if isinstance(exc, ClaudeConfigError):
        if deployed:
            return "fix the file, then `sam build && sam deploy` (claude-config/ is baked into the image)"
        if exc.field is None and exc.reason.startswith("directory does not exist"):
            return "point CLAUDE_CONFIG_PATH at a claude-config directory (or unset it for the repository's)"
        return "fix the file and start `agentbot dev` again (claude-config/ is read once at start)"
    if isinstance(exc, ConfigError) and exc.setting.startswith("/"):
        return (
            f"create it: read -rs VALUE && aws ssm put-parameter --type SecureString "
            f'--name {exc.setting} --value "$VALUE"'
        )
    if isinstance(exc, ModelBackendError) and exc.setting == "AWS_REGION":
        return "export AWS_REGION=<a region where the model is enabled in the Bedrock console>"
    if isinstance(exc, ModelBackendError) and not deployed:  # dev signs with the developer's own
        return "give dev AWS credentials that may call Bedrock (AWS_PROFILE, or the AWS_ACCESS_KEY_ID pair)"
    if isinstance(exc, ModelBackendError):
        return "give the runtime credentials that may call Bedrock (AWS_PROFILE, or MODEL_INVOKE_ROLE_ARN)"
    if not deployed:  # dev sets the rest itself: this one came from the shell
        return "fix or unset it in your shell, then start `agentbot dev` again"
    return "set it (see infra/template.yaml for what each variable means)"


def describe(exc: BaseException, *, deployed: bool, profile: str | None = None) -> ConfigurationProblem:
    """A permanent configuration error as a ConfigurationProblem with its fix (a
    ConfigurationProblems when claude-config's check found several)."""
    from agent_runtime import ClaudeConfigError, config_problem

    each = exc.problems if isinstance(exc, ClaudeConfigError) else (exc,)
    found = [
        ConfigurationProblem(*config_problem(p), fix_for(p, deployed=deployed, profile=profile)) for p in each
    ]
    return found[0] if len(found) == 1 else ConfigurationProblems(found)


def check_runtime_environment(
    environ: Mapping[str, str],
    *,
    ssm: Any,
    session: Any,
    sts: Any = None,
    deployed: bool = False,
    agent_user: str | None = None,
) -> ClaudeConfig:
    """The runtime's start-up check on ``environ`` (the runtime function's environment), its
    programs looked up as ``agent_user`` when the local agent runs as another user;
    ConfigurationProblem for the first thing to fix (with every problem of claude-config)."""
    from agent_runtime import PERMANENT_CONFIG_ERRORS, check_runtime_configuration

    try:
        _settings, config = check_runtime_configuration(
            environ, ssm=ssm, session=session, sts=sts, programs=programs_for(agent_user)
        )
    except PERMANENT_CONFIG_ERRORS as exc:
        raise describe(exc, deployed=deployed) from None
    return config


def check_dev_claude_config(agent_user: str | None = None) -> ClaudeConfig:
    """`agentbot dev`'s first check: the claude-config files (``CLAUDE_CONFIG_PATH`` or the
    repository's) and their command servers' programs, looked up as ``agent_user``, before
    anything starts, so a broken file stops the start in a second instead of after AWS and the
    functions are up, and a missing program is named with the files' problems, not after they
    are fixed. ``check_dev_runtime`` checks it again with the runtime's own environment and SSM."""
    import os

    from agent_runtime import PERMANENT_CONFIG_ERRORS, load_claude_config

    try:
        return load_claude_config(
            os.environ.get("CLAUDE_CONFIG_PATH", "").strip() or None, programs=programs_for(agent_user)
        )
    except PERMANENT_CONFIG_ERRORS as exc:
        raise describe(exc, deployed=False) from None


def check_config_readable(user: str, root: Path) -> list[str]:
    """Open the directories above claude-config (``root``) and the interpreter for ``user``, the
    agent's, to pass (as `agentbot dev` does for its state directory); ConfigurationProblem for a
    part of the config ``user`` still cannot read, since every turn would fail on it. Returns the
    directories opened."""
    from local_stack import make_directory_reachable, make_interpreter_reachable, unreadable_for

    opened = sorted({*make_interpreter_reachable(), *make_directory_reachable(root)})
    blocked = unreadable_for(user, root)
    if blocked is None:
        return opened
    command = "chmod o+rx" if Path(blocked).is_dir() else "chmod o+r"
    passed = f" (opened for passing already: {', '.join(opened)})" if opened else ""
    raise ConfigurationProblem(
        blocked,
        f"the agent runs as {user!r} and cannot read it",
        f"let every user read it ({command} {blocked}){passed}",
    )


def programs_for(agent_user: str | None) -> ProgramLookup:
    """How the local runtime's programs are found: as ``agent_user`` (the runtime's user when
    `agentbot dev` runs as root, see local_stack.agent_user), else as this process."""
    from agent_runtime import ProgramLookup

    if agent_user is None:
        return ProgramLookup()  # shutil.which as this process
    from local_stack import make_interpreter_reachable, which_for

    make_interpreter_reachable()  # the lookup runs this interpreter as the user (dev opens it too)
    return ProgramLookup(which_for(agent_user), agent_user)


def check_dev_runtime(
    runtime_env: Mapping[str, str], *, ssm: Any, agent_user: str | None = None, aws_profile: str | None = None
) -> ClaudeConfig:
    """`agentbot dev`'s start-up check of the runtime it is about to start (as ``agent_user``;
    with ``aws_profile``, `--aws-profile`'s).

    The local stack gives every function a default region, so for Bedrock the region and the
    credentials checked are the user's own (environment or profile): those are what reach
    Bedrock, and a run that merely inherits the local default would fail at the first turn.
    With ``aws_profile`` they are that profile's, as dev gives them to the runtime.
    """
    import os

    import boto3

    environ = {**os.environ, **runtime_env}
    _seed_mcp_secrets(environ, ssm)
    session = boto3.Session(profile_name=aws_profile) if aws_profile else boto3.Session()
    if environ.get("CLAUDE_CODE_USE_BEDROCK") and not aws_profile:
        # runtime_env's region is the local stack's default unless the shell gave one
        environ["AWS_REGION"] = os.environ.get("AWS_REGION") or session.region_name or ""
        environ["AWS_DEFAULT_REGION"] = ""
    return check_runtime_environment(environ, ssm=ssm, session=session, agent_user=agent_user)


# What `agentbot dev` passes from the shell to its local functions (none is a secret), by
# function; both producer and consumer read the group settings (the consumer for what /help
# says); the runtime may be given another claude-config (the start-up check reads the same one).
# SESSION_TTL_DAYS is listed though dev sets nothing for it: the functions start with the
# shell's environment (local_stack), so one exported there reaches them and must be checked.
SHELL_SETTINGS: dict[str, tuple[str, ...]] = {
    "producer": (
        "SESSION_TTL_DAYS",
        "ALLOWED_USER_IDS",
        "ALLOWED_CHAT_IDS",
        "APPROVER_USER_IDS",
        "RATE_LIMIT_USER_PER_MINUTE",
        "RATE_LIMIT_CHAT_PER_MINUTE",
        "CHAT_QUEUE_LIMIT",
        "GROUP_REPLY_MODE",
    ),
    "consumer": (
        "SESSION_TTL_DAYS",
        "ALLOWED_USER_IDS",
        "ALLOWED_CHAT_IDS",
        "CHAT_QUEUE_LIMIT",
        "GROUP_REPLY_MODE",
        "MAX_TURN_COST_USD",
        *(
            f"BUDGET_{scope}_{period}_USD"
            for scope in ("CHAT", "USER", "DEPLOYMENT")
            for period in ("DAILY", "MONTHLY")
        ),
    ),
    "runtime": ("CLAUDE_CONFIG_PATH",),
}
# What `agentbot dev` gives each function itself once the local AWS is up: stand-ins, so the
# shell's settings are read by the same loaders before anything starts (`agentbot doctor`).
_DEV_FILLS_IN: dict[str, dict[str, str]] = {
    "producer": {
        "INBOUND_QUEUE_URL": "http://127.0.0.1/queue/inbound.fifo",
        "SESSIONS_TABLE": "agentbot-dev-sessions",
        "WEBHOOK_SECRET_PARAMETER": "/agentbot-dev/webhook",
    },
    "consumer": {
        "RUNTIME_FUNCTION_NAME": "agentbot-dev-runtime",
        "BOT_TOKEN_PARAMETER": "/agentbot-dev/bot",
        "SESSIONS_TABLE": "agentbot-dev-sessions",
        "SESSIONS_BUCKET": "agentbot-dev-sessions",
        "DEAD_LETTER_QUEUE_URL": "http://127.0.0.1/queue/dead-letters.fifo",
    },
}


def shell_settings(function: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The settings of ``function`` ("producer", "consumer" or "runtime") that `agentbot dev` takes from
    the shell (``environ``): those set and not empty."""
    return {name: environ[name] for name in SHELL_SETTINGS[function] if environ.get(name, "").strip()}


def check_webhook_secret_setting(environ: Mapping[str, str]) -> str | None:
    """TELEGRAM_WEBHOOK_SECRET as `agentbot dev` takes it (None when unset: dev makes one);
    ConfigurationProblem when Telegram would refuse it, or it is short enough to guess."""
    from telegram_producer import SECRET_RULE, WebhookSecretError, check_secret

    configured = environ.get("TELEGRAM_WEBHOOK_SECRET", "").strip()
    if not configured:
        return None
    try:
        return check_secret(configured)
    except WebhookSecretError:
        raise ConfigurationProblem(
            "TELEGRAM_WEBHOOK_SECRET",
            f"must be {SECRET_RULE} (a shorter one can be guessed)",
            "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
        ) from None


def check_dev_shell(environ: Mapping[str, str]) -> None:
    """Every setting `agentbot dev` takes from the shell (``environ``) for its producer,
    consumer and runtime, and its webhook secret, checked without starting anything (`agentbot doctor`);
    ConfigurationProblem(s) naming each bad setting, as `agentbot dev` would refuse to start."""
    found: list[ConfigurationProblem] = []
    try:
        check_webhook_secret_setting(environ)
    except ConfigurationProblem as exc:
        found.append(exc)
    functions = {name: {**fills, **shell_settings(name, environ)} for name, fills in _DEV_FILLS_IN.items()}
    # The runtime starts with the whole shell too (local_stack): its own limits, read by its
    # loader, less what dev sets for it (the tenant, the memory size, the model's URL: the demo
    # model's, or a key's, which the model check reads; with Bedrock the shell's goes as it is).
    from agent_runtime import uses_bedrock

    dev_sets = ("TENANT",) if uses_bedrock(environ) else ("ANTHROPIC_BASE_URL", "TENANT")
    runtime = {k: v for k, v in environ.items() if k not in dev_sets}
    runtime.pop("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", None)
    functions["runtime"] = {**runtime, **_RUNTIME_FILLS}
    try:
        check_shell_settings(functions)
    except ConfigurationProblem as exc:
        found.extend(exc.problems)
    if uses_bedrock(environ) and environ.get("MODEL_INVOKE_ROLE_ARN", "").strip():
        # Decided: dev assumes no role. Its runtime's STS is the local stack's, which gives no
        # credentials Bedrock accepts, and the developer's own are the ones doctor checks.
        found.append(
            ConfigurationProblem(
                "MODEL_INVOKE_ROLE_ARN",
                "is set, but agentbot dev signs Bedrock with your own credentials and assumes no role",
                "unset MODEL_INVOKE_ROLE_ARN in your shell (AWS_PROFILE picks the credentials)",
            )
        )
    if found:
        raise found[0] if len(found) == 1 else ConfigurationProblems(found)


_RUNTIME_FILLS = {
    "SESSIONS_TABLE": "agentbot-dev-sessions",
    "SESSIONS_BUCKET": "agentbot-dev-sessions",
    "ANTHROPIC_API_KEY_PARAMETER": "/agentbot-dev/anthropic-api-key",
}


def check_shell_settings(functions: Mapping[str, Mapping[str, str]]) -> None:
    """The producer's, consumer's and runtime's settings (``functions``: their names → the environment
    `agentbot dev` starts them with), read by their own loaders; a bad limit, budget or id list
    set in the shell would otherwise fail every message. Raises a ConfigurationProblem naming
    every bad setting (a ConfigurationProblems when several are)."""
    from agent_runtime import load_settings
    from sqs_consumer import ConsumerConfig
    from telegram_producer import ProducerConfig

    loaders = {
        "producer": ProducerConfig.from_env,
        "consumer": ConsumerConfig.from_env,
        "runtime": load_settings,
    }
    found: dict[str, ConfigurationProblem] = {}
    for name, environ in functions.items():
        remaining = dict(environ)
        while True:  # leave out each bad setting and read again, to find the next
            try:
                loaders[name](remaining)
                break
            except ConfigError as exc:
                fix = "fix or unset it in your shell, then start `agentbot dev` again"
                found.setdefault(exc.setting, ConfigurationProblem(exc.setting, exc.reason, fix))
                if remaining.pop(exc.setting, None) is None:
                    break  # not one a shell gives: nothing more to learn here
    problems = list(found.values())
    if problems:
        raise problems[0] if len(problems) == 1 else ConfigurationProblems(problems)


def mcp_secret_variable(server: str, header: str) -> str:
    """The variable `agentbot dev` takes an MCP server's secret header from, e.g.
    ``MCP_SECRET_GITHUB_AUTHORIZATION`` (its name keeps it out of every function's environment)."""
    return "MCP_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", f"{server}_{header}").upper()


def _seed_mcp_secrets(environ: Mapping[str, str], ssm: Any) -> None:
    """Put each MCP secret header given as ``MCP_SECRET_<SERVER>_<HEADER>`` into SSM under the
    name mcp.json gives it, where it does not exist yet (an existing parameter is never
    overwritten: with --aws-profile it may be the deployed bot's)."""
    from agent_runtime import ClaudeConfigError, load_claude_config
    from botocore.exceptions import ClientError

    try:
        config = load_claude_config(environ.get("CLAUDE_CONFIG_PATH", "").strip() or None, environ=environ)
    except ClaudeConfigError:
        return  # the check that follows names the problem
    for server, headers in config.mcp_secret_headers.items():
        for header, parameter in headers.items():
            value = environ.get(mcp_secret_variable(server, header), "")
            if not value:
                continue
            try:
                ssm.put_parameter(Name=parameter, Value=value, Type="SecureString", Overwrite=False)
            except ClientError as exc:
                if aws_error_code(exc) != "ParameterAlreadyExists":
                    raise
