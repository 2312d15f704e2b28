"""`agentbot webhook ...` and `agentbot dlq ...`: operate a deployed stack.

Where things are comes from ``--stack NAME`` (the CloudFormation outputs and parameters of
infra/template.yaml), from explicit flags, or from the environment the functions use
(``INBOUND_QUEUE_URL``, ``DEAD_LETTER_QUEUE_URL``, ``BOT_TOKEN_PARAMETER``, ...). Given directly,
they reach wherever the shell's AWS endpoints say (AWS, LocalStack, ``agentbot dev``'s moto); a
named stack is never reached at an endpoint on this machine (``operator_aws_clients``).

Secrets (bot token, webhook secret) are read from SSM, or from ``TELEGRAM_BOT_TOKEN`` /
``TELEGRAM_WEBHOOK_SECRET`` when set; they are sent to Telegram and never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import boto3
import botocore.session
import httpx
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError, ProfileNotFound
from session_core import MessageDecodeError, SessionCoreError, SessionKey, aws_error_code, read_secret
from sqs_consumer import REDRIVES_ATTRIBUTE, command_menu
from telegram_core import TELEGRAM_API_BASE, BotApi, TelegramApiError, decode_envelope
from telegram_producer import HANDLED_UPDATE_TYPES, SECRET_RULE, WebhookSecretError, check_secret

from .this_machine import names_this_machine

# Telegram drops every update type the producer does not handle, before it reaches us.
ALLOWED_UPDATES = HANDLED_UPDATE_TYPES

# Template outputs and parameters the commands read with --stack.
_OUTPUT_WEBHOOK_URL = "WebhookUrl"
_OUTPUT_QUEUE_URL = "InboundQueueUrl"
_OUTPUT_DLQ_URL = "DeadLetterQueueUrl"
_PARAM_BOT_TOKEN = "BotTokenParameterName"
_PARAM_WEBHOOK_SECRET = "WebhookSecretParameterName"
_SQS_BATCH = 10  # SQS's maximum per receive / batch call
# A peeked or skipped message stays hidden this long at most; it is made visible again
# explicitly as soon as the command is done with it.
_HOLD_VISIBILITY_S = 60


# --------------------------------------------------------------------------- errors


class OpsError(Exception):
    """Base of the errors the operator commands report (printed, exit code 1)."""


class SettingMissingError(OpsError):
    """Raised when a command needs a setting that no flag, stack output or variable gives;
    ``what`` names the missing thing when it is not the flag itself (e.g. "the bot token")."""

    def __init__(self, setting: str, how: str, *, what: str | None = None) -> None:
        super().__init__(f"{what} is missing: {how}" if what else f"{setting} is not known: {how}")
        self.setting = setting
        self.how = how
        self.what = what


class WebhookSettingError(OpsError):
    """Raised before calling Telegram when a webhook URL or secret is one Telegram would refuse
    or that would expose the secret (plain http); never carries the secret itself."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class StackLookupError(OpsError):
    """Raised when ``--stack`` names a stack that does not exist or lacks an output."""

    def __init__(self, stack: str, detail: str) -> None:
        super().__init__(f"stack {stack!r}: {detail}")
        self.stack = stack
        self.detail = detail


# ------------------------------------------------------------------- stack lookup


@dataclass(frozen=True)
class StackInfo:
    """Outputs and parameters of a deployed agentbot stack."""

    name: str
    outputs: Mapping[str, str]
    parameters: Mapping[str, str]

    def output(self, key: str) -> str:
        """An output's value; StackLookupError naming it when missing."""
        value = self.outputs.get(key, "")
        if not value:
            raise StackLookupError(self.name, f"has no output {key!r} (deployed from infra/template.yaml?)")
        return value


def describe_stack(cloudformation: Any, name: str) -> StackInfo:
    """Read a stack's outputs and parameters; StackLookupError when the stack is not there."""
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        said = exc.response.get("Error", {}).get("Message", str(exc))
        if aws_error_code(exc) == "ValidationError":  # no such stack here
            # a stack is per region: deployed elsewhere (samconfig.toml's region), it is not here
            region = getattr(getattr(cloudformation, "meta", None), "region_name", None) or "?"
            said += f" in {region} (pass --region REGION where it was deployed, e.g. samconfig.toml's)"
        raise StackLookupError(name, said) from exc
    if not stacks:
        raise StackLookupError(name, "not found")
    stack = stacks[0]
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    return StackInfo(name=name, outputs=outputs, parameters=parameters)


