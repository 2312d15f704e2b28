"""infra/template.yaml agrees with the code, with provisioning.py and with its own invariants.

The environment-variable check scans the Lambda packages' sources (not a hand-kept list),
so code that starts reading a new variable fails here until the template sets it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from typing import Any

import pytest
from agentbot_testing.template_support import (
    PACKAGES,
    ROOT,
    as_list,
    aws_calls,
    condition_holds,
    emitted_metrics,
    env_reads,
    env_reads_in_source,
    flatten_statements,
    functions,
    iam_actions,
    load_template,
    policy_statements,
    resource,
)
from local_stack import _provisioning as provisioning

TEMPLATE = load_template()
FUNCTIONS = functions(TEMPLATE)
SESSION_CORE_SRC = PACKAGES / "session-core" / "src"
README_TEXT = (ROOT / "README.md").read_text()

# Variables code may read that the template must NOT set, each with the reason.
NOT_FROM_TEMPLATE = {
    # Lambda sets these itself (reserved): https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html
    "AWS_REGION": "Lambda",
    "AWS_DEFAULT_REGION": "Lambda",
    "AWS_LAMBDA_FUNCTION_NAME": "Lambda (session-core logs JSON when it is set)",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "Lambda",
    "AWS_LAMBDA_FUNCTION_VERSION": "Lambda",
    "AWS_LAMBDA_LOG_GROUP_NAME": "Lambda",
    "AWS_LAMBDA_LOG_STREAM_NAME": "Lambda",
    "AWS_LAMBDA_RUNTIME_API": "Lambda",
    "AWS_LAMBDA_MAX_CONCURRENCY": "Lambda (multi-concurrency mode; the runtime then skips its re-exec)",
    "AWS_EXECUTION_ENV": "Lambda",
    "LAMBDA_TASK_ROOT": "Lambda (where the code or image's task files live)",
    "PATH": "Lambda",
    "TZ": "Lambda",
    # Set by the runtime image (packages/agent-runtime/Dockerfile ENV), where claude-config is copied.
    "CLAUDE_CONFIG_PATH": "the image's ENV; locally an override of the repository's claude-config",
    "ANTHROPIC_BEDROCK_BASE_URL": "local-only: tests point the CLI's Bedrock client at a local server",
    "ANTHROPIC_BEDROCK_REGION_PREFIX": "local-only: `agentbot dev` passes the shell's to the CLI",
    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "local-only: boto3's bedrock-runtime endpoint, which dev passes on",
    "CHAT_CHANNEL": "local-only: `agentbot dev` says `terminal` for its text-only terminal chat",
    "BEDROCK_CREDENTIALS_PARAMETER": "local-only: `agentbot dev`'s SSM parameter of your own AWS credentials",
    # Set by the runtime itself for the CLI of one turn (read back only to restore it).
    "CLAUDE_CONFIG_DIR": "runtime-internal, per session",
    # Set by the runtime for its CLI launcher (agent_runtime._cli_launcher), per turn.
    "AGENTBOT_CLI_PATH": "runtime-internal, per turn",
    "AGENTBOT_CLI_ENV_NAMES": "runtime-internal, per turn",
    "AGENTBOT_SANDBOX": "runtime-internal, per turn",
}
# Names that would mean a secret's value sits in an environment variable.
_SECRET_LIKE = re.compile(r"(TOKEN|SECRET|API_KEY|PASSWORD|PRIVATE_KEY)$")


def _ref(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def _getatt(value: Any) -> list[str] | None:
    return value.get("Fn::GetAtt") if isinstance(value, dict) else None


def _default(parameter: str) -> Any:
    return TEMPLATE["Parameters"][parameter]["Default"]


# ---------------------------------------------------------------- code <-> template


def test_every_handler_path_imports_with_the_template_environment() -> None:
    """Each handler imports in a fresh interpreter given only the variables the template sets."""
    for fn in FUNCTIONS.values():
        env = {name: "x" for name in fn.environment}
        env.update(
            PATH=os.environ.get("PATH", ""),
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            HOME=os.environ.get("HOME", "/tmp"),
        )
        module, attr = fn.handler.rsplit(".", 1)
        code = (
            "import importlib, sys\n"
            f"handler = getattr(importlib.import_module({module!r}), {attr!r}, None)\n"
            "sys.exit(0 if callable(handler) else 3)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, (
            f"{fn.logical_id}: handler {fn.handler} does not import "
            f"(exit {done.returncode}; 3 = not callable):\n{done.stderr[-3000:]}"
        )


def test_code_reads_no_environment_variable_the_template_does_not_set() -> None:
    core_reads = env_reads(SESSION_CORE_SRC)
    problems = []
    for fn in FUNCTIONS.values():
        reads = {**core_reads}
        for name, files in env_reads(fn.package_dir / "src").items():
            reads[name] = reads.get(name, set()) | files
        for name, files in sorted(reads.items()):
            if name not in fn.environment and name not in NOT_FROM_TEMPLATE:
                problems.append(f"{fn.logical_id} does not set {name} (read in {sorted(map(str, files))})")
    assert not problems, "\n".join(problems)


def test_claude_config_references_only_variables_the_runtime_has() -> None:
    """mcp.json expands ``${NAME}`` from the runtime's environment; one without a default
    must come from the template (``${PYTHON}`` is the runtime's own interpreter)."""
    runtime = FUNCTIONS["RuntimeFunction"].environment
    text = (ROOT / "claude-config" / "mcp.json").read_text()
    needed = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)) - {"PYTHON"}
    assert needed <= set(runtime), f"claude-config/mcp.json needs {sorted(needed - set(runtime))}"


def test_the_image_build_gives_a_value_to_exactly_what_the_deployed_runtime_is_given() -> None:
    """The build's claude-config check gives mcp.json's ``${NAME}`` of a variable the runtime
    gets at deploy a value of its deployed shape: every one the template or Lambda gives it, and
    nothing else (a name the runtime lacks would pass the build and fail every cold start)."""
    from agent_runtime.build_check import DEPLOYED_VARIABLES

    runtime = set(FUNCTIONS["RuntimeFunction"].environment)
    from_lambda = {name for name, why in NOT_FROM_TEMPLATE.items() if why.startswith("Lambda")}
    deployed = set(DEPLOYED_VARIABLES)
    assert runtime <= deployed, sorted(runtime - deployed)
    assert deployed - runtime <= from_lambda, sorted(deployed - runtime - from_lambda)


def _takes(value: Any, example: str) -> bool:
    """Whether the template's ``value`` of a variable may be ``example`` at deploy."""
    if isinstance(value, str):
        return value == example
    if "Fn::If" in value:
        return any(_takes(branch, example) for branch in value["Fn::If"][1:])
    parameter = TEMPLATE["Parameters"].get(_ref(value) or "")
    if parameter is None:  # a resource's name or attribute: never empty, its shape not checked here
        return example != ""
    if "AllowedValues" in parameter:
        return example in parameter["AllowedValues"]
    if "AllowedPattern" in parameter:
        return re.fullmatch(parameter["AllowedPattern"], example) is not None
    return True  # a free-form parameter (a model id) may be anything


def _may_be_empty(value: Any) -> bool:
    """Whether the template's ``value`` of a variable is empty in some deployed stack (a
    parameter left at its empty default, or a condition's empty branch)."""
    if isinstance(value, str):
        return value == ""
    if "Fn::If" in value:
        return any(_may_be_empty(branch) for branch in value["Fn::If"][1:])
    parameter = TEMPLATE["Parameters"].get(_ref(value) or "")
    return parameter is not None and parameter.get("Default") == ""


