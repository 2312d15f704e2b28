"""The bot's commands as Telegram writes them ("/status", "/status@bot args"): one reading
for the producer (does a group message address the bot?) and the consumer (which command?)."""

from __future__ import annotations

import re

COMMANDS = ("start", "help", "new", "status", "cost", "usage", "stop", "permissions")
# Telegram's rule: "/", up to 32 Latin letters, digits or underscores, and "@" and a bot's
# username; anything else ("/etc/getty@.service") is text, and names no bot.
_COMMAND_WORD = re.compile(r"/(\w{1,32})(?:@(\w+))?", re.ASCII)
# What Telegram marks as a command (a ``bot_command`` entity) where a word begins: "/", Latin
# letters, digits or underscores, and "@" and a username; the mark ends there ("/stop, wrong
# file" marks "/stop"), and none is made where the word goes on as a path ("/etc/getty@.service").
BOT_COMMAND_MARK = r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/@])"
_OPENING_MARK = re.compile(BOT_COMMAND_MARK)


def marked_command(text: str) -> str:
    """The command Telegram marks at the start of ``text`` ("/stop" of "/stop, wrong file"),
    "" when it marks none there: what a sender that plays Telegram (``agentbot dev``) marks."""
    match = _OPENING_MARK.match(text)
    return match.group(0) if match else ""


def _command_word(text: str) -> tuple[str, str] | None:
    """(name, addressee) of the command ``text`` starts with ("/Status@bot x" → ("status",
    "bot"); addressee "" when bare), or None when it starts with none."""
    if not text.startswith("/"):
        return None
    match = _COMMAND_WORD.fullmatch(text.split(maxsplit=1)[0])
    if match is None:
        return None
    return match.group(1).lower(), match.group(2) or ""


def parse_command(text: str, bot_username: str | None = None) -> str | None:
    """The command a message starts with ("/status@bot args" → "status"), if it is one of
    ours; None for anything else (which then goes to the model)."""
    word = _command_word(text)
    if word is None or _another_bot(word[1], bot_username):
        return None
    return word[0] if word[0] in COMMANDS else None


def for_another_bot(text: str, bot_username: str | None, *, replying_to_another_bot: bool = False) -> bool:
    """Whether ``text`` starts with a command written to some other bot than ``bot_username``
    ("/help@other_bot"; False when the bot's username is not known), or with a bare one
    ("/new") in ``replying_to_another_bot``: the apps offer that bot's commands there."""
    word = _command_word(text)
    if word is None:
        return False
    return _another_bot(word[1], bot_username) or (replying_to_another_bot and not word[1])


def _another_bot(addressee: str, bot_username: str | None) -> bool:
    return bool(addressee and bot_username and addressee.lower() != bot_username.lower())
