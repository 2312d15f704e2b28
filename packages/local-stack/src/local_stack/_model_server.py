"""A scripted Claude model endpoint on 127.0.0.1 for tests, benchmarks and `agentbot dev`.

It speaks the two wire formats the bundled Claude Code CLI uses:

- the Anthropic Messages API (``POST /v1/messages``, Server-Sent Events when ``stream`` is
  true, also ``/v1/messages/count_tokens``), for ``ANTHROPIC_BASE_URL``;
- Bedrock's runtime API (``POST /model/<id>/invoke-with-response-stream`` answering
  ``application/vnd.amazon.eventstream`` frames whose ``chunk`` payloads carry the same
  events base64-encoded, and ``/model/<id>/invoke``), for ``ANTHROPIC_BEDROCK_BASE_URL``.

What the model says comes from a *responder*: a callable from the request JSON to a
reply (a string, or a sequence of strings and :class:`ToolCall`). Every request is
recorded, and faults (an HTTP error status, a stream cut part-way) can be injected for
the next N model calls. With ``accepted_key`` set, a Messages API call with any other
``x-api-key`` is refused with 401, as the API refuses a revoked key. With ``only_models``,
a call for any other model id is refused, as an account refuses a model it has not enabled.
With ``max_request_bytes``, a request whose body is larger is refused with the Messages API's
413 ``request_too_large``, as the API refuses every request over 32 MB (scaled down for tests).
Bedrock's control plane answers one call, ``GET /inference-profiles`` (ListInferenceProfiles,
for ``AWS_ENDPOINT_URL_BEDROCK``), with the ids ``inference_profiles`` names, or refuses it
(``refuse_inference_profiles``) as it refuses a caller without that permission.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from ._loopback import LoopbackServer

__all__ = [
    "DEMO_MODEL_LABEL",
    "FREE_USAGE",
    "CallUsage",
    "ModelFault",
    "ModelServer",
    "RecordedRequest",
    "ToolCall",
    "conversation_tool_results",
    "demo_responder",
    "echo_responder",
    "is_summary_request",
    "last_tool_call",
    "last_user_text",
    "tool_results",
    "user_turns",
]


@dataclass(frozen=True)
class ToolCall:
    """A ``tool_use`` block the scripted model emits."""

    name: str
    input: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class Streamed:
    """Text the scripted model writes slowly: ``pieces`` text deltas with ``pause_s`` between
    them on a streamed call, as a real model writes (the whole text at once otherwise)."""

    text: str
    pieces: int = 8
    pause_s: float = 0.5


Reply = str | Sequence[str | Streamed | ToolCall]
Responder = Callable[[dict[str, Any]], Reply]


@dataclass(frozen=True)
class ModelFault:
    """A failure for the next model call: an HTTP ``status`` (with an Anthropic-style error
    body), or, with ``cut_after_events``, a stream that stops after that many events, or, with
    ``silent_s``, a model that accepts the call and then sends nothing for that long: before
    its answer begins, or after ``silent_after_events`` events of its stream (the answer goes
    on after the silence if anyone still waits for it).

    ``error_type`` and ``message`` are the body's ``error`` as the API words it (say
    ``"invalid_request_error"``, ``"prompt is too long: 210000 tokens > 200000 maximum"``);
    ``retry_after_s`` adds the ``retry-after`` header a 429 or 529 carries. ``bedrock_error``
    names Bedrock's error instead of the status's usual one (``"UnrecognizedClientException"``,
    its 403 to credentials it does not know)."""

    status: int | None = None
    cut_after_events: int | None = None
    error_type: str | None = None
    message: str | None = None
    retry_after_s: int | None = None
    silent_s: float | None = None
    silent_after_events: int | None = None
    bedrock_error: str | None = None


# The Messages API's answer to a request over its size limit (its documented error shape).
_TOO_LARGE = ModelFault(
    status=413,
    error_type="request_too_large",
    message="Request exceeds the maximum allowed number of bytes.",
)

# The error Bedrock's runtime API names for each status (its InvokeModel errors).
_BEDROCK_ERRORS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    503: "ServiceUnavailableException",
}


@dataclass(frozen=True)
class CallUsage:
    """The token usage every model call reports, instead of an estimate from the request's
    size: the CLI prices each call from it, so tests know what one call costs."""

    input_tokens: int = 0
    output_tokens: int = 0


# The offline demo model bills nothing: the CLI prices zero tokens at $0.
FREE_USAGE = CallUsage()


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received (model calls and anything else)."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None

    @property
    def is_model_call(self) -> bool:
        """True for a request that asks the model for a message (streamed or not)."""
        return self.method == "POST" and (
            self.path.split("?")[0] == "/v1/messages" or self.path.startswith("/model/")
        )

    @property
    def model_id(self) -> str | None:
        """The model a model call asks for: Bedrock names it in the path, the Messages API in
        the body."""
        if self.path.startswith("/model/"):
            return unquote(self.path.split("?")[0].split("/")[2])
        model = (self.body or {}).get("model")
        return model if isinstance(model, str) else None


@dataclass
class _State:
    responder: Responder
    usage: CallUsage | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: list[ModelFault] = field(default_factory=list)
    accepted_key: str | None = None
    allowed_models: frozenset[str] | None = None
    model_refusal: ModelFault | None = None
    max_request_bytes: int | None = None
    inference_profiles: tuple[str, ...] = ()
    profiles_refusal: ModelFault | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    # Ids must be unique across runs, not only within one: a session restored from an earlier
    # run (`agentbot dev --state-dir`) already holds msg_/toolu_ ids, and the CLI takes a
    # repeated id for the same message (the next tool turn then shows "(no content)").
    run_id: str = field(default_factory=lambda: secrets.token_hex(6))


class ModelServer(LoopbackServer):
    """Context manager running the scripted model on a free port of 127.0.0.1.

    ``base_url`` is for ``ANTHROPIC_BASE_URL`` and ``ANTHROPIC_BEDROCK_BASE_URL`` alike.
    ``usage`` fixes the tokens every call reports (default: estimated from the request).
    ``max_request_bytes`` refuses any larger request body with 413 (the API's is 32 MB).
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        model: str = "claude-scripted",
        usage: CallUsage | None = None,
        max_request_bytes: int | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self._state = _State(
            responder=responder or echo_responder, usage=usage, max_request_bytes=max_request_bytes
        )

    # -- life cycle (start, stop, base_url: LoopbackServer) ---------------------------
    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return type("_BoundHandler", (_Handler,), {"state": self._state, "model": self.model})

    # -- scripting --------------------------------------------------------------------
    @property
    def responder(self) -> Responder:
        return self._state.responder

    @responder.setter
    def responder(self, responder: Responder) -> None:
        self._state.responder = responder

    @property
    def usage(self) -> CallUsage | None:
        return self._state.usage

    @usage.setter
    def usage(self, usage: CallUsage | None) -> None:
        """The tokens the next calls report (a responder may set it for the call it answers)."""
        self._state.usage = usage

    def inject(self, fault: ModelFault, *, times: int = 1) -> None:
        """Make the next ``times`` model calls fail with ``fault``."""
        with self._state.lock:
            self._state.faults.extend([fault] * times)

    @property
    def max_request_bytes(self) -> int | None:
        """The largest request body answered; a larger one is refused with 413 (None: any)."""
        return self._state.max_request_bytes

    @max_request_bytes.setter
    def max_request_bytes(self, limit: int | None) -> None:
        self._state.max_request_bytes = limit

    @property
    def accepted_key(self) -> str | None:
        """The only ``x-api-key`` a Messages API call is answered with (None: any key)."""
        return self._state.accepted_key

    @accepted_key.setter
    def accepted_key(self, key: str | None) -> None:
        self._state.accepted_key = key

    def only_models(self, model_ids: Iterable[str], *, refusal: ModelFault | None = None) -> None:
        """Answer calls for ``model_ids`` only; refuse any other model id with ``refusal``
        (default: Bedrock's 403 AccessDeniedException for a model the caller may not invoke)."""
        with self._state.lock:
            self._state.allowed_models = frozenset(model_ids)
            self._state.model_refusal = refusal or ModelFault(
                status=403, message="You don't have access to the model with the specified model ID."
            )

    def inference_profiles(self, profile_ids: Iterable[str]) -> None:
        """The inference-profile ids Bedrock's ListInferenceProfiles lists (the region's)."""
        with self._state.lock:
            self._state.inference_profiles = tuple(profile_ids)

    def refuse_inference_profiles(self, refusal: ModelFault | None = None) -> None:
        """Refuse ListInferenceProfiles with ``refusal`` (default: the 403 AccessDeniedException
        of credentials not allowed bedrock:ListInferenceProfiles)."""
        with self._state.lock:
            self._state.profiles_refusal = refusal or ModelFault(
                status=403,
                message="User is not authorized to perform: bedrock:ListInferenceProfiles",
            )

    @property
    def refused_calls(self) -> list[RecordedRequest]:
        """Model calls refused by ``only_models``, in arrival order."""
        allowed = self._state.allowed_models
        if allowed is None:
            return []
        return [call for call in self.model_calls if call.model_id not in allowed]

    def clear_faults(self) -> None:
        """Drop faults not yet used."""
        with self._state.lock:
            self._state.faults.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def model_calls(self) -> list[RecordedRequest]:
        """Requests that asked the model for a message, in arrival order."""
        return [r for r in self.requests if r.is_model_call]


# ---------------------------------------------------------------------------------------
# Reading a request
# ---------------------------------------------------------------------------------------
_REMINDER = re.compile(r"^\s*<(system-reminder|command-[a-z-]+|local-command-[a-z-]+)>", re.S)
# Words of the CLI's own prompt for a compaction's summary (no field marks that request).
_SUMMARY_INSTRUCTIONS = "Respond with TEXT ONLY"


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def _user_texts(message: dict[str, Any]) -> list[str]:
    return [
        b["text"]
        for b in _blocks(message)
        if b.get("type") == "text" and isinstance(b.get("text"), str) and not _REMINDER.match(b["text"])
    ]


def _is_user_turn(message: dict[str, Any]) -> bool:
    if message.get("role") != "user":
        return False
    blocks = _blocks(message)
    if any(b.get("type") == "tool_result" for b in blocks):
        return False
    return bool(_user_texts(message))


def user_turns(request: dict[str, Any]) -> int:
    """How many user prompts (not tool results, not system reminders) the request carries."""
    return sum(1 for m in request.get("messages", []) if _is_user_turn(m))


def last_user_text(request: dict[str, Any]) -> str:
    """Text of the latest user prompt in the request ('' when there is none)."""
    for message in reversed(request.get("messages", [])):
        if _is_user_turn(message):
            return "\n".join(_user_texts(message)).strip()
    return ""


def is_summary_request(request: dict[str, Any]) -> bool:
    """Whether the request is the CLI's ask for a compaction's summary (its own or for
    ``/compact``), not one of the conversation's turns: its last user message carries the CLI's
    summary instructions (the CLI may add a system notice after it, so not only the last block)."""
    users = [message for message in request.get("messages", []) if message.get("role") == "user"]
    return bool(users) and _SUMMARY_INSTRUCTIONS in json.dumps(users[-1])


def tool_results(request: dict[str, Any]) -> list[str]:
    """Texts of the tool results in the request's last message (empty unless it answers tools),
    past any system notice the CLI adds after it (MCP servers that failed, after a compaction)."""
    messages = request.get("messages", [])
    while messages and messages[-1].get("role") == "system":
        messages = messages[:-1]
    if not messages or messages[-1].get("role") != "user":
        return []
    return _result_texts(messages[-1:])


def conversation_tool_results(request: dict[str, Any]) -> list[str]:
    """Texts of every tool result in the request, the whole conversation's, in order."""
    return _result_texts(request.get("messages", []))


def _result_texts(messages: list[dict[str, Any]]) -> list[str]:
    out = []
    for message in messages:
        for block in _blocks(message):
            if block.get("type") != "tool_result":
                continue
            content = block.get("content")
            if isinstance(content, list):
                content = "\n".join(c.get("text", "") for c in content if isinstance(c, dict))
            out.append(str(content or ""))
    return out


def echo_responder(request: dict[str, Any]) -> Reply:
    """Answers ``echo: <last user text>``."""
    return f"echo: {last_user_text(request)}"


DEMO_MODEL_LABEL = "[offline demo model, costs $0]"


def demo_responder(request: dict[str, Any]) -> Reply:
    """The offline demo model of ``agentbot dev``.

    Every reply is labelled as the demo model and says how many earlier user turns the
    request carried (proof that the session was restored). Asking it to ``run <command>``
    (or to "use a tool") makes it call the Bash tool and then report what the tool printed.
    """
    results = tool_results(request)
    earlier = max(user_turns(request) - 1, 0)
    if results:
        shown = "\n".join(results).strip()[:1500]
        if "needs the user's approval" in shown:  # [I] held back until the user answers
            return f"{DEMO_MODEL_LABEL} I asked for your approval to run that command."
        if "tool_use_error" in shown:  # the CLI refused the call (a bare `sleep`, say)
            return f"{DEMO_MODEL_LABEL} The tool did not run. It said:\n{shown}"
        return f"{DEMO_MODEL_LABEL} The tool ran. Its output:\n{shown}"
    text = last_user_text(request)
    again = last_tool_call(request) if "Make exactly that call again" in text else None
    if again is not None:  # [I] the user allowed the call: make it again, as a model would
        return [f"{DEMO_MODEL_LABEL} Running it now that you allowed it.", again]
    command = None
    match = re.search(r"(?im)^\s*run[: ]\s*(.+)$", text)
    if match:
        command = match.group(1).strip().strip("`")
    elif re.search(r"\b(use|call) (a|the) tool\b", text, re.I):
        command = "echo hello from the Bash tool; uname -sm"
    if command:
        return [
            f"{DEMO_MODEL_LABEL} Running `{command}` with the Bash tool.",
            ToolCall(name="Bash", input={"command": command, "description": "demo command"}),
        ]
    return (
        f"{DEMO_MODEL_LABEL} I received: {text[:500]!r}. "
        f"I can see {earlier} earlier user turn{'s' if earlier != 1 else ''} in this conversation. "
        "Say `run <command>` to see a tool call."
    )


def last_tool_call(request: dict[str, Any]) -> ToolCall | None:
    """The last tool call the model made in the conversation the request carries."""
    for message in reversed(request.get("messages", [])):
        if message.get("role") != "assistant":
            continue
        for block in reversed(_blocks(message)):
            if block.get("type") == "tool_use" and isinstance(block.get("input"), dict):
                return ToolCall(name=str(block.get("name")), input=block["input"])
    return None


# ---------------------------------------------------------------------------------------
# Writing a reply
# ---------------------------------------------------------------------------------------
def _estimate_tokens(body: dict[str, Any]) -> int:
    return max(1, len(json.dumps(body.get("messages", []))) // 4)


def _normalize(reply: Reply) -> list[str | Streamed | ToolCall]:
    if isinstance(reply, str):
        return [reply]
    return list(reply)


def _message_events(
    reply: Reply, *, model: str, msg_id: str, input_tokens: int, fixed: CallUsage | None = None
) -> list[dict[str, Any]]:
    parts = _normalize(reply)
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": input_tokens if fixed is None else fixed.input_tokens,
                    "output_tokens": 1 if fixed is None else 0,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            },
        }
    ]
    output_tokens = 0
    for index, part in enumerate(parts):
        if isinstance(part, ToolCall):
            tool_id = part.id or f"toolu_{msg_id[4:]}_{index}"
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "tool_use", "id": tool_id, "name": part.name, "input": {}},
                }
            )
            payload = json.dumps(part.input)
            events.append(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": payload},
                }
            )
            output_tokens += len(payload) // 4 + 1
        else:
            text = part.text if isinstance(part, Streamed) else part
            events.append(
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            )
            for number, chunk in enumerate(_text_pieces(part)):
                if number and isinstance(part, Streamed):
                    events.append({"type": _PAUSE, "seconds": part.pause_s})
                events.append(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": chunk},
                    }
                )
            output_tokens += len(text) // 4 + 1
        events.append({"type": "content_block_stop", "index": index})
    stop = "tool_use" if any(isinstance(p, ToolCall) for p in parts) else "end_turn"
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens if fixed is None else fixed.output_tokens},
        }
    )
    events.append({"type": "message_stop"})
    return events


