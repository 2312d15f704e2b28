"""Where a group message mentions the bot, as Telegram marks it, and the text without those
mentions (what the model is asked)."""

from __future__ import annotations

import re
import unicodedata

from session_core import utf16_len

from ._updates import Message, MessageEntity


def bot_mention(username: str | None) -> re.Pattern[str] | None:
    """The bot's @mention in a message's text (None: the bot's username is not configured). Not
    inside a word: "help@agent_bot.com" is an address, not a mention."""
    return re.compile(rf"(?<![\w.+-])@{re.escape(username)}\b", re.IGNORECASE) if username else None


def without_bot_mentions(msg: Message, text: str, username: str | None) -> tuple[bool, str]:
    """(does ``text``, the message's text or caption, mention the bot; ``text`` without those
    mentions). Telegram marks each mention in the message's entities, and an e-mail address as
    one of its own; only an update without any (as a client of an older Bot API may post) is
    read by the text rule, ``bot_mention``."""
    units = text.encode("utf-16-le")
    entities = msg.entities if msg.text is not None else msg.caption_entities
    if entities:
        spans = [(e.offset, e.offset + e.length) for e in entities if names_the_bot(e, units, username)]
    else:
        mention = bot_mention(username)
        found = () if mention is None else mention.finditer(text)
        spans = [(utf16_len(text[: m.start()]), utf16_len(text[: m.end()])) for m in found]
    kept, start = [], 0
    for begin, end in sorted(spans):
        kept.append(units[start * 2 : begin * 2])
        start = max(start, end)
    kept.append(units[start * 2 :])
    # "replace": offsets that split a character (no Telegram update has them) cost a "?", not the update.
    return bool(spans), _closed_up([part.decode("utf-16-le", errors="replace") for part in kept])


# What follows a word without a space, in every script: a mention cut out before it takes its
# space along. Closing brackets (Unicode category Pe: ")", "」", fullwidth ones) and "other"
# punctuation (Po: , . ! ? … ، ؟ ؛ 。 、 । ። and the fullwidth and Armenian stops and commas),
# but for the Po signs that open or stand before what they mark: quotes, "#tag", "@name",
# "/path", Spanish "¿" and "¡", "§", bullets, Tibetan head marks; and their fullwidth and small
# forms (U+FF03 before a Japanese tag, U+FF20), which NFKC turns into these.
_CLOSING_CATEGORIES = frozenset({"Pe", "Po"})
_STANDS_BEFORE = frozenset("\"#%&'*/@\\¡¿§¶†‡•※⸘") | {chr(c) for c in range(0x0F04, 0x0F0B)}


def _closes_up(char: str) -> bool:
    return (
        unicodedata.category(char) in _CLOSING_CATEGORIES
        and unicodedata.normalize("NFKC", char)[:1] not in _STANDS_BEFORE
    )


def _closed_up(parts: list[str]) -> str:
    """``parts`` joined where a mention was cut out: the spaces on both sides of a cut become
    one ("hey @bot can" → "hey can"), or the line breaks there when it held any, the next
    line keeping its indentation (code pasted below the mention); none is left before the
    punctuation that followed the mention ("thanks @bot!" → "thanks!")."""
    text = parts[0]
    for part in parts[1:]:
        before, after = text.rstrip(), part.lstrip()
        gap_before, gap_after = text[len(before) :], part[: len(part) - len(after)]
        if gap_before and gap_after:
            breaks = max(gap_before.count("\n"), gap_after.count("\n"))
            text = before + ("\n" * breaks + _indentation(gap_after) if breaks else " ") + after
        elif before and "\n" not in gap_before and part and _closes_up(part[0]):
            text = before + part  # "hey @bot, can" → "hey, can", not "hey , can"
        else:
            text += part
    return text.strip()


def _indentation(gap: str) -> str:
    """The whitespace that starts the line after ``gap``'s last line break ("" without one)."""
    return gap.rpartition("\n")[2] if "\n" in gap else ""


def names_the_bot(entity: MessageEntity, units: bytes, username: str | None) -> bool:
    """Whether ``entity`` of a text (``units``: its UTF-16 code units) is a mention of the bot."""
    if not username:
        return False
    if entity.type == "mention":
        named = units[entity.offset * 2 : (entity.offset + entity.length) * 2]
        return named.decode("utf-16-le", errors="replace").lower() == f"@{username}".lower()
    # A name linked to a user: the bot is named by its username (unique on Telegram), as the
    # producer does not know the bot's user id.
    named_user = entity.user.username if entity.user is not None else None
    return entity.type == "text_mention" and (named_user or "").lower() == username.lower()
