"""[H] Live turns through the real stack: producer → moto FIFO → consumer → the real runtime
(awslambdaric, real CLI, scripted model) → the local Bot API server with drafts, edits, inline
buttons and the group limit. Stop reaches a running turn outside its FIFO group."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_stack import (
    Streamed,
    TelegramFault,
    ToolCall,
    last_user_text,
    tool_results,
    user_turns,
)

pytestmark = pytest.mark.slow
# A wait nobody else runs, so its process is findable: drawn per import (each xdist worker's).
MARK = f"27.{uuid.uuid4().int % 10**9:09d}"
# Not `sleep N`: the CLI refuses a long leading sleep.
SLOW_COMMAND = f"python3 -c 'import time; time.sleep({MARK})'"
SHORT_COMMAND = "python3 -c 'import time; time.sleep(2.5)'"
# Written in ten pieces 0.8 s apart: the model takes about 7 s to write it, so even a loaded
# machine (CI builds the arm64 image meanwhile) refreshes the 1 s drafts several times.
SLOW_ANSWER = Streamed(
    "The answer arrives word by word, as a real model writes it. " * 5, pieces=10, pause_s=0.8
)
GROUP = -100777


def responder(request: dict[str, Any]) -> Any:
    """``long task``: writes a line, then runs a tool that takes half a minute. ``two steps``:
    writes a line, runs a 2.5 s tool, then writes the rest. Else: the turn count and the text."""
    text = last_user_text(request)
    if "write slowly" in text:
        return [SLOW_ANSWER]
    if "long task" in text and not tool_results(request):
        return ["Working on it: first the slow part.", ToolCall(name="Bash", input={"command": SLOW_COMMAND})]
    if "two steps" in text:
        if not tool_results(request):
            return ["Step one is done.", ToolCall(name="Bash", input={"command": SHORT_COMMAND})]
        return "Step two is done too."
    return f"turns={user_turns(request)} last={text}"


def sleepers() -> list[str]:
    out = subprocess.run(["pgrep", "-f", f"time.sleep.{MARK}"], capture_output=True, text=True)
    return out.stdout.split()


@pytest.fixture
def live(aws: Any, tmp_path: Path, tools_config: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The Telegram path with the real runtime and a Bot API server enforcing 20/min per group."""
    from agentbot_testing.telegram_stack import real_runtime_stack

    with real_runtime_stack(
        aws, tmp_path, monkeypatch, config=tools_config, responder=responder, group_limit_per_minute=20
    ) as stack:
        yield stack


def post(stack: Any, update_id: int, text: str, *, chat_id: int = 501, **fields: Any) -> dict[str, Any]:
    from agentbot_testing.telegram_support import update

    chat = {"chat_type": "supergroup"} if chat_id < 0 else {}
    event_update = update(update_id, message_id=update_id, chat_id=chat_id, text=text, **chat, **fields)
    return post_raw(stack, event_update)


def post_raw(stack: Any, event_update: dict[str, Any]) -> dict[str, Any]:
    from agentbot_testing.telegram_support import webhook_event

    response = stack.producer.handle_event(webhook_event(event_update))
    assert response["statusCode"] == 200, response
    return dict(json.loads(response["body"]))


def drain_in_background(stack: Any) -> threading.Thread:
    consumer = stack.consumer()
    worker = threading.Thread(target=stack.drain, args=(consumer,), daemon=True)
    worker.start()
    return worker


