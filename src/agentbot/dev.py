"""`agentbot dev`: the whole bot on one machine, with the handlers that ship to Lambda.

One process tree: an embedded AWS (moto on 127.0.0.1 unless told otherwise), the three
functions run by real `awslambdaric` behind the local Lambda service, the HTTP API in front
of the producer, the SQS event source in front of the consumer, and Telegram: the real Bot
API with `TELEGRAM_BOT_TOKEN`, else a terminal chat that plays a private chat.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import functools
import json
import os
import queue
import secrets
import stat
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import urlparse

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from local_stack import (
    LOCAL_CREDENTIALS,
    MAX_RECEIVE_COUNT,
    BatchOutcome,
    FunctionSpec,
    LocalCredentials,
    LocalHttpApi,
    LocalLambda,
    ResourceNames,
    SqsEventSource,
    StackResources,
    StateDirectory,
    kill_descendants,
    moto_endpoint,
    prepare_for_agent_user,
    provision,
)
from local_stack import agent_user as agent_user_for_runtime
from session_core import (
    DEFAULT_RUNTIME_MEMORY_MB,
    KEY_REFUSED,
    Approvals,
    InvalidSessionKeyError,
    SessionKey,
    SessionRegistry,
    aws_error_code,
    make_non_dumpable,
    validate_tenant,
)
from telegram_core import (
    TelegramApiError,
    TelegramNetworkError,
    TelegramUnauthorized,
    decode_envelope,
    marked_command,
    parse_command,
)
from telegram_producer import (
    DECIDED_TEXT,
    HANDLED_UPDATE_TYPES,
    NOTHING_TO_STOP_TEXT,
    STOPPING_TEXT,
)

from . import __version__
from .budget_settings import budget_caps, turn_cap_missing
from .dev_approvals import HINT as APPROVAL_HINT
from .dev_approvals import NOTHING_WAITING, TerminalApprovals
from .dev_failures import FailureReasons
from .dev_files import FILE_COMMAND, document_message
from .dev_stop import StopRequests, TerminalStream, close_within, leave
from .dev_terminal_text import shown_at_terminal
from .dev_typed import mangled_line
from .model_probe import (
    DEFAULT_ANTHROPIC_BASE,
    DEFAULT_ANTHROPIC_MODEL,
    NEW_SHELL_KEY,
    ask_for_one_token,
)
from .ops import (
    WebhookSettingError,
    check_webhook_settings,
    delete_webhook,
    fill_command_menu,
    no_such_profile,
    operator_bot_api,
    peek_dead_letters,
    queue_depth,
    set_webhook,
    telegram_api_base,
)
from .preflight import (
    BOTH_MODELS,
    ConfigurationProblem,
    check_config_readable,
    check_dev_claude_config,
    check_dev_runtime,
    check_dev_shell,
    check_shell_settings,
    check_webhook_secret_setting,
    shell_settings,
)
from .profile_credentials import CREDENTIAL_PROCESS_NOT_RUN, credentials_unreadable
from .shown_url import NOT_A_BASE_URL, shown_base_url

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
        type=_state_dir,
        help="keep sessions here across restarts (default: temporary, gone at exit)",
    )
    parser.add_argument("--tenant", default="default", type=_tenant, help="tenant part of session keys")
    parser.add_argument(
        "--webhook-url",
        metavar="https://...",
        help="with TELEGRAM_BOT_TOKEN: register this public URL (a tunnel to the local webhook) "
        "with Telegram instead of long polling; removed at exit",
    )
    parser.add_argument(
        "--webhook-port",
        metavar="PORT",
        type=_port,
        default=0,
        help="port of the local webhook on 127.0.0.1, for a tunnel (default: any free port)",
    )
    parser.set_defaults(handler=run_dev)


def _keep_env_files_private(directories: list[Path]) -> list[str]:
    """Take every other user's read away from the ``.env`` files (``.env``, ``.env.*`` but the
    example) in ``directories``: the README has the token and the key copied into one from
    ``.env.example``, and the umask leaves it readable by all, the agent's user too. Whoever
    owns it: run with sudo, the checkout and its ``.env`` are the developer's, not root's.
    Returns the files changed."""
    changed = []
    for directory in dict.fromkeys(d.resolve() for d in directories):
        with contextlib.suppress(OSError):
            for path in sorted(directory.glob(".env*")):
                if path.name == ".env.example" or path.is_symlink() or not path.is_file():
                    continue
                info = path.stat()
                if info.st_mode & stat.S_IRWXO:
                    path.chmod(stat.S_IMODE(info.st_mode) & ~stat.S_IRWXO)
                    changed.append(str(path))
    return changed


def _check_own_state_dir(state_root: Path, given: Path) -> None:
    """The state directory must be this user's, and only theirs to write: the agent runs as
    another user and could otherwise have made it (or a link by its name) first, and put links
    where the run writes the sessions of every chat."""
    link_owner = given.lstat().st_uid if given.is_symlink() else os.geteuid()
    info = state_root.stat()
    if link_owner != os.geteuid() or info.st_uid != os.geteuid():
        raise DevSetupError(
            f"--state-dir {given}: it belongs to another user; choose a directory of your own"
        )
    if info.st_mode & stat.S_IWOTH:
        raise DevSetupError(
            f"--state-dir {given}: every user may write it; chmod o-w {state_root}, or choose another"
        )


def _private_log(path: Path) -> IO[str]:
    """The functions' log, appended to and readable by this user only: the agent runs as
    another user and may reach the state directory (a --state-dir under /tmp, a home)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)  # one an earlier version left readable
    return os.fdopen(fd, "a", encoding="utf-8")


