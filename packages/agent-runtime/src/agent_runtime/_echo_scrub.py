"""Secrets the proxy added to a call, removed from what the upstream answers.

A server may say back the credential it got: a 401 quoting the token, an error page listing
the request's headers, a debug tool returning them, a response header echoing one. The proxy
relays the answer to the CLI, so the agent (and any tool it runs) would read the very value the
proxy exists to keep from it. Every occurrence of a value the proxy added during the turn (the
value read before a rotation too) is replaced with ``REMOVED``, in the forms a server may
write it: as sent, its credential without the scheme (``Bearer``), a Basic credential decoded
(``user:password``, and the password), each of those JSON string-escaped (once and twice:
a tool's JSON text inside a JSON-RPC answer), URL-encoded (upper- or lowercase hex) and
HTML-escaped (an error page), as common libraries write them. A streamed answer is never held
whole: only a tail that may be the start of a value waits for the next piece.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

REMOVED = b"[secret removed]"
# A shorter form (the password of "user:abc") would be replaced wherever those letters occur,
# mangling the answer, and shields next to nothing: a value so short is guessed anyway.
SHORTEST_REMOVED = 6
# How HTML error pages escape a value, library by library: each writes the quotes its own way.
_HTML_ESCAPES: tuple[Mapping[str, str], ...] = tuple(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", **quotes}
    for quotes in (
        {'"': "&quot;", "'": "&#x27;"},  # Python's html.escape, Django
        {'"': "&#34;", "'": "&#39;"},  # MarkupSafe (Flask, Jinja), Go's html
        {'"': "&quot;", "'": "&#039;"},  # PHP's htmlspecialchars
        {'"': "&quot;", "'": "&#39;"},  # Ruby's CGI.escapeHTML, Rails
        {'"': "&quot;"},  # Java's escapeHtml4
        {},  # text only (html.escape(quote=False))
    )
)
_PERCENT_ESCAPE = re.compile("%[0-9A-F]{2}")
# What Go's encoding/json (many MCP servers) writes as \u escapes for HTML's sake.
_GO_JSON_ESCAPE = re.compile("[<>&]")


@dataclass(frozen=True)
class SentSecret:
    """A secret value the proxy added to a call: the upstream it went to and the setting that
    holds it (an SSM parameter's name, never a value), for the operator's log line."""

    server: str
    parameter: str
    value: str


def echoed_forms(value: str) -> set[bytes]:
    """The byte strings a server echoing ``value`` may write it as (see the module's docstring)."""
    plain = {value}
    scheme, _, credential = value.strip().partition(" ")
    if credential.strip():
        plain.add(credential.strip())
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credential.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            if decoded:
                plain.add(decoded)
                plain.add(decoded.partition(":")[2])
    forms: set[str] = set()
    for text in plain:
        escaped = {json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}
        escaped |= {form.replace("/", "\\/") for form in escaped}  # PHP's and others' JSON
        escaped |= {_GO_JSON_ESCAPE.sub(lambda char: f"\\u{ord(char.group()):04x}", form) for form in escaped}
        escaped |= {json.dumps(form)[1:-1] for form in escaped}  # JSON text inside JSON
        url_encoded = {quote(text, safe=""), quote(text), quote_plus(text)}
        # .NET's HttpUtility.UrlEncode writes the hex in lowercase
        url_encoded |= {_PERCENT_ESCAPE.sub(lambda hex_: hex_.group().lower(), form) for form in url_encoded}
        html_escaped = {"".join(escapes.get(char, char) for char in text) for escapes in _HTML_ESCAPES}
        forms |= {text} | url_encoded | escaped | html_escaped
    return {form.encode() for form in forms if len(form.encode()) >= SHORTEST_REMOVED}


class EchoScrubber:
    """Replaces the ``secrets``' echoed forms in one answer: whole strings (``scrub``: the
    status line's reason, a header's value) and a stream (``feed`` each piece, then ``finish``).
    ``removed``: the secrets it replaced, for the log line."""

    def __init__(self, secrets: Iterable[SentSecret]) -> None:
        self._owner: dict[bytes, SentSecret] = {}
        for secret in secrets:
            for form in echoed_forms(secret.value):
                self._owner.setdefault(form, secret)
        longest_first = sorted(self._owner, key=len, reverse=True)  # the longest match wins
        self._pattern = re.compile(b"|".join(map(re.escape, longest_first))) if longest_first else None
        self._longest = len(longest_first[0]) if longest_first else 0
        self._first_bytes = frozenset(form[0] for form in longest_first)
        self._held = b""
        self.removed: set[SentSecret] = set()

    def scrub(self, data: bytes) -> bytes:
        """``data`` with every form replaced."""
        out, _held = self._replace(data, final=True)
        return out

    def scrub_text(self, text: str) -> str:
        """A header's value or a reason phrase (latin-1, as http.client reads them)."""
        return self.scrub(text.encode("latin-1")).decode("latin-1")

    def feed(self, piece: bytes) -> bytes:
        """What of the stream so far can be sent on: all but a tail that may begin a form."""
        out, self._held = self._replace(self._held + piece, final=False)
        return out

    def finish(self) -> bytes:
        """The rest of the stream, once it ended."""
        out, self._held = self._replace(self._held, final=True)
        return out

    def _replace(self, data: bytes, *, final: bool) -> tuple[bytes, bytes]:
        """(``data`` replaced up to the first place a form may start but not end yet, the rest)."""
        if self._pattern is None:
            return data, b""
        out = bytearray()
        position = 0
        while True:
            hold = len(data) if final else self._undecided_from(data, position)
            match = self._pattern.search(data, position)
            if match is None or match.start() >= hold:
                out += data[position:hold]
                return bytes(out), data[hold:]
            out += data[position : match.start()] + REMOVED
            self.removed.add(self._owner[match.group()])
            position = match.end()

    def _undecided_from(self, data: bytes, start: int) -> int:
        """The first position from ``start`` where a form may begin that the data ends inside
        (the next piece decides), or the end of ``data``."""
        end = len(data)
        for position in range(max(start, end - self._longest + 1), end):
            if data[position] not in self._first_bytes:  # most bytes of a stream: no form begins
                continue
            rest = data[position:]
            if any(len(form) > len(rest) and form.startswith(rest) for form in self._owner):
                return position
        return end