# ------------------------------------------------------------------------ webhook


def set_webhook(
    api: BotApi,
    *,
    url: str,
    secret_token: str,
    allowed_updates: Sequence[str] = ALLOWED_UPDATES,
    max_connections: int | None = None,
    drop_pending_updates: bool = False,
    secret_source: str = "",
) -> dict[str, Any]:
    """Point Telegram at ``url`` with the secret and update types the producer expects;
    returns what getWebhookInfo reports afterwards. A URL that is not https or a secret
    Telegram would refuse raises WebhookSettingError before anything is sent, naming
    ``secret_source`` (where the secret came from) if given."""
    check_webhook_settings(
        url=url, secret_token=secret_token, max_connections=max_connections, secret_source=secret_source
    )
    payload: dict[str, Any] = {
        "url": url,
        "secret_token": secret_token,
        "allowed_updates": list(allowed_updates),
        "drop_pending_updates": drop_pending_updates,
    }
    if max_connections is not None:
        payload["max_connections"] = max_connections
    api.call("setWebhook", payload)
    return webhook_info(api)


def fill_command_menu(api: BotApi, *, to_retry: str) -> str:
    """Fill the menu the apps show when "/" is typed (setMyCommands) with the commands /help
    lists (else a user finds them only by sending /help), and say what became of it for a
    person: a refused or lost call (a 429 after setWebhook) must not fail or undo the webhook
    just set; the bot answers without the menu. ``to_retry`` says what fills it later."""
    menu = command_menu()
    try:
        api.call("setMyCommands", {"commands": menu})
    except TelegramApiError as exc:
        return f"not set (setMyCommands: {exc.description}); {to_retry} to fill it"
    return ", ".join(f"/{entry['command']}" for entry in menu)


def check_webhook_settings(
    *, url: str, secret_token: str, max_connections: int | None = None, secret_source: str = ""
) -> None:
    """Refuse what Telegram would refuse, or accept and regret: the webhook must be https
    (Telegram sends the secret in a header; it calls only https URLs), the secret must be
    ``SECRET_RULE`` (the producer checks its configured secret with the same rule),
    and parallel connections 1-100."""
    if max_connections is not None and not 1 <= max_connections <= 100:
        raise WebhookSettingError(
            "--max-connections", f"{max_connections} is outside the 1-100 Telegram accepts (default 40)"
        )
    try:
        parsed: httpx.URL | None = httpx.URL(url) if "://" in url else None
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme != "https" or not parsed.host:
        raise WebhookSettingError(
            "--url", f"{url!r} is not an https:// URL (Telegram calls only https webhooks)"
        )
    try:
        check_secret(secret_token)
    except WebhookSecretError:
        raise WebhookSettingError(
            f"webhook secret ({secret_source})" if secret_source else "webhook secret",
            f"must be {SECRET_RULE}, a shorter one can be guessed "
            "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')",
        ) from None


def webhook_info(api: BotApi) -> dict[str, Any]:
    """What Telegram reports about the bot's webhook (getWebhookInfo)."""
    result = api.call("getWebhookInfo", {})
    return dict(result) if isinstance(result, dict) else {}


def delete_webhook(api: BotApi, *, drop_pending_updates: bool = False) -> dict[str, Any]:
    """Remove the webhook; returns what getWebhookInfo reports afterwards."""
    api.call("deleteWebhook", {"drop_pending_updates": drop_pending_updates})
    return webhook_info(api)


