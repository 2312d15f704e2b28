"""mcp.json: the MCP servers the agent may use, as the CLI takes them (``${}`` expanded), and
the secret headers the runtime's proxy adds (``headers_from_ssm``), checked so that no secret
ships in the image or reaches the agent's tools."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from session_core import is_secret_variable

from ._config_files import check_string_map, read_json, refuse_unknown_fields, string_list
from ._config_problems import ConfigProblems
from ._credential_formats import find_credential, is_plain_setting
from ._errors import ClaudeConfigError
from ._mcp_commands import ProgramLookup, check_mcp_command

_MCP_TYPES = ("stdio", "http", "sse")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
_HEADER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # '_' too: Context7's key is CONTEXT7_API_KEY
_SSM_NAME = re.compile(r"/?[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
# Only through headers_from_ssm: in ``headers`` the value would be in the image and the CLI's
# command line, and the runtime's proxy authenticates the CLI with these names itself. Other
# headers are credentials when named like a secret variable (X-Auth-Token, CONTEXT7_API_KEY).
_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key"})
# Why a credential found in a server's value may not be there, and where it goes instead.
_NOT_IN_A_COMMAND_SERVER = (
    "and a command server's environment and command line are readable by the agent's tools: "
    "run the server over HTTP with its secret in headers_from_ssm (docs/customise.md step 4)"
)
_NOT_IN_AN_HTTP_SERVER = (
    "and written here it ships in the image and reaches the agent's tools: send it as a header "
    "whose whole value is an SSM SecureString named in headers_from_ssm (docs/customise.md step 4)"
)


def _is_credential_header(name: str) -> bool:
    return name.lower() in _CREDENTIAL_HEADERS or is_secret_variable(name.replace("-", "_"))


def _expand(value: Any, env: Mapping[str, str], file: Path, field: str) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if is_secret_variable(name):
                # Kept out of every function's environment (agentbot dev strips it, the template
                # sets none), so the shell that has it would pass this check and every turn fail.
                raise ClaudeConfigError(
                    str(file),
                    field,
                    f"${{{name}}} is named like a secret, and such a variable never reaches the runtime: "
                    "give an HTTP server's secret header through headers_from_ssm (docs/customise.md)",
                )
            if name in env and env[name] != "":
                return env[name]
            if default is not None:
                return default
            # Empty counts as unset (as in the shell's ${NAME:-}): a deployed stack sets some
            # variables empty (ANTHROPIC_BASE_URL without a gateway): the error says which it is.
            state = "is empty" if name in env else "is not set"
            raise ClaudeConfigError(
                str(file), field, f"${{{name}}} {state} and has no default", variables=[name]
            )

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v, env, file, f"{field}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand(v, env, file, f"{field}.{k}") for k, v in value.items()}
    return value


# mcp.json's servers (name → spec as the CLI takes it) and their secret headers
_McpServers = tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]]]


def load_mcp(
    file: Path, env: Mapping[str, str], programs: ProgramLookup | None, problems: ConfigProblems
) -> tuple[_McpServers | None, set[str] | None]:
    """The servers of mcp.json (None: it has problems, added to ``problems``) and the names it
    defines (None: not known, as it does not parse or has no object of servers)."""
    before = len(problems.found)
    servers: dict[str, Any] | None = None
    with problems.part():
        data = read_json(file, required=False)
        refuse_unknown_fields(data, ("mcpServers",), file, "")
        raw = data.get("mcpServers", {})
        if not isinstance(raw, dict):
            raise ClaudeConfigError(str(file), "mcpServers", "must be an object of name → server")
        servers = raw  # only an object: what is not one has just been reported
    if servers is None:
        return None, None
    out: dict[str, dict[str, Any]] = {}
    secret_headers: dict[str, dict[str, str]] = {}
    first_by_folded_name: dict[str, str] = {}
    for name, spec in servers.items():
        with problems.part():
            _refuse_name_differing_only_in_case(name, first_by_folded_name, file)
            out[name] = _mcp_server(file, name, spec, env)
            if "headers_from_ssm" in spec:
                secret_headers[name] = _secret_headers(spec, file, f"mcpServers.{name}")
            if programs is not None:
                check_mcp_command(str(file), name, out[name], env, programs)
    return (None if len(problems.found) > before else (out, secret_headers)), set(servers)


def _refuse_name_differing_only_in_case(name: str, seen: dict[str, str], file: Path) -> None:
    """Two servers named alike but for case ("GitHub", "github"): the CLI finds some tools by
    their name without its case, so one server's tools would be taken for the other's."""
    first = seen.setdefault(name.casefold(), name)
    if first != name:
        raise ClaudeConfigError(
            str(file),
            f"mcpServers.{name}",
            f"differs from server {first!r} only in case, and the CLI takes some tool names without "
            f"their case, so one's tools would be taken for the other's: rename {name!r} or {first!r}",
        )


def _mcp_server(file: Path, name: str, spec: object, env: Mapping[str, str]) -> dict[str, Any]:
    """One server of mcp.json as the CLI takes it: ``${}`` expanded, ``headers_from_ssm`` left out."""
    field = f"mcpServers.{name}"
    _check_server_name(name, file, field)
    if not isinstance(spec, dict):
        raise ClaudeConfigError(str(file), field, "must be an object")
    kind = spec.get("type", "stdio")
    if kind not in _MCP_TYPES:
        raise ClaudeConfigError(
            str(file),
            f"{field}.type",
            f"unknown MCP server type {kind!r} (use one of {', '.join(_MCP_TYPES)})",
        )
    if kind == "stdio" and "type" not in spec and "url" in spec and "command" not in spec:  # meant as HTTP
        raise ClaudeConfigError(
            str(file),
            f"{field}.type",
            'is required for a server with a url: add "type": "http" (or "sse")',
        )
    # Unknown fields first: a misspelt "comand" is named as written, not as "command: is required".
    allowed = (
        ("type", "command", "args", "env", "timeout")
        if kind == "stdio"
        else ("type", "url", "headers", "headers_from_ssm", "timeout")
    )
    refuse_unknown_fields(spec, allowed, file, field)
    timeout = _check_timeout(spec["timeout"], file, f"{field}.timeout") if "timeout" in spec else None
    if kind == "stdio":
        if not isinstance(spec.get("command"), str) or not spec["command"]:
            raise ClaudeConfigError(str(file), f"{field}.command", "is required for a command (stdio) server")
        if "args" in spec:
            string_list(spec["args"], file, f"{field}.args")
        _refuse_nul(spec, file, field)
    elif not isinstance(spec.get("url"), str) or not spec["url"]:
        raise ClaudeConfigError(str(file), f"{field}.url", f"is required for an {kind} server")
    for mapping in ("env", "headers"):
        if mapping in spec:
            check_string_map(spec[mapping], file, f"{field}.{mapping}")
    for header in spec.get("headers") or {}:
        if _is_credential_header(header):
            raise ClaudeConfigError(
                str(file),
                f"{field}.headers.{header}",
                "is a credential: put its whole value in an SSM SecureString and name it in "
                "headers_from_ssm (written here it ships in the image and reaches the agent's tools)",
            )
    plain = {k: v for k, v in spec.items() if k != "headers_from_ssm"}
    expanded: dict[str, Any] = _expand({**plain, "type": kind}, env, file, field)
    if timeout is not None:
        expanded["timeout"] = timeout  # 1e3 reaches the CLI as 1000
    for variable, value in (spec.get("env") or {}).items():
        if is_secret_variable(variable) and not is_plain_setting(value):
            raise ClaudeConfigError(
                str(file),
                f"{field}.env.{variable}",
                "is named like a secret, and a command server gets none (written here it ships in the "
                "image and the CLI's command line, which the agent's tools can read): run the server "
                "over HTTP with its secret in headers_from_ssm (docs/customise.md)",
            )
    _refuse_credentials(spec, expanded, file, field)
    if kind != "stdio":
        _refuse_control_characters(expanded, file, field)
        _check_url(expanded["url"], spec["url"], file, f"{field}.url")
    args = expanded.get("args") or []
    for index, arg in enumerate(args):
        # The server starts in the chat's own directory, where a claude-config file named by a
        # relative path is not: it would fail at every turn, and the agent go without its tools.
        # Unless an earlier argument names a directory to start in (`uv --directory DIR run`).
        started_elsewhere = any(os.path.isabs(a) and os.path.isdir(a) for a in args[:index])
        if arg and not os.path.isabs(arg) and not started_elsewhere and (file.parent / arg).is_file():
            raise ClaudeConfigError(
                str(file),
                f"{field}.args[{index}]",
                f"{arg!r} is relative to the chat's directory, where the server starts, not to "
                f"claude-config: write ${{CLAUDE_CONFIG_PATH}}/{arg}",
            )
    return expanded


def _check_server_name(name: str, file: Path, field: str) -> None:
    """A name the CLI writes into its tools' names (``mcp__<server>__<tool>``) as it is, and
    that reads back as this server alone: the CLI turns any other character into '_', and it
    (as the runtime, the approval rules and agents.json) takes the server to end at the first
    '__' after ``mcp__``, so "a__b" and "a_" would name tools of server "a"."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ClaudeConfigError(str(file), field, "server names use letters, digits, '_' and '-'")
    if "__" in name or name.endswith("_"):
        raise ClaudeConfigError(
            str(file),
            field,
            "a server name must not contain '__' nor end with '_': the CLI names its tools "
            "mcp__<server>__<tool> and reads the server as ending at the first '__', so this "
            "one's tools would be taken for another server's (use a single '_' or '-')",
        )


