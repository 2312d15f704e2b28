"""`agentbot dev --state-dir` keeps the table and bucket; saving again downloads only what changed."""

from __future__ import annotations

from pathlib import Path

from local_stack import ResourceNames, StateDirectory, provision


def test_saved_state_restores_into_a_fresh_stack_and_resaves_only_changes(aws, tmp_path: Path) -> None:
    res = aws.resources
    aws.dynamodb.put_item(
        TableName=res.table, Item={"pk": {"S": "p"}, "sk": {"S": "s"}, "b": {"B": b"\x00\xff"}}
    )
    aws.s3.put_object(Bucket=res.bucket, Key="sessions/a/1/0/x", Body=b"one")
    aws.s3.put_object(Bucket=res.bucket, Key="transcripts/big", Body=b"snapshot" * 1000)
    gets: list[str] = []
    s3 = aws.client("s3")  # its own: the hook must not outlive this test
    s3.meta.events.register(
        "provide-client-params.s3.GetObject", lambda params, **_: gets.append(params["Key"])
    )
    state = StateDirectory(tmp_path, dynamodb=aws.dynamodb, s3=s3, table=res.table, bucket=res.bucket)

    state.save()
    aws.s3.put_object(Bucket=res.bucket, Key="sessions/a/1/0/x", Body=b"two")
    gets.clear()
    state.save()
    assert gets == ["sessions/a/1/0/x"]  # the unchanged snapshot is not downloaded again

    fresh = provision(
        dynamodb=aws.dynamodb, s3=aws.s3, sqs=aws.sqs, names=ResourceNames(prefix=f"{res.table}-2")
    )
    restored = StateDirectory(
        tmp_path, dynamodb=aws.dynamodb, s3=aws.s3, table=fresh.table, bucket=fresh.bucket
    )
    assert restored.restore() == (1, 2)
    item = aws.dynamodb.get_item(TableName=fresh.table, Key={"pk": {"S": "p"}, "sk": {"S": "s"}})["Item"]
    assert item["b"]["B"] == b"\x00\xff"
    assert aws.s3.get_object(Bucket=fresh.bucket, Key="sessions/a/1/0/x")["Body"].read() == b"two"
    assert aws.s3.get_object(Bucket=fresh.bucket, Key="transcripts/big")["Body"].read() == b"snapshot" * 1000
