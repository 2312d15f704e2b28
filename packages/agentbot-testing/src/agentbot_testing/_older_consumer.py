"""An older consumer during a deploy, as a budget account meets it: it adds a settled turn's cost
to ``spent_usd`` alone, just before each catch-up this release's consumer sends, so every
catch-up finds the account changed under it (a fault for ``FaultProxy`` that injects no error)."""

from __future__ import annotations

from typing import Any

from ._fault_proxy import AwsFault


def older_consumer_settling_before_each_catch_up(aws: Any, account: dict[str, Any]) -> AwsFault:
    """A DynamoDB UpdateItem "fault" that settles $0.001 on ``account`` (its key) the way an older
    consumer does, right before each catch-up is sent; the catch-up itself goes on as it is."""

    def settles_first(operation: str, body: bytes) -> bool:
        if b"ADD committed_usd :gap" in body:  # this consumer's catch-up, about to be sent
            aws.dynamodb.update_item(
                TableName=aws.resources.table,
                Key=account,
                UpdateExpression="ADD spent_usd :cost",
                ExpressionAttributeValues={":cost": {"N": "0.001"}},
            )
        return False  # sent as it is: it meets the account the older consumer changed

    return AwsFault("dynamodb:UpdateItem", when=settles_first)
