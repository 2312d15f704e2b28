"""Delivery: the reply's chunks sent exactly once, and the one failure notice a user gets.

Each delivered chunk is recorded (``record_delivered_chunk``, retried locally: the send cannot
be undone) and skipped on a retry; with claims, each chunk is claimed before it is sent. A
chunk Telegram refuses as HTML goes again as plain text; one it counts as too long goes as two
plain halves (a message with buttons too, the buttons under the second), each recorded as it
goes, so a retry after the first sends only the second. The files the agent
sends are chunks too, after the text: each one read, sent and recorded before the next. A
turn's answer is sent as the chunk list its first delivery kept (``deliver_answer``), so an
index names the same text on every try however a retry renders it.

Given the invocation's remaining time, every send ends ``end_reserve_s`` before its end (the
timing's ``delivery_end_reserve_s``), and a part is not begun (nor another delivery's claim on
it waited for) with less than ``DELIVERY_PART_MIN_S`` of that time left, nor is any later
send of a part begun (to the supergroup a group became, a too long text's halves, a refused
photo as a document): a Telegram that holds a send fails the delivery (retryable), so the
record is retried and sends the rest, instead of Lambda killing the invocation mid-delivery
with the record's outcome unsaid.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar

import msgspec
from session_core import SessionKey, StagedAttachment, StorageError, UnsentFile, UnsentReason, get_logger
from telegram_core import (
    BotApi,
    ChatAction,
    InboundMessage,
    TelegramApiError,
    TelegramBadMarkup,
    TelegramBadRequest,
    TelegramChatMigrated,
    TelegramFileTooBig,
    TelegramMediaForbidden,
    TelegramMessageNotFound,
    TelegramMessageNotModified,
    TelegramMessageTooLong,
    sent_as_photo,
)

from ._chunk_claims import ChunkClaimer, Claims
from ._errors import ConsumerError, DeferredError, DeliveryFailedError
from ._render import html_to_plain, split_plain
from ._timing import DELIVERY_END_SHARE, DELIVERY_PART_MIN_S, DELIVERY_RESERVE_S, RemainingTimeMs
from ._wording import FAILED_NOTICE

log = get_logger(__name__)

_RECORD_WRITE_ATTEMPTS = 5
# The message_id recorded for a part that may have gone (its answer was lost).
_UNCONFIRMED = 0
# The notices a user gets once per update (DeliveryRecords.notice_sent's kinds).
NoticeKind = Literal["failed", "last_try", "model_busy"]
_Part = TypeVar("_Part")
# Reads a file the agent sends: its bytes, or None when it cannot be sent (gone from S3).
ReadFile = Callable[[StagedAttachment], bytes | None]
# The seconds a delivery has left (None: no bound but the HTTP client's own timeouts).
TimeLeft = Callable[[], float] | None


class _NotSent(Exception):
    """A part skipped for good, nothing sent (a file gone from S3, one Telegram refuses):
    its claim is given up and nothing is recorded (the user is told why: ``reason``)."""

    def __init__(self, reason: UnsentReason = "failed") -> None:
        super().__init__(reason)
        self.reason: UnsentReason = reason


class _NoTimeToBegin(Exception):
    """A send within a part (after its first) not begun: too little of the time for delivery
    is left (see DELIVERY_PART_MIN_S). Nothing of that send went; the part fails, retryable."""


class DeliveryRecords(Protocol):
    """Where delivery is remembered (``SessionRegistry``); each call raises StorageError."""

    def delivered_chunks(self, key: SessionKey, update_id: int) -> Mapping[int, int]:
        """Chunks of the answer to ``update_id`` already sent: index → Telegram message_id."""
        ...

    def record_delivered_chunk(self, key: SessionKey, update_id: int, index: int, message_id: int) -> None:
        """Remember that chunk ``index`` went out as ``message_id``."""
        ...

    def keep_answer_chunks(self, key: SessionKey, update_id: int, chunks: Sequence[str]) -> list[str]:
        """The text chunks of the answer to ``update_id`` as its first delivery kept them
        (``chunks`` kept now when none were)."""
        ...

    def halves_sent(self, key: SessionKey, update_id: int, index: int) -> Mapping[int, int]:
        """Halves of chunk ``index`` (refused as too long) already sent: number (from 1) → message_id."""
        ...

    def record_half_sent(
        self, key: SessionKey, update_id: int, index: int, half: int, message_id: int
    ) -> None:
        """Remember that half number ``half`` of chunk ``index`` went out as ``message_id``."""
        ...

    def notice_sent(self, key: SessionKey, update_id: int, kind: str) -> bool:
        """Mark notice ``kind`` as sent for ``update_id``; True the first time only."""
        ...


class Delivery:
    """Sends replies (text chunks, the files the agent sends) to the chat of an inbound
    message through ``bot``, recording each chunk in ``registry``; with ``claims`` each chunk
    is claimed before it is sent, so two live deliveries of one record never both send it
    (``claim_poll_s``: how often the other one looks again); ``sleep`` and
    ``record_retry_backoff_s`` pace a record write's retries; ``end_reserve_s``: what
    delivery leaves of an invocation's remaining time (see the module's docstring)."""

    def __init__(
        self,
        *,
        bot: BotApi,
        registry: DeliveryRecords,
        claims: Claims | None = None,
        sleep: Callable[[float], None] = time.sleep,
        record_retry_backoff_s: float = 0.2,
        claim_poll_s: float = 0.5,
        end_reserve_s: float = DELIVERY_RESERVE_S * DELIVERY_END_SHARE,
    ) -> None:
        self._bot = bot
        self._registry = registry
        self._claims = claims
        self._claim_poll_s = claim_poll_s
        self._sleep = sleep
        self._record_retry_backoff_s = record_retry_backoff_s
        self._end_reserve_s = end_reserve_s

    def deliver(
        self,
        msg: InboundMessage,
        key: SessionKey,
        chunks: list[str],
        *,
        remaining: RemainingTimeMs | None = None,
    ) -> None:
        """Send the chunks not yet delivered for this update, recording each one as it goes.

        The first chunk quotes the user's message; all go to the message's forum topic, or to
        the supergroup the group became meanwhile (Telegram names it). Raises
        DeliveryFailedError (retryable ones are deferrable) when Telegram or the delivery
        record fails after the local retries, or when the invocation's ``remaining`` time
        ran out for delivery (see the module's docstring; None: no bound of its own).
        """
        self._deliver_parts(
            msg, key, chunks, self._text_sender(key), first_index=0, quote_first=True, remaining=remaining
        )

    def deliver_answer(
        self,
        msg: InboundMessage,
        key: SessionKey,
        chunks: list[str],
        *,
        remaining: RemainingTimeMs | None = None,
    ) -> list[str]:
        """Like ``deliver``, for the text of a turn's answer: the chunks sent are those its first
        delivery kept (``chunks`` when this is it), so a retry that renders the answer otherwise
        (a note the first try had and it has not) still sends exactly the parts not yet sent,
        each index naming the text it named then. Answers the chunks delivered."""
        if chunks:  # an answer with no text has nothing whose parts could shift
            try:
                chunks = self._registry.keep_answer_chunks(key, msg.update_id, chunks)
            except StorageError as exc:
                raise DeliveryFailedError(msg.update_id, 0, exc, parts=range(len(chunks))) from exc
        self.deliver(msg, key, chunks, remaining=remaining)
        return chunks

    def deliver_files(
        self,
        msg: InboundMessage,
        key: SessionKey,
        files: Sequence[StagedAttachment],
        *,
        first_index: int,
        read: ReadFile,
        quote_first: bool = False,
        remaining: RemainingTimeMs | None = None,
    ) -> list[UnsentFile]:
        """Send the files the agent sent with this reply as chunks ``first_index``... (after
        its text), each once, like ``deliver``'s chunks: ``read`` gives one file's bytes at a
        time; ``quote_first``: the first one sent quotes the user's message (there was no text). A file
        ``read`` finds gone (None) or Telegram refuses for good (a bad request) is skipped
        with a log line, unrecorded; one whose upload went out but that Telegram did not
        confirm (its answer lost, or a 5xx) is recorded as sent, not sent again. The others
        still go. Returns the files skipped or unconfirmed, with why. Raises
        DeliveryFailedError like ``deliver`` (``remaining`` too)."""

        def send(
            target: InboundMessage, file: StagedAttachment, _index: int, reply_to: int | None, left: TimeLeft
        ) -> int:
            return self._send_file(target, file, read, reply_to=reply_to, time_left=left)

        skipped = self._deliver_parts(
            msg, key, files, send, first_index=first_index, quote_first=quote_first, remaining=remaining
        )
        return [
            # how large one Telegram refused as too large was, for the user and the agent
            UnsentFile(
                file_name=file.file_name,
                reason=reason,
                size=file.size if reason == "refused_too_large" else None,
            )
            for file, reason in skipped
        ]

    def delivered_chunks(self, msg: InboundMessage, key: SessionKey) -> Mapping[int, int]:
        """What the delivery record shows as sent of the reply to ``msg`` (index → message_id,
        0 for a file that may have gone). Raises StorageError when it cannot be read."""
        return self._registry.delivered_chunks(key, msg.update_id)

    def deliver_notice(
        self,
        msg: InboundMessage,
        key: SessionKey,
        index: int,
        text: str,
        *,
        quote: bool = False,
        remaining: RemainingTimeMs | None = None,
    ) -> None:
        """Send ``text`` (HTML) once, as chunk ``index`` of this update's reply (a place of its
        own after the answer's parts), quoting the user's message when ``quote`` (nothing of
        the answer went before it). Raises DeliveryFailedError like ``deliver`` (``remaining``
        too)."""
        self._deliver_parts(
            msg,
            key,
            [text],
            self._text_sender(key),
            first_index=index,
            quote_first=quote,
            remaining=remaining,
        )

    def _deliver_parts(
        self,
        msg: InboundMessage,
        key: SessionKey,
        parts: Sequence[_Part],
        send: Callable[[InboundMessage, _Part, int, int | None, TimeLeft], int],
        *,
        first_index: int,
        quote_first: bool,
        remaining: RemainingTimeMs | None,
    ) -> list[tuple[_Part, UnsentReason]]:
        """Send each of ``parts`` not yet delivered with ``send`` as chunk ``first_index``,
        ``first_index + 1``..., claimed first and recorded after (a part ``send`` skips for good
        with _NotSent is neither, and is returned); the first one sent quotes the user's
        message when ``quote_first``. A group that became a supergroup gets the rest there.
        Each send ends within the delivery's time (``remaining``); none begins without it."""
        index = first_index
        time_left = self._delivery_time(remaining)
        claims = self._chunk_claimer(key, msg.update_id, time_left)
        target = msg
        skipped: list[tuple[_Part, UnsentReason]] = []
        covered = range(first_index, first_index + len(parts))
        delivered: dict[int, int] | None = None  # the record as this call knows it (None: unread)
        try:
            delivered = dict(self._registry.delivered_chunks(key, msg.update_id))
            # The first part that goes quotes the message: one skipped for good (a file gone)
            # leaves the quote to the next; one delivered already (a retry) has taken it.
            quote = quote_first and not any(i in delivered for i in covered)
            for index, part in enumerate(parts, start=first_index):
                if index not in delivered:
                    _begin_or_stop(time_left)
                if index in delivered or (claims is not None and not claims.claim(index)):
                    quote = False  # sent by an earlier or the other delivery
                    if delivered.get(index) == _UNCONFIRMED:  # still named, as the first try did
                        skipped.append((part, "unconfirmed"))
                    continue
                # In a reply thread every part quotes the message, to land in the thread (not
                # in the supergroup a group became: the message has another id there).
                in_thread = msg.in_reply_thread and target is msg
                reply_to = msg.message_id if quote or in_thread else None
                try:
                    with claims.sending(index) if claims is not None else contextlib.nullcontext():
                        moved_to = None
                        try:
                            message_id = send(target, part, index, reply_to, time_left)
                        except TelegramChatMigrated as exc:
                            if exc.migrate_to_chat_id is None or target is not msg:
                                raise
                            moved_to = exc.migrate_to_chat_id
                        # Sent again outside the except block: its traceback (and a file's
                        # bytes in it) is gone before the next send reads the file again.
                        if moved_to is not None:
                            target = _moved_to(msg, moved_to)
                            _begin_or_stop(time_left)
                            message_id = send(target, part, index, None, time_left)
                except _NotSent as not_sent:
                    skipped.append((part, not_sent.reason))
                    continue
                quote = False
                # Recorded like any part sent, its claim kept till then: one that may have
                # gone (_UNCONFIRMED) is never free for the other delivery to send again.
                self._record_chunk(key, msg.update_id, index, message_id)
                delivered[index] = message_id
                if message_id == _UNCONFIRMED:
                    skipped.append((part, "unconfirmed"))
        except (TelegramApiError, StorageError) as exc:
            raise DeliveryFailedError(msg.update_id, index, exc, parts=covered, delivered=delivered) from exc
        except _NoTimeToBegin:
            raise _out_of_time(msg.update_id, index, parts=covered, delivered=delivered) from None
        return skipped

    def deliver_with_buttons(
        self,
        msg: InboundMessage,
        key: SessionKey,
        index: int,
        text: str,
        markup: Mapping[str, Any],
        *,
        quote: bool,
        buttons_once_recorded: bool = False,
        remaining: RemainingTimeMs | None = None,
    ) -> int | None:
        """Send ``text`` (HTML) with inline buttons as chunk ``index`` of this update's reply
        (quoting the user's message when ``quote``: it is the reply's first message),
        once: a retry finds it recorded and answers the message_id it went out as (None when
        another delivery holds its claim). Refused HTML or a text too long goes again as plain
        text like ``deliver``'s chunks, the buttons on its last part (whose message_id this
        answers). Unlike ``deliver`` it does not follow a group to the supergroup it became: a
        press there would come from another chat, another session. ``buttons_once_recorded``:
        the text goes without its buttons, which an edit puts under it once its message_id is
        recorded (a retry puts them there again if need be): a send Telegram took after this
        delivery gave it up (its time ran out, its answer was lost) then shows no buttons that
        nothing would ever edit, beside the question the retry sends. Raises
        DeliveryFailedError like ``deliver`` (``remaining`` too)."""
        time_left = self._delivery_time(remaining)
        claims = self._chunk_claimer(key, msg.update_id, time_left)
        try:
            delivered = self._registry.delivered_chunks(key, msg.update_id)
            if index in delivered:
                if buttons_once_recorded:  # the edit may not have landed before the retry
                    self._put_buttons(msg, delivered[index], markup, time_left)
                return delivered[index]
            _begin_or_stop(time_left)
            if claims is not None and not claims.claim(index):  # the other delivery sent it
                return self._registry.delivered_chunks(key, msg.update_id).get(index)
            with claims.sending(index) if claims is not None else contextlib.nullcontext():
                message_id = self._send_chunk(
                    msg,
                    text,
                    halves=self._halves(key, index),
                    reply_to=msg.message_id if quote or msg.in_reply_thread else None,
                    reply_markup=None if buttons_once_recorded else markup,
                    time_left=time_left,
                )
            self._record_chunk(key, msg.update_id, index, message_id)
            if buttons_once_recorded:
                self._put_buttons(msg, message_id, markup, time_left)
        except (TelegramApiError, StorageError) as exc:
            raise DeliveryFailedError(msg.update_id, index, exc) from exc
        except _NoTimeToBegin:
            raise _out_of_time(msg.update_id, index) from None
        return message_id

    def _put_buttons(
        self, msg: InboundMessage, message_id: int, markup: Mapping[str, Any], time_left: TimeLeft
    ) -> None:
        _begin_or_stop(time_left)
        try:
            self._bot.edit_message_reply_markup(msg.chat_id, message_id, markup, time_left=time_left)
        except TelegramMessageNotModified:
            pass  # there already: an earlier attempt's edit landed, its answer lost
        except TelegramMessageNotFound:
            # Deleted before a retry put them back: nothing to press there, nothing to fail
            # the reply for (a new message still declines the call).
            log.info("buttons_not_put", kind="message_not_found")

    def _delivery_time(self, remaining: RemainingTimeMs | None) -> TimeLeft:
        """The seconds left for delivery: the invocation's, less what the record's outcome
        needs after it (None: no bound of its own)."""
        if remaining is None:
            return None
        return lambda: remaining() / 1000 - self._end_reserve_s

    def _chunk_claimer(self, key: SessionKey, update_id: int, time_left: TimeLeft) -> ChunkClaimer | None:
        """This delivery attempt's chunk claims (None: claims are off), waited for only while
        a part may still be begun."""
        if self._claims is None:
            return None
        return ChunkClaimer(
            self._claims,
            key,
            update_id,
            sleep=self._sleep,
            poll_s=self._claim_poll_s,
            time_left=_time_to_begin(time_left),
        )

    def tell_user_once(
        self,
        msg: InboundMessage,
        key: SessionKey,
        user_message: str | None,
        *,
        kind: NoticeKind = "failed",
        remaining: RemainingTimeMs | None = None,
    ) -> None:
        """Tell the user ``user_message`` (None: FAILED_NOTICE) in reply to their message, once
        per update and ``kind`` however often this runs: "failed", their message failed for
        good; "last_try", its last try is starting after the one before died; "model_busy",
        it is put off because the model asked to wait. A notice that cannot be sent (or not
        within the delivery's time: ``remaining`` as for ``deliver``) is only logged."""
        try:
            if not self._registry.notice_sent(key, msg.update_id, kind):
                return
            self._bot.send_message(
                msg.chat_id,
                user_message or FAILED_NOTICE,
                html=False,
                thread_id=msg.thread_id,
                reply_to_message_id=msg.message_id,
                time_left=self._delivery_time(remaining),
            )
        except (ConsumerError, TelegramApiError, StorageError, ValueError) as exc:
            log.warning("failure_notice_not_sent", kind=kind, error=type(exc).__name__)

    def _record_chunk(self, key: SessionKey, update_id: int, index: int, message_id: int) -> None:
        self._write_record(
            lambda: self._registry.record_delivered_chunk(key, update_id, index, message_id), index
        )

    def _write_record(self, write: Callable[[], None], index: int) -> None:
        # The chunk (or half) is out and cannot be taken back: a lost record would send it
        # twice on the record's retry, so a throttled or failing write is retried here first.
        for attempt in range(1, _RECORD_WRITE_ATTEMPTS + 1):
            try:
                write()
                return
            except StorageError as exc:
                if attempt == _RECORD_WRITE_ATTEMPTS:
                    log.error("delivery_not_recorded", chunk=index, error_code=exc.error_code)
                    raise
                wait = self._record_retry_backoff_s * 2 ** (attempt - 1)
                log.warning(
                    "delivery_record_retry",
                    chunk=index,
                    attempt=attempt,
                    error_code=exc.error_code,
                    wait_s=wait,
                )
                self._sleep(wait)

    def _halves(self, key: SessionKey, index: int) -> _HalvesRecord:
        return _HalvesRecord(self._registry, key, index, self._write_record)

    def _text_sender(
        self, key: SessionKey
    ) -> Callable[[InboundMessage, str, int, int | None, TimeLeft], int]:
        def send_text(
            msg: InboundMessage, chunk: str, index: int, reply_to: int | None, left: TimeLeft
        ) -> int:
            return self._send_chunk(
                msg, chunk, halves=self._halves(key, index), reply_to=reply_to, time_left=left
            )

        return send_text

    def _send_file(
        self,
        msg: InboundMessage,
        file: StagedAttachment,
        read: ReadFile,
        *,
        reply_to: int | None,
        time_left: TimeLeft,
    ) -> int:
        content = read(file)
        if content is None:
            raise _NotSent
        # Best effort, so it ends while the file may still be begun: held by Telegram to the
        # end, it would leave the upload no time, cut short while Telegram takes it.
        self._show_uploading(msg, file, len(content), _time_to_begin(time_left))
        try:
            return self._bot.send_file(
                msg.chat_id,
                file.file_name,
                content,
                mime_type=file.mime_type,
                thread_id=msg.thread_id,
                reply_to_message_id=reply_to,
                time_left=time_left,
                before_fallback=lambda: _begin_or_stop(time_left),
            )
        except TelegramBadRequest as exc:
            if exc.chat_unreachable:
                raise
            # Telegram will not take this file, now or later: the others (and the answer,
            # sent already) matter more than failing the whole reply over it.
            log.warning("file_not_sent", kind=exc.kind, error_code=exc.error_code)
            raise _NotSent(_refused_because(exc)) from None
        except TelegramApiError as exc:
            if not exc.may_have_arrived:
                raise
            # Telegram may have taken it (its answer was lost, or was a 5xx): resending could
            # show it twice, so the user is told it may be missing instead.
            log.warning("file_unconfirmed", kind=exc.kind, error_code=exc.error_code)
            return _UNCONFIRMED
        finally:
            del content  # one file in memory at a time, even while an error travels up

    def _show_uploading(
        self, msg: InboundMessage, file: StagedAttachment, size: int, time_left: TimeLeft
    ) -> None:
        """ "sending a photo…" / "sending a file…" while it uploads; best effort: the file
        matters, not this."""
        action: ChatAction = "upload_photo" if sent_as_photo(file.mime_type, size) else "upload_document"
        try:
            self._bot.send_chat_action(msg.chat_id, action, thread_id=msg.thread_id, time_left=time_left)
        except TelegramApiError as exc:
            log.info("upload_action_not_shown", kind=exc.kind)

    def _send_chunk(
        self,
        msg: InboundMessage,
        chunk: str,
        *,
        halves: _HalvesRecord,
        reply_to: int | None,
        reply_markup: Mapping[str, Any] | None = None,
        time_left: TimeLeft = None,
    ) -> int:
        try:
            return self._bot.send_message(
                msg.chat_id,
                chunk,
                html=True,
                thread_id=msg.thread_id,
                reply_to_message_id=reply_to,
                reply_markup=reply_markup,
                time_left=time_left,
            )
        except (TelegramBadMarkup, TelegramMessageTooLong) as exc:
            rejected: TelegramApiError = exc
            log.warning("chunk_sent_as_plain_text", kind=exc.kind)
        plain = html_to_plain(chunk)
        sent: Mapping[int, int] = {}
        if isinstance(rejected, TelegramBadMarkup):
            parts = [plain]
        else:
            parts = split_plain(plain, len(plain) // 2 + 1)  # Telegram counted more than we did
            # The same text splits the same way on a retry: the halves an earlier attempt
            # sent (it failed or ran out of time after them) are not sent again.
            sent = halves.sent(msg.update_id)
        message_id = 0
        for number, part in enumerate(parts, start=1):
            if number in sent:
                message_id = sent[number]
            else:
                _begin_or_stop(time_left)
                message_id = self._bot.send_message(
                    msg.chat_id,
                    part,
                    html=False,
                    thread_id=msg.thread_id,
                    reply_to_message_id=reply_to,
                    # Buttons go under the last part, after the text they answer.
                    reply_markup=reply_markup if number == len(parts) else None,
                    time_left=time_left,
                )
                if len(parts) > 1:
                    halves.record(msg.update_id, number, message_id)
            if not msg.in_reply_thread:  # else each part quotes it, to stay in the thread
                reply_to = None
        return message_id


class _HalvesRecord:
    """Where the halves of chunk ``index`` (a text Telegram refused as too long) are recorded;
    ``write_record`` retries a write like the chunk's own."""

    def __init__(
        self,
        registry: DeliveryRecords,
        key: SessionKey,
        index: int,
        write_record: Callable[[Callable[[], None], int], None],
    ) -> None:
        self._registry = registry
        self._key = key
        self._index = index
        self._write_record = write_record

    def sent(self, update_id: int) -> Mapping[int, int]:
        return self._registry.halves_sent(self._key, update_id, self._index)

    def record(self, update_id: int, half: int, message_id: int) -> None:
        self._write_record(
            lambda: self._registry.record_half_sent(self._key, update_id, self._index, half, message_id),
            self._index,
        )


def _moved_to(msg: InboundMessage, chat_id: int) -> InboundMessage:
    """``msg`` as if it came from the supergroup its group became (a group has no topics); the
    caller quotes nothing there, where the user's message has another id, if any."""
    log.warning("chat_migrated", chat_id=msg.chat_id, migrate_to_chat_id=chat_id)
    return msgspec.structs.replace(msg, chat_id=chat_id, thread_id=0)


def _refused_because(exc: TelegramBadRequest) -> UnsentReason:
    """Why Telegram would not take a file, as the user and the agent are told: the chat's
    permissions, its size, or Telegram's own refusal (not "something went wrong while
    preparing it", the words of a file gone from the bucket)."""
    if isinstance(exc, TelegramMediaForbidden):
        return "not_allowed"
    if isinstance(exc, TelegramFileTooBig):
        return "refused_too_large"
    return "refused"


def _time_to_begin(time_left: TimeLeft) -> TimeLeft:
    """The seconds left in which a part may still be begun (see DELIVERY_PART_MIN_S)."""
    if time_left is None:
        return None
    return lambda: time_left() - DELIVERY_PART_MIN_S


def _begin_or_stop(time_left: TimeLeft) -> None:
    """Before any send of a part: _NoTimeToBegin when it may no longer be begun (begun, it
    would be cut while Telegram takes it, and the record's retry would send it again)."""
    begin_left = _time_to_begin(time_left)
    if begin_left is not None and begin_left() <= 0:
        raise _NoTimeToBegin


def _out_of_time(
    update_id: int, index: int, *, parts: range | None = None, delivered: Mapping[int, int] | None = None
) -> DeliveryFailedError:
    # Nothing of the send went: the record's retry sends the part (and the rest) in a new invocation.
    cause = DeferredError("out_of_time", "the invocation's time for delivery ran out")
    return DeliveryFailedError(update_id, index, cause, parts=parts, delivered=delivered)


def files_not_delivered(
    files: Sequence[StagedAttachment], delivered: Mapping[int, int], *, first_index: int
) -> list[UnsentFile]:
    """The files of ``files`` (chunks ``first_index``...) that ``delivered`` (the delivery
    record) does not show as sent: "failed" when none went out, "unconfirmed" when one may have."""
    return [
        UnsentFile(file_name=file.file_name, reason="failed" if index not in delivered else "unconfirmed")
        for index, file in enumerate(files, start=first_index)
        if delivered.get(index, _UNCONFIRMED) == _UNCONFIRMED
    ]
