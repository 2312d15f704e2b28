"""A chat's own choices (today: /usage, the answer footer), kept apart from the turn-written
meta item: ``session|<key>`` / ``settings``."""

from __future__ import annotations

from session_core import DynamoTable, SessionKey, number, session_item_pk

CHAT_SETTINGS_SK = "settings"  # its sort key: a chat that moves takes it along


class ChatSettings:
    """Per-chat (or forum topic) settings in the registry's table."""

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def usage_footer(self, key: SessionKey) -> bool:
        """Whether answers in this chat (or topic) end with their tokens and cost (/usage)."""
        item = self._table.get("usage_footer", session_item_pk(key), CHAT_SETTINGS_SK)
        return bool(item and item.get("usage_footer", {}).get("BOOL"))

    def set_usage_footer(self, key: SessionKey, on: bool) -> None:
        """Turn the usage footer of this chat (or topic) on or off; the choice expires
        ``retention_days`` after it was last set (then it is off again)."""
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
