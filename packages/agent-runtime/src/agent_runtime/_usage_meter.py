"""Token usage of every model call of a turn, read by the model proxy from the responses as
they stream through, so a run killed before its ResultMessage still knows what it spent.

Three response shapes carry the usage: a Messages API JSON body (``usage``), a server-sent
event stream (``message_start`` has the input side, each ``message_delta`` the output so far)
and Bedrock's ``application/vnd.amazon.eventstream`` (the same events, base64 JSON in binary
frames). A call cut off mid-stream (a stop, a timeout) counts what its events had reported by
then, its output estimated from the text it had streamed (~4 characters a token). Metering
never touches the bytes forwarded to the CLI, and a response it cannot read counts nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from session_core import Usage, get_logger

from ._cost import call_cost_usd

log = get_logger(__name__)

# A JSON answer is parsed whole; one larger than this is no model answer worth metering.
_MAX_JSON_BYTES = 16 * 1024 * 1024
# An event-stream frame is at least its 12-byte prelude and 4-byte CRC; Bedrock's are far
# below 16 MiB, so a longer one is garbage, not a frame to buffer for.
_MIN_FRAME_BYTES = 16
_MAX_FRAME_BYTES = 16 * 1024 * 1024
# A call cut off before its end is billed its output so far, estimated at ~4 characters a token.
_CHARS_PER_TOKEN = 4
_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


@dataclass(frozen=True)
class MeteredSpend:
    """What the model calls of one turn reported: ``calls`` made, tokens, and their price;
    and how the model failed them, as the proxy saw it: ``silent_calls`` it gave up on because
    the model sent nothing for MODEL_SILENCE_S (a whole answer: MODEL_TIMEOUT_MS; the last
    one's bound is ``silence_s`` and ``silence_setting``), ``unreachable_calls`` whose endpoint
    could not be connected to, the longest ``retry_after_s`` a refusal (429, 529) asked for,
    and the size in bytes of the last request refused as too large (413: ``too_large_bytes``)."""

    calls: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    unread: int = 0  # answers whose usage could not be read (encoded, or a broken frame)
    silent_calls: int = 0
    silence_s: float = 0.0
    silence_setting: str = ""
    unreachable_calls: int = 0
    retry_after_s: float | None = None
    too_large_bytes: int | None = None

    def after(self, earlier: MeteredSpend) -> MeteredSpend:
        """This run's spend with what an ``earlier`` run of the same turn paid (a compaction
        ahead of it, see ``_compact_ahead``) added; how the model failed is this run's own."""
        return replace(
            self,
            calls=earlier.calls + self.calls,
            usage=Usage(**{n: getattr(earlier.usage, n) + getattr(self.usage, n) for n in _TOKEN_FIELDS}),
            cost_usd=earlier.cost_usd + self.cost_usd,
            unread=earlier.unread + self.unread,
        )


@dataclass
class _Call:
    model: str
    usage: dict[str, Any] = field(default_factory=dict)


class TurnMeter:
    """Collects the calls of one turn; the proxy's handler threads add to it concurrently."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[_Call] = []
        self._unread = 0

    def mark_unread(self) -> None:
        """One more answer whose usage this meter could not read."""
        with self._lock:
            self._unread += 1

    def start_call(self, model: str) -> _Call:
        call = _Call(model=model)
        with self._lock:
            self._calls.append(call)
        return call

    def update(self, call: _Call, model: str | None, usage: dict[str, Any] | None) -> None:
        with self._lock:
            if model:
                call.model = model
            if usage:
                # message_delta's counts are cumulative: the latest value of a field wins.
                call.usage.update({k: v for k, v in usage.items() if v is not None})

    def at_least_output(self, call: _Call, tokens: int) -> None:
        """Raise the call's output count to ``tokens`` (an estimate while it streams: the real
        count arrives only at its end, which a killed or stopped call never reaches)."""
        with self._lock:
            current = call.usage.get("output_tokens")
            if not isinstance(current, int | float) or current < tokens:
                call.usage["output_tokens"] = tokens

    def spend(self) -> MeteredSpend:
        """The turn's calls so far, priced (see ``_cost.call_cost_usd``)."""
        with self._lock:
            calls = [(c.model, dict(c.usage)) for c in self._calls if c.usage]
            unread = self._unread
        totals = dict.fromkeys(_TOKEN_FIELDS, 0)
        cost = 0.0
        for model, usage in calls:
            for name in _TOKEN_FIELDS:
                value = usage.get(name)
                totals[name] += int(value) if isinstance(value, int | float) else 0
            cost += call_cost_usd(model, usage)
        return MeteredSpend(calls=len(calls), usage=Usage(**totals), cost_usd=cost, unread=unread)


