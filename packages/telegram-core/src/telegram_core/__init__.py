"""What the Telegram side (producer and consumer) shares; the runtime never imports it."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._access import on_allow_list, parse_id_list
    from ._approval_control import (
        APPROVAL_CALLBACK_PREFIX,
        REVOKE_CALLBACK_PREFIX,
        ApprovalButton,
        InvalidButton,
        RevokeButton,
        approval_button_of,
        approval_callback_data,
        revoke_button_of,
        revoke_callback_data,
    )
    from ._attachment_names import attachment_words
    from ._bot_api import (
        MAX_DOWNLOAD_BYTES,
        MAX_PHOTO_BYTES,
        MAX_UPLOAD_BYTES,
        PHOTO_MIME_TYPES,
        TELEGRAM_API_BASE,
        BotApi,
        ChatAction,
        check_response,
        error_for,
        sent_as_photo,
    )
    from ._chat_settings import CHAT_SETTINGS_SK, ChatSettings
    from ._commands import BOT_COMMAND_MARK, COMMANDS, for_another_bot, marked_command, parse_command
    from ._delivery_claims import ClaimVerdict, DeliveryClaims
    from ._delivery_log import DeliveryLog
    from ._envelope import (
        ENVELOPE_VERSION,
        RECORDING_WORDS,
        Attachment,
        InboundMessage,
        Medium,
        QueueEnvelope,
        decode_envelope,
        decode_inbound_message,
        encode_envelope,
    )
    from ._errors import (
        TelegramApiError,
        TelegramBadMarkup,
        TelegramBadPhoto,
        TelegramBadRequest,
        TelegramChatMigrated,
        TelegramChatUnavailable,
        TelegramErrorKind,
        TelegramFileTooBig,
        TelegramForbidden,
        TelegramMediaForbidden,
        TelegramMessageNotFound,
        TelegramMessageNotModified,
        TelegramMessageTooLong,
        TelegramNetworkError,
        TelegramRetryAfter,
        TelegramServerError,
        TelegramUnauthorized,
    )
    from ._group_reply_mode import GroupReplyMode, group_reply_mode
    from ._moved_chats import MovedChats
    from ._places import nothing_running, this_place
    from ._rate_limit import RateLimiter, RateVerdict
    from ._stop_control import STOP_CALLBACK_PREFIX, stop_callback_data, stopped_turn_of
    from ._unread_files import content_word, unread_files_note, unsupported_notice
    from ._update_dedup import EditClaim, GroupMessage, UpdateDedup
else:  # imported on first use (a producer never loads the Bot API client): see session_core's lazy_exports
    from session_core import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, __file__)
    del TYPE_CHECKING, lazy_exports  # not exports

__version__ = "0.1.0"

__all__ = [
    "APPROVAL_CALLBACK_PREFIX",
    "BOT_COMMAND_MARK",
    "CHAT_SETTINGS_SK",
    "COMMANDS",
    "ENVELOPE_VERSION",
    "MAX_DOWNLOAD_BYTES",
    "MAX_PHOTO_BYTES",
    "MAX_UPLOAD_BYTES",
    "PHOTO_MIME_TYPES",
    "RECORDING_WORDS",
    "REVOKE_CALLBACK_PREFIX",
    "STOP_CALLBACK_PREFIX",
    "TELEGRAM_API_BASE",
    "ApprovalButton",
    "Attachment",
    "BotApi",
    "ChatAction",
    "ChatSettings",
    "ClaimVerdict",
    "DeliveryClaims",
    "DeliveryLog",
    "EditClaim",
    "GroupMessage",
    "GroupReplyMode",
    "InboundMessage",
    "InvalidButton",
    "Medium",
    "MovedChats",
    "QueueEnvelope",
    "RateLimiter",
    "RateVerdict",
    "RevokeButton",
    "TelegramApiError",
    "TelegramBadMarkup",
    "TelegramBadPhoto",
    "TelegramBadRequest",
    "TelegramChatMigrated",
    "TelegramChatUnavailable",
    "TelegramErrorKind",
    "TelegramFileTooBig",
    "TelegramForbidden",
    "TelegramMediaForbidden",
    "TelegramMessageNotFound",
    "TelegramMessageNotModified",
    "TelegramMessageTooLong",
    "TelegramNetworkError",
    "TelegramRetryAfter",
    "TelegramServerError",
    "TelegramUnauthorized",
    "UpdateDedup",
    "approval_button_of",
    "approval_callback_data",
    "attachment_words",
    "check_response",
    "content_word",
    "decode_envelope",
    "decode_inbound_message",
    "encode_envelope",
    "error_for",
    "for_another_bot",
    "group_reply_mode",
    "marked_command",
    "nothing_running",
    "on_allow_list",
    "parse_command",
    "parse_id_list",
    "revoke_button_of",
    "revoke_callback_data",
    "sent_as_photo",
    "stop_callback_data",
    "stopped_turn_of",
    "this_place",
    "unread_files_note",
    "unsupported_notice",
]
