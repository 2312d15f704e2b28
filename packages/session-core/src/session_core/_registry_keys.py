"""Where the registry keeps a session's items: the partition of a session and the sort keys
of its meta and turn items (the Telegram side's records share the session's partition)."""

from __future__ import annotations

from ._dynamo_table import check_update_id
from ._keys import SessionKey

META = "meta"
TURN_PREFIX = "turn|"


def session_item_pk(key: SessionKey) -> str:
    """The partition key of every registry item of a session."""
    return f"session|{key.canonical}"


def turn_item_sk(turn_id: int) -> str:
    """The sort key of the item that records the answer to ``turn_id``."""
    return f"{TURN_PREFIX}{check_update_id(turn_id)}"
