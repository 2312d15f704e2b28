"""`agentbot webhook ...` and `agentbot dlq ...` against a local Bot API server and moto."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from local_stack import LocalTelegram, TelegramFault
from sqs_consumer import HELP_TEXT
from telegram_core import InboundMessage, QueueEnvelope, encode_envelope

from agentbot.cli import build_parser, main
from agentbot.ops import ALLOWED_UPDATES, operator_aws_clients
from tests.operator_commands import reach_the_fixtures_through_a_profile, run_at_the_shells_endpoints

BOT_TOKEN = "123456789:OPS-test-token-not-a-real-one"
WEBHOOK_SECRET = "ops-test-webhook-secret-0123456789"
WEBHOOK_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/webhook"


def _put_secret(aws: Any, value: str) -> str:
    # Unique names: read_secret caches per process by parameter name.
    name = f"/agentbot-test/{uuid.uuid4().hex}"
    aws.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString")
    return name


@pytest.fixture
def telegram() -> Any:
    with LocalTelegram(token=BOT_TOKEN) as server:
        yield server


@pytest.fixture
def secrets_in_ssm(aws: Any, telegram: LocalTelegram, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deployed set-up: secrets in SSM, named by the variables the functions get."""
    monkeypatch.setenv("BOT_TOKEN_PARAMETER", _put_secret(aws, BOT_TOKEN))
    monkeypatch.setenv("WEBHOOK_SECRET_PARAMETER", _put_secret(aws, WEBHOOK_SECRET))
    monkeypatch.setenv("TELEGRAM_API_BASE", telegram.base_url)
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.delenv("TELEGRAM_WEBHOOK_SECRET", raising=False)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run_at_the_shells_endpoints(argv)
    out, err = capsys.readouterr()
    assert BOT_TOKEN not in out + err and WEBHOOK_SECRET not in out + err, "a secret was printed"
    return code, out, err


