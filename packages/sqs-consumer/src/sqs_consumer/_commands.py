"""Commands answered without the model: /start, /help, /new, /status, /cost, /usage, /stop
(which message is one: telegram_core's ``parse_command``; /permissions, with its revoke buttons,
is _message's)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Literal

from session_core import BudgetLedger, SessionKey, SessionRecord, SessionRegistry, counted
from telegram_core import ChatSettings, nothing_running, this_place

from ._budget import cost_report, no_budgets_text
from ._money import turn_usd
from ._render import escape_html

# Where the user types: Telegram, or the terminal chat of `agentbot dev` (text only).
Channel = Literal["telegram", "terminal"]
CHANNELS: tuple[Channel, ...] = ("telegram", "terminal")

_WHAT_TO_SEND: dict[Channel, str] = {
    "telegram": "Send me text, a photo or a document (up to 20 MB, the caption is your question).",
    "terminal": "Type a message and press Enter; /file <path> [caption] sends a file of this machine.",
}
# Telegram's, where recordings are transcribed (VOICE_TRANSCRIPTION).
_WHAT_TO_SEND_WITH_VOICE = (
    "Send me text, a voice or video message, a video, an audio file, a photo or a document "
    "(up to 20 MB, the caption is your question)."
)
# Revoking is a button under the /permissions answer: the terminal shows no buttons, and
# agentbot dev presses one for /revoke <number>.
_PERMISSIONS = {
    "telegram": "the tools I may always use in {where}, with a button to revoke each",
    "terminal": (
        "the tools I may always use in {where} (/revoke <number> then revokes one; "
        "without --state-dir they end with the run)"
    ),
}

# How a tool call that waits for approval is answered: its buttons in Telegram; typed commands
# in agentbot dev's terminal, which shows no buttons.
_ANSWERING = {
    "telegram": "",
    "terminal": "/allow, /always or /deny: answer a tool call that waits for your approval\n",
}


def _commands(channel: Channel, where: str) -> list[tuple[str, str]]:
    """(command as /help writes it, what it does) in /help's order: Telegram's command menu
    shows the same, so the two cannot tell different stories."""
    return [
        ("stop", "stop the answer I am writing (what I wrote so far is kept)"),
        ("new", "start a fresh conversation"),
        ("status", f"this conversation's id, turns and cost, and {where}'s total"),
        ("cost", "what this chat and you spent today and this month, against the budgets"),
        ("usage on|off", "show the tokens and cost of each answer below it (off at first)"),
        ("permissions", _PERMISSIONS[channel].format(where=where)),
    ]


def help_text(
    channel: Channel = "telegram",
    *,
    voice: bool = False,
    mention: str | None = None,
    where: str = "this chat",
) -> str:
    """The /help answer (plain text): what to send and how to revoke depend on the channel
    (``voice``: recordings are transcribed; ``mention``: asked in a group that answers only
    what addresses the bot, its username, which the answer tells to mention; ``where``: the
    conversation's name, "this topic" in a forum, whose totals and grants are the topic's).
    Budgets are the whole chat's, so /cost speaks of the chat."""
    what_to_send = _WHAT_TO_SEND_WITH_VOICE if voice and channel == "telegram" else _WHAT_TO_SEND[channel]
    if mention:  # else a member's next plain message meets silence
        what_to_send += (
            f"\n\nIn a group I answer messages that mention me (@{mention}) or reply to one of mine."
        )
    commands = "".join(f"/{command}: {does}\n" for command, does in _commands(channel, where))
    return (
        "I am an AI agent. Every chat (and every forum topic) is one long conversation "
        "that I remember for weeks.\n\n"
        f"{what_to_send}\n\n"
        f"{commands}"
        f"{_ANSWERING[channel]}"
        "/help: this message"
    )


def command_menu() -> list[dict[str, str]]:
    """Telegram's command menu (setMyCommands' ``commands``), shown when "/" is typed: /help's
    commands and words. One menu serves every chat, so it speaks of "this chat"."""
    entries = [(command.split()[0], does) for command, does in _commands("telegram", "this chat")]
    entries.append(("help", "what I can do and how to talk to me"))
    return [{"command": command, "description": does[0].upper() + does[1:]} for command, does in entries]


HELP_TEXT = help_text()
# Commands that read no words after them (/usage and /permissions do; /start's are Telegram's,
# a link's payload; /stop's producer answer comes first): any there are said to be unread.
TAKES_NO_WORDS = ("new", "status", "cost", "help")


