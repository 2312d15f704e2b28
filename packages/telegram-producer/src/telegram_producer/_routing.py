"""The producer's routing rules: which update starts a turn (and as what message), which is
acknowledged and ignored, and why. Pure: no I/O, so tests call ``decide`` directly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from session_core import SessionKey, forward_album_id, paste_album_id, shows_nothing, utf16_len
from telegram_core import Attachment, InboundMessage, for_another_bot, on_allow_list, parse_command

from ._attachments import attachments_of
from ._config import ProducerConfig
from ._mentions import without_bot_mentions
from ._opening_command import OpeningCommand, opening_command
from ._reply_context import replies_to_another_bot, replies_to_the_bot, reply_context
from ._shared_content import shared_content_text
from ._updates import Message, Update, in_reply_thread, on_behalf_of_a_chat, passed_on, sender_of, topic_of

# Updates of other kinds than a message; each is acknowledged and starts no turn (an edit
# starts one only through ``_edits``: see README "Telegram").
OtherUpdate = Literal["edited_message", "callback_query", "my_chat_member", "channel_post"]
_OTHER_UPDATES: tuple[OtherUpdate, ...] = (
    "edited_message",
    "callback_query",
    "my_chat_member",
    "channel_post",
)
# Why an update starts no turn (logged, and named in the webhook's answer).
IgnoredReason = Literal[
    OtherUpdate,
    "unknown update type",
    "message from a bot",
    "not on the allow-list",
    "no content (service message)",
    "group message not addressed to the bot",
    "a mention with nothing to answer",
    "edit long after its message",
    "edit of a message already queued",
    "edit of a message sent before edits were tracked",
]


# Telegram's apps split a text over 4,096 UTF-16 code units into several messages, cutting
# each part at a line break or space before the limit; a part that long may be followed by
# more. 3,500 leaves room for a cut far back (a long last line), and is more than people type
# in one message, so a typed message is rarely kept waiting for a continuation.
PASTE_PART_MIN_UNITS = 3_500


@dataclass(frozen=True)
class Decision:
    """What to do with a decoded update: enqueue ``message``, or acknowledge with ``ignored``;
    ``album_part``: a part of an album not addressed to the bot itself (in a group), kept for
    the turn of the part that is; ``paste_part``: a plain text not addressed to the bot (in a
    group), answered only as a further part of its sender's paste (``ignored`` otherwise);
    ``near_limit``: the plain text of ``message`` or ``paste_part`` is long enough that the
    app may have split it, so the sender's next message may continue it."""

    message: InboundMessage | None = None
    ignored: IgnoredReason | None = None
    album_part: InboundMessage | None = None
    paste_part: InboundMessage | None = None
    near_limit: bool = False


