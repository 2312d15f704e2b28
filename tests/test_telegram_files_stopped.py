"""Files the agent finished before its turn ended early reach the user, with nothing stubbed
between the user and the model: the real CLI's Bash tool writes a report into ``outbox/``, then
the turn is stopped (by /stop, by its time limit, by its CLI dying). The user gets the partial
text, then the report, once: a consumer that runs the message again sends neither a second
time. A file a tool was still writing when the turn was cut is not sent half-written: it is
named as unfinished under the answer."""

from __future__ import annotations

import shlex
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentbot_testing import KILL_CLI
from agentbot_testing.telegram_support import update, webhook_event
from local_stack import ToolCall, last_user_text, sqs_lambda_event, tool_results, user_turns

pytestmark = pytest.mark.slow
CHAT = 502
# A wait nobody else runs, so its process is findable (see test_telegram_live.py).
MARK = f"29.{uuid.uuid4().int % 10**9:09d}"
WAIT = f"python3 -c 'import time; time.sleep({MARK})'"
REPORT = b"Quarterly report\nall numbers final\n"
MAKE_REPORT = f"mkdir -p outbox && printf {shlex.quote(REPORT.decode())} > outbox/report.txt"
# Holds draft.txt open for writing, half written, until the turn is cut.
HALF_WRITTEN = (
    "python3 -c \"f = open('outbox/draft.txt', 'w'); f.write('half of it'); f.flush();"
    f' import time; time.sleep({MARK})"'
)
STARTED = "Making the report first."


def responder(request: dict[str, Any]) -> Any:
    text = last_user_text(request)
    if tool_results(request):
        return "The report is done."
    if text == "report then wait":
        return [STARTED, ToolCall(name="Bash", input={"command": f"{MAKE_REPORT} && {WAIT}"})]
    if text == "report then draft":
        return [STARTED, ToolCall(name="Bash", input={"command": f"{MAKE_REPORT} && {HALF_WRITTEN}"})]
    if text == "report silently then wait":
        return [ToolCall(name="Bash", input={"command": f"{MAKE_REPORT} && {WAIT}"})]
    if text == "draft silently":
        return [ToolCall(name="Bash", input={"command": f"mkdir -p outbox && {HALF_WRITTEN}"})]
    if text == "report silently then crash":
        command = f"{MAKE_REPORT} && python3 -c {shlex.quote(KILL_CLI)}"
        return [ToolCall(name="Bash", input={"command": command})]
    if text == "report then crash":
        command = f"{MAKE_REPORT} && python3 -c {shlex.quote(KILL_CLI)}"
        return [STARTED, ToolCall(name="Bash", input={"command": command})]
    return f"turns={user_turns(request)} last={text}"


