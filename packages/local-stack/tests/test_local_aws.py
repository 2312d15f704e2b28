"""The test stack provisions the same resources the template declares, on a real HTTP endpoint."""

from __future__ import annotations

import json

from local_stack import MAX_RECEIVE_COUNT, TTL_ATTRIBUTE


def test_provisioned_stack_has_fifo_redrive_ttl_and_lifecycle(aws) -> None:
    res = aws.resources
    attrs = aws.sqs.get_queue_attributes(QueueUrl=res.queue_url, AttributeNames=["All"])["Attributes"]
    assert attrs["FifoQueue"] == "true"
    assert attrs["ContentBasedDeduplication"] == "false"
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == res.dlq_arn
    assert int(redrive["maxReceiveCount"]) == MAX_RECEIVE_COUNT
    ttl = aws.dynamodb.describe_time_to_live(TableName=res.table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == TTL_ATTRIBUTE and ttl["TimeToLiveStatus"] in {"ENABLED", "ENABLING"}
    rules = aws.s3.get_bucket_lifecycle_configuration(Bucket=res.bucket)["Rules"]
    assert rules[0]["Expiration"]["Days"] > 25
    assert aws.endpoint.startswith("http://127.0.0.1:") or aws.backend == "localstack"