def test_the_image_build_checks_each_deployed_variable_with_a_value_the_template_gives_it() -> None:
    """The build checks mcp.json's urls with these values (a ``${TENANT}`` url fails, a port
    from a number passes), and warns where a stack may deploy the variable empty."""
    from agent_runtime.build_check import DEPLOYED_VARIABLES

    for name, value in FUNCTIONS["RuntimeFunction"].environment.items():
        variable = DEPLOYED_VARIABLES[name]
        assert _takes(value, variable.example), (name, value, variable.example)
        assert (variable.empty_when is not None) == _may_be_empty(value), name
        if _ref(value) in TEMPLATE["Parameters"]:  # the build names what to change at deploy
            assert variable.source == f"the stack's {_ref(value)} parameter", (name, variable.source)
            # and doctor names it for a stack that leaves the variable empty
            assert variable.parameter == _ref(value), (name, variable.parameter)


def test_every_variable_the_template_sets_is_read_by_some_code() -> None:
    """Catches a typo in the template (the code would silently use its default)."""
    read_anywhere: set[str] = set()
    for src in PACKAGES.glob("*/src"):
        read_anywhere |= set(env_reads(src))
    unread = {f"{fn.logical_id}.{name}" for fn in FUNCTIONS.values() for name in fn.environment} - {
        f"{fn.logical_id}.{name}" for fn in FUNCTIONS.values() for name in read_anywhere
    }
    assert not unread, f"set by the template but read by no code: {sorted(unread)}"


def test_the_scanner_sees_each_way_code_reads_a_variable() -> None:
    source = """
import os
from collections.abc import Mapping
from os import environ
from session_core import require_env, env_int
NAME = "FROM_CONSTANT"
env = os.environ
a = os.environ["SUBSCRIPT"]
b = os.environ.get("GET_CALL", "")
c = os.getenv("GETENV")
d = require_env("REQUIRED")
e = env_int("AN_INT", 3)
f = env.get("THROUGH_ALIAS")
g = environ.get(NAME)
h = "MEMBERSHIP" in os.environ
os.environ["ASSIGNED_NOT_READ"] = "1"
local = {}
local.get("NOT_ENVIRON")

def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return int(env.get(name, "") or default)

def load(environ=None):
    source = os.environ if environ is None else environ
    def opt(name):
        return source.get(name) or None
    def req(name):
        return opt(name) or fail(name)
    return opt("NESTED_HELPER"), req("HELPER_OF_HELPER"), _int(environ, "SECOND_ARG", 1)

def lookup(table, key):
    return table.get(key)
lookup({}, "PLAIN_DICT")
"""
    assert env_reads_in_source(source) == {
        "SUBSCRIPT", "GET_CALL", "GETENV", "REQUIRED", "AN_INT", "THROUGH_ALIAS", "FROM_CONSTANT",
        "MEMBERSHIP", "NESTED_HELPER", "HELPER_OF_HELPER", "SECOND_ARG",
    }  # fmt: skip


def test_secrets_are_ssm_parameter_names_never_values_in_environment_variables() -> None:
    for fn in FUNCTIONS.values():
        for name, value in fn.environment.items():
            assert not _SECRET_LIKE.search(name), f"{fn.logical_id}.{name} looks like a secret value"
            if name.endswith("_PARAMETER"):
                ref = _ref(value) or _ref(
                    (value.get("Fn::If") or [None, None])[1] if isinstance(value, dict) else None
                )
                assert ref and ref.endswith("ParameterName"), (
                    f"{fn.logical_id}.{name} must name an SSM parameter"
                )


def test_each_secret_parameter_a_function_names_is_readable_by_its_role_only() -> None:
    readable: dict[str, set[str]] = {}
    for fn in FUNCTIONS.values():
        role = resource(TEMPLATE, _getatt(fn.properties["Role"])[0])
        for statement in policy_statements(role):
            if "ssm:GetParameter" in as_list(statement["Action"]):
                for res in as_list(statement["Resource"]):
                    readable.setdefault(fn.logical_id, set()).update(
                        re.findall(r"\$\{(\w+)\}", res["Fn::Sub"])
                    )
    for fn in FUNCTIONS.values():
        named = set()
        for name, value in fn.environment.items():
            if name.endswith("_PARAMETER"):
                named.add(_ref(value) or value["Fn::If"][1]["Ref"])
        if fn.logical_id == "RuntimeFunction":
            # claude-config/mcp.json names these (headers_from_ssm), not the environment.
            named.add("McpSecretsParameterPath")
        granted = readable.get(fn.logical_id, set()) - {"AWS::Partition", "AWS::Region", "AWS::AccountId"}
        assert granted == named, f"{fn.logical_id}: may read {granted}, names {named}"


# ------------------------------------------------------------- timeouts and the queue


def test_timeouts_cannot_produce_a_second_run_of_a_turn() -> None:
    consumer, runtime = FUNCTIONS["ConsumerFunction"], FUNCTIONS["RuntimeFunction"]
    queue = resource(TEMPLATE, "InboundQueue")["Properties"]
    events = consumer.properties["Events"]["InboundMessages"]["Properties"]
    assert all(fn.properties["Timeout"] <= 900 for fn in FUNCTIONS.values()), "Lambda's maximum is 900 s"
    assert consumer.properties["Timeout"] > runtime.properties["Timeout"]
    # The consumer's timeout must cover every record of a batch, each a full turn at worst.
    assert events["BatchSize"] * runtime.properties["Timeout"] < consumer.properties["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * consumer.properties["Timeout"]
    assert (runtime.properties["Timeout"], consumer.properties["Timeout"]) == (840, 900)
    assert consumer.properties["Timeout"] == provisioning.CONSUMER_TIMEOUT_S


def test_the_runtime_limits_the_template_sets_are_ones_its_loader_takes() -> None:
    """LEASE_DURATION_S, MODEL_TIMEOUT_MS and MODEL_SILENCE_S are bounded by the longest turn
    and by each other: a template value past a bound would fail every cold start."""
    from agent_runtime import load_settings

    runtime = FUNCTIONS["RuntimeFunction"]
    limits = ("LEASE_DURATION_S", "MODEL_TIMEOUT_MS", "MODEL_SILENCE_S")
    set_here = {name: str(runtime.environment[name]) for name in limits}
    base = {"SESSIONS_TABLE": "t", "SESSIONS_BUCKET": "b", "ANTHROPIC_API_KEY_PARAMETER": "/k"}
    settings = load_settings({**base, **set_here})
    assert settings.lease_duration_s == float(set_here["LEASE_DURATION_S"])
    assert settings.model_timeout_ms == int(set_here["MODEL_TIMEOUT_MS"])


def test_consumer_reads_the_fifo_queue_with_partial_batch_responses() -> None:
    event = FUNCTIONS["ConsumerFunction"].properties["Events"]["InboundMessages"]
    assert event["Type"] == "SQS"
    assert _getatt(event["Properties"]["Queue"]) == ["InboundQueue", "Arn"]
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["Properties"]["BatchSize"] == 1


def test_producer_is_behind_the_http_api_with_payload_v2() -> None:
    event = FUNCTIONS["ProducerFunction"].properties["Events"]["TelegramWebhook"]
    assert event["Type"] == "HttpApi" and event["Properties"]["Method"] == "POST"
    assert event["Properties"]["PayloadFormatVersion"] == "2.0"
    assert resource(TEMPLATE, _ref(event["Properties"]["ApiId"]))["Type"] == "AWS::Serverless::HttpApi"
    assert "/webhook" in TEMPLATE["Outputs"]["WebhookUrl"]["Value"]["Fn::Sub"]


def test_dead_letters_raise_an_alarm_on_the_topic() -> None:
    alarm = resource(TEMPLATE, "DeadLetterQueueAlarm")["Properties"]
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["InboundDeadLetterQueue", "QueueName"]}
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert resource(TEMPLATE, "AlarmTopic")["Type"] == "AWS::SNS::Topic"


