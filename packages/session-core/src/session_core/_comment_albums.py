"""The messages forwarded with a comment, for the comment's turn.

Telegram's forward dialog sends the comment typed in it first, as a text of its own, then each
forwarded message (kept by the producer as an album: ``_albums``). The consumer handling a
text that may be such a comment looks for those albums; the text's turn takes the one that
follows it, so that the album's own turn answers nothing. A retry of that text first asks
whether an earlier try went on to its turn (``turn_went_ahead``): then it takes only what that
try took, else it looks as a first try does. Apart from ``_albums`` because the look-ups are
BatchGetItems, which only the consumer's role is granted (the producer only records albums).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ._albums import DEFAULT_QUIET_S, DEFAULT_WAIT_S, PARTS_SK, AlbumParts, album_pk
from ._dynamo_table import check_update_id, item_int, item_key
from ._keys import SessionKey
from ._live_turns import LIVE_SK
from ._registry_keys import session_item_pk, turn_item_sk


class CommentAlbums(AlbumParts):
    """AlbumParts as the consumer reads them: also taken by the turn of a comment."""

    def gather_for_comment(
        self,
        session_key: str,
        album_ids: Sequence[str],
        *,
        comment: int,
        accepts: Callable[[list[str]], bool],
        quiet_s: float = DEFAULT_QUIET_S,
        wait_s: float = DEFAULT_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[str]:
        """The parts of the first of ``album_ids`` (messages forwarded together) that the turn
        of the text ``comment``, sent just before them, takes: gathered as ``gather`` does and
        marked as that turn's, so that the album's own turn answers nothing; only an album no
        turn took yet whose parts (in update order) ``accepts`` takes. Asked again (a retried
        turn), the same parts. Empty when none is recorded (one BatchGetItem), another turn
        took it or ``accepts`` refused them."""
        check_update_id(comment)
        pks = [album_pk(session_key, album_id) for album_id in album_ids]
        recorded = self._recorded(pks)
        for pk in pks:
            if pk not in recorded:
                continue
            gathered = self._gather(pk, quiet_s, wait_s, sleep, comment=comment, accepts=accepts)
            if gathered is not None and gathered.comment == comment:
                return gathered.parts
        return []

    def turn_went_ahead(self, key: SessionKey, comment: int) -> bool:
        """Whether an earlier try of the turn of the text ``comment`` went past choosing its
        forwards (some, or none): the consumer expected that turn (the session's live item
        names it: written before the runtime is invoked) or the runtime saved its answer.
        Then the turn may have run, and a retry must be the same turn. One BatchGetItem of
        those two items; an item DynamoDB left unread (throttled) counts as gone ahead."""
        pk = session_item_pk(key)
        keys = [item_key(pk, LIVE_SK), item_key(pk, turn_item_sk(comment))]
        found, later = self._batch_get("turn_went_ahead", keys, ("sk", "turn_id"))
        return bool(later) or any(
            item["sk"]["S"] != LIVE_SK or item_int(item, "turn_id") == comment for item in found
        )

    def _recorded(self, pks: list[str]) -> set[str]:
        """Those of the album items ``pks`` that exist: one BatchGetItem of their keys alone."""
        found, later = self._batch_get("gather_for_comment", [item_key(pk, PARTS_SK) for pk in pks], ("pk",))
        # Keys DynamoDB left for later (throttled): gathering reads each again.
        return {item["pk"]["S"] for item in [*found, *later]}

    def _batch_get(
        self, operation: str, keys: list[dict[str, Any]], attributes: tuple[str, ...]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The items of ``keys`` that exist, with ``attributes`` only (strongly consistent),
        and the keys DynamoDB left unread: one BatchGetItem."""
        table = self._table
        names = {f"#{name}": name for name in attributes}
        try:
            out = table.dynamodb.batch_get_item(
                RequestItems={
                    table.name: {
                        "Keys": keys,
                        "ConsistentRead": True,
                        "ProjectionExpression": ", ".join(names),
                        "ExpressionAttributeNames": names,
                    }
                }
            )
        except (ClientError, BotoCoreError) as exc:
            raise table.storage_error(operation, "BatchGetItem", exc) from exc
        found = out.get("Responses", {}).get(table.name, [])
        later = out.get("UnprocessedKeys", {}).get(table.name, {}).get("Keys", [])
        return found, later