def format_webhook_info(info: Mapping[str, Any]) -> str:
    """Telegram's getWebhookInfo as lines for a person (no secret is part of it)."""
    lines = [f"url:              {info.get('url') or '(none: no webhook set)'}"]
    lines.append(f"pending updates:  {info.get('pending_update_count', 0)}")
    if info.get("allowed_updates") is not None:
        lines.append(f"allowed updates:  {', '.join(info['allowed_updates']) or '(all)'}")
    if info.get("max_connections") is not None:
        lines.append(f"max connections:  {info['max_connections']}")
    if info.get("ip_address"):
        lines.append(f"ip address:       {info['ip_address']}")
    if info.get("last_error_date"):
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(info["last_error_date"])))
        lines.append(f"last error:       {when}: {info.get('last_error_message', '')}")
    else:
        lines.append("last error:       none")
    return "\n".join(lines)


# ----------------------------------------------------------------- dead letters


@dataclass(frozen=True)
class DeadLetter:
    """One message in the dead-letter queue, described without the user's text."""

    message_id: str
    group_id: str
    receive_count: int
    sent_at: float
    update_id: int | None
    session_key: str | None
    kind: str | None
    attachments: int
    context: Mapping[str, str]  # message attributes (e.g. the error the consumer recorded)
    decode_error: str | None = None


@dataclass
class RedriveReport:
    """What ``redrive_dead_letters`` did: messages moved back, and messages left where they were."""

    moved: list[DeadLetter] = field(default_factory=list)
    left: list[tuple[DeadLetter, str]] = field(default_factory=list)  # (message, why)


def describe_dead_letter(message: Mapping[str, Any]) -> DeadLetter:
    """Decode one received SQS message: ids, counts and context, never the message text."""
    attributes = message.get("Attributes", {})
    context = {
        name: str(value.get("StringValue", f"<{value.get('DataType', 'binary')}>"))
        for name, value in sorted(message.get("MessageAttributes", {}).items())
    }
    common = {
        "message_id": message["MessageId"],
        "group_id": attributes.get("MessageGroupId", ""),
        "receive_count": int(attributes.get("ApproximateReceiveCount", 0)),
        "sent_at": int(attributes.get("SentTimestamp", 0)) / 1000,
        "context": context,
    }
    try:
        envelope = decode_envelope(message["Body"])
    except MessageDecodeError as exc:
        return DeadLetter(
            **common,
            update_id=None,
            session_key=None,
            kind=None,
            attachments=0,
            decode_error=exc.detail[:200],
        )
    inbound = envelope.message
    return DeadLetter(
        **common,
        update_id=inbound.update_id,
        session_key=inbound.session_key,
        kind=inbound.kind,
        attachments=len(inbound.attachments),
    )


def _receive(sqs: Any, queue_url: str, *, wait_seconds: int) -> list[dict[str, Any]]:
    out = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=_SQS_BATCH,
        VisibilityTimeout=_HOLD_VISIBILITY_S,
        WaitTimeSeconds=wait_seconds,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return list(out.get("Messages", []))


def _release(sqs: Any, queue_url: str, messages: Sequence[Mapping[str, Any]]) -> None:
    """Make held messages visible again right away (they stay in the queue untouched)."""
    for start in range(0, len(messages), _SQS_BATCH):
        chunk = messages[start : start + _SQS_BATCH]
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(chunk)
            ],
        )


