"""What a message refers to, shown to the agent before the message's own text: the message it
replies to (its text, or the part the user quoted; its photo or file comes along as an
attachment) and where a forwarded message came from. "@bot translate this", sent as a reply
to someone's message, is then answered about that message.

Kept apart from the message's text, so a command ("/new" as a reply) stays a command and a
mention inside the replied message does not address the bot.
"""

from __future__ import annotations

from typing import Any

import msgspec
from session_core import within_utf16
from telegram_core import Attachment, attachment_words, content_word

from ._attachments import attachments_of
from ._shared_content import shared_content_text
from ._updates import (
    UNSUPPORTED_CONTENT,
    Chat,
    ExternalReply,
    Message,
    MessageContent,
    RepliedMessage,
    User,
    chat_name,
    plain_name,
    shown_name,
)

# The bot's own message is in the agent's history already: enough of it to say which one
# (characters as Telegram counts them, cut between whole characters as the chat shows them).
_OWN_MESSAGE_EXCERPT_CHARS = 300
# Why a recording the bot hears is not attached to an album replying to it.
_NOT_WITH_AN_ALBUM = (
    "an album brings no replied recording; the bot hears it when a message alone replies to it"
)


class _Quote(msgspec.Struct, frozen=True, kw_only=True):
    text: str


class _Story(msgspec.Struct, frozen=True, kw_only=True):
    chat: Chat | None = None


class _Origin(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    sender_user: User | None = None
    sender_user_name: str | None = None
    sender_chat: Chat | None = None
    chat: Chat | None = None


def reply_context(
    msg: Message, bot_username: str | None, *, voice: bool = False
) -> tuple[str, tuple[Attachment, ...]]:
    """(the text shown to the agent before ``msg``'s own, the replied message's photo or file,
    or with ``voice`` its recording; not for a part of an album, which each part would
    bring again)."""
    lines: list[str] = []
    forwarded = _forwarded_from(msg.forward_origin)
    if forwarded:
        lines.append(f"[Forwarded from {forwarded}]")
    # A message of another chat comes only as ``external_reply``.
    replied: MessageContent | None = _replied(msg) or msg.external_reply
    if replied is None:
        if msg.reply_to_story is not None:
            # Said, or "is this place open today?" reaches the agent as if about nothing.
            story = f"a story from {_story_author(msg.reply_to_story)}"
            lines.append(f"[In reply to {story} (not attached: the bot cannot read it)]")
        return "\n".join(lines), ()
    own = replies_to_the_bot(msg, bot_username)
    who = "your message" if own else f"a message from {_author(replied)}"
    readable = attachments_of(replied, voice=voice)
    attachments = readable if msg.media_group_id is None else ()
    quoted = _text(msg.quote) or replied.text or replied.caption or shared_content_text(replied) or ""
    if own and (excerpt := within_utf16(quoted, _OWN_MESSAGE_EXCERPT_CHARS)) != quoted:
        quoted = excerpt.rstrip() + "…"
    if attachments:
        what = f"{who} with the attached {attachment_words(attachments[0])}"
    elif unread := _unread(replied):
        # Said, or "what did he say?" about a voice message is answered as if it said nothing.
        # A recording the bot hears stays behind only because an album replied to it: told
        # the bot cannot read it, the agent would tell the user a reply of its own will not do.
        why = _NOT_WITH_AN_ALBUM if readable else "the bot cannot read it"
        what = f"{who} with {_a(content_word(unread))} (not attached: {why})"
    else:
        what = who
    if quoted:
        lines.append(f"[In reply to {what}:]")
        lines += [f"> {line}" for line in quoted.splitlines() or [""]]
    else:
        lines.append(f"[In reply to {what}]")
    return "\n".join(lines), attachments


def _unread(replied: MessageContent) -> str | None:
    """Telegram's name of the content ``replied`` carries that the bot does not read
    (a recording, where none is heard; a GIF; a story...), if any."""
    return next((name for name in UNSUPPORTED_CONTENT if getattr(replied, name) is not None), None)


def _a(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def replies_to_the_bot(msg: Message, bot_username: str | None) -> bool:
    """Whether ``msg`` replies to a message of the bot (``bot_username``; None: unknown)."""
    replied = _replied(msg)
    author = replied.from_ if replied is not None else None
    return bool(bot_username and author and (author.username or "").lower() == bot_username.lower())


def replies_to_another_bot(msg: Message, bot_username: str | None) -> bool:
    """Whether ``msg`` replies to a message of some other bot (not one sent on behalf of a
    chat: an anonymous admin's or a channel's message has a bot placeholder as its author).
    A topic another bot opened (a helpdesk bot's ticket) does not make every bare command
    there that bot's: each message of the topic names its opening as replied to."""
    replied = _replied(msg)
    author = replied.from_ if replied is not None else None
    if replied is None or author is None or not author.is_bot or replied.sender_chat is not None:
        return False
    return not replies_to_the_bot(msg, bot_username)


def _replied(msg: Message) -> RepliedMessage | None:
    """The message ``msg`` replies to; None when it replies to nothing, or names only its
    topic's opening."""
    replied = msg.reply_to_message
    return None if replied is None or _opens_the_topic(msg, replied) else replied


def _opens_the_topic(msg: Message, replied: RepliedMessage) -> bool:
    """Whether ``replied`` is only the topic's opening (what Telegram names when a message of
    a forum topic replies to nothing in particular)."""
    return replied.forum_topic_created is not None or (
        msg.is_topic_message and replied.message_id == msg.message_thread_id
    )


def _author(replied: MessageContent) -> str:
    if isinstance(replied, ExternalReply):
        return _forwarded_from(replied.origin) or "someone"
    if replied.sender_chat is not None:
        return chat_name(replied.sender_chat)
    return shown_name(replied.from_) if replied.from_ is not None else "someone"


def _story_author(raw: Any) -> str:
    """Whose story a message replies to: the chat that posted it, by its @username or title
    ("someone" when it has neither, or its shape is not the Bot API's)."""
    try:
        chat = msgspec.convert(raw, _Story).chat
    except msgspec.ValidationError:
        return "someone"
    return chat_name(chat) if chat is not None and (chat.username or chat.title) else "someone"


def _text(raw: Any) -> str:
    """The text of a quote, or "" when there is none or its shape is not the Bot API's."""
    if raw is None:
        return ""
    try:
        return msgspec.convert(raw, _Quote).text
    except msgspec.ValidationError:
        return ""


def _forwarded_from(raw: Any) -> str:
    """Who a forwarded message came from, as the chat shows it ("" when not forwarded)."""
    if raw is None:
        return ""
    try:
        origin = msgspec.convert(raw, _Origin)
    except msgspec.ValidationError:
        return "someone"
    if origin.sender_user is not None:
        return shown_name(origin.sender_user)
    chat = origin.sender_chat or origin.chat
    if chat is not None:
        return chat_name(chat)
    return plain_name(origin.sender_user_name or "") or "someone"
