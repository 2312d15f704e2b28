"""The messages forwarded with a comment, for the comment's turn.

Telegram's forward dialog sends the comment typed in it first, as a text of its own, then each
forwarded message (kept by the producer as an album: ``_albums``). The consumer handling a
text that may be such a comment looks for those albums; the text's turn takes the one that
follows it, so that the album's own turn answers nothing. Apart from ``_albums`` because the
look-up is one BatchGetItem, which only the consumer's role is granted (the producer only
records albums).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from ._albums import DEFAULT_QUIET_S, DEFAULT_WAIT_S, PARTS_SK, AlbumParts, album_pk
from ._dynamo_table import check_update_id, item_key


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

    def _recorded(self, pks: list[str]) -> set[str]:
        """Those of the album items ``pks`` that exist: one BatchGetItem of their keys alone."""
        table = self._table
        try:
            out = table.dynamodb.batch_get_item(
                RequestItems={
                    table.name: {
                        "Keys": [item_key(pk, PARTS_SK) for pk in pks],
                        "ConsistentRead": True,
                        "ProjectionExpression": "#pk",
                        "ExpressionAttributeNames": {"#pk": "pk"},
                    }
                }
            )
        except (ClientError, BotoCoreError) as exc:
            raise table.storage_error("gather_for_comment", "BatchGetItem", exc) from exc
        found = out.get("Responses", {}).get(table.name, [])
        # Keys DynamoDB left for later (throttled): gathering reads each again.
        later = out.get("UnprocessedKeys", {}).get(table.name, {}).get("Keys", [])
        return {item["pk"]["S"] for item in [*found, *later]}
