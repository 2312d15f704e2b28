"""The progress line's raw material: which tool (or subagent) runs and its main argument,
shortened and with anything secret-looking masked. Never the tool's output; the channel words
and escapes it (the runtime writes nothing a user reads)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from session_core import ToolActivity

MAX_ARGUMENT_CHARS = 80
_MASK = "…"
# Secret-looking material: API keys and tokens by their well-known prefixes, credentials in
# URLs, assignments and headers (the scheme of an Authorization header kept), passwords given
# as options (--password, curl -u user:, sshpass -p), and long runs of key-like characters.
_SECRETS = re.compile(
    r"(?i)(?P<keep>bearer\s+|authorization\s*[=:]\s*\w+\s+|basic\s+|://[^/\s:@]+:"
    r"|(?<![\w-])-u\s*[^\s:]+:|(?<![\w-])(?:--?(?:password|passwd|pass)|sshpass\s+-p)[=\s]\s*"
    r"|\b[\w.-]*(?:password|passwd|secret|token|api[_-]?key|authorization)[\w.-]*\s*[=:]\s*)"
    r"(?P<secret>[^\s@&'\"]+)"
    r"|sk-[a-z0-9_-]{8,}|A[KS]IA[0-9A-Z]{12,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\d{6,}:[A-Za-z0-9_-]{30,}"
)
# A long run of key-like characters (base64, hex, random ids) is taken for a credential too.
_LONG_RUN = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}")
_SHORT_SEGMENTS = re.compile(r"[A-Za-z0-9+_-]{1,31}(?:/[A-Za-z0-9+_-]{1,31})*/?")
# Tools whose main argument is a file path: shown as the path's last two parts.
_PATH_TOOLS = {"Read", "Write", "Edit", "MultiEdit", "NotebookEdit"}
_SUBAGENT_TOOLS = {"Task", "Agent"}
_ARGUMENT_FIELDS = {
    "Bash": "command",
    "Glob": "pattern",
    "Grep": "pattern",
    "WebSearch": "query",
    "WebFetch": "url",
    "Skill": "skill",
}


def mask_secrets(text: str, *, keep_paths: bool = False) -> str:
    """``text`` with anything that looks like a credential replaced by an ellipsis. With
    ``keep_paths`` a long run that reads as a path (``/`` and short parts) stays visible: an
    approval must show which file a command touches."""
    text = _SECRETS.sub(lambda m: (m.group("keep") or "") + _MASK, text)
    return _LONG_RUN.sub(lambda m: m.group(0) if keep_paths and _is_path(m.group(0)) else _MASK, text)


def _is_path(run: str) -> bool:
    return run.startswith("/") and _SHORT_SEGMENTS.fullmatch(run[1:]) is not None


def shorten(text: str, limit: int = MAX_ARGUMENT_CHARS) -> str:
    """One line of at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def tool_activity(name: str, tool_input: Mapping[str, Any] | None) -> ToolActivity:
    """What a ``tool_use`` block of ``name`` with ``tool_input`` shows while it runs."""
    given = tool_input or {}
    if name in _SUBAGENT_TOOLS:
        subagent = given.get("subagent_type") or given.get("description") or ""
        return ToolActivity(kind="subagent", name=shorten(mask_secrets(str(subagent)), 40) or "agent")
    if name.startswith("mcp__"):
        # An MCP tool's arguments are the server's business (and may carry anything): name only.
        server, _, tool = name[5:].partition("__")
        return ToolActivity(kind="tool", name=shorten(f"{server}: {tool}", 60))
    raw = ""
    if name in _PATH_TOOLS:
        path = str(given.get("file_path") or given.get("notebook_path") or "")
        raw = "/".join(path.rstrip("/").split("/")[-2:])
    elif name in _ARGUMENT_FIELDS:
        raw = str(given.get(_ARGUMENT_FIELDS[name]) or "")
        if name == "WebFetch":
            raw = raw.split("?", 1)[0].split("#", 1)[0]  # a query string may carry a token
    return ToolActivity(kind="tool", name=shorten(name, 40), argument=shorten(mask_secrets(raw)))
