"""Create the stack's storage and queues on any AWS-compatible endpoint.

Tests and `agentbot dev` use this; it mirrors infra/template.yaml (a test cross-checks
the two), so what runs locally has the same keys, TTL, lifecycle and redrive as production.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from session_core import DEFAULT_RETENTION_DAYS, MAX_RECEIVE_COUNT
from session_core import S3_EXPIRY_MARGIN_DAYS as S3_EXPIRY_MARGIN_DAYS  # the store's, shared here

# Shared constants: the template and the code must agree on these.
TABLE_HASH_KEY = "pk"
TABLE_RANGE_KEY = "sk"
TTL_ATTRIBUTE = "expires_at"
CONSUMER_TIMEOUT_S = 900
QUEUE_VISIBILITY_TIMEOUT_S = 6 * CONSUMER_TIMEOUT_S
QUEUE_RETENTION_S = 4 * 24 * 3600
DLQ_RETENTION_S = 14 * 24 * 3600


@dataclass(frozen=True)
class ResourceNames:
    """Names of one stack's resources; ``prefix`` keeps parallel stacks apart."""

    prefix: str = "agentbot"

    @property
    def table(self) -> str:
        return f"{self.prefix}-sessions"

    @property
    def bucket(self) -> str:
        return f"{self.prefix}-sessions"

    @property
    def queue(self) -> str:
        return f"{self.prefix}-inbound.fifo"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}-inbound-dlq.fifo"


@dataclass(frozen=True)
class StackResources:
    """What `provision` created, in the form the handlers read from their environment."""

    table: str
    bucket: str
    queue_url: str
    dlq_url: str
    queue_arn: str
    dlq_arn: str

    def environment(self) -> dict[str, str]:
        """Environment variables the Lambdas read (the same names the template sets)."""
        return {
            "SESSIONS_TABLE": self.table,
            "SESSIONS_BUCKET": self.bucket,
            "INBOUND_QUEUE_URL": self.queue_url,
            "DEAD_LETTER_QUEUE_URL": self.dlq_url,
        }


def provision(
    *,
    dynamodb: Any,
    s3: Any,
    sqs: Any,
    names: ResourceNames = ResourceNames(),
    retention_days: int = DEFAULT_RETENTION_DAYS,
) -> StackResources:
    """Create (or find) the table, bucket and queues; safe to call again on existing ones."""
    _create_table(dynamodb, names.table)
    _create_bucket(s3, names.bucket, retention_days + S3_EXPIRY_MARGIN_DAYS)
    dlq_url = sqs.create_queue(
        QueueName=names.dlq,
        Attributes={
            "FifoQueue": "true",
            "ContentBasedDeduplication": "false",
            "MessageRetentionPeriod": str(DLQ_RETENTION_S),
        },
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(QueueName=names.queue, Attributes=queue_attributes(dlq_arn))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return StackResources(
        table=names.table,
        bucket=names.bucket,
        queue_url=queue_url,
        dlq_url=dlq_url,
        queue_arn=queue_arn,
        dlq_arn=dlq_arn,
    )


def queue_attributes(dlq_arn: str) -> dict[str, str]:
    """Attributes of the inbound FIFO queue (explicit dedup ids, redrive to the DLQ)."""
    return {
        "FifoQueue": "true",
        "ContentBasedDeduplication": "false",
        "VisibilityTimeout": str(QUEUE_VISIBILITY_TIMEOUT_S),
        "MessageRetentionPeriod": str(QUEUE_RETENTION_S),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}),
    }


def _create_table(dynamodb: Any, name: str) -> None:
    try:
        dynamodb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": TABLE_HASH_KEY, "AttributeType": "S"},
                {"AttributeName": TABLE_RANGE_KEY, "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": TABLE_HASH_KEY, "KeyType": "HASH"},
                {"AttributeName": TABLE_RANGE_KEY, "KeyType": "RANGE"},
            ],
        )
    except dynamodb.exceptions.ResourceInUseException:
        return
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
    dynamodb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )


def _create_bucket(s3: Any, name: str, expiry_days: int) -> None:
    region = s3.meta.region_name
    kwargs: dict[str, Any] = {"Bucket": name}
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(**kwargs)
    s3.put_bucket_lifecycle_configuration(
        Bucket=name,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire-sessions",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "Expiration": {"Days": expiry_days},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }
            ]
        },
    )
