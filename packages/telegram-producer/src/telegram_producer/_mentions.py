"""Where a group message mentions the bot, as Telegram marks it, and the text without those
mentions (what the model is asked)."""

from __future__ import annotations

import re

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
    entities = msg.entities if msg.text is not None else msg.caption_entities
    if not entities:
        mention = bot_mention(username)
        if mention is None:
            return False, text
        return bool(mention.search(text)), mention.sub("", text).strip()
    units = text.encode("utf-16-le")
    spans = sorted(
        (e.offset * 2, (e.offset + e.length) * 2) for e in entities if _names_the_bot(e, units, username)
    )
    kept, start = [], 0
    for begin, end in spans:
        kept.append(units[start:begin])
        start = max(start, end)
    kept.append(units[start:])
    # "replace": offsets that split a character (no Telegram update has them) cost a "?", not the update.
    return bool(spans), b"".join(kept).decode("utf-16-le", errors="replace").strip()


def _names_the_bot(entity: MessageEntity, units: bytes, username: str | None) -> bool:
    if not username:
        return False
    if entity.type == "mention":
        named = units[entity.offset * 2 : (entity.offset + entity.length) * 2]
        return named.decode("utf-16-le", errors="replace").lower() == f"@{username}".lower()
    # A name linked to a user: the bot is named by its username (unique on Telegram), as the
    # producer does not know the bot's user id.
    named_user = entity.user.username if entity.user is not None else None
    return entity.type == "text_mention" and (named_user or "").lower() == username.lower()
