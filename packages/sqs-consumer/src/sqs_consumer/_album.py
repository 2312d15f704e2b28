"""Messages answered together as one (a photo album, messages forwarded together, a long text
the app split): the part the producer queued, with the other parts it kept
(session_core.AlbumParts, PasteParts), their files together and their texts joined."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import msgspec
from session_core import AlbumParts, MessageDecodeError, PasteParts, get_logger, is_paste
from telegram_core import InboundMessage, decode_inbound_message

log = get_logger(__name__)


class Gathered(NamedTuple):
    """The message a turn answers, its parts, and the Telegram ids of every message it answers
    (a paste's too, whose parts become one message again): an edit of any into /stop is the
    turn's."""

    message: InboundMessage
    parts: tuple[InboundMessage, ...]
    message_ids: tuple[int, ...]


def with_its_album(
    msg: InboundMessage,
    albums: AlbumParts | None,
    pastes: PasteParts | None,
    sleep: Callable[[float], None],
) -> Gathered | None:
    """``msg`` with every part of its album (waiting until Telegram has sent them all), and
    the parts in the order sent (each keeps what it refers to: a forward its origin); ``msg``
    alone when it is no album's part or the album was never recorded. A paste is one message
    the app split: its parts become that message again (``parts``: just it). None when the
    turn of the comment typed before them answered the album (``_forward_comment``)."""
    alone = Gathered(msg, (msg,), (msg.message_id,))
    if msg.album_id is None:
        return alone
    if is_paste(msg.album_id):
        if pastes is None or msg.user_id is None:
            return alone
        raw = pastes.gather(msg.session_key, msg.user_id, starter=msg.update_id, sleep=sleep)
    elif albums is not None:
        album = albums.gather(msg.session_key, msg.album_id, sleep=sleep)
        if album.comment is not None:
            log.info("album_answered_with_comment", comment=album.comment)
            return None
        raw = album.parts
    else:
        return alone
    parts = {msg.update_id: msg}
    for encoded in raw:
        try:
            part = decode_inbound_message(encoded)
        except MessageDecodeError:
            continue  # written by the producer from a decoded message: never seen
        if part.session_key == msg.session_key:
            parts.setdefault(part.update_id, part)
    ordered = tuple(parts[update_id] for update_id in sorted(parts))
    log.info("album_gathered", parts=len(ordered), paste=is_paste(msg.album_id))
    message_ids = tuple(part.message_id for part in ordered)
    if is_paste(msg.album_id):
        whole = msgspec.structs.replace(msg, text=pasted_text(ordered))
        return Gathered(whole, (whole,), message_ids)
    attachments = tuple(a for part in ordered for a in part.attachments)
    together = msgspec.structs.replace(
        msg,
        text=joined_text(ordered),
        attachments=attachments,
        # A part the bot does not read (a video) starts no "not supported" answer of its own
        # when the album has photos, or the forward texts, to answer.
        kind="message" if msg.kind == "unsupported" and _some_read(ordered) else msg.kind,
    )
    return Gathered(together, ordered, message_ids)


def first_sent_at(msg: InboundMessage, parts: tuple[InboundMessage, ...]) -> int | None:
    """When the message the turn answers was sent: its first part's time (an album's, the
    comment's before its forwards), for the runtime to tell the agent when it is answered late.
    A paste's parts went out within a second of each other: its queued part's time stands for
    them. An edit that addressed the bot is timed from the edit. None when the producer did
    not say (one before ``sent_at``)."""
    return min((part.addressed_at or part.sent_at for part in (msg, *parts) if part.sent_at), default=None)


def _some_read(parts: tuple[InboundMessage, ...]) -> bool:
    """Whether parts answered together hold something the bot reads: a file, or a part that
    is a message (a forwarded text; not a video's caption, which alone asks about the video)."""
    return any(part.kind == "message" or part.attachments for part in parts)


def joined_text(parts: tuple[InboundMessage, ...]) -> str:
    """The text of messages answered together: each part's that has one, in order."""
    return "\n\n".join(part.text for part in parts if part.text.strip())


def pasted_text(parts: tuple[InboundMessage, ...]) -> str:
    """The text the app split into ``parts``, whole again. The app cuts at a line break (or a
    space, in a line longer than the limit) and Telegram trims each message, so that break is
    lost: a line break puts back the usual one, and still parts words where it was a space
    (nothing would glue them into one)."""
    return "\n".join(part.text for part in parts)