def wait_for(predicate: Any, timeout_s: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def stop_and_measure(stack: Any, press: Any) -> float:
    """Press stop (``press()``) once the slow tool runs; seconds until it is gone."""
    wait_for(lambda: bool(sleepers()), what="the slow tool to start")
    started = time.monotonic()
    press()
    wait_for(lambda: not sleepers(), timeout_s=10, what="the tool to be killed")
    return time.monotonic() - started


# The tool would run half a minute; gone well within this is the stop taking effect. The 2 s
# goal of [H] is measured by bench/pipeline.py (a timed assert fails on a loaded machine).
STOPPED_WITHIN_S = 6.0


def test_stop_command_ends_the_turn_at_once_delivers_the_partial_answer_once_and_the_next_resumes(
    live: Any,
) -> None:
    post(live, 1, "long task please")
    worker = drain_in_background(live)
    # As a user would: the draft shows the tool running, then /stop.
    wait_for(lambda: any("python3" in d["visible"] for d in live.telegram.drafts(501)), what="the tool line")
    answers: list[dict[str, Any]] = []
    took = stop_and_measure(live, lambda: answers.append(post(live, 2, "/stop")))
    worker.join(timeout=60)
    assert took < STOPPED_WITHIN_S, f"the CLI's tool outlived the stop by {took:.2f} s"
    assert answers == [{"method": "sendMessage", "chat_id": 501, "text": "Stopping…"}]
    texts = [m["text"] for m in live.replies(501)]
    assert texts == ["Working on it: first the slow part.\n\n⏹ Stopped."]  # once, marked
    # The private chat saw the answer grow in a draft with the stop control first.
    drafts = live.telegram.drafts(501)
    assert drafts and all(d["can_stop"] for d in drafts)
    assert any("Working on it" in d["visible"] for d in drafts)
    assert any("python3" in d["visible"] for d in drafts)  # the tool line
    # /stop never went to the queue; a stop now finds nothing running.
    assert post(live, 3, "/stop")["text"] == "Nothing is running in this chat right now."
    post(live, 4, "and now?")
    live.drain(live.consumer())
    assert [m["text"] for m in live.replies(501)][-1] == "turns=2 last=and now?"  # history intact


def test_a_turn_out_of_time_delivers_what_it_wrote_once_with_a_note_and_the_next_resumes(
    live: Any,
) -> None:
    from local_stack import sqs_lambda_event

    post(live, 51, "long task")
    consumer = live.consumer(delivery_reserve_s=5)
    [taken] = live.receive()
    event = sqs_lambda_event(
        [taken], queue_arn=live.aws.resources.queue_arn, region=live.aws.sqs.meta.region_name
    )
    # The invocation ends in 25 s: the turn gets 20 of them (the rest is kept for delivery),
    # far less than its tool's half minute.
    ends = time.monotonic() + 25

    def remaining() -> int:
        return int((ends - time.monotonic()) * 1000)

    assert consumer.handle_batch(event, remaining_time_ms=remaining) == {"batchItemFailures": []}
    assert not sleepers()
    [answer] = [m["text"] for m in live.replies(501)]
    written, note = answer.split("\n\n")
    assert written == "Working on it: first the slow part."  # what the draft showed, kept
    assert re.fullmatch(
        r"⏱ I reached the time limit \(\d+ s\), so I stopped here\. I remember your message and "
        r"the steps I finished, not words I was still writing\. To go on, ask for the next part\.",
        note,
    ), note
    # The consumer runs again (Lambda retries the batch): the recorded answer is not sent twice.
    calls = len(live.model.model_calls)
    ends = time.monotonic() + 25
    assert consumer.handle_batch(event, remaining_time_ms=remaining) == {"batchItemFailures": []}
    assert [m["text"] for m in live.replies(501)] == [answer]
    assert len(live.model.model_calls) == calls
    live.aws.sqs.delete_message(QueueUrl=live.aws.resources.queue_url, ReceiptHandle=taken["ReceiptHandle"])
    post(live, 52, "and now?")
    live.drain(live.consumer())
    assert [m["text"] for m in live.replies(501)][-1] == "turns=2 last=and now?"


def test_a_turn_over_its_cost_cap_delivers_what_it_wrote_then_why_then_the_usage_line(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    post(live, 61, "/usage on")
    live.drain(live.consumer())
    # Below one model call's price: the CLI stops the run before the tool's step.
    monkeypatch.setenv("MAX_TURN_COST_USD", "0.001")
    post(live, 62, "two steps")
    live.drain(live.consumer())
    answer = [m["text"] for m in live.replies(501)][-1]
    written, note, usage = answer.split("\n\n")
    assert written == "Step one is done."
    assert note == (
        "⏹ I stopped here: going on would cost more than one message may spend. "
        "I remember what I did so far; to go on, ask for the next part."
    )
    assert re.fullmatch(r"[\d,]+ tokens in · [\d,]+ out · \$0\.\d{4}", usage), usage


def test_a_stop_sent_while_the_turn_starts_stops_it_before_any_model_call_and_no_later_turn(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telegram_producer import handler as producer_handler

    # The chat's backlog count (on by default, off in the test stack) says a message waits.
    monkeypatch.setenv("CHAT_QUEUE_LIMIT", "10")
    live.producer = producer_handler.build_producer()
    # Lambda's poller has taken the message but the consumer (or the runtime) is still starting:
    # the turn is not live yet. The stop must not find "nothing", nor wait behind the turn.
    post(live, 41, "long task")
    taken = live.receive()
    assert post(live, 42, "/stop") == {"method": "sendMessage", "chat_id": 501, "text": "Stopping…"}
    live.hand_over(live.consumer(), taken)
    assert [m["text"] for m in live.replies(501)] == ["⏹ Stopped before I wrote anything."]
    assert live.model.model_calls == []
    assert not sleepers()
    # Spent on that turn: nothing runs now, and the next message is answered in full.
    assert post(live, 43, "/stop")["text"] == "Nothing is running in this chat right now."
    post(live, 44, "and now?")
    live.drain(live.consumer())
    # The stopped message never reached the model, so it is not in the conversation.
    assert [m["text"] for m in live.replies(501)][-1] == "turns=1 last=and now?"


def test_the_drafts_stop_control_stops_the_turn(live: Any) -> None:
    post(live, 11, "long task")
    worker = drain_in_background(live)
    wait_for(lambda: any(d["can_stop"] for d in live.telegram.drafts(501)), what="a draft")
    took = stop_and_measure(live, lambda: post_raw(live, live.telegram.press_draft_stop(501)))
    worker.join(timeout=60)
    assert took < STOPPED_WITHIN_S
    assert [m["text"] for m in live.replies(501)] == ["Working on it: first the slow part.\n\n⏹ Stopped."]


def test_drafts_grow_and_are_followed_by_exactly_one_final_answer(live: Any) -> None:
    post(live, 21, "two steps")
    live.drain(live.consumer())
    drafts = [d["visible"] for d in live.telegram.drafts(501)]
    # The answer so far, then what the agent does, one refresh at a time (the first words go
    # out at once, so a refresh may show them before the tool line, and again once it ended).
    assert any(d.startswith("Step one is done.\n\n🔧 Bash: python3") for d in drafts), drafts
    assert all(a != b for a, b in itertools.pairwise(drafts)), drafts  # only changes are sent
    # The final answer is the run's result, as before: sent once, as a normal message.
    assert [m["text"] for m in live.replies(501)] == ["Step two is done too."]
    assert live.telegram.drafts(501)[-1]["at"] < live.telegram.calls("sendMessage")[-1].at


def test_a_slowly_written_answer_streams_into_growing_drafts_then_arrives_once(live: Any) -> None:
    post(live, 25, "write slowly")
    live.drain(live.consumer())
    drafts = [d for d in live.telegram.drafts(501) if d["visible"]]
    texts = [d["visible"] for d in drafts]
    # Each refresh shows more of the answer than the one before, while the model still writes.
    assert len(texts) >= 3, texts
    growing = itertools.pairwise(texts)
    assert all(later.startswith(earlier) and later != earlier for earlier, later in growing), texts
    assert SLOW_ANSWER.text.startswith(texts[0]) and texts[0] != SLOW_ANSWER.text.strip()
    [answer] = live.telegram.calls("sendMessage")
    assert answer.params["text"] == SLOW_ANSWER.text.strip()  # the final answer, once
    assert answer.at - drafts[0]["at"] > 1.5  # the first words were visible long before it


def test_a_turn_stops_soon_after_the_bot_is_removed_from_the_group(live: Any) -> None:
    """An admin removes the bot while its agent runs a long tool: Telegram refuses the next
    "typing…", the turn stops as with Stop (its tool killed, nothing more paid for an answer
    nobody there can get) and the record is acknowledged, no dead letter."""
    post(live, 35, "@agent_test_bot long task", chat_id=GROUP)
    worker = drain_in_background(live)
    wait_for(lambda: bool(sleepers()), what="the slow tool to start")
    kicked = TelegramFault(403, "Forbidden: bot was kicked from the supergroup chat")
    for method in ("sendChatAction", "sendMessage", "editMessageText", "deleteMessage"):
        live.telegram.inject(method, kicked, times=100)
    started = time.monotonic()
    wait_for(lambda: not sleepers(), timeout_s=15, what="the tool to be killed")
    # "typing…" is refreshed every 4 s; the runtime stops within about 2 s of the request.
    assert time.monotonic() - started < 4 + STOPPED_WITHIN_S
    worker.join(timeout=60)
    assert not worker.is_alive() and live.dead_letters() == []


@pytest.mark.parametrize("thread_id", [None, 7], ids=["group", "forum_topic"])
def test_group_progress_message_has_a_stop_button_stays_in_limits_and_is_replaced(
    live: Any, thread_id: int | None
) -> None:
    post(live, 31, "@agent_test_bot long task", chat_id=GROUP, thread_id=thread_id)
    worker = drain_in_background(live)
    wait_for(lambda: any(m.get("reply_markup") for m in live.replies(GROUP)), what="a progress message")
    [progress] = live.replies(GROUP)
    answers: list[dict[str, Any]] = []
    took = stop_and_measure(
        live, lambda: answers.append(post_raw(live, live.telegram.press_button(progress)))
    )
    worker.join(timeout=60)
    assert took < STOPPED_WITHIN_S
    assert answers[0]["method"] == "answerCallbackQuery" and answers[0]["text"] == "Stopping…"
    texts = [m["text"] for m in live.replies(GROUP)]  # the progress message is gone
    assert texts == ["Working on it: first the slow part.\n\n⏹ Stopped."]
    assert live.telegram.group_limited == []
    assert live.telegram.drafts(GROUP) == []
    if thread_id:  # progress and answer in the topic
        assert all(
            c.params.get("message_thread_id") == thread_id
            for c in live.telegram.calls("sendMessage")
            if c.params.get("chat_id") == GROUP
        )


def test_a_message_starting_with_a_slash_or_naming_a_file_with_an_at_is_words_for_the_model(
    live: Any, tmp_path: Path
) -> None:
    """The CLI acts on its own syntax in a prompt: "/clear" wiped the conversation and answered
    "(I have nothing to add.)", "/model" answered with the CLI's model list (and "/model
    opus" would switch it), and "@/some/file" had the CLI read that file for the model, past
    the approval gate and the tools' sandbox. A user's words go to the model, as typed (but
    for an invisible word joiner before such a "/", or an "@" before a path that leaves the
    session's folder)."""
    secret = tmp_path / "not-for-users.txt"
    secret.write_text(f"marker {uuid.uuid4().hex}\n")
    texts = [
        "hello",
        "/clear",
        "/model",
        f"what is in @{secret} ?",
        f"@{secret}",
        f'read @"{secret}" please',
        "!cat /etc/hostname",
        "# remember x",
        "use @property and @types/node, ask @alice",
    ]
    for number, text in enumerate(texts):
        post(live, 4000 + number, text)
        live.drain(live.consumer())
    answers = [m["text"].replace("\u2060", "") for m in live.replies(501)]
    assert answers[:3] == ["turns=1 last=hello", "turns=2 last=/clear", "turns=3 last=/model"]
    assert [answer.split(" last=")[0] for answer in answers[3:6]] == ["turns=4", "turns=5", "turns=6"]
    assert answers[6:8] == ["turns=7 last=!cat /etc/hostname", "turns=8 last=# remember x"], answers
    # A decorator, a package's scope and a handle name no file outside: they reach the model
    # untouched (a model copying an invisible character into code would break the code).
    assert live.replies(501)[8]["text"] == "turns=9 last=use @property and @types/node, ask @alice"
    asked = json.dumps([call.body for call in live.model.model_calls])
    assert secret.read_text().strip() not in asked