def queue_depth(sqs: Any, queue_url: str) -> int:
    """Approximate number of messages waiting (visible) in a queue."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"
    ]
    return int(attributes.get("ApproximateNumberOfMessages", 0))


def peek_dead_letters(sqs: Any, dlq_url: str, *, limit: int = 100, wait_seconds: int = 1) -> list[DeadLetter]:
    """Describe up to ``limit`` dead letters without removing them.

    SQS can only show a message by receiving it; each one is held for a moment and made
    visible again before returning. A FIFO queue shows at most one receive's worth of
    each message group while those are held, so a long backlog of one chat is listed
    partially; ``queue_depth`` gives the total.
    """
    held: list[dict[str, Any]] = []
    seen: set[str] = set()
    try:
        while len(held) < limit:
            batch = _receive(sqs, dlq_url, wait_seconds=wait_seconds)
            held.extend(batch)  # every receipt is released below, repeats included
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            seen.update(m["MessageId"] for m in fresh)
    finally:
        if held:
            _release(sqs, dlq_url, held)
    letters: dict[str, DeadLetter] = {}
    for message in held:
        letters.setdefault(message["MessageId"], describe_dead_letter(message))
    return list(letters.values())[:limit]


def _send_attributes(message: Mapping[str, Any]) -> dict[str, Any]:
    # Received attributes carry empty list fields that SendMessage rejects: keep the values.
    kept: dict[str, Any] = {}
    for name, value in message.get("MessageAttributes", {}).items():
        entry = {"DataType": value["DataType"]}
        if "StringValue" in value:
            entry["StringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            entry["BinaryValue"] = value["BinaryValue"]
        kept[name] = entry
    return kept


def _redriven_attributes(message: Mapping[str, Any]) -> dict[str, Any]:
    # Counted, as SQS counts the copy's receives from 1 again: a try of this record ran (its
    # turn may have, paid), which the consumer must know (sqs_consumer.SqsRecord.first_try).
    kept = _send_attributes(message)
    try:
        before = int(kept.get(REDRIVES_ATTRIBUTE, {}).get("StringValue") or 0)
    except ValueError:
        before = 0
    kept[REDRIVES_ATTRIBUTE] = {"DataType": "Number", "StringValue": str(max(0, before) + 1)}
    return kept


def redrive_dead_letters(
    sqs: Any,
    *,
    dlq_url: str,
    queue_url: str,
    limit: int | None = None,
    session_key: str | None = None,
    wait_seconds: int = 1,
) -> RedriveReport:
    """Move dead letters back to the inbound queue, oldest first within each chat.

    Each message keeps its body, attributes and MessageGroupId (so a chat's turns stay in
    order) and is deleted from the DLQ only after the send succeeded. The deduplication id
    derives from the DLQ message id, so a redrive interrupted between send and delete and
    run again within SQS's 5-minute window does not queue the message twice. Messages that
    are not a valid queue envelope, or belong to another session than ``session_key``, stay.
    """
    if session_key is not None:
        session_key = SessionKey.parse(session_key).canonical
    report = RedriveReport()
    kept: list[dict[str, Any]] = []
    seen: set[str] = set()
    try:
        while limit is None or len(report.moved) < limit:
            batch = [
                m for m in _receive(sqs, dlq_url, wait_seconds=wait_seconds) if m["MessageId"] not in seen
            ]
            if not batch:
                break
            for message in batch:
                seen.add(message["MessageId"])
                letter = describe_dead_letter(message)
                why = None
                if letter.decode_error is not None:
                    why = f"not a queue envelope: {letter.decode_error}"
                elif session_key is not None and letter.session_key != session_key:
                    why = "another session"
                elif limit is not None and len(report.moved) >= limit:
                    why = "over --max"
                if why is not None:
                    kept.append(message)
                    report.left.append((letter, why))
                    continue
                try:
                    sqs.send_message(
                        QueueUrl=queue_url,
                        MessageBody=message["Body"],
                        MessageGroupId=letter.group_id,
                        MessageDeduplicationId=f"redrive-{letter.message_id}",
                        MessageAttributes=_redriven_attributes(message),
                    )
                except Exception:
                    kept.append(message)
                    raise
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
                report.moved.append(letter)
    finally:
        if kept:
            _release(sqs, dlq_url, kept)
    return report


def format_dead_letters(letters: Sequence[DeadLetter], *, total: int) -> str:
    """A table of dead letters: ids, session, receives, age and context (no message text)."""
    if not letters:
        return "dead-letter queue is empty"
    rows = [("update_id", "session_key", "kind", "receives", "sent (UTC)", "context")]
    for letter in letters:
        context = ", ".join(f"{k}={v}" for k, v in letter.context.items())
        if letter.decode_error is not None:
            context = f"undecodable: {letter.decode_error}" + (f"; {context}" if context else "")
        if letter.attachments:
            context = f"{letter.attachments} attachment(s)" + (f"; {context}" if context else "")
        rows.append(
            (
                "?" if letter.update_id is None else str(letter.update_id),
                letter.session_key or f"(group {letter.group_id or '?'})",
                letter.kind or "?",
                str(letter.receive_count),
                time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(letter.sent_at)) if letter.sent_at else "?",
                context or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    ]
    shown = f"showing {len(letters)} of about {max(total, len(letters))}"
    return "\n".join([f"{len(letters)} dead letter(s) ({shown})", *lines])


# ------------------------------------------------------------------------- the CLI


ClientFactory = Callable[[str], Any]


def aws_clients(args: argparse.Namespace, *, ignored: Sequence[str] = ()) -> ClientFactory:
    """The AWS clients of an operator command, from ``--profile`` and ``--region``, at the
    endpoints the shell (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>) or the profile
    (endpoint_url) names; a service whose shell variable is one of ``ignored`` goes where it
    would without that variable: the shell's AWS_ENDPOINT_URL when kept, else AWS's own endpoint
    (the profile's endpoint_url ignored too)."""
    # boto3 reads AWS_DEFAULT_REGION only; AWS_REGION is what the README's deploy steps and
    # .env.example export (and what Lambda and the AWS CLI read), so it counts here too.
    region = args.region or os.environ.get("AWS_REGION", "").strip() or None
    core = botocore.session.Session()
    try:
        session = boto3.Session(botocore_session=core, profile_name=args.profile, region_name=region)
    except ProfileNotFound:
        raise OpsError(no_such_profile(args.profile)) from None

    def client(service: str) -> Any:
        hyphenized = core.get_service_model(service).service_id.hyphenize()
        if _shell_endpoint_variable(os.environ, hyphenized) not in ignored:
            return session.client(service)  # none, or one elsewhere: boto3's own choice
        everywhere = os.environ.get("AWS_ENDPOINT_URL", "").strip()
        endpoint = everywhere if everywhere and "AWS_ENDPOINT_URL" not in ignored else None
        return session.client(
            service, endpoint_url=endpoint, config=Config(ignore_configured_endpoint_urls=True)
        )

    return client


def _shell_endpoint_variable(environ: Mapping[str, str], hyphenized_service_id: str) -> str | None:
    """The shell variable boto3 takes a service's endpoint from: AWS_ENDPOINT_URL_<SERVICE>,
    else AWS_ENDPOINT_URL; None when neither is set."""
    own = f"AWS_ENDPOINT_URL_{hyphenized_service_id.replace('-', '_').upper()}"
    return next((v for v in (own, "AWS_ENDPOINT_URL") if environ.get(v, "").strip()), None)


def operator_aws_clients(args: argparse.Namespace) -> ClientFactory:
    """The AWS clients of an operator command as it runs. Decided: a named stack (``--stack``,
    AGENTBOT_STACK) is not reached at this machine. An endpoint on it left in the shell
    (agentbot dev's or a test's moto) would act on a local stack of the same name: replay its
    dead letters, point the bot at its webhook; each such variable is ignored (``aws_clients``),
    in one line naming them and the shell's kept. Endpoints elsewhere (a VPC endpoint where
    AWS's public ones are blocked, a profile's endpoint_url) are the operator's way to AWS."""
    if not named_stack(args):
        return aws_clients(args)  # queue URLs and parameters given directly: wherever the shell says
    variables = _endpoint_variables(os.environ)
    ignored = [variable for variable in variables if names_this_machine(os.environ[variable])]
    if ignored:
        kept = [variable for variable in variables if variable not in ignored]
        print(
            f"note: ignored {', '.join(ignored)} from the shell: "
            f"{'it names' if len(ignored) == 1 else 'they name'} this machine, and a stack is "
            "reached in AWS itself" + (f" (kept, elsewhere: {', '.join(kept)})" if kept else ""),
            file=sys.stderr,
        )
    return aws_clients(args, ignored=ignored)


def _endpoint_variables(environ: Mapping[str, str]) -> list[str]:
    """The names of boto3's endpoint variables ``environ`` sets (AWS_ENDPOINT_URL and
    AWS_ENDPOINT_URL_<SERVICE>), an empty one left out as boto3 leaves it."""
    return sorted(
        variable
        for variable, value in environ.items()
        if (variable == "AWS_ENDPOINT_URL" or variable.startswith("AWS_ENDPOINT_URL_")) and value.strip()
    )


def no_such_profile(flag: str | None) -> str:
    """What to say of a profile that does not exist, named as it was given (``flag``, else
    AWS_PROFILE), with the known ones: boto3's "The config profile (prod) could not be found"
    says neither."""
    profile = flag or os.environ.get("AWS_PROFILE", "")
    named = f"--profile {profile}" if flag else f"AWS_PROFILE={profile}"
    known = ", ".join(sorted(botocore.session.Session().available_profiles)) or "none"
    return (
        f"{named}: no such profile in ~/.aws/config or ~/.aws/credentials (known: {known}; "
        f"create it with `aws configure --profile {profile}`)"
    )


def telegram_api_base(flag: str | None = None) -> str:
    """The Bot API base URL: ``flag`` (``--api-base``), else ``TELEGRAM_API_BASE``, else Telegram's."""
    return flag or os.environ.get("TELEGRAM_API_BASE", "").strip() or TELEGRAM_API_BASE


def operator_bot_api(http: httpx.Client, token: str, base_url: str) -> BotApi:
    """The Bot API client of an operator command: one attempt per call, the operator retries."""
    return BotApi(http=http, token=token, base_url=base_url, max_attempts=1)


@contextlib.contextmanager
def operator_clients(
    args: argparse.Namespace, clients: ClientFactory | None, http: httpx.Client | None
) -> Iterator[tuple[ClientFactory, httpx.Client]]:
    """The AWS clients (``operator_aws_clients``) and the HTTP client of an operator
    command, each made only when not given (tests pass their own); closes what it made."""
    clients = clients or operator_aws_clients(args)
    if http is not None:
        yield clients, http
        return
    with httpx.Client(timeout=httpx.Timeout(30.0)) as owned:
        yield clients, owned


def named_stack(args: argparse.Namespace) -> str:
    """The name of the stack ``--stack`` (or AGENTBOT_STACK) names; empty when none is."""
    return args.stack or os.environ.get("AGENTBOT_STACK", "").strip()


def stack_of(args: argparse.Namespace, clients: ClientFactory) -> StackInfo | None:
    """The stack ``named_stack`` names, described once; None when none is named."""
    name = named_stack(args)
    if not name:
        return None
    cached = getattr(args, "_stack_info", None)
    if cached is None:
        cached = describe_stack(clients("cloudformation"), name)
        args._stack_info = cached
    return cached


def resolve_setting(
    flag: str | None, env_name: str, stack: StackInfo | None, output: str, setting: str
) -> str:
    """A setting from its flag, else the stack's output, else the variable ``env_name``."""
    if flag:
        return flag
    if stack is not None:
        return stack.output(output)
    value = os.environ.get(env_name, "").strip()
    if value:
        return value
    raise SettingMissingError(
        setting, f"pass {setting}, --stack NAME (and --region REGION), or set {env_name}"
    )


def _secret(
    *,
    value_env: str,
    parameter_flag: str | None,
    parameter_env: str,
    stack: StackInfo | None,
    stack_parameter: str,
    clients: ClientFactory,
    setting: str,
    what: str,
) -> tuple[str, str]:
    """The secret's value and where it came from (the variable, or the SSM parameter's name)."""
    direct = os.environ.get(value_env, "").strip()
    if direct:
        return direct, value_env
    name = parameter_flag or (stack.parameters.get(stack_parameter) if stack else None)
    name = name or os.environ.get(parameter_env, "").strip()
    if not name:
        raise SettingMissingError(
            setting,
            f"set {value_env}, or name its SSM parameter with {setting}, --stack NAME or {parameter_env}",
            what=what,
        )
    return read_secret(clients("ssm"), name), f"SSM parameter {name}"


def _bot_api(args: argparse.Namespace, clients: ClientFactory, client: httpx.Client) -> BotApi:
    token, _ = _secret(
        value_env="TELEGRAM_BOT_TOKEN",
        parameter_flag=args.token_parameter,
        parameter_env="BOT_TOKEN_PARAMETER",
        stack=stack_of(args, clients),
        stack_parameter=_PARAM_BOT_TOKEN,
        clients=clients,
        setting="--token-parameter",
        what="the bot token",
    )
    return operator_bot_api(client, token, telegram_api_base(args.api_base))


def run_webhook(
    args: argparse.Namespace,
    *,
    clients: ClientFactory | None = None,
    http: httpx.Client | None = None,
    out: IO[str] | None = None,
) -> int:
    """`agentbot webhook set|info|delete`."""
    out = out or sys.stdout
    with operator_clients(args, clients, http) as (clients, http):
        api = _bot_api(args, clients, http)
        if args.action == "set":
            stack = stack_of(args, clients)
            url = args.url or (stack.output(_OUTPUT_WEBHOOK_URL) if stack else "")
            if not url:
                raise SettingMissingError("--url", "pass --url or --stack NAME")
            secret, secret_source = _secret(
                value_env="TELEGRAM_WEBHOOK_SECRET",
                parameter_flag=args.secret_parameter,
                parameter_env="WEBHOOK_SECRET_PARAMETER",
                stack=stack,
                stack_parameter=_PARAM_WEBHOOK_SECRET,
                clients=clients,
                setting="--secret-parameter",
                what="the webhook secret",
            )
            info = set_webhook(
                api,
                url=url,
                secret_token=secret,
                secret_source=secret_source,
                max_connections=args.max_connections,
                drop_pending_updates=args.drop_pending_updates,
            )
            print(f"webhook set; Telegram reports:\n{format_webhook_info(info)}", file=out)
            menu = fill_command_menu(api, to_retry="run `agentbot webhook set` again")
            print(f"command menu: {menu}", file=out)
        elif args.action == "info":
            print(format_webhook_info(webhook_info(api)), file=out)
        else:
            info = delete_webhook(api, drop_pending_updates=args.drop_pending_updates)
            print(f"webhook deleted; Telegram reports:\n{format_webhook_info(info)}", file=out)
    return 0


def run_dlq(
    args: argparse.Namespace, *, clients: ClientFactory | None = None, out: IO[str] | None = None
) -> int:
    """`agentbot dlq list|redrive`."""
    out = out or sys.stdout
    clients = clients or operator_aws_clients(args)
    stack = stack_of(args, clients)
    # Where the queue is comes first: with nothing set, that (not the region) is what to fix.
    dlq_url = resolve_setting(args.dlq_url, "DEAD_LETTER_QUEUE_URL", stack, _OUTPUT_DLQ_URL, "--dlq-url")
    sqs = clients("sqs")
    if args.action == "list":
        letters = peek_dead_letters(sqs, dlq_url, limit=args.max or 100, wait_seconds=args.wait)
        print(format_dead_letters(letters, total=queue_depth(sqs, dlq_url)), file=out)
        return 0
    queue_url = resolve_setting(args.queue_url, "INBOUND_QUEUE_URL", stack, _OUTPUT_QUEUE_URL, "--queue-url")
    report = redrive_dead_letters(
        sqs,
        dlq_url=dlq_url,
        queue_url=queue_url,
        limit=args.max,
        session_key=args.session,
        wait_seconds=args.wait,
    )
    for letter in report.moved:
        print(f"moved   update {letter.update_id} of {letter.session_key}", file=out)
    for letter, why in report.left:
        print(f"left    message {letter.message_id} ({why})", file=out)
    print(f"{len(report.moved)} moved back to the queue, {len(report.left)} left in the DLQ", file=out)
    return 0


NO_REGION = "error: no AWS region: pass --region REGION (or --profile NAME with a region, or set AWS_REGION)"


def guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``run`` as an operator command's handler: our and AWS's errors as one ``error:`` line, exit 1."""

    def handler(args: argparse.Namespace) -> int:
        try:
            return run(args)
        # Ours, session-core's (a ConfigError names the SSM parameter) and AWS's errors are
        # reported in one line; anything else is a bug and keeps its traceback.
        except NoRegionError:
            print(NO_REGION, file=sys.stderr)
            return 1
        except (OpsError, TelegramApiError, SessionCoreError, ClientError, BotoCoreError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return handler


def common_options() -> argparse.ArgumentParser:
    """The options every operator command takes (an argparse parent parser)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--stack", help="read queue URLs, webhook URL and parameter names from this stack (or AGENTBOT_STACK)"
    )
    parser.add_argument("--profile", help="AWS profile (default: the usual AWS settings)")
    parser.add_argument("--region", help="AWS region (default: the usual AWS settings)")
    return parser


