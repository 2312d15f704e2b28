"""DynamoDB's TTL sweep, which moto never runs: a test that moves its clock by weeks removes
what AWS would have removed by then."""

from __future__ import annotations

from typing import Any


def sweep_expired_items(dynamodb: Any, table: str, now: float) -> None:
    """Delete the items of ``table`` past their ``expires_at`` at ``now`` (epoch seconds)."""
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            if "expires_at" in item and float(item["expires_at"]["N"]) < now:
                dynamodb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
