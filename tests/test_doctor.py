"""`agentbot doctor` against the local Bot API server, moto (a CloudFormation stack, SSM, SQS)
and the scripted model server: a checklist line per check, a fix under each failure, exit 1 on
any failure, and no secret in the output."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from local_stack import LocalTelegram, ModelFault, ModelServer, echo_responder
from sqs_consumer import command_menu
from telegram_core import InboundMessage, QueueEnvelope, encode_envelope

from agentbot.cli import main
from agentbot.preflight import SHELL_SETTINGS as DEV_SHELL_SETTINGS
from tests.failing_credential_processes import FAILING_CREDENTIAL_PROCESSES
from tests.operator_commands import reach_the_fixtures_through_a_profile, run_at_the_shells_endpoints

BOT_TOKEN = "123456789:DOCTOR-test-token-not-a-real-one"
WEBHOOK_SECRET = "doctor-test-webhook-secret-0123456789"
API_KEY = "sk-ant-test-DOCTOR-0123456789"
WEBHOOK_URL = "https://doctor1.execute-api.eu-west-1.amazonaws.com/webhook"
REPO_CONFIG = Path(__file__).resolve().parents[1] / "claude-config"

_STACK_TEMPLATE = {
    "Parameters": {
        name: {"Type": "String", "Default": ""}
        for name in (
            "AllowedUserIds",
            "AllowedChatIds",
            "BotName",
            "BotUsername",
            "BotTokenParameterName",
            "WebhookSecretParameterName",
            "AnthropicApiKeyParameterName",
            "ModelBackend",
            "AnthropicBaseUrl",
            "AnthropicModel",
            "BedrockModelId",
            "SmallFastModel",
            "McpSecretsParameterPath",
            "MaxConcurrentTurns",
            "SessionTtlDays",
            "BudgetChatDailyUsd",
            "BudgetChatMonthlyUsd",
            "BudgetUserDailyUsd",
            "BudgetUserMonthlyUsd",
            "BudgetDeploymentDailyUsd",
            "BudgetDeploymentMonthlyUsd",
            "MaxTurnCostUsd",
            "DlqUrl",
            "QueueUrl",
            "Table",
            "Bucket",
        )
    },
    "Resources": {
        # The runtime function with the variables infra/template.yaml gives it from the model's
        # parameters, as doctor reads them back from Lambda.
        "RuntimeRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            },
        },
        "RuntimeFunction": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": {"Fn::Sub": "${BotName}-runtime"},
                "Runtime": "python3.12",
                "Handler": "runtime.handle",
                "Role": {"Fn::GetAtt": ["RuntimeRole", "Arn"]},
                "Code": {"ZipFile": "def handle(event, context): pass"},
                "Environment": {
                    "Variables": {
                        "ANTHROPIC_MODEL": {"Ref": "AnthropicModel"},
                        "BEDROCK_MODEL_ID": {"Ref": "BedrockModelId"},
                        "ANTHROPIC_SMALL_FAST_MODEL": {"Ref": "SmallFastModel"},
                        "ANTHROPIC_BASE_URL": {"Ref": "AnthropicBaseUrl"},
                    }
                },
            },
        },
    },
    "Outputs": {
        "WebhookUrl": {"Value": WEBHOOK_URL},
        "DeadLetterQueueUrl": {"Value": {"Ref": "DlqUrl"}},
        "InboundQueueUrl": {"Value": {"Ref": "QueueUrl"}},
        "SessionsTableName": {"Value": {"Ref": "Table"}},
        "SessionsBucketName": {"Value": {"Ref": "Bucket"}},
    },
}


# What a developer may set in the shell for `agentbot dev`'s functions (SESSION_TTL_DAYS too):
# cleared, so a developer's own exports cannot fail these tests.
SHELL_SETTINGS = sorted({name for names in DEV_SHELL_SETTINGS.values() for name in names})


def _secret(aws: Any, value: str) -> str:
    name = f"/agentbot-doctor/{uuid.uuid4().hex}"  # unique: read_secret caches by name
    aws.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString")
    return name


@pytest.fixture
def telegram() -> Iterator[LocalTelegram]:
    with LocalTelegram(token=BOT_TOKEN, bot_username="doctor_test_bot") as server:
        yield server


@pytest.fixture
def model() -> Iterator[ModelServer]:
    with ModelServer(echo_responder) as server:
        yield server


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, telegram: LocalTelegram) -> pytest.MonkeyPatch:
    for name in (
        "TELEGRAM_BOT_TOKEN",
        "ANTHROPIC_API_KEY",
        "CLAUDE_CODE_USE_BEDROCK",
        "AGENTBOT_STACK",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_BEDROCK_BASE_URL",
        "ANTHROPIC_BEDROCK_REGION_PREFIX",
        "CLAUDE_CONFIG_PATH",
        "TELEGRAM_WEBHOOK_SECRET",
        *SHELL_SETTINGS,
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TELEGRAM_API_BASE", telegram.base_url)
    monkeypatch.setenv("DEEPWIKI_MCP_URL", "http://127.0.0.1:9/mcp")
    return monkeypatch


def _stack(aws: Any, model: ModelServer, **overrides: str) -> str:
    name = f"agentbot-{uuid.uuid4().hex[:8]}"
    parameters = {
        "BotName": name,
        "BotUsername": "doctor_test_bot",
        "AllowedUserIds": "42",
        "BotTokenParameterName": _secret(aws, BOT_TOKEN),
        "WebhookSecretParameterName": _secret(aws, WEBHOOK_SECRET),
        "AnthropicApiKeyParameterName": _secret(aws, API_KEY),
        "ModelBackend": "anthropic",
        "AnthropicBaseUrl": model.base_url,
        "AnthropicModel": "claude-test",
        "BedrockModelId": "anthropic.claude-test-v1:0",
        "McpSecretsParameterPath": "/agentbot-doctor/mcp",
        "MaxConcurrentTurns": "10",
        "SessionTtlDays": "25",  # the bucket of the aws fixture keeps objects 25 + 5 days
        "DlqUrl": aws.resources.dlq_url,
        "QueueUrl": aws.resources.queue_url,
        "Table": aws.resources.table,
        "Bucket": aws.resources.bucket,
        **overrides,
    }
    aws.client("cloudformation").create_stack(
        StackName=name,
        TemplateBody=json.dumps(_STACK_TEMPLATE),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )
    aws.client("cloudwatch").put_metric_alarm(
        AlarmName=f"{parameters['BotName']}-configuration-error",
        Namespace="Agentbot",
        MetricName="ConfigurationErrors",
        Statistic="Sum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    return name


def _doctor(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, str], str]:
    code = run_at_the_shells_endpoints(["doctor", *argv])
    out, err = capsys.readouterr()
    for secret in (BOT_TOKEN, WEBHOOK_SECRET, API_KEY):
        assert secret not in out + err, "a secret was printed"
    lines: dict[str, str] = {}
    current = ""
    for line in out.splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) >= 2 and parts[0] in ("ok", "warn", "FAIL", "skip"):
            name = line[8:22].strip()
            current = name
            lines[name] = line
        elif current and line.strip().startswith("fix:"):
            lines[current] += "\n" + line
    return code, lines, out


def _set_webhook(telegram: LocalTelegram) -> None:
    """The webhook and the "/" menu, as `agentbot webhook set` leaves them."""
    answer = httpx.post(
        f"{telegram.base_url}/bot{BOT_TOKEN}/setWebhook",
        json={"url": WEBHOOK_URL, "secret_token": WEBHOOK_SECRET},
    )
    assert answer.json()["ok"]
    menu = httpx.post(f"{telegram.base_url}/bot{BOT_TOKEN}/setMyCommands", json={"commands": command_menu()})
    assert menu.json()["ok"]


def _dead_letter(aws: Any) -> None:
    message = InboundMessage(
        update_id=9,
        session_key="default/42/0",
        kind="message",
        chat_id=42,
        chat_type="private",
        message_id=90,
        text="private words",
    )
    aws.sqs.send_message(
        QueueUrl=aws.resources.dlq_url,
        MessageBody=encode_envelope(QueueEnvelope(version=1, message=message)).decode(),
        MessageGroupId="default/42/0",
        MessageDeduplicationId=uuid.uuid4().hex,
    )


def test_a_healthy_stack_passes_every_check(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: Any, capsys: Any
) -> None:
    stack = _stack(aws, model)
    _set_webhook(telegram)

    code, lines, out = _doctor(capsys, "--stack", stack)

    assert code == 0, out
    assert [line.split()[0] for line in lines.values()] == ["ok"] * 8, out
    assert "@doctor_test_bot" in lines["bot token"]
    assert WEBHOOK_URL in lines["webhook"] and "secret set" in lines["webhook"]
    assert "All checks passed." in out
    # The model check is one 1-token request with the key from SSM.
    (probe,) = model.model_calls
    assert probe.body["max_tokens"] == 1 and probe.body["model"] == "claude-test"
    assert probe.headers.get("x-api-key") == API_KEY


def test_a_stack_anyone_may_chat_with_is_a_warning_naming_the_parameters(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: Any, capsys: Any
) -> None:
    """Empty AllowedUserIds and AllowedChatIds (the template's defaults) let anyone who finds
    the bot run the agent on the operator's model key: allowed, so a warning, not a failure."""
    stack = _stack(aws, model, AllowedUserIds="")
    _set_webhook(telegram)

    code, lines, out = _doctor(capsys, "--stack", stack)

    assert code == 0, out
    assert lines["who may chat"].startswith("  warn"), out
    assert "anyone" in lines["who may chat"] and "@doctor_test_bot" in lines["who may chat"]
    assert "AllowedUserIds" in lines["who may chat"] and "sam deploy" in lines["who may chat"]

    limited = _stack(aws, model, AllowedUserIds="", AllowedChatIds="-1001234567890")
    code, lines, out = _doctor(capsys, "--stack", limited)
    assert code == 0 and "who may chat" not in lines, out


def test_a_stack_with_budgets_but_no_per_turn_cap_is_a_warning_naming_maxturncostusd(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: Any, capsys: Any
) -> None:
    """Without MaxTurnCostUsd a running turn holds nothing against the daily and monthly caps:
    concurrent turns, or one long turn, overspend them without bound. The bot works, so a
    warning that names the parameter to add."""
    stack = _stack(aws, model, BudgetUserDailyUsd="5", BudgetDeploymentMonthlyUsd="50")
    _set_webhook(telegram)

    code, lines, out = _doctor(capsys, "--stack", stack)

    assert code == 0, out
    assert lines["budgets"].startswith("  warn"), out
    assert "BudgetUserDailyUsd, BudgetDeploymentMonthlyUsd" in lines["budgets"], out
    assert "without bound" in lines["budgets"], out
    assert "fix: sam deploy --parameter-overrides MaxTurnCostUsd=" in lines["budgets"], out

    bounded = _stack(aws, model, BudgetUserDailyUsd="5", MaxTurnCostUsd="0.50")
    code, lines, out = _doctor(capsys, "--stack", bounded)
    assert code == 0 and "budgets" not in lines, out


def test_each_failure_of_a_stack_has_its_fix_and_the_exit_code_is_1(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: Any, capsys: Any
) -> None:
    stack = _stack(
        aws,
        model,
        AnthropicApiKeyParameterName="/agentbot-doctor/missing-key",
        BotTokenParameterName=_secret(aws, "123:wrong-token"),
    )
    _dead_letter(aws)

    code, lines, out = _doctor(capsys, "--stack", stack)

    assert code == 1, out
    assert lines["model"].startswith("  FAIL"), out
    assert "/agentbot-doctor/missing-key" in lines["model"] and "put-parameter" in lines["model"]
    assert lines["bot token"].startswith("  FAIL") and "@BotFather" in lines["bot token"]
    assert lines["webhook"].startswith("  skip"), out  # Telegram cannot be asked without a token
    assert lines["dead letters"].startswith("  FAIL") and "1 message" in lines["dead letters"]
    assert lines["AWS resources"].startswith("  ok") and lines["config alarm"].startswith("  ok")
    assert f"agentbot dlq list --stack {stack}" in lines["dead letters"]
    assert "123:wrong-token" not in out
    assert "private words" not in out


def test_a_refused_key_an_unset_webhook_and_a_recent_delivery_error_are_failures(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: Any, capsys: Any
) -> None:
    stack = _stack(aws, model)
    model.inject(ModelFault(status=401))

    code, lines, out = _doctor(capsys, "--stack", stack)
    assert code == 1
    assert "answered 401: the key is refused" in lines["model"] and "--overwrite" in lines["model"]
    assert "is not set" in lines["webhook"] and f"agentbot webhook set --stack {stack}" in lines["webhook"]

    _set_webhook(telegram)
    telegram.fail_webhook_delivery("Wrong response from the webhook: 403 Forbidden", at=time.time() - 60)
    code, lines, out = _doctor(capsys, "--stack", stack)
    assert code == 1
    assert lines["model"].startswith("  ok")
    assert "403 Forbidden" in lines["webhook"] and "the secret differs" in lines["webhook"], out


def test_a_webhook_an_older_release_set_without_todays_update_types_fails_until_it_is_set_again(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: Any, capsys: Any
) -> None:
    """Telegram keeps a webhook's allowed_updates until the next setWebhook: after an upgrade that
    handles a new update type (the approval buttons' callback_query, a draft's Stop), a webhook
    set by the older release never sends it, and the buttons do nothing. Doctor said "ok"."""
    stack = _stack(aws, model)
    older_types = ["message", "edited_message"]
    older = {"url": WEBHOOK_URL, "secret_token": WEBHOOK_SECRET, "allowed_updates": older_types}
    assert httpx.post(f"{telegram.base_url}/bot{BOT_TOKEN}/setWebhook", json=older).json()["ok"]

    code, lines, out = _doctor(capsys, "--stack", stack)

    assert code == 1, out
    assert lines["webhook"].startswith("  FAIL"), out
    assert "callback_query" in lines["webhook"] and "stopped_message_generation" in lines["webhook"], out
    assert f"agentbot webhook set --stack {stack}" in lines["webhook"], out

    assert run_at_the_shells_endpoints(["webhook", "set", "--stack", stack]) == 0
    capsys.readouterr()
    code, lines, out = _doctor(capsys, "--stack", stack)
    assert code == 0 and lines["webhook"].startswith("  ok"), out


def test_a_command_menu_an_older_release_set_is_a_warning_until_the_webhook_is_set_again(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: Any, capsys: Any
) -> None:
    """Telegram keeps the last setMyCommands, and only `agentbot webhook set` sends it: after an
    upgrade that adds a command, the users never saw it in the "/" menu, and doctor said "ok"."""
    stack = _stack(aws, model)
    _set_webhook(telegram)
    older = [entry for entry in command_menu() if entry["command"] != "usage"]
    assert httpx.post(f"{telegram.base_url}/bot{BOT_TOKEN}/setMyCommands", json={"commands": older}).json()[
        "ok"
    ]

    code, lines, out = _doctor(capsys, "--stack", stack)

    assert code == 0, out  # every command still answers when typed
    assert lines["command menu"].startswith("  warn"), out
    assert "lacks /usage" in lines["command menu"], out
    assert f"fix: agentbot webhook set --stack {stack}" in lines["command menu"], out

    assert run_at_the_shells_endpoints(["webhook", "set", "--stack", stack]) == 0
    capsys.readouterr()
    code, lines, out = _doctor(capsys, "--stack", stack)
    assert code == 0 and lines["command menu"].startswith("  ok") and "/usage" in lines["command menu"], out


def test_a_deployed_webhook_secret_short_enough_to_guess_fails_as_the_producer_refuses_it(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: Any, capsys: Any
) -> None:
    short = "s3cret"
    stack = _stack(aws, model, WebhookSecretParameterName=_secret(aws, short))
    httpx.post(
        f"{telegram.base_url}/bot{BOT_TOKEN}/setWebhook", json={"url": WEBHOOK_URL, "secret_token": short}
    )

    code, lines, out = _doctor(capsys, "--stack", stack)

    assert code == 1
    assert lines["webhook"].startswith("  FAIL") and "is not 16-256 characters" in lines["webhook"], out
    assert "token_urlsafe" in lines["webhook"] and short not in out


def test_a_stack_is_checked_in_aws_not_at_an_endpoint_left_in_the_shell(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """AWS_ENDPOINT_URL left in the shell (agentbot dev's moto, here the fixtures') reached
    doctor's clients: it checked the stack that endpoint had, not the deployed one."""
    stack = _stack(aws, model)  # in moto, at the shell's AWS_ENDPOINT_URL only
    _set_webhook(telegram)
    clean_env.setenv("AWS_MAX_ATTEMPTS", "1")

    code = main(["doctor", "--stack", stack])
    out, err = capsys.readouterr()

    # AWS itself has no such stack (offline: no AWS at all), and no checklist is made of moto's
    assert code == 1 and not out, out
    assert err.splitlines()[1].startswith("error: "), err
    (note,) = [line for line in err.splitlines() if "note: ignored" in line]
    assert all(variable in note for variable in aws.endpoints.environment()), err
    assert note.endswith("this machine, and a stack is reached in AWS itself"), err


def test_a_stack_is_checked_through_the_endpoint_the_operators_profile_names(
    aws: Any,
    telegram: LocalTelegram,
    model: ModelServer,
    clean_env: pytest.MonkeyPatch,
    capsys: Any,
    tmp_path: Path,
) -> None:
    """An operator whose AWS is reached through their profile's endpoint_url (a VPC endpoint)
    had it ignored as the shell's leftovers were: doctor --stack found no stack where `sam
    deploy` had made one."""
    stack = _stack(aws, model)
    _set_webhook(telegram)
    profile = reach_the_fixtures_through_a_profile(aws, clean_env, tmp_path)
    clean_env.setenv("AWS_MAX_ATTEMPTS", "1")

    main(["doctor", "--stack", stack, "--profile", profile])
    out, err = capsys.readouterr()

    assert out.startswith(f"agentbot doctor · stack {stack}"), out + err
    assert "note: ignored" not in err, err


def test_the_stack_is_looked_up_in_the_region_aws_region_names_and_no_region_says_how_to_give_one(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """.env.example sets AGENTBOT_STACK and the README exports AWS_REGION, which boto3 does not
    read: plain `agentbot doctor` printed botocore's "You must specify a region." either way."""
    stack = _stack(aws, model)
    clean_env.setenv("AGENTBOT_STACK", stack)
    clean_env.delenv("AWS_DEFAULT_REGION")
    clean_env.delenv("AWS_REGION", raising=False)
    clean_env.delenv("AWS_PROFILE", raising=False)
    clean_env.setenv("AWS_CONFIG_FILE", "/nonexistent/agentbot-test-config")

    code = main(["doctor"])
    out, err = capsys.readouterr()
    assert code == 1 and not out
    # after the note that the shell's endpoint (the fixtures' moto) is ignored for a stack
    assert err.splitlines()[1].startswith("error: no AWS region: pass --region REGION"), err
    assert "AWS_REGION" in err, err
    # whoever sourced .env.example (which sets it) may only want the local checks
    assert f"the stack '{stack}' is AGENTBOT_STACK's; unset AGENTBOT_STACK to check what" in err, err

    clean_env.setenv("AWS_REGION", "us-east-1")
    code, lines, out = _doctor(capsys)
    assert out.startswith(f"agentbot doctor · stack {stack}"), out
    assert lines["AWS resources"].startswith("  ok"), out


def test_a_stack_deployed_with_another_bots_username_fails_the_bot_token_check(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: Any, capsys: Any
) -> None:
    """The producer answers in groups only when its BotUsername is mentioned: deployed with a
    mistyped one, every check passed and the bot stayed silent in every group."""
    stack = _stack(aws, model, BotUsername="doctor_tset_bot")
    _set_webhook(telegram)

    code, lines, out = _doctor(capsys, "--stack", stack)

    assert code == 1, out
    mismatch = "the token is @doctor_test_bot's, but the stack's BotUsername is doctor_tset_bot"
    assert mismatch in lines["bot token"], out
    assert (
        "fix: set BotUsername=doctor_test_bot in samconfig.toml's parameter_overrides" in lines["bot token"]
    )
    assert lines["webhook"].startswith("  ok"), out  # Telegram still answers about the webhook


class _AccountSettings:
    """Lambda's GetAccountSettings, which moto does not answer: an account's concurrency; the
    rest of Lambda is moto's."""

    def __init__(self, limit: int, moto: Any) -> None:
        self.limit = limit
        self.moto = moto

    def get_account_settings(self) -> dict[str, Any]:
        return {"AccountLimit": {"ConcurrentExecutions": self.limit}}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.moto, name)


@pytest.mark.parametrize(("limit", "warned"), [(10, True), (22, False)])
def test_an_account_whose_concurrency_cannot_hold_max_concurrent_turns_is_warned(
    aws: Any,
    telegram: LocalTelegram,
    model: ModelServer,
    clean_env: Any,
    capsys: Any,
    limit: int,
    warned: bool,
) -> None:
    """A new account runs 10 executions at once; the default 10 turns hold 22: the deploy
    passes, and past 4 chats at once turns are throttled until they are dead-lettered."""
    import argparse

    from agentbot.doctor import run_doctor

    stack = _stack(aws, model)
    _set_webhook(telegram)
    settings = _AccountSettings(limit, aws.client("lambda"))
    args = argparse.Namespace(stack=stack, profile=None, region=None)

    code = run_doctor(args, clients=lambda service: settings if service == "lambda" else aws.client(service))
    out = capsys.readouterr().out

    (line,) = [line for line in out.splitlines() if "AWS resources" in line]
    if warned:
        assert line.startswith("  warn") and "at most 10 Lambda executions" in line, out
        assert "MaxConcurrentTurns 10 needs 22" in line and "more than 4 chats at once" in line, out
        assert "fix: set MaxConcurrentTurns to 4 and sam deploy" in out, out
    else:
        assert line.startswith("  ok"), out
    assert code == 0, out  # a warning: one chat at a time still works


class _NoFunctionConfiguration:
    """Lambda as an operator's role without lambda:GetFunctionConfiguration answers it: an
    AccessDeniedException built as botocore builds it from AWS's answer; the rest is moto's."""

    def __init__(self, moto: Any) -> None:
        self.moto = moto

    def get_function_configuration(self, FunctionName: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        who = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_ReadOnly_0123456789abcdef/" + "o" * 60
        message = (
            f"User: {who} is not authorized to perform: lambda:GetFunctionConfiguration on resource: "
            f"arn:aws:lambda:eu-west-1:123456789012:function:{FunctionName} because no identity-based "
            "policy allows the lambda:GetFunctionConfiguration action"
        )
        error = {"Error": {"Code": "AccessDeniedException", "Message": message}}
        raise ClientError(error, "GetFunctionConfiguration")  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.moto, name)


def test_an_operator_not_allowed_to_read_the_runtimes_variables_is_told_which_permission(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: Any, capsys: Any
) -> None:
    """doctor --stack reads the runtime function's variables to expand mcp.json's ${NAME}s: an
    operator role without that permission got AWS's message cut at 300 characters (the
    permission's name lost behind a long role ARN) and "fix what the line names"."""
    import argparse

    from agentbot.doctor import run_doctor

    stack = _stack(aws, model)
    _set_webhook(telegram)
    refusing = _NoFunctionConfiguration(aws.client("lambda"))
    args = argparse.Namespace(stack=stack, profile=None, region=None)

    code = run_doctor(args, clients=lambda service: refusing if service == "lambda" else aws.client(service))
    out = capsys.readouterr().out

    assert code == 1, out
    (line,) = [line for line in out.splitlines() if "claude-config" in line]
    assert line.startswith("  FAIL"), out
    assert f"cannot read the variables of the stack's runtime function {stack}-runtime" in line, out
    assert "(AccessDeniedException)" in line, out
    assert f"fix: allow lambda:GetFunctionConfiguration on {stack}-runtime to the credentials" in out, out


def test_local_checks_name_the_broken_claude_config_file_and_field(
    tmp_path: Path, telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    config = tmp_path / "claude-config"
    shutil.copytree(REPO_CONFIG, config)
    agents = json.loads((config / "agents.json").read_text())
    agents["main"]["allowed_tools"].append("mcp__agentbot-tools__*")
    (config / "agents.json").write_text(json.dumps(agents))
    clean_env.setenv("CLAUDE_CONFIG_PATH", str(config))
    clean_env.setenv("TELEGRAM_BOT_TOKEN", BOT_TOKEN)

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert (
        "agents.json: main.allowed_tools[" in lines["claude-config"] and "wildcard" in lines["claude-config"]
    )
    assert "start `agentbot dev` again" in lines["claude-config"]
    assert lines["model"].startswith("  skip") and "offline demo model" in lines["model"]
    assert lines["bot token"].startswith("  ok") and lines["dead letters"].startswith("  skip")


def test_a_subagent_on_the_default_model_fails_the_claude_config_line_naming_its_field(
    tmp_path: Path, telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """ "default" is the main agent's: a subagent's is sent to the model as a model id (none has
    it), and the model line had nothing to probe for it (an alias), so doctor passed it."""
    _subagent_on(tmp_path, clean_env, "default")
    clean_env.setenv("TELEGRAM_BOT_TOKEN", BOT_TOKEN)

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert lines["claude-config"].startswith("  FAIL"), out
    assert "agents.json: agents.summarizer.model: 'default' is no model for a subagent" in out
    assert "use inherit for the main agent's model" in lines["claude-config"], out


def _with_command_server(tmp_path: Path, command: str, clean_env: pytest.MonkeyPatch) -> None:
    """The shipped claude-config with its github server run as ``command``, for doctor to check."""
    _with_github_server(tmp_path, {"command": command}, clean_env)


def _with_github_server(tmp_path: Path, server: dict[str, Any], clean_env: pytest.MonkeyPatch) -> None:
    """The shipped claude-config with a github server of ``server``, for doctor to check."""
    config = tmp_path / "claude-config"
    shutil.copytree(REPO_CONFIG, config)
    mcp = json.loads((config / "mcp.json").read_text())
    mcp["mcpServers"]["github"] = server
    (config / "mcp.json").write_text(json.dumps(mcp))
    clean_env.setenv("CLAUDE_CONFIG_PATH", str(config))
    clean_env.setenv("TELEGRAM_BOT_TOKEN", BOT_TOKEN)


def _with_secret_header(tmp_path: Path, parameter: str, clean_env: pytest.MonkeyPatch) -> None:
    """The shipped claude-config with deepwiki's Authorization header read from ``parameter``."""
    config = tmp_path / "claude-config"
    shutil.copytree(REPO_CONFIG, config)
    mcp = json.loads((config / "mcp.json").read_text())
    mcp["mcpServers"]["deepwiki"]["headers_from_ssm"] = {"Authorization": parameter}
    (config / "mcp.json").write_text(json.dumps(mcp))
    clean_env.setenv("CLAUDE_CONFIG_PATH", str(config))
    clean_env.delenv("MCP_SECRET_DEEPWIKI_AUTHORIZATION", raising=False)


def test_local_checks_name_a_secret_header_agentbot_dev_would_refuse_to_start_without(
    tmp_path: Path, telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """doctor said "All checks passed." and `agentbot dev` then refused to start on it."""
    _with_secret_header(tmp_path, "/agentbot/mcp/deepwiki", clean_env)

    code, lines, out = _doctor(capsys)
    assert code == 1, out
    field = "mcp.json: mcpServers.deepwiki.headers_from_ssm.Authorization: /agentbot/mcp/deepwiki"
    assert field in lines["claude-config"], out
    assert "fix: export MCP_SECRET_DEEPWIKI_AUTHORIZATION=<the header's value>" in lines["claude-config"]

    clean_env.setenv("MCP_SECRET_DEEPWIKI_AUTHORIZATION", "Bearer doctor-test-mcp-secret")
    code, lines, out = _doctor(capsys)
    assert code == 0 and lines["claude-config"].startswith("  ok"), out
    assert "doctor-test-mcp-secret" not in out


def test_locally_with_a_profile_a_secret_header_already_in_its_ssm_passes_as_dev_aws_profile_uses_it(
    aws: Any, tmp_path: Path, telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """`agentbot dev --aws-profile P` reads an existing parameter when MCP_SECRET_* is unset;
    doctor demanded the variable anyway, so the operator about to run that command was told
    to fix what was not broken."""
    from local_stack import LOCAL_CREDENTIALS

    parameter = f"/agentbot-doctor/mcp/{uuid.uuid4().hex}"
    _with_secret_header(tmp_path, parameter, clean_env)
    config = tmp_path / "aws-config"
    config.write_text(
        "[profile dev]\n"
        f"aws_access_key_id = {LOCAL_CREDENTIALS['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {LOCAL_CREDENTIALS['AWS_SECRET_ACCESS_KEY']}\n"
    )
    clean_env.setenv("AWS_CONFIG_FILE", str(config))

    code, lines, out = _doctor(capsys, "--profile", "dev")
    assert code == 1, out
    assert f"headers_from_ssm.Authorization: {parameter}" in lines["claude-config"], out
    assert "nor in SSM of profile dev" in lines["claude-config"], out
    assert (
        f"aws --profile dev ssm put-parameter --type SecureString --name {parameter}"
        in lines["claude-config"]
    )

    aws.client("ssm").put_parameter(Name=parameter, Value="Bearer doctor-profile-mcp", Type="SecureString")
    code, lines, out = _doctor(capsys, "--profile", "dev")
    assert code == 0 and lines["claude-config"].startswith("  ok"), out
    assert "doctor-profile-mcp" not in out

    code, lines, out = _doctor(capsys)  # without the profile, dev would not read SSM's
    assert code == 1 and "or, for agentbot dev --aws-profile" in lines["claude-config"], out


def test_a_stacks_secret_header_missing_from_ssm_is_named_with_the_command_that_creates_it(
    aws: Any, tmp_path: Path, telegram: LocalTelegram, model: ModelServer, clean_env: Any, capsys: Any
) -> None:
    """A deployed runtime would fail at every cold start (the configuration-error alarm)."""
    stack = _stack(aws, model)
    _set_webhook(telegram)
    parameter = f"/agentbot-doctor/mcp/{uuid.uuid4().hex}"
    _with_secret_header(tmp_path, parameter, clean_env)

    code, lines, out = _doctor(capsys, "--stack", stack)
    assert code == 1, out
    assert f"mcpServers.deepwiki.headers_from_ssm.Authorization: {parameter}" in lines["claude-config"], out
    assert f"put-parameter --type SecureString --name {parameter}" in lines["claude-config"], out

    aws.client("ssm").put_parameter(Name=parameter, Value="Bearer doctor-mcp", Type="SecureString")
    code, lines, out = _doctor(capsys, "--stack", stack)
    assert code == 0 and lines["claude-config"].startswith("  ok"), out
    assert "doctor-mcp" not in out

    # There, but where the runtime's role may not read it: every cold start would fail on it.
    elsewhere = f"/agentbot-doctor/other/{uuid.uuid4().hex}"
    aws.client("ssm").put_parameter(Name=elsewhere, Value="Bearer doctor-mcp", Type="SecureString")
    _with_secret_header(tmp_path / "elsewhere", elsewhere, clean_env)
    code, lines, out = _doctor(capsys, "--stack", stack)
    assert code == 1, out
    outside = f"{elsewhere} is outside the stack's McpSecretsParameterPath /agentbot-doctor/mcp"
    assert outside in lines["claude-config"], out
    assert "fix: name a parameter under /agentbot-doctor/mcp/" in lines["claude-config"], out


def test_a_stack_without_a_gateway_fails_an_mcp_url_made_of_its_base_url_naming_the_parameter(
    aws: Any, tmp_path: Path, telegram: LocalTelegram, model: ModelServer, clean_env: Any, capsys: Any
) -> None:
    """The build only warns (the stack's parameters come after it), and the operator's shell has
    an ANTHROPIC_BASE_URL of its own: doctor passed a stack whose every cold start then failed."""
    clean_env.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", model.base_url)
    clean_env.setenv("ANTHROPIC_BASE_URL", "https://gateway.example.com")
    stack = _stack(aws, model, ModelBackend="bedrock", AnthropicBaseUrl="")
    _set_webhook(telegram)
    _with_github_server(tmp_path, {"type": "http", "url": "${ANTHROPIC_BASE_URL}/mcp"}, clean_env)

    code, lines, out = _doctor(capsys, "--stack", stack)

    assert code == 1, out
    line = lines["claude-config"]
    assert line.split()[0] == "FAIL" and "mcp.json: mcpServers.github.url: " in line, out
    assert "${ANTHROPIC_BASE_URL} is empty (from the stack's AnthropicBaseUrl parameter)" in line, out
    overrides = "sam deploy --parameter-overrides AnthropicBaseUrl=..."
    assert f"fix: deploy with AnthropicBaseUrl set ({overrides}), or write a default" in line, out

    defaulted = {"type": "http", "url": "${ANTHROPIC_BASE_URL:-https://mcp.example.com}/mcp"}
    _with_github_server(tmp_path / "defaulted", defaulted, clean_env)
    code, lines, out = _doctor(capsys, "--stack", stack)
    assert lines["claude-config"].split()[0] in ("ok", "warn"), out


def test_a_stacks_mcp_json_is_checked_with_the_runtime_functions_variables_not_the_shells(
    aws: Any, tmp_path: Path, telegram: LocalTelegram, model: ModelServer, clean_env: Any, capsys: Any
) -> None:
    """The shell exports GITHUB_MCP_URL for `agentbot dev`; the deployed runtime has no such
    variable. Set on the function by hand, it is there, and what it holds is never shown."""
    stack = _stack(aws, model)
    _set_webhook(telegram)
    clean_env.setenv("GITHUB_MCP_URL", "https://mcp.example.com/mcp")
    _with_github_server(tmp_path, {"type": "http", "url": "${GITHUB_MCP_URL}"}, clean_env)

    code, lines, out = _doctor(capsys, "--stack", stack)

    assert code == 1, out
    line = lines["claude-config"]
    assert "mcpServers.github.url: ${GITHUB_MCP_URL} is not set" in line, out
    assert "in the stack's runtime ${GITHUB_MCP_URL} is not set" in line, out
    assert "fix: write a default in the file that works without it (${GITHUB_MCP_URL:-...})" in line, out

    runtime, function = aws.client("lambda"), f"{stack}-runtime"
    variables = runtime.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    keyed = "https://mcp.example.com/mcp?key=sk-ant-api03-DOCTOR-not-a-real-key-0123456789"
    runtime.update_function_configuration(
        FunctionName=function, Environment={"Variables": {**variables, "GITHUB_MCP_URL": keyed}}
    )
    code, lines, out = _doctor(capsys, "--stack", stack)
    assert code == 1, out
    line = lines["claude-config"]
    assert "mcpServers.github.url: " in line and "(its value comes from ${GITHUB_MCP_URL})" in line, out
    assert "DOCTOR-not-a-real-key" not in out


def test_local_checks_name_a_model_base_url_without_its_scheme(
    telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """It said "cannot reach :///… (UnsupportedProtocol)" and to check the network."""
    clean_env.setenv("ANTHROPIC_API_KEY", API_KEY)
    clean_env.setenv("ANTHROPIC_BASE_URL", "gateway.example.com")

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert "FAIL  model          ANTHROPIC_BASE_URL: must be an http(s) URL such as" in lines["model"], out
    assert "fix: fix or unset it in your shell" in lines["model"], out


def test_local_checks_find_a_command_servers_missing_program_as_agentbot_dev_would(
    tmp_path: Path, telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Locally doctor checks this machine, where `agentbot dev` starts the programs: it does
    not say "ok" to a set-up dev then refuses."""
    _with_command_server(tmp_path, "npx-not-installed-here", clean_env)

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert "mcp.json: mcpServers.github.command" in lines["claude-config"], out
    assert "'npx-not-installed-here' is not on the runtime's PATH" in lines["claude-config"], out


def test_local_checks_name_a_credential_under_an_innocent_name_as_agentbot_dev_would(
    tmp_path: Path, telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A GitHub token in a command server's `"GH"` passed doctor and every start, and reached
    the agent's tools; doctor names the field and the kind of credential, never the token."""
    token = "ghp_" + "d0c7" * 9  # made up, and built here so that no file holds one whole
    _with_github_server(tmp_path, {"command": "${PYTHON}", "env": {"GH": token}}, clean_env)

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert "mcp.json: mcpServers.github.env.GH: looks like a GitHub token" in lines["claude-config"], out
    assert "headers_from_ssm" in lines["claude-config"], out
    assert token not in out


def test_local_checks_name_an_mcp_server_whose_tools_would_read_as_another_servers(
    tmp_path: Path, telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Beside "deepwiki", a "deepwiki__docs" server's tool mcp__deepwiki__docs__ask reads as
    deepwiki's (the CLI's approval rules, the runtime's log): doctor passed it."""
    _with_github_server(tmp_path, {"type": "http", "url": "https://mcp.example.com/mcp"}, clean_env)
    mcp = tmp_path / "claude-config" / "mcp.json"
    mcp.write_text(mcp.read_text().replace('"github"', '"deepwiki__docs"'))

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert (
        "mcp.json: mcpServers.deepwiki__docs: a server name must not contain '__'" in lines["claude-config"]
    )


def test_local_checks_name_two_mcp_servers_whose_names_differ_only_in_case(
    tmp_path: Path, telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """ "DeepWiki" beside the shipped "deepwiki" passed doctor, and the CLI took some tools of
    one for the other's."""
    _with_github_server(tmp_path, {"type": "http", "url": "https://mcp.example.com/mcp"}, clean_env)
    mcp = tmp_path / "claude-config" / "mcp.json"
    mcp.write_text(mcp.read_text().replace('"github"', '"DeepWiki"'))

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert (
        "mcp.json: mcpServers.DeepWiki: differs from server 'deepwiki' only in case" in lines["claude-config"]
    )


def test_local_checks_name_every_claude_config_problem_in_one_run(
    tmp_path: Path, telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """An operator with five mistakes fixes five, not one per run of doctor."""
    _with_command_server(tmp_path, "npx-not-installed-here", clean_env)
    config = tmp_path / "claude-config"
    (config / "skills" / "hello-world" / "SKILL.md").write_text("---\nname: hello-world\n---\nHi.\n")
    agents = json.loads((config / "agents.json").read_text())
    agents["main"]["max_turns"] = 0  # a wrong field of main hid its wrong tools until fixed
    agents["main"]["allowed_tools"].append("mcp__agentbot-tools__*")
    (config / "agents.json").write_text(json.dumps(agents))
    rules = [{"tool": "Bash"}, {"tool": "Write"}, {"tool": "Edti"}]
    (config / "approvals.json").write_text(json.dumps({"require_approval": rules}))

    code, _lines, out = _doctor(capsys)

    assert code == 1, out
    failed = [line for line in out.splitlines() if line.split()[:2] == ["FAIL", "claude-config"]]
    wanted = [
        "mcp.json: mcpServers.github.command: program 'npx-not-installed-here' is not on",
        "skills/hello-world/SKILL.md: description: is required",
        f"agents.json: main.allowed_tools[{len(agents['main']['allowed_tools']) - 1}]: "
        "'mcp__agentbot-tools__*' is a wildcard",
        "agents.json: main.max_turns: must be a whole number of at least 1",
        # agents.json has a problem: its tools are unknown, the rule is checked against the CLI's
        "approvals.json: require_approval[2].tool: 'Edti' matches no built-in tool of Claude Code "
        "(did you mean 'Edit'?)",
    ]
    assert len(failed) == len(wanted), out
    for line, words in zip(failed, wanted, strict=True):
        assert words in line, out
    assert out.count("fix: fix the file and start `agentbot dev` again") == 1, out  # said once
    assert "5 problem(s) found." in out


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the local agent as another user")
def test_as_root_a_program_only_root_may_run_fails_the_check_for_the_agents_user(
    tmp_path: Path, telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any, request: Any
) -> None:
    """Started as root, `agentbot dev` runs the agent (and its MCP servers) as nobody: a server
    installed under root's private home passes a check made as root, then fails every turn."""
    reachable = Path(tempfile.mkdtemp(prefix="doctor-as-root-"))  # pytest's tmp_path is root's alone
    request.addfinalizer(lambda: shutil.rmtree(reachable))
    reachable.chmod(0o755)
    private_bin = reachable / "root-home" / ".local" / "bin"
    private_bin.mkdir(parents=True)
    (reachable / "root-home").chmod(0o700)
    program = private_bin / "mcp-server"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    _with_command_server(tmp_path, str(program), clean_env)

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert "mcp.json: mcpServers.github.command" in lines["claude-config"], out
    assert f"{program} is not an executable file here for 'nobody'" in lines["claude-config"], out
    assert "/usr/local/bin" in lines["claude-config"], out

    (reachable / "root-home").chmod(0o755)  # every user may pass now: the same check says ok
    code, lines, out = _doctor(capsys)
    assert not lines["claude-config"].startswith("  FAIL"), out


def test_local_checks_pass_with_the_shipped_claude_config_and_a_working_key(
    telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    clean_env.setenv("ANTHROPIC_API_KEY", API_KEY)
    clean_env.setenv("ANTHROPIC_BASE_URL", model.base_url)

    code, lines, out = _doctor(capsys)

    assert code == 0, out
    assert lines["claude-config"].startswith("  ok") and "1 subagent(s), 1 skill(s), 2 MCP server(s)" in out
    assert lines["model"].startswith("  ok") and len(model.model_calls) == 1


def test_a_firing_configuration_alarm_points_at_the_log_line(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: Any, capsys: Any
) -> None:
    stack = _stack(aws, model)
    _set_webhook(telegram)
    aws.client("cloudwatch").set_alarm_state(
        AlarmName=f"{stack}-configuration-error", StateValue="ALARM", StateReason="test"
    )

    code, lines, out = _doctor(capsys, "--stack", stack)

    assert code == 1, out
    assert lines["config alarm"].startswith("  FAIL"), out
    assert (
        f"/aws/lambda/{stack}-runtime" in lines["config alarm"]
        # quoted: CloudWatch takes a term with characters other than letters, digits and _ only so
        and """--filter-pattern '"config.invalid"'""" in lines["config alarm"]
    )


def test_the_model_check_asks_for_the_models_agents_json_names(
    agent_tmp_path: Path,
    telegram: LocalTelegram,
    model: ModelServer,
    clean_env: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """agents.json's main.model is what the CLI is started with (over ANTHROPIC_MODEL), and a
    subagent's model id is what its turns ask for: a misspelt one must fail here, not as a model
    error at every turn after doctor said the model was fine."""
    # Outside pytest's basetemp: the second run must pass whole, and another pytest session
    # starting meanwhile makes basetemp root's alone again (nobody could not read the config).
    config = agent_tmp_path / "claude-config"
    shutil.copytree(REPO_CONFIG, config)
    agents = json.loads((config / "agents.json").read_text())
    agents["main"]["model"] = "claude-sonet-4-5"
    agents["agents"]["summarizer"]["model"] = "claude-haiku-test"
    (config / "agents.json").write_text(json.dumps(agents))
    clean_env.setenv("CLAUDE_CONFIG_PATH", str(config))
    clean_env.setenv("ANTHROPIC_API_KEY", API_KEY)
    clean_env.setenv("ANTHROPIC_BASE_URL", model.base_url)
    model.inject(ModelFault(status=404))

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert [call.body["model"] for call in model.model_calls] == ["claude-sonet-4-5"]
    assert lines["model"].startswith("  FAIL") and "answered 404" in lines["model"], out
    assert "fix: check the model id (agents.json: main.model)" in lines["model"], out

    model.clear_faults()
    code, _lines, out = _doctor(capsys)
    assert code == 0, out
    probed = [call.body["model"] for call in model.model_calls[1:]]
    assert probed == ["claude-sonet-4-5", "claude-haiku-test"]
    assert "(claude-haiku-test, agents.json: agents.summarizer.model)" in out


def test_a_bucket_that_expires_objects_before_the_sessions_pointing_at_them_fails(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: Any, capsys: Any
) -> None:
    """SessionTtlDays raised without SessionObjectExpiryDays (the template cannot compare the
    two): a chat idle for a month keeps its registry item while S3 deletes its transcript, so
    it would silently lose its history."""
    stack = _stack(aws, model, SessionTtlDays="60")

    code, lines, out = _doctor(capsys, "--stack", stack)

    assert code == 1, out
    assert lines["AWS resources"].startswith("  FAIL"), out
    assert "expires objects after 30 days" in lines["AWS resources"]
    assert "fix: set SessionObjectExpiryDays to at least 65 (SessionTtlDays + 5)" in lines["AWS resources"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the local agent as another user")
def test_as_root_a_config_file_the_agents_user_cannot_read_fails_as_agentbot_dev_refuses_it(
    telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any, request: Any
) -> None:
    """doctor checks what `agentbot dev` would use: dev refuses to start on a skill script only
    root may read (every turn would fail), so doctor must not say "All checks passed"."""
    reachable = Path(tempfile.mkdtemp(prefix="doctor-unreadable-"))  # pytest's tmp_path is root's alone
    request.addfinalizer(lambda: shutil.rmtree(reachable))
    reachable.chmod(0o755)
    config = reachable / "claude-config"
    shutil.copytree(REPO_CONFIG, config)
    script = config / "skills" / "hello-world" / "hello.py"
    script.chmod(0o600)
    clean_env.setenv("CLAUDE_CONFIG_PATH", str(config))

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert lines["claude-config"].startswith("  FAIL"), out
    assert f"{script}: the agent runs as 'nobody' and cannot read it" in lines["claude-config"], out
    assert f"fix: let every user read it (chmod o+r {script})" in lines["claude-config"], out

    script.chmod(0o644)
    code, lines, out = _doctor(capsys)
    assert code == 0, out


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the local agent as another user")
def test_as_root_doctor_says_which_directories_it_made_passable_for_the_agents_user(
    telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any, request: Any
) -> None:
    """To check what the agent's user can read, doctor opens the directories above
    claude-config for passing, as `agentbot dev` does; a check must not change modes unsaid."""
    closed = Path(tempfile.mkdtemp(prefix="doctor-closed-"))  # 0700: nobody cannot pass
    request.addfinalizer(lambda: shutil.rmtree(closed))
    config = closed / "claude-config"
    shutil.copytree(REPO_CONFIG, config)
    clean_env.setenv("CLAUDE_CONFIG_PATH", str(config))

    code, lines, out = _doctor(capsys)

    assert code == 0, out
    assert f"made passable for nobody, as agentbot dev does: {closed}" in lines["claude-config"], out
    assert closed.stat().st_mode & 0o001


@pytest.mark.parametrize("alias", ["sonnet[1m]", "opus[1m]", "best", "opusplan[1m]"])
def test_the_model_check_leaves_the_clis_own_aliases_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alias: str
) -> None:
    """The CLI resolves these names itself (a 1M-context alias too), so the API has no model by
    that name: probing it would FAIL a configuration that works."""
    from agentbot.doctor import _models_of

    config = tmp_path / "claude-config"
    shutil.copytree(REPO_CONFIG, config)
    agents = json.loads((config / "agents.json").read_text())
    agents["main"]["model"] = alias
    agents["agents"]["summarizer"]["model"] = "claude-haiku-test[1m]"
    (config / "agents.json").write_text(json.dumps(agents))
    monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))

    probed = [model for model, _source in _models_of("claude-sonnet-test", "ANTHROPIC_MODEL")]

    assert probed == ["claude-sonnet-test", "claude-haiku-test"]  # the id the CLI sends, no [1m]


def test_the_model_check_probes_the_deployments_model_as_the_cli_asks_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BEDROCK_MODEL_ID (or ANTHROPIC_MODEL) may carry "[1m]" (1M context), which the CLI takes
    off before it asks for the model: a probe of the name with it FAILs a model that works."""
    from agentbot.doctor import _models_of

    config = tmp_path / "claude-config"
    shutil.copytree(REPO_CONFIG, config)
    agents = json.loads((config / "agents.json").read_text())
    agents["main"].pop("model", None)
    (config / "agents.json").write_text(json.dumps(agents))
    monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))

    small = ("claude-haiku-test[1m]", "ANTHROPIC_SMALL_FAST_MODEL")
    probed = [model for model, _source in _models_of("claude-sonnet-test[1m]", "BEDROCK_MODEL_ID", small)]

    assert probed[:2] == ["claude-sonnet-test", "claude-haiku-test"], probed


@pytest.mark.parametrize("status", [200, 404, None])
def test_the_model_check_shows_no_token_a_gateway_url_carries(status: int | None) -> None:
    """A gateway's base URL may carry a token in its path (so the runtime's refusal of a
    malformed one does not echo it): doctor's lines show where it asked, not that path."""
    from agentbot.doctor import _probe_anthropic

    base = "https://gw.example.com/t/not-a-real-token-0123456789"

    def answer(request: httpx.Request) -> httpx.Response:
        if status is None:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(status, json={"error": {"message": "no such model"}})

    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        check = _probe_anthropic(http, base, "k", "claude-test", "ANTHROPIC_MODEL", refused_fix="x")

    assert "not-a-real-token" not in f"{check.detail} {check.fix}", check
    assert "gw.example.com" in check.detail or status == 404, check


@pytest.mark.parametrize(
    "rule",
    [
        {"ID": "paused", "Status": "Disabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}},
        {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 1}},
        {
            "ID": "scratch",
            "Status": "Enabled",
            "Filter": {"Tag": {"Key": "scratch", "Value": "yes"}},
            "Expiration": {"Days": 1},
        },
    ],
    ids=["disabled", "another_prefix", "a_tag"],
)
def test_a_lifecycle_rule_that_cannot_delete_a_sessions_objects_fails_nothing(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: Any, capsys: Any, rule: dict[str, Any]
) -> None:
    """A rule switched off (kept to switch on later), one for another prefix of the bucket, or
    one for tagged objects (the bot tags none) deletes nothing of a session: the bucket still
    keeps the sessions' objects long enough."""
    s3, bucket = aws.client("s3"), aws.resources.bucket
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [*rules, rule]})
    try:
        stack = _stack(aws, model)

        _code, lines, out = _doctor(capsys, "--stack", stack)

        assert lines["AWS resources"].startswith("  ok"), out
    finally:
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})


def test_local_checks_name_each_shell_setting_agentbot_dev_would_refuse(
    telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The settings `agentbot dev` reads from the shell are read by the same checks: doctor does
    not pass what dev then refuses to start with."""
    clean_env.setenv("RATE_LIMIT_USER_PER_MINUTE", "lots")
    clean_env.setenv("ALLOWED_USER_IDS", "12, @someone")
    clean_env.setenv("BUDGET_CHAT_DAILY_USD", "five")
    clean_env.setenv("TELEGRAM_WEBHOOK_SECRET", "has spaces!")

    code, _lines, out = _doctor(capsys)

    assert code == 1, out
    failed = [
        line.split(maxsplit=3)[3] for line in out.splitlines() if line.startswith("  FAIL  shell settings")
    ]
    named = sorted(line.split(":")[0] for line in failed)
    assert named == [
        "ALLOWED_USER_IDS",
        "BUDGET_CHAT_DAILY_USD",
        "RATE_LIMIT_USER_PER_MINUTE",
        "TELEGRAM_WEBHOOK_SECRET",
    ], out
    assert "must be 16-256 characters" in out
    # the line `agentbot dev` refuses to start with (test_dev)
    assert "RATE_LIMIT_USER_PER_MINUTE: must be an integer, got 'lots'" in out
    assert "fix or unset it in your shell" in out
    assert "has spaces!" not in out  # the webhook secret is a secret


def test_local_checks_name_the_runtimes_settings_agentbot_dev_would_refuse(
    telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The runtime starts with the shell's environment too: doctor said ok to a MODEL_TIMEOUT_MS
    or PROCESS_SWEEP_SCOPE that `agentbot dev` then refused to start with."""
    clean_env.setenv("MODEL_TIMEOUT_MS", "10")
    clean_env.setenv("PROCESS_SWEEP_SCOPE", "everything")
    clean_env.setenv("TENANT", "Not A Tenant!")  # dev sets the runtime's own (--tenant)

    code, _lines, out = _doctor(capsys)

    assert code == 1, out
    failed = [line for line in out.splitlines() if line.startswith("  FAIL  shell settings")]
    assert len(failed) == 2, out
    assert "PROCESS_SWEEP_SCOPE: must be 'descendants' or 'uid', got 'everything'" in out
    assert "MODEL_TIMEOUT_MS: must be >= 1000, got 10" in out
    assert "fix: fix or unset it in your shell" in out


@pytest.mark.parametrize(
    ("setting", "value", "refusal"),
    [
        # MODEL_SILENCE_S=99999999999 passed every check, and then every model call of every turn
        # failed (the proxy cannot wait that long on a socket): each message ended in "the model
        # did not answer" after its retries. No turn runs longer than Lambda's 15 minutes.
        pytest.param(
            "MODEL_SILENCE_S",
            "99999999999",
            "MODEL_SILENCE_S: must be <= 899, got 99999999999",
            id="model-silence-longer-than-any-turn",
        ),
        # With MODEL_TIMEOUT_MS=60000 the CLI gave up on a silent call at 60 s, before the default
        # 90 s of silence: the proxy never saw a silent model, each message took the CLI's and
        # the queue's retries (half an hour of "typing…") and the model-silent alarm never fired.
        pytest.param(
            "MODEL_TIMEOUT_MS",
            "60000",
            "MODEL_SILENCE_S: 90 s must be shorter than MODEL_TIMEOUT_MS (60000 ms)",
            id="model-silence-cut-short-by-the-clis-timeout",
        ),
        # A SESSION_TTL_DAYS exported in the shell (say for a deploy) is read by the local
        # producer and consumer: named here instead of passed to a dev whose every message fails.
        pytest.param(
            "SESSION_TTL_DAYS", "0", "SESSION_TTL_DAYS: must be >= 1, got 0", id="session-ttl-below-a-day"
        ),
    ],
)
def test_local_checks_name_a_shell_setting_the_local_functions_would_refuse(
    telegram: LocalTelegram,
    clean_env: pytest.MonkeyPatch,
    capsys: Any,
    setting: str,
    value: str,
    refusal: str,
) -> None:
    """`agentbot dev`'s functions start with the shell's environment: doctor fails a setting
    there that they would refuse, or that would fail every turn, naming it."""
    clean_env.setenv(setting, value)

    code, _lines, out = _doctor(capsys)

    assert code == 1, out
    assert refusal in out.split("FAIL  shell settings", 1)[1], out


def test_local_checks_refuse_a_model_timeout_and_a_lease_longer_than_any_turn(
    telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """MODEL_TIMEOUT_MS and LEASE_DURATION_S of an hour passed every check: the turn's end cut
    each call first, and a crashed turn's chat waited an hour. No turn outlasts Lambda's 900 s."""
    clean_env.setenv("MODEL_TIMEOUT_MS", "3600000")
    clean_env.setenv("LEASE_DURATION_S", "3600")

    code, _lines, out = _doctor(capsys)

    assert code == 1, out
    failed = [line for line in out.splitlines() if line.startswith("  FAIL  shell settings")]
    assert len(failed) == 2, out
    assert "MODEL_TIMEOUT_MS: 3600000 ms must be at most 900000 ms (900 s, the longest a turn runs" in out
    assert "LEASE_DURATION_S: 3600 s must be at most 900 s (the longest a turn runs on Lambda)" in out


def test_local_checks_pass_good_shell_settings(
    telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    clean_env.setenv("RATE_LIMIT_USER_PER_MINUTE", "5")
    clean_env.setenv("ALLOWED_USER_IDS", "12,34")
    clean_env.setenv("MAX_TURN_COST_USD", "0.50")
    clean_env.setenv("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET)

    code, lines, out = _doctor(capsys)

    assert code == 0, out
    assert lines["shell settings"].startswith("  ok"), out


def test_local_budgets_without_a_per_turn_cap_are_a_warning_naming_max_turn_cost_usd(
    telegram: LocalTelegram, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The same warning for what `agentbot dev` takes from the shell: a BUDGET_* cap without
    MAX_TURN_COST_USD holds nothing while turns run."""
    clean_env.setenv("BUDGET_CHAT_DAILY_USD", "1")

    code, lines, out = _doctor(capsys)

    assert code == 0, out
    assert lines["shell settings"].startswith("  ok"), out
    assert lines["budgets"].startswith("  warn"), out
    assert "MAX_TURN_COST_USD: not set while BUDGET_CHAT_DAILY_USD cap" in lines["budgets"], out
    assert "BUDGET_CHAT_DAILY_USD" in lines["budgets"], out
    assert "fix: export MAX_TURN_COST_USD=" in lines["budgets"], out

    clean_env.setenv("MAX_TURN_COST_USD", "0.5")
    code, lines, out = _doctor(capsys)
    assert code == 0 and "budgets" not in lines, out


def test_a_bedrock_model_refused_locally_names_the_variable_it_came_from(
    telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Without BEDROCK_MODEL_ID the runtime asks Bedrock for ANTHROPIC_MODEL: a refusal of that id
    says to check ANTHROPIC_MODEL, not a variable that is not set."""
    from local_stack import LOCAL_CREDENTIALS

    for name, value in LOCAL_CREDENTIALS.items():
        clean_env.setenv(name, value)
    clean_env.setenv("CLAUDE_CODE_USE_BEDROCK", "1")
    clean_env.setenv("AWS_REGION", "us-east-1")
    clean_env.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", model.base_url)
    clean_env.delenv("BEDROCK_MODEL_ID", raising=False)
    clean_env.setenv("ANTHROPIC_MODEL", "anthropic.claude-misspelt-v1:0")
    model.inject(ModelFault(status=400))

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert lines["model"].startswith("  FAIL") and "anthropic.claude-misspelt-v1:0" in lines["model"], out
    assert "check the model id (ANTHROPIC_MODEL)" in lines["model"], out


# What Bedrock answers for a model the account has not enabled, or the caller may not invoke.
NOT_ENABLED = [
    ModelFault(status=400, message="The provided model identifier is invalid."),
    ModelFault(status=403, message="You don't have access to the model with the specified model ID."),
]


@pytest.mark.parametrize("refusal", NOT_ENABLED, ids=["invalid", "denied"])
def test_bedrock_refusing_the_small_model_names_its_setting_in_the_shell(
    refusal: ModelFault,
    telegram: LocalTelegram,
    model: ModelServer,
    clean_env: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """With Bedrock the CLI's background calls (and "haiku") go to ANTHROPIC_SMALL_FAST_MODEL:
    a model the account lacks fails those turns, so doctor checks it as it checks the main one."""
    from local_stack import LOCAL_CREDENTIALS

    for name, value in LOCAL_CREDENTIALS.items():
        clean_env.setenv(name, value)
    clean_env.setenv("CLAUDE_CODE_USE_BEDROCK", "1")
    clean_env.setenv("AWS_REGION", "us-east-1")
    clean_env.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", model.base_url)
    clean_env.setenv("BEDROCK_MODEL_ID", "anthropic.claude-test-v1:0")
    clean_env.setenv("ANTHROPIC_SMALL_FAST_MODEL", "anthropic.claude-small-v1:0")
    model.only_models(["anthropic.claude-test-v1:0"], refusal=refusal)

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert (
        f"ok    model          {_at_endpoint(model)} answered a 1-token request (anthropic.claude-test-v1:0)"
        in out
    )
    assert (
        f"FAIL  model          {_at_endpoint(model)} refused a 1-token request to anthropic.claude-small-v1:0"
        in out
    )
    assert "check the model id (ANTHROPIC_SMALL_FAST_MODEL)" in lines["model"], out


def test_bedrock_refusing_the_credentials_themselves_says_to_fix_them_not_to_wait(
    telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Credentials Bedrock does not know (mistyped, deleted, expired) were told to "try again
    in a minute", which never cures them."""
    _bedrock_in_the_shell(clean_env, model, "eu-west-1", "anthropic.claude-test-v1:0")
    model.inject(
        ModelFault(
            status=403,
            bedrock_error="UnrecognizedClientException",
            message="The security token included in the request is invalid.",
        )
    )

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert (
        f"FAIL  model          {_at_endpoint(model)} refused the AWS credentials "
        "(UnrecognizedClientException)"
    ) in out
    fix = lines["model"].split("fix:")[1]
    assert "AWS_PROFILE" in fix and "bedrock:InvokeModel" in fix and "try again" not in fix, fix


def test_a_bedrock_stack_has_its_small_model_checked_as_smallfastmodel(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    clean_env.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", model.base_url)
    stack = _stack(aws, model, ModelBackend="bedrock", SmallFastModel="anthropic.claude-small-v1:0")
    _set_webhook(telegram)
    model.only_models(["anthropic.claude-test-v1:0"], refusal=NOT_ENABLED[1])

    code, lines, out = _doctor(capsys, "--stack", stack)

    assert code == 1, out
    assert "anthropic.claude-small-v1:0 (AccessDeniedException)" in lines["model"], out
    assert "check the model id (SmallFastModel)" in lines["model"], out


def _subagent_on(tmp_path: Path, env: pytest.MonkeyPatch, model: str) -> None:
    """doctor reads a claude-config of the test's own whose summarizer runs on ``model``."""
    config = tmp_path / "claude-config"
    shutil.copytree(REPO_CONFIG, config)
    agents = json.loads((config / "agents.json").read_text())
    agents["agents"]["summarizer"]["model"] = model
    (config / "agents.json").write_text(json.dumps(agents))
    env.setenv("CLAUDE_CONFIG_PATH", str(config))


def _bedrock_in_the_shell(env: pytest.MonkeyPatch, model: ModelServer, region: str, model_id: str) -> None:
    from local_stack import LOCAL_CREDENTIALS

    for name, value in LOCAL_CREDENTIALS.items():
        env.setenv(name, value)
    env.setenv("CLAUDE_CODE_USE_BEDROCK", "1")
    env.setenv("AWS_REGION", region)
    env.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", model.base_url)
    env.setenv("AWS_ENDPOINT_URL_BEDROCK", model.base_url)
    env.setenv("BEDROCK_MODEL_ID", model_id)


def _at_endpoint(model: ModelServer) -> str:
    """How a check line names Bedrock reached at ``model`` (``_bedrock_in_the_shell``'s)."""
    return f"Bedrock at {model.base_url} (AWS_ENDPOINT_URL_BEDROCK_RUNTIME)"


# The inference profiles Bedrock lists for Haiku 4.5 (and another model) in a European region.
EU_PROFILES = [
    "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
    "global.anthropic.claude-haiku-4-5-20251001-v1:0",
    "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
]


@pytest.mark.parametrize(
    ("main_model", "called"),
    [
        # the region's own geography (measured: the CLI calls the eu. profile from eu-west-1)
        ("anthropic.claude-test-v1:0", "eu.anthropic.claude-haiku-4-5-20251001-v1:0"),
        # the main agent's geography when its id has one
        ("global.anthropic.claude-test-v1:0", "global.anthropic.claude-haiku-4-5-20251001-v1:0"),
    ],
)
def test_a_subagents_anthropic_api_id_is_checked_as_the_profile_the_cli_calls_on_bedrock(
    main_model: str,
    called: str,
    tmp_path: Path,
    telegram: LocalTelegram,
    model: ModelServer,
    clean_env: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """agents.json may name "claude-haiku-4-5-20251001": with Bedrock the CLI calls its inference
    profile, which the account has. doctor asked Bedrock for the id as written and FAILed a
    configuration whose turns answer."""
    _subagent_on(tmp_path, clean_env, "claude-haiku-4-5-20251001")
    _bedrock_in_the_shell(clean_env, model, "eu-west-1", main_model)
    model.inference_profiles(EU_PROFILES)
    model.only_models([main_model, called], refusal=NOT_ENABLED[0])

    code, _lines, out = _doctor(capsys)

    assert code == 0, out
    assert (
        f"ok    model          {_at_endpoint(model)} answered a 1-token request ({called}, agents.json: "
        "agents.summarizer.model, claude-haiku-4-5-20251001 on Bedrock)"
    ) in out
    assert model.refused_calls == [], [c.model_id for c in model.refused_calls]


def test_outside_the_us_eu_and_asia_pacific_a_subagents_id_is_checked_as_its_global_profile(
    tmp_path: Path,
    telegram: LocalTelegram,
    model: ModelServer,
    clean_env: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """The CLI prefers the global profile in a region of no geography of its own (its region
    table: us-, eu-, ap- only): doctor probed the us. one Bedrock also listed there, which the
    account may allow while the turns' calls go to the global one."""
    global_profile = "global.anthropic.claude-haiku-4-5-20251001-v1:0"
    _subagent_on(tmp_path, clean_env, "claude-haiku-4-5-20251001")
    _bedrock_in_the_shell(clean_env, model, "ca-central-1", "anthropic.claude-test-v1:0")
    model.inference_profiles(["us.anthropic.claude-haiku-4-5-20251001-v1:0", global_profile])
    model.only_models(["anthropic.claude-test-v1:0", global_profile], refusal=NOT_ENABLED[0])

    code, _lines, out = _doctor(capsys)

    assert code == 0, out
    assert f"({global_profile}, agents.json: agents.summarizer.model" in out, out


def test_the_region_prefix_the_operator_set_chooses_the_profile_a_subagents_id_is_checked_as(
    tmp_path: Path,
    telegram: LocalTelegram,
    model: ModelServer,
    clean_env: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """ANTHROPIC_BEDROCK_REGION_PREFIX=global makes the CLI call the global profile from
    eu-west-1: doctor probed the eu. one, which the account need not allow, and FAILed a
    configuration whose turns answer (or passed one whose turns are refused)."""
    global_profile = "global.anthropic.claude-haiku-4-5-20251001-v1:0"
    _subagent_on(tmp_path, clean_env, "claude-haiku-4-5-20251001")
    _bedrock_in_the_shell(clean_env, model, "eu-west-1", "anthropic.claude-test-v1:0")
    clean_env.setenv("ANTHROPIC_BEDROCK_REGION_PREFIX", "global")
    model.inference_profiles(EU_PROFILES)
    model.only_models(["anthropic.claude-test-v1:0", global_profile], refusal=NOT_ENABLED[0])

    code, _lines, out = _doctor(capsys)

    assert code == 0, out
    assert f"({global_profile}, agents.json: agents.summarizer.model" in out, out
    assert model.refused_calls == [], [c.model_id for c in model.refused_calls]


@pytest.mark.parametrize("gateway_answers", [True, False], ids=["gateway answers", "gateway refuses"])
def test_with_a_bedrock_gateway_the_model_check_asks_the_gateway_the_turns_call(
    gateway_answers: bool,
    telegram: LocalTelegram,
    model: ModelServer,
    clean_env: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """The runtime sends every Bedrock call to ANTHROPIC_BEDROCK_BASE_URL: doctor asked
    bedrock-runtime instead, and passed a model the gateway refuses in every turn (or failed
    one it answers). The line names the setting."""
    _bedrock_in_the_shell(clean_env, model, "eu-west-1", "anthropic.claude-test-v1:0")
    with ModelServer(echo_responder) as gateway:
        clean_env.setenv("ANTHROPIC_BEDROCK_BASE_URL", gateway.base_url)
        (gateway if not gateway_answers else model).only_models(
            ["anthropic.other-v1:0"], refusal=NOT_ENABLED[0]
        )

        code, lines, out = _doctor(capsys)
        asked = [c.model_id for c in gateway.model_calls]

    assert asked == ["anthropic.claude-test-v1:0"], (asked, out)
    assert f"Bedrock gateway at {gateway.base_url} (ANTHROPIC_BEDROCK_BASE_URL)" in lines["model"], out
    if gateway_answers:
        assert code == 0 and lines["model"].startswith("  ok"), out
    else:
        assert code == 1 and "refused a 1-token request to anthropic.claude-test-v1:0" in lines["model"], out


def _no_aws_credentials(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.delenv(name, raising=False)
    (tmp_path / "aws-config").write_text("[default]\n")
    env.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-config"))
    env.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize("gateway_answers", [True, False], ids=["gateway answers", "gateway refuses"])
def test_a_bedrock_gateway_that_authenticates_callers_itself_is_asked_without_aws_credentials(
    gateway_answers: bool,
    tmp_path: Path,
    telegram: LocalTelegram,
    model: ModelServer,
    clean_env: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """The runtime and `agentbot dev` take a gateway without AWS credentials (its own
    authentication stands in); doctor failed it "no AWS credentials found" and never asked
    the gateway whether it answers the model."""
    _bedrock_in_the_shell(clean_env, model, "eu-west-1", "anthropic.claude-test-v1:0")
    _no_aws_credentials(clean_env, tmp_path)
    with ModelServer(echo_responder) as gateway:
        clean_env.setenv("ANTHROPIC_BEDROCK_BASE_URL", gateway.base_url)
        if not gateway_answers:
            gateway.only_models(["anthropic.other-v1:0"], refusal=NOT_ENABLED[0])

        code, lines, out = _doctor(capsys)
        asked = [c.model_id for c in gateway.model_calls]

    assert asked == ["anthropic.claude-test-v1:0"], (asked, out)
    assert "no AWS credentials" not in out, out
    if gateway_answers:
        assert code == 0 and lines["model"].startswith("  ok"), out
        assert f"Bedrock gateway at {gateway.base_url} (ANTHROPIC_BEDROCK_BASE_URL) answered" in out, out
    else:
        assert code == 1 and "refused a 1-token request to anthropic.claude-test-v1:0" in lines["model"], out


def test_without_aws_credentials_an_anthropic_api_id_on_a_gateway_is_a_warning_not_a_failure(
    tmp_path: Path, telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Which inference profile the CLI calls for claude-… only Bedrock's listing says, and
    Bedrock lists to AWS credentials only: doctor says it could not check, and how to."""
    _bedrock_in_the_shell(clean_env, model, "eu-west-1", "claude-haiku-4-5-20251001")
    _no_aws_credentials(clean_env, tmp_path)
    clean_env.setenv("ANTHROPIC_BEDROCK_BASE_URL", model.base_url)

    code, lines, out = _doctor(capsys)

    assert code == 0 and lines["model"].startswith("  warn"), out
    assert "write the inference-profile id the gateway serves in BEDROCK_MODEL_ID" in lines["model"], out


def test_without_aws_credentials_and_without_a_gateway_bedrock_still_fails_naming_the_credentials(
    tmp_path: Path, telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    _bedrock_in_the_shell(clean_env, model, "eu-west-1", "anthropic.claude-test-v1:0")
    _no_aws_credentials(clean_env, tmp_path)

    code, lines, out = _doctor(capsys)

    assert code == 1 and "Bedrock: no AWS credentials found" in lines["model"], out
    assert model.model_calls == [], out


@pytest.mark.parametrize("process", FAILING_CREDENTIAL_PROCESSES)
def test_a_profile_whose_credential_process_fails_is_named_without_its_output(
    process: str,
    tmp_path: Path,
    telegram: LocalTelegram,
    model: ModelServer,
    clean_env: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """Said only "the AWS credentials cannot be read (CredentialRetrievalError)": not which
    profile, nor that its credential_process is what failed (what it wrote may be a credential).
    One whose program is not there, or that writes no JSON, stopped doctor with a traceback."""
    _bedrock_in_the_shell(clean_env, model, "eu-west-1", "anthropic.claude-test-v1:0")
    _no_aws_credentials(clean_env, tmp_path)
    written = "PROCESS-WROTE-" + uuid.uuid4().hex
    (tmp_path / "aws-config").write_text(
        f"[profile broken]\nregion = eu-west-1\ncredential_process = {process.format(written=written)}\n"
    )
    clean_env.setenv("AWS_PROFILE", "broken")

    code, lines, out = _doctor(capsys)

    assert code == 1 and written not in out, out
    assert "Bedrock: AWS profile broken: its credential_process failed" in lines["model"], out
    assert "run the command in a shell to see why" in lines["model"], out
    assert model.model_calls == [], out


def test_bedrock_is_asked_where_the_runtime_calls_it_not_at_every_services_endpoint(
    telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """AWS_ENDPOINT_URL (the local stack's, in `agentbot dev`) is no Bedrock: the runtime calls
    bedrock-runtime for the model, so doctor must not pass a model that endpoint answers."""
    _bedrock_in_the_shell(clean_env, model, "eu-west-1", "anthropic.claude-test-v1:0")
    clean_env.delenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME")
    clean_env.setenv("AWS_ENDPOINT_URL", model.base_url)
    clean_env.setenv("AWS_MAX_ATTEMPTS", "1")

    code, lines, out = _doctor(capsys)

    # bedrock-runtime.eu-west-1.amazonaws.com: unreachable offline, refusing these credentials online
    assert code == 1 and lines["model"].startswith("  FAIL"), out
    assert model.model_calls == [], out


def test_a_bedrock_gateway_url_without_its_scheme_fails_naming_the_setting(
    telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    _bedrock_in_the_shell(clean_env, model, "eu-west-1", "anthropic.claude-test-v1:0")
    clean_env.setenv("ANTHROPIC_BEDROCK_BASE_URL", "gateway.example.com/bedrock")

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert "ANTHROPIC_BEDROCK_BASE_URL must be an http(s) URL" in lines["model"], out
    assert model.model_calls == [], out


@pytest.mark.parametrize("endpoint", ["127.0.0.1:9", "https://user:secret@bedrock.example.com"])
def test_a_bedrock_runtime_endpoint_the_runtime_cannot_call_fails_naming_the_setting(
    endpoint: str, telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The runtime sends Bedrock calls to AWS_ENDPOINT_URL_BEDROCK_RUNTIME, and refuses one it
    cannot call as written (no scheme, a user:password@) at start: doctor stopped with a
    traceback, or passed a user:password@ the runtime would drop. The line names the setting,
    as for ANTHROPIC_BEDROCK_BASE_URL, and never repeats its value."""
    _bedrock_in_the_shell(clean_env, model, "eu-west-1", "anthropic.claude-test-v1:0")
    clean_env.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", endpoint)

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert "AWS_ENDPOINT_URL_BEDROCK_RUNTIME must be an http(s) URL" in lines["model"], out
    assert "secret" not in out and model.model_calls == [], out


def test_a_bedrock_runtime_endpoint_that_does_not_answer_is_named_as_what_to_check(
    telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """With AWS_ENDPOINT_URL_BEDROCK_RUNTIME set, the calls go there, not to the region's
    bedrock-runtime: "check the network and region" sent the operator to the wrong setting. The
    line shows the endpoint's origin, not a path that may carry a token."""
    _bedrock_in_the_shell(clean_env, model, "eu-west-1", "anthropic.claude-test-v1:0")
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens
    clean_env.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", f"{closed}/bedrock/secret-path-token")
    clean_env.setenv("AWS_MAX_ATTEMPTS", "1")

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert f"cannot reach Bedrock at {closed}/… (AWS_ENDPOINT_URL_BEDROCK_RUNTIME)" in lines["model"], out
    fix = lines["model"].split("fix:")[1]
    assert "AWS_ENDPOINT_URL_BEDROCK_RUNTIME" in fix and "region" not in fix, fix
    assert "secret-path-token" not in out


def test_a_subagent_alias_written_with_spaces_around_is_not_probed_as_a_model_id(
    tmp_path: Path,
    telegram: LocalTelegram,
    model: ModelServer,
    clean_env: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """The CLI reads an alias whatever its case and the spaces around it (the build lets
    " haiku " through): doctor asked Bedrock for " haiku " as a model id and FAILed a
    configuration whose turns answer."""
    _subagent_on(tmp_path, clean_env, " haiku ")
    _bedrock_in_the_shell(clean_env, model, "eu-west-1", "anthropic.claude-test-v1:0")
    model.only_models(["anthropic.claude-test-v1:0"], refusal=NOT_ENABLED[0])

    code, _lines, out = _doctor(capsys)

    assert code == 0, out
    assert model.refused_calls == [], [c.model_id for c in model.refused_calls]


def test_a_subagents_anthropic_api_id_bedrock_has_no_profile_for_fails_naming_its_field(
    tmp_path: Path, telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The CLI sends an id its catalog does not know ("claude-haiku-4-5", no date) to Bedrock as
    it is, which Bedrock refuses in every turn that uses the subagent."""
    _subagent_on(tmp_path, clean_env, "claude-haiku-4-5")
    _bedrock_in_the_shell(clean_env, model, "eu-west-1", "anthropic.claude-test-v1:0")
    model.inference_profiles(EU_PROFILES)

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert lines["model"].startswith("  FAIL"), out
    assert "no inference profile for claude-haiku-4-5 in eu-west-1" in lines["model"], out
    assert "fix: name a model or inference-profile id enabled in the account in agents.json: " in out
    assert "agents.summarizer.model" in lines["model"].split("fix:")[1], out


def test_bedrock_models_set_as_anthropic_api_ids_are_checked_as_the_profiles_the_cli_calls(
    telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """BEDROCK_MODEL_ID "claude-sonnet-4-5-20250929" works: the CLI calls its profile of the
    region (measured: "eu.anthropic.…-v1:0" from eu-west-1), as for the small model. doctor
    asked Bedrock for the id as written, which it refuses, and FAILed a set-up whose turns answer."""
    _bedrock_in_the_shell(clean_env, model, "eu-west-1", "claude-sonnet-4-5-20250929")
    clean_env.setenv("ANTHROPIC_SMALL_FAST_MODEL", "claude-haiku-4-5-20251001")
    model.inference_profiles(EU_PROFILES)
    model.only_models([EU_PROFILES[2], EU_PROFILES[0]], refusal=NOT_ENABLED[0])

    code, _lines, out = _doctor(capsys)

    assert code == 0, out
    assert (
        f"ok    model          {_at_endpoint(model)} answered a 1-token request ({EU_PROFILES[2]}, "
        "BEDROCK_MODEL_ID, claude-sonnet-4-5-20250929 on Bedrock)"
    ) in out
    assert (
        f"ok    model          {_at_endpoint(model)} answered a 1-token request ({EU_PROFILES[0]}, "
        "ANTHROPIC_SMALL_FAST_MODEL, claude-haiku-4-5-20251001 on Bedrock)"
    ) in out
    assert model.refused_calls == [], [c.model_id for c in model.refused_calls]


def test_a_stacks_bedrockmodelid_written_as_an_anthropic_api_id_is_checked_as_its_profile(
    aws: Any, telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    clean_env.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", model.base_url)
    clean_env.setenv("AWS_ENDPOINT_URL_BEDROCK", model.base_url)
    stack = _stack(aws, model, ModelBackend="bedrock", BedrockModelId="claude-sonnet-4-5-20250929")
    _set_webhook(telegram)
    region = aws.client("bedrock").meta.region_name
    profile = f"{region.split('-')[0]}.anthropic.claude-sonnet-4-5-20250929-v1:0"
    model.inference_profiles([profile, "global.anthropic.claude-sonnet-4-5-20250929-v1:0"])
    model.only_models([profile], refusal=NOT_ENABLED[0])

    _code, lines, out = _doctor(capsys, "--stack", stack)

    assert f"Bedrock answered a 1-token request ({profile}, BedrockModelId, claude-sonnet-4-5" in out
    assert lines["model"].startswith("  ok"), out
    assert model.refused_calls == [], [c.model_id for c in model.refused_calls]


def test_credentials_not_allowed_to_list_inference_profiles_fail_saying_which_permission(
    tmp_path: Path, telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Without bedrock:ListInferenceProfiles doctor cannot tell which profile the CLI calls for
    an agents.json Anthropic API id: it says so, and how to let it check or to name the profile."""
    _subagent_on(tmp_path, clean_env, "claude-haiku-4-5-20251001")
    _bedrock_in_the_shell(clean_env, model, "eu-west-1", "anthropic.claude-test-v1:0")
    model.refuse_inference_profiles()

    code, lines, out = _doctor(capsys)

    assert code == 1, out
    assert lines["model"].startswith("  FAIL"), out
    assert (
        "Bedrock would not list its inference profiles in eu-west-1 (AccessDeniedException): the CLI "
        "calls the profile of claude-haiku-4-5-20251001 (agents.json: agents.summarizer.model) there"
    ) in lines["model"], out
    assert "allowed bedrock:ListInferenceProfiles, or write the Bedrock inference-profile id in " in out
    # nothing was sent to the model for it: doctor cannot know which id that would be
    assert not [c for c in model.model_calls if "haiku" in (c.model_id or "")], model.model_calls


def test_a_stack_subagents_anthropic_api_id_is_checked_as_its_bedrock_profile(
    tmp_path: Path,
    aws: Any,
    telegram: LocalTelegram,
    model: ModelServer,
    clean_env: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """The same for `doctor --stack`: the profile of BedrockModelId's geography is probed."""
    _subagent_on(tmp_path, clean_env, "claude-haiku-4-5-20251001")
    clean_env.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", model.base_url)
    clean_env.setenv("AWS_ENDPOINT_URL_BEDROCK", model.base_url)
    main_model = "eu.anthropic.claude-test-v1:0"
    stack = _stack(aws, model, ModelBackend="bedrock", BedrockModelId=main_model)
    _set_webhook(telegram)
    model.inference_profiles(["us.anthropic.claude-haiku-4-5-20251001-v1:0", *EU_PROFILES])
    model.only_models([main_model, EU_PROFILES[0]], refusal=NOT_ENABLED[1])

    code, _lines, out = _doctor(capsys, "--stack", stack)

    assert code == 0, out
    assert f"Bedrock answered a 1-token request ({EU_PROFILES[0]}, agents.json: agents.summarizer" in out
    assert not [line for line in out.splitlines() if line.startswith("FAIL  model")], out


@pytest.mark.parametrize("spelled", ["yes", "on", "True"])
def test_bedrock_turned_on_as_the_runtime_reads_it_is_checked_as_bedrock(
    spelled: str, telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The runtime takes yes and on too: doctor said "dev uses the offline demo model" (and dev's
    banner said so) while the runtime it started used Bedrock."""
    from local_stack import LOCAL_CREDENTIALS

    for name, value in LOCAL_CREDENTIALS.items():
        clean_env.setenv(name, value)
    clean_env.setenv("CLAUDE_CODE_USE_BEDROCK", spelled)
    clean_env.setenv("AWS_REGION", "us-east-1")
    clean_env.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", model.base_url)
    clean_env.setenv("BEDROCK_MODEL_ID", "anthropic.claude-test-v1:0")

    code, lines, out = _doctor(capsys)

    assert code == 0 and lines["model"].startswith("  ok"), out
    assert "anthropic.claude-test-v1:0" in lines["model"], out


def test_a_key_and_bedrock_both_set_fail_the_model_check_as_agentbot_dev_refuses_them(
    telegram: LocalTelegram, model: ModelServer, clean_env: pytest.MonkeyPatch, capsys: Any
) -> None:
    """doctor probed Anthropic's API with the key while the runtime dev started read Bedrock."""
    clean_env.setenv("ANTHROPIC_API_KEY", API_KEY)
    clean_env.setenv("ANTHROPIC_BASE_URL", model.base_url)
    clean_env.setenv("CLAUDE_CODE_USE_BEDROCK", "1")

    code, lines, out = _doctor(capsys)

    assert code == 1 and model.model_calls == [], out
    assert "FAIL  model          ANTHROPIC_API_KEY and CLAUDE_CODE_USE_BEDROCK are both set" in lines["model"]
    assert "fix: unset CLAUDE_CODE_USE_BEDROCK for Anthropic's API, or ANTHROPIC_API_KEY" in lines["model"]


@pytest.mark.parametrize(
    "written",
    ["http://user:secret@{host}", "HTTP://{host}", "http://{host}?key=1", "http://{host}/a b"],
)
def test_dev_and_doctor_take_the_model_base_url_as_the_runtime_does(
    model: ModelServer, clean_env: pytest.MonkeyPatch, written: str
) -> None:
    """dev's model check and doctor's probe reached these and said nothing, and the
    runtime dev started refused each at every turn."""
    from agent_runtime import load_settings
    from session_core import ConfigError

    from agentbot.dev import DevSetupError, _check_model_api
    from agentbot.doctor import Target, check_model

    base = written.format(host=model.base_url.removeprefix("http://"))
    runtime = {"SESSIONS_TABLE": "t", "SESSIONS_BUCKET": "b", "ANTHROPIC_API_KEY_PARAMETER": "/k"}
    with pytest.raises(ConfigError, match="ANTHROPIC_BASE_URL"):
        load_settings({**runtime, "ANTHROPIC_BASE_URL": base})

    with pytest.raises(DevSetupError, match="ANTHROPIC_BASE_URL: must be an http"):
        _check_model_api(base, API_KEY, "claude-sonnet-4-5")
    clean_env.setenv("ANTHROPIC_API_KEY", API_KEY)
    clean_env.setenv("ANTHROPIC_BASE_URL", base)
    with httpx.Client(timeout=10) as http:
        found = check_model(Target(clients=lambda _: None, http=http, stack=None, telegram_base=""))
    checks = found if isinstance(found, list) else [found]
    assert checks[0].status == "FAIL" and "ANTHROPIC_BASE_URL: must be an http" in checks[0].detail, checks
    assert "secret" not in checks[0].detail + checks[0].fix


def test_the_shell_check_reads_a_model_base_url_dev_leaves_to_the_runtime_with_bedrock() -> None:
    """With Bedrock dev gives the runtime the shell's ANTHROPIC_BASE_URL as it is (only the
    demo model has dev set its own), and the runtime refuses a malformed one at every turn:
    the shell check (dev's start, doctor's `shell settings`) left it out all the same."""
    from agentbot.preflight import ConfigurationProblem, check_dev_shell

    shell = {
        "CLAUDE_CODE_USE_BEDROCK": "1",
        "AWS_REGION": "eu-west-1",
        "ANTHROPIC_BASE_URL": "gateway.example.com",
    }
    with pytest.raises(ConfigurationProblem) as caught:
        check_dev_shell(shell)
    assert caught.value.where == "ANTHROPIC_BASE_URL", caught.value
    check_dev_shell({**shell, "CLAUDE_CODE_USE_BEDROCK": ""})  # the demo model: dev sets its own


def test_the_shell_check_refuses_a_model_invoke_role_dev_would_not_use() -> None:
    """dev signs Bedrock with the developer's own credentials and assumes no role: doctor's
    `shell settings` says what dev's start says for a MODEL_INVOKE_ROLE_ARN left in the shell."""
    from agentbot.preflight import ConfigurationProblem, check_dev_shell

    shell = {
        "CLAUDE_CODE_USE_BEDROCK": "1",
        "AWS_REGION": "eu-west-1",
        "MODEL_INVOKE_ROLE_ARN": "arn:aws:iam::123456789012:role/agentbot-model-invoke",
    }
    with pytest.raises(ConfigurationProblem) as caught:
        check_dev_shell(shell)
    assert caught.value.where == "MODEL_INVOKE_ROLE_ARN", caught.value
    assert "unset MODEL_INVOKE_ROLE_ARN" in str(caught.value)
    check_dev_shell({**shell, "CLAUDE_CODE_USE_BEDROCK": ""})  # no Bedrock: the role is never used