def _actions(parser: argparse.ArgumentParser, command: str) -> Any:
    # Each action is its own subcommand, so `agentbot webhook set --help` shows set's options only.
    return parser.add_subparsers(dest="action", metavar="ACTION", required=True, title=f"{command} actions")


def register(subparsers: Any) -> None:
    """Add the `webhook` and `dlq` commands, each action with its own help."""
    common = common_options()
    bot = argparse.ArgumentParser(add_help=False)
    bot.add_argument("--token-parameter", help="SSM parameter of the bot token (or BOT_TOKEN_PARAMETER)")
    bot.add_argument(
        "--api-base", help=f"Bot API base URL (or TELEGRAM_API_BASE; default {TELEGRAM_API_BASE})"
    )
    drop = argparse.ArgumentParser(add_help=False)
    drop.add_argument(
        "--drop-pending-updates", action="store_true", help="discard updates Telegram has queued for the bot"
    )
    secrets_from = (
        "The bot token comes from TELEGRAM_BOT_TOKEN or its SSM parameter; the webhook secret from "
        "TELEGRAM_WEBHOOK_SECRET or its SSM parameter."
    )
    webhook = subparsers.add_parser(
        "webhook",
        help="point Telegram at the deployed webhook, show or remove it",
        description="Set, show or delete the bot's webhook. " + secrets_from,
    )
    actions = _actions(webhook, "webhook")
    set_parser = actions.add_parser(
        "set",
        parents=[common, bot, drop],
        help="point Telegram at the webhook URL with the webhook secret",
        description="Point Telegram at the webhook (https only) with the webhook secret and the update "
        "types the producer handles, then show what Telegram reports. " + secrets_from,
    )
    set_parser.add_argument("--url", help="webhook URL, https:// (default: the stack's WebhookUrl output)")
    set_parser.add_argument(
        "--secret-parameter", help="SSM parameter of the webhook secret (or WEBHOOK_SECRET_PARAMETER)"
    )
    set_parser.add_argument(
        "--max-connections", type=int, help="most parallel webhook requests Telegram makes (1-100)"
    )
    actions.add_parser(
        "info",
        parents=[common, bot],
        help="show what Telegram reports about the webhook (URL, pending updates, last error)",
        description="Show getWebhookInfo: URL, pending updates, last delivery error.",
    )
    actions.add_parser(
        "delete",
        parents=[common, bot, drop],
        help="remove the webhook",
        description="Remove the bot's webhook, then show what Telegram reports.",
    )
    webhook.set_defaults(handler=guarded(run_webhook), url=None, secret_parameter=None, max_connections=None)

    dlq = subparsers.add_parser(
        "dlq",
        help="list dead letters, or move them back to the inbound queue",
        description="List the messages in the dead-letter queue (ids, session, receives, error context; "
        "never message text), or move them back to the inbound queue keeping each chat's order.",
    )
    queue = argparse.ArgumentParser(add_help=False)
    queue.add_argument("--dlq-url", help="dead-letter queue URL (or DEAD_LETTER_QUEUE_URL)")
    queue.add_argument("--wait", type=int, default=1, help=argparse.SUPPRESS)  # long-poll seconds per receive
    dlq_actions = _actions(dlq, "dlq")
    listing = dlq_actions.add_parser(
        "list",
        parents=[common, queue],
        help="show dead letters: ids, session, receives, error context (never message text)",
        description="Show the messages in the dead-letter queue without removing them.",
    )
    listing.add_argument("--max", type=int, default=None, help="most messages to list")
    redrive = dlq_actions.add_parser(
        "redrive",
        parents=[common, queue],
        help="move dead letters back to the inbound queue, each chat in order",
        description="Move dead letters back to the inbound queue, keeping each chat's order.",
    )
    redrive.add_argument("--queue-url", help="inbound queue URL (or INBOUND_QUEUE_URL)")
    redrive.add_argument(
        "--session", metavar="KEY", help="redrive only this session (tenant/chat_id/thread_id)"
    )
    redrive.add_argument("--max", type=int, default=None, help="most messages to move")
    dlq.set_defaults(handler=guarded(run_dlq), queue_url=None, session=None)
