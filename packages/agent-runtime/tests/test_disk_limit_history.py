"""SESSION_DISK_LIMIT_MB during a turn and the chat's history: the transcript the turn resumes
is the chat's (bounded by the memory's history limit), not what its tools wrote."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from session_core import SessionKey, StagedAttachment

pytestmark = pytest.mark.slow


def test_a_chat_whose_history_passes_the_disk_limit_is_still_answered(
    make_runtime, model_server, turn_request
) -> None:
    runtime = make_runtime(env={"SESSION_DISK_LIMIT_MB": "16"})
    key = "default/1901/0"
    assert runtime.run_turn(turn_request("hi", turn_id=1, session_key=key)).ok
    # Its history grew past 16 MiB over many turns: here 17 entries of 1 MiB put in the store
    # as the CLI's mirror would have (copies of its last entry, with a field the CLI ignores).
    resume, _, project, *_ = asyncio.run(
        runtime._session_to_resume(SessionKey.parse(key), turn_request("x", turn_id=2, session_key=key))
    )
    store_key = {"project_key": project, "session_id": resume}
    store = runtime._restorer.store
    last = asyncio.run(store.load(store_key))[-1]
    padded = [{**last, "uuid": str(uuid.uuid4()), "padding": "y" * 2**20} for _ in range(17)]
    asyncio.run(store.append(store_key, padded))

    for turn_id, text in ((2, "how are you"), (3, "and now")):
        answer = runtime.run_turn(turn_request(text, turn_id=turn_id, session_key=key))
        # it was stopped as turn.over_disk_limit before the CLI wrote a word, every turn
        assert answer.ok and not answer.stopped and answer.error_reason is None, answer


def test_a_file_the_user_sends_larger_than_the_disk_limit_is_still_answered(
    aws, make_runtime, model_server, turn_request, capfd
) -> None:
    """The user's files are the chat's, as its history is, not its tools' doing: counted, a
    17 MiB PDF under a 16 MiB limit stopped the turn before the CLI wrote a word, and told the
    user that the files the bot made grew past the disk space (sending it again did the same);
    and the next turn, still counting it, began without the agent's working files."""
    key = SessionKey.parse("default/1902/0")
    s3_key = f"{key.s3_prefix}attachments/1/scan.pdf"
    size = 17 * 2**20
    aws.s3.put_object(Bucket=aws.resources.bucket, Key=s3_key, Body=b"%PDF-1.4 " + b"0" * (size - 9))
    staged = (StagedAttachment(s3_key=s3_key, file_name="scan.pdf", mime_type="application/pdf", size=size),)
    runtime = make_runtime(env={"SESSION_DISK_LIMIT_MB": "16"})

    answer = runtime.run_turn(
        turn_request("what is this?", turn_id=1, session_key=str(key), attachments=staged)
    )
    assert answer.ok and not answer.stopped and answer.error_reason is None, answer

    # What its tools write is still held to the limit; the PDF, gone with its turn, is not counted
    # as the next turn begins (over the limit, work/ would go with it).
    filling = runtime.run_turn(
        turn_request(
            "bash: head -c 20M /dev/zero > filler.bin && sleep 60",
            turn_id=2,
            session_key=str(key),
        )
    )
    assert filling.error_reason == "disk_limit", filling
    assert "workspace.over_disk_limit" not in capfd.readouterr().err
