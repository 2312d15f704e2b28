"""A chat's own choices (today: /usage, the answer footer), kept apart from the turn-written
meta item: ``session|<key>`` / ``settings``."""

from __future__ import annotations

from session_core import DynamoTable, SessionKey, item_int, number, session_item_pk

CHAT_SETTINGS_SK = "settings"  # its sort key: a chat that moves takes it along


class ChatSettings:
    """Per-chat (or forum topic) settings in the registry's table."""

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def usage_footer(self, key: SessionKey) -> bool:
        """Whether answers in this chat (or topic) end with their tokens and cost (/usage).
        Each answer reads it, so an "on" is kept as long as the chat's history is."""
        pk = session_item_pk(key)
        item = self._table.get("usage_footer", pk, CHAT_SETTINGS_SK)
        if item is None or self._table.expired(item) or not item.get("usage_footer", {}).get("BOOL"):
            return False
        self._table.keep_alive("usage_footer", pk, CHAT_SETTINGS_SK, item_int(item, "expires_at"))
        return True

    def set_usage_footer(self, key: SessionKey, on: bool) -> None:
        """Turn the usage footer of this chat (or topic) on or off; the choice expires
        ``retention_days`` after the chat's last answer (then it is off again)."""
        now = self._table.clock()
        self._table.update(
            "set_usage_footer",
            session_item_pk(key),
            CHAT_SETTINGS_SK,
            UpdateExpression="SET usage_footer = :on, updated_at = :now, expires_at = :ttl",
            ExpressionAttributeValues={
                ":on": {"BOOL": on},
                ":now": number(now),
                ":ttl": number(self._table.expires_at(now)),
            },
        )