# A server's own limit on one tool call, in milliseconds (the bundled CLI's per-server
# "timeout", in place of MCP_TOOL_TIMEOUT_MS for it): the CLI ignores less than a second, and
# no turn runs longer than Lambda's 15 minutes, which a longer limit would outlast.
_TIMEOUT_MS = (1000, 900_000)


def _check_timeout(value: object, file: Path, field: str) -> int:
    """The limit as a whole number: JSON has no integer type (the CLI reads 1000.0 or 1e3 as
    1000), so a decimal number of a whole value counts as that whole number."""
    low, high = _TIMEOUT_MS
    if isinstance(value, float) and value.is_integer():  # not inf or nan
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ClaudeConfigError(
            str(file),
            field,
            f"must be a whole number of milliseconds from {low} to {high} (the longest this "
            "server's tool call may take; MCP_TOOL_TIMEOUT_MS in infra/template.yaml is the "
            "limit of every other server)",
        )
    return value


def _refuse_nul(spec: Mapping[str, Any], file: Path, field: str) -> None:
    """A NUL in what a command server is started with: no program can be given one (the start
    fails at every turn, with a traceback), so it is named here like any other mistake."""
    values = [("command", spec["command"])]
    values += [(f"args[{index}]", arg) for index, arg in enumerate(spec.get("args") or [])]
    env = spec.get("env")
    if isinstance(env, dict):  # its shape is checked with the headers' below
        if any("\x00" in name for name in env):  # the name is cut there too ("NAME=value\0")
            raise ClaudeConfigError(
                str(file), f"{field}.env", "a variable's name must not contain a NUL character"
            )
        values += [(f"env.{name}", value) for name, value in env.items() if isinstance(value, str)]
    for where, value in values:
        if "\x00" in value:
            raise ClaudeConfigError(str(file), f"{field}.{where}", "must not contain a NUL character")