def run_command(
    name: str,
    key: SessionKey,
    *,
    registry: SessionRegistry,
    chat_settings: ChatSettings,
    retention_days: int,
    clock: Callable[[], float] = time.time,
    budgets: BudgetLedger | None = None,
    turn_cap_usd: float | None = None,
    user_id: int | None = None,
    channel: Channel = "telegram",
    argument: str = "",
    voice: bool = False,
    mention: str | None = None,
    forum: bool = False,
) -> str:
    """Carry out a command (``argument``: the rest of the message) and return its reply
    (Telegram HTML; ``voice`` and ``mention``: what /help says, see ``help_text``; ``forum``:
    the chat is a forum, whose General topic is "this topic" too; ``budgets``: the ledger, None
    when no daily or monthly cap is set; ``turn_cap_usd``: MAX_TURN_COST_USD, which /cost names)."""
    where = this_place(key.thread_id, forum=forum)
    if name == "start":
        return "Hello! " + escape_html(help_text(channel, voice=voice, mention=mention, where=where))
    if name == "help":
        return escape_html(help_text(channel, voice=voice, mention=mention, where=where))
    if name == "new":
        # A call still waiting is dropped by the caller (``drop_waiting_call``), which edits
        # its question; "Always in this chat" grants stay (revoked with /permissions).
        # A chat quiet for the retention: its record outlives the history (DynamoDB's TTL
        # sweep lags), so the conversation it names is gone, not kept.
        before, now = registry.get_session(key), clock()
        expired = before is not None and before.history_expired(now, retention_days)
        if registry.start_new_session(key) is None or before is None or expired:
            return "Started a fresh conversation."
        # The old transcript only waits in storage for its TTL: no command brings it back, so
        # the answer says so rather than that it is "kept" (for nothing the user can do).
        return (
            "Started a fresh conversation. I no longer draw on the previous one, and /new cannot be "
            "undone: its history is not kept to come back to, only stored until it is deleted "
            f"{_deleted_in(now - before.updated_at, retention_days)}."
        )
    if name == "usage":
        return _usage(key, chat_settings, argument.strip().lower(), where)
    if name == "stop":
        # [H] The producer stops a running turn itself; a /stop that was queued comes after it.
        return nothing_running(where)
    if name == "cost":
        if budgets is None:
            return no_budgets_text(turn_cap_usd)
        spending = budgets.spending(chat_id=key.chat_id, user_id=user_id)
        return cost_report(spending, budgets.now(), turn_cap_usd=turn_cap_usd)
    record = registry.get_session(key)
    if record is None:
        return "No conversation yet: send me a message to start one."
    now = clock()
    expired = record.history_expired(now, retention_days)
    if expired:
        # The record outlives the history until DynamoDB's TTL sweep: its session is gone.
        conversation = (
            "<b>Session</b>: <code>none yet (next message starts one)</code>\n"
            f"<b>This conversation</b>: expired after {counted(retention_days, 'day')} without a message; "
            "your next message starts a new one\n"
        )
    else:
        # A session with no answered turn holds only a first message that broke off after its
        # tools ran (kept so that its retry does not run them again): the next message starts
        # the conversation, in a session of its own.
        begun = record.sdk_session_id if record.conversation_turns else None
        session = escape_html(begun or "none yet (next message starts one)")
        conversation = (
            f"<b>Session</b>: <code>{session}</code>\n"
            f"<b>This conversation</b> (since /new): {counted(record.conversation_turns, 'turn')}, "
            f"{turn_usd(record.conversation_cost_usd)}\n"
            f"{_summarised(record, now)}\n"
        )
    return (
        conversation + f"<b>{where.capitalize()} in total</b>: {counted(record.turns, 'turn')}, "
        f"{turn_usd(record.cost_usd)}\n"
        f"{_began(record, now, where, expired=expired)}"
    )


def _summarised(record: SessionRecord, now: float) -> str:
    # The agent then keeps only the summary: why it forgot details the user gave before.
    if record.summarised_at is not None:
        return (
            f"<b>Summarised</b>: {_age(now - record.summarised_at)} ago (it grew too long for me: I now "
            "keep only a summary of what came before, so I may have lost details from then)"
        )
    since = record.summaries_recorded_since
    # Begun by a release that records compactions (/new or an expired history under it, or the
    # chat's item made by it): none went unrecorded. One begun before: "no" is not known.
    if record.conversation_started_at is not None or (since is not None and since <= record.created_at):
        return "<b>Summarised</b>: no (I still read all of this conversation)"
    if since is None:
        return "<b>Summarised</b>: unknown (I kept no record of it before my last update)"
    return f"<b>Summarised</b>: not in the last {_age(now - since)} (I kept no record of it before then)"


def _conversation_start(record: SessionRecord) -> float | None:
    """When this conversation began; None: before that was recorded (an older release)."""
    if record.conversation_started_at is not None:
        return record.conversation_started_at
    # The chat's first conversation has all its turns: one begun after an expired history
    # under an older release has fewer, and began unrecorded.
    first = not record.previous_session_ids and record.conversation_turns == record.turns
    return record.created_at if first else None


def _began(record: SessionRecord, now: float, where: str, *, expired: bool) -> str:
    """When this conversation began (since /new, or since an expired one) and, when earlier,
    the chat itself (``created_at``): "Age" was the chat's alone, read as the conversation's."""
    started = _conversation_start(record)
    chat = f"<b>{where.capitalize()} began</b>: {_age(now - record.created_at)} ago"
    if expired or started is None:
        return chat  # no conversation now, or one begun before its start was recorded
    conversation = f"<b>This conversation began</b>: {_age(now - started)} ago"
    if started - record.created_at < 60:
        return conversation  # the chat's first: one time for both
    return f"{conversation}\n{chat}"


def _usage(key: SessionKey, chat_settings: ChatSettings, choice: str, where: str) -> str:
    # where: "this topic" in a forum, as a topic's choice is its own
    if choice in ("on", "off"):
        chat_settings.set_usage_footer(key, choice == "on")
        if choice == "on":
            return f"From now on each answer in {where} ends with its tokens and cost. /usage off stops it."
        return f"Answers in {where} no longer show their tokens and cost."
    state = "on" if chat_settings.usage_footer(key) else "off"
    return f"The usage line under answers is {state} in {where}. Send /usage on or /usage off."


def _deleted_in(quiet_s: float, retention_days: int) -> str:
    # The history lives retention_days after its last message; /new does not extend it.
    # Rounded down: a user told "in 1 day" with 3 hours left would come back to nothing.
    if quiet_s < 3_600:  # used within the hour: its whole time, as a user would say it
        return f"in {counted(retention_days, 'day')}"
    left_s = retention_days * 86_400 - quiet_s
    if left_s >= 86_400:
        return f"in {counted(math.floor(left_s / 86_400), 'day')}"
    hours = math.floor(left_s / 3_600)
    if hours < 1:
        return "within the hour"
    return f"in {counted(hours, 'hour')}"


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
