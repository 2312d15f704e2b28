"""The bot's commands as Telegram writes them ("/status", "/status@bot args"): one reading
for the producer (does a group message address the bot?) and the consumer (which command?)."""

from __future__ import annotations

COMMANDS = ("start", "help", "new", "status", "cost", "usage", "stop", "permissions")


def command_word(text: str) -> tuple[str, str] | None:
    """(name, addressee) of the command ``text`` starts with ("/Status@bot x" → ("status",
    "bot"); addressee "" when bare), or None when it starts with none."""
    if not text.startswith("/"):
        return None
    word = text.split(maxsplit=1)[0][1:]
    name, _, addressee = word.partition("@")
    return name.lower(), addressee


def parse_command(text: str, bot_username: str | None = None) -> str | None:
    """The command a message starts with ("/status@bot args" → "status"), if it is one of
    ours; None for anything else (which then goes to the model)."""
    word = command_word(text)
    if word is None:
        return None
    name, addressee = word
    if addressee and bot_username and addressee.lower() != bot_username.lower():
        return None
    return name if name in COMMANDS else None