def _hold_state_dir(state_root: Path, given: Path) -> int:
    """Lock the state directory for this run (the lock ends with the process); a second run
    on it would save over the first one's sessions when either stops."""
    lock = state_root / ".agentbot-dev.lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:  # a directory this user may not write, or a lock that is no file
        raise DevSetupError(
            f"--state-dir {given}: cannot write {lock} ({exc.strerror}); "
            "make the directory writable for you, or choose another"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        holder = holder if holder.isdigit() else "?"  # printed: nothing but a pid
        os.close(fd)
        raise DevSetupError(
            f"--state-dir {given} is in use by another agentbot dev (pid {holder}); "
            "stop that one or choose another directory"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _state_dir(value: str) -> Path:
    """A --state-dir for argparse: an empty one (``--state-dir "$UNSET"``) would be the current
    directory, and the sessions, log and lock would land in whatever checkout that is."""
    if not value.strip():
        raise argparse.ArgumentTypeError("is empty; name a directory (e.g. --state-dir ~/.agentbot-dev)")
    return Path(value)


def _tenant(value: str) -> str:
    """A session key's tenant part for argparse (the flag, not TENANT, names the mistake)."""
    try:
        return validate_tenant(value)
    except InvalidSessionKeyError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None


def _port(value: str) -> int:
    """A TCP port for argparse: 0 (any free one) to 65535."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 for any free one, up to 65535)")
    return port


@dataclass
class Progress:
    """One line per turn on stderr: queued → running → replied, with time and cost."""

    out: IO[str]
    registry: SessionRegistry | None = None
    tenant: str = "default"
    # update ids the consumer has sent to the dead-letter queue (it acknowledges those records)
    dead_letters: Callable[[], set[int]] | None = None
    failures: FailureReasons | None = None  # why the consumer failed an attempt (its log)
    aborting: threading.Event | None = None  # set: a failed attempt is the abort's, not retried
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

    def not_queued(self, update_id: int, outcome: str) -> None:
        """The webhook answered 200 without queueing the update (ignored, duplicate, rate limited)."""
        self.say(f"update {update_id}: not queued ({outcome})")

    def running(self, messages: list[dict[str, Any]]) -> None:
        for message, (update_id, _key) in zip(messages, _updates_of(messages), strict=True):
            self.queued(update_id, _sender_of(message))
            self.say(f"update {update_id}: running")

    def finished(self, messages: list[dict[str, Any]], outcome: BatchOutcome) -> None:
        acknowledged = [m for m in messages if m["MessageId"] not in outcome.failed_ids]
        dead = self.dead_letters() if self.dead_letters is not None and acknowledged else set()
        for message, (update_id, key) in zip(messages, _updates_of(messages), strict=True):
            failed = message["MessageId"] in outcome.failed_ids
            receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            elapsed = time.monotonic() - self.started.get(update_id, time.monotonic())
            if failed and self.aborting is not None and self.aborting.is_set():
                self.say(f"update {update_id}: abandoned (agentbot dev is aborting; not retried)")
                self._done(update_id)
                continue
            why = self._why(update_id) if failed or update_id in dead else ""
            if failed and receives < MAX_RECEIVE_COUNT:  # SQS hands it out again
                self.say(f"update {update_id}: will retry (attempt {receives} failed{why})")
                continue
            unreachable = self.failures.take_unreachable(update_id) if self.failures is not None else None
            if failed or update_id in dead:
                # Not `agentbot dlq list`: this run's queues live in its own AWS, gone at exit.
                detail = f"gave up (moved to the dead-letter queue{why})"
            elif unreachable is not None:
                detail = f"not answered (Telegram will not post in that chat: {unreachable})"
            else:
                detail = "replied"
            self.say(f"update {update_id}: {detail} after {elapsed:.1f} s{self._cost(key, update_id)}")
            for warning in self.failures.take_warnings() if self.failures is not None else []:
                self.say(f"warning: {warning}")
            self._done(update_id)

    def _done(self, update_id: int) -> None:
        with self.lock:
            self.pending.discard(update_id)
            self.idle.notify_all()

    def _why(self, update_id: int) -> str:
        if self.failures is None:
            return ""
        reason = self.failures.take(update_id)
        log = self.failures.log_path
        return f": {reason}; more in {log}" if reason else f"; the reason is in {log}"

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
    found: list[tuple[int, SessionKey | None]] = []
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
    api_key: str | None = field(repr=False)  # secrets: never in a traceback or a test's output
    # The developer's own AWS credentials (STS's JSON) to sign Bedrock with: secrets, so they
    # reach the runtime through dev's SSM, never in its environment.
    bedrock_credentials: str | None = field(default=None, repr=False)


def choose_model(stack: contextlib.ExitStack, aws_profile: str | None = None) -> ModelChoice:
    """Anthropic with ANTHROPIC_API_KEY, Bedrock with CLAUDE_CODE_USE_BEDROCK, else the offline demo."""
    # Stripped as `agentbot doctor` strips it: a .env saved with CRLF line ends gives "key\r",
    # which no request can carry (every turn failed as "the model did not answer"), or "\r" alone.
    from agent_runtime import ENDPOINT_VARIABLE, uses_bedrock

    api_key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
    if api_key and uses_bedrock(os.environ):  # dev would pick the key, the runtime Bedrock
        raise DevSetupError(BOTH_MODELS)
    if api_key:
        env = {}
        for name in ("ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL"):
            if os.environ.get(name):
                env[name] = os.environ[name]
        _check_model_api(
            os.environ.get("ANTHROPIC_BASE_URL", "").strip() or DEFAULT_ANTHROPIC_BASE,
            api_key,
            os.environ.get("ANTHROPIC_MODEL", "").strip() or DEFAULT_ANTHROPIC_MODEL,
        )
        return ModelChoice("Anthropic API (ANTHROPIC_API_KEY)", env, api_key)
    if uses_bedrock(os.environ):  # as the runtime reads it: "yes" gave a demo banner, a Bedrock runtime
        env = {"CLAUDE_CODE_USE_BEDROCK": "1"}
        # AWS_ENDPOINT_URL_BEDROCK_RUNTIME: where the start's check asks Bedrock, and so the turns
        # (the functions take no AWS endpoint of the shell's).
        for name in ("BEDROCK_MODEL_ID", "ANTHROPIC_MODEL", "ANTHROPIC_SMALL_FAST_MODEL", ENDPOINT_VARIABLE):
            if os.environ.get(name):
                env[name] = os.environ[name]
        session = boto3.Session(profile_name=aws_profile) if aws_profile else boto3.Session()
        # Where doctor and the start's check ask Bedrock: AWS_REGION, else boto3's own (the
        # profile's, AWS_DEFAULT_REGION). Given to the runtime, which would otherwise call the
        # local stack's us-east-1.
        region = os.environ.get("AWS_REGION", "").strip() or session.region_name
        if region:
            env["AWS_REGION"] = region
        try:
            credentials = _bedrock_credentials(session, region, own_profile=bool(aws_profile))
        # the shell's profile found, its credentials not to be had
        except (BotoCoreError, *CREDENTIAL_PROCESS_NOT_RUN) as exc:
            named = f"--aws-profile {aws_profile}" if aws_profile else f"AWS profile {session.profile_name}"
            raise _credentials_unreadable(named, exc) from None
        return ModelChoice(f"Bedrock ({region or 'no region'})", env, None, bedrock_credentials=credentials)
    from local_stack import FREE_USAGE, ModelServer, demo_responder

    server = stack.enter_context(ModelServer(responder=demo_responder, usage=FREE_USAGE))
    return ModelChoice(
        f"offline demo model at {server.base_url} (no network, no credentials, costs $0)",
        {"ANTHROPIC_BASE_URL": server.base_url},
        "offline-demo-key",
    )


def _check_model_api(base: str, key: str, model: str) -> None:
    """Stop the start with one line when the model's API cannot be reached or refuses the key:
    each message would otherwise take three failed attempts (~45 s) to end in "the model did
    not answer", or be answered "misconfigured". It asks what `agentbot doctor` asks (one
    token, for a fraction of a cent); an answer slow to come, or any other (busy, a model id
    it does not know), starts dev as before and is the first turn's to tell."""
    from agent_runtime import is_anthropic_base_url  # as the runtime dev starts reads it

    if not is_anthropic_base_url(base):
        raise DevSetupError(f"ANTHROPIC_BASE_URL: {NOT_A_BASE_URL}")
    try:
        with httpx.Client(timeout=10) as http:
            answer = ask_for_one_token(http, base, key, model)
    except (httpx.ReadTimeout, httpx.WriteTimeout):
        return  # reached, merely slow: nothing to say about the key
    except httpx.HTTPError as exc:
        raise DevSetupError(
            f"cannot reach the model's API at {shown_base_url(base)} ({type(exc).__name__}): check the "
            "network (or ANTHROPIC_BASE_URL), or unset ANTHROPIC_API_KEY to use the offline demo model"
        ) from None
    if answer.status_code in KEY_REFUSED:
        raise DevSetupError(
            f"ANTHROPIC_API_KEY: the model's API at {shown_base_url(base)} answered {answer.status_code}: "
            f"the key is refused; {NEW_SHELL_KEY} and start `agentbot dev` again, or unset it to use "
            "the offline demo model"
        )


def _bedrock_credentials(session: Any, region: str | None, *, own_profile: bool) -> str | None:
    """The developer's own AWS credentials (``session``'s: the shell's or AWS_PROFILE's, as
    `agentbot doctor` checks them) for the runtime to sign Bedrock with, as STS's JSON, after
    asking Bedrock in ``region`` what doctor asks: the runtime's own credentials are this run's
    local ones. Read once: credentials that expire (SSO, a session) need a new start. None when
    there are none, or no region: the runtime's start-up check (``check_dev_runtime``) names
    what is missing, unless a gateway that authenticates callers itself takes the calls (it is
    asked without credentials, as the turns ask it). None with ``own_profile``
    (``--aws-profile``) too: the runtime's own credentials are that profile's, and the local SSM
    they would be kept in is that account's (never written there)."""
    from agent_runtime import lacks_signing_credentials, read_bedrock_endpoints

    gateway = read_bedrock_endpoints(os.environ).gateway
    if not region or lacks_signing_credentials(session, gateway=gateway):
        return None
    _check_bedrock_model(session, region)
    found = session.get_credentials()
    if own_profile or found is None:
        return None
    frozen = found.get_frozen_credentials()
    credentials = {"AccessKeyId": frozen.access_key, "SecretAccessKey": frozen.secret_key}
    if frozen.token:
        credentials["SessionToken"] = frozen.token
    return json.dumps(credentials)


def _check_bedrock_model(session: Any, region: str) -> None:
    """Stop the start with one line when Bedrock refuses the credentials or a model the agents
    use (not enabled, mistyped): every message would otherwise be answered "misconfigured".
    It sends what `agentbot doctor` sends, a 1-token request per model, where the turns send
    theirs (a gateway); a busy or slow answer starts dev as before, the turns have their own
    retries."""
    from .doctor import probe_shell_bedrock_models, shell_bedrock_models

    models = shell_bedrock_models()
    if not models:  # the CLI's own default model: doctor says to set one
        return
    quick = Config(connect_timeout=5, read_timeout=10, retries={"total_max_attempts": 1})
    checks = probe_shell_bedrock_models(session, region, models, quick)
    for check in checks:
        if check.status == "FAIL" and not check.uncertain:
            raise DevSetupError(f"{check.detail}: {check.fix}, and start `agentbot dev` again")


class DevSetupError(Exception):
    """Something the user must fix before `agentbot dev` can start; the message says what."""


@contextlib.contextmanager
def aws_for(
    args: argparse.Namespace, endpoints: tuple[str | None, dict[str, str]]
) -> Iterator[tuple[str, dict[str, str], LocalCredentials]]:
    """Yield (description, environment for clients and functions, the functions' credentials)
    of the chosen AWS; ``endpoints`` are ``--aws-endpoint``'s (``parse_endpoints``). Local
    endpoints get credentials made for this run; the embedded moto server refuses every
    request not signed with them (an agent's tool cannot use it)."""
    if args.aws_profile:
        yield _profile_aws(args.aws_profile)
        return
    credentials = LocalCredentials.generate()
    signing = {**credentials.environment(), "AWS_DEFAULT_REGION": LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"]}
    default, services = endpoints
    named = {f"AWS_ENDPOINT_URL_{service.upper()}": url for service, url in services.items()}
    mine = "".join(f"; {service} at {url}" for service, url in services.items())
    # What the embedded moto server serves still demands signatures with this run's credentials;
    # the functions sign every service with them (an endpoint of yours that checks nothing, such
    # as LocalStack, accepts them as any others).
    with moto_endpoint(require=credentials) as url:
        if default:
            # SSM holds the run's secrets (bot token, API key, your own AWS credentials for
            # Bedrock): never written into an endpoint that anything reaching it may read.
            label = f"{default} (your endpoint){mine}; ssm (the run's secrets) on the embedded moto server"
            env = {**signing, "AWS_ENDPOINT_URL": default, "AWS_ENDPOINT_URL_SSM": url, **named}
        elif services:
            label = f"{mine.removeprefix('; ')}; the rest on the embedded moto server"
            env = {**signing, "AWS_ENDPOINT_URL": url, **named}
        else:
            label, env = "embedded moto server", {**signing, "AWS_ENDPOINT_URL": url}
        yield f"{label} at {url} (signed requests only)", env, credentials


def _credentials_unreadable(named: str, exc: Exception) -> DevSetupError:
    """The start's one line for the credentials of a profile boto3 found but could not get."""
    return DevSetupError(f"{credentials_unreadable(named, exc)}, then start `agentbot dev` again")


def _check_shell_profile() -> None:
    """The shell's AWS_PROFILE names a profile: boto3 reads it for every client of this run
    (with this run's credentials, whatever AWS they reach) and would stop with a traceback."""
    import botocore.session

    profile = os.environ.get("AWS_PROFILE", "")
    if profile and profile not in botocore.session.Session().available_profiles:
        raise DevSetupError(f"{no_such_profile(None)}, or unset it")


def _profile_aws(profile: str) -> tuple[str, dict[str, str], LocalCredentials]:
    """Real AWS: the profile's credentials, resolved once here so the functions (the runtime
    may run as another user, who cannot read ~/.aws) get them explicitly."""
    from botocore.exceptions import ProfileNotFound

    try:
        # AWS_REGION as the AWS CLI and the README's deploy steps take it (boto3 reads only
        # AWS_DEFAULT_REGION): the resources go where the operator exported, not to us-east-1.
        session = boto3.Session(
            profile_name=profile, region_name=os.environ.get("AWS_REGION", "").strip() or None
        )
        frozen = session.get_credentials()
        frozen = frozen.get_frozen_credentials() if frozen is not None else None
    except ProfileNotFound:
        raise DevSetupError(
            f"--aws-profile {profile}: no such profile in ~/.aws/config or ~/.aws/credentials "
            f"(create it with `aws configure --profile {profile}`)"
        ) from None
    except (BotoCoreError, *CREDENTIAL_PROCESS_NOT_RUN) as exc:
        raise _credentials_unreadable(f"--aws-profile {profile}", exc) from None
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


# The services the functions use, which ``--aws-endpoint SERVICE=URL`` may place elsewhere (SSM,
# which holds the run's secrets, never).
ENDPOINT_SERVICES = ("dynamodb", "s3", "sqs", "sts")


def parse_endpoints(values: list[str]) -> tuple[str | None, dict[str, str]]:
    """``--aws-endpoint`` values: (the URL for every service or None, service -> URL).
    Decided: SSM, which holds the run's secrets, is never placed elsewhere."""
    default: str | None = None
    services: dict[str, str] = {}
    for value in values:
        service, sep, url = value.partition("=")
        if not sep:
            default = _endpoint_url(value, value)
        elif service == "ssm":
            # Anything that reaches LocalStack reads its SSM: the agent's tools on this machine too.
            raise DevSetupError(
                f"--aws-endpoint {value}: the run's secrets (bot token, API key, AWS credentials) "
                "stay on the embedded moto server, which answers this run alone; leave ssm out"
            )
        elif service in ENDPOINT_SERVICES:
            services[service] = _endpoint_url(value, url)
        else:
            raise DevSetupError(
                f"--aws-endpoint {value!r}: {service!r} is not one of the services the functions use "
                f"({', '.join(ENDPOINT_SERVICES)}); write URL for all of them or SERVICE=URL"
            )
    return default, services


def _endpoint_url(value: str, url: str) -> str:
    """``url`` if it is an http(s) URL with a host and a valid port, else a DevSetupError."""
    try:
        parts = urlparse(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise DevSetupError(f"--aws-endpoint {value!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DevSetupError(
            f"--aws-endpoint {value!r} is not an http(s) URL with a host (e.g. http://127.0.0.1:4566)"
        )
    return url


@functools.cache
def _session(key_id: str | None, secret: str | None, token: str | None, region: str) -> Any:
    # One per set of credentials: each new session parses botocore's endpoint and model files
    # again (0.1 CPU-s a client).
    return boto3.Session(
        aws_access_key_id=key_id, aws_secret_access_key=secret, aws_session_token=token, region_name=region
    )


def _client(service: str, env: dict[str, str], **kwargs: Any) -> Any:
    session = _session(
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
        env.get("AWS_SESSION_TOKEN"),
        env.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    kwargs.setdefault(
        "endpoint_url", env.get(f"AWS_ENDPOINT_URL_{service.upper()}") or env.get("AWS_ENDPOINT_URL")
    )
    return session.client(service, **kwargs)


def _put_secrets(ssm: Any, prefix: str, values: dict[str, str]) -> dict[str, str]:
    """Store secrets as SSM SecureStrings, as in production; return setting → parameter name
    (BEDROCK_CREDENTIALS_PARAMETER only when ``values`` holds the developer's "bedrock" ones)."""
    from agent_runtime import BEDROCK_CREDENTIALS_PARAMETER

    names = {}
    parameters = {
        "WEBHOOK_SECRET_PARAMETER": ("webhook-secret", values["webhook"]),
        "BOT_TOKEN_PARAMETER": ("bot-token", values["bot"]),
        "ANTHROPIC_API_KEY_PARAMETER": ("anthropic-api-key", values.get("anthropic") or "unused"),
    }
    if values.get("bedrock"):
        parameters[BEDROCK_CREDENTIALS_PARAMETER] = ("bedrock-credentials", values["bedrock"])
    for setting, (suffix, value) in parameters.items():
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
    events: SqsEventSource | None = None  # the consumer's queue poller
    approvals: Approvals | None = None  # [I] the calls waiting for approval (the terminal's)
    bot_api_url: str = field(default="", repr=False)  # <base>/bot<token>: it holds the token

    def post_update(self, client: httpx.Client, update: dict[str, Any]) -> tuple[int, str]:
        """Deliver one update to the webhook as Telegram would; returns the HTTP status and
        what the producer did with it ("enqueued", "ignored: ...", "duplicate", ...)."""
        response = client.post(
            self.webhook_url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": self.webhook_secret}
        )
        self._carry_out_answer(client, response)
        return response.status_code, _webhook_outcome(response)

    def _carry_out_answer(self, client: httpx.Client, response: httpx.Response) -> None:
        """A Bot API call in the webhook's answer (/stop's reply, a press's toast) is made, as
        Telegram makes it; without this the chat never saw it. Best effort, as Telegram's."""
        try:
            answer = response.json() if response.status_code == 200 else None
        except ValueError:
            return
        if not (self.bot_api_url and isinstance(answer, dict)):
            return
        method = answer.get("method")
        if not (isinstance(method, str) and method.isalnum()):
            return
        params = {name: value for name, value in answer.items() if name != "method"}
        with contextlib.suppress(httpx.HTTPError):
            client.post(f"{self.bot_api_url}/{method}", json=params)


# What decides what dev runs (a real bot, a real model), as .env.example names them.
_CHOICES_IN_ENV_FILE = ("TELEGRAM_BOT_TOKEN", "ANTHROPIC_API_KEY", "CLAUDE_CODE_USE_BEDROCK")


def _set_only_in_env_file(path: Path) -> list[str]:
    """The settings of _CHOICES_IN_ENV_FILE that ``path`` (a .env) gives a value and the
    environment does not: the README's .env is loaded into the shell, never read by dev, so
    whoever filled it in and did not load it got the offline demo model without a word."""
    from agent_runtime import uses_bedrock

    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    in_file: dict[str, str] = {}
    for line in lines:
        name, equals, value = line.strip().removeprefix("export ").partition("=")
        if equals and name.strip() in _CHOICES_IN_ENV_FILE:
            in_file[name.strip()] = value.strip().strip("'\"").strip()

    def chosen(settings: Mapping[str, str], name: str) -> bool:  # CLAUDE_CODE_USE_BEDROCK=0 chooses nothing
        return (
            uses_bedrock(settings)
            if name == "CLAUDE_CODE_USE_BEDROCK"
            else bool(settings.get(name, "").strip())
        )

    return [name for name in _CHOICES_IN_ENV_FILE if chosen(in_file, name) and not chosen(os.environ, name)]


def start_stack(args: argparse.Namespace, stack: contextlib.ExitStack, progress: Progress) -> DevStack:
    """Start AWS, the functions, the HTTP API, the queue poller and Telegram; stop them with `stack`."""
    from agent_runtime import default_config_path  # ~1 s to import: only a start pays for it

    agent_user = agent_user_for_runtime()
    config_root = default_config_path()
    # The directories above claude-config and the interpreter's are opened for the agent's
    # user first: the check looks the command servers' programs (the interpreter, a script in
    # claude-config) up as that user.
    opened: list[str] = []
    # Where the README keeps the token and the key (the checkout it is started from).
    made_private = [] if agent_user is None else _keep_env_files_private([Path.cwd(), config_root.parent])
    try:  # claude-config first, its programs too: a mistake there costs no start-up
        if agent_user is not None and config_root.is_dir():
            opened = check_config_readable(agent_user, config_root)
        check_dev_claude_config(agent_user)
    except ConfigurationProblem as exc:
        raise DevSetupError(str(exc)) from None
    endpoints = parse_endpoints(args.aws_endpoint or [])  # a mistake stops the start before any call
    _check_shell_profile()
    token = os.environ.get("TELEGRAM_BOT_TOKEN", "").strip()
    try:  # `agentbot doctor`'s check: a limit, budget or id list set wrong costs no start-up
        check_dev_shell(os.environ)
    except ConfigurationProblem as exc:
        raise DevSetupError(str(exc)) from None
    webhook_secret = _local_webhook_secret()
    if args.webhook_url:
        _check_public_webhook(args.webhook_url, token, webhook_secret)
    if args.state_dir:
        state_root = args.state_dir.resolve()
        try:
            state_root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            why = "it is a file" if isinstance(exc, FileExistsError) else exc.strerror or type(exc).__name__
            raise DevSetupError(f"--state-dir {args.state_dir}: not usable as a directory ({why})") from None
        _check_own_state_dir(state_root, args.state_dir)
        stack.callback(os.close, _hold_state_dir(state_root, args.state_dir))
    else:
        state_root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="agentbot-dev-")))
    log_path = state_root / "functions.log"
    progress.failures = FailureReasons(log_path)
    try:
        log = stack.enter_context(_private_log(log_path))
    except OSError as exc:
        raise DevSetupError(f"{log_path}: cannot open the functions' log ({exc.strerror})") from None

    bot_username = _check_bot_token(token) if token else None
    aws_label, aws_env, credentials = stack.enter_context(aws_for(args, endpoints))
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
        try:
            items, objects = saved.restore()
        except (OSError, ValueError) as exc:
            raise DevSetupError(
                f"--state-dir {args.state_dir}: cannot load the saved sessions in {saved.root} ({exc}); "
                "move that directory away to start afresh"
            ) from None
        if items or objects:
            progress.say(f"restored {items} items and {objects} objects from {saved.root}")
        stack.callback(saved.save)

    model = choose_model(stack, args.aws_profile)
    telegram_base, telegram_label, terminal = _telegram(stack, token, state_root)
    secret_names = _put_secrets(
        ssm,
        names.prefix,
        {
            "webhook": webhook_secret,
            "bot": token or terminal.token,
            "anthropic": model.api_key or "",
            "bedrock": model.bedrock_credentials or "",
        },
    )
    if agent_user is not None:
        from agent_runtime import bundled_cli_path

        # The CLI, run but not read by the agent's user, is non-dumpable: its pipes stay ours.
        opened += prepare_for_agent_user(
            agent_user, writable=state_root / "work", run_only=[bundled_cli_path()]
        )
    functions = _functions(
        args,
        aws_env,
        resources,
        secret_names,
        model,
        telegram_base,
        state_root,
        bot_username,
        agent_user,
        # the terminal's /help must not invite photos the terminal cannot send
        channel="terminal" if terminal is not None else "telegram",
    )
    try:  # the functions' own start-up checks, before any function starts
        check_shell_settings({"producer": functions[PRODUCER].env, "consumer": functions[CONSUMER].env})
        runtime_env = functions[RUNTIME].env
        check_dev_runtime(runtime_env, ssm=ssm, agent_user=agent_user, aws_profile=args.aws_profile)
    except ConfigurationProblem as exc:
        raise DevSetupError(str(exc)) from None
    service = stack.enter_context(LocalLambda(functions, log=log, require=credentials))
    lambda_client = _client(
        "lambda",
        aws_env,
        endpoint_url=service.endpoint,
        config=Config(read_timeout=1000, retries={"total_max_attempts": 1}),
    )
    try:
        gateway = LocalHttpApi(lambda_client=lambda_client, function_name=PRODUCER, port=args.webhook_port)
        gateway.start()
    except OSError as exc:
        raise DevSetupError(
            f"--webhook-port {args.webhook_port}: cannot listen on 127.0.0.1 ({exc.strerror}); "
            "choose another port"
        ) from None
    stack.callback(gateway.stop)

    progress.registry = SessionRegistry(dynamodb=dynamodb, table=resources.table)
    progress.dead_letters = _dead_letter_watch(sqs, resources.dlq_url)

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

    if args.webhook_url:
        telegram_label = _register_public_webhook(stack, args.webhook_url, token, webhook_secret, progress)
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
            + (f"; made private for it: {', '.join(made_private)}" if made_private else "")
        )
    if unloaded := _set_only_in_env_file(Path.cwd() / ".env"):
        banner.append(
            f"  NOTE      ./.env sets {' and '.join(unloaded)}, which this shell does not have: dev reads "
            "only the environment; load the file (set -a; . ./.env; set +a) and start again"
        )
    if token and not (os.environ.get("ALLOWED_USER_IDS") or os.environ.get("ALLOWED_CHAT_IDS")):
        banner.append(
            "  WARNING   no ALLOWED_USER_IDS: anyone who finds the bot can chat with the agent and run "
            "commands on this machine. Set ALLOWED_USER_IDS=<your id> (each progress line shows the "
            "sender's id)."
        )
    # `agentbot doctor`'s warning; check_dev_shell above refused any budget it cannot read
    if unbounded := turn_cap_missing(budget_caps(None, os.environ), deployed=False):
        banner.append(f"  WARNING   {unbounded}")
    approvals = Approvals(dynamodb=dynamodb, table=resources.table)
    bot_token = token or terminal.token
    return DevStack(
        gateway.url,
        webhook_secret,
        terminal,
        banner,
        state_root,
        log_path,
        events,
        approvals,
        bot_api_url=f"{telegram_base.rstrip('/')}/bot{bot_token}",
    )