def test_the_deployment_reaching_80_percent_of_its_daily_budget_raises_an_alarm() -> None:
    """The alarm watches the metric the consumer emits (namespace, name, dimension)."""
    from session_core._metrics import NAMESPACE
    from sqs_consumer._budget import DEPLOYMENT_DAILY_SPEND_METRIC

    declared = resource(TEMPLATE, "DeploymentDailyBudgetAlarm")
    alarm = declared["Properties"]
    assert declared["Condition"] == "HasDeploymentDailyBudget"
    assert (alarm["Namespace"], alarm["MetricName"]) == (NAMESPACE, DEPLOYMENT_DAILY_SPEND_METRIC)
    assert alarm["Dimensions"] == [{"Name": "Tenant", "Value": {"Ref": "Tenant"}}]
    assert alarm["Threshold"] == 80 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    consumer = FUNCTIONS["ConsumerFunction"].environment
    assert consumer["BUDGET_DEPLOYMENT_DAILY_USD"] == {"Ref": "BudgetDeploymentDailyUsd"}


# Spellings the parameter's AllowedPattern lets through (plain decimals).
ZERO_AND_CAPS = ["0", "0.0", "0.00", "00", "000.000", "1", "0.5", "10", "0.01"]


@pytest.mark.parametrize("spelled", ZERO_AND_CAPS)
def test_the_daily_budget_alarm_exists_exactly_when_the_consumer_counts_a_daily_cap(spelled: str) -> None:
    """Every spelling of zero means no cap: no alarm on a metric the consumer never emits."""
    from sqs_consumer._config import budget_caps_from_env

    counted = budget_caps_from_env({"BUDGET_DEPLOYMENT_DAILY_USD": spelled}).deployment_daily_usd is not None
    alarmed = condition_holds(TEMPLATE, "HasDeploymentDailyBudget", {"BudgetDeploymentDailyUsd": spelled})
    assert alarmed == counted
    assert alarmed == (float(spelled) > 0)


# What an operator types into `sam deploy --guided`, as each parameter's pattern meets it.
PARAMETER_MISTAKES = {
    "BotUsername": (["@my_agent_bot", "my agent bot"], ["my_agent_bot"]),
    "AllowedUserIds": (["@alice", "123;456", "123 456"], ["", "123,456", "123, -456"]),
    "ApproverUserIds": (["@alice", "123;456"], ["", "123,456"]),
    "BotName": (["AgentBot", "agent_bot"], ["agentbot", "agent-bot-2"]),
    "McpSecretsParameterPath": (["/agentbot/mcp/", "agentbot/mcp"], ["/agentbot/mcp"]),
    "AnthropicBaseUrl": (
        ["gateway.example.com", "https://user:pw@gateway.example.com"],
        ["", "https://gw.example"],
    ),
    "AlarmEmail": (["ops at example.com", "a@b.com, c@d.com"], ["", "ops@example.com"]),
}


def test_every_patterned_parameter_says_in_words_what_the_deploy_refused() -> None:
    """Without a ConstraintDescription the deploy answers a mistake with the regular
    expression ("must match pattern ^ *(-?[0-9]+ *)?(, *..."): `@alice` in AllowedUserIds or
    `@my_bot` as BotUsername was refused without saying that ids are numbers and the @ goes."""
    parameters = TEMPLATE["Parameters"]
    unexplained = [
        n for n, p in parameters.items() if "AllowedPattern" in p and "ConstraintDescription" not in p
    ]
    assert unexplained == []
    for name, (refused, accepted) in PARAMETER_MISTAKES.items():
        pattern = parameters[name]["AllowedPattern"]
        assert [v for v in refused if re.fullmatch(pattern, v)] == [], name
        assert [v for v in accepted if not re.fullmatch(pattern, v)] == [], name
    assert "without the @" in parameters["BotUsername"]["ConstraintDescription"]
    assert "not @usernames" in parameters["AllowedUserIds"]["ConstraintDescription"]


def _usd_settings() -> dict[str, str]:
    """Variables the consumer reads as USD caps (its _usd(), float()), by the parameter they
    come from."""
    source = (PACKAGES / "sqs-consumer/src/sqs_consumer/_config.py").read_text()
    names = set(re.findall(r"_usd\(env, \"([A-Z0-9_]+)\"\)", source))
    consumer = FUNCTIONS["ConsumerFunction"].environment
    return {name: str(_ref(consumer[name])) for name in sorted(names)}


USD_ACCEPTED = ["0", "0.0", "00", "000.000", "5", "0.50", "0.005", "999999999.999999"]
USD_REFUSED = ["", " 5", "-0", "-1", "0e0", "1e2", ".5", "5.", "1,5", "1000000000", "nan", "inf", "0x10"]


def test_a_usd_cap_the_template_accepts_is_read_by_the_consumer_as_written() -> None:
    """CloudFormation's Number type takes "-0", "0e0" and "1e2": the consumer's float() reads
    "-0" and "0e0" as no cap while HasDeploymentDailyBudget would see a cap and create the
    alarm. Each USD cap is a String taking plain decimals only, each read as that amount (or as
    no cap when zero), and the deploy refuses the rest naming the parameter."""
    import msgspec
    from sqs_consumer._config import budget_caps_from_env

    settings = _usd_settings()
    assert {"BUDGET_DEPLOYMENT_DAILY_USD", "MAX_TURN_COST_USD"} <= set(settings), settings
    for name, parameter in settings.items():
        declared = TEMPLATE["Parameters"][parameter]
        assert declared["Type"] == "String" and declared["Default"] == "0", parameter
        assert parameter in declared["ConstraintDescription"], parameter
        pattern = declared["AllowedPattern"]
        assert [v for v in USD_REFUSED if re.fullmatch(pattern, v)] == [], parameter
        for value in USD_ACCEPTED:
            assert re.fullmatch(pattern, value), (parameter, value)
            caps = budget_caps_from_env({name: value})  # raises ConfigError on a value it refuses
            read = [v for v in msgspec.structs.asdict(caps).values() if v is not None]
            assert read == ([float(value)] if float(value) else []), (parameter, value)
    for value in USD_ACCEPTED:
        alarmed = condition_holds(TEMPLATE, "HasDeploymentDailyBudget", {"BudgetDeploymentDailyUsd": value})
        assert alarmed == (float(value) > 0), value


