"""`agentbot dev`: the whole bot on one machine, with the handlers that ship to Lambda.

One process tree: an embedded AWS (moto on 127.0.0.1 unless told otherwise), the three
functions run by real `awslambdaric` behind the local Lambda service, the HTTP API in front
of the producer, the SQS event source in front of the consumer, and Telegram: the real Bot
API with `TELEGRAM_BOT_TOKEN`, else a terminal chat that plays a private chat.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from session_core import SessionKey, SessionRegistry, decode_envelope, make_non_dumpable
from telegram_producer import HANDLED_UPDATE_TYPES

from . import __version__
from .local_aws import LOCAL_CREDENTIALS, moto_endpoint
from .local_events import BatchOutcome, LocalHttpApi, SqsEventSource
from .local_lambda import FunctionSpec, LocalLambda
from .local_state import StateDirectory
from .provisioning import ResourceNames, StackResources, provision
from .sigv4 import LocalCredentials
from .unprivileged import agent_user as agent_user_for_runtime
from .unprivileged import prepare_for_agent_user

PRODUCER, CONSUMER, RUNTIME = "agentbot-producer", "agentbot-consumer", "agentbot-runtime"
TERMINAL_CHAT_ID = 424242  # the private chat the terminal plays
TERMINAL_USER = {"id": TERMINAL_CHAT_ID, "is_bot": False, "first_name": "You", "username": "terminal"}


def register(subparsers: Any) -> None:
    """Add the `dev` command."""
    parser = subparsers.add_parser(
        "dev",
        help="run the whole bot locally (embedded AWS, local Lambda, terminal chat or Telegram)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--aws-endpoint",
        metavar="[SERVICE=]URL",
        action="append",
        help="use this AWS-compatible endpoint (e.g. LocalStack); SERVICE=URL for one service "
        "(repeatable: --aws-endpoint s3=URL --aws-endpoint sqs=URL), services not named then "
        "use the embedded moto server",
    )
    where.add_argument(
        "--aws-profile", metavar="NAME", help="use real AWS with this profile (creates real resources)"
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        help="keep sessions here across restarts (default: temporary, gone at exit)",
    )
    parser.add_argument("--tenant", default="default", help="tenant part of session keys")
    parser.set_defaults(handler=run_dev)


@dataclass
class Progress:
    """One line per turn on stderr: queued → running → replied, with time and cost."""

    out: IO[str]
    registry: SessionRegistry | None = None
    tenant: str = "default"
    started: dict[int, float] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    idle: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.idle = threading.Condition(self.lock)

    def say(self, text: str) -> None:
        print(f"[agentbot] {text}", file=self.out, flush=True)

    def queued(self, update_id: int, sender: int | None = None) -> None:
        with self.lock:
            if update_id in self.started:  # the consumer was quicker than the webhook's answer
                return
            self.started[update_id] = time.monotonic()
            self.pending.add(update_id)
        # The sender's id is what ALLOWED_USER_IDS takes.
        self.say(f"update {update_id}" + (f" from user {sender}" if sender else "") + ": queued")

    def running(self, messages: list[dict[str, Any]]) -> None:
        for message, (update_id, _key) in zip(messages, _updates_of(messages), strict=True):
            self.queued(update_id, _sender_of(message))
            self.say(f"update {update_id}: running")

    def finished(self, messages: list[dict[str, Any]], outcome: BatchOutcome) -> None:
        for message, (update_id, key) in zip(messages, _updates_of(messages), strict=True):
            failed = message["MessageId"] in outcome.failed_ids
            receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            elapsed = time.monotonic() - self.started.get(update_id, time.monotonic())
            if failed and receives < 3:
                self.say(f"update {update_id}: will retry (attempt {receives} failed)")
                continue
            detail = "gave up (moved to the dead-letter queue)" if failed else "replied"
            self.say(f"update {update_id}: {detail} after {elapsed:.1f} s{self._cost(key, update_id)}")
            with self.lock:
                self.pending.discard(update_id)
                self.idle.notify_all()

    def _cost(self, key: SessionKey | None, update_id: int) -> str:
        if self.registry is None or key is None:
            return ""
        with contextlib.suppress(Exception):
            result = self.registry.get_turn_result(key, update_id)
            if result is not None and result.ok:
                cost = "$0 (nothing billed)" if result.cost_usd == 0 else f"${result.cost_usd:.4f}"
                return f", model {result.duration_ms / 1000:.1f} s, cost {cost}"
        return ""

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while self.pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.idle.wait(left)
        return True


def _sender_of(message: dict[str, Any]) -> int | None:
    try:
        return decode_envelope(message["Body"]).message.user_id
    except Exception:  # a record that is not ours: no sender to show
        return None


def _updates_of(messages: list[dict[str, Any]]) -> list[tuple[int, SessionKey | None]]:
    found = []
    for message in messages:
        try:
            inbound = decode_envelope(message["Body"]).message
            found.append((inbound.update_id, SessionKey.parse(inbound.session_key)))
        except Exception:
            found.append((-1, None))
    return found


@dataclass
class ModelChoice:
    label: str
    runtime_env: dict[str, str]
    api_key: str | None


def choose_model(stack: contextlib.ExitStack) -> ModelChoice:
    """Anthropic with ANTHROPIC_API_KEY, Bedrock with CLAUDE_CODE_USE_BEDROCK, else the offline demo."""
    if os.environ.get("ANTHROPIC_API_KEY"):
        env = {}
        for name in ("ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL"):
            if os.environ.get(name):
                env[name] = os.environ[name]
        return ModelChoice("Anthropic API (ANTHROPIC_API_KEY)", env, os.environ["ANTHROPIC_API_KEY"])
    if os.environ.get("CLAUDE_CODE_USE_BEDROCK", "").lower() in {"1", "true"}:
        env = {"CLAUDE_CODE_USE_BEDROCK": "1"}
        for name in ("AWS_REGION", "BEDROCK_MODEL_ID", "ANTHROPIC_MODEL", "MODEL_INVOKE_ROLE_ARN"):
            if os.environ.get(name):
                env[name] = os.environ[name]
        return ModelChoice(f"Bedrock ({os.environ.get('AWS_REGION', 'default region')})", env, None)
    from .model_server import FREE_USAGE, ModelServer, demo_responder

    server = stack.enter_context(ModelServer(responder=demo_responder, usage=FREE_USAGE))
    return ModelChoice(
        f"offline demo model at {server.base_url} (no network, no credentials, costs $0)",
        {"ANTHROPIC_BASE_URL": server.base_url},
        "offline-demo-key",
    )


class DevSetupError(Exception):
    """Something the user must fix before `agentbot dev` can start; the message says what."""


@contextlib.contextmanager
def aws_for(args: argparse.Namespace) -> Iterator[tuple[str, dict[str, str], LocalCredentials]]:
    """Yield (description, environment for clients and functions, the functions' credentials)
    of the chosen AWS. Local endpoints get credentials made for this run; the embedded moto
    server refuses every request not signed with them (an agent's tool cannot use it)."""
    if args.aws_profile:
        yield _profile_aws(args.aws_profile)
        return
    credentials = LocalCredentials.generate()
    signing = {**credentials.environment(), "AWS_DEFAULT_REGION": LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"]}
    if args.aws_endpoint:
        default, services = parse_endpoints(args.aws_endpoint)
        named = {f"AWS_ENDPOINT_URL_{service.upper()}": url for service, url in services.items()}
        mine = ", ".join(f"{service} at {url}" for service, url in services.items())
        if default:
            label = f"{default} (your endpoint)" + (f"; {mine}" if mine else "")
            yield label, {**signing, "AWS_ENDPOINT_URL": default, **named}, credentials
        else:
            # Services not named run on the embedded moto server, which still demands signatures
            # with this run's credentials; the functions sign every service with them (an endpoint
            # of yours that checks nothing, such as LocalStack, accepts them as any others).
            with moto_endpoint(require=credentials) as url:
                label = f"{mine}; the rest on the embedded moto server at {url} (signed requests only)"
                yield label, {**signing, "AWS_ENDPOINT_URL": url, **named}, credentials
    else:
        with moto_endpoint(require=credentials) as url:
            label = f"embedded moto server at {url} (signed requests only)"
            yield label, {**signing, "AWS_ENDPOINT_URL": url}, credentials


def _profile_aws(profile: str) -> tuple[str, dict[str, str], LocalCredentials]:
    """Real AWS: the profile's credentials, resolved once here so the functions (the runtime
    may run as another user, who cannot read ~/.aws) get them explicitly."""
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    try:
        session = boto3.Session(profile_name=profile)
        frozen = session.get_credentials()
        frozen = frozen.get_frozen_credentials() if frozen is not None else None
    except ProfileNotFound:
        raise DevSetupError(
            f"--aws-profile {profile}: no such profile in ~/.aws/config or ~/.aws/credentials "
            f"(create it with `aws configure --profile {profile}`)"
        ) from None
    except BotoCoreError as exc:
        raise DevSetupError(
            f"--aws-profile {profile}: cannot get its credentials ({type(exc).__name__})"
        ) from None
    if frozen is None:
        raise DevSetupError(f"--aws-profile {profile}: the profile has no credentials (`aws configure`)")
    region = session.region_name or "us-east-1"
    env = {
        "AWS_ACCESS_KEY_ID": frozen.access_key,
        "AWS_SECRET_ACCESS_KEY": frozen.secret_key,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }
    if frozen.token:
        env["AWS_SESSION_TOKEN"] = frozen.token
    return (
        f"real AWS, profile {profile} ({region})",
        env,
        LocalCredentials(frozen.access_key, frozen.secret_key),
    )


def parse_endpoints(values: list[str]) -> tuple[str | None, dict[str, str]]:
    """``--aws-endpoint`` values: (the URL for every service or None, service -> URL)."""
    default: str | None = None
    services: dict[str, str] = {}
    for value in values:
        service, sep, url = value.partition("=")
        if not sep:
            default = value
        elif re.fullmatch(r"[a-z0-9-]+", service) and url:
            services[service.replace("-", "_")] = url
        else:
            raise DevSetupError(f"--aws-endpoint {value!r} is not URL or SERVICE=URL")
    return default, services


def _client(service: str, env: dict[str, str], **kwargs: Any) -> Any:
    session = boto3.Session(
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=env.get("AWS_SESSION_TOKEN"),
        region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    kwargs.setdefault(
        "endpoint_url", env.get(f"AWS_ENDPOINT_URL_{service.upper()}") or env.get("AWS_ENDPOINT_URL")
    )
    return session.client(service, **kwargs)


def _put_secrets(ssm: Any, prefix: str, values: dict[str, str]) -> dict[str, str]:
    """Store secrets as SSM SecureStrings, as in production; return setting → parameter name."""
    names = {}
    for setting, (suffix, value) in {
        "WEBHOOK_SECRET_PARAMETER": ("webhook-secret", values["webhook"]),
        "BOT_TOKEN_PARAMETER": ("bot-token", values["bot"]),
        "ANTHROPIC_API_KEY_PARAMETER": ("anthropic-api-key", values.get("anthropic") or "unused"),
    }.items():
        name = f"/{prefix}/{suffix}"
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
        names[setting] = name
    return names


@dataclass
class DevStack:
    """The running local stack: where to post updates and where replies appear."""

    webhook_url: str
    webhook_secret: str
    terminal: Any  # the local Bot API server playing the chat, or None with a real bot token
    banner: list[str]
    state_root: Path
    log_path: Path

    def post_update(self, client: httpx.Client, update: dict[str, Any]) -> int:
        """Deliver one update to the webhook as Telegram would; returns the HTTP status."""
        response = client.post(
            self.webhook_url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": self.webhook_secret}
        )
        return response.status_code


def start_stack(args: argparse.Namespace, stack: contextlib.ExitStack, progress: Progress) -> DevStack:
    """Start AWS, the functions, the HTTP API, the queue poller and Telegram; stop them with `stack`."""
    token = os.environ.get("TELEGRAM_BOT_TOKEN", "").strip()
    if args.state_dir:
        state_root = args.state_dir.resolve()
    else:
        state_root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="agentbot-dev-")))
    state_root.mkdir(parents=True, exist_ok=True)
    log_path = state_root / "functions.log"
    log = stack.enter_context(log_path.open("a", encoding="utf-8"))

    bot_username = _check_bot_token(token) if token else None
    aws_label, aws_env, credentials = stack.enter_context(aws_for(args))
    names = ResourceNames(prefix="agentbot-dev")
    dynamodb, s3, sqs, ssm = (_client(s, aws_env) for s in ("dynamodb", "s3", "sqs", "ssm"))
    try:
        resources = provision(dynamodb=dynamodb, s3=s3, sqs=sqs, names=names)
    except (BotoCoreError, ClientError) as exc:
        where = f"--aws-endpoint {' '.join(args.aws_endpoint)}" if args.aws_endpoint else aws_label
        raise DevSetupError(
            f"{where}: cannot create the table, bucket and queues ({_aws_problem(exc)}); "
            "check that the endpoint is up and speaks S3, DynamoDB and SQS"
        ) from None

    saved: StateDirectory | None = None
    if args.state_dir and not (args.aws_endpoint or args.aws_profile):
        saved = StateDirectory(
            state_root / "aws", dynamodb=dynamodb, s3=s3, table=resources.table, bucket=resources.bucket
        )
        items, objects = saved.restore()
        if items or objects:
            progress.say(f"restored {items} items and {objects} objects from {saved.root}")
        stack.callback(saved.save)

    model = choose_model(stack)
    telegram_base, telegram_label, terminal = _telegram(stack, token)
    webhook_secret = secrets.token_urlsafe(24)
    secret_names = _put_secrets(
        ssm,
        names.prefix,
        {"webhook": webhook_secret, "bot": token or terminal.token, "anthropic": model.api_key or ""},
    )
    agent_user = agent_user_for_runtime()
    opened = []
    if agent_user is not None:
        opened = prepare_for_agent_user(agent_user, writable=state_root / "work")
    functions = _functions(
        args, aws_env, resources, secret_names, model, telegram_base, state_root, bot_username, agent_user
    )
    service = stack.enter_context(LocalLambda(functions, log=log, require=credentials))
    lambda_client = _client(
        "lambda",
        aws_env,
        endpoint_url=service.endpoint,
        config=Config(read_timeout=1000, retries={"total_max_attempts": 1}),
    )
    gateway = LocalHttpApi(lambda_client=lambda_client, function_name=PRODUCER).start()
    stack.callback(gateway.stop)

    progress.registry = SessionRegistry(dynamodb=dynamodb, table=resources.table)

    def after_batch(messages: list[dict[str, Any]], outcome: BatchOutcome) -> None:
        progress.finished(messages, outcome)
        if saved is not None:
            saved.save()

    events = SqsEventSource(
        sqs_client=sqs,
        lambda_client=lambda_client,
        queue_url=resources.queue_url,
        queue_arn=resources.queue_arn,
        function_name=CONSUMER,
        on_receive=progress.running,
        on_batch=after_batch,
    ).start()
    stack.callback(events.stop)

    banner = [
        f"agentbot dev · {__version__}",
        f"  AWS       {aws_label}",
        f"  model     {model.label}",
        f"  Telegram  {telegram_label}",
        f"  webhook   {gateway.url}",
        f"  state     {state_root}" + ("" if args.state_dir else " (temporary, removed at exit)"),
        f"  logs      {log_path}",
    ]
    if agent_user is not None:
        banner.append(
            f"  agent     runs as the unprivileged user {agent_user!r} (started as root)"
            + (f"; made passable for it: {', '.join(opened)}" if opened else "")
        )
    if token and not (os.environ.get("ALLOWED_USER_IDS") or os.environ.get("ALLOWED_CHAT_IDS")):
        banner.append(
            "  WARNING   no ALLOWED_USER_IDS: anyone who finds the bot can chat with the agent and run "
            "commands on this machine. Set ALLOWED_USER_IDS=<your id> (each progress line shows the "
            "sender's id)."
        )
    return DevStack(gateway.url, webhook_secret, terminal, banner, state_root, log_path)


def run_dev(args: argparse.Namespace) -> int:
    """Start everything, chat until EOF (terminal) or Ctrl-C, then stop everything."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_signal)
    # Ctrl-C stops, also when started from a script in the background: a non-interactive shell
    # starts `cmd &` with SIGINT ignored, and Python then installs no handler of its own.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    progress = Progress(sys.stderr, tenant=args.tenant)
    # This process holds the bot token, the model key and the webhook secret.
    make_non_dumpable()
    try:
        with contextlib.ExitStack() as stack:
            dev = start_stack(args, stack, progress)
            hint = "Type a message; /help lists commands; Ctrl-D ends." if dev.terminal else "Ctrl-C stops."
            print("\n".join([*dev.banner, f"  {hint}"]), file=sys.stderr, flush=True)
            post = _webhook_poster(dev, progress)
            if dev.terminal is not None:
                _terminal_chat(dev.terminal, post, progress, stop)
                progress.wait_idle(timeout_s=900)
            else:
                _poll_telegram(os.environ["TELEGRAM_BOT_TOKEN"].strip(), post, stop, sys.stderr)
            progress.say("stopping")
        return 0
    except KeyboardInterrupt:
        progress.say("stopped")
        return 130
    except DevSetupError as exc:
        progress.say(f"cannot start: {exc}")
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def _telegram(stack: contextlib.ExitStack, token: str) -> tuple[str, str, Any]:
    """(Bot API base URL for the consumer, banner text, terminal chat server or None)."""
    if token:
        base = os.environ.get("TELEGRAM_API_BASE", "https://api.telegram.org")
        return base, f"Bot API long polling ({base})", None
    from .local_telegram import LocalTelegram

    server = stack.enter_context(LocalTelegram())
    return server.base_url, "terminal chat (no TELEGRAM_BOT_TOKEN; stdin plays a private chat)", server


def _functions(
    args: argparse.Namespace,
    aws_env: dict[str, str],
    resources: StackResources,
    secret_names: dict[str, str],
    model: ModelChoice,
    telegram_base: str,
    state_root: Path,
    bot_username: str | None,
    agent_user: str | None,
) -> dict[str, FunctionSpec]:
    common = {
        **aws_env,
        **resources.environment(),
        "TENANT": args.tenant,
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
    }
    producer = {
        **common,
        "WEBHOOK_SECRET_PARAMETER": secret_names["WEBHOOK_SECRET_PARAMETER"],
        "ALLOWED_USER_IDS": os.environ.get("ALLOWED_USER_IDS", ""),
        "ALLOWED_CHAT_IDS": os.environ.get("ALLOWED_CHAT_IDS", ""),
        "GROUP_REPLY_MODE": os.environ.get("GROUP_REPLY_MODE", "mention"),
        "BOT_USERNAME": bot_username or os.environ.get("BOT_USERNAME", "agentbot"),
    }
    consumer = {
        **common,
        "RUNTIME_FUNCTION_NAME": RUNTIME,
        "BOT_TOKEN_PARAMETER": secret_names["BOT_TOKEN_PARAMETER"],
        "TELEGRAM_API_BASE": telegram_base,
    }
    runtime = {
        **common,
        **model.runtime_env,
        "ANTHROPIC_API_KEY_PARAMETER": secret_names["ANTHROPIC_API_KEY_PARAMETER"],
        "SESSIONS_ROOT": str(state_root / "work"),
    }
    return {
        PRODUCER: FunctionSpec(handler="telegram_producer.handler.handle", env=producer, timeout_s=10),
        CONSUMER: FunctionSpec(handler="sqs_consumer.handler.handle", env=consumer, timeout_s=900),
        RUNTIME: FunctionSpec(
            handler="agent_runtime.handler.handle", env=runtime, timeout_s=840, user=agent_user
        ),
    }


def _webhook_poster(dev: DevStack, progress: Progress) -> Callable[[dict[str, Any]], None]:
    client = httpx.Client(timeout=30)

    def post(update: dict[str, Any]) -> None:
        # As Telegram does: a webhook that fails (5xx, a cold start that timed out) gets the
        # update again, a few times, before it is given up.
        for pause in (1.0, 2.0, 4.0, 0.0):
            try:
                status: int | str = dev.post_update(client, update)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            if (isinstance(status, int) and status < 500) or not pause:
                break
            progress.say(f"update {update['update_id']}: webhook answered {status}; delivering again")
            time.sleep(pause)
        if status == 200:
            sender = next(
                (v["from"].get("id") for v in update.values() if isinstance(v, dict) and "from" in v), None
            )
            progress.queued(int(update["update_id"]), sender)
        else:
            progress.say(f"update {update['update_id']}: webhook answered {status}")

    return post


def _terminal_chat(server: Any, post: Any, progress: Progress, stop: threading.Event) -> None:
    """Read lines from stdin as messages of a private chat; print the bot's replies."""

    def show(message: dict[str, Any]) -> None:
        if message["chat"]["id"] == TERMINAL_CHAT_ID:
            # continuation lines are indented so each reply reads as one block
            print("bot> " + message["text"].replace("\n", "\n     "), flush=True)

    server.on_send = show
    update_id = int(time.time()) % 1_000_000 * 1000
    message_id = 0
    for line in sys.stdin:
        if stop.is_set():
            break
        text = line.rstrip("\n")
        if not text.strip():
            continue
        update_id += 1
        message_id += 1
        post(
            {
                "update_id": update_id,
                "message": {
                    "message_id": message_id,
                    "from": TERMINAL_USER,
                    "chat": {"id": TERMINAL_CHAT_ID, "type": "private", "first_name": "You"},
                    "date": int(time.time()),
                    "text": text,
                    **(
                        {"entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]}
                        if text.startswith("/")
                        else {}
                    ),
                },
            }
        )
        # one message at a time, like a person waiting for the answer
        progress.wait_idle(timeout_s=900)


def _poll_telegram(token: str, post: Any, stop: threading.Event, err: IO[str]) -> None:
    """Long-poll getUpdates (after removing any webhook) and feed updates to the producer."""
    base = os.environ.get("TELEGRAM_API_BASE", "https://api.telegram.org").rstrip("/")
    client = httpx.Client(timeout=40)
    api = f"{base}/bot{token}"
    print("[agentbot] removing the bot's webhook so getUpdates can receive updates", file=err, flush=True)
    try:
        removed = client.post(f"{api}/deleteWebhook", json={"drop_pending_updates": False}).status_code
    except httpx.HTTPError as exc:
        removed = type(exc).__name__
    if removed != 200:
        print(f"[agentbot] deleteWebhook failed ({removed}); getUpdates may be refused", file=err, flush=True)
    offset = 0
    while not stop.is_set():
        try:
            answer = client.post(
                f"{api}/getUpdates",
                json={"offset": offset, "timeout": 25, "allowed_updates": list(HANDLED_UPDATE_TYPES)},
            ).json()
        except httpx.HTTPError as exc:
            print(f"[agentbot] getUpdates failed ({type(exc).__name__}); retrying", file=err, flush=True)
            stop.wait(2)
            continue
        if not answer.get("ok"):
            print(f"[agentbot] getUpdates: {answer.get('description')}", file=err, flush=True)
            stop.wait(2)
            continue
        for update in answer["result"]:
            offset = max(offset, int(update["update_id"]) + 1)
            post(update)


def _aws_problem(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "error")
    return type(exc).__name__


def _check_bot_token(token: str) -> str:
    """Ask Telegram who the bot is (``getMe``): its username, for mentions in groups. A refused
    token or an unreachable Telegram stops the start with one line; the token is never shown."""
    base = os.environ.get("TELEGRAM_API_BASE", "https://api.telegram.org").rstrip("/")
    try:
        answer = httpx.post(f"{base}/bot{token}/getMe", timeout=15)
    except httpx.HTTPError as exc:
        raise DevSetupError(
            f"cannot reach Telegram at {base} ({type(exc).__name__}): check the network "
            "(or TELEGRAM_API_BASE), or unset TELEGRAM_BOT_TOKEN to chat in this terminal"
        ) from None
    if answer.status_code in (401, 404):
        raise DevSetupError(
            f"Telegram refused TELEGRAM_BOT_TOKEN ({answer.status_code}): "
            "copy the token from @BotFather again"
        )
    try:
        username = answer.json()["result"]["username"]
    except (ValueError, KeyError, TypeError):
        raise DevSetupError(
            f"Telegram's getMe answered {answer.status_code} without a bot: try again in a minute"
        ) from None
    return str(username)