def decide(update: Update, config: ProducerConfig, *, now: float = 0.0) -> Decision:
    """Decide whether an update starts a turn; pure, so tests can call it directly."""
    if update.message is None:
        other: IgnoredReason = next(
            (name for name in _OTHER_UPDATES if getattr(update, name) is not None), "unknown update type"
        )
        return Decision(ignored=other)
    msg = update.message
    user = msg.from_
    sender_id, sender_name = sender_of(msg)
    if user is not None and user.is_bot and not on_behalf_of_a_chat(msg):
        return Decision(ignored="message from a bot")
    if msg.migrate_from_chat_id is not None:
        return _chat_moved(update, msg, sender_id, config)
    if not allowed(config, user_id=sender_id, chat_id=msg.chat.id):
        return Decision(ignored="not on the allow-list")
    text = msg.text if msg.text is not None else (msg.caption or "")
    attachments = attachments_of(msg, voice=config.transcribes_voice)
    shared = None if msg.text is not None or text or attachments else shared_content_text(msg)
    unsupported = msg.unsupported_content() if not attachments and msg.text is None and not shared else None
    if not (text or shared) and not attachments and unsupported is None:
        return Decision(ignored="no content (service message)")
    # What Telegram marks as a command decides it, here and in the consumer ("/new" shown as
    # code is words for the agent); a forwarded "/new" is someone else's words.
    opening = None if passed_on(msg) else opening_command(msg, text, config.bot_username)
    command = None if opening is None else parse_command(opening.word, config.bot_username)
    addressed = True
    pasted = _pasted(msg, sender_id, attachments, command=command)
    if msg.chat.type in ("group", "supergroup"):
        # Only what the sender typed can mention the bot: a poll or a place is named by anyone.
        addressed, text = _addressed_in_group(msg, text, config, opening=opening, command=command)
        # Kept, not addressed: an album's part, a paste's, a forward (for the comment before it).
        kept = (
            ((attachments or unsupported) and msg.media_group_id) or pasted or (passed_on(msg) and msg.date)
        )
        if not addressed and not kept:
            return Decision(ignored="group message not addressed to the bot")
    text = shared or text
    if command is not None and opening is not None and not text.startswith("/"):
        text = opening.from_command  # "@bot /usage on" in a private chat: what /usage reads
    # Only for a message addressed to the bot: an album part's turn is its album's. A forward
    # says where it came from wherever it is answered.
    voice = config.transcribes_voice
    shown = addressed or passed_on(msg)
    context, replied_files = reply_context(msg, config.bot_username, voice=voice) if shown else ("", ())
    if shows_nothing(text):  # "@bot\u200b": a zero-width space is nothing to answer either
        text = ""
        if msg.chat.type == "private" and not (attachments or unsupported or context):
            # Sent to the bot alone: silence would look broken; a notice costs no paid turn.
            unsupported = "invisible_text"
    if not text and not attachments and unsupported is None and not context:
        return Decision(ignored="a mention with nothing to answer")  # a paid turn on ""
    thread_id = topic_of(msg)
    near_limit = pasted and utf16_len(msg.text or "") >= PASTE_PART_MIN_UNITS
    key = SessionKey(tenant=config.tenant, chat_id=msg.chat.id, thread_id=thread_id)
    message = InboundMessage(
        update_id=update.update_id,
        session_key=key.canonical,
        kind="unsupported" if unsupported else "message",
        chat_id=msg.chat.id,
        chat_type=msg.chat.type,
        message_id=msg.message_id,
        thread_id=thread_id,
        forum=msg.chat.is_forum,
        in_reply_thread=in_reply_thread(msg),
        user_id=sender_id,
        user_name=sender_name,
        text=text,
        context=context,
        attachments=attachments + replied_files,
        replied_attachments=len(replied_files),
        forwarded=passed_on(msg),
        command=command or "",
        unsupported_what=unsupported,
        sent_at=msg.date or int(now),
        # A video beside photos or forwarded texts (without VOICE_TRANSCRIPTION) is one part of
        # their album or forward still: the turn of the rest says it went unread.
        album_id=_answered_with(msg, sender_id, media=bool(attachments or unsupported), pasted=pasted),
        # Typed alone (no reply, not a paste's part): maybe the comment of a forward that follows.
        may_be_comment=pasted and addressed and not near_limit and not context,
    )
    if pasted:  # its sender's next message may continue it
        if addressed:
            return Decision(message=message, near_limit=near_limit)
        return Decision(
            ignored="group message not addressed to the bot", paste_part=message, near_limit=near_limit
        )
    return Decision(message=message) if addressed else Decision(album_part=message)


def _pasted(
    msg: Message, sender_id: int | None, attachments: tuple[Attachment, ...], *, command: str | None
) -> bool:
    """Whether ``msg`` may be a part of a text its sender pasted, which the app split into
    several messages: typed text alone (a forward, a caption or a ``command`` of the bot is
    never split)."""
    return (
        msg.text is not None
        and not attachments
        and sender_id is not None
        and not passed_on(msg)
        and command is None
    )


