"""[I] Tool approvals in `agentbot dev`'s terminal chat: the chat shows the call that waits
with a hint, and ``/allow``, ``/always`` or ``/deny`` press its button (a ``callback_query``
update to the producer, as Telegram would send). Anything else typed declines the call and
goes to the agent, as in Telegram. ``/revoke <number>`` presses a revoke button of the last
/permissions list the same way."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from session_core import ApprovalChoice, Approvals, SessionKey
from telegram_core import (
    ApprovalButton,
    RevokeButton,
    approval_button_of,
    approval_callback_data,
    revoke_button_of,
)

COMMANDS: dict[str, ApprovalChoice] = {"/allow": "once", "/always": "always", "/deny": "deny"}
HINT = "     (answer with /allow, /always or /deny; anything else you type declines it)"
NOTHING_WAITING = "  (nothing is waiting for your approval)"
REVOKE_COMMAND = "/revoke"
REVOKE_HINT = "     (/revoke <number> revokes the rule of that line, counting from 1)"


@dataclass(frozen=True)
class _Waiting:
    message: dict[str, Any]
    approval_id: str


class TerminalApprovals:
    """The approval the terminal chat last saw asked (its buttons' message); with ``store``,
    one asked before a restart of ``agentbot dev --state-dir`` too (the store remembers it)."""

    def __init__(self, store: Approvals | None = None, key: SessionKey | None = None) -> None:
        self._lock = threading.Lock()
        self._waiting: _Waiting | None = None
        self._listed: tuple[dict[str, Any], list[str]] | None = None  # /permissions, its buttons
        self._store, self._key = store, key

    def waiting_from_before(self) -> str | None:
        """What a call asked before this run still waits for ("Bash: ls -la"), if one does."""
        found = self._stored()
        return None if found is None else f"{found[1]}: {found[2]}"

    def seen(self, message: dict[str, Any]) -> str | None:
        """Note a message the bot sent; the hint to show under it when it has buttons: how to
        answer the call it asks about, or how to revoke a rule it lists."""
        buttons = _callback_data_of(message.get("reply_markup"))
        approval_id = next(
            (b.approval_id for b in map(approval_button_of, buttons) if isinstance(b, ApprovalButton)), None
        )
        if approval_id is not None:
            with self._lock:
                self._waiting = _Waiting(message, approval_id)
            return HINT
        revokes = [data for data in buttons if isinstance(revoke_button_of(data), RevokeButton)]
        if revokes:
            with self._lock:
                self._listed = (message, revokes)
            return REVOKE_HINT
        return None

    @staticmethod
    def is_command(text: str) -> bool:
        return text.strip().split(maxsplit=1)[0].lower() in COMMANDS if text.strip() else False

    def press(self, text: str, user: dict[str, Any]) -> dict[str, Any] | None:
        """The callback_query update (no update_id yet) that ``/allow`` etc. stands for; None
        when no call waits. The press is Telegram's: the producer decides whether it counts."""
        choice = COMMANDS[text.strip().split(maxsplit=1)[0].lower()]
        with self._lock:
            waiting, self._waiting = self._waiting, None
        if waiting is None:
            stored = self._stored()
            if stored is None:
                return None
            message_id, approval_id = stored[0], stored[3]
            chat = {"id": self._key.chat_id if self._key else 0, "type": "private"}
            waiting = _Waiting({"message_id": message_id, "chat": chat}, approval_id)
        return _press_update(waiting.message, approval_callback_data(waiting.approval_id, choice), user)

    @staticmethod
    def is_revoke(text: str) -> bool:
        return text.strip().split(maxsplit=1)[0].lower() == REVOKE_COMMAND if text.strip() else False

    def revoke(self, text: str, user: dict[str, Any]) -> dict[str, Any] | str:
        """The callback_query update (no update_id yet) of the revoke button ``/revoke <n>``
        names in the last /permissions list; or, as a line to show, why there is none."""
        with self._lock:
            listed = self._listed
        if listed is None:
            return f"  (send /permissions first, then {REVOKE_COMMAND} <number> of the rule to revoke)"
        message, revokes = listed
        word = text.strip()[len(REVOKE_COMMAND) :].strip()
        if not (word.isascii() and word.isdigit() and 1 <= int(word) <= len(revokes)):
            numbers = "1" if len(revokes) == 1 else f"1 to {len(revokes)}"
            return f"  (no line {word or '<number>'}: the last /permissions listed {numbers})"
        return _press_update(message, revokes[int(word) - 1], user)

    def _stored(self) -> tuple[int, str, str, str] | None:
        if self._store is None or self._key is None:
            return None
        try:
            current = self._store.current(self._key)
        except Exception:  # the local store is gone: nothing to answer
            return None
        if current is None or current.state != "pending" or current.message_id is None:
            return None
        return current.message_id, current.tool_name, current.summary, current.approval_id

    def answered(self) -> None:
        """A message was typed instead: the call it waited on is declined by it."""
        with self._lock:
            self._waiting = None


def _press_update(message: dict[str, Any], data: str, user: dict[str, Any]) -> dict[str, Any]:
    """The callback_query of a press of the button ``data`` under ``message``, as Telegram sends it."""
    chat = message["chat"]
    return {
        "callback_query": {
            "id": uuid.uuid4().hex,
            "from": user,
            "chat_instance": str(chat["id"]),
            "data": data,
            "message": {
                "message_id": message["message_id"],
                "chat": chat,
                "date": int(time.time()),
                "text": message.get("text", ""),
            },
        }
    }


def _callback_data_of(markup: object) -> list[str]:
    """The ``callback_data`` of each button of an inline keyboard, top to bottom."""
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            return []
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    return [
        button["callback_data"]
        for row in (rows if isinstance(rows, list) else [])
        for button in (row if isinstance(row, list) else [])
        if isinstance(button, dict) and isinstance(button.get("callback_data"), str)
    ]