class ResponseReader:
    """Reads the usage out of one model response, chunk by chunk (``feed``), into ``meter``."""

    def __init__(self, meter: TurnMeter, *, content_type: str, request_model: str) -> None:
        kind = content_type.split(";", 1)[0].strip().lower()
        self._kind = (
            "sse"
            if kind == "text/event-stream"
            else "eventstream"
            if kind == "application/vnd.amazon.eventstream"
            else "json"
        )
        self._meter = meter
        self._call = meter.start_call(request_model)
        self._buffer = bytearray()
        self._broken = False
        self._streamed_chars = 0  # what the call has written so far, for the estimate
        self._final_output = False  # message_delta reported the real output count

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the response body."""
        if self._broken:
            return
        try:
            # SSE lines may end in CRLF: drop every CR so an event always ends in a blank line.
            self._buffer += chunk.replace(b"\r", b"") if self._kind == "sse" else chunk
            if self._kind == "sse":
                self._read_sse()
            elif self._kind == "eventstream":
                self._read_frames()
            elif len(self._buffer) > _MAX_JSON_BYTES:
                self._break()
        except (ValueError, KeyError, TypeError, struct.error, binascii.Error) as exc:
            self._break()  # the CLI still gets every byte; only the count is lost
            log.warning("model_proxy.usage_unreadable", error=type(exc).__name__)

    def _break(self) -> None:
        """Stop reading this response: it counts what it reported so far, and holds no bytes."""
        if not self._broken:
            self._meter.mark_unread()
        self._broken = True
        self._buffer.clear()

    def finish(self) -> None:
        """The body ended (a JSON answer is read now)."""
        if self._kind != "json" or self._broken or not self._buffer:
            return
        try:
            message = json.loads(bytes(self._buffer))
        except ValueError:
            return  # cut short: no usage to read
        if isinstance(message, dict):
            self._meter.update(self._call, _text(message.get("model")), _dict(message.get("usage")))

    def _event(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        if event.get("type") == "message_start":
            message = _dict(event.get("message")) or {}
            self._meter.update(self._call, _text(message.get("model")), _dict(message.get("usage")))
        elif event.get("type") == "content_block_delta" and not self._final_output:
            delta = _dict(event.get("delta")) or {}
            piece = delta.get("text") or delta.get("partial_json") or delta.get("thinking") or ""
            if isinstance(piece, str) and piece:
                self._streamed_chars += len(piece)
                self._meter.at_least_output(self._call, self._streamed_chars // _CHARS_PER_TOKEN + 1)
        elif event.get("type") == "message_delta":
            self._final_output = True
            self._meter.update(self._call, None, _dict(event.get("usage")))

    def _read_sse(self) -> None:
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                return
            block = bytes(self._buffer[:end])
            del self._buffer[: end + 2]
            data = b"\n".join(line[5:].lstrip() for line in block.split(b"\n") if line.startswith(b"data:"))
            if data:
                self._event(json.loads(data))

    def _read_frames(self) -> None:
        # Prelude: total length, headers length, CRC; then headers, payload, CRC.
        while len(self._buffer) >= 12:
            total, headers_length = struct.unpack("!II", self._buffer[:8])
            if not _MIN_FRAME_BYTES <= total <= _MAX_FRAME_BYTES or headers_length > total - _MIN_FRAME_BYTES:
                # A frame that cannot hold its own prelude would never be consumed (an endless loop).
                self._break()
                log.warning("model_proxy.usage_unreadable", error="malformed event-stream frame")
                return
            if len(self._buffer) < total:
                return
            payload = bytes(self._buffer[12 + headers_length : total - 4])
            del self._buffer[:total]
            chunk = json.loads(payload) if payload else None
            if isinstance(chunk, dict) and isinstance(chunk.get("bytes"), str):
                self._event(json.loads(base64.b64decode(chunk["bytes"])))


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