def test_a_permanent_configuration_error_raises_an_alarm() -> None:
    """The alarm watches the metric the runtime emits when it finds a configuration error."""
    from agent_runtime._config_report import CONFIG_ERROR_METRIC
    from session_core._metrics import NAMESPACE

    alarm = resource(TEMPLATE, "ConfigurationErrorAlarm")["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (NAMESPACE, CONFIG_ERROR_METRIC)
    assert alarm["Dimensions"] == [{"Name": "Tenant", "Value": {"Ref": "Tenant"}}]
    assert alarm["Statistic"] == "Sum" and alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert FUNCTIONS["RuntimeFunction"].environment["TENANT"] == {"Ref": "Tenant"}


def test_updates_the_webhook_fails_to_take_raise_an_alarm() -> None:
    """A 5xx makes Telegram retry an update for up to a day and then drop it: the operator
    hears of it while the updates can still arrive, not from users."""
    alarm = resource(TEMPLATE, "WebhookErrorsAlarm")["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "5xx")
    assert alarm["Dimensions"] == [
        {"Name": "ApiId", "Value": {"Ref": "WebhookApi"}},
        {"Name": "Stage", "Value": "$default"},
    ]
    assert resource(TEMPLATE, "WebhookApi")["Type"] == "AWS::Serverless::HttpApi"
    assert "StageName" not in resource(TEMPLATE, "WebhookApi")["Properties"]  # so "$default"
    assert alarm["Statistic"] == "Sum" and alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_messages_dropped_by_the_rate_limits_raise_an_alarm() -> None:
    """The producer counts every message its rate limits or a full chat backlog drop; a flood
    (or limits too low for the bot's use) reaches the operator, not only the senders."""
    from session_core._metrics import NAMESPACE
    from telegram_producer import RATE_LIMITED_METRIC

    alarm = resource(TEMPLATE, "RateLimitedMessagesAlarm")["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (NAMESPACE, RATE_LIMITED_METRIC)
    assert alarm["Dimensions"] == [{"Name": "Tenant", "Value": {"Ref": "Tenant"}}]
    assert alarm["Statistic"] == "Sum" and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert FUNCTIONS["ProducerFunction"].environment["TENANT"] == {"Ref": "Tenant"}


EMITTED = emitted_metrics(sorted(PACKAGES.glob("*/src")))


def _alarms() -> dict[str, dict[str, Any]]:
    return {
        logical_id: declared["Properties"]
        for logical_id, declared in TEMPLATE["Resources"].items()
        if declared["Type"] == "AWS::CloudWatch::Alarm"
    }


def test_every_alarm_on_an_agentbot_metric_watches_one_the_code_emits() -> None:
    """A misspelt metric name deploys fine and the alarm waits for ever on a metric nobody writes."""
    from session_core._metrics import NAMESPACE

    watched = {alarm["MetricName"] for alarm in _alarms().values() if alarm["Namespace"] == NAMESPACE}
    assert watched and watched <= set(EMITTED), sorted(watched - set(EMITTED))


def _dashboard(*, daily_budget: bool) -> dict[str, Any]:
    """The dashboard's body as CloudFormation renders it, each ``${Name}`` as ``<Name>``."""
    body, variables = resource(TEMPLATE, "Dashboard")["Properties"]["DashboardBody"]["Fn::Sub"]
    for name, value in variables.items():
        condition, when_true, when_false = value["Fn::If"]
        assert condition == "HasDeploymentDailyBudget", name
        chosen = when_true if daily_budget else when_false
        body = body.replace(f"${{{name}}}", chosen["Fn::Sub"] if isinstance(chosen, dict) else chosen)
    return json.loads(re.sub(r"\$\{([^}]+)\}", r"<\1>", body))


def _dashboard_metrics(dashboard: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, metric, dimensions) of each line of the dashboard's graphs."""
    found = []
    for widget in dashboard["widgets"]:
        for line in widget["properties"].get("metrics", []):
            namespace, metric, *rest = [part for part in line if not isinstance(part, dict)]
            assert "." not in (namespace, metric), "write each line out in full"
            found.append((namespace, metric, dict(zip(rest[::2], rest[1::2], strict=True))))
    return found


def test_the_dashboard_graphs_exactly_the_metrics_the_code_emits() -> None:
    """Each Agentbot metric the code emits has a graph, and no graph waits on a metric that
    nothing writes (a renamed constant would leave an empty graph the operator trusts)."""
    from session_core._metrics import NAMESPACE

    lines = _dashboard_metrics(_dashboard(daily_budget=True))
    graphed = {metric for namespace, metric, _ in lines if namespace == NAMESPACE}
    assert graphed == set(EMITTED), (sorted(graphed - set(EMITTED)), sorted(set(EMITTED) - graphed))
    assert {dims["Tenant"] for namespace, _, dims in lines if namespace == NAMESPACE} == {"<Tenant>"}


def test_the_dashboard_shows_every_alarm_and_graphs_its_metric() -> None:
    alarms = _alarms()
    budget = "HasDeploymentDailyBudget"
    conditional = {n for n in alarms if TEMPLATE["Resources"][n].get("Condition") == budget}
    for daily_budget in (True, False):
        dashboard = _dashboard(daily_budget=daily_budget)
        (panel,) = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
        shown = {arn.removeprefix("<").removesuffix(".Arn>") for arn in panel["properties"]["alarms"]}
        assert shown == (set(alarms) if daily_budget else set(alarms) - conditional), daily_budget
    lines = _dashboard_metrics(_dashboard(daily_budget=True))
    graphed = {(namespace, metric) for namespace, metric, _ in lines}
    for logical_id, alarm in alarms.items():
        assert (alarm["Namespace"], alarm["MetricName"]) in graphed, logical_id


def test_the_dashboard_graphs_what_an_operator_checks_of_this_stacks_resources() -> None:
    """Turns, errors, latency, the queues' depth and age, the webhook, spend and drops, each
    measured on a resource of this stack (a name typed by hand would graph another stack's)."""
    lines = _dashboard_metrics(_dashboard(daily_budget=True))
    shown = {(namespace, metric) for namespace, metric, _ in lines}
    assert {
        ("AWS/Lambda", "Invocations"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Duration"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        ("AWS/ApiGateway", "5xx"),
    } <= shown
    stack_values = {
        "FunctionName": {f"<{name}>" for name in FUNCTIONS},
        "QueueName": {"<InboundQueue.QueueName>", "<InboundDeadLetterQueue.QueueName>"},
        "ApiId": {"<WebhookApi>"},
        "Stage": {"$default"},
        "Tenant": {"<Tenant>"},
    }
    for namespace, metric, dimensions in lines:
        for name, value in dimensions.items():
            assert value in stack_values[name], (namespace, metric, name, value)
    errors = {dims["FunctionName"] for _, metric, dims in lines if metric == "Errors"}
    assert errors == {f"<{name}>" for name in FUNCTIONS}


def test_the_readme_lists_every_alarm_with_what_to_do() -> None:
    """Section 5's table: one row per alarm of the template (by the name the mail carries)."""
    names = {alarm["AlarmName"]["Fn::Sub"].removeprefix("${BotName}") for alarm in _alarms().values()}
    section = README_TEXT[README_TEXT.index("### 5. Logs") : README_TEXT.index("### What it costs")]
    rows = set(re.findall(r"^\| `<BotName>(-[a-z0-9-]+)` \|", section, re.M))
    assert rows == names, (sorted(names - rows), sorted(rows - names))


def test_the_readme_names_every_alarm_it_prices_and_every_metric_the_dashboard_graphs() -> None:
    """The fixed costs list each alarm ($0.10 a month) and the dashboard's paragraph each Agentbot
    metric it graphs: a new alarm or graph (model-silent, ModelSilent) went unmentioned there."""
    from session_core._metrics import NAMESPACE

    costs = README_TEXT[README_TEXT.index("Fixed monthly costs") :]
    priced = set(re.findall(r"`<BotName>(-[a-z0-9-]+)`", costs[: costs.index(")")]))
    names = {alarm["AlarmName"]["Fn::Sub"].removeprefix("${BotName}") for alarm in _alarms().values()}
    assert priced == names, (sorted(names - priced), sorted(priced - names))
    dashboard = README_TEXT[README_TEXT.index("**Dashboard**") :].split("\n\n", 1)[0]
    lines = _dashboard_metrics(_dashboard(daily_budget=True))
    graphed = {metric for namespace, metric, _ in lines if namespace == NAMESPACE}
    unnamed = sorted(metric for metric in graphed if f"`{metric}`" not in dashboard)
    assert unnamed == [], unnamed


# ------------------------------------------------------- template <-> provisioning.py


def test_provisioning_creates_the_queues_the_template_declares(aws: Any) -> None:
    queue = resource(TEMPLATE, "InboundQueue")["Properties"]
    dlq = resource(TEMPLATE, "InboundDeadLetterQueue")["Properties"]
    created = aws.sqs.get_queue_attributes(QueueUrl=aws.resources.queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    created_dlq = aws.sqs.get_queue_attributes(QueueUrl=aws.resources.dlq_url, AttributeNames=["All"])[
        "Attributes"
    ]

    for props, attrs in ((queue, created), (dlq, created_dlq)):
        assert props["FifoQueue"] is True and attrs["FifoQueue"] == "true"
        assert props["ContentBasedDeduplication"] is False and attrs["ContentBasedDeduplication"] == "false"
        assert str(props["MessageRetentionPeriod"]) == attrs["MessageRetentionPeriod"]
    assert str(queue["VisibilityTimeout"]) == created["VisibilityTimeout"]
    redrive = json.loads(created["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == aws.resources.dlq_arn
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["InboundDeadLetterQueue", "Arn"]}
    # AWS's guidance for an SQS event source: at least 5, so receives a throttled invocation
    # used up (the consumer never saw them) do not dead-letter a message early.
    assert int(redrive["maxReceiveCount"]) == queue["RedrivePolicy"]["maxReceiveCount"] == 5


def test_provisioning_creates_the_table_the_template_declares(aws: Any) -> None:
    table = resource(TEMPLATE, "SessionsTable")["Properties"]
    created = aws.dynamodb.describe_table(TableName=aws.resources.table)["Table"]
    ttl = aws.dynamodb.describe_time_to_live(TableName=aws.resources.table)["TimeToLiveDescription"]

    assert sorted(map(tuple, (d.values() for d in created["KeySchema"]))) == sorted(
        map(tuple, (d.values() for d in table["KeySchema"]))
    )
    assert sorted(map(tuple, (d.values() for d in created["AttributeDefinitions"]))) == sorted(
        map(tuple, (d.values() for d in table["AttributeDefinitions"]))
    )
    assert created["BillingModeSummary"]["BillingMode"] == table["BillingMode"] == "PAY_PER_REQUEST"
    assert ttl["AttributeName"] == table["TimeToLiveSpecification"]["AttributeName"] == "expires_at"
    assert ttl["TimeToLiveStatus"] in {"ENABLED", "ENABLING"} and table["TimeToLiveSpecification"]["Enabled"]
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_provisioning_creates_the_bucket_lifecycle_the_template_declares(aws: Any) -> None:
    rule = resource(TEMPLATE, "SessionsBucket")["Properties"]["LifecycleConfiguration"]["Rules"][0]
    created = aws.s3.get_bucket_lifecycle_configuration(Bucket=aws.resources.bucket)["Rules"][0]
    assert created["ID"] == rule["Id"]
    assert created["Expiration"]["Days"] == _default(_ref(rule["ExpirationInDays"]))
    assert created["AbortIncompleteMultipartUpload"] == rule["AbortIncompleteMultipartUpload"]
    assert int(_default("SessionTtlDays")) == provisioning.DEFAULT_RETENTION_DAYS
    assert (
        _default("SessionObjectExpiryDays")
        >= int(_default("SessionTtlDays")) + provisioning.S3_EXPIRY_MARGIN_DAYS
    )


def test_resource_names_follow_provisioning_names() -> None:
    names = provisioning.ResourceNames(prefix=_default("BotName"))

    def named(logical_id: str, prop: str) -> str:
        return resource(TEMPLATE, logical_id)["Properties"][prop]["Fn::Sub"].replace(
            "${BotName}", names.prefix
        )

    assert named("SessionsTable", "TableName") == names.table
    assert named("InboundQueue", "QueueName") == names.queue
    assert named("InboundDeadLetterQueue", "QueueName") == names.dlq
    # Bucket names are global: the template appends account and region to the same stem.
    assert named("SessionsBucket", "BucketName").startswith(names.bucket + "-")


def test_provisioning_constants_match_the_template() -> None:
    queue = resource(TEMPLATE, "InboundQueue")["Properties"]
    dlq = resource(TEMPLATE, "InboundDeadLetterQueue")["Properties"]
    table = resource(TEMPLATE, "SessionsTable")["Properties"]
    assert queue["VisibilityTimeout"] == provisioning.QUEUE_VISIBILITY_TIMEOUT_S
    assert queue["MessageRetentionPeriod"] == provisioning.QUEUE_RETENTION_S
    assert dlq["MessageRetentionPeriod"] == provisioning.DLQ_RETENTION_S
    assert queue["RedrivePolicy"]["maxReceiveCount"] == provisioning.MAX_RECEIVE_COUNT
    assert [k["AttributeName"] for k in table["KeySchema"]] == [
        provisioning.TABLE_HASH_KEY,
        provisioning.TABLE_RANGE_KEY,
    ]
    assert table["TimeToLiveSpecification"]["AttributeName"] == provisioning.TTL_ATTRIBUTE


# --------------------------------------------------------------------- the resources


def test_the_runtime_runs_locally_and_is_checked_with_the_memory_it_is_deployed_with() -> None:
    """The local stack's functions, the test stack and the build's check of claude-config all
    give the runtime RuntimeMemoryMb's default (`agentbot dev`'s: tests/test_dev.py): a history
    or a file that fits locally fits the deployed function, and one refused there is refused
    here too."""
    import inspect

    from agent_runtime import DEPLOYED_VARIABLES
    from agentbot_testing.telegram_stack import real_runtime_stack
    from local_stack import FunctionSpec
    from session_core import DEFAULT_RUNTIME_MEMORY_MB

    deployed = _default("RuntimeMemoryMb")
    assert deployed == DEFAULT_RUNTIME_MEMORY_MB
    assert FunctionSpec(handler="agent_runtime.handler.handle").memory_mb == deployed
    assert inspect.signature(real_runtime_stack).parameters["runtime_memory_mb"].default == deployed
    assert DEPLOYED_VARIABLES["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"].example == str(deployed)


def test_runtime_is_an_arm64_image_sized_by_the_benchmark() -> None:
    runtime = FUNCTIONS["RuntimeFunction"]
    assert runtime.properties["PackageType"] == "Image"
    assert TEMPLATE["Globals"]["Function"]["Architectures"] == ["arm64"]
    assert "Architectures" not in runtime.properties
    # Sized by the benchmark: 2048 MB by default (the biggest file a user can send peaks at
    # ~1 GiB), down to 1024 for chats without large files or long histories (never less).
    assert runtime.properties["MemorySize"] == {"Ref": "RuntimeMemoryMb"}
    memory = TEMPLATE["Parameters"]["RuntimeMemoryMb"]
    assert (memory["Default"], memory["MinValue"], memory["MaxValue"]) == (2048, 1024, 10240)
    storage = runtime.properties["EphemeralStorage"]["Size"]
    assert 1024 <= storage <= 10240
    # /tmp holds the turn's session (capped) and warm copies of others: room for at least 3.
    assert storage >= 3 * int(runtime.environment["SESSION_DISK_LIMIT_MB"])
    dockerfile = (
        ROOT / "infra" / runtime.metadata["DockerContext"] / runtime.metadata["Dockerfile"]
    ).resolve()
    assert dockerfile.is_file(), f"{dockerfile} (the runtime image's Dockerfile) is missing"
    text = dockerfile.read_text()
    cmd = re.search(r"^CMD\s+(\[.*\])\s*$", text, re.M)
    assert cmd and json.loads(cmd.group(1)) == runtime.properties["ImageConfig"]["Command"]
    assert re.search(r"^FROM\s+--platform=linux/arm64\s", text, re.M), "the image must be built for arm64"
    # The template leaves CLAUDE_CONFIG_PATH to the image, which knows where claude-config is.
    assert re.search(r"^ENV\s+CLAUDE_CONFIG_PATH=", text, re.M)


def test_zip_functions_build_from_their_workspace_package_with_the_makefile() -> None:
    makefile = (ROOT / "infra" / "Makefile").read_text()
    for fn in FUNCTIONS.values():
        if fn.properties.get("PackageType") == "Image":
            continue
        assert fn.metadata == {"BuildMethod": "makefile", "ContextPath": "."}
        assert (ROOT / "infra" / fn.properties["CodeUri"]).resolve() == fn.package_dir
        package = tomllib.loads((fn.package_dir / "pyproject.toml").read_text())["project"]["name"]
        assert re.search(
            rf"^build-{fn.logical_id}:\n\t\$\(call build_zip_package,{package}\)$", makefile, re.M
        )
        assert fn.properties["Runtime"] == "python3.12"


def test_table_and_bucket_are_protected() -> None:
    table = resource(TEMPLATE, "SessionsTable")
    bucket = resource(TEMPLATE, "SessionsBucket")
    for stateful in (table, bucket):
        # Kept when the stack is deleted or the resource replaced; but a first deploy that rolls
        # back deletes them: retained there, their fixed names (BotName-sessions…) would make
        # every retry fail with "already exists" until the operator deleted them by hand.
        assert stateful["DeletionPolicy"] == "RetainExceptOnCreate"
        assert stateful["UpdateReplacePolicy"] == "Retain"
    props = bucket["Properties"]
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert (
        all(props["PublicAccessBlockConfiguration"].values())
        and len(props["PublicAccessBlockConfiguration"]) == 4
    )
    (deny,) = resource(TEMPLATE, "SessionsBucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {"Fn::GetAtt": ["SessionsBucket", "Arn"]} in deny["Resource"]


def test_every_function_logs_to_its_own_group_with_retention() -> None:
    groups = set()
    for fn in FUNCTIONS.values():
        group = _ref(fn.properties["LoggingConfig"]["LogGroup"])
        assert resource(TEMPLATE, group)["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        groups.add(group)
    assert len(groups) == len(FUNCTIONS)


# ---------------------------------------------------------------------------- IAM

# Actions a role holds that no code calls: Lambda's own use of the role.
GRANTED_FOR_LAMBDA = {
    "logs:CreateLogStream": "Lambda writes the function's logs",
    "logs:PutLogEvents": "Lambda writes the function's logs",
    "kms:Decrypt": "SSM decrypts SecureStrings under a customer key (only when SecretsKmsKeyArn is set)",
}
GRANTED_FOR_EVENT_SOURCE = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}


def _role_actions(role_id: str) -> set[str]:
    actions = {a for s in policy_statements(resource(TEMPLATE, role_id)) for a in as_list(s["Action"])}
    for other in TEMPLATE["Resources"].values():  # separate AWS::IAM::RolePolicy resources
        if other["Type"] == "AWS::IAM::RolePolicy" and _ref(other["Properties"]["RoleName"]) == role_id:
            for statement in flatten_statements(other["Properties"]["PolicyDocument"]["Statement"]):
                actions.update(as_list(statement["Action"]))
    return actions


def test_each_role_allows_exactly_the_aws_calls_its_code_makes() -> None:
    """The calls are found in the function's package and the session-core modules it imports
    (so a new boto3 call fails here until the template grants it), and nothing more is granted."""
    problems = []
    for fn in FUNCTIONS.values():
        role_id = _getatt(fn.properties["Role"])[0]
        calls = aws_calls(fn.package_dir / "src")
        needed = {action for call, where in calls.items() for action in iam_actions(*call, where)}
        granted = _role_actions(role_id)
        for call, where in sorted(calls.items()):
            missing = iam_actions(*call, where) - granted
            if missing:
                problems.append(f"{role_id} lacks {sorted(missing)} for {call} in {sorted(where)}")
        allowed_extra = set(GRANTED_FOR_LAMBDA)
        if "Events" in fn.properties and any(e["Type"] == "SQS" for e in fn.properties["Events"].values()):
            allowed_extra |= GRANTED_FOR_EVENT_SOURCE
        unused = granted - needed - allowed_extra
        if unused:
            problems.append(f"{role_id} grants {sorted(unused)} that no code of {fn.logical_id} uses")
    assert not problems, "\n".join(problems)


def test_s3_grants_cover_exactly_the_prefixes_the_code_writes() -> None:
    import fnmatch

    from session_core import SESSIONS_PREFIX, SessionKey, outbox_key
    from session_core._transcript_format import S3_PREFIX as TRANSCRIPTS_PREFIX
    from sqs_consumer import attachment_key

    def object_prefixes(role_id: str, action: str | None = None) -> set[str]:
        found = set()
        for statement in policy_statements(resource(TEMPLATE, role_id)):
            actions = as_list(statement["Action"])
            if any(a.startswith("s3:") and a != "s3:ListBucket" and action in (None, a) for a in actions):
                for res in as_list(statement["Resource"]):
                    found.add(res["Fn::Sub"].removeprefix("${SessionsBucket.Arn}/").removesuffix("*"))
        return found

    # The consumer stages attachments under the session's prefix, and reads back only the
    # files the agent sends (the session's outbox); the runtime reads the attachments, writes
    # the outbox and keeps transcript snapshots under their own prefix.
    assert object_prefixes("ConsumerRole", "s3:PutObject") == {SESSIONS_PREFIX}
    # and, where voice messages are transcribed, the staged ones and their transcripts
    [voices, outbox, transcripts] = sorted(object_prefixes("ConsumerRole", "s3:GetObject"))
    voice_key = attachment_key(SessionKey(tenant="default", chat_id=1), 4, "voice-4.ogg")
    assert fnmatch.fnmatchcase(voice_key, voices + "*") and voices.endswith("/attachments/")
    kept = f"{SessionKey(tenant='default', chat_id=1).s3_prefix}voice/AgAD.auto.transcript.json"  # by file
    assert fnmatch.fnmatchcase(kept, transcripts + "*") and transcripts.endswith("/voice/")
    key = SessionKey(tenant="default", chat_id=-1001, thread_id=7)
    assert fnmatch.fnmatchcase(outbox_key(key, 42, "chart.png"), outbox + "*")
    assert not fnmatch.fnmatchcase(attachment_key(key, 42, "photo.jpg"), outbox + "*")
    assert not fnmatch.fnmatchcase(f"{TRANSCRIPTS_PREFIX}x", outbox + "*")
    assert object_prefixes("RuntimeRole") == {SESSIONS_PREFIX, TRANSCRIPTS_PREFIX}


def _roles() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in TEMPLATE["Resources"].items() if v["Type"] == "AWS::IAM::Role"}


def test_each_function_has_its_own_role_and_no_policies_added_by_sam() -> None:
    roles = [_getatt(fn.properties["Role"])[0] for fn in FUNCTIONS.values()]
    assert sorted(roles) == ["ConsumerRole", "ProducerRole", "RuntimeRole"]
    for fn in FUNCTIONS.values():
        assert "Policies" not in fn.properties, f"{fn.logical_id}: SAM policy templates widen the role"
    for name, role in _roles().items():
        assert "ManagedPolicyArns" not in role["Properties"], f"{name}: managed policies grant on '*'"


# Actions granted on Resource "*": the consumer names each voice message's batch job itself, and
# a statement naming job ARNs would deny them all if the action takes no resource type.
RESOURCE_STAR_ACTIONS = {
    "transcribe:StartTranscriptionJob",
    "transcribe:GetTranscriptionJob",
    "transcribe:DeleteTranscriptionJob",
}


def test_no_statement_allows_every_resource() -> None:
    """No Allow on Resource "*" but for RESOURCE_STAR_ACTIONS: nothing else in this stack needs
    it (AWS requires "*" only for actions such as xray:PutTraceSegments, which it does not use)."""
    statements = [s for role in _roles().values() for s in policy_statements(role)]
    assume = resource(TEMPLATE, "RuntimeAssumeModelInvokeRolePolicy")["Properties"]["PolicyDocument"]
    statements += list(flatten_statements(assume["Statement"]))
    for statement in statements:
        for res in as_list(statement["Resource"]):
            if res == "*":
                assert set(as_list(statement["Action"])) <= RESOURCE_STAR_ACTIONS, statement.get("Sid")
            if isinstance(res, dict) and "Fn::Sub" in res:
                # Wildcards only under a named prefix or model family: never a whole bucket or service.
                assert not re.search(r"(:\*|Arn}/\*)$", res["Fn::Sub"]), res


def test_the_agents_model_role_can_only_invoke_anthropic_models_and_only_the_runtime_assumes_it() -> None:
    role = resource(TEMPLATE, "ModelInvokeRole")
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": {"Fn::GetAtt": ["RuntimeRole", "Arn"]}}
    for statement in policy_statements(role):
        assert statement["Effect"] == "Allow"
        assert all("anthropic." in r["Fn::Sub"] for r in as_list(statement["Resource"]))
    assume = resource(TEMPLATE, "RuntimeAssumeModelInvokeRolePolicy")["Properties"]
    assert _ref(assume["RoleName"]) == "RuntimeRole"
    (statement,) = assume["PolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRole" and _getatt(statement["Resource"]) == [
        "ModelInvokeRole",
        "Arn",
    ]
    runtime_env = FUNCTIONS["RuntimeFunction"].environment
    assert runtime_env["MODEL_INVOKE_ROLE_ARN"]["Fn::If"][1] == {"Fn::GetAtt": ["ModelInvokeRole", "Arn"]}


# ------------------------------------------------------------------ example configs


def test_samconfig_example_points_at_the_template_and_names_real_parameters() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml.example").read_text())
    assert (
        ROOT / config["default"]["build"]["parameters"]["template_file"]
    ).resolve() == ROOT / "infra" / "template.yaml"
    overrides = config["default"]["deploy"]["parameters"]["parameter_overrides"]
    for name in re.findall(r"(\w+)=", overrides):
        assert name in TEMPLATE["Parameters"], f"samconfig.toml.example overrides unknown parameter {name}"
    assert "CAPABILITY_IAM" in config["default"]["deploy"]["parameters"]["capabilities"]


def test_env_example_holds_no_value_that_looks_real() -> None:
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name.strip()), line
            if _SECRET_LIKE.search(name.strip()):
                assert value.strip() in {"", '""'}, f"{name} must be empty in .env.example"


@pytest.mark.parametrize("parameter", ["AllowedUserIds", "AllowedChatIds", "ApproverUserIds"])
def test_an_id_list_the_template_accepts_is_one_the_producer_reads(parameter: str) -> None:
    """A value the deploy lets through must not make the producer refuse every update."""
    from session_core import ConfigError
    from telegram_producer._config import parse_id_list

    pattern = TEMPLATE["Parameters"][parameter]["AllowedPattern"]
    good = ["", "42", "42,7", "42, 7", " 42 , 7 ", "42,", "-1001234567890,42"]
    bad = ["42 7", "42;7", "4-2", "--42", "1_000", "42,x", "-"]
    for value in good + bad:
        if re.fullmatch(pattern, value):
            parse_id_list(parameter, value)  # raises ConfigError if the template lets too much in
    for value in bad:
        with pytest.raises(ConfigError):
            parse_id_list(parameter, value)
        assert not re.fullmatch(pattern, value), (parameter, value)
    chats = parameter != "ApproverUserIds"  # only chat ids are negative
    assert all(re.fullmatch(pattern, value) for value in good if chats or "-" not in value), parameter


def test_the_voice_transcription_parameter_takes_exactly_the_languages_transcribe_knows() -> None:
    """A code Transcribe does not know ("en-UK") is refused at deploy time, not by every voice
    message; the list is the installed botocore's, as the functions check it."""
    from session_core._voice_settings import transcribe_language_codes

    allowed = TEMPLATE["Parameters"]["VoiceTranscription"]["AllowedValues"]
    assert allowed[:2] == ["off", "auto"]
    assert sorted(allowed[2:]) == sorted(transcribe_language_codes()) and len(allowed) == len(set(allowed))


def test_a_model_base_url_the_template_accepts_is_one_the_runtime_reads() -> None:
    """A gateway URL mistyped ("api.example.com", no scheme) is refused at deploy time; the
    runtime refuses the same ones at start, naming ANTHROPIC_BASE_URL, not in every turn."""
    from agent_runtime import load_settings
    from session_core import ConfigError

    pattern = TEMPLATE["Parameters"]["AnthropicBaseUrl"]["AllowedPattern"]
    good = ["https://gateway.example.com", "https://gw.example.com:8443/anthropic", "http://10.0.0.7/v1"]
    # a Docker Compose service name ("litellm_proxy") and an IPv6 address: the CLI's URL parser takes both
    good += ["http://litellm_proxy:4000", "http://[fd00::7]:4000", "http://[::1]:4000/anthropic"]
    bad = ["api.example.com", "https://", "ftp://gw.example.com", "https://u:p@gw.example.com", "https://a b"]
    base = {"SESSIONS_TABLE": "t", "SESSIONS_BUCKET": "b", "ANTHROPIC_API_KEY_PARAMETER": "/bot/key"}
    assert re.fullmatch(pattern, "")  # the default: the SDK's own
    for url in good:
        assert re.fullmatch(pattern, url), url
        assert load_settings({**base, "ANTHROPIC_BASE_URL": url}).anthropic_base_url == url
    for url in bad:
        assert not re.fullmatch(pattern, url), url
        with pytest.raises(ConfigError) as refused:
            load_settings({**base, "ANTHROPIC_BASE_URL": url})
        assert refused.value.setting == "ANTHROPIC_BASE_URL"


def test_the_base_url_refusal_gives_an_example_that_works() -> None:
    """The CLI adds /v1/messages to the base URL itself: an example ending in /v1 would have
    the operator's gateway asked for /v1/v1/messages."""
    from agent_runtime import load_settings
    from session_core import ConfigError

    base = {"SESSIONS_TABLE": "t", "SESSIONS_BUCKET": "b", "ANTHROPIC_API_KEY_PARAMETER": "/bot/key"}
    with pytest.raises(ConfigError) as refused:
        load_settings({**base, "ANTHROPIC_BASE_URL": "api.example.com"})
    (example,) = re.findall(r"https?://\S+", refused.value.reason)
    assert not example.rstrip("/").endswith("/v1"), refused.value.reason


def test_an_alarm_email_the_template_accepts_looks_like_one() -> None:
    pattern = TEMPLATE["Parameters"]["AlarmEmail"]["AllowedPattern"]
    assert all(re.fullmatch(pattern, v) for v in ["", "ops@example.com", "a.b+bot@mail.example.org"])
    bad = ["ops", "ops@example", "ops @example.com", "@example.com"]
    assert not any(re.fullmatch(pattern, v) for v in bad)


def test_a_kms_key_arn_the_template_accepts_includes_multi_region_keys() -> None:
    """A multi-Region key's id starts with ``mrk-`` (KMS: "Multi-Region key ARNs"); the
    template must accept it as it accepts a single-Region key, and refuse an alias."""
    pattern = TEMPLATE["Parameters"]["SecretsKmsKeyArn"]["AllowedPattern"]
    good = [
        "",
        "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
        "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
    ]
    assert [v for v in good if not re.fullmatch(pattern, v)] == []
    bad = ["alias/aws/ssm", "arn:aws:kms:us-east-1:111122223333:alias/my-key", "1234abcd-12ab"]
    assert not any(re.fullmatch(pattern, v) for v in bad)


# Alarms whose metric is written only when something happens (a turn's spend, a container
# finding a configuration error): a 5-minute period without one is no evidence of recovery.
_EVENT_METRIC_ALARMS = [
    "DeploymentDailyBudgetAlarm",
    "ConfigurationErrorAlarm",
    "WebhookErrorsAlarm",
    "ModelSilentAlarm",
    "UnprocessableUpdatesAlarm",
]


@pytest.mark.parametrize("logical_id", _EVENT_METRIC_ALARMS)
def test_an_alarm_on_an_event_metric_never_reports_ok_for_a_quiet_period(logical_id: str) -> None:
    """CloudWatch: with TreatMissingData notBreaching a period without data points counts as
    good and the alarm goes to OK. For these metrics silence means only "no turn" or "no new
    container", so an OK notice would tell the operator the problem is gone while it is not:
    either the alarm keeps its state through silence (``ignore``, the metric itself reports
    recovery) or it sends no OK notice."""
    alarm = resource(TEMPLATE, logical_id)["Properties"]
    silence_is_ok = alarm.get("TreatMissingData", "missing") in {"notBreaching"}
    assert not (silence_is_ok and alarm.get("OKActions")), (
        f"{logical_id}: sends an OK notice after 5 quiet minutes while the cause may persist"
    )


def test_the_daily_budget_alarm_stays_raised_until_the_spend_is_reported_lower(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The consumer reports the spend after every turn, below 80 % too (so the next day's
    first turn clears the alarm): the alarm keeps its state between turns."""
    from types import SimpleNamespace

    from sqs_consumer._budget import DEPLOYMENT_DAILY_SPEND_METRIC, report_deployment_spend

    alarm = resource(TEMPLATE, "DeploymentDailyBudgetAlarm")["Properties"]
    assert alarm["TreatMissingData"] == "ignore"
    assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}]
    ledger = SimpleNamespace(
        caps=SimpleNamespace(deployment_daily_usd=10.0), deployment_daily_spent=lambda: 0.5
    )
    report_deployment_spend(ledger, "default")  # type: ignore[arg-type]
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)[DEPLOYMENT_DAILY_SPEND_METRIC] == 5.0


def test_the_operator_is_told_a_turn_holds_two_concurrent_executions() -> None:
    """The consumer waits on a synchronous Invoke of the runtime, so MaxConcurrentTurns turns
    hold twice as many executions, besides the producer's. Lambda: new accounts have reduced
    concurrency quotas (10, not 1,000); past the account's limit the runtime's Invoke is
    throttled and, after the queue's 5 receives, the turn is dead-lettered. The parameter and
    the README's prerequisites say so and how to read the account's limit."""
    described = " ".join(TEMPLATE["Parameters"]["MaxConcurrentTurns"]["Description"].split())
    assert "two concurrent executions" in described, described
    deploy = README_TEXT[README_TEXT.index("### 1. Prerequisites") : README_TEXT.index("### 2. Secrets")]
    assert "aws lambda get-account-settings" in deploy
    assert "MaxConcurrentTurns" in deploy


def test_sam_build_builds_the_runtime_image_with_buildkit() -> None:
    """The runtime's Dockerfile needs BuildKit (``RUN --mount``, ``$BUILDPLATFORM``). `sam build`
    builds images through docker-py, which has no BuildKit, unless it is given
    ``--use-buildkit`` (SAM CLI >= 1.156, then `docker buildx build`): without it the
    operator's first `sam build` stops at the first ``RUN --mount``."""
    metadata = resource(TEMPLATE, "RuntimeFunction")["Metadata"]
    dockerfile = (ROOT / metadata["Dockerfile"]).read_text()
    assert re.search(r"^RUN --mount=", dockerfile, re.M) or "$BUILDPLATFORM" in dockerfile
    config = tomllib.loads((ROOT / "samconfig.toml.example").read_text())
    assert config["default"]["build"]["parameters"].get("use_buildkit") is True
    deploy = README_TEXT[
        README_TEXT.index("### 1. Prerequisites") : README_TEXT.index("### 4. Point Telegram")
    ]
    assert "buildx" in deploy[: deploy.index("### 2. Secrets")], "the prerequisites must ask for buildx"
    (command,) = re.findall(r"^sam build\b[^#\n]*", deploy, re.M)
    assert "--use-buildkit" in command, command


def _integer_settings() -> set[str]:
    """Variables the Lambda packages read with session_core.env_int (int(), no fractions)."""
    names: set[str] = set()
    for src in PACKAGES.glob("*/src"):
        for path in src.rglob("*.py"):
            names |= set(re.findall(r"env_int\(\s*\"([A-Z0-9_]+)\"", path.read_text()))
    return names


def test_a_parameter_the_code_reads_as_an_integer_takes_only_integers() -> None:
    """CloudFormation's Number type takes floats ("7.5", "1e3"); the code's env_int refuses
    them, so such a value would deploy and then fail every start of the function with a
    ConfigError (the producer answering Telegram 5xx for every update). A parameter that ends
    up in a variable read by env_int is a String whose AllowedPattern takes only integers."""
    integer_settings = _integer_settings()
    assert "SESSION_TTL_DAYS" in integer_settings, "the scan found no env_int call"
    problems = []
    for fn in FUNCTIONS.values():
        for name, value in fn.environment.items():
            parameter = _ref(value)
            if name not in integer_settings or parameter not in TEMPLATE["Parameters"]:
                continue
            declared = TEMPLATE["Parameters"][parameter]
            pattern = declared.get("AllowedPattern")
            if declared["Type"] != "String" or not pattern:
                problems.append(f"{parameter} ({name}) is {declared['Type']} without an integer pattern")
                continue
            if any(re.fullmatch(pattern, bad) for bad in ["7.5", "1e3", "", " 5", "-1", "0x10"]):
                problems.append(f"{parameter}: {pattern} takes a value env_int refuses")
            if not re.fullmatch(pattern, declared["Default"]):
                problems.append(f"{parameter}: its default {declared['Default']!r} fails {pattern}")
    assert not problems, "\n".join(sorted(set(problems)))


def test_the_session_ttl_pattern_keeps_its_range() -> None:
    pattern = TEMPLATE["Parameters"]["SessionTtlDays"]["AllowedPattern"]
    assert all(re.fullmatch(pattern, str(days)) for days in [1, 9, 25, 99, 365, 3599, 3649, 3650])
    assert not any(re.fullmatch(pattern, v) for v in ["0", "3651", "4000", "9999", "025"])


def test_the_readme_says_who_subscribes_to_a_bedrock_model_before_the_first_turn() -> None:
    """Bedrock retired its model-access page: the first invocation of a third-party model in an
    account subscribes to it, and only a caller allowed aws-marketplace:Subscribe (and
    ViewSubscriptions) can; otherwise that call and the next are AccessDeniedException.
    ModelInvokeRole may invoke models and nothing else (on purpose), so the operator makes that
    first call; the README says so instead of pointing at the retired page."""
    statements = policy_statements(resource(TEMPLATE, "ModelInvokeRole"))
    assert not any(a.startswith("aws-marketplace:") for s in statements for a in as_list(s["Action"]))
    deploy = README_TEXT[
        README_TEXT.index("### 3. Build and deploy") : README_TEXT.index("### 4. Point Telegram")
    ]
    flat = " ".join(deploy.split())
    assert "enable access to the model in the Bedrock console" not in flat
    assert "aws-marketplace:Subscribe" in flat and "agentbot doctor --stack" in flat


def test_a_redeploy_right_after_a_rollback_is_explained_where_the_operator_looks() -> None:
    """SQS refuses a queue name deleted less than 60 s ago, and the template names its queues
    (so an update never replaces a queue holding messages): a `sam deploy` straight after a
    rollback or `sam delete` fails on the queues. The deploy steps say why and what to do."""
    for queue in ("InboundQueue", "InboundDeadLetterQueue"):
        assert "QueueName" in resource(TEMPLATE, queue)["Properties"]
    deploy = README_TEXT[README_TEXT.index("## Deploy") : README_TEXT.index("### Build and push the runtime")]
    trouble = deploy[deploy.index("#### When a deploy fails") :]
    assert "60 seconds" in trouble and "wait a minute" in trouble.lower()
    assert "ROLLBACK_COMPLETE" in trouble and "sam delete" in trouble
    assert "describe-stack-events" in trouble


def test_the_readme_says_how_long_a_consumer_that_crashes_every_time_holds_its_chat() -> None:
    """A consumer that crashes (or times out) on a message never reports it failed: each receive
    ends when the visibility heartbeat's last renewal runs out, so the chat's FIFO group is held
    maxReceiveCount times (the time until the consumer dies + the heartbeat's visibility) before
    the redrive policy dead-letters it, and nobody tells the user. A consumer that cannot start
    has no heartbeat: each receive waits out the queue's visibility timeout. The operator reads
    how long from the README, computed from the template and the consumer's heartbeat."""
    from sqs_consumer import HEARTBEAT_VISIBILITY_S

    queue = resource(TEMPLATE, "InboundQueue")["Properties"]
    receives = int(queue["RedrivePolicy"]["maxReceiveCount"])
    timeout_s = int(FUNCTIONS["ConsumerFunction"].properties["Timeout"])
    failures = README_TEXT[README_TEXT.index("- Failures. Retryable ones") :]
    failures = " ".join(failures[: failures.index("\n- ")].split())
    assert f"{HEARTBEAT_VISIBILITY_S // 60} minutes at a time" in failures, failures
    assert f"{receives * HEARTBEAT_VISIBILITY_S / 60:g} minutes when it dies at once" in failures
    assert f"{receives * (timeout_s + HEARTBEAT_VISIBILITY_S) / 3600:g} hours at worst" in failures
    assert f"{int(queue['VisibilityTimeout']) * receives / 3600:g} hours in all" in failures