def run_dev(args: argparse.Namespace) -> int:
    """Start everything, chat until EOF (terminal) or Ctrl-C, then stop everything.

    Only the banner, progress lines and replies reach the terminal: once the stack runs,
    Python's stderr (where stray tracebacks of threads and servers go) is functions.log.
    """
    stop = StopRequests(lambda text: progress.say(text))
    # `agentbot dev | head`: once the reader is gone, everything stops (see dev_stop).
    sys.stdout = cast(IO[str], TerminalStream(sys.stdout, stop.output_closed))
    progress = Progress(cast(IO[str], TerminalStream(sys.stderr, stop.output_closed)), tenant=args.tenant)
    progress.aborting = stop.abort
    # This process holds the bot token, the model key and the webhook secret.
    make_non_dumpable()
    stack = contextlib.ExitStack()
    with stop.installed():
        try:
            dev = start_stack(args, stack, progress)
            # inside the try: a Ctrl-C here still closes the stack (and removes a webhook)
            stack.enter_context(_stderr_to(dev.log_path))
            stop.started()
        except DevSetupError as exc:
            stack.close()
            progress.say(f"cannot start: {exc}")
            return 2
        except KeyboardInterrupt:
            stack.close()
            progress.say("stopped")
            return stop.exit_code
        except BaseException:
            stack.close()
            raise
        try:
            code = _serve(args, dev, progress, stop)
        except Exception:  # a bug: its traceback goes to functions.log, the stack still stops
            traceback.print_exc()
            progress.say(f"stopping after an unexpected error (traceback in {dev.log_path})")
            code = 1
        # After the turn (or the abort), closing takes a few seconds; never more than this.
        closed = close_within(stack.close, _CLOSE_TIMEOUT_S)
        # Whatever is left below this process (say a tool whose worker's reaper was killed and
        # which was re-parented here) goes now.
        kill_descendants(os.getpid())
        if closed:
            progress.say("stopped" if stop.requested else "stopped at the end of the input")
        else:
            progress.say(f"stopped (closing took longer than {_CLOSE_TIMEOUT_S:.0f} s and was cut short)")
    # Everything is closed or killed: skip the interpreter's teardown of moto, botocore and the
    # SDK's modules, which takes seconds and has nothing left to do.
    leave(code)


