"""The comment typed in Telegram's forward dialog, answered with the messages forwarded with it.

Telegram delivers the comment first, as an ordinary text message, then each forwarded message
as a message of its own: same sender, dated the same second (or the next, when the two sends
straddle one), with later message ids. The producer keeps those forwards as an album
(session_core.AlbumParts, ``forward_album_id``) and queues its first part behind the comment
in the chat's queue. So the comment's turn waits a moment for them, takes the album for
itself and answers both; the album's own record then answers nothing. A retried comment
whose earlier try went on to its turn takes only what that try took (the turn may have run:
it stays the same); one whose earlier try stopped before (its look failed, its consumer died
while it waited) looks as a first try does.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from session_core import CommentAlbums, MessageDecodeError, SessionKey, forward_album_id, get_logger
from telegram_core import InboundMessage, decode_inbound_message

from ._album import joined_text

log = get_logger(__name__)

# How long after the comment reached the producer its forwards may still be coming. Telegram
# sends a chat's next update once the webhook answered the one before (the producer answers in
# tens of milliseconds), or beside it on another connection, so the first forward is kept well
# within this. Every plain text waits it (less its time in the queue), which is why it is short:
# at 1 s a conversation's every answer came 0.6 s later and the stack's overhead per turn was
# twice its 0.5 s target. A forward whose producer had a cold start (~1.3 s) missed 1 s too.
COMMENT_WAIT_S = 0.15
# The seconds after the comment's in which its forwards may be dated.
_FORWARD_SECONDS = (0, 1)


def with_its_forwards(
    msg: InboundMessage,
    key: SessionKey,
    albums: CommentAlbums | None,
    *,
    enqueued_at: float,
    first_try: bool,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> tuple[InboundMessage, tuple[InboundMessage, ...]] | None:
    """``msg`` (of session ``key``) with the messages its sender forwarded right after it
    when it is such a comment (its text first, then theirs with where each came from), and
    the parts in order; None when it is no such comment. ``enqueued_at``: when the producer
    queued it; ``first_try``: no attempt of this record ran before, so none went on to its
    turn (a retry asks: one BatchGetItem)."""
    if not msg.may_be_comment or msg.album_id is not None or albums is None:
        return None
    wait_s = min(enqueued_at + COMMENT_WAIT_S - clock(), COMMENT_WAIT_S)  # a skewed clock: no more
    if wait_s > 0:
        sleep(wait_s)
    # Once a try went on to the turn, only the forwards it took (if any) are the comment's.
    looks_afresh = first_try or not albums.turn_went_ahead(key, msg.update_id)

    def follows_it(parts: list[str]) -> bool:
        return looks_afresh and _forwarded_after(msg, parts)

    album_ids = [forward_album_id(msg.user_id, msg.sent_at + later) for later in _FORWARD_SECONDS]
    raw = albums.gather_for_comment(
        msg.session_key, album_ids, comment=msg.update_id, accepts=follows_it, sleep=sleep
    )
    if not raw:
        return None
    forwards = tuple(decode_inbound_message(part) for part in raw)
    parts = (msg, *forwards)
    log.info("comment_with_forwards", forwards=len(forwards))
    together = msgspec.structs.replace(
        msg, text=joined_text(parts), attachments=tuple(a for part in parts for a in part.attachments)
    )
    return together, parts


def _forwarded_after(comment: InboundMessage, parts: list[str]) -> bool:
    """Whether ``parts`` are messages the comment's sender forwarded after it, in its chat."""
    try:
        decoded = [decode_inbound_message(part) for part in parts]
    except MessageDecodeError:
        return False  # written by the producer from a decoded message: never seen
    return bool(decoded) and all(
        part.forwarded
        and part.session_key == comment.session_key
        and part.user_id == comment.user_id
        and part.message_id > comment.message_id
        for part in decoded
    )
