"""Who may talk to the bot: ALLOWED_USER_IDS and ALLOWED_CHAT_IDS. The producer drops every
other update; the consumer asks again before a queued message's turn, as the operator may have
taken its sender off the lists while it waited (README "Telegram", Access)."""

from __future__ import annotations

from session_core import ConfigError


def parse_id_list(setting: str, raw: str) -> frozenset[int]:
    """Parse a comma list of Telegram ids ("" = no restriction); ConfigError names ``setting``."""
    ids: set[int] = set()
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            # int() takes "1_000" and "١٢": only plain digits are an id; and "123 456" is two
            # ids with a comma missing, never the id 123456.
            if not part.lstrip("-").isascii() or not part.lstrip("-").isdigit():
                raise ValueError(part)
            ids.add(int(part))
        except ValueError as exc:
            raise ConfigError(setting, f"{part!r} is not an integer id (separate ids with commas)") from exc
    return frozenset(ids)


def on_allow_list(
    *, user_id: int | None, chat_id: int, allowed_user_ids: frozenset[int], allowed_chat_ids: frozenset[int]
) -> bool:
    """Whether a message of ``user_id`` (its sender; the chat it speaks for when an anonymous
    admin or a linked channel sent it) in ``chat_id`` may be answered: both lists empty mean
    everyone; otherwise an allowed user (anywhere) or an allowed chat (anyone in it) passes."""
    if not allowed_user_ids and not allowed_chat_ids:
        return True
    return (user_id is not None and user_id in allowed_user_ids) or chat_id in allowed_chat_ids
