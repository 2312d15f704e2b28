"""The parts of a Telegram ``Update`` the producer reads, as lenient msgspec Structs.

Unknown fields are ignored (Telegram adds fields often); a field of the wrong type is a
decode error, which the webhook answers with a 200 and drops (``update_unprocessable``:
Telegram would redeliver anything else for a day, refused each time).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

import msgspec

from ._shared_content import SHARED_KINDS

# The Bot API's documented ranges: identifiers have at most 52 significant bits (safe in a
# double); chat ids are signed 64-bit. Anything outside is not from Telegram: dropped, as above.
_52_BITS = msgspec.Meta(ge=0, lt=2**52)
Id = Annotated[int, _52_BITS]
ChatId = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
# Counts, sizes and times share the bound: no larger number is meaningful here.
Count = Annotated[int, _52_BITS]


class User(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    is_bot: bool = False
    first_name: str = ""
    username: str | None = None


class Chat(msgspec.Struct, frozen=True, kw_only=True):
    id: ChatId
    type: str = "private"
    title: str | None = None
    username: str | None = None
    is_forum: bool = False


class PhotoSize(msgspec.Struct, frozen=True, kw_only=True):
    file_id: str
    file_unique_id: str = ""
    width: Count = 0
    height: Count = 0
    file_size: Count | None = None


class Document(msgspec.Struct, frozen=True, kw_only=True):
    file_id: str
    file_unique_id: str = ""
    file_name: str | None = None
    mime_type: str | None = None
    file_size: Count | None = None


class Recording(msgspec.Struct, frozen=True, kw_only=True):
    """A voice message, a round video message (VideoNote: no mime type), an audio file or a
    video, as far as they are heard alike."""

    file_id: str
    file_unique_id: str = ""
    duration: Count = 0
    mime_type: str | None = None
    file_size: Count | None = None
    file_name: str | None = None  # an audio file's or a video's, as its sender named it


class MessageEntity(msgspec.Struct, frozen=True, kw_only=True):
    """A part of a message's text Telegram marks (a mention, an e-mail address, a command...);
    ``offset`` and ``length`` count UTF-16 code units."""

    type: str
    offset: Count
    length: Count
    user: User | None = None  # the user a "text_mention" names


class MessageContent(msgspec.Struct, frozen=True, kw_only=True):
    """What a message holds that the agent is shown: a message's own, or the one it replies to
    (``_reply_context``), and who sent it."""

    message_id: Id
    from_: User | None = msgspec.field(default=None, name="from")
    # Set when the message is sent on behalf of a chat (an anonymous admin, a channel):
    # ``from`` is then a placeholder user every such chat shares.
    sender_chat: Chat | None = None
    text: str | None = None
    caption: str | None = None
    photo: tuple[PhotoSize, ...] = ()
    document: Document | None = None
    # A GIF (an MP4 without sound). Telegram sets ``document`` to the same file too, for bots
    # older than animations: that one is the GIF's, not a file sent (``_attachments``).
    animation: Any = None
    # What a user shares, read by _shared_content (leniently: a shape it does not expect
    # makes the message unsupported, not the update undecodable).
    sticker: Any = None
    location: Any = None
    venue: Any = None
    contact: Any = None
    poll: Any = None
    checklist: Any = None  # a to-do list (Telegram Premium users send them)
    dice: Any = None
    # A voice message, a round video message, an audio file, a video: read by _attachments
    # where they are transcribed (VOICE_TRANSCRIPTION), else only recognised as unsupported.
    voice: Any = None
    video_note: Any = None
    audio: Any = None
    video: Any = None
    # Present only to recognise unsupported content (a message's, or the one it replies
    # to); their contents are never read.
    game: Any = None
    story: Any = None
    giveaway: Any = None
    giveaway_winners: Any = None  # the post naming a giveaway's winners
    paid_media: Any = None
    invoice: Any = None


class RepliedMessage(MessageContent, frozen=True, kw_only=True):
    """The message a message replies to (a reply to the bot addresses it in a group)."""

    # The service message that opened a forum topic: every message of the topic that replies
    # to nothing in particular names it.
    forum_topic_created: Any = None


class ExternalReply(MessageContent, frozen=True, kw_only=True):
    """The message of another chat (or topic) a message replies to ("Reply in another chat"):
    Telegram sends where it came from and its media, never its text (the message's ``quote``
    holds the part the user selected)."""

    message_id: Id = 0  # given only for a message of a channel or supergroup
    origin: Any = None  # a MessageOrigin, read leniently as a forward's is


# Content Telegram can carry that the bot does not handle yet; the consumer answers
# "not supported yet" naming it. Service messages (joins, pins, ...) are not in this
# list: they are ignored silently. What a user shares (SHARED_KINDS) becomes the turn's text.
UNSUPPORTED_CONTENT = (
    "voice",
    "audio",
    "video",
    "video_note",
    "animation",
    "game",
    "story",
    # a channel's posts and a bot's bill, which anyone can forward to the bot
    "giveaway",
    "giveaway_winners",
    "paid_media",
    "invoice",
)


class Message(MessageContent, frozen=True, kw_only=True):
    date: Count = 0
    edit_date: Count = 0  # when an edited message was last edited
    chat: Chat
    is_automatic_forward: bool = False  # a linked channel's post, forwarded into its group
    message_thread_id: Id | None = None
    is_topic_message: bool = False
    entities: tuple[MessageEntity, ...] = ()
    caption_entities: tuple[MessageEntity, ...] = ()
    reply_to_message: RepliedMessage | None = None
    external_reply: ExternalReply | None = None
    # The part of the replied message the user selected (TextQuote), and where a forwarded
    # message came from (MessageOrigin); read leniently by _reply_context.
    quote: Any = None
    forward_origin: Any = None
    # The story a message replies to (a Story: its chat and id; no reply_to_message comes
    # with it), read leniently by _reply_context.
    reply_to_story: Any = None
    media_group_id: str | None = None  # the album the photo or file is part of
    # The group this supergroup was until an upgrade gave it a new id (the first message of
    # the supergroup, a service message).
    migrate_from_chat_id: ChatId | None = None

    def unsupported_content(self) -> str | None:
        """Name of the first content type this message carries that the bot does not handle
        (a shared part counts when ``shared_content_text`` could not read it), if any."""
        for name in (*UNSUPPORTED_CONTENT, *SHARED_KINDS):
            if getattr(self, name) is not None:
                return name
        return None


class CallbackMessage(msgspec.Struct, frozen=True, kw_only=True):
    """The message an inline button was on (only where it is matters here)."""

    message_id: Id
    chat: Chat
    # 0 for an InaccessibleMessage: Telegram sends a message over about two days old with its
    # chat and id alone, so a forum's message then names no topic (see topic_unknown).
    date: int | None = None
    message_thread_id: Id | None = None
    is_topic_message: bool = False

    @property
    def topic_unknown(self) -> bool:
        """Whether the message is in a forum but Telegram no longer says in which topic."""
        return self.date == 0 and self.chat.is_forum


# Telegram's own id of a forum's General topic: a message sent with it is refused ("message
# thread not found"); one sent without a topic lands in General.
GENERAL_TOPIC_ID = 1


def topic_of(message: Message | CallbackMessage) -> int:
    """The forum topic ``message`` is in (0: none, or the General topic, whether named by its
    id or not). Telegram also sets ``message_thread_id`` on a reply in a group without topics
    (the id of the reply chain's first message): that names no topic, and no session."""
    topic = message.message_thread_id if message.is_topic_message else None
    return topic if topic and topic != GENERAL_TOPIC_ID else 0


def in_reply_thread(message: Message | CallbackMessage) -> bool:
    """Whether ``message`` is in a reply thread that is no forum topic (a channel post's
    comments in its discussion group): Telegram puts a message there only when it quotes one
    of the thread's, as ``message_thread_id`` names forum topics alone."""
    return bool(message.message_thread_id) and not message.is_topic_message


_BRACKETS_RE = re.compile(r"[\[\]]")
# What shows nothing before a name's first character: format and control characters, marks
# with nothing to combine with, and the blanks Unicode files as a letter or a symbol (the
# Hangul fillers, which make Telegram's "empty" names, and the blank Braille pattern).
_SHOWS_NOTHING_CATEGORIES = frozenset({"Cc", "Cf", "Mn", "Me"})
_BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# What a name must not hold anywhere: the bidi controls (embeddings, overrides, isolates and
# the direction marks), which reorder the text after the name in the line the bot writes
# ("✅ Allowed once by <name>: Bash …"), and control characters other than whitespace.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# Telegram's placeholder ``from`` of an anonymous group admin's messages
ANONYMOUS_ADMIN_ID = 1087968824


def on_behalf_of_a_chat(msg: Message) -> bool:
    """Whether ``msg`` is one Telegram sends on behalf of a chat that answers for it: an
    anonymous admin of this group, or a post of the group's linked channel forwarded into it.
    Not a member posting as a channel of their own (``from`` is then a bot placeholder, and
    each new channel would be a new sender with a fresh allowance): that stays a bot's."""
    chat = msg.sender_chat
    if chat is None or msg.from_ is None:
        return False
    anonymous_admin = msg.from_.id == ANONYMOUS_ADMIN_ID and chat.id == msg.chat.id
    return anonymous_admin or (msg.is_automatic_forward and chat.type == "channel")


def passed_on(msg: Message) -> bool:
    """Whether ``msg`` is someone else's message a member forwarded: their words, never a
    command. Not a post of the group's linked channel, which Telegram forwards into it
    (``is_automatic_forward``): that is the channel speaking, as an anonymous admin's message
    is the group (``on_behalf_of_a_chat``)."""
    return msg.forward_origin is not None and not msg.is_automatic_forward


def sender_of(msg: Message) -> tuple[int | None, str | None]:
    """Who sent ``msg``, for the allow-list, rate limits and budgets: the person, or the chat a
    message is sent on behalf of (``on_behalf_of_a_chat``: an anonymous admin's group, the linked
    channel). Its ``from`` is then a placeholder user that every such chat in Telegram shares."""
    if msg.sender_chat is not None and on_behalf_of_a_chat(msg):
        return msg.sender_chat.id, chat_name(msg.sender_chat)
    user = msg.from_
    if user is None:
        return None, None
    return user.id, shown_name(user)


def shown_name(user: User) -> str:
    """How the chat shows who did something ("Allowed once by @ada", "Stopped by @ada"): the
    @username, which nobody else can have, else the first name (which anyone can take, "@ada"
    too: see ``plain_name``), else the id. The consumer shows it so as to notify nobody."""
    if user.username:
        return f"@{user.username}"
    return plain_name(user.first_name) or str(user.id)


def chat_name(chat: Chat) -> str:
    """How the agent is told of a chat (one that speaks for itself, one a message was forwarded
    from): its @username, else its title (anyone may choose it: see ``plain_name``)."""
    return f"@{chat.username}" if chat.username else plain_name(chat.title or "") or "a chat"


def plain_name(name: str) -> str:
    """A name its owner chose (a first name, a chat's title) as the agent and the chat are
    shown it: one line that closes no bracket, reorders nothing after it (no bidi control) and
    does not start with "@" (a username does).
    Read as its NFKC form, so a full-width "@" or "[" (U+FF20, U+FF3B) is the ASCII one, and an "@"
    behind characters that show nothing (a zero-width space, a direction mark, a Hangul filler)
    still leads."""
    kept = "".join(c for c in unicodedata.normalize("NFKC", name) if not _reorders_or_controls(c))
    shown = " ".join(_BRACKETS_RE.sub(" ", kept).split())
    while shown and (
        shown[0] in "@ " or shown[0] in _BLANKS or unicodedata.category(shown[0]) in _SHOWS_NOTHING_CATEGORIES
    ):
        shown = shown[1:]
    return shown


def _reorders_or_controls(char: str) -> bool:
    return char in _BIDI_CONTROLS or (unicodedata.category(char) == "Cc" and not char.isspace())


class CallbackQuery(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    from_: User = msgspec.field(name="from")
    data: str | None = None
    message: CallbackMessage | None = None


class MessageGenerationStopped(msgspec.Struct, frozen=True, kw_only=True):
    """The user pressed the stop control of a draft sent with ``can_stop`` (Bot API 10.3)."""

    chat: Chat
    draft_id: Id
    message_thread_id: Id | None = None


class ChatMemberUpdated(msgspec.Struct, frozen=True, kw_only=True):
    chat: Chat
    from_: User = msgspec.field(name="from")
    date: Count = 0


class Update(msgspec.Struct, frozen=True, kw_only=True):
    """One webhook body. At most one of the optional fields is set by Telegram."""

    update_id: Id
    message: Message | None = None
    edited_message: Message | None = None
    channel_post: Message | None = None
    edited_channel_post: Message | None = None
    callback_query: CallbackQuery | None = None
    my_chat_member: ChatMemberUpdated | None = None
    stopped_message_generation: MessageGenerationStopped | None = None


# What the webhook asks Telegram for (setWebhook / getUpdates `allowed_updates`): the kinds
# the producer decodes; channel posts are decoded only to be acknowledged if they ever arrive.
HANDLED_UPDATE_TYPES = (
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
    "stopped_message_generation",
)

update_decoder = msgspec.json.Decoder(Update)


def chat_of(update: Update) -> int | None:
    """The chat an update comes from (None: an update of a kind without one)."""
    message = update.message or update.edited_message
    if message is not None:
        return message.chat.id
    query = update.callback_query
    if query is not None and query.message is not None:
        return query.message.chat.id
    if update.stopped_message_generation is not None:
        return update.stopped_message_generation.chat.id
    return None
