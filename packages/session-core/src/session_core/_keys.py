"""The session key: which chat (and forum topic) of which tenant a conversation belongs to."""

from __future__ import annotations

import re

import msgspec

from ._errors import InvalidSessionKeyError

# Lowercase letters, digits and inner dashes only: safe in S3 keys, DynamoDB keys,
# SQS MessageGroupId and file names, and impossible to read as a path step.
_TENANT_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")
_CHAT_ID_LIMIT = 2**63  # Telegram chat ids are signed 64-bit
_THREAD_ID_LIMIT = 2**31
SESSIONS_PREFIX = "sessions/"


class SessionKey(msgspec.Struct, frozen=True, kw_only=True):
    """Tenant + chat id + forum topic id; ``thread_id`` 0 means "no topic".

    ``canonical`` (``tenant/chat_id/thread_id``) is the SQS MessageGroupId, the
    DynamoDB partition of the session and, under ``sessions/``, its S3 prefix.
    """

    tenant: str
    chat_id: int
    thread_id: int = 0

    def __post_init__(self) -> None:
        validate_tenant(self.tenant)
        if isinstance(self.chat_id, bool) or not isinstance(self.chat_id, int):
            raise InvalidSessionKeyError("chat_id", self.chat_id, "must be an integer")
        if self.chat_id == 0 or not -_CHAT_ID_LIMIT <= self.chat_id < _CHAT_ID_LIMIT:
            raise InvalidSessionKeyError("chat_id", self.chat_id, "must be a non-zero 64-bit integer")
        if isinstance(self.thread_id, bool) or not isinstance(self.thread_id, int):
            raise InvalidSessionKeyError("thread_id", self.thread_id, "must be an integer")
        if not 0 <= self.thread_id < _THREAD_ID_LIMIT:
            raise InvalidSessionKeyError("thread_id", self.thread_id, "must be in 0..2^31-1")

    @property
    def canonical(self) -> str:
        """The one string form: ``tenant/chat_id/thread_id``."""
        return f"{self.tenant}/{self.chat_id}/{self.thread_id}"

    @property
    def s3_prefix(self) -> str:
        """Prefix under which every object of this session lives (ends with '/')."""
        return f"{SESSIONS_PREFIX}{self.canonical}/"

    @classmethod
    def parse(cls, canonical: str) -> SessionKey:
        """Parse and validate a canonical string; the result's ``canonical`` equals the input."""
        if not isinstance(canonical, str):
            raise InvalidSessionKeyError("canonical", canonical, "must be a string")
        parts = canonical.split("/")
        if len(parts) != 3:
            raise InvalidSessionKeyError("canonical", canonical, "expected tenant/chat_id/thread_id")
        tenant, chat, thread = parts
        key = cls(
            tenant=tenant, chat_id=_parse_int("chat_id", chat), thread_id=_parse_int("thread_id", thread)
        )
        if key.canonical != canonical:  # rejects '+1', '007', '-0' and other aliases
            raise InvalidSessionKeyError("canonical", canonical, "not in canonical form")
        return key

    def __str__(self) -> str:
        return self.canonical


def validate_tenant(tenant: object) -> str:
    """Return ``tenant`` if it is a valid tenant name, else raise InvalidSessionKeyError."""
    if not isinstance(tenant, str) or not _TENANT_RE.fullmatch(tenant):
        raise InvalidSessionKeyError("tenant", tenant, "use 1-32 characters of a-z, 0-9 and inner '-'")
    return tenant


def _parse_int(field: str, text: str) -> int:
    if not re.fullmatch(r"-?[0-9]{1,19}", text):
        raise InvalidSessionKeyError(field, text, "must be a decimal integer")
    return int(text)


def outbox_prefix(key: SessionKey) -> str:
    """Where the files the agent sends lie: under the session's prefix, which the bucket's
    lifecycle expires with the session (ends with '/')."""
    return f"{key.s3_prefix}outbox/"


def outbox_key(key: SessionKey, turn_id: int, file_name: str) -> str:
    """S3 key of a file the agent sends in turn ``turn_id`` (``file_name`` already safe)."""
    return f"{outbox_prefix(key)}{turn_id}/{file_name}"
