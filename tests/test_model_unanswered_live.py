"""A model that never answers, or that asks to wait (429/529 with ``retry-after``), as the user
meets it through the real stack: producer → moto FIFO → consumer → the real runtime
(awslambdaric, real CLI at its default two retries, scripted model) → the local Bot API.
Short test-time bounds: MODEL_SILENCE_S=2 and the CLI's own request timeout of 10 s."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentbot_testing.telegram_stack import real_runtime_stack
from agentbot_testing.telegram_support import update
from local_stack import ModelFault, ToolCall, last_user_text, refusing_endpoint, tool_results, user_turns
from session_core import configure_logging
from sqs_consumer import FAILURE_WORDING, model_busy_notice

pytestmark = pytest.mark.slow

CHAT = 531


def responder(request: dict[str, Any]) -> str:
    return f"turns={user_turns(request)} last={last_user_text(request)}"


QUICK = {"MODEL_SILENCE_S": "2", "MODEL_MAX_RETRIES": "2", "MODEL_TIMEOUT_MS": "10000"}


@pytest.fixture
def live(aws: Any, tmp_path: Path, tools_config: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with real_runtime_stack(
        aws, tmp_path, monkeypatch, config=tools_config, responder=responder, runtime_env=QUICK
    ) as stack:
        yield stack


def post(stack: Any, update_id: int, text: str) -> None:
    assert stack.post(update(update_id, message_id=update_id, chat_id=CHAT, text=text)) == 200


def texts(stack: Any) -> list[str]:
    return [m["text"] for m in stack.replies(CHAT)]


def test_a_model_that_never_answers_is_told_within_seconds_once_and_the_next_message_is_answered(
    live: Any,
) -> None:
    live.model.inject(ModelFault(silent_s=60), times=100)
    post(live, 1, "hello?")

    started = time.monotonic()
    live.drain(live.consumer())
    took = time.monotonic() - started

    assert texts(live) == [FAILURE_WORDING["model_silent"]]
    # One try of two silences, not five tries of the CLI's three timeouts each.
    assert took < 40, f"the user waited {took:.0f} s"
    assert live.dead_letters() == []  # the model's outage, not the message's fault
    assert live.receive() == []  # acknowledged: not tried again
    log = live.log_path.read_text()
    assert "turn.model_silent" in log and "MODEL_SILENCE_S" in log

    live.model.clear_faults()
    post(live, 2, "and now?")
    live.drain(live.consumer())
    assert texts(live)[1:] == ["turns=1 last=and now?"]


def test_a_model_endpoint_that_refuses_connections_is_told_as_unreachable_after_the_queues_tries(
    aws: Any, tmp_path: Path, tools_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user read "The AI model did not answer this time (it may be busy)", and the
    operator's log said nothing of the endpoint the runtime could not connect to."""
    with (
        refusing_endpoint() as base_url,
        real_runtime_stack(
            aws,
            tmp_path,
            monkeypatch,
            config=tools_config,
            responder=responder,
            runtime_env={"ANTHROPIC_BASE_URL": base_url},  # the CLI's own retries: none
        ) as stack,
    ):
        post(stack, 1, "hello?")
        stack.drain(stack.consumer())

        assert texts(stack) == [FAILURE_WORDING["model_unreachable"]]
        assert len(stack.dead_letters()) == 1  # a network path may come back: tried, then the alarm
        log = stack.log_path.read_text()
        assert "model_proxy.model_unreachable" in log and base_url in log
        assert "model_silent" not in log


def test_a_model_that_goes_silent_after_a_tool_ran_says_the_steps_may_have_run(
    live: Any, tmp_path: Path
) -> None:
    """The model went silent on the call after the agent's tool ran: the user read only "send it
    again in a little while", without the warning every other failure past a tool carries, and
    sending it again appended a second line."""

    append = ToolCall(name="Bash", input={"command": "echo line >> ledger.txt", "description": "append"})

    def silent_from_the_tool_on(request: dict[str, Any]) -> Any:
        if not tool_results(request) and last_user_text(request) == "please append":
            live.model.inject(ModelFault(silent_s=60), times=100)  # every call after the tool ran
            return [append]
        return responder(request)

    live.model.responder = silent_from_the_tool_on
    post(live, 1, "please append")
    live.drain(live.consumer())

    [ledger] = (tmp_path / "sessions").rglob("ledger.txt")
    assert ledger.read_text() == "line\n"
    [told] = texts(live)
    assert told.startswith(FAILURE_WORDING["model_silent"]), told
    assert "may already have run before it stopped" in told, told


def test_a_model_that_asks_to_wait_puts_the_message_off_that_long_and_says_so_once(
    live: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first two tries meet it (the CLI's own retries within a try are refused at once).
    live.model.inject(ModelFault(status=529, error_type="overloaded_error", retry_after_s=120), times=2)
    post(live, 1, "hello?")
    consumer = live.consumer()
    configure_logging(json_lines=True)

    for _ in range(2):
        [message] = live.receive()
        started = time.monotonic()
        response = live.hand_over(consumer, [message], keep_retry_delays=True)
        assert time.monotonic() - started < 30  # not the 120 s slept out in "typing…"
        assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [message["MessageId"]]
        assert live.receive() == []  # hidden for the wait, not back after the usual 10 s
        # As Lambda's event source would, once the wait is over.
        live.aws.sqs.change_message_visibility(
            QueueUrl=live.aws.resources.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert [line["retry_in_s"] for line in logged if line["event"] == "record_retry"] == [120, 120]
    assert texts(live) == [model_busy_notice(120)]  # told once, before the first wait
    assert "in about 2 minutes" in texts(live)[0]

    live.drain(consumer)
    assert texts(live) == [model_busy_notice(120), "turns=1 last=hello?"]
    assert live.dead_letters() == []
