"""Files the agent sends: what a turn's tools leave in ``outbox/`` reaches S3 and the turn's
result, once; what is not a plain file of the agent's own is named, never read."""

from __future__ import annotations

import pytest
from session_core import SessionKey, outbox_key

pytestmark = pytest.mark.slow

KEY = "default/3001/0"


def _object(aws, key: str) -> bytes:
    return aws.s3.get_object(Bucket=aws.resources.bucket, Key=key)["Body"].read()


def test_files_the_agent_leaves_in_its_outbox_go_with_the_answer_once(
    aws, make_runtime, turn_request
) -> None:
    runtime = make_runtime()
    made = runtime.run_turn(
        turn_request(
            "bash: mkdir -p outbox && printf 'city,people\\nOslo,709037\\n' > outbox/table.csv"
            " && printf '\\211PNG chart' > 'outbox/chart (final).png' && echo made",
            turn_id=1,
            session_key=KEY,
        )
    )
    later = runtime.run_turn(turn_request("thanks", turn_id=2, session_key=KEY))

    assert made.ok and "made" in made.text, made
    shown = [(f.file_name, f.mime_type, f.size) for f in made.files]
    assert shown == [("chart (final).png", "image/png", 10), ("table.csv", "text/csv", 24)]
    session = SessionKey.parse(KEY)
    assert [f.s3_key for f in made.files] == [
        outbox_key(session, 1, "chart_final_.png"),
        outbox_key(session, 1, "table.csv"),
    ]
    assert _object(aws, made.files[1].s3_key) == b"city,people\nOslo,709037\n"
    assert made.files_not_sent == ()
    assert later.ok and later.files == ()  # sent with the first answer, not again


def test_only_plain_files_of_the_agents_own_are_sent_and_the_rest_are_named(
    aws, make_runtime, turn_request
) -> None:
    command = (
        "bash: mkdir -p outbox/folder && o=outbox"
        # (Landlock refuses a hard link to a file outside the directory: EXDEV)
        " && ln -s /etc/hostname $o/link && echo secret > $o/original && ln $o/original $o/second-name"
        " && mkfifo $o/pipe && truncate -s 51M $o/huge.bin && : > $o/empty.txt"
        " && for i in 01 02 03 04 05 06 07 08 09 10 11; do echo $i > $o/n$i.txt; done && echo ready"
    )
    result = make_runtime().run_turn(turn_request(command, turn_id=1, session_key=KEY))

    assert result.ok and "ready" in result.text, result
    assert [f.file_name for f in result.files] == [f"n{i:02d}.txt" for i in range(1, 11)]
    assert {(f.file_name, f.reason) for f in result.files_not_sent} == {
        ("empty.txt", "empty"),  # Telegram refuses it: not one of the ten, not "failed"
        ("folder", "folder"),  # the user is told to ask for it zipped
        ("huge.bin", "too_large"),
        ("link", "not_a_file"),
        ("n11.txt", "too_many"),
        ("original", "not_a_file"),  # a file of two names: either may be one the agent cannot read
        ("pipe", "not_a_file"),  # opened without waiting for a writer: the turn did not hang
        ("second-name", "not_a_file"),
    }


def test_an_outbox_that_is_a_link_sends_nothing_from_where_it_points(aws, make_runtime, turn_request) -> None:
    result = make_runtime().run_turn(
        turn_request("bash: ln -s /etc outbox && echo linked", turn_id=1, session_key=KEY)
    )

    assert result.ok and "linked" in result.text, result
    assert (result.files, result.files_not_sent) == ((), ())


def test_an_outbox_of_thousands_of_files_names_a_bounded_few_and_the_answer_is_recorded(
    aws, make_runtime, turn_request
) -> None:
    long = "x" * 200
    # (not empty: an empty file is named for that, whatever its place)
    made = "while read -r f; do echo x > $f; done"
    command = f"bash: mkdir -p outbox && seq -f 'outbox/{long}-%g.txt' 1 5000 | {made} && echo ready"
    runtime = make_runtime()
    result = runtime.run_turn(turn_request(command, turn_id=1, session_key=KEY))
    again = runtime.run_turn(turn_request(command, turn_id=1, session_key=KEY))

    assert result.ok and "ready" in result.text, result
    assert len(result.files) == 10
    # The result is stored with the answer (a DynamoDB item is at most 400 KB) and returned
    # by Lambda (at most 6 MB): what is named stays small, however many files a tool makes.
    assert len(result.files_not_sent) <= 100
    assert {f.reason for f in result.files_not_sent} == {"too_many"}
    assert again.replayed and again.files == result.files, again


def test_files_go_in_the_order_of_their_names_however_many_the_outbox_holds(
    aws, make_runtime, turn_request
) -> None:
    # More than the hundred entries looked at: which ten go must not depend on the order the
    # directory lists them in.
    command = (
        "bash: mkdir -p outbox && for i in $(seq -w 0 149); do echo $i > outbox/part-$i.txt; done; echo ok"
    )
    result = make_runtime().run_turn(turn_request(command, turn_id=1, session_key=KEY))

    assert result.ok, result
    assert [f.file_name for f in result.files] == [f"part-{i:03d}.txt" for i in range(10)]
    # the 140 others: the user's note counts each, though only those looked at are named
    named = [f.file_name for f in result.files_not_sent if f.reason == "too_many"]
    assert named == [f"part-{i:03d}.txt" for i in range(10, 100)]
    assert len(named) + result.more_files_not_sent == 140


def test_a_file_a_tool_still_writes_when_the_turn_ends_is_named_unfinished_not_sent_half_written(
    aws, make_runtime, turn_request
) -> None:
    # A job left running in the background holds log.txt open, half written, as the answer is
    # given; the sweep then kills it. done.txt was closed before.
    writer = "f = open('outbox/log.txt', 'w'); f.write('half'); f.flush(); import time; time.sleep(60)"
    command = (
        "bash: mkdir -p outbox && echo all > outbox/done.txt"
        f' && (nohup python3 -c "{writer}" >/dev/null 2>&1 &) && sleep 1 && echo started'
    )
    result = make_runtime().run_turn(turn_request(command, turn_id=1, session_key=KEY))

    assert result.ok and "started" in result.text, result
    assert [f.file_name for f in result.files] == ["done.txt"]
    assert [(f.file_name, f.reason) for f in result.files_not_sent] == [("log.txt", "unfinished")]
