"""A server that says back the secret header the proxy added (a 401 quoting the token, a debug
tool listing its requests' headers, a response header echoing it) never hands it to the CLI:
the proxy removes every value it added, in the forms a server writes it, from the status line,
the headers and the body (JSON or streamed in pieces), the value before a rotation too, and
logs which server and parameter, never the value. A recording MCP server on 127.0.0.1 is the
upstream; the Anthropic key's proxy does the same for a model API quoting its key."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_runtime._echo_scrub import REMOVED, EchoScrubber, SentSecret
from agent_runtime._mcp_secrets import McpSecretProxies
from agent_runtime._model_proxy import ModelProxy
from agentbot_testing import HttpMcpServer
from session_core import FixedSecret, configure_logging

PARAMETER = "/agentbot/mcp/vault-authorization"
# "/", "+", "=" and quotes: its URL-encoded and JSON-escaped forms differ from it; every form a
# server may write it in still contains "s3cr3t", the part a leak would show.
SECRET = 'Bearer vault/s3cr3t+for="tests"=='
MARK = REMOVED.decode()
CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "lookup", "arguments": {}}}


class RotatedSecret:
    """A header's source whose value the operator rotated: ``old`` until the server refuses it."""

    def __init__(self, old: str, new: str) -> None:
        self.name = PARAMETER
        self.unreadable = False
        self._value, self._next = old, new

    def current(self) -> str:
        return self._value

    def renew(self, refused: str) -> bool:
        if self._value == refused and self._next:
            self._value, self._next = self._next, ""
        return self._value != refused


@pytest.fixture
def vault() -> Iterator[HttpMcpServer]:
    with HttpMcpServer() as server:
        server.echoes_headers = True
        yield server


def through_proxy(vault: HttpMcpServer, source: Any) -> tuple[McpSecretProxies, str, dict[str, str]]:
    """(the proxies, the URL the CLI is given, this turn's key header)."""
    proxies = McpSecretProxies(
        {"vault": {"type": "http", "url": vault.url}}, {"vault": {"Authorization": source}}
    )
    given = proxies.cli_servers()["vault"]
    return proxies, given["url"], {"x-api-key": given["headers"]["x-api-key"]}


def everything_relayed(response: httpx.Response) -> str:
    """What the CLI reads of an answer: its status line, its headers and its body."""
    headers = "\n".join(f"{name}: {value}" for name, value in response.headers.multi_items())
    return f"{response.status_code} {response.reason_phrase}\n{headers}\n{response.text}"