def _answered_with(msg: Message, sender_id: int | None, *, media: bool, pasted: bool) -> str | None:
    """The group of messages ``msg`` is answered together with (its ``album_id``): the others
    forwarded with it, the other parts of its album (``media``: it holds a file, or content the
    bot does not read), or the other parts of a text its sender pasted (``pasted``: see
    ``_pasted``). Telegram delivers a forward of several messages as one message each, all
    sent at the same second: by sender and that second (a forwarded album is part of the
    forward)."""
    if pasted and sender_id is not None:
        return paste_album_id(sender_id)
    if passed_on(msg) and msg.date:
        return forward_album_id(sender_id, msg.date)
    return msg.media_group_id if media else None


def _chat_moved(update: Update, msg: Message, sender_id: int | None, config: ProducerConfig) -> Decision:
    """The supergroup's first message, naming the group it was: its conversation moves here.
    Only Telegram writes it (the webhook is verified), so the old chat's place on the
    allow-list counts as much as the new one's; and allowed users are answered in any group,
    so with them listed any group may hold a conversation, whoever upgraded it."""
    old_chat = msg.migrate_from_chat_id
    assert old_chat is not None
    if not (
        allowed(config, user_id=sender_id, chat_id=msg.chat.id)
        or allowed(config, user_id=None, chat_id=old_chat)
        or config.allowed_user_ids
    ):
        return Decision(ignored="not on the allow-list")
    key = SessionKey(tenant=config.tenant, chat_id=msg.chat.id)
    moved = InboundMessage(
        update_id=update.update_id,
        session_key=key.canonical,
        kind="chat_moved",
        chat_id=msg.chat.id,
        chat_type=msg.chat.type,
        message_id=msg.message_id,
        moved_from_chat_id=old_chat,
        sent_at=msg.date,
    )
    return Decision(message=moved)


def allowed(config: ProducerConfig, *, user_id: int | None, chat_id: int) -> bool:
    return on_allow_list(
        user_id=user_id,
        chat_id=chat_id,
        allowed_user_ids=config.allowed_user_ids,
        allowed_chat_ids=config.allowed_chat_ids,
    )


def _addressed_in_group(
    msg: Message, text: str, config: ProducerConfig, *, opening: OpeningCommand | None, command: str | None
) -> tuple[bool, str]:
    """(should the bot answer, text without the bot's @mention); ``opening``: the command
    Telegram marks at its start (None when forwarded), ``command``: that command when it is
    one of the bot's. A forwarded message's mention is someone else's words: it addresses
    nobody, and stays in the text. One of the bot's commands addresses it bare ("/status"):
    Telegram's command menu sends it so in a group with one bot, and delivers such a command
    to the bot even in privacy mode; not in reply to another bot's message, where the apps
    offer that bot's commands ("/new" there would reset this conversation). A command written
    to another bot ("/help@other_bot") is that bot's, whatever else holds: the model would be
    paid to answer it."""
    username = config.bot_username
    typed = not passed_on(msg)  # by the sender, not forwarded
    mentioned, text = without_bot_mentions(msg, text, username) if typed else (False, text)
    replied = replies_to_the_bot(msg, username)
    their_reply = not mentioned and replies_to_another_bot(msg, username)
    if opening is not None and for_another_bot(opening.word, username, replying_to_another_bot=their_reply):
        return False, text
    everything = config.group_reply_mode == "always" and not _a_reaction(msg)
    return (everything or mentioned or replied or command is not None), text


# What members send each other, not the bot: with GROUP_REPLY_MODE=always too, answered only
# as a reply to the bot. Each would otherwise be a paid turn (a sticker is read to the model)
# or a "not supported yet" notice (a GIF), and a group's stickers would each get an answer.
_REACTIONS = ("sticker", "animation", "dice")


def _a_reaction(msg: Message) -> bool:
    """Whether ``msg`` holds only a sticker, a GIF or a dice roll (no caption)."""
    return not msg.caption and any(getattr(msg, kind) is not None for kind in _REACTIONS)
