"""Errors of the consumer; ``retryable`` decides between retrying the SQS record and
acknowledging it with a message to the user."""

from __future__ import annotations

from collections.abc import Mapping

from session_core import TurnResult


class ConsumerError(Exception):
    """Base of every error the consumer raises on purpose.

    ``retryable``: trying the record again may help. ``deferrable``: the record must not be
    dead-lettered for this error (nothing failed for good, e.g. the answer is recorded and
    only sending is left); on the queue's last receive it is re-enqueued instead.
    ``retry_after``: seconds before a retry makes sense (None: the usual backoff).
    ``chat_unreachable``: the bot may no longer post in the chat (blocked, removed, topic
    closed): the record is acknowledged and logged, neither retried nor dead-lettered.
    ``token_refused``: Telegram refused the bot token (the operator is told which parameter).
    """

    retryable: bool = False
    deferrable: bool = False
    retry_after: float | None = None
    chat_unreachable: bool = False
    token_refused: bool = False
    error_kind: str = "internal"


class RuntimeInvokeError(ConsumerError):
    """Raised when invoking the agent runtime fails: the Lambda call errors, the function
    errors or times out, or its answer cannot be decoded. ``may_have_run`` is False when
    Lambda refused the call before the function ran (throttled, say): nothing was spent."""

    def __init__(
        self, function_name: str, detail: str, *, retryable: bool = True, may_have_run: bool = True
    ) -> None:
        super().__init__(f"runtime {function_name}: {detail}")
        self.function_name = function_name
        self.detail = detail
        self.retryable = retryable
        self.may_have_run = may_have_run
        self.error_kind = "runtime_invoke"


class TurnFailedError(ConsumerError):
    """Raised when the runtime answered with an error result (``TurnResult.error_kind``)."""

    def __init__(
        self,
        error_kind: str,
        user_message: str | None,
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"turn failed: {error_kind}")
        self.error_kind = error_kind
        self.user_message = user_message
        self.retryable = retryable
        # The model asked to wait this long (TurnResult.retry_after_s).
        self.retry_after = retry_after


class AttachmentNotFetchedError(ConsumerError):
    """A photo or document the bot could not get from Telegram (``file_name``: as told to
    the user); one of the two below."""

    file_name: str


class AttachmentTooLargeError(AttachmentNotFetchedError):
    """Raised when a photo or document is above the Bot API's 20 MB download limit."""

    error_kind = "attachment_too_large"

    def __init__(self, file_name: str, size: int | None) -> None:
        super().__init__(f"attachment {file_name!r} is too large ({size} bytes)")
        self.file_name = file_name
        self.size = size


class AttachmentUnavailableError(AttachmentNotFetchedError):
    """Raised when Telegram refuses for good to give a photo or document (``getFile`` or its
    download answers a bad request: "wrong file_id or the file is temporarily unavailable");
    the user sending it again gives it a new id."""

    error_kind = "attachment_unavailable"

    def __init__(self, file_name: str) -> None:
        super().__init__(f"attachment {file_name!r} is unavailable")
        self.file_name = file_name


class DeliveryFailedError(ConsumerError):
    """Raised when a reply could not be sent or its delivery could not be recorded, after
    the local retries; ``cause`` is the TelegramApiError or StorageError. What was to be
    sent is settled (a recorded turn is replayed, not re-run), so a retryable one is
    ``deferrable``: it is retried, never dead-lettered while Telegram may still take it; one
    Telegram refused because the chat is gone for the bot is ``chat_unreachable``. ``answer``:
    the turn's answer being delivered, when it was one (set on the way up), so that a failure
    for good still tells its agent which of its files never went. ``parts``: the chunk indices
    the failing call was delivering (``chunk_index`` among them); ``delivered``: what the
    delivery record held as that call last knew it (index → message_id: what it read and
    what it recorded since), None when it could not read it."""

    error_kind = "delivery"
    answer: TurnResult | None = None

    def __init__(
        self,
        update_id: int,
        chunk_index: int,
        cause: Exception,
        *,
        parts: range | None = None,
        delivered: Mapping[int, int] | None = None,
    ) -> None:
        super().__init__(f"delivery of update {update_id} chunk {chunk_index} failed: {cause}")
        self.update_id = update_id
        self.chunk_index = chunk_index
        self.parts = range(chunk_index, chunk_index + 1) if parts is None else parts
        self.delivered = delivered
        self.cause = cause
        self.retryable = bool(getattr(cause, "retryable", False))
        self.deferrable = self.retryable
        self.retry_after = getattr(cause, "retry_after", None)
        self.chat_unreachable = bool(getattr(cause, "chat_unreachable", False))
        self.token_refused = bool(getattr(cause, "token_refused", False))


class ChatShutOutError(ConsumerError):
    """Raised when Telegram refused a turn's "typing…" because the bot may no longer post in
    the chat (``cause``: that refusal): before the turn runs (nothing ran, nothing was spent),
    or in place of the answer of a turn stopped for it (its cost was counted)."""

    error_kind = "chat_unreachable"
    chat_unreachable = True

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"the bot may no longer post in the chat: {cause}")
        self.cause = cause


class DeferredError(ConsumerError):
    """Raised when a record is put off without anything having failed: ``reason`` is
    ``busy`` (another live turn held the session for all the time this invocation could
    wait) or ``out_of_time`` (too little of the invocation left to run a turn). Retryable
    and never dead-lettered (re-enqueued on the last receive)."""

    retryable = True
    deferrable = True

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"deferred ({reason}): {detail}")
        self.reason = reason
        self.detail = detail
        self.error_kind = reason
