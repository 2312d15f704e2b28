"""What the functions' log tells `agentbot dev`'s progress lines: why the consumer failed an
update, and the configuration problems a turn met (an MCP server that could not start, a
tool the CLI left out, a configuration error that makes every answer "misconfigured").

The functions say so in their log (the consumer's ``record_retry`` / ``record_failed``, bound
to the update's id, the reason free of secrets and user text; the runtime's
``turn.mcp_server_unavailable`` / ``turn.tool_unavailable``), and the local Lambda service
writes each function's output straight into that file, so it is there by the time the batch's
answer is. Read incrementally: only what the log gained since the last look.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

_FAILURE_EVENTS = {"record_retry", "record_failed"}
# config.invalid: a function's own start-up check failed (or the model refused the key), and
# the chat reads only "the bot is misconfigured; the operator has been told".
_CONFIG_EVENTS = {"turn.mcp_server_unavailable", "turn.tool_unavailable", "config.invalid"}
_REASON_CHARS = 200
# The settings that name a secret's SSM parameter, by the variable `agentbot dev` filled the
# parameter from: what the operator at this terminal set, and would fix. The consumer logs the
# bare setting, the runtime "<parameter> (SETTING)".
_SET_FROM = {
    "ANTHROPIC_API_KEY_PARAMETER": "ANTHROPIC_API_KEY",
    "BOT_TOKEN_PARAMETER": "TELEGRAM_BOT_TOKEN",
    "WEBHOOK_SECRET_PARAMETER": "TELEGRAM_WEBHOOK_SECRET",
}
# What a line the events above are in must hold (a cheap look before JSON decoding)
_MARKS = (b'"record_', b'_unavailable"', b'"chat_unreachable"', b'"config.invalid"')


class FailureReasons:
    """The latest failure reason per update id found in the functions' log, and the
    configuration warnings not shown yet (each once per run)."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        # A reused --state-dir keeps an earlier run's log: only what this run adds is read.
        self._read_up_to = log_path.stat().st_size if log_path.exists() else 0
        self._reasons: dict[int, str] = {}
        self._unreachable: dict[int, str] = {}  # answers Telegram would not post, and why
        self._warnings: list[str] = []
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def take(self, update_id: int) -> str | None:
        """Why the latest attempt at ``update_id`` failed (kind: detail), if the log says.
        Safe from the event source's several poller threads."""
        with self._lock:
            self._read_new_lines()
            return self._reasons.pop(update_id, None)

    def take_unreachable(self, update_id: int) -> str | None:
        """Why Telegram would not post the answer to ``update_id`` (the user blocked the bot,
        say), if it would not: the consumer then acknowledges the record without a reply."""
        with self._lock:
            self._read_new_lines()
            return self._unreachable.pop(update_id, None)

    def take_warnings(self) -> list[str]:
        """Configuration problems the log reported since the last call, each once per run."""
        with self._lock:
            self._read_new_lines()
            found, self._warnings = self._warnings, []
            return found

    def _read_new_lines(self) -> None:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._read_up_to)
                gained = log.read()
        except OSError:
            return
        whole = gained[: gained.rfind(b"\n") + 1]  # a line still being written waits
        self._read_up_to += len(whole)
        for line in whole.splitlines():
            if not any(mark in line for mark in _MARKS):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a stray traceback line
            if isinstance(entry, dict):
                self._note(entry)

    def _note(self, entry: dict[str, Any]) -> None:
        event = entry.get("event")
        if event in _FAILURE_EVENTS and isinstance(entry.get("update_id"), int):
            kind, detail = entry.get("error_kind") or "error", entry.get("error") or ""
            self._reasons[entry["update_id"]] = _shortened(f"{kind}: {detail}" if detail else str(kind))
        elif event == "chat_unreachable" and isinstance(entry.get("update_id"), int):
            self._unreachable[entry["update_id"]] = _shortened(str(entry.get("reason") or "refused"))
        elif event in _CONFIG_EVENTS:
            warning = _warning_of(entry)
            if warning not in self._warned:
                self._warned.add(warning)
                self._warnings.append(warning)


def _warning_of(entry: dict[str, Any]) -> str:
    fix = _shortened(str(entry.get("fix") or "claude-config"))
    if entry.get("event") == "config.invalid":
        fix = next((variable for setting, variable in _SET_FROM.items() if _names(fix, setting)), fix)
        reason = _shortened(str(entry.get("reason") or entry.get("error") or "see the log"))
        return (
            f"configuration error, every message is answered 'misconfigured': {fix}: {reason} "
            "(`agentbot doctor` checks it; fix it and start `agentbot dev` again)"
        )
    if entry.get("event") == "turn.tool_unavailable":
        tool = _shortened(str(entry.get("tool")))
        return f"the CLI left out tool {tool!r}: the agent ran without it (check {fix})"
    server, status = _shortened(str(entry.get("server"))), _shortened(str(entry.get("status")))
    return (
        f"MCP server {server!r} {status}: the agent ran without its tools "
        f"(is it reachable from here? see {fix})"
    )


def _shortened(text: str) -> str:
    """``text`` as the terminal may show it: no control character (an escape sequence would
    act on the terminal), at most ``_REASON_CHARS`` long."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


def _names(fix: str, setting: str) -> bool:
    return fix == setting or f"({setting})" in fix