def _refuse_control_characters(server: Mapping[str, Any], file: Path, field: str) -> None:
    """A control character in an HTTP server's url or a header (as expanded): no request can
    carry one (a CR or LF would even end the header and start another), so the server would be
    out of reach at every turn. The field is named, never the value: it may carry a token."""
    values = [("url", server["url"])]
    for name, value in (server.get("headers") or {}).items():
        shown = name.encode("unicode_escape").decode("ascii")  # the name itself may hold one
        values += [(f"headers.{shown}", name), (f"headers.{shown}", value)]
    for where, value in values:
        if found := _CONTROL_CHARACTER.search(value):
            raise ClaudeConfigError(
                str(file), f"{field}.{where}", f"must not contain a control character (U+{ord(found[0]):04X})"
            )


def _readable_values(server: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, value) of each string of a server that the agent's tools can read: it ships in
    the image and is on the CLI's command line (a command server's env also in its environment)."""
    places = [(f"env.{name}", value) for name, value in (server.get("env") or {}).items()]
    places += [(f"args[{index}]", arg) for index, arg in enumerate(server.get("args") or [])]
    places += [(f"headers.{name}", value) for name, value in (server.get("headers") or {}).items()]
    return places + ([("url", server["url"])] if "url" in server else [])


def _refuse_credentials(spec: Mapping[str, Any], expanded: Mapping[str, Any], file: Path, field: str) -> None:
    """A credential in a value the agent's tools can read, by its format whatever it is called:
    ClaudeConfigError naming where and what kind, never the value. Checked as written (a
    ``${NAME:-default}``'s default ships in the image even where NAME is set) and as expanded
    (a value from the operator's environment)."""
    written = dict(_readable_values(spec))
    for where, value in _readable_values(expanded):
        as_written = written[where]
        what, source = find_credential(_VAR.sub(lambda match: match.group(2) or "", as_written)), ""
        if what is None and (what := find_credential(value)) is not None:
            variables = ", ".join(f"${{{match.group(1)}}}" for match in _VAR.finditer(as_written))
            source = f" (its value comes from {variables})"
        if what is not None:
            instead = _NOT_IN_A_COMMAND_SERVER if expanded["type"] == "stdio" else _NOT_IN_AN_HTTP_SERVER
            reason = f"{what}{source}, {instead}"
            raise ClaudeConfigError(str(file), f"{field}.{where}", reason)


def _check_url(url: str, written: str, file: Path, field: str) -> None:
    """An http(s) URL with a host the CLI can connect to; one it cannot would only fail as each
    turn starts the server. Not the value itself in the error: a URL may carry a token."""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # a bracket not closed, a port not a number or past 65535
        parts, port_ok = urlsplit(""), False
    if parts.scheme in ("http", "https") and parts.hostname and port_ok and not re.search(r"\s", url):
        return
    variables = list(dict.fromkeys(match.group(1) for match in _VAR.finditer(written)))
    source = ", ".join(f"${{{name}}}" for name in variables)
    reason = "must be an http(s) URL with a host, such as https://mcp.example.com/mcp"
    if variables:
        reason += f" (its value comes from {source}{', and is empty' if not url else ''})"
    raise ClaudeConfigError(str(file), field, reason, variables=variables)


def _secret_headers(spec: Mapping[str, Any], file: Path, field: str) -> dict[str, str]:
    """``headers_from_ssm``: header name → SSM parameter name (no ``${}``: names, not values)."""
    raw = spec["headers_from_ssm"]
    where = f"{field}.headers_from_ssm"
    if not isinstance(raw, dict) or not raw:
        raise ClaudeConfigError(str(file), where, "must be an object of header name → SSM parameter name")
    plain = {str(h).lower() for h in (spec.get("headers") or {})}
    for header, parameter in raw.items():
        if not _HEADER_NAME.fullmatch(header):
            raise ClaudeConfigError(str(file), f"{where}.{header}", "is not an HTTP header name")
        if header.lower() in plain:
            raise ClaudeConfigError(str(file), f"{where}.{header}", "is also in headers: name it once")
        if not isinstance(parameter, str) or not _SSM_NAME.fullmatch(parameter):
            raise ClaudeConfigError(
                str(file), f"{where}.{header}", "must be an SSM parameter name such as /agentbot/mcp/token"
            )
    return dict(raw)
