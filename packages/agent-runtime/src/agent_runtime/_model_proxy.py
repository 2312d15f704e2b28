"""A key-injecting reverse proxy on 127.0.0.1 between the CLI and the Anthropic API.

The CLI (and every tool it runs) only knows the current turn's key, made fresh for every
turn (``open_turn``) and dead when it ends (``close_turn``): a tool that copied it cannot use
it after its turn. The proxy replaces it with the real key on the way out and streams the
answer back as it arrives, byte for byte but for a secret it added that the upstream echoes
(below). A broken upstream stream becomes a broken downstream stream (no silent truncation).

Two upstreams: the Anthropic API (the proxy adds ``x-api-key``) and Bedrock (the proxy signs
each request with SigV4 using the model-invoke role's credentials; the CLI sends this turn's
key as a Bedrock bearer token and never holds AWS credentials). The secrets it adds (the key, an
MCP server's headers: ``UpstreamAuth.secrets_in``) are removed from the answers it relays, as a
server that echoes its credential would write them (``_echo_scrub``); an MCP server's answer
compressed against the proxy's ``Accept-Encoding: identity`` is undone first (gzip, zlib; a
piece at a time, as a hostile server's few KiB may stand for gigabytes) or refused (502: no
other can be read for the secret). A call the upstream refuses (401/403) is sent once more
when the authentication has another credential by then (``renew``: a key the operator
rotated); a refusal happens before any model work, so nothing is paid twice.

Each turn's calls are metered on the way back (``_usage_meter``): ``close_turn`` returns what
they reported, so a run killed before its result still knows its cost. A call of the turn still
in flight then is cut upstream: a tool that started one as its turn ended (its process dies
with the turn, the proxy's call would not) gets no answer whose cost no budget counts.

``close_turn`` also says how the model failed the turn's calls. A streamed call whose model
sends nothing for ``silence_s`` (before its answer or within it) is given up (a 504, or the
stream cut), which the CLI retries as any model failure; a call that is not streamed sends
nothing until its whole answer is ready, so it is given up only after ``whole_answer_s`` (the
CLI's own limit on a call). After ``SILENT_CALLS_PER_TURN`` such calls, the turn's further
calls are refused at once: a model that accepts calls and never answers costs a turn about
twice ``silence_s`` (``whole_answer_s`` for each call not streamed), not the CLI's retries and
fallbacks of minutes each. An endpoint that cannot be connected to (refused, or no answer to
the connection within ``CONNECT_TIMEOUT_S``) is no silent model: its calls get a 502 and are
counted apart (``unreachable_calls``).
A refusal (429, 529) whose ``retry-after`` is longer than the CLI should wait inside the turn
(``WAIT_IN_TURN_S``) reaches the CLI without it, and the turn's further calls get the same
refusal at once: the run fails fast, and the runtime puts the message off for that wait in the
queue, instead of the CLI sleeping it while "typing…" shows. Both are a model's: a proxy of
another upstream (``metered=False``, an MCP server) relays its 429s as they are, and its
timeouts count as no model's silence. A request the model refuses as too large (413) is
measured (``too_large_bytes``): the CLI's error names no size, the operator's log line does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import http.client
import json
import re
import secrets
import socket
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import msgspec
from session_core import (
    KEY_REFUSED,
    FixedSecret,
    SecretSource,
    bound_log_fields,
    current_log_fields,
    get_logger,
)

from ._chosen_models import is_chosen
from ._echo_scrub import EchoScrubber, SentSecret
from ._method_override import asks_for_another_method
from ._usage_meter import MeteredSpend, ResponseReader, TurnMeter

_log = get_logger(__name__)

# Hop-by-hop and credential headers are never forwarded as received.
_DROP_REQUEST = {
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "x-api-key",
    "authorization",
    "proxy-authorization",
    "te",
    "upgrade",
    # the meter reads the answers as they stream: they must come uncompressed (below)
    "accept-encoding",
    # the proxy signs Bedrock calls itself
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
}
_DROP_RESPONSE = {"connection", "keep-alive", "transfer-encoding", "content-length"}
# The only requests the CLI needs (measured); anything else a tool might try with the real
# key (files, batches, admin endpoints...) is refused before it leaves the container.
ALLOWED_REQUESTS = frozenset({("POST", "/v1/messages"), ("POST", "/v1/messages/count_tokens")})
_BUSY = b'{"type":"error","error":{"type":"rate_limit_error","message":"too many calls at once"}}'
# Model calls of one turn in flight at once (the CLI makes one at a time, a few with
# parallel subagents); more wait for one to end.
CALLS_IN_FLIGHT = 4
# How long a call waits for a slot before a 429 (the CLI retries it): well below the CLI's own
# request timeout, so no call it already gave up on is sent, and paid for, later.
_SLOT_WAIT_S = 30.0
# 400, not 403: the CLI gives up on it without retrying, and the runtime takes 401/403 as the
# model refusing the operator's key.
_SPENT_UP = (
    b'{"type":"error","error":{"type":"invalid_request_error",'
    b'"message":"this turn has used up its cost cap (agentbot proxy)"}}'
)
_FORBIDDEN = (
    b'{"type":"error","error":{"type":"permission_error","message":"not allowed by the agentbot proxy"}}'
)
# Bedrock's answer to a model it does not have (the CLI takes it as "not available").
_NOT_CHOSEN = (
    b'{"type":"error","error":{"type":"invalid_request_error","message":"The provided model '
    b'identifier is invalid: not a model the operator chose (agentbot proxy)"}}'
)
_BAD_TARGET = (
    b'{"type":"error","error":{"type":"invalid_request_error","message":"request target must be a path"}}'
)
_UNAUTHORIZED = (
    b'{"type":"error","error":{"type":"authentication_error","message":"not the current turn\'s key"}}'
)
_UNREACHABLE = b'{"type":"error","error":{"type":"api_error","message":"model endpoint unreachable"}}'
# The same, from an MCP server's proxy (``metered=False``): the runtime reads it in the CLI's
# answer to the call and names the server for the operator (``_sdk_run``).
MCP_SERVER_UNREACHABLE = "MCP server unreachable (agentbot proxy)"
_MCP_UNREACHABLE = json.dumps(
    {"type": "error", "error": {"type": "api_error", "message": MCP_SERVER_UNREACHABLE}}
).encode()
# An MCP server's answer compressed in a way the proxy cannot undo, to look for the secret in.
_MCP_UNREADABLE = (
    b'{"type":"error","error":{"type":"api_error","message":"MCP server answered in a '
    b'Content-Encoding the agentbot proxy cannot read (it asks for identity)"}}'
)
# Compressions an MCP server's answer is undone from (gzip or zlib, told apart by their header).
_UNZIPPED = frozenset({"gzip", "x-gzip", "deflate"})
# The most of an answer read, or undone, at once: a 64 KiB read of a hostile server's gzip
# stands for some 64 MiB, copied several times over while it is scrubbed.
_PIECE = 65536
_SILENT = b'{"type":"error","error":{"type":"api_error","message":"the model sent nothing (agentbot proxy)"}}'
# Calls of a turn the model may leave silent before the proxy takes it for not answering.
SILENT_CALLS_PER_TURN = 2
# A model endpoint accepts a connection in well under a second; one that has not within this
# (never longer than the silence bound) is unreachable, e.g. a firewall dropping the packets.
CONNECT_TIMEOUT_S = 10.0
# The model's refusals that say when to come back (rate limited, overloaded).
_ASKS_TO_WAIT = frozenset({429, 503, 529})
_TOO_LARGE = 413  # the Messages API's request_too_large (past 32 MB)
_WAIT_HEADERS = frozenset({"retry-after", "retry-after-ms"})
# The longest retry-after the CLI waits out itself, in the turn; a longer one is waited for in
# the queue (the CLI would sleep it while "typing…" shows, every try).
WAIT_IN_TURN_S = 20.0
TURN_KEY_PREFIX = "sk-ant-agentbot-turn-"


_BEDROCK_INVOKE = re.compile(r"/model/[A-Za-z0-9._:%-]+/(invoke|invoke-with-response-stream)")


class _StreamFlag(msgspec.Struct):
    stream: bool = False


# Only the Messages API body's top-level ``stream`` is read (the rest is skipped, not built).
_STREAM_FLAG = msgspec.json.Decoder(_StreamFlag)


class UpstreamAuth(Protocol):
    """What the proxy lets through (``allows``) and how it authenticates it upstream."""

    def allows(self, method: str, path: str) -> bool: ...

    def authorize(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> dict[str, str]: ...

    def renew(self, sent: dict[str, str]) -> bool:
        """The upstream refused the credential in ``sent`` (headers ``authorize`` made):
        whether another one is in use now, worth sending the call again with."""
        ...

    def answered(self, status: int) -> None:
        """The upstream's last word on a call (after any resend with a renewed credential)."""
        ...

    def secrets_in(self, sent: dict[str, str]) -> list[SentSecret]:
        """The secret values ``authorize`` put in ``sent``: removed, echoed, from the answers of
        the rest of the turn."""
        ...