@pytest.mark.parametrize("streams", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("answer", ["refusal", "tool_result"])
def test_a_server_echoing_its_secret_header_never_hands_it_to_the_cli(
    vault: HttpMcpServer, streams: bool, answer: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json_lines=True)
    vault.streams = streams
    if answer == "refusal":
        vault.required_headers = {"Authorization": "Bearer another-value"}
    proxies, url, key = through_proxy(vault, FixedSecret(SECRET, name=PARAMETER))
    try:
        response = httpx.post(url, headers=key, json=CALL)
    finally:
        proxies.end_turn()
        proxies.close()

    assert response.status_code == (401 if answer == "refusal" else 200)
    assert vault.header_values("Authorization") == [SECRET]  # the server got it, and echoed it
    relayed = everything_relayed(response)
    assert "s3cr3t" not in relayed, relayed
    assert response.headers["X-Echoed-Authorization"] == MARK
    assert MARK in response.text
    if answer == "refusal":
        assert MARK in response.reason_phrase
    else:  # the rest of the answer reaches the CLI as the server wrote it
        assert '"jsonrpc": "2.0"' in response.text and "accept-encoding" in response.text
    logged = capsys.readouterr().err
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    [line] = [line for line in lines if line["event"] == "model_proxy.echoed_secret_removed"]
    assert (line["server"], line["parameter"]) == ("vault", PARAMETER)
    assert "s3cr3t" not in logged


def test_a_basic_credential_the_server_decodes_in_its_refusal_is_removed(vault: HttpMcpServer) -> None:
    secret = "Basic " + base64.b64encode(b"alice:hunter2-s3cr3t").decode()
    vault.required_headers = {"Authorization": "Basic bm90OnRoaXM="}
    proxies, url, key = through_proxy(vault, FixedSecret(secret, name=PARAMETER))
    try:
        response = httpx.post(url, headers=key, json=CALL)
    finally:
        proxies.end_turn()
        proxies.close()
    assert response.status_code == 401
    relayed = everything_relayed(response)
    assert "s3cr3t" not in relayed and secret.split()[1] not in relayed, relayed


@pytest.mark.parametrize("streams", [False, True], ids=["json", "sse"])
def test_the_value_before_a_rotation_is_removed_for_the_rest_of_the_turn(
    vault: HttpMcpServer, streams: bool
) -> None:
    """The server refused the old value (a call the proxy sent again with the new one) and its
    debug tool lists every request it saw: the old value too, still worth something to an
    attacker where the operator has not revoked it yet."""
    old, new = SECRET.replace("s3cr3t", "old-s3cr3t"), SECRET.replace("s3cr3t", "new-s3cr3t")
    vault.streams = streams
    vault.required_headers = {"Authorization": new}
    proxies, url, key = through_proxy(vault, RotatedSecret(old, new))
    try:
        first = httpx.post(url, headers=key, json=CALL)
        second = httpx.post(url, headers=key, json=CALL)
    finally:
        proxies.end_turn()
        proxies.close()
    assert first.status_code == second.status_code == 200
    assert vault.header_values("Authorization") == [old, new, new]
    for response in (first, second):
        relayed = everything_relayed(response)
        assert "s3cr3t" not in relayed, relayed
        assert relayed.count(MARK) >= 3  # old, new (and new again) in the listed requests


def test_an_answer_compressed_against_the_proxys_asking_is_read_for_the_secret(vault: HttpMcpServer) -> None:
    """The proxy asks for identity; a server that gzips anyway had its echo pass unread (the
    proxy relays it undone), and one it cannot undo is refused rather than passed on unread."""
    vault.content_encoding = "gzip"
    proxies, url, key = through_proxy(vault, FixedSecret(SECRET, name=PARAMETER))
    try:
        gzipped = httpx.post(url, headers=key, json=CALL)
        vault.content_encoding = "br"
        unreadable = httpx.post(url, headers=key, json=CALL)
    finally:
        proxies.end_turn()
        proxies.close()
    assert gzipped.status_code == 200
    assert (
        "s3cr3t" not in everything_relayed(gzipped) and MARK in gzipped.json()["result"]["content"][0]["text"]
    )
    assert unreadable.status_code == 502
    assert "s3cr3t" not in everything_relayed(unreadable)
    assert "Content-Encoding" in unreadable.json()["error"]["message"]


def test_an_answer_gzipped_in_several_members_reaches_the_cli_whole(vault: HttpMcpServer) -> None:
    """RFC 1952 lets a gzip body be several members one after another (a server gzipping each
    piece it flushes); the CLI's own client reads them all, so the proxy undoing it does too:
    it relayed the first member as the whole answer."""
    vault.content_encoding = "gzip"
    vault.gzip_members = 3
    proxies, url, key = through_proxy(vault, FixedSecret(SECRET, name=PARAMETER))
    try:
        response = httpx.post(url, headers=key, json=CALL)
    finally:
        proxies.end_turn()
        proxies.close()
    assert response.status_code == 200
    assert "s3cr3t" not in everything_relayed(response)
    text = response.json()["result"]["content"][0]["text"]
    assert "accept-encoding" in text and MARK in text


def test_a_gzipped_answer_cut_short_reaches_the_cli_as_a_broken_stream(vault: HttpMcpServer) -> None:
    """The server's body ended inside its gzip stream: the CLI's own client would fail on it,
    so it must see the stream broken, not its first half as the whole answer."""
    vault.content_encoding = "gzip"
    vault.gzip_cut_short = True
    proxies, url, key = through_proxy(vault, FixedSecret(SECRET, name=PARAMETER))
    try:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(url, headers=key, json=CALL)
    finally:
        proxies.end_turn()
        proxies.close()


def _resident_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:", 1)[1].split()[0])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's peak-memory reset")
def test_a_gzip_bomb_from_a_server_is_relayed_without_the_runtime_holding_it_whole(
    vault: HttpMcpServer,
) -> None:
    """A hostile server's 150 KiB gzipped answer that stands for 128 MiB: the proxy undoes it
    a piece at a time (before, each 64 KiB read became some 64 MiB at once, copied several
    times over while scrubbed: a few such calls at once and the runtime ran out of memory)."""
    vault.content_encoding = "gzip"
    vault.padded_mib = 128
    vault.echoes_headers = False  # the tool's answer is the padded lookup
    proxies, url, key = through_proxy(vault, FixedSecret(SECRET, name=PARAMETER))
    try:
        httpx.post(url, headers=key, json=CALL)  # the proxy started; its first call made
        Path("/proc/self/clear_refs").write_text("5")  # the peak is counted from here
        resident_before = _resident_kib("VmRSS")
        with httpx.stream("POST", url, headers=key, json=CALL, timeout=120) as response:
            relayed = sum(len(piece) for piece in response.iter_raw())
        peak_growth_mib = (_resident_kib("VmHWM") - resident_before) / 1024
    finally:
        proxies.end_turn()
        proxies.close()
    assert response.status_code == 200
    assert relayed > 128 * 2**20
    assert peak_growth_mib < 48, peak_growth_mib


