"""The Bot API's failures, one class per kind, decided once from the answer (``check_response``
in ``_bot_api``): callers catch a type or read an attribute, never parse a description.

No error text ever holds the bot token (it is part of every request URL): network errors are
named by their class only, and Telegram's own description is scrubbed of the token.
"""

from __future__ import annotations

from typing import Literal

# rate_limited: 429; server: 5xx; network: no answer; too_long / bad_html / file_too_big /
# bad_photo: the bad requests a caller can repair; media_forbidden: the chat lets the bot
# write but not send that kind of file; forbidden: 403 (blocked, kicked);
# chat_migrated / chat_unavailable: the bad requests that say the bot cannot post there any
# more; message_not_modified: an edit to what the message shows already; unauthorized: 401 (token).
TelegramErrorKind = Literal[
    "rate_limited",
    "server",
    "network",
    "too_long",
    "bad_html",
    "file_too_big",
    "bad_photo",
    "media_forbidden",
    "forbidden",
    "chat_migrated",
    "chat_unavailable",
    "message_not_found",
    "message_not_modified",
    "unauthorized",
    "bad_request",
]


class TelegramApiError(Exception):
    """Raised when a Bot API call fails; base of every Telegram error.

    ``method``: the Bot API method; ``error_code``: Telegram's (or HTTP's) code, 0 when no
    answer came; ``description``: Telegram's text, for logs only; ``retryable``: trying again
    later may help; ``retry_after``: seconds Telegram asked to wait (None: back off as usual);
    ``chat_unreachable``: the bot may no longer post in the chat or topic it was asked to (the
    user blocked it or deleted the account, it was removed, the group was deleted, the topic
    closed, the group became a supergroup), so no retry helps and nobody there can be told;
    ``may_have_arrived``: Telegram may have done the call (sent the message or file) although
    it failed, so sending it again could show it twice.
    """

    kind: TelegramErrorKind = "bad_request"
    retryable: bool = False
    chat_unreachable: bool = False
    may_have_arrived: bool = False

    def __init__(
        self, method: str, error_code: int, description: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"Telegram {method} failed ({error_code}): {description}")
        self.method = method
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    @property
    def token_refused(self) -> bool:
        """Telegram refused the bot token itself: 401, or 404 (the URL names no bot it knows, as
        for a revoked or mistyped token); nothing in the call was done."""
        return self.error_code in (401, 404)


class TelegramRetryAfter(TelegramApiError):
    """Raised on 429 Too Many Requests; ``retry_after`` says how long to wait."""

    kind: TelegramErrorKind = "rate_limited"
    retryable = True
    retry_after: float


class TelegramServerError(TelegramApiError):
    """Raised on a 5xx answer (or a non-JSON one): Telegram's side failed, a retry may help.
    It may come after the call was done (the Bot API server passes Telegram's internal errors
    on as 500; a proxy's 502/504 may come for a call it had passed on), and the Bot API
    documents no 5xx as "not done": ``may_have_arrived``."""

    kind: TelegramErrorKind = "server"
    retryable = True
    may_have_arrived = True


class TelegramNetworkError(TelegramApiError):
    """Raised when the Bot API cannot be reached or the connection breaks (``error_code`` 0);
    ``may_have_arrived``: the whole request went out before the break, so Telegram may have
    done it (sent the message or file) and only its answer was lost."""

    kind: TelegramErrorKind = "network"
    retryable = True

    def __init__(
        self, method: str, error_code: int, description: str, *, may_have_arrived: bool = True
    ) -> None:
        super().__init__(method, error_code, description)
        self.may_have_arrived = may_have_arrived


class TelegramBadRequest(TelegramApiError):
    """Raised on a 400 (or any other 4xx not classed below): the request itself is wrong."""

    kind: TelegramErrorKind = "bad_request"


class TelegramMessageTooLong(TelegramBadRequest):
    """Raised when Telegram counts a message above 4096 characters after entity parsing."""

    kind: TelegramErrorKind = "too_long"


class TelegramBadMarkup(TelegramBadRequest):
    """Raised when Telegram cannot parse a message's HTML entities."""

    kind: TelegramErrorKind = "bad_html"


class TelegramFileTooBig(TelegramBadRequest):
    """Raised when a file is above what the Bot API gives or takes: its 20 MB download limit
    (``getFile`` or download), or an upload Telegram refused as too large (413)."""

    kind: TelegramErrorKind = "file_too_big"


class TelegramBadPhoto(TelegramBadRequest):
    """Raised when Telegram cannot show an uploaded image as a photo (its dimensions, its
    format, its processing); the same file still goes as a document."""

    kind: TelegramErrorKind = "bad_photo"


class TelegramMediaForbidden(TelegramBadRequest):
    """Raised when the chat's permissions keep the bot from sending this kind of file (an admin
    turned off photos or files for members) while it may still write there: not the chat
    shutting the bot out."""

    kind: TelegramErrorKind = "media_forbidden"


class TelegramChatMigrated(TelegramBadRequest):
    """Raised when the group was upgraded to a supergroup (a new chat id): ``migrate_to_chat_id``
    is the supergroup's id, None when Telegram did not say."""

    kind: TelegramErrorKind = "chat_migrated"
    chat_unreachable = True

    def __init__(
        self, method: str, error_code: int, description: str, *, migrate_to_chat_id: int | None = None
    ) -> None:
        super().__init__(method, error_code, description)
        self.migrate_to_chat_id = migrate_to_chat_id


class TelegramChatUnavailable(TelegramBadRequest):
    """Raised on a 400 that says the bot may not post where it was asked: the forum topic is
    closed or deleted, the bot lost the right to send messages in the chat, or the chat is gone
    (a deleted group or account: "chat not found")."""

    kind: TelegramErrorKind = "chat_unavailable"
    chat_unreachable = True


class TelegramMessageNotFound(TelegramBadRequest):
    """Raised when the message to edit or delete is not there (someone deleted it)."""

    kind: TelegramErrorKind = "message_not_found"


class TelegramMessageNotModified(TelegramBadRequest):
    """Raised when an edit would change nothing: the message shows that text and those buttons
    already (for a retried edit: its first attempt landed, its answer lost)."""

    kind: TelegramErrorKind = "message_not_modified"


class TelegramForbidden(TelegramApiError):
    """Raised on 403: the bot was blocked, kicked, or may not write to the chat."""

    kind: TelegramErrorKind = "forbidden"
    chat_unreachable = True


class TelegramUnauthorized(TelegramApiError):
    """Raised on 401: the bot token is wrong or revoked."""

    kind: TelegramErrorKind = "unauthorized"
