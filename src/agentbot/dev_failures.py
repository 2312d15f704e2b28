"""Why the consumer failed an update, for `agentbot dev`'s progress lines.

The consumer says why in the functions' log (``record_retry`` or ``record_failed``, bound to
the update's id, the reason free of secrets and user text), and the local Lambda service
writes each function's output straight into that file, so it is there by the time the batch's
answer is. Read incrementally: only what the log gained since the last look.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

_FAILURE_EVENTS = {"record_retry", "record_failed"}
_REASON_CHARS = 200


class FailureReasons:
    """The latest failure reason per update id found in the functions' log."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        # A reused --state-dir keeps an earlier run's log: only what this run adds is read.
        self._read_up_to = log_path.stat().st_size if log_path.exists() else 0
        self._reasons: dict[int, str] = {}
        self._lock = threading.Lock()

    def take(self, update_id: int) -> str | None:
        """Why the latest attempt at ``update_id`` failed (kind: detail), if the log says.
        Safe from the event source's several poller threads."""
        with self._lock:
            self._read_new_lines()
            return self._reasons.pop(update_id, None)

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
            if b'"record_' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a stray traceback line
            if not isinstance(entry, dict) or entry.get("event") not in _FAILURE_EVENTS:
                continue
            update_id = entry.get("update_id")
            if isinstance(update_id, int):
                kind, detail = entry.get("error_kind") or "error", entry.get("error") or ""
                self._reasons[update_id] = _shortened(f"{kind}: {detail}" if detail else str(kind))


def _shortened(text: str) -> str:
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"
