"""Commands answered without the model: /start, /help, /new, /status, /cost."""

from __future__ import annotations

import time
from collections.abc import Callable

from session_core import BudgetLedger, SessionKey, SessionRegistry

from ._budget import cost_report
from ._render import escape_html

COMMANDS = ("start", "help", "new", "status", "cost")

HELP_TEXT = (
    "I am an AI agent. Every chat (and every forum topic) is one long conversation "
    "that I remember for weeks.\n\n"
    "Send me text, a photo or a document (up to 20 MB, the caption is your question).\n\n"
    "/new: start a fresh conversation\n"
    "/status: this conversation's id, turns and cost, and this chat's total\n"
    "/cost: what this chat and you spent today and this month, against the budgets\n"
    "/help: this message"
)


def parse_command(text: str, bot_username: str | None = None) -> str | None:
    """The command a message starts with ("/status@bot args" → "status"), if it is one of
    ours; None for anything else (which then goes to the model)."""
    if not text.startswith("/"):
        return None
    word = text.split(maxsplit=1)[0][1:]
    name, _, addressee = word.partition("@")
    if addressee and bot_username and addressee.lower() != bot_username.lower():
        return None
    name = name.lower()
    return name if name in COMMANDS else None


def run_command(
    name: str,
    key: SessionKey,
    *,
    registry: SessionRegistry,
    retention_days: int,
    clock: Callable[[], float] = time.time,
    budgets: BudgetLedger | None = None,
    user_id: int | None = None,
) -> str:
    """Carry out a command and return its reply (Telegram HTML)."""
    if name == "start":
        return "Hello! " + escape_html(HELP_TEXT)
    if name == "help":
        return escape_html(HELP_TEXT)
    if name == "new":
        previous = registry.start_new_session(key)
        if previous is None:
            return "Started a fresh conversation."
        return (
            "Started a fresh conversation. The previous one is kept for "
            f"{retention_days} days but I will not draw on it any more."
        )
    if name == "cost":
        if budgets is None:
            return "No budgets are set for this bot; /status shows this chat's cost."
        return cost_report(budgets.spending(chat_id=key.chat_id, user_id=user_id), budgets.now())
    record = registry.get_session(key)
    if record is None:
        return "No conversation yet: send me a message to start one."
    session = escape_html(record.sdk_session_id or "none yet (next message starts one)")
    return (
        f"<b>Session</b>: <code>{session}</code>\n"
        f"<b>This conversation</b> (since /new): {_turns(record.conversation_turns)}, "
        f"{_usd(record.conversation_cost_usd)}\n"
        f"<b>This chat in total</b>: {_turns(record.turns)}, {_usd(record.cost_usd)}\n"
        f"<b>Age</b>: {_age(clock() - record.created_at)}"
    )


def _turns(count: int) -> str:
    return f"{count} turn" + ("" if count == 1 else "s")


def _usd(amount: float) -> str:
    if amount == 0:
        return "$0 (nothing billed)"
    return f"${amount:.4f}"


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds} s"