# Not an event of the API: the streaming writer waits this long before the next event.
_PAUSE = "pause"


def _text_pieces(part: str | Streamed) -> list[str]:
    """The text deltas of a text block: two for plain text (as a real stream sends many; the
    CLI must join them), ``pieces`` for Streamed text."""
    text, pieces = (part.text, max(part.pieces, 1)) if isinstance(part, Streamed) else (part, 2)
    size = -(-len(text) // pieces) or 1
    return [text[start : start + size] for start in range(0, len(text), size)]


def _whole_message(events: list[dict[str, Any]]) -> dict[str, Any]:
    message = dict(events[0]["message"])
    content: list[dict[str, Any]] = []
    for event in events[1:]:
        if event["type"] == "content_block_start":
            content.append(dict(event["content_block"]))
        elif event["type"] == "content_block_delta":
            delta = event["delta"]
            block = content[event["index"]]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                block["input"] = json.loads(delta["partial_json"])
        elif event["type"] == "message_delta":
            message["stop_reason"] = event["delta"]["stop_reason"]
            message["usage"] = {**message["usage"], **event["usage"]}
    message["content"] = content
    return message


def eventstream_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One ``application/vnd.amazon.eventstream`` message (string headers, CRC32 checksums)."""
    encoded = b"".join(
        struct.pack("!B", len(k)) + k.encode() + struct.pack("!BH", 7, len(v)) + v.encode()
        for k, v in headers.items()
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack("!I", zlib.crc32(message))


def _bedrock_chunk(event: dict[str, Any]) -> bytes:
    payload = json.dumps({"bytes": base64.b64encode(json.dumps(event).encode()).decode()}).encode()
    return eventstream_frame(
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}, payload
    )


def _profile(profile_id: str) -> dict[str, Any]:
    """A ListInferenceProfiles summary of a system-defined profile."""
    arn = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{profile_id}"
    return {
        "inferenceProfileId": profile_id,
        "inferenceProfileName": profile_id,
        "inferenceProfileArn": arn,
        "models": [],
        "status": "ACTIVE",
        "type": "SYSTEM_DEFINED",
    }


class _Handler(BaseHTTPRequestHandler):
    state: _State
    model: str
    protocol_version = "HTTP/1.1"
    body_bytes = 0

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _read_body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.body_bytes = len(raw)
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return {"_raw": raw.decode("utf-8", "replace")}

    def _record(self, body: dict[str, Any] | None) -> RecordedRequest:
        recorded = RecordedRequest(self.command, self.path, dict(self.headers.items()), body)
        with self.state.lock:
            self.state.requests.append(recorded)
        return recorded

    def _json(
        self,
        status: int,
        payload: dict[str, Any],
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, fault: ModelFault, *, bedrock: bool) -> None:
        assert fault.status is not None
        error_type = fault.error_type or ("api_error" if fault.status >= 500 else "invalid_request_error")
        headers: dict[str, str] = {}
        if bedrock:  # Bedrock names its error in this header (boto3 reads the error code from it)
            headers["x-amzn-ErrorType"] = fault.bedrock_error or _BEDROCK_ERRORS.get(
                fault.status, "InternalServerException"
            )
        if fault.retry_after_s is not None:
            headers["retry-after"] = str(fault.retry_after_s)
        message = fault.message or f"injected fault {fault.status}"
        self._json(
            fault.status,
            {"type": "error", "error": {"type": error_type, "message": message}},
            headers=headers,
        )

    def do_HEAD(self) -> None:
        self._record(None)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._record(None)
        if self.path.split("?")[0] == "/inference-profiles":
            if self.state.profiles_refusal is not None:
                self._error(self.state.profiles_refusal, bedrock=True)
                return
            profiles = [_profile(profile_id) for profile_id in self.state.inference_profiles]
            self._json(200, {"inferenceProfileSummaries": profiles})
            return
        self._json(200, {"data": [], "has_more": False})

    def do_POST(self) -> None:
        body = self._read_body() or {}
        recorded = self._record(body)
        path = self.path.split("?")[0]
        limit = self.state.max_request_bytes
        if limit is not None and self.body_bytes > limit:
            # Refused at the API's edge before the model sees it (count_tokens too: 32 MB).
            self._error(_TOO_LARGE, bedrock=path.startswith("/model/"))
            return
        if path.endswith("/count_tokens"):
            self._json(200, {"input_tokens": _estimate_tokens(body)})
            return
        if not recorded.is_model_call:
            self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})
            return
        bedrock = path.startswith("/model/")
        accepted = self.state.accepted_key
        if not bedrock and accepted is not None and self.headers.get("x-api-key") != accepted:
            self._error(
                ModelFault(status=401, error_type="authentication_error", message="invalid x-api-key"),
                bedrock=False,
            )
            return
        stream = path.endswith("/invoke-with-response-stream") if bedrock else bool(body.get("stream"))
        allowed, refusal = self.state.allowed_models, self.state.model_refusal
        if allowed is not None and refusal is not None and recorded.model_id not in allowed:
            self._error(refusal, bedrock=bedrock)
            return
        with self.state.lock:
            fault = self.state.faults.pop(0) if self.state.faults else None
            msg_id = f"msg_{self.state.run_id}{next(self.state.ids):012d}"
        if fault is not None and fault.status is not None:
            self._error(fault, bedrock=bedrock)
            return
        try:
            reply = self.state.responder(body)
        except Exception as exc:  # a broken responder is a test bug: make it loud, not a hang
            self._json(
                500, {"type": "error", "error": {"type": "api_error", "message": f"responder: {exc!r}"}}
            )
            return
        model = body.get("model") or self.model
        events = _message_events(
            reply, model=model, msg_id=msg_id, input_tokens=_estimate_tokens(body), fixed=self.state.usage
        )
        cut = fault.cut_after_events if fault is not None else None
        silent_s = fault.silent_s if fault is not None else None
        silent_after = fault.silent_after_events if fault is not None else None
        if silent_s is not None and (silent_after is None or not stream):
            time.sleep(silent_s)  # nothing at all, not even the headers
        if not stream:
            if cut is not None:  # a body that ends early
                data = json.dumps(_whole_message(events)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self._json(200, _whole_message(events))
            return
        self.send_response(200)
        self.send_header(
            "Content-Type", "application/vnd.amazon.eventstream" if bedrock else "text/event-stream"
        )
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", f"req_{msg_id[4:]}")
        self.end_headers()
        for number, event in enumerate(events):
            if event["type"] == _PAUSE:
                time.sleep(event["seconds"])
                continue
            if silent_s is not None and number == silent_after:
                time.sleep(silent_s)
            if cut is not None and number >= cut:
                # Drop the connection without the closing zero-length chunk: a broken stream.
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            data = (
                _bedrock_chunk(event)
                if bedrock
                else (f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
            )
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
