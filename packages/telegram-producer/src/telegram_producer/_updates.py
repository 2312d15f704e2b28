"""The parts of a Telegram ``Update`` the producer reads, as lenient msgspec Structs.

Unknown fields are ignored (Telegram adds fields often); a field of the wrong type is a
decode error, which the webhook answers with 400.
"""

from __future__ import annotations

from typing import Any

import msgspec


class User(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    is_bot: bool = False
    first_name: str = ""
    username: str | None = None


class Chat(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    type: str = "private"
    title: str | None = None
    username: str | None = None
    is_forum: bool = False


class PhotoSize(msgspec.Struct, frozen=True, kw_only=True):
    file_id: str
    file_unique_id: str = ""
    width: int = 0
    height: int = 0
    file_size: int | None = None


class Document(msgspec.Struct, frozen=True, kw_only=True):
    file_id: str
    file_unique_id: str = ""
    file_name: str | None = None
    mime_type: str | None = None
    file_size: int | None = None


class MessageEntity(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    offset: int
    length: int


class RepliedMessage(msgspec.Struct, frozen=True, kw_only=True):
    """The message a message replies to (only who sent it matters here)."""

    message_id: int
    from_: User | None = msgspec.field(default=None, name="from")


# Content Telegram can carry that the bot does not handle yet; the consumer answers
# "not supported yet" naming it. Service messages (joins, pins, ...) are not in this
# list: they are ignored silently.
UNSUPPORTED_CONTENT = (
    "voice",
    "audio",
    "video",
    "video_note",
    "animation",
    "sticker",
    "location",
    "venue",
    "contact",
    "poll",
    "dice",
    "game",
    "story",
)


class Message(msgspec.Struct, frozen=True, kw_only=True):
    message_id: int
    date: int = 0
    chat: Chat
    from_: User | None = msgspec.field(default=None, name="from")
    message_thread_id: int | None = None
    is_topic_message: bool = False
    text: str | None = None
    caption: str | None = None
    entities: tuple[MessageEntity, ...] = ()
    caption_entities: tuple[MessageEntity, ...] = ()
    photo: tuple[PhotoSize, ...] = ()
    document: Document | None = None
    reply_to_message: RepliedMessage | None = None
    # Present only to recognise unsupported content; their contents are never read.
    voice: Any = None
    audio: Any = None
    video: Any = None
    video_note: Any = None
    animation: Any = None
    sticker: Any = None
    location: Any = None
    venue: Any = None
    contact: Any = None
    poll: Any = None
    dice: Any = None
    game: Any = None
    story: Any = None

    def unsupported_content(self) -> str | None:
        """Name of the first unsupported content type this message carries, if any."""
        for name in UNSUPPORTED_CONTENT:
            if getattr(self, name) is not None:
                return name
        return None


class CallbackQuery(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    from_: User = msgspec.field(name="from")
    data: str | None = None


class ChatMemberUpdated(msgspec.Struct, frozen=True, kw_only=True):
    chat: Chat
    from_: User = msgspec.field(name="from")
    date: int = 0


class Update(msgspec.Struct, frozen=True, kw_only=True):
    """One webhook body. At most one of the optional fields is set by Telegram."""

    update_id: int
    message: Message | None = None
    edited_message: Message | None = None
    channel_post: Message | None = None
    edited_channel_post: Message | None = None
    callback_query: CallbackQuery | None = None
    my_chat_member: ChatMemberUpdated | None = None


# What the webhook asks Telegram for (setWebhook / getUpdates `allowed_updates`): the kinds
# the producer decodes; channel posts are decoded only to be acknowledged if they ever arrive.
HANDLED_UPDATE_TYPES = ("message", "edited_message", "callback_query", "my_chat_member")

update_decoder = msgspec.json.Decoder(Update)