_CLOSE_TIMEOUT_S = 4.0


def _serve(args: argparse.Namespace, dev: DevStack, progress: Progress, stop: StopRequests) -> int:
    """Feed messages until EOF or a stop request; after one Ctrl-C wait for the turn in hand."""
    if dev.terminal is not None:
        hint = "Type a message; /help lists commands; Ctrl-D ends, Ctrl-C stops."
    else:
        hint = "Ctrl-C stops."
    print("\n".join([*dev.banner, f"  {hint}"]), file=progress.out, flush=True)
    fed_all = threading.Event()  # the terminal's input ended
    stop_feeding = threading.Event()  # set: take no more messages
    post = _webhook_poster(dev, progress)
    feeder: tuple[Callable[..., None], tuple[Any, ...]] | None = None
    if dev.terminal is not None:
        feeder = (
            _terminal_chat,
            (dev.terminal, post, progress, stop_feeding, fed_all, dev.approvals, args.tenant),
        )
    elif not args.webhook_url:
        token = os.environ["TELEGRAM_BOT_TOKEN"].strip()
        feeder = _poll_telegram, (token, post, stop_feeding, progress.out)
    # (with --webhook-url nothing is fed from here: Telegram calls the webhook through the tunnel)
    if feeder is not None:
        # A daemon thread: a read of stdin or a long poll must not hold up the stop.
        target, feed_args = feeder
        threading.Thread(target=target, args=feed_args, name="agentbot-dev-feed", daemon=True).start()
    # The main thread only sleeps and reads flags here: a signal handler runs on this thread,
    # and one that set an Event this thread was waiting on would deadlock on its lock.
    while not (stop.requested or fed_all.is_set()):
        time.sleep(0.2)
    stop_feeding.set()
    # End of input: every message typed gets its answer, retries included.
    while not stop.requested and not progress.wait_idle(timeout_s=0.2):
        pass
    if stop.finish.is_set() and dev.events is not None:
        # Ctrl-C: the turn in hand finishes, but nothing new starts (not even a retry).
        dev.events.stop_receiving()
        while not stop.abort.is_set() and dev.events.busy:
            time.sleep(0.2)
    if stop.abort.is_set():
        return stop.exit_code
    return 130 if stop.finish.is_set() else 0


