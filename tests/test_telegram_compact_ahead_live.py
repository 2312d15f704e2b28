"""A long chat of photos, from the user's side, with nothing stubbed between the user and the
model: the real runtime runs the real CLI, whose Read tool keeps each photo the agent looks at
in the transcript as base64 (~1.3 MB of history for a 480 KB photo, few tokens), so the CLI
never compacts on its own. With the runtime's memory low enough that three photos put the
history near its limit, the runtime has the CLI summarise the chat before the next message
(agent-runtime's test_compact_ahead): the user keeps getting answers where the chat used to be
refused, and is told what it cost and that the chat was summarised."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_runtime._history_limit import BASE_MIB, HEADROOM, MIB_PER_HISTORY_MB
from agentbot_testing import noise_png
from agentbot_testing.telegram_support import update
from local_stack import (
    CallUsage,
    ModelFault,
    ModelServer,
    ToolCall,
    is_summary_request,
    last_user_text,
    tool_results,
)

pytestmark = pytest.mark.slow
CHAT = 501
SIDE = 400  # pixels: a 480 KB photo, ~1.3 MB of transcript once read
# A history never compacted may reach about this many MB: three photos' is past 80 % of it
# (the fourth message is compacted ahead, or else warned), four photos' past all of it (the
# fifth message would be refused).
LIMIT_MB = 4.3
MEMORY_MB = math.ceil((BASE_MIB + MIB_PER_HISTORY_MB * LIMIT_MB) / (1 - HEADROOM))
# Every call reports this usage; the summary costs SUMMARY_CALLS times as much, to tell it apart.
PER_CALL = CallUsage(input_tokens=1_000, output_tokens=100)
SUMMARY_CALLS = 20
SUMMARY_USAGE = CallUsage(PER_CALL.input_tokens * SUMMARY_CALLS, PER_CALL.output_tokens * SUMMARY_CALLS)
SUMMARY = "<summary>The user shares a photo of their garden every day.</summary>"
REFUSED = "This conversation has grown too long for me to continue"
WARNED = "⚠️ This conversation is long"


def looks_at_photos(model: ModelServer) -> Any:
    """A model that reads each photo the user sends (asking Bash where it works first: Read
    takes an absolute path) and then says so; its summary costs SUMMARY_CALLS calls."""

    def respond(request: dict[str, Any]) -> Any:
        summary = is_summary_request(request)
        # The usage is read after the reply is chosen: the summary's is that call's own.
        model.usage = SUMMARY_USAGE if summary else PER_CALL
        if summary:
            return SUMMARY
        text = last_user_text(request)
        photo = re.search(r"attachments/\S+\.jpg", text)
        results = tool_results(request)
        if photo and not results:
            return [ToolCall(name="Bash", input={"command": "pwd", "description": "where am I"})]
        if photo and results[-1].startswith("/"):
            return [ToolCall(name="Read", input={"file_path": f"{results[-1].strip()}/{photo.group(0)}"})]
        caption = text.split("\n", 1)[0]
        return f"What a garden on {caption}." if results else f"You said: {caption}"

    return respond


@pytest.fixture
def stack(aws: Any, tmp_path: Path, tools_config: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from agentbot_testing.telegram_stack import real_runtime_stack

    monkeypatch.setenv("MAX_TURN_COST_USD", "5")  # the summary fits in one turn
    monkeypatch.setenv("BUDGET_CHAT_DAILY_USD", "100")  # for /cost
    with real_runtime_stack(
        aws, tmp_path, monkeypatch, config=tools_config, responder=lambda _: "", runtime_memory_mb=MEMORY_MB
    ) as stack:
        stack.model.responder = looks_at_photos(stack.model)
        yield stack


def send_photo(stack: Any, day: int) -> None:
    file_id = stack.telegram.add_file(noise_png(SIDE, seed=day), file_path=f"photos/garden{day}.jpg")
    photo = [{"file_id": file_id, "file_unique_id": f"g{day}", "width": SIDE, "height": SIDE}]
    stack.post(update(900 + day, message_id=90 + day, text=None, photo=photo, caption=f"day {day}"))


def texts(stack: Any) -> list[str]:
    return [m["text"] for m in stack.replies(CHAT) if "text" in m]


def usd(footer: str) -> float:
    return float(re.search(r"\$(\d+\.\d+)_?$", footer).group(1))  # type: ignore[union-attr]


def test_a_chat_of_photos_is_summarised_ahead_and_goes_on_past_where_it_was_refused(stack) -> None:
    consumer = stack.consumer()
    stack.post(update(899, text="/usage on"))
    for day in range(1, 6):
        send_photo(stack, day)
    stack.drain(consumer)

    answers = texts(stack)[1:]
    assert len(answers) == 5, answers
    assert not any(REFUSED in answer for answer in answers), answers
    for day, answer in enumerate(answers, start=1):
        assert answer.startswith(f"What a garden on day {day}.\n\n"), answer
    # The fourth message found the history past 80 % of its limit and had it summarised first:
    # the summarised history is well inside its own, so no answer warns (see the failed one).
    assert not any(WARNED in answer for answer in answers), answers
    # The fourth message was run after the summary, paid as its turn: four calls' worth more.
    lines = [answer.rsplit("\n\n", 1)[-1] for answer in answers]
    assert lines[2].startswith("3,000 tokens in · 300 out · $"), lines
    summarised = (SUMMARY_CALLS + 3) * PER_CALL.input_tokens
    assert lines[3].startswith(f"{summarised:,} tokens in · {summarised // 10:,} out · $"), lines
    assert usd(lines[3]) == pytest.approx(usd(lines[2]) * (SUMMARY_CALLS + 3) / 3, rel=0.05)
    summary_calls = [c for c in stack.model.model_calls if is_summary_request(c.body or {})]
    assert len(summary_calls) == 1  # and none again for the fifth: the summarised chat is small

    stack.post(update(910, text="/status"))
    stack.post(update(911, text="/cost"))
    stack.drain(consumer)
    status, cost = texts(stack)[-2:]
    assert re.search(r"Summarised: \d+ (s|min) ago \(it grew too long for me", status), status
    spent = sum(usd(line) for line in lines)
    assert f"This conversation (since /new): 5 turns, ${spent:.4f}" in status, status
    assert f"This chat, today: ${spent:.2f} of $100.00" in cost, cost


def test_a_chat_whose_summary_fails_still_gets_its_answer_with_the_warning(stack) -> None:
    consumer = stack.consumer()
    for day in range(1, 4):
        send_photo(stack, day)
    stack.drain(consumer)
    calls = len(stack.model.model_calls)

    stack.model.inject(ModelFault(status=500))  # the turn's first call: the summary
    send_photo(stack, 4)
    stack.post(update(910, text="/status"))
    stack.drain(consumer)

    assert is_summary_request(stack.model.model_calls[calls].body or {})
    answer, status = texts(stack)[-2:]
    assert answer.startswith("What a garden on day 4.\n\n"), answer
    assert answer.count(WARNED) == 1, answer
    assert "Summarised: no" in status, status
