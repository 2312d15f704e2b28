"""What a Telegram user reads when the model provider fails, through the real path: producer →
queue → consumer → the real runtime (awslambdaric, real CLI) → a scripted Messages API that
answers with the provider's errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_stack import ModelFault, last_user_text, user_turns

pytestmark = pytest.mark.slow
CHAT = 611
# The API's answer once a conversation no longer fits the model's context: the CLI compacts
# the history and asks again, and gives up when that summary request is too long as well.
CONTEXT_FULL = ModelFault(status=400, message="prompt is too long: 212000 tokens > 200000 maximum")


def responder(request: dict[str, Any]) -> str:
    return f"turns={user_turns(request)} last={last_user_text(request)}"


@pytest.fixture
def stack(aws: Any, tmp_path: Path, tools_config: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from agentbot_testing.telegram_stack import real_runtime_stack

    with real_runtime_stack(aws, tmp_path, monkeypatch, config=tools_config, responder=responder) as stack:
        yield stack


def send(stack: Any, update_id: int, text: str) -> list[dict[str, Any]]:
    from agentbot_testing.telegram_support import update

    assert stack.post(update(update_id, message_id=update_id, chat_id=CHAT, user_id=CHAT, text=text)) == 200
    return stack.drain(stack.consumer(retry_base_delay_s=0))


def test_a_conversation_too_long_for_the_model_is_told_to_start_afresh_and_new_works(stack) -> None:
    """It was retried five times (each compacting in vain) and then read 'the model may be
    busy, try again in a minute', which every later message of the chat met again."""
    send(stack, 900, "hello")
    stack.model.inject(CONTEXT_FULL, times=100)

    refused = send(stack, 901, "and now?")
    calls_for_it = len(stack.model.model_calls)
    stack.model.clear_faults()  # a new conversation fits
    send(stack, 902, "/new")
    send(stack, 903, "fresh start")

    assert all(not r["batchItemFailures"] for r in refused), refused  # not retried
    assert calls_for_it <= 1 + 6, calls_for_it  # one try's compaction, not five
    replies = [m["text"] for m in stack.replies(CHAT)]
    assert replies[1] == (
        "This conversation has grown too long for the AI model, and I could not shorten it "
        "enough. Send /new to start a fresh one."
    ), replies
    assert replies[-1] == "turns=1 last=fresh start", replies
    assert stack.dead_letters() == []  # the chat's state, not a fault for the operator's alarm