@contextlib.contextmanager
def _stderr_to(log_path: Path) -> Iterator[None]:
    with log_path.open("a", encoding="utf-8", buffering=1) as log, contextlib.redirect_stderr(log):
        yield


def _telegram(stack: contextlib.ExitStack, token: str, state_root: Path) -> tuple[str, str, Any]:
    """(Bot API base URL for the consumer, banner text, terminal chat server or None); the
    terminal chat saves the files the agent sends under ``state_root``."""
    if token:
        base = telegram_api_base()
        return base, f"Bot API long polling ({base})", None
    from local_stack import LocalTelegram

    server = stack.enter_context(LocalTelegram(files_dir=state_root / "sent-files"))
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
    channel: str = "telegram",
) -> dict[str, FunctionSpec]:
    common = {
        **aws_env,
        **resources.environment(),
        "TENANT": args.tenant,
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
    }
    # Both read them: the producer to pick a group's messages, the consumer for what /help says.
    groups = {
        "GROUP_REPLY_MODE": os.environ.get("GROUP_REPLY_MODE", "mention"),
        "BOT_USERNAME": bot_username or os.environ.get("BOT_USERNAME", "agentbot"),
    }
    producer = {
        **common,
        **groups,
        "WEBHOOK_SECRET_PARAMETER": secret_names["WEBHOOK_SECRET_PARAMETER"],
        **shell_settings("producer", os.environ),
        **NO_VOICE_TRANSCRIPTION,
    }
    consumer = {
        **common,
        **groups,
        **shell_settings("consumer", os.environ),
        **NO_VOICE_TRANSCRIPTION,
        "RUNTIME_FUNCTION_NAME": RUNTIME,
        "BOT_TOKEN_PARAMETER": secret_names["BOT_TOKEN_PARAMETER"],
        "TELEGRAM_API_BASE": telegram_base,
        "CHAT_CHANNEL": channel,
    }
    runtime = {
        **common,
        **model.runtime_env,
        "ANTHROPIC_API_KEY_PARAMETER": secret_names["ANTHROPIC_API_KEY_PARAMETER"],
        "SESSIONS_ROOT": str(state_root / "work"),
        **shell_settings("runtime", os.environ),
        # A sweep of the whole uid is Lambda's, whose environment is the function's: here the
        # runtime may run as the developer, whose editor and shell are that uid's too.
        "PROCESS_SWEEP_SCOPE": "descendants",
    }
    # Bedrock signed with the developer's own, when dev stored them; else empty, never the shell's
    # (the local Lambda passes the shell's environment on: with --aws-profile the runtime would
    # read whatever parameter of the real account it named).
    runtime["BEDROCK_CREDENTIALS_PARAMETER"] = secret_names.get("BEDROCK_CREDENTIALS_PARAMETER", "")
    return {
        PRODUCER: FunctionSpec(handler="telegram_producer.handler.handle", env=producer, timeout_s=10),
        CONSUMER: FunctionSpec(handler="sqs_consumer.handler.handle", env=consumer, timeout_s=900),
        # One turn at a time: local workers share one file system, which Lambda's
        # environments never do, and a tool may read what another chat's running turn holds.
        RUNTIME: FunctionSpec(
            handler="agent_runtime.handler.handle",
            env=runtime,
            timeout_s=840,
            user=agent_user,
            max_concurrency=1,
            # the deployed function's (RuntimeMemoryMb's default): its history limits hold here too
            memory_mb=DEFAULT_RUNTIME_MEMORY_MB,
        ),
    }


