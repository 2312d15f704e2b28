"""A consumer one release behind its producer (an operator rolled the consumer back): a queued
message of a kind, or with a file of a kind, this release does not know yet is answered as the
nearest kind it knows, not dead-lettered as garbage, and the operator sees the skew."""

from __future__ import annotations

from typing import Any

from agentbot_testing.telegram_support import NEWER_VALUE
from structlog.testing import capture_logs
from telegram_core import ENVELOPE_VERSION, Attachment, InboundMessage, QueueEnvelope, encode_envelope

CHAT = 501


def queue_newer(stack: Any, msg: InboundMessage, replace: tuple[bytes, bytes]) -> None:
    """``msg`` queued as a newer producer writes it: one of its values replaced by a newer one."""
    body = encode_envelope(QueueEnvelope(version=ENVELOPE_VERSION, message=msg)).replace(*replace)
    stack.aws.sqs.send_message(
        QueueUrl=stack.aws.resources.queue_url,
        MessageBody=body.decode(),
        MessageGroupId=msg.session_key,
        MessageDeduplicationId=f"newer-{msg.update_id}",
    )


def inbound(update_id: int, **fields: Any) -> InboundMessage:
    return InboundMessage(
        **{
            "update_id": update_id,
            "session_key": f"default/{CHAT}/0",
            "kind": "message",
            "chat_id": CHAT,
            "chat_type": "private",
            "message_id": 40,
            "user_id": CHAT,
            **fields,
        }
    )


def skew_warnings(logs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["field"], e["value"]) for e in logs if e["event"] == "envelope.unknown_value"]


def test_a_message_of_a_newer_kind_is_told_it_is_not_supported_yet_and_runs_no_turn(stack: Any) -> None:
    queue_newer(stack, inbound(160, kind="unsupported"), (b'"unsupported"', f'"{NEWER_VALUE}"'.encode()))
    with capture_logs() as logs:
        responses = stack.drain(stack.consumer())

    assert [r["batchItemFailures"] for r in responses] == [[]]
    assert [m["text"] for m in stack.replies(CHAT)] == [
        "Sorry, this kind of messages are not supported yet. Send text, a photo or a document."
    ]
    assert stack.runs() == [] and stack.dead_letters() == []
    assert skew_warnings(logs) == [("message.kind", NEWER_VALUE)]


def test_a_file_of_a_newer_kind_reaches_the_agent_as_a_document(stack: Any) -> None:
    content = b"the file a newer producer queued"
    file_id = stack.telegram.add_file(content, file_path="documents/file_3.bin")
    attachment = Attachment(kind="document", file_id=file_id, file_name="plan.bin", file_size=len(content))
    msg = inbound(161, text="what is this?", attachments=(attachment,))
    queue_newer(stack, msg, (b'"document"', f'"{NEWER_VALUE}"'.encode()))
    with capture_logs() as logs:
        stack.drain(stack.consumer())

    [run] = stack.runs()
    [s3_key] = run["attachments"]
    assert s3_key.endswith("/plan.bin")
    stored = stack.aws.s3.get_object(Bucket=stack.aws.resources.bucket, Key=s3_key)["Body"].read()
    assert stored == content
    assert [m["text"] for m in stack.replies(CHAT)] == [f"Answer to: {run['prompt']}"]
    assert skew_warnings(logs) == [("message.attachments.kind", NEWER_VALUE)]


def test_a_photo_a_newer_producer_kept_for_its_album_as_a_file_of_a_newer_kind_is_in_the_albums_turn(
    stack: Any,
) -> None:
    """The album's turn reads every part the producer kept: a part of a newer shape is no
    longer dropped unseen (the user's third file was missing from the answer)."""
    from agentbot_testing.telegram_support import update, webhook_event
    from session_core import AlbumParts, encode_json

    for update_id in (780, 781):
        file_id = stack.telegram.add_file(b"photo %d" % update_id, file_path=f"photos/a{update_id}.jpg")
        photo = [{"file_id": file_id, "file_unique_id": f"u{update_id}", "width": 8, "height": 6}]
        extra = {"caption": "compare these"} if update_id == 780 else {}
        part = update(
            update_id, message_id=update_id, text=None, photo=photo, media_group_id="24680", **extra
        )
        assert stack.producer.handle_event(webhook_event(part))["statusCode"] == 200
    file_id = stack.telegram.add_file(b"a file of a newer kind", file_path="documents/b782.bin")
    newer = inbound(782, album_id="24680", attachments=(Attachment(kind="photo", file_id=file_id),))
    newer_part = encode_json(newer).decode().replace('"photo"', f'"{NEWER_VALUE}"')
    albums = AlbumParts(dynamodb=stack.aws.dynamodb, table=stack.aws.resources.table)
    assert albums.record(newer.session_key, "24680", 782, newer_part, addressed=False) == "joins"

    with capture_logs() as logs:
        stack.drain(stack.consumer())

    [run] = stack.runs()
    assert run["prompt"] == "compare these"
    assert [key.rsplit("/", 1)[1] for key in run["attachments"]] == [
        "photo-780.jpg",
        "photo-781.jpg",
        "b782.bin",
    ]
    assert skew_warnings(logs) == [("attachments.kind", NEWER_VALUE)]