class AnthropicKey:
    """Upstream authentication for the Anthropic API: the real key as ``x-api-key``, from
    ``key`` (renewed when the API refuses it: session_core.RotatingSecret)."""

    def __init__(self, key: SecretSource) -> None:
        self._key = key

    def allows(self, method: str, path: str) -> bool:
        """Only the calls the CLI needs (measured)."""
        return (method, path) in ALLOWED_REQUESTS

    def authorize(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> dict[str, str]:
        """The headers to send upstream."""
        return {**headers, "x-api-key": self._key.current()}

    def renew(self, sent: dict[str, str]) -> bool:
        """Whether the key source has another key than the refused one."""
        return self._key.renew(sent["x-api-key"])

    def answered(self, status: int) -> None:
        """Nothing to note: a refused key is told by the turn's outcome."""

    def secrets_in(self, sent: dict[str, str]) -> list[SentSecret]:
        """The key (an error quoting the request's headers would hand it to the CLI)."""
        return [SentSecret("Anthropic API", self._key.name, sent["x-api-key"])]


class BedrockSigner:
    """Upstream authentication for Bedrock: SigV4 with ``credentials()`` (botocore
    Credentials of the model-invoke role, refreshed by the caller), service ``bedrock``."""

    def __init__(self, credentials: Callable[[], object], region: str) -> None:
        self._credentials = credentials
        self._region = region

    def allows(self, method: str, path: str) -> bool:
        """Only model invocation (streamed or not)."""
        return method == "POST" and _BEDROCK_INVOKE.fullmatch(path) is not None

    def authorize(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> dict[str, str]:
        """The headers to send upstream, signed."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
        SigV4Auth(self._credentials(), "bedrock", self._region).add_auth(request)
        return dict(request.headers.items())

    def renew(self, sent: dict[str, str]) -> bool:
        """Never: the role's credentials are refreshed as they expire; one it refuses now is
        refused again (its access is the deployment's)."""
        return False

    def answered(self, status: int) -> None:
        """Nothing to note: a refusal is told by the turn's outcome."""

    def secrets_in(self, sent: dict[str, str]) -> list[SentSecret]:
        """None: a signature is good for its one request; the role's keys are never sent."""
        return []


class _ProxyServer(ThreadingHTTPServer):
    # Calls beyond the turn's slots wait inside the proxy, not in the kernel's accept queue:
    # with the default backlog of 5, a burst of connections was reset before any answer.
    request_queue_size = 128


@dataclass
class _TurnCalls:
    """One turn's model calls as the proxy holds them: their meter (None when unmetered), the
    turn's cost cap, and its few slots for calls in flight."""

    meter: TurnMeter | None
    max_cost_usd: float | None
    slots: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(CALLS_IN_FLIGHT)
    )
    # Its calls' connections upstream while they last; once ended, every one is cut.
    upstreams: set[http.client.HTTPConnection] = field(default_factory=set)
    ended: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The turn's log fields (turn, session, invocation): the proxy's threads log with them.
    log_fields: dict[str, Any] = field(default_factory=dict)
    silent_calls: int = 0
    # The bound the last silent call was given up after, and the setting that says so.
    silence: tuple[float, str] = (0.0, "")
    unreachable_calls: int = 0
    retry_after_s: float | None = None
    # The status of a refusal that asked to wait longer than WAIT_IN_TURN_S (0: none).
    waits_with: int = 0
    # Every secret value its calls carried: one replaced by a rotation may still be echoed.
    secrets: set[SentSecret] = field(default_factory=set)
    # The size of the last request the model refused as too large (413): the CLI's error
    # names no size, and the operator's log line should.
    too_large_bytes: int | None = None

    def carried(self, secrets: list[SentSecret]) -> None:
        with self.lock:
            self.secrets.update(secrets)

    def echo_scrubber(self) -> EchoScrubber:
        with self.lock:
            return EchoScrubber(self.secrets)

    def went_silent(self, bound_s: float, setting: str) -> None:
        with self.lock:
            self.silent_calls += 1
            self.silence = bound_s, setting

    def could_not_connect(self) -> None:
        with self.lock:
            self.unreachable_calls += 1

    def refused_as_too_large(self, size: int) -> None:
        with self.lock:
            self.too_large_bytes = size

    def asked_to_wait(self, status: int, seconds: float) -> None:
        with self.lock:
            self.retry_after_s = max(seconds, self.retry_after_s or 0.0)
            if seconds > WAIT_IN_TURN_S:
                self.waits_with = status

    def given_up(self) -> tuple[int, bytes] | None:
        """The refusal every further call of the turn gets at once, without reaching the
        model (it stopped answering, or asked to wait longer than the turn should); None:
        the call goes on."""
        with self.lock:
            if self.silent_calls >= SILENT_CALLS_PER_TURN:
                return 504, _SILENT
            if self.waits_with:
                kind = "overloaded_error" if self.waits_with == 529 else "rate_limit_error"
                message = f"the model asked to wait {self.retry_after_s:.0f} s (agentbot proxy)"
                body = {"type": "error", "error": {"type": kind, "message": message}}
                return self.waits_with, json.dumps(body).encode()
            return None

    def hold(self, upstream: http.client.HTTPConnection) -> bool:
        """Keep ``upstream`` to be cut when the turn ends; False if it has ended already."""
        with self.lock:
            if not self.ended:
                self.upstreams.add(upstream)
            return not self.ended

    def release(self, upstream: http.client.HTTPConnection) -> None:
        with self.lock:
            self.upstreams.discard(upstream)

    def end(self) -> None:
        """The turn ended: cut its calls still in flight (their relays see the upstream gone)."""
        with self.lock:
            self.ended = True
            cut = list(self.upstreams)
        for upstream in cut:
            _cut(upstream)

    def spent_up(self) -> bool:
        """Whether the calls so far cost the cap (calls still streaming count what they
        reported: a burst of parallel calls can pass it by those)."""
        cap = self.max_cost_usd
        return self.meter is not None and cap is not None and self.meter.spend().cost_usd >= cap


class ModelProxy:
    """Forward the model calls ``auth`` allows to ``upstream``, authenticated by ``auth``
    (``api_key`` is short for ``AnthropicKey(api_key)``); everything else gets a 403, and
    anything without the current turn's key a 401. ``metered=False`` reads no usage from the
    answers (an upstream that is no model: an MCP server), and leaves its silences and its
    requests to wait to its client, as they are no model's. ``silence_s``: how long the
    upstream may send nothing before a streamed call is given up; ``whole_answer_s``: how long
    a call that is not streamed may take to answer (default ``silence_s``; see the module's
    docstring). ``only_models``: the model ids a call may ask for (None: any); a call for
    another gets a 400 without leaving the container."""

    def __init__(
        self,
        *,
        upstream: str,
        api_key: str | None = None,
        auth: UpstreamAuth | None = None,
        silence_s: float = 600.0,
        whole_answer_s: float | None = None,
        metered: bool = True,
        only_models: frozenset[str] | None = None,
    ) -> None:
        parts = urlsplit(upstream.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"ANTHROPIC_BASE_URL must be an http(s) URL, got {upstream!r}")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path
        self._upstream = upstream.rstrip("/")
        if auth is None:
            if api_key is None:
                raise ValueError("ModelProxy needs api_key or auth")
            auth = AnthropicKey(FixedSecret(api_key, name="the API key"))
        self._auth: UpstreamAuth = auth
        self._metered = metered
        self._only_models = only_models
        self._turn_key: str | None = None
        self._turn = _TurnCalls(meter=None, max_cost_usd=None)
        self._silence_s = silence_s
        self._whole_answer_s = silence_s if whole_answer_s is None else whole_answer_s
        self._httpd: ThreadingHTTPServer | None = None

    def start(self) -> ModelProxy:
        """Listen on a free port of 127.0.0.1 in a daemon thread."""
        handler = type("_BoundProxyHandler", (_ProxyHandler,), {"proxy": self})
        self._httpd = _ProxyServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def open_turn(self, *, max_cost_usd: float | None = None) -> str:
        """A fresh key for the turn that starts now; every earlier one stops working. Once
        the turn's metered calls cost ``max_cost_usd``, its further calls are refused (the
        CLI stops at its own budget; a tool calling the model with the key does not)."""
        self._turn = _TurnCalls(
            meter=TurnMeter() if self._metered else None,
            max_cost_usd=max_cost_usd,
            log_fields=current_log_fields(),
        )
        self._turn_key = TURN_KEY_PREFIX + secrets.token_urlsafe(24)
        return self._turn_key

    def close_turn(self) -> MeteredSpend:
        """The turn ended: its key stops working; requests are refused until the next turn.
        Returns what the turn's model calls reported, and how the model failed them."""
        self._turn_key = None
        ended, self._turn = self._turn, _TurnCalls(meter=None, max_cost_usd=None)
        ended.end()
        spend = MeteredSpend() if ended.meter is None else ended.meter.spend()
        with ended.lock:
            return dataclasses.replace(
                spend,
                silent_calls=ended.silent_calls,
                silence_s=ended.silence[0],
                silence_setting=ended.silence[1],
                unreachable_calls=ended.unreachable_calls,
                retry_after_s=ended.retry_after_s,
                too_large_bytes=ended.too_large_bytes,
            )

    def accepts(self, presented: str | None) -> bool:
        """True when ``presented`` is the current turn's key."""
        current = self._turn_key
        return bool(current and presented) and hmac.compare_digest(str(presented), str(current))

    def _admit(self, presented: str | None) -> tuple[bool, _TurnCalls]:
        """(is ``presented`` the current turn's key, that turn's calls)."""
        turn = self._turn
        return self.accepts(presented), turn

    @property
    def upstream_origin(self) -> str:
        """Where the calls go, without the path (a gateway's may carry a token): for logs."""
        port = f":{self._port}" if self._port is not None else ""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{self._scheme}://{host}{port}"

    @property
    def base_url(self) -> str:
        """The URL the CLI is given as ``ANTHROPIC_BASE_URL``."""
        assert self._httpd is not None, "proxy not started"
        port = self._httpd.server_address[1]
        return f"http://127.0.0.1:{port}"

    @property
    def connect_timeout_s(self) -> float:
        """How long a connection to the upstream may take to be made."""
        return min(CONNECT_TIMEOUT_S, self._silence_s)

    def _connection(self) -> http.client.HTTPConnection:
        """A connection not yet made, bounded by ``connect_timeout_s`` until it is."""
        timeout = self.connect_timeout_s
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def chose(self, path: str, body: bytes | None) -> bool:
        """Whether the model a call asks for is one of ``only_models``."""
        return self._only_models is None or is_chosen(_requested_model(path, body), self._only_models)

    def answer_bound_s(self, path: str, body: bytes | None) -> tuple[float, str]:
        """How long the upstream may send nothing on this call, and the setting that says so:
        a streamed call's silence, or a whole answer's wait for one not streamed (it sends
        nothing before its answer is ready, which may take minutes)."""
        if _streams(path, body):
            return self._silence_s, "MODEL_SILENCE_S"
        return self._whole_answer_s, "MODEL_TIMEOUT_MS"


class _ProxyHandler(BaseHTTPRequestHandler):
    proxy: ModelProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # no request lines in logs
        pass

    def _refuse(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _presented_key(self) -> str | None:
        bearer = self.headers.get("Authorization", "")
        return self.headers.get("x-api-key") or (bearer[7:] if bearer.startswith("Bearer ") else None)

    def _forward_in_turn(self) -> None:
        with bound_log_fields(self.proxy._turn.log_fields):
            self._forward()

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if not self.path.startswith("/") or self.path.startswith("//"):
            # An absolute-form target (``GET http://other.example/x``) would make http.client
            # send it, and the Host it names, upstream: the credential would reach another
            # virtual host of the same front. Only a path goes to the configured upstream.
            _log.warning("model_proxy.bad_target", method=self.command[:10])
            self._refuse(400, _BAD_TARGET)
            return
        accepted, turn = self.proxy._admit(self._presented_key())
        meter = turn.meter
        if not accepted:
            _log.warning("model_proxy.wrong_key", method=self.command[:10])
            self._refuse(401, _UNAUTHORIZED)
            return
        path, _, query = self.path.partition("?")
        # An MCP server's body is read too (Laravel takes _method from JSON); the model's API
        # reads no such field, and its bodies are the whole conversation: not parsed again.
        mcp_body = body if meter is None else None
        if not self.proxy._auth.allows(self.command, path) or asks_for_another_method(
            self.headers.items(), query, mcp_body
        ):
            _log.warning("model_proxy.refused", method=self.command[:10], path=path[:100])
            self._refuse(403, _FORBIDDEN)
            return
        if meter is None:  # no model behind it (an MCP server's proxy): nothing to hold back
            self._relay(body, turn)
            return
        if not _streams(path, body) and not self.proxy.chose(path, body):
            # The CLI's start-up checks of its default models, each turn (1-token calls, not
            # streamed): no warning. A streamed call is work (a subagent on an alias such as
            # "fable", which no setting maps): it goes on, as Bedrock and the role allow.
            _log.info("model_proxy.model_not_chosen", model=_requested_model(path, body)[:100])
            self._refuse(400, _NOT_CHOSEN)
            return
        # A few calls at a time: the cap is checked against what the calls so far reported,
        # so a burst of parallel calls could pass it by any number of calls' worth.
        if not turn.slots.acquire(timeout=_SLOT_WAIT_S):
            self._refuse(429, _BUSY)
            return
        try:
            if not self.proxy.accepts(self._presented_key()):  # the turn ended meanwhile
                self._refuse(401, _UNAUTHORIZED)
                return
            if self.command == "POST" and turn.spent_up():
                _log.warning("model_proxy.turn_cost_cap_reached")
                self._refuse(400, _SPENT_UP)
                return
            given_up = turn.given_up()
            if given_up is not None:
                self._refuse(*given_up)
                return
            self._relay(body, turn)
        finally:
            turn.slots.release()

    def _relay(self, body: bytes | None, turn: _TurnCalls) -> None:
        """Send the request upstream, authorized, and stream the answer back, metered; cut
        when the turn ends (``_TurnCalls.end``). Sent once more if the upstream refused the
        credential and the authentication has renewed it."""
        auth = self.proxy._auth
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _DROP_REQUEST}
        headers["Accept-Encoding"] = "identity"
        url = self.proxy._upstream + self.path
        for last_try in (False, True):
            sent = auth.authorize(self.command, url, headers, body)
            turn.carried(auth.secrets_in(sent))
            upstream = self.proxy._connection()
            if not turn.hold(upstream):
                self._refuse(401, _UNAUTHORIZED)
                return
            try:
                response = self._send(upstream, body, sent, turn)
                if response is None:
                    return
                if not last_try and response.status in KEY_REFUSED and auth.renew(sent):
                    _log.info("model_proxy.resent_with_renewed_key", refused_status=response.status)
                    continue
                auth.answered(response.status)
                if self.proxy._metered and response.status == _TOO_LARGE:
                    turn.refused_as_too_large(len(body or b""))
                scrubber = turn.echo_scrubber()
                try:
                    self._relay_answer(response, body, turn, scrubber)
                finally:
                    _log_removed(scrubber)
                return
            finally:
                turn.release(upstream)
                upstream.close()

    def _send(
        self,
        upstream: http.client.HTTPConnection,
        body: bytes | None,
        headers: dict[str, str],
        turn: _TurnCalls,
    ) -> http.client.HTTPResponse | None:
        """The upstream's response (its headers read), or None once the caller heard it is
        unreachable or silent."""
        try:
            upstream.connect()
        except OSError as exc:
            self._could_not_connect(turn, body, exc)
            self._tell_caller(502, self._unreachable)
            return None
        if turn.ended:  # it ended while this call connected (and was not there to be cut)
            _cut(upstream)
        bound_s, _ = self.proxy.answer_bound_s(self.path, body)
        upstream.sock.settimeout(bound_s)
        try:
            upstream.request(self.command, self.proxy._prefix + self.path, body=body, headers=headers)
            return upstream.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, TimeoutError) and self.proxy._metered:
                self._gave_up_on_silence(turn, body, answering=False)
                self._tell_caller(504, _SILENT)
            else:
                self._tell_caller(502, self._unreachable)
            return None

    @property
    def _unreachable(self) -> bytes:
        return _UNREACHABLE if self.proxy._metered else _MCP_UNREACHABLE

    def _tell_caller(self, status: int, body: bytes) -> None:
        with contextlib.suppress(OSError):  # the caller may be gone (a tool killed)
            self._refuse(status, body)

    def _could_not_connect(self, turn: _TurnCalls, body: bytes | None, exc: OSError) -> None:
        if turn.ended or not self.proxy._metered:  # cut by the turn's end; or no model's endpoint
            return
        turn.could_not_connect()
        # Not the model's silence: the operator looks at the endpoint and the network path to it.
        _log.warning(
            "model_proxy.model_unreachable",
            error=type(exc).__name__,
            connect_timeout_s=self.proxy.connect_timeout_s,
            model=_requested_model(self.path, body),
            upstream=self.proxy.upstream_origin,
        )

    def _gave_up_on_silence(self, turn: _TurnCalls, body: bytes | None, *, answering: bool) -> None:
        if turn.ended or not self.proxy._metered:  # cut by the turn's end; or no model's silence
            return
        bound_s, setting = self.proxy.answer_bound_s(self.path, body)
        turn.went_silent(bound_s, setting)
        # The operator's clue to a model that accepts calls and never answers: which model, at
        # which endpoint (scheme, host and port: a gateway's path may carry a token).
        _log.warning(
            "model_proxy.model_silent",
            silent_s=bound_s,
            during="answer" if answering else "before_answer",
            model=_requested_model(self.path, body),
            upstream=self.proxy.upstream_origin,
            setting=setting,
        )

    def _relay_answer(
        self,
        response: http.client.HTTPResponse,
        body: bytes | None,
        turn: _TurnCalls,
        scrubber: EchoScrubber,
    ) -> None:
        meter = turn.meter
        asks_to_wait = self.proxy._metered and response.status in _ASKS_TO_WAIT  # a model's, only
        wait = _retry_after_s(response.getheader("retry-after")) if asks_to_wait else None
        if wait is not None:
            turn.asked_to_wait(response.status, wait)
            _log.warning("model_proxy.model_asks_to_wait", status=response.status, retry_after_s=wait)
        # A wait the queue keeps: the CLI, not told it, fails the run instead of sleeping it.
        dropped = _DROP_RESPONSE | (_WAIT_HEADERS if wait is not None and wait > WAIT_IN_TURN_S else set())
        encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
        if meter is not None and response.status == 200 and encoding != "identity":
            # Against the request's own header: this answer's usage cannot be read. Marked, so
            # the turn's cost is the CLI's own figure (_turn_state.billed_cost).
            _log.warning("model_proxy.unmetered_answer", content_encoding=encoding[:40])
            meter.mark_unread()
        # An MCP server's answer is read for the secret it may echo, which compression would hide:
        # undone (against the proxy's Accept-Encoding: identity), or refused when it cannot be.
        unzip = None
        if not self.proxy._metered and encoding in _UNZIPPED:
            unzip = zlib.decompressobj(wbits=47)
            dropped = dropped | {"content-encoding"}
        elif not self.proxy._metered and encoding != "identity":
            _log.warning("model_proxy.unreadable_mcp_answer", content_encoding=encoding[:40])
            self._tell_caller(502, _MCP_UNREADABLE)
            return
        reader = (
            ResponseReader(
                meter,
                content_type=response.getheader("Content-Type") or "",
                request_model=_requested_model(self.path, body),
            )
            if response.status == 200 and meter is not None and encoding == "identity"
            else None
        )
        try:
            self.send_response(response.status, scrubber.scrub_text(response.reason))
            for name, value in response.getheaders():
                if name.lower() not in dropped:
                    self.send_header(name, scrubber.scrub_text(value))
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while True:
                try:
                    if unzip is not None and unzip.unconsumed_tail:
                        chunk = unzip.unconsumed_tail  # what the last piece left undone
                    elif unzip is not None and unzip.eof and unzip.unused_data:
                        # gzip's next member (RFC 1952 allows many; the CLI's client reads them all)
                        chunk, unzip = unzip.unused_data, zlib.decompressobj(wbits=47)
                    else:
                        chunk = response.read1(_PIECE)
                    data = (
                        chunk
                        if unzip is None
                        else unzip.decompress(chunk, _PIECE)
                        if chunk
                        else unzip.flush()
                    )
                except TimeoutError:
                    self._gave_up_on_silence(turn, body, answering=True)
                    self.close_connection = True
                    return  # as a broken stream: the CLI sees it end without its last chunk
                except (OSError, http.client.HTTPException, zlib.error):
                    self.close_connection = True
                    return  # upstream broke: end without the final chunk so the CLI sees it
                if not chunk:
                    if unzip is not None and not unzip.eof:
                        # its gzip ended short: broken, as the CLI's own client would find it
                        self.close_connection = True
                        return
                    self._send_chunk(scrubber.feed(data))
                    break
                if reader is not None:
                    reader.feed(data)
                self._send_chunk(scrubber.feed(data))
            if reader is not None:
                reader.finish()
            self._send_chunk(scrubber.finish())
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The CLI went away mid-answer (a stop, a timeout): what streamed so far is
            # metered; closing upstream ends the call there. Not an error of the proxy.
            _log.info("model_proxy.client_gone")
            self.close_connection = True

    def _send_chunk(self, data: bytes) -> None:
        if data:  # an empty chunk would end the answer
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _forward_in_turn


def _log_removed(scrubber: EchoScrubber) -> None:
    # The operator's clue to a server that echoes its credential: which, and which setting's
    # value (never the value: the log is no place for it either).
    for secret in sorted(scrubber.removed, key=lambda secret: (secret.server, secret.parameter)):
        _log.warning("model_proxy.echoed_secret_removed", server=secret.server, parameter=secret.parameter)


def _cut(upstream: http.client.HTTPConnection) -> None:
    """End a call upstream from another thread: shutting the socket down wakes its reader."""
    sock = upstream.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _retry_after_s(value: str | None) -> float | None:
    """The seconds a ``retry-after`` header asks for (the API sends seconds; a date is not
    read), None when it names none."""
    try:
        seconds = float(value or "")
    except ValueError:
        return None
    return seconds if 0 < seconds < float("inf") else None


def _streams(path: str, body: bytes | None) -> bool:
    """Whether a call asks for its answer as a stream: Bedrock by its path, the Messages API
    by the body's ``stream``."""
    bedrock = _BEDROCK_INVOKE.fullmatch(path.split("?", 1)[0])
    if bedrock is not None:
        return bedrock.group(1) == "invoke-with-response-stream"
    try:
        return _STREAM_FLAG.decode(body or b"{}").stream
    except msgspec.DecodeError:
        return False


def _requested_model(path: str, body: bytes | None) -> str:
    """The model a call asked for (the answer may name it too): Bedrock has it in the path,
    the Messages API in the body."""
    bedrock = _BEDROCK_INVOKE.fullmatch(path.split("?", 1)[0])
    if bedrock is not None:
        return unquote(path.split("/")[2])
    try:
        model = json.loads(body or b"{}").get("model")
    except (ValueError, AttributeError):
        return ""
    return model if isinstance(model, str) else ""