# No Amazon Transcribe locally: said outright, since the functions start with the shell's
# environment (a developer may deploy with VOICE_TRANSCRIPTION set from the same shell).
NO_VOICE_TRANSCRIPTION = {"VOICE_TRANSCRIPTION": "off"}


def _webhook_poster(dev: DevStack, progress: Progress) -> Callable[[dict[str, Any]], str]:
    client = httpx.Client(timeout=30)

    def post(update: dict[str, Any]) -> str:
        """Post ``update`` to the webhook; what the producer did with it (see post_update)."""
        # As Telegram does: a webhook that fails (5xx, a cold start that timed out) gets the
        # update again, a few times, before it is given up.
        outcome = ""
        for pause in (1.0, 2.0, 4.0, 0.0):
            try:
                status: int | str
                status, outcome = dev.post_update(client, update)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            if (isinstance(status, int) and status < 500) or not pause:
                break
            progress.say(f"update {update['update_id']}: webhook answered {status}; delivering again")
            time.sleep(pause)
        if status == 200 and (outcome.startswith("enqueued") or outcome in _QUEUED_PRESSES):
            sender = next(
                (v["from"].get("id") for v in update.values() if isinstance(v, dict) and "from" in v), None
            )
            progress.queued(int(update["update_id"]), sender)
        elif status == 200:
            progress.not_queued(int(update["update_id"]), outcome)
        else:
            progress.say(f"update {update['update_id']}: webhook answered {status}")
        return outcome

    return post