@pytest.fixture
def stack(aws: Any, tmp_path: Path, tools_config: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from agentbot_testing.telegram_stack import real_runtime_stack

    with real_runtime_stack(aws, tmp_path, monkeypatch, config=tools_config, responder=responder) as stack:
        yield stack


def _sleeping() -> bool:
    """Whether the tool's python3 waits: the bash that runs the tool's command names the mark
    too, from before its first step (on a loaded machine a /stop sent then came before it)."""
    import subprocess

    out = subprocess.run(["pgrep", "-f", f"^python3 -c .*time.sleep.{MARK}"], capture_output=True, text=True)
    return bool(out.stdout.split())


def _half_written(tmp_path: Path) -> bool:
    """Whether the tool has written the first half of draft.txt in its session's outbox."""
    try:
        return any(
            draft.read_bytes() == b"half of it" for draft in (tmp_path / "sessions").rglob("draft.txt")
        )
    except OSError:  # a directory of the turn made or removed meanwhile: look again
        return False


def _wait_for(predicate: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _take(stack: Any, update_id: int, text: str) -> dict[str, Any]:
    """Post ``text`` and receive it as Lambda's poller would: the batch event to hand over."""
    response = stack.producer.handle_event(webhook_event(update(update_id, chat_id=CHAT, text=text)))
    assert response["statusCode"] == 200, response
    [taken] = stack.receive()
    region = stack.aws.sqs.meta.region_name
    return sqs_lambda_event([taken], queue_arn=stack.aws.resources.queue_arn, region=region)


def _answers_then_files(stack: Any) -> list[str]:
    """What the chat shows, in order: each text, and each file as ``file:<name>``."""
    shown = []
    for message in stack.replies(CHAT):
        if "text" in message:
            shown.append(message["text"])
        elif "document" in message:
            shown.append(f"file:{message['document']['file_name']}")
    return shown


def _report_sent_once(stack: Any) -> None:
    [report] = stack.telegram.sent_files(CHAT)
    assert (report.file_name, report.content()) == ("report.txt", REPORT)


def _run_out_of_time(consumer: Any, event: dict[str, Any]) -> None:
    """Handles the batch with 25 s left: less the consumer's 5 s delivery reserve, the turn
    gets 20 s, far less than its tool's half minute."""
    ends = time.monotonic() + 25

    def remaining() -> int:
        return int((ends - time.monotonic()) * 1000)

    assert consumer.handle_batch(event, remaining_time_ms=remaining) == {"batchItemFailures": []}


def _assert_replayed_not_run_again(
    stack: Any, consumer: Any, event: dict[str, Any], shown: list[str]
) -> None:
    """Lambda retries the batch out of time again: the chat shows the same, the report went
    once, and the model was not asked again."""
    calls = len(stack.model.model_calls)
    _run_out_of_time(consumer, event)
    assert _answers_then_files(stack) == shown
    _report_sent_once(stack)
    assert len(stack.model.model_calls) == calls


def test_a_turn_the_user_stops_sends_the_file_it_finished_once_and_not_the_one_half_written(
    stack: Any, tmp_path: Path
) -> None:
    event = _take(stack, 801, "report then draft")
    consumer = stack.consumer()
    worker = threading.Thread(target=consumer.handle_batch, args=(event,), daemon=True)
    worker.start()
    _wait_for(_sleeping, "the tool to hold the draft open")
    _wait_for(lambda: _half_written(tmp_path), "the tool to write half of the draft")
    response = stack.producer.handle_event(webhook_event(update(802, chat_id=CHAT, text="/stop")))
    assert response["statusCode"] == 200
    worker.join(timeout=60)
    assert not _sleeping()

    answer, file = _answers_then_files(stack)
    assert answer == (
        f"{STARTED}\n\n⏹ Stopped.\n\n(draft.txt was not sent: I was still writing it when I stopped)"
    ), answer
    assert file == "file:report.txt"
    _report_sent_once(stack)
    # The consumer runs the message again (Lambda retries the batch): nothing goes twice.
    assert consumer.handle_batch(event) == {"batchItemFailures": []}
    assert _answers_then_files(stack) == [answer, file]
    _report_sent_once(stack)


def test_a_turn_out_of_time_sends_the_file_it_finished_after_its_text_once(stack: Any) -> None:
    event = _take(stack, 811, "report then wait")
    consumer = stack.consumer(delivery_reserve_s=5)
    _run_out_of_time(consumer, event)
    assert not _sleeping()
    answer, file = _answers_then_files(stack)
    assert answer.startswith(f"{STARTED}\n\n⏱ I reached the time limit"), answer
    assert file == "file:report.txt"
    _report_sent_once(stack)
    _assert_replayed_not_run_again(stack, consumer, event, [answer, file])


def test_a_turn_whose_agent_crashed_sends_the_file_it_finished_after_its_text_once(stack: Any) -> None:
    event = _take(stack, 821, "report then crash")
    consumer = stack.consumer()
    assert consumer.handle_batch(event) == {"batchItemFailures": []}
    answer, file = _answers_then_files(stack)
    assert answer.startswith(f"{STARTED}\n\n"), answer
    assert file == "file:report.txt"
    _report_sent_once(stack)
    assert consumer.handle_batch(event) == {"batchItemFailures": []}
    assert _answers_then_files(stack) == [answer, file]
    _report_sent_once(stack)


def test_a_turn_stopped_before_it_wrote_any_text_says_stopped_not_nothing_and_sends_its_file(
    stack: Any,
) -> None:
    event = _take(stack, 831, "report silently then wait")
    worker = threading.Thread(target=stack.consumer().handle_batch, args=(event,), daemon=True)
    worker.start()
    _wait_for(_sleeping, "the tool to wait")
    response = stack.producer.handle_event(webhook_event(update(832, chat_id=CHAT, text="/stop")))
    assert response["statusCode"] == 200
    worker.join(timeout=60)
    # Not "Stopped before I wrote anything.": the report it made comes next.
    assert _answers_then_files(stack) == ["⏹ Stopped.", "file:report.txt"]
    _report_sent_once(stack)


def test_a_turn_out_of_time_before_it_wrote_any_text_sends_its_file_once_and_is_remembered(
    stack: Any,
) -> None:
    event = _take(stack, 841, "report silently then wait")
    consumer = stack.consumer(delivery_reserve_s=5)
    _run_out_of_time(consumer, event)
    assert not _sleeping()
    # Not "This took longer than I can spend...": the report it made comes next.
    note, file = _answers_then_files(stack)
    assert note.startswith("⏱ I reached the time limit ("), note
    assert "before I could write an answer" in note and note.endswith("here is what I had made:"), note
    assert file == "file:report.txt"
    _report_sent_once(stack)
    _assert_replayed_not_run_again(stack, consumer, event, [note, file])

    # Recorded like a stopped turn: the next message follows it, the user's message included.
    [record] = event["Records"]
    stack.aws.sqs.delete_message(
        QueueUrl=stack.aws.resources.queue_url, ReceiptHandle=record["receiptHandle"]
    )
    assert stack.post(update(842, chat_id=CHAT, text="and now?")) == 200
    assert stack.drain(consumer) == [{"batchItemFailures": []}]
    assert _answers_then_files(stack)[-1] == "turns=2 last=and now?"


def test_a_turn_whose_agent_crashed_before_it_wrote_any_text_sends_its_file_once(stack: Any) -> None:
    event = _take(stack, 851, "report silently then crash")
    consumer = stack.consumer()
    assert consumer.handle_batch(event) == {"batchItemFailures": []}
    note, file = _answers_then_files(stack)
    assert note.startswith("⚠️ Something went wrong on my side before I could write an answer"), note
    assert note.endswith("here is what I had made:"), note
    assert file == "file:report.txt"
    _report_sent_once(stack)
    assert consumer.handle_batch(event) == {"batchItemFailures": []}
    assert _answers_then_files(stack) == [note, file]
    _report_sent_once(stack)


def test_a_turn_out_of_time_with_only_a_half_written_file_fails_as_before(stack: Any) -> None:
    """Nothing to show: no text, no finished file. The half-written draft is not sent, and the
    turn is not recorded (the note would say the next message follows it)."""
    event = _take(stack, 861, "draft silently")
    consumer = stack.consumer(delivery_reserve_s=5)
    ends = time.monotonic() + 25

    def remaining() -> int:
        return int((ends - time.monotonic()) * 1000)

    # The time limit at work: answered, neither retried nor dead-lettered (a redrive would pay
    # the model again for a run the limit stops again).
    assert consumer.handle_batch(event, remaining_time_ms=remaining) == {"batchItemFailures": []}
    assert not _sleeping()
    [said] = _answers_then_files(stack)
    assert said.startswith("This took longer than I can spend on one message"), said
    assert stack.telegram.sent_files(CHAT) == []
    assert stack.dead_letters() == []
