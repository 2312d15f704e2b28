"""Secret headers for HTTP MCP servers, kept out of the CLI and the agent's tools.

``mcp.json`` names an SSM parameter per header (``headers_from_ssm``). The runtime reads the
values once per container, and a value again when the server refuses a call with it (401/403;
at most every 30 s, ``session_core.RotatingSecret``: the operator rotated it; the refused call
goes once more with the new value). It gives the CLI, instead of the server's URL, a proxy on
127.0.0.1 (the model proxy's code: :class:`ModelProxy` with another upstream authentication)
that adds the headers on the way out. The CLI authenticates to the proxy with a key made for
the turn, dead when it ends, exactly as for the model. So the secret is never in the CLI's
command line, environment or memory, nor in any tool's; a tool can at most call the server
through the proxy during its own turn, as it can call the model, and only at the configured
URL's path with the methods of MCP's streamable HTTP: the secret reaches no other endpoint of
that origin. A server that echoes the headers' values (a 401 quoting the token, a debug tool
listing its request's headers) has them removed from its answers before the CLI reads them
(``_echo_scrub``), the value before a rotation too. The proxy reads no model usage from these
answers, and takes none of their silences or 429s for a model's (those are the CLI's MCP
client's to handle).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from session_core import (
    KEY_REFUSED,
    KEY_UNUSABLE,
    ConfigError,
    RotatingSecret,
    SecretAccessDeniedError,
    SecretSource,
    read_secret,
    report_config_problem,
)

from ._claude_config import ClaudeConfig
from ._config_problems import ConfigProblems
from ._echo_scrub import SentSecret
from ._environment import _TurnProxy
from ._errors import McpSecretMissingError
from ._model_proxy import ModelProxy
from ._settings import LONGEST_TURN_S

# Why a server refused its secret headers: a value it no longer takes, or one SSM would not
# give the role when read again (the operator rotated it under a KMS key the role may not use).
HeaderRefusal = Literal["refused", "unreadable"]
# MCP's streamable HTTP: POST (messages), GET (server events), DELETE (end of session).
_MCP_METHODS = frozenset({"POST", "GET", "DELETE"})


class McpSecretHeaders:
    """Upstream authentication for MCP server ``server``: the secret headers, added only to
    MCP's methods at the server's own ``path`` (any query string)."""

    def __init__(self, headers: Mapping[str, SecretSource], path: str, *, server: str) -> None:
        self._server = server
        self._headers = dict(headers)
        self._path = path or "/"
        # The server's last answer (since the turn began: reset by the next) refused the headers,
        # a renewed value too: the CLI then tells the server "failed", like one that crashed,
        # where it needs a new value in SSM. Not one whose refusal a renewed value answered: it
        # failed for another reason, with the value the operator just put in the parameter.
        self.refused = False

    def allows(self, method: str, path: str) -> bool:
        """Only the configured endpoint: the same origin's other paths never get the secret."""
        return method in _MCP_METHODS and path == self._path

    def authorize(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> dict[str, str]:
        """The headers to send upstream."""
        return {**headers, **{name: value.current() for name, value in self._headers.items()}}

    def unreadable(self) -> bool:
        """Whether SSM refused a header's last re-read to the role (config.invalid told so)."""
        return any(value.unreadable for value in self._headers.values())

    def renew(self, sent: dict[str, str]) -> bool:
        """Whether any header has another value than the refused one (each is asked)."""
        renewed = [value.renew(sent[name]) for name, value in self._headers.items()]
        return any(renewed)

    def answered(self, status: int) -> None:
        """Note whether the server's last answer refused the headers."""
        self.refused = status in KEY_REFUSED

    def secrets_in(self, sent: dict[str, str]) -> list[SentSecret]:
        """Every header's value, named by its SSM parameter."""
        return [SentSecret(self._server, value.name, sent[name]) for name, value in self._headers.items()]


def read_mcp_secret_headers(config: ClaudeConfig, ssm: Any) -> dict[str, dict[str, str]]:
    """server → header → value, read from SSM. Missing or empty parameters are
    McpSecretMissingErrors, each naming mcp.json's field and the parameter, all of them at once;
    a parameter the role may not read is a (retryable) SecretAccessDeniedError naming the field,
    the parameter and McpSecretsParameterPath; an SSM outage is a (retryable) StorageError."""
    values: dict[str, dict[str, str]] = {}
    problems = ConfigProblems()
    for server, headers in config.mcp_secret_headers.items():
        values[server] = {}
        for header, parameter in headers.items():
            with problems.part():
                try:
                    values[server][header] = read_secret(ssm, parameter)
                except SecretAccessDeniedError as exc:
                    raise _header_denied(config, server, header, exc) from exc
                except ConfigError as exc:
                    raise McpSecretMissingError(
                        f"{config.root}/mcp.json",
                        f"mcpServers.{server}.headers_from_ssm.{header}",
                        parameter,
                        exc.reason,
                    ) from exc
    problems.raise_any()
    return values


def _header_denied(
    config: ClaudeConfig, server: str, header: str, exc: SecretAccessDeniedError
) -> SecretAccessDeniedError:
    """SSM refused a header's parameter to the role: mcp.json's field, the parameter, and both
    settings that may be the cause (the path the role may read, the KMS key it may use)."""
    field = f"mcpServers.{server}.headers_from_ssm.{header}"
    reason = f"{exc.setting}: {exc.reason}"
    if exc.error_code != KEY_UNUSABLE:  # the role was refused, not the key: the path may be why
        reason += (
            "; a headers_from_ssm parameter must also be under the stack's "
            "McpSecretsParameterPath, the only SSM path the runtime may read"
        )
    return SecretAccessDeniedError(f"{config.root}/mcp.json: {field}", reason, error_code=exc.error_code)


def mcp_secret_sources(config: ClaudeConfig, ssm: Any, *, tenant: str) -> dict[str, dict[str, SecretSource]]:
    """server → header → its value's source, read again when the server refuses it; every
    parameter is read (and checked) now, as ``read_mcp_secret_headers`` does. A re-read SSM
    refuses to the role (the rotated value under a KMS key it may not use) is reported as
    a configuration error: the server's refusal alone would not say what to fix."""
    read_mcp_secret_headers(config, ssm)

    def report_denied(server: str, header: str) -> Callable[[SecretAccessDeniedError], None]:
        def report(exc: SecretAccessDeniedError) -> None:
            denied = _header_denied(config, server, header, exc)
            report_config_problem(denied.setting, denied.reason, tenant=tenant)

        return report

    return {
        server: {
            header: RotatingSecret(ssm, parameter, on_denied=report_denied(server, header))
            for header, parameter in headers.items()
        }
        for server, headers in config.mcp_secret_headers.items()
    }


class McpSecretProxies:
    """One proxy per MCP server with secret headers, started on the first turn; a key per turn."""

    def __init__(
        self, servers: Mapping[str, Mapping[str, Any]], secrets: Mapping[str, Mapping[str, SecretSource]]
    ) -> None:
        self._servers = servers
        self._proxies: dict[str, tuple[_TurnProxy, str]] = {}
        self._auths: dict[str, McpSecretHeaders] = {}
        for name, headers in secrets.items():
            parts = urlsplit(str(servers[name]["url"]))
            origin = f"{parts.scheme}://{parts.netloc}"
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            self._auths[name] = McpSecretHeaders(headers, parts.path, server=name)
            start = _proxy_starter(origin, self._auths[name])
            self._proxies[name] = (_TurnProxy(start), path)

    def cli_servers(self) -> dict[str, dict[str, Any]]:
        """The MCP servers as the CLI of the turn that starts now sees them: servers with
        secret headers point at their proxy, with this turn's key as ``x-api-key``."""
        out = {name: dict(spec) for name, spec in self._servers.items()}
        for auth in self._auths.values():
            auth.refused = False
        for name, (proxy, path) in self._proxies.items():
            base_url, turn_key = proxy.open_turn()
            out[name]["url"] = base_url + path
            out[name]["headers"] = {**dict(out[name].get("headers") or {}), "x-api-key": turn_key}
        return out

    def refused_their_headers(self) -> dict[str, HeaderRefusal]:
        """The servers that refused their secret headers (401/403) in this turn so far, each
        with whether SSM then refused the headers' re-read to the role ("unreadable")."""
        return {
            name: "unreadable" if auth.unreadable() else "refused"
            for name, auth in self._auths.items()
            if auth.refused
        }

    def end_turn(self) -> None:
        """The turn ended: its keys stop working."""
        for proxy, _path in self._proxies.values():
            proxy.end_turn()

    def close(self) -> None:
        """Stop the proxies."""
        for proxy, _path in self._proxies.values():
            proxy.close()


def _proxy_starter(origin: str, auth: McpSecretHeaders) -> Any:
    # A call waits as long as the CLI lets it (the server's "timeout" in mcp.json or
    # MCP_TOOL_TIMEOUT_MS, up to a whole turn), and the turn's end cuts it: the proxy's own
    # default (10 minutes) cut a slower call short, told as the server unreachable.
    return lambda: ModelProxy(upstream=origin, auth=auth, metered=False, silence_s=LONGEST_TURN_S).start()