def _terminal_progress() -> Any:
    """[H] Print the activity line of the terminal chat's drafts ("🔧 Bash: ls") when it changes;
    the answer itself is printed once, when it is sent."""
    last: list[str] = [""]

    def show(draft: dict[str, Any]) -> None:
        line = str(draft.get("visible", "")).rsplit("\n\n", 1)[-1]
        if draft.get("chat_id") == TERMINAL_CHAT_ID and line.startswith(("🔧", "🤖")) and line != last[0]:
            last[0] = line
            print(f"  ⋯ {shown_at_terminal(line, one_line=True)}", flush=True)

    return show


def terminal_reply(message: dict[str, Any]) -> str:
    """How the terminal chat shows a message the bot sent: its text, or for a file the line
    "📎 chart.png (12.3 KB) saved to <path>" (the local Bot API server saved it there) and its
    caption. Continuation lines are indented so each reply reads as one block."""
    sent = message.get("_file")
    if isinstance(sent, dict):
        name = shown_at_terminal(str(sent["name"]), one_line=True)
        text = f"📎 {name} ({_size_text(int(sent['size']))}) saved to {sent['path']}"
        if message.get("caption"):
            text += f"\n{shown_at_terminal(str(message['caption']))}"
    else:
        text = shown_at_terminal(str(message.get("text", "")))
    return "bot> " + text.replace("\n", "\n     ")


def _size_text(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def _terminal_chat(
    server: Any,
    post: Any,
    progress: Progress,
    stop: threading.Event,
    fed_all: threading.Event,
    approvals_store: Approvals | None = None,
    tenant: str = "default",
) -> None:
    """Read lines from stdin as messages of a private chat; print the bot's replies. At a
    terminal, ``you> `` asks for each message."""

    # [I] /allow, /always, /deny press the waiting call's button (one from before a restart too)
    approvals = TerminalApprovals(
        approvals_store, SessionKey(tenant=tenant, chat_id=TERMINAL_CHAT_ID, thread_id=0)
    )
    before = approvals.waiting_from_before()
    if before is not None:
        print(f"bot> A call still waits for your approval: {before}\n{APPROVAL_HINT}", flush=True)

    def show(message: dict[str, Any]) -> None:
        if message["chat"]["id"] == TERMINAL_CHAT_ID:
            print(terminal_reply(message), flush=True)
            hint = approvals.seen(message)  # how to press its buttons here
            if hint is not None:
                print(hint, flush=True)

    def show_edit(edit: dict[str, Any]) -> None:
        if edit["chat_id"] != TERMINAL_CHAT_ID:
            return
        if "message" in edit:  # [I] buttons put under a question shown already: how to press them
            hint = approvals.seen(edit["message"])
            if hint is not None:
                print(hint, flush=True)
        elif not edit.get("reply_markup"):
            print("bot> " + shown_at_terminal(str(edit["visible"])).replace("\n", "\n     "), flush=True)

    server.on_send = show
    server.on_edit = show_edit  # [I] an approval's message, edited to show the decision
    server.on_draft = _terminal_progress()  # [H] what the agent is doing, one line per step
    prompt = "you> " if os.isatty(0) else ""
    update_id = int(time.time()) % 1_000_000 * 1000
    message_id = 0
    # [H] Lines are read by their own thread so that a /stop typed while a turn runs goes out
    # at once (the producer stops the turn); every other line waits for the answer before it.
    lines: queue.Queue[str | None] = queue.Queue()
    held: collections.deque[str] = collections.deque()

    def read_all() -> None:
        for line in _stdin_lines(lambda: None):
            lines.put(line)
        lines.put(None)

    def post_message(content: dict[str, Any]) -> None:
        nonlocal update_id, message_id
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
                    **content,
                },
            }
        )

    def post_text(text: str) -> None:
        # Marked as Telegram marks it: "/stop, wrong file" gives /stop (the whole first word
        # was marked, which names no command, so the agent was sent it as words)
        command = marked_command(text)
        mark = {"entities": [{"type": "bot_command", "offset": 0, "length": len(command)}]}
        post_message({"text": text, **(mark if command else {})})

    def press(text: str) -> None:
        nonlocal update_id
        update = approvals.press(text, TERMINAL_USER)
        if update is None:
            print(NOTHING_WAITING, flush=True)
            return
        update_id += 1
        post({"update_id": update_id, **update})

    def revoke(text: str) -> None:
        nonlocal update_id
        update = approvals.revoke(text, TERMINAL_USER)
        if isinstance(update, str):
            print(update, flush=True)
            return
        update_id += 1
        outcome = post({"update_id": update_id, **update})
        if outcome.startswith("button: "):  # the press's answer, a toast in Telegram
            print("bot> " + outcome.removeprefix("button: "), flush=True)

    def stops_meanwhile() -> None:
        while True:
            try:
                line = lines.get_nowait()
            except queue.Empty:
                return
            if line is not None and parse_command(marked_command(line.strip())) == "stop":
                post_text(line.strip())
            else:
                held.append(line)  # type: ignore[arg-type]  # None (end of input) keeps its place

    threading.Thread(target=read_all, name="agentbot-dev-stdin", daemon=True).start()
    try:
        while not stop.is_set():
            if not held and prompt:
                print(prompt, end="", flush=True)
            line = held.popleft() if held else lines.get()
            if line is None:
                return
            text = line.rstrip("\n")
            if not text.strip():
                continue
            mangled = mangled_line(text) if prompt else None  # only a terminal mangles lines
            if mangled is not None:
                print(mangled, flush=True)
                continue
            if approvals.is_command(text):
                press(text)
            elif approvals.is_revoke(text):
                revoke(text)
            elif FILE_COMMAND.match(text.strip()):
                document = document_message(text, server)
                if isinstance(document, str):  # why it could not be sent: nothing to wait for
                    print(document, flush=True)
                    continue
                approvals.answered()
                post_message(document)
            else:
                approvals.answered()  # a message declines a waiting call (and reaches the agent)
                post_text(text)
            # one message at a time, like a person waiting for the answer (a /stop excepted)
            while not stop.is_set() and not progress.wait_idle(timeout_s=0.5):
                stops_meanwhile()
    finally:
        fed_all.set()