def _run_as_the_operator(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert BOT_TOKEN not in out + err and WEBHOOK_SECRET not in out + err, "a secret was printed"
    return code, out, err


# ---------------------------------------------------------------------------- webhook


def test_webhook_set_sends_secret_and_handled_update_types_and_prints_telegram_report(
    secrets_in_ssm: None, telegram: LocalTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "webhook", "set", "--url", WEBHOOK_URL)

    assert code == 0
    assert telegram.webhook == {
        "url": WEBHOOK_URL,
        "secret_token": WEBHOOK_SECRET,
        "allowed_updates": list(ALLOWED_UPDATES),
    }
    assert "webhook set" in out and WEBHOOK_URL in out and "pending updates:  0" in out
    assert [c.method for c in telegram.calls()] == ["setWebhook", "getWebhookInfo", "setMyCommands"]


def test_webhook_set_fills_telegrams_command_menu_with_the_commands_help_lists(
    secrets_in_ssm: None, telegram: LocalTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    """Typing "/" in the apps shows the bot's menu: without setMyCommands it was empty, and
    nobody learnt of /new, /stop or /usage without first thinking of sending /help."""
    code, out, _ = _run(capsys, "webhook", "set", "--url", WEBHOOK_URL)

    assert code == 0
    menu = {entry["command"]: entry["description"] for entry in telegram.commands}
    listed = [line.split(":")[0].split()[0] for line in HELP_TEXT.splitlines() if line.startswith("/")]
    assert sorted(menu) == sorted(name.removeprefix("/") for name in listed)
    assert menu["new"] == "Start a fresh conversation"
    assert menu["help"] == "What I can do and how to talk to me"
    assert "command menu: /stop, /new, /status, /cost, /usage, /permissions, /help" in out


def test_webhook_set_whose_command_menu_is_refused_still_reports_the_webhook_set(
    secrets_in_ssm: None, telegram: LocalTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    """setMyCommands comes after setWebhook: a 429 on it failed the whole command, so the
    operator read an error (and no report) for a webhook that Telegram had set."""
    telegram.inject("setMyCommands", TelegramFault.retry_after_seconds(7))

    code, out, _ = _run(capsys, "webhook", "set", "--url", WEBHOOK_URL)

    assert code == 0
    assert telegram.webhook["url"] == WEBHOOK_URL
    assert "webhook set" in out and "pending updates:  0" in out
    assert "command menu: not set (setMyCommands: Too Many Requests: retry after 7)" in out
    assert "run `agentbot webhook set` again" in out


def test_allowed_updates_are_the_types_the_producer_handles() -> None:
    assert set(ALLOWED_UPDATES) == {
        "message",
        "edited_message",
        "callback_query",
        "my_chat_member",
        "stopped_message_generation",
    }


def test_webhook_info_and_delete_report_what_telegram_says(
    secrets_in_ssm: None, telegram: LocalTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "webhook", "set", "--url", WEBHOOK_URL)[0] == 0

    code, out, _ = _run(capsys, "webhook", "info")
    assert code == 0 and f"url:              {WEBHOOK_URL}" in out

    code, out, _ = _run(capsys, "webhook", "delete", "--drop-pending-updates")
    assert code == 0 and "webhook deleted" in out and "(none: no webhook set)" in out
    assert telegram.webhook == {}
    assert telegram.calls("deleteWebhook")[0].params["drop_pending_updates"] is True


def test_token_and_secret_from_environment_work_without_ssm(
    telegram: LocalTelegram, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET)
    code, _, _ = _run(capsys, "webhook", "set", "--url", WEBHOOK_URL, "--api-base", telegram.base_url)
    assert code == 0 and telegram.webhook["secret_token"] == WEBHOOK_SECRET


def test_telegram_refusal_is_reported_without_the_token(
    aws: Any, telegram: LocalTelegram, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "987654321:WRONG-token-not-a-real-one"
    monkeypatch.setenv("BOT_TOKEN_PARAMETER", _put_secret(aws, wrong))
    monkeypatch.setenv("TELEGRAM_API_BASE", telegram.base_url)

    code, out, err = _run(capsys, "webhook", "info")

    assert code == 1
    assert "Telegram getWebhookInfo failed (401): Unauthorized" in err
    assert wrong not in out + err


def test_unreachable_bot_api_is_an_error_that_does_not_quote_the_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    with LocalTelegram() as stopped:
        dead_base = stopped.base_url  # nothing listens here once the block ends
    code, _, err = _run(capsys, "webhook", "info", "--api-base", dead_base)
    assert code == 1 and "cannot reach the Bot API" in err


def test_missing_settings_name_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("TELEGRAM_BOT_TOKEN", "BOT_TOKEN_PARAMETER", "AGENTBOT_STACK"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = _run(capsys, "webhook", "info")
    assert code == 1 and "TELEGRAM_BOT_TOKEN" in err and "--token-parameter" in err


def test_missing_token_says_the_token_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("TELEGRAM_BOT_TOKEN", "BOT_TOKEN_PARAMETER", "AGENTBOT_STACK"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = _run(capsys, "webhook", "info")
    assert code == 1
    assert err.startswith("error: the bot token is missing:"), err
    assert "is not known" not in err


@pytest.mark.parametrize(
    ("url", "secret", "named"),
    [
        (WEBHOOK_URL, "bad secret!", "webhook secret (TELEGRAM_WEBHOOK_SECRET)"),
        (WEBHOOK_URL, "x" * 257, "webhook secret (TELEGRAM_WEBHOOK_SECRET)"),
        (WEBHOOK_URL, "mysecret", "webhook secret (TELEGRAM_WEBHOOK_SECRET)"),
        ("http://abc123.example.com/webhook", WEBHOOK_SECRET, "--url"),
        ("abc123.example.com/webhook", WEBHOOK_SECRET, "--url"),
    ],
    ids=["space-and-bang", "too-long", "guessable", "plain-http", "no-scheme"],
)
def test_webhook_set_refuses_what_telegram_would_refuse_before_calling_it(
    url: str,
    secret: str,
    named: str,
    telegram: LocalTelegram,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", secret)
    code, out, err = _run(capsys, "webhook", "set", "--url", url, "--api-base", telegram.base_url)
    assert code == 1 and err.startswith(f"error: {named}:"), err
    assert secret not in out + err
    assert telegram.calls("setWebhook") == [] and telegram.webhook == {}


@pytest.mark.parametrize("connections", ["0", "101"])
def test_webhook_set_refuses_max_connections_telegram_would_refuse_before_calling_it(
    connections: str,
    telegram: LocalTelegram,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET)
    code, _, err = _run(
        capsys,
        "webhook",
        "set",
        "--url",
        WEBHOOK_URL,
        "--max-connections",
        connections,
        "--api-base",
        telegram.base_url,
    )
    assert code == 1 and err.startswith("error: --max-connections:") and "1-100" in err, err
    assert telegram.calls("setWebhook") == []


def test_dlq_list_with_nothing_set_names_stack_and_region(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (
        "DEAD_LETTER_QUEUE_URL",
        "AGENTBOT_STACK",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/agentbot-test-config")
    code, _, err = _run(capsys, "dlq", "list")
    assert code == 1 and "--stack" in err and "--region" in err and "--dlq-url" in err, err
    assert "You must specify a region" not in err
    # a queue given but no region: the flag to pass is named too
    code, _, err = _run(capsys, "dlq", "list", "--dlq-url", "https://sqs.example/1/q.fifo")
    assert code == 1 and "--region" in err and "You must specify a region" not in err, err


@pytest.mark.parametrize(
    ("argv", "own", "foreign"),
    [
        (["webhook", "set"], "--secret-parameter", "--dlq-url"),
        (["webhook", "info"], "--token-parameter", "--max-connections"),
        (["dlq", "list"], "--dlq-url", "--session"),
        (["dlq", "redrive"], "--session", "--token-parameter"),
    ],
)
def test_each_action_has_its_own_help(
    argv: list[str], own: str, foreign: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert out.startswith(f"usage: agentbot {' '.join(argv)} ")
    assert own in out and foreign not in out


def test_missing_ssm_parameter_is_named(
    aws: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOT_TOKEN_PARAMETER", "/agentbot-test/does-not-exist")
    code, _, err = _run(capsys, "webhook", "info")
    assert code == 1 and "/agentbot-test/does-not-exist" in err


# ------------------------------------------------------------------------ --stack


_STACK_TEMPLATE = {
    "Parameters": {
        "BotTokenParameterName": {"Type": "String"},
        "WebhookSecretParameterName": {"Type": "String"},
        "DlqUrl": {"Type": "String"},
        "QueueUrl": {"Type": "String"},
        "Table": {"Type": "String", "Default": "unused"},
    },
    "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
    "Outputs": {
        "WebhookUrl": {"Value": WEBHOOK_URL},
        "DeadLetterQueueUrl": {"Value": {"Ref": "DlqUrl"}},
        "InboundQueueUrl": {"Value": {"Ref": "QueueUrl"}},
        "SessionsTableName": {"Value": {"Ref": "Table"}},
    },
}


def _stack(aws: Any) -> str:
    """A stack in moto whose secrets and queues are the ``aws`` fixture's."""
    stack = f"agentbot-{uuid.uuid4().hex[:8]}"
    aws.client("cloudformation").create_stack(
        StackName=stack,
        TemplateBody=json.dumps(_STACK_TEMPLATE),
        Parameters=[
            {"ParameterKey": "BotTokenParameterName", "ParameterValue": _put_secret(aws, BOT_TOKEN)},
            {
                "ParameterKey": "WebhookSecretParameterName",
                "ParameterValue": _put_secret(aws, WEBHOOK_SECRET),
            },
            {"ParameterKey": "DlqUrl", "ParameterValue": aws.resources.dlq_url},
            {"ParameterKey": "QueueUrl", "ParameterValue": aws.resources.queue_url},
            {"ParameterKey": "Table", "ParameterValue": aws.resources.table},
        ],
    )
    return stack


def test_stack_option_reads_webhook_url_and_secret_parameters_from_the_stack(
    aws: Any, telegram: LocalTelegram, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = _stack(aws)
    monkeypatch.setenv("TELEGRAM_API_BASE", telegram.base_url)
    for name in ("BOT_TOKEN_PARAMETER", "WEBHOOK_SECRET_PARAMETER", "DEAD_LETTER_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)

    code, _, _ = _run(capsys, "webhook", "set", "--stack", stack)
    assert code == 0
    assert telegram.webhook["url"] == WEBHOOK_URL and telegram.webhook["secret_token"] == WEBHOOK_SECRET

    _send_dead_letter(aws, update_id=77, session_key="default/42/0")
    code, out, _ = _run(capsys, "dlq", "list", "--stack", stack, "--wait", "0")
    assert code == 0 and "77" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["dlq", "redrive", "--wait", "0"],
        ["dlq", "list", "--wait", "0"],
        ["webhook", "set"],
        ["chat", "default/42/0"],
    ],
    ids=["dlq_redrive", "dlq_list", "webhook_set", "chat"],
)
def test_a_stack_is_operated_in_aws_not_at_an_endpoint_left_in_the_shell(
    argv: list[str],
    aws: Any,
    telegram: LocalTelegram,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """AWS_ENDPOINT_URL left in the shell (agentbot dev's moto, here the fixtures') reached the
    commands' clients: `dlq redrive --stack NAME` moved the dead letters of a local stack of
    that name, `webhook set` pointed the bot at its webhook."""
    stack = _stack(aws)  # in moto, at the shell's AWS_ENDPOINT_URL only
    _send_dead_letter(aws, update_id=77, session_key="default/42/0")
    monkeypatch.setenv("TELEGRAM_API_BASE", telegram.base_url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    for name in ("BOT_TOKEN_PARAMETER", "WEBHOOK_SECRET_PARAMETER", "DEAD_LETTER_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)

    code, out, err = _run_as_the_operator(capsys, *argv, "--stack", stack)

    # AWS itself has no such stack (offline: no AWS at all), and nothing was done to moto's
    assert code == 1 and not out, out + err
    assert err.splitlines()[-1].startswith("error: "), err
    (note,) = [line for line in err.splitlines() if line.startswith("note: ignored")]
    assert all(variable in note for variable in aws.endpoints.environment()), err
    assert note.endswith("this machine, and a stack is reached in AWS itself"), err
    assert telegram.calls("setWebhook") == []
    assert len(_drain(aws, aws.resources.dlq_url)) == 1


@pytest.mark.parametrize(
    "argv",
    [["dlq", "list", "--wait", "0"], ["webhook", "set"], ["chat", "default/42/0"]],
    ids=["dlq_list", "webhook_set", "chat"],
)
def test_a_stack_is_operated_through_the_endpoint_the_operators_profile_names(
    argv: list[str],
    aws: Any,
    telegram: LocalTelegram,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """An operator whose AWS is reached through their profile's endpoint_url (a VPC endpoint)
    had it ignored as the shell's leftovers were: the commands found no stack where `sam
    deploy` had made one."""
    stack = _stack(aws)
    _send_dead_letter(aws, update_id=77, session_key="default/42/0")
    monkeypatch.setenv("TELEGRAM_API_BASE", telegram.base_url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    for name in ("BOT_TOKEN_PARAMETER", "WEBHOOK_SECRET_PARAMETER", "DEAD_LETTER_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    profile = reach_the_fixtures_through_a_profile(aws, monkeypatch, tmp_path)

    code, out, err = _run_as_the_operator(capsys, *argv, "--stack", stack, "--profile", profile)

    assert code == 0, out + err
    assert "note: ignored" not in err, err
    if argv[0] == "dlq":
        assert "77" in out, out
    if argv[0] == "webhook":
        assert len(telegram.calls("setWebhook")) == 1


# An address elsewhere (TEST-NET-1: never this machine), as a VPC endpoint is to the operator.
_ELSEWHERE = "http://192.0.2.10:4566"


def test_a_services_endpoint_left_in_the_shell_leaves_the_others_where_the_operator_reaches_aws(
    aws: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """One endpoint on this machine left in the shell (LocalStack's S3) made a stack command
    ignore every other endpoint too: the shell's DynamoDB elsewhere and the profile's way to
    AWS, and `dlq list --stack`, which needs neither S3 nor DynamoDB, found no stack."""
    stack = _stack(aws)
    _send_dead_letter(aws, update_id=77, session_key="default/42/0")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL", raising=False)
    profile = reach_the_fixtures_through_a_profile(aws, monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://localhost:4566")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", _ELSEWHERE)

    code, out, err = _run_as_the_operator(
        capsys, "dlq", "list", "--wait", "0", "--stack", stack, "--profile", profile
    )

    assert code == 0 and "77" in out, out + err
    (note,) = [line for line in err.splitlines() if line.startswith("note: ignored")]
    assert note.startswith("note: ignored AWS_ENDPOINT_URL_S3 from the shell: it names this machine"), note
    assert note.endswith("(kept, elsewhere: AWS_ENDPOINT_URL_DYNAMODB)"), note


def test_a_service_whose_own_endpoint_is_on_this_machine_goes_where_the_shell_sends_the_rest(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ignoring AWS_ENDPOINT_URL_SQS on this machine leaves SQS where the shell's
    AWS_ENDPOINT_URL elsewhere sends every service, not at AWS's public endpoint (which an
    operator behind a VPC endpoint cannot reach)."""
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", _ELSEWHERE)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:4566")
    args = build_parser().parse_args(["dlq", "list", "--stack", "agentbot"])

    clients = operator_aws_clients(args)

    assert clients("sqs").meta.endpoint_url == _ELSEWHERE
    assert clients("cloudformation").meta.endpoint_url == _ELSEWHERE
    assert "note: ignored AWS_ENDPOINT_URL_SQS from the shell" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["localhost", "localhost.", "127.1", "[::1]", "0.0.0.0"])
def test_an_endpoint_left_in_the_shell_is_on_this_machine_however_its_host_is_spelled(
    host: str,
    aws: Any,
    telegram: LocalTelegram,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Only endpoints on this machine are ignored for a stack: dev's or a test's moto named
    by another name for it must not move a local stack's dead letters either."""
    stack = _stack(aws)
    _send_dead_letter(aws, update_id=77, session_key="default/42/0")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL", raising=False)
    for variable, url in aws.endpoints.environment().items():
        monkeypatch.setenv(variable, url.replace("127.0.0.1", host))

    code, out, err = _run_as_the_operator(capsys, "dlq", "redrive", "--wait", "0", "--stack", stack)

    assert code == 1 and not out, out + err
    (note,) = [line for line in err.splitlines() if line.startswith("note: ignored")]
    assert "AWS_ENDPOINT_URL" in note, err
    assert len(_drain(aws, aws.resources.dlq_url)) == 1


def test_aws_region_set_alone_is_the_region_the_no_region_error_asks_for(
    aws: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """boto3 reads AWS_DEFAULT_REGION only: with the README's `export AWS_REGION=...` the
    commands said "no AWS region: ... or set AWS_REGION", with it set."""
    stack = f"agentbot-{uuid.uuid4().hex[:8]}"
    aws.client("cloudformation").create_stack(
        StackName=stack,
        TemplateBody=json.dumps(_STACK_TEMPLATE),
        Parameters=[
            {"ParameterKey": name, "ParameterValue": "unused"}
            for name in ("BotTokenParameterName", "WebhookSecretParameterName", "QueueUrl")
        ]
        + [{"ParameterKey": "DlqUrl", "ParameterValue": aws.resources.dlq_url}],
    )
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/agentbot-test-config")
    monkeypatch.setenv("AWS_REGION", "us-east-1")

    code, out, err = _run(capsys, "dlq", "list", "--stack", stack, "--wait", "0")

    assert code == 0 and "dead-letter queue is empty" in out, out + err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["doctor", "--profile", "prod"], "--profile prod"),
        (["doctor", "--stack", "agentbot", "--profile", "prod"], "--profile prod"),
        (["dlq", "list", "--profile", "prod"], "--profile prod"),
        (["webhook", "info", "--profile", "prod"], "--profile prod"),
        (["dlq", "list"], "AWS_PROFILE=prod"),
    ],
    ids=["doctor", "doctor_stack", "dlq_list", "webhook_info", "aws_profile_variable"],
)
def test_an_unknown_profile_is_one_line_naming_it_the_known_ones_and_how_to_create_it(
    argv: list[str],
    named: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A mistyped profile ended `agentbot doctor` in botocore's ProfileNotFound traceback; the
    other commands said only "The config profile (prod) could not be found"."""
    config = tmp_path / "aws-config"
    config.write_text("[profile dev]\nregion = eu-central-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.delenv("AGENTBOT_STACK", raising=False)
    if "--profile" not in argv:
        monkeypatch.setenv("AWS_PROFILE", "prod")
    code, _, err = _run(capsys, *argv)
    assert code == 1 and "Traceback" not in err, err
    assert err.splitlines() == [
        f"error: {named}: no such profile in ~/.aws/config or ~/.aws/credentials (known: dev; "
        "create it with `aws configure --profile prod`)"
    ], err


def test_unknown_stack_is_reported(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "dlq", "list", "--stack", "no-such-stack")
    assert code == 1 and "no-such-stack" in err
    # a stack is per region: the one looked in, and how to look in another
    assert "does not exist in us-east-1 (pass --region REGION where it was deployed" in err, err


# --------------------------------------------------------------------------- dlq


def _envelope(update_id: int, session_key: str, text: str = "the user's private words") -> bytes:
    _tenant, chat, thread = session_key.split("/")
    message = InboundMessage(
        update_id=update_id,
        session_key=session_key,
        kind="message",
        chat_id=int(chat),
        thread_id=int(thread),
        chat_type="private",
        message_id=update_id * 10,
        text=text,
    )
    return encode_envelope(QueueEnvelope(version=1, message=message))


def _send_dead_letter(
    aws: Any, *, update_id: int, session_key: str, body: bytes | None = None, **attributes: str
) -> None:
    aws.sqs.send_message(
        QueueUrl=aws.resources.dlq_url,
        MessageBody=(body or _envelope(update_id, session_key)).decode(),
        MessageGroupId=session_key,
        MessageDeduplicationId=f"update-{update_id}",
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
    )


def _drain(aws: Any, url: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        batch = aws.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=30,
        ).get("Messages", [])
        if not batch:
            return got
        got.extend(batch)
        for m in batch:
            aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_dlq_list_shows_ids_session_and_error_context_but_no_text(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _send_dead_letter(aws, update_id=101, session_key="default/42/0", error_kind="model_error")
    _send_dead_letter(aws, update_id=102, session_key="default/-1001/7")
    _send_dead_letter(aws, update_id=103, session_key="default/43/0", body=b"{not an envelope")

    code, out, _ = _run(capsys, "dlq", "list", "--wait", "0")

    assert code == 0
    assert out.splitlines()[0] == "3 dead letter(s) (showing 3 of about 3)"
    row = next(line for line in out.splitlines() if line.startswith("101 "))
    assert "default/42/0" in row and "error_kind=model_error" in row
    assert "default/-1001/7" in out
    assert "undecodable" in out and "(group default/43/0)" in out
    assert "private words" not in out
    # Listing leaves every message in the queue, visible at once for the next command.
    assert len(_drain(aws, aws.resources.dlq_url)) == 3


def test_dlq_list_of_empty_queue(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "dlq", "list", "--wait", "0")
    assert code == 0 and out.strip() == "dead-letter queue is empty"


def test_dlq_redrive_moves_messages_back_keeping_group_order_and_attributes(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    for update_id in (1, 2, 3):
        _send_dead_letter(aws, update_id=update_id, session_key="default/42/0", error_kind="internal")
    _send_dead_letter(aws, update_id=4, session_key="default/43/0")
    _send_dead_letter(aws, update_id=5, session_key="default/44/0", body=b"garbage")

    code, out, _ = _run(capsys, "dlq", "redrive", "--wait", "0")

    assert code == 0
    assert "4 moved back to the queue, 1 left in the DLQ" in out
    moved = _drain(aws, aws.resources.queue_url)
    by_group: dict[str, list[int]] = {}
    for m in moved:
        envelope = json.loads(m["Body"])
        by_group.setdefault(m["Attributes"]["MessageGroupId"], []).append(envelope["message"]["update_id"])
    assert by_group == {"default/42/0": [1, 2, 3], "default/43/0": [4]}
    first = next(m for m in moved if json.loads(m["Body"])["message"]["update_id"] == 1)
    assert first["MessageAttributes"]["error_kind"]["StringValue"] == "internal"
    assert first["Body"] == _envelope(1, "default/42/0").decode()
    left = _drain(aws, aws.resources.dlq_url)
    assert [m["Body"] for m in left] == ["garbage"]


def test_dlq_redrive_of_one_session_leaves_the_others(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _send_dead_letter(aws, update_id=11, session_key="default/42/0")
    _send_dead_letter(aws, update_id=12, session_key="default/43/0")

    code, out, _ = _run(capsys, "dlq", "redrive", "--session", "default/43/0", "--wait", "0")

    assert code == 0 and "1 moved back to the queue, 1 left in the DLQ" in out
    assert [json.loads(m["Body"])["message"]["update_id"] for m in _drain(aws, aws.resources.queue_url)] == [
        12
    ]
    assert [json.loads(m["Body"])["message"]["update_id"] for m in _drain(aws, aws.resources.dlq_url)] == [11]


def test_dlq_redrive_respects_max(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    for update_id in (21, 22, 23):
        _send_dead_letter(aws, update_id=update_id, session_key="default/42/0")
    code, out, _ = _run(capsys, "dlq", "redrive", "--max", "2", "--wait", "0")
    assert code == 0 and out.strip().endswith("2 moved back to the queue, 1 left in the DLQ")
    assert [json.loads(m["Body"])["message"]["update_id"] for m in _drain(aws, aws.resources.queue_url)] == [
        21,
        22,
    ]
    assert len(_drain(aws, aws.resources.dlq_url)) == 1


def test_dlq_redrive_rejects_a_malformed_session_key(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "dlq", "redrive", "--session", "../etc", "--wait", "0")
    assert code == 1 and "session key" in err


def test_webhook_report_shows_telegrams_last_delivery_error() -> None:
    from agentbot.ops import format_webhook_info

    text = format_webhook_info(
        {
            "url": WEBHOOK_URL,
            "pending_update_count": 4,
            "allowed_updates": list(ALLOWED_UPDATES),
            "last_error_date": 1764000000,
            "last_error_message": "Wrong response from the webhook: 500 Internal Server Error",
        }
    )
    assert "pending updates:  4" in text
    assert "allowed updates:  message, edited_message, callback_query, my_chat_member" in text
    assert "last error:       2025-11-24 16:00:00 UTC: Wrong response from the webhook: 500" in text
