"""The proxy that adds an MCP server's secret header sends it to the configured endpoint only:
not to another virtual host named by an absolute-form request target, not to another path
or method on the same origin. A recording MCP server on 127.0.0.1 is the upstream."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import httpx
import pytest
from agent_runtime._mcp_secrets import McpSecretHeaders, McpSecretProxies, _proxy_starter
from agent_runtime._model_proxy import ModelProxy
from agentbot_testing import HttpMcpServer
from local_stack import ModelServer
from session_core import FixedSecret

SECRET = "Bearer vault-secret-for-tests"
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}


def raw_request(base_url: str, request_line: str, headers: dict[str, str]) -> int:
    """Send ``request_line`` verbatim (httpx never sends an absolute-form target); the status."""
    parts = urlsplit(base_url)
    lines = [request_line, f"Host: {parts.netloc}", "Content-Length: 0", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n" not in answer:
            piece = conn.recv(4096)
            if not piece:
                break
            answer += piece
    return int(answer.split(b" ", 2)[1])


@pytest.fixture
def vault_through_proxy():
    """(the recording vault, the URL the CLI is given, this turn's key header)."""
    with HttpMcpServer() as vault:
        proxies = McpSecretProxies(
            {"vault": {"type": "http", "url": vault.url}}, {"vault": {"Authorization": FixedSecret(SECRET)}}
        )
        try:
            given = proxies.cli_servers()["vault"]
            yield vault, given["url"], {"x-api-key": given["headers"]["x-api-key"]}
        finally:
            proxies.end_turn()
            proxies.close()


@pytest.mark.parametrize(
    "target",
    ["http://other-vhost.example/mcp", "http://127.0.0.1/mcp", "other-vhost.example:80"],
)
def test_an_absolute_form_target_is_refused_before_the_upstream(vault_through_proxy, target: str) -> None:
    vault, url, key = vault_through_proxy
    status = raw_request(url, f"POST {target} HTTP/1.1", key)
    assert status == 400
    assert vault.requests == []  # nothing, so no secret, left the container


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/admin"),
        ("GET", "/"),
        ("POST", "/mcp/"),
        ("POST", "/mcpx"),
        ("PUT", "/mcp"),
        ("PATCH", "/mcp"),
    ],
)
def test_another_path_or_method_of_the_origin_gets_no_secret(
    vault_through_proxy, method: str, path: str
) -> None:
    vault, url, key = vault_through_proxy
    origin = url.removesuffix(urlsplit(url).path)
    response = httpx.request(method, origin + path, headers=key, json=INITIALIZE)
    assert response.status_code == 403
    assert vault.requests == []


@pytest.mark.parametrize(
    ("query", "headers", "form"),
    [
        ("", {"X-HTTP-Method-Override": "PUT"}, None),
        ("", {"X-HTTP-Method": "DELETE"}, None),
        ("", {"X-Method-Override": "PATCH"}, None),
        ("?_method=PUT", {}, None),
        ("?session=1&_METHOD=patch", {}, None),
        ("?session=1;%5Fmethod=DELETE", {}, None),
        ("", {}, {"_method": "PUT", "name": "x"}),
    ],
)
def test_a_post_that_asks_the_server_for_another_method_gets_no_secret(
    vault_through_proxy, query: str, headers: dict[str, str], form: dict[str, str] | None
) -> None:
    """Web frameworks read a method from these (Rails, Symfony, Laravel, Express's
    method-override): the endpoint's POST would reach its PUT or PATCH with the secret."""
    vault, url, key = vault_through_proxy
    if form is None:
        response = httpx.post(url + query, headers={**key, **headers}, json=INITIALIZE)
    else:
        response = httpx.post(url + query, headers={**key, **headers}, data=form)
    assert response.status_code == 403
    assert vault.requests == []


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        # Laravel reads _method from a JSON body too
        ([("Content-Type", "application/json")], b'{"jsonrpc": "2.0", "id": 1, "_method": "DELETE"}'),
        ([("Content-Type", "application/json")], b'[{"jsonrpc": "2.0", "id": 1, "_METHOD": "PUT"}]'),
        # two Content-Type fields: the check would read one, the server may take the other
        (
            [("Content-Type", "application/json"), ("Content-Type", "application/x-www-form-urlencoded")],
            b"_method=DELETE",
        ),
    ],
)
def test_an_mcp_post_whose_body_asks_for_another_method_gets_no_secret(
    vault_through_proxy, headers: list[tuple[str, str]], body: bytes
) -> None:
    vault, url, key = vault_through_proxy
    response = httpx.post(url, headers=[*key.items(), *headers], content=body)
    assert response.status_code == 403
    assert vault.requests == []