# [I] A press the producer decided: it queued the turn that carries the decision out.
_QUEUED_PRESSES = frozenset(f"button: {text}" for text in DECIDED_TEXT.values())


def _stdin_lines(before_each: Callable[[], object]) -> Iterator[str]:
    """Lines of stdin read with os.read: a thread blocked here holds no lock of sys.stdin,
    which the interpreter would otherwise wait for at exit."""
    pending = b""
    while True:
        if b"\n" not in pending:
            before_each()
        while b"\n" not in pending:
            try:
                chunk = os.read(0, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                if pending:
                    yield pending.decode("utf-8", errors="replace")
                return
            pending += chunk
        line, _, pending = pending.partition(b"\n")
        yield line.decode("utf-8", errors="replace")


# What fills a command menu Telegram refused at start (the bot answers without it).
_MENU_RETRY = "start `agentbot dev` again"


def _poll_telegram(token: str, post: Any, stop: threading.Event, err: IO[str]) -> None:
    """Long-poll getUpdates (after removing any webhook) and feed updates to the producer."""
    api = operator_bot_api(httpx.Client(timeout=40), token, telegram_api_base())
    print("[agentbot] removing the bot's webhook so getUpdates can receive updates", file=err, flush=True)
    try:
        api.call("deleteWebhook", {"drop_pending_updates": False})
    except TelegramApiError as exc:
        print(
            f"[agentbot] deleteWebhook failed ({exc.error_code}); getUpdates may be refused",
            file=err,
            flush=True,
        )
    print(f"[agentbot] command menu: {fill_command_menu(api, to_retry=_MENU_RETRY)}", file=err, flush=True)
    offset = 0
    while not stop.is_set():
        try:
            updates = api.call(
                "getUpdates",
                {"offset": offset, "timeout": 25, "allowed_updates": list(HANDLED_UPDATE_TYPES)},
            )
        except TelegramNetworkError as exc:
            print(f"[agentbot] getUpdates failed ({exc.description}); retrying", file=err, flush=True)
            stop.wait(2)
            continue
        except TelegramApiError as exc:
            print(f"[agentbot] getUpdates: {exc.description}", file=err, flush=True)
            stop.wait(2)
            continue
        for update in updates:
            if stop.is_set():
                return
            offset = max(offset, int(update["update_id"]) + 1)
            post(update)


def _local_webhook_secret() -> str:
    """TELEGRAM_WEBHOOK_SECRET when set (so a tunnel or a test client can call the local
    webhook), else a fresh one for this run."""
    try:
        return check_webhook_secret_setting(os.environ) or secrets.token_urlsafe(24)
    except ConfigurationProblem as exc:
        raise DevSetupError(str(exc)) from None


def _check_public_webhook(url: str, token: str, secret: str) -> None:
    if not token:
        raise DevSetupError(
            "--webhook-url needs TELEGRAM_BOT_TOKEN: it registers the URL with your bot "
            "(the terminal chat has no webhook to register)"
        )
    try:
        check_webhook_settings(url=url, secret_token=secret)
    except WebhookSettingError as exc:
        raise DevSetupError(f"--webhook-url {url}: {exc.problem}") from None


def _register_public_webhook(
    stack: contextlib.ExitStack, url: str, token: str, secret: str, progress: Progress
) -> str:
    """setWebhook with this run's secret (long polling is off while it is set); deleteWebhook
    at exit, so the bot is not left pointing at a tunnel that is gone. Returns the banner text."""
    client = stack.enter_context(httpx.Client(timeout=httpx.Timeout(10.0)))
    api = operator_bot_api(client, token, telegram_api_base())
    try:
        set_webhook(api, url=url, secret_token=secret)
    except TelegramApiError as exc:
        raise DevSetupError(f"--webhook-url {url}: {exc}") from None
    progress.say(f"command menu: {fill_command_menu(api, to_retry=_MENU_RETRY)}")

    def remove() -> None:
        try:
            delete_webhook(api)
            progress.say(f"removed the webhook {url}")
        except TelegramApiError as exc:
            progress.say(f"could not remove the webhook {url} ({exc}); `agentbot webhook delete` does")

    stack.callback(remove)
    return f"webhook {url} (set with Telegram; removed at exit), forwarded to the local webhook below"


def _dead_letter_watch(sqs: Any, dlq_url: str) -> Callable[[], set[int]]:
    """Update ids now in the dead-letter queue (looked at without taking them out)."""
    lock = threading.Lock()  # two pollers peeking at once would hide messages from each other

    def dead_letters() -> set[int]:
        with lock, contextlib.suppress(BotoCoreError, ClientError):
            if queue_depth(sqs, dlq_url):
                letters = peek_dead_letters(sqs, dlq_url, limit=100, wait_seconds=0)
                return {letter.update_id for letter in letters if letter.update_id is not None}
        return set()

    return dead_letters


def _webhook_outcome(response: httpx.Response) -> str:
    """What the producer says it did; a reply in the webhook's answer is its rate-limit notice."""
    try:
        answer = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(answer, dict) and isinstance(answer.get("outcome"), str):
        return str(answer["outcome"])
    said = answer.get("text") if isinstance(answer, dict) else None
    if isinstance(said, str) and said.startswith((STOPPING_TEXT, NOTHING_TO_STOP_TEXT)):
        return f"stop: {answer['text']}"  # [H] the producer answers /stop itself
    if isinstance(answer, dict) and answer.get("method") == "answerCallbackQuery":
        return f"button: {answer.get('text', '')}"  # [I] the producer answers a press itself
    if isinstance(answer, dict) and answer.get("method") == "sendMessage":
        return "rate limited; the sender was asked to slow down"
    return f"HTTP {response.status_code}"


def _aws_problem(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return aws_error_code(exc) or "error"
    return type(exc).__name__


def _check_bot_token(token: str) -> str:
    """Ask Telegram who the bot is (``getMe``): its username, for mentions in groups. A refused
    token or an unreachable Telegram stops the start with one line; the token is never shown."""
    base = telegram_api_base()
    with httpx.Client(timeout=15) as http:
        try:
            me = operator_bot_api(http, token, base).call("getMe", {})
        except TelegramNetworkError as exc:
            raise DevSetupError(
                f"cannot reach Telegram at {base} ({exc.description}): check the network "
                "(or TELEGRAM_API_BASE), or unset TELEGRAM_BOT_TOKEN to chat in this terminal"
            ) from None
        except TelegramApiError as exc:
            if isinstance(exc, TelegramUnauthorized) or exc.error_code == 404:
                raise DevSetupError(
                    f"Telegram refused TELEGRAM_BOT_TOKEN ({exc.error_code}): "
                    "copy the token from @BotFather again"
                ) from None
            raise DevSetupError(
                f"Telegram's getMe answered {exc.error_code} without a bot: try again in a minute"
            ) from None
    username = me.get("username") if isinstance(me, dict) else None
    if not username:
        raise DevSetupError("Telegram's getMe answered without a bot: try again in a minute")
    return str(username)