def test_a_value_split_across_the_pieces_of_a_stream_is_removed_wherever_it_is_cut() -> None:
    scrubbed = EchoScrubber([SentSecret("vault", PARAMETER, SECRET)])
    stream = b'data: {"error": "invalid token ' + json.dumps(SECRET).encode()[1:-1] + b'"}\n\n'
    for cut in range(1, len(stream)):
        for second_cut in (cut, min(cut + 7, len(stream))):
            scrubber = EchoScrubber([SentSecret("vault", PARAMETER, SECRET)])
            pieces = [stream[:cut], stream[cut:second_cut], stream[second_cut:]]
            out = b"".join(scrubber.feed(piece) for piece in pieces) + scrubber.finish()
            assert out == b'data: {"error": "invalid token ' + REMOVED + b'"}\n\n', cut
    # an event that ends a piece is sent on at once, not held for the next piece
    assert scrubbed.feed(b"data: {}\n\n") == b"data: {}\n\n"


@pytest.mark.parametrize(
    "echoed",
    [
        SECRET,
        'vault/s3cr3t+for="tests"==',
        json.dumps(SECRET)[1:-1],
        json.dumps(json.dumps(SECRET)[1:-1])[1:-1],
        json.dumps(SECRET)[1:-1].replace("/", "\\/"),
        "Bearer%20vault%2Fs3cr3t%2Bfor%3D%22tests%22%3D%3D",
        "Bearer+vault%2Fs3cr3t%2Bfor%3D%22tests%22%3D%3D",
        "Bearer%20vault%2fs3cr3t%2bfor%3d%22tests%22%3d%3d",  # .NET's HttpUtility.UrlEncode
        "vault/s3cr3t+for=&quot;tests&quot;==",  # an HTML error page (Python, Django, PHP)
        "vault/s3cr3t+for=&#34;tests&#34;==",  # an HTML error page (Flask/Jinja, Go)
    ],
    ids=[
        "as-is",
        "credential",
        "json",
        "json-in-json",
        "json-slashes",
        "url",
        "form",
        "url-lower",
        "html",
        "html-numeric",
    ],
)
def test_each_common_form_of_the_value_is_removed(echoed: str) -> None:
    scrubber = EchoScrubber([SentSecret("vault", PARAMETER, SECRET)])
    assert scrubber.scrub(f"got <{echoed}>".encode()) == b"got <" + REMOVED + b">"


@pytest.mark.parametrize(
    "echoed",
    [
        '{"header": "p\\u003cs3cr3t\\u0026\\u003e\'\\"word"}',  # Go's encoding/json
        "<td>p&lt;s3cr3t&amp;&gt;&#x27;&quot;word</td>",  # Python's html.escape, Django
        "<td>p&lt;s3cr3t&amp;&gt;&#39;&#34;word</td>",  # MarkupSafe (Flask), Go's html
        "<td>p&lt;s3cr3t&amp;&gt;&#039;&quot;word</td>",  # PHP's htmlspecialchars
    ],
    ids=["go-json", "html-python", "html-markupsafe", "html-php"],
)
def test_a_password_of_html_characters_is_removed_as_json_and_html_pages_escape_it(echoed: str) -> None:
    basic = "Basic " + base64.b64encode(b"alice:p<s3cr3t&>'\"word").decode()
    scrubber = EchoScrubber([SentSecret("vault", PARAMETER, basic)])
    assert b"s3cr3t" not in scrubber.scrub(echoed.encode())
    assert REMOVED in scrubber.scrub(echoed.encode())


def test_the_model_proxy_removes_its_key_from_an_error_quoting_it(vault: HttpMcpServer) -> None:
    """An API gateway's refusal quoting the x-api-key it got: the operator's key, to the CLI."""
    api_key = "sk-ant-api03-s3cr3t-operator-key"
    vault.required_headers = {"x-api-key": "another"}
    proxy = ModelProxy(upstream=vault.base_url, api_key=api_key).start()
    try:
        turn_key = proxy.open_turn()
        response = httpx.post(f"{proxy.base_url}/v1/messages", headers={"x-api-key": turn_key}, json=CALL)
        proxy.close_turn()
    finally:
        proxy.stop()
    assert response.status_code == 401
    assert vault.header_values("x-api-key") == [api_key]
    relayed = everything_relayed(response)
    assert "s3cr3t" not in relayed and MARK in relayed, relayed
