"""Messages answered together as one (a photo album, messages forwarded together): the part
the producer queued, with the other parts it kept (session_core.AlbumParts), their files
together and their texts joined."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from session_core import AlbumParts, get_logger
from telegram_core import InboundMessage

log = get_logger(__name__)

_part_decoder = msgspec.json.Decoder(InboundMessage)


def with_its_album(
    msg: InboundMessage, albums: AlbumParts, sleep: Callable[[float], None]
) -> tuple[InboundMessage, tuple[InboundMessage, ...]]:
    """``msg`` with every part of its album (waiting until Telegram has sent them all), and
    the parts in the order sent (each keeps what it refers to: a forward its origin); ``msg``
    alone when it is no album's part or the album was never recorded."""
    if msg.album_id is None:
        return msg, (msg,)
    parts = {msg.update_id: msg}
    for raw in albums.gather(msg.session_key, msg.album_id, sleep=sleep):
        try:
            part = _part_decoder.decode(raw)
        except msgspec.DecodeError:
            continue  # written by the producer from a decoded message: never seen
        if part.session_key == msg.session_key:
            parts.setdefault(part.update_id, part)
    ordered = tuple(parts[update_id] for update_id in sorted(parts))
    log.info("album_gathered", parts=len(ordered))
    together = msgspec.structs.replace(
        msg,
        text=joined_text(ordered),
        attachments=tuple(a for part in ordered for a in part.attachments),
    )
    return together, ordered


def joined_text(parts: tuple[InboundMessage, ...]) -> str:
    """The text of messages answered together: each part's that has one, in order."""
    return "\n\n".join(part.text for part in parts if part.text.strip())
