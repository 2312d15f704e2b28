"""A minimal MCP server over streamable HTTP on 127.0.0.1 that records every request's headers.

It answers ``initialize``, ``tools/list`` and ``tools/call`` for one tool, ``lookup``, with
JSON responses (no server-sent events; GET is refused with 405, which clients accept). Tests
use it to see which headers reach an HTTP MCP server; with ``required_headers`` set, it answers
401 to a request without those values, as a server does to a revoked credential; with
``rate_limited(retry_after_s)``, it answers its next POST 429 with that ``Retry-After``; while
``stalled``, it reads each POST and answers none (a server that hangs), until set False;
while ``broken``, it answers each POST whose headers it takes with a 500 (a server whose
handler crashes). With ``echoes_headers``, it says the credential it got back, as careless
servers do: a 401's reason phrase and body quote the request's ``Authorization`` (or its
``x-api-key``; decoded too when it is Basic), every answer carries it in an
``X-Echoed-Authorization`` header, and ``tools/call`` answers with every request's headers it
has seen (a debug tool), as JSON and as a query string. With ``streams``, POSTs are answered
as server-sent events, written a few bytes at a time (the proxy reads them in as many pieces
as arrive). With ``content_encoding`` set, JSON answers name it whatever the request asked
for: gzip-compressed for "gzip", left as they are for another (no client can read them then);
with ``padded_mib`` too, a gzipped ``tools/call`` answer's text goes on with that many MiB of
spaces, compressed as they are made: a small answer that stands for a great deal (a hostile
server's gzip bomb); with ``gzip_members`` above 1, a gzipped answer is that many gzip
members one after the other (RFC 1952 allows it: a server that gzips each piece it flushes);
with ``gzip_cut_short``, a gzipped answer lacks its last bytes (a server that broke writing it).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlencode

from local_stack import LoopbackServer

LOOKUP_ANSWER = "the vault is open"


class HttpMcpServer(LoopbackServer):
    """Serve at ``url`` (``/mcp``) until ``stop()``; ``requests`` lists (method, headers) seen;
    ``required_headers`` (name → value; may change while it serves): refuse others with 401.
    ``offers_oauth``: the 401 asks for a bearer token and ``/register`` registers OAuth clients,
    so a client may start a sign-in (which the runtime cannot finish)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.required_headers: dict[str, str] = {}
        self.retry_after_s: int | None = None  # the next POST is answered 429 with it
        self.stalled = False  # POSTs wait unanswered while it is True
        self.dies_on_call = False  # a tool call's connection is closed unanswered (a crash)
        self.broken = False  # POSTs it takes the headers of are answered 500
        self.offers_oauth = False
        self.echoes_headers = False  # every answer quotes the credential it got (above)
        self.streams = False  # POSTs are answered as server-sent events, a few bytes at a time
        self.content_encoding: str | None = None  # JSON answers are sent so encoded (above)
        self.padded_mib = 0  # a gzipped tool call's answer is padded so (above)
        self.gzip_members = 1  # a gzipped answer is cut into so many members (above)
        self.gzip_cut_short = False  # a gzipped answer lacks its end (above)
        self._lock = threading.Lock()
        super().__init__()
        self.bind()  # the url is known before it serves

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return type("_BoundMcpHandler", (_McpHandler,), {"server_state": self})

    @property
    def url(self) -> str:
        return f"{self.base_url}/mcp"

    def record(self, method: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append((method, headers))

    def rate_limited(self, retry_after_s: int) -> None:
        """Answer the next POST 429 Too Many Requests, asking to come back in ``retry_after_s``."""
        with self._lock:
            self.retry_after_s = retry_after_s

    def take_rate_limit(self) -> int | None:
        with self._lock:
            retry_after_s, self.retry_after_s = self.retry_after_s, None
            return retry_after_s

    def seen_headers(self) -> list[dict[str, str]]:
        """Every recorded request's headers, oldest first."""
        with self._lock:
            return [dict(headers) for _m, headers in self.requests]

    def header_values(self, name: str) -> list[str]:
        """The values ``name`` had on the requests that carried it."""
        with self._lock:
            return [h[name.lower()] for _m, h in self.requests if name.lower() in h]


class _McpHandler(BaseHTTPRequestHandler):
    server_state: HttpMcpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(
        self, status: int, payload: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        headers = dict(headers or {})
        reason = None
        if self.server_state.echoes_headers:
            credential = self._credential()
            headers["X-Echoed-Authorization"] = credential
            if status == 401:
                reason = f"Unauthorized ({credential})"
        if self.server_state.streams and payload is not None and self.command == "POST":
            self._stream(status, reason, headers, payload)
            return
        body = json.dumps(payload).encode() if payload is not None else b""
        encoding = self.server_state.content_encoding
        if encoding is not None and payload is not None:
            headers["Content-Encoding"] = encoding
            if encoding == "gzip" and self.server_state.gzip_members > 1:
                step = -(-len(body) // self.server_state.gzip_members)
                body = b"".join(gzip.compress(body[at : at + step]) for at in range(0, len(body), step))
            elif encoding == "gzip":
                body = _gzipped(body, self.server_state.padded_mib)
            if encoding == "gzip" and self.server_state.gzip_cut_short:
                body = body[: len(body) // 2]
        self.send_response(status, reason)
        for name, value in headers.items():
            self.send_header(name, value)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(
        self, status: int, reason: str | None, headers: dict[str, str], payload: dict[str, Any]
    ) -> None:
        event = b"event: message\ndata: " + json.dumps(payload).encode() + b"\n\n"
        self.send_response(status, reason)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(event), 5):
            piece = event[start : start + 5]
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def do_GET(self) -> None:
        self.server_state.record("GET", self._headers())
        self._reply(405, {"error": "no server-sent events"})

    def do_DELETE(self) -> None:
        self.server_state.record("DELETE", self._headers())
        self._reply(200, {})

    def _refused(self) -> bool:
        headers = self._headers()
        required = self.server_state.required_headers
        if not all(headers.get(name.lower()) == value for name, value in required.items()):
            challenge = {"WWW-Authenticate": 'Bearer realm="vault"'} if self.server_state.offers_oauth else {}
            self._reply(401, {"error": self._refusal()}, challenge)
            return True
        if self.server_state.broken:
            self._reply(500, {"error": "internal server error"})
            return True
        retry_after_s = self.server_state.take_rate_limit()
        if retry_after_s is not None:
            self._reply(429, {"error": "too many requests"}, {"Retry-After": str(retry_after_s)})
            return True
        return False

    def _credential(self) -> str:
        headers = self._headers()
        return headers.get("authorization") or headers.get("x-api-key", "")

    def _refusal(self) -> str:
        if not self.server_state.echoes_headers:
            return "invalid credentials"
        credential = self._credential()
        scheme, _, encoded = credential.partition(" ")
        if scheme.lower() == "basic":
            try:
                return f"invalid credentials {base64.b64decode(encoded, validate=True).decode()}"
            except (binascii.Error, UnicodeDecodeError):
                pass
        return f"invalid token {credential}"

    def do_POST(self) -> None:
        self.server_state.record("POST", self._headers())
        length = int(self.headers.get("Content-Length") or 0)
        message = json.loads(self.rfile.read(length) or b"{}")
        if self.server_state.offers_oauth and self.path == "/register":  # OAuth client registration
            self._reply(
                201, {"client_id": "agentbot-test", "redirect_uris": message.get("redirect_uris", [])}
            )
            return
        while self.server_state.stalled:
            time.sleep(0.05)
        if self._refused():
            return
        if "id" not in message:  # a notification
            self._reply(202)
            return
        method = message.get("method")
        if method == "initialize":
            version = (message.get("params") or {}).get("protocolVersion", "2025-06-18")
            result: dict[str, Any] = {
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "test-vault", "version": "1.0"},
            }
        elif method == "tools/list":
            result = {
                "tools": [
                    {
                        "name": "lookup",
                        "description": "Look something up in the vault.",
                        "inputSchema": {"type": "object", "properties": {}},
                    }
                ]
            }
        elif method == "tools/call" and self.server_state.dies_on_call:
            self.close_connection = True  # no answer: as a server that crashed mid-call
            return
        elif method == "tools/call" and self.server_state.echoes_headers:
            seen = self.server_state.seen_headers()
            text = json.dumps(seen) + "\n" + "\n".join(urlencode(headers) for headers in seen)
            result = {"content": [{"type": "text", "text": text}]}
        elif method == "tools/call":
            result = {"content": [{"type": "text", "text": LOOKUP_ANSWER}]}
        else:
            result = {}
        self._reply(200, {"jsonrpc": "2.0", "id": message["id"], "result": result})


def _gzipped(body: bytes, padded_mib: int) -> bytes:
    """``body`` gzipped, its lookup answer's text followed by ``padded_mib`` MiB of spaces
    (never all held: they compress a thousand times smaller)."""
    if not padded_mib or LOOKUP_ANSWER.encode() not in body:
        return gzip.compress(body)
    head, answer, tail = body.partition(LOOKUP_ANSWER.encode())
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip format
    out = [compressor.compress(head + answer)]
    mib = b" " * 2**20
    out += [compressor.compress(mib) for _ in range(padded_mib)]
    return b"".join([*out, compressor.compress(tail), compressor.flush()])
