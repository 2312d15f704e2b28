"""The command a message's text or caption opens with, as Telegram marks it ("/stop",
"@bot /stop@bot"): a word the apps show as a command, not one that only looks like it."""

from __future__ import annotations

from dataclasses import dataclass

from ._mentions import bot_mention, names_the_bot
from ._updates import Message

# What may stand before the command: the bot named, by its @username or a name linked to it.
_NAMES = ("mention", "text_mention")


@dataclass(frozen=True)
class OpeningCommand:
    """The command word as written ("/stop@agent_bot"; Telegram's entity ends it, so "/stop,"
    is "/stop"), whether a mention of the bot comes before it, and the text from the command
    on ("/usage on" of "@agent_bot /usage on": what the command reads)."""

    word: str
    after_mention: bool
    from_command: str


def opening_command(msg: Message, text: str, username: str | None) -> OpeningCommand | None:
    """The command ``text`` (``msg``'s text or caption) opens with, None when it opens with
    none. Telegram marks each command (``bot_command``), never one inside code; only an update
    without any entities (as a client of an older Bot API may post) is read by its first words."""
    entities = msg.entities if msg.text is not None else msg.caption_entities
    if not entities:
        words = text.split()
        mention = bot_mention(username)
        mentioned = bool(words and mention is not None and mention.fullmatch(words[0]))
        words = words[1:] if mentioned else words
        if not words or not words[0].startswith("/"):
            return None
        return OpeningCommand(words[0], mentioned, text[text.index(words[0]) :])
    units = text.encode("utf-16-le")
    read, mentioned = 0, False  # code units read; a mention of the bot among them
    for entity in sorted(entities, key=lambda e: e.offset):
        if entity.type != "bot_command" and entity.type not in _NAMES:
            continue  # formatting (bold, a link...) around the words changes nothing
        if _visible(units, read, entity.offset):
            return None  # words before it: "please /stop"
        end = entity.offset + entity.length
        if entity.type == "bot_command":
            rest = _decoded(units, entity.offset, len(units) // 2)
            return OpeningCommand(_decoded(units, entity.offset, end), mentioned, rest)
        if not names_the_bot(entity, units, username):
            return None  # "@other_bot /stop" is written to that bot
        read, mentioned = end, True
    return None


def _decoded(units: bytes, begin: int, end: int) -> str:
    return units[begin * 2 : end * 2].decode("utf-16-le", errors="replace")


def _visible(units: bytes, begin: int, end: int) -> bool:
    return bool(_decoded(units, begin, end).strip())