def test_the_model_proxy_refuses_a_method_override_too() -> None:
    with ModelServer(lambda request: "never asked") as upstream:
        proxy = ModelProxy(upstream=upstream.base_url, api_key="sk-real").start()
        try:
            key = {"x-api-key": proxy.open_turn(), "X-HTTP-Method-Override": "DELETE"}
            response = httpx.post(proxy.base_url + "/v1/messages", headers=key, json={"model": "m"})
        finally:
            proxy.stop()
        assert response.status_code == 403
        assert upstream.requests == []


def test_the_configured_endpoint_gets_the_secret_header(vault_through_proxy) -> None:
    vault, url, key = vault_through_proxy
    posted = httpx.post(url, headers=key, json=INITIALIZE)
    with_query = httpx.post(url + "?session=1", headers=key, json=INITIALIZE)
    ended = httpx.delete(url, headers=key)
    assert posted.status_code == with_query.status_code == ended.status_code == 200
    assert posted.json()["result"]["serverInfo"]["name"] == "test-vault"
    assert [method for method, _headers in vault.requests] == ["POST", "POST", "DELETE"]
    assert vault.header_values("Authorization") == [SECRET] * 3
    assert key["x-api-key"] not in vault.header_values("x-api-key")


def test_the_model_proxy_refuses_an_absolute_form_target_too() -> None:
    with ModelServer(lambda request: "never asked") as upstream:
        proxy = ModelProxy(upstream=upstream.base_url, api_key="sk-real").start()
        try:
            key = {"x-api-key": proxy.open_turn()}
            status = raw_request(proxy.base_url, "POST http://other-vhost.example/v1/messages HTTP/1.1", key)
        finally:
            proxy.stop()
        assert status == 400  # a bad request, told apart from a refused endpoint (403)
        assert upstream.requests == []


def test_a_rate_limited_mcp_call_keeps_its_retry_after_and_the_next_call_reaches_the_server(
    vault_through_proxy,
) -> None:
    """The model proxy's handling of a model that asks to wait (drop a long retry-after, refuse
    the turn's further calls) is the model's: an MCP server's 429 left the agent's client no
    Retry-After to honour, and its every later call refused by the proxy for the turn."""
    vault, url, key = vault_through_proxy
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "lookup", "arguments": {}}}
    vault.rate_limited(60)

    limited = httpx.post(url, headers=key, json=call)
    assert limited.status_code == 429
    assert limited.headers.get("retry-after") == "60"

    posts_before = len(vault.requests)
    answered = httpx.post(url, headers=key, json=call)
    assert answered.status_code == 200, answered.text
    assert len(vault.requests) == posts_before + 1  # it reached the server


def test_a_tool_call_through_the_proxy_may_wait_as_long_as_mcp_json_lets_it() -> None:
    """A server's own "timeout" (or MCP_TOOL_TIMEOUT_MS) may give its call up to 15 minutes:
    the proxy that adds its secret header never gives up on it first. It cut such a call after
    10 minutes (its default for a model), and the agent and the operator read the server as
    unreachable. Read from the proxy's bound: a real wait of 10 minutes is no test."""
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "lookup", "arguments": {}}}
    with HttpMcpServer() as vault:
        parts = urlsplit(vault.url)
        auth = McpSecretHeaders({"Authorization": FixedSecret(SECRET)}, parts.path, server="vault")
        start = _proxy_starter(f"{parts.scheme}://{parts.netloc}", auth)
        proxy = start()
        try:
            bound_s, _setting = proxy.answer_bound_s(parts.path, json.dumps(call).encode())
        finally:
            proxy.stop()
    assert bound_s * 1000 >= 900_000  # the longest "timeout" mcp.json takes (test_claude_config)
