"""A model that accepts the turn's calls and never answers, or asks to wait long (429/529 with
``retry-after``): the turn ends in seconds with why, instead of the CLI waiting minutes per call
and the queue's five tries making it half an hour of "typing…". Real CLI (its own retries at
the default MODEL_MAX_RETRIES=2), scripted model, a short MODEL_SILENCE_S."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from local_stack import CallUsage, ModelFault, blackholed_endpoint, refusing_endpoint
from session_core import LiveTurns, SessionKey, SessionRegistry, configure_logging

pytestmark = pytest.mark.slow

SILENCE_S = 2
# The CLI's own request timeout, short too: without the proxy's bound, its three tries take 30 s.
QUICK = {"MODEL_SILENCE_S": str(SILENCE_S), "MODEL_MAX_RETRIES": "2", "MODEL_TIMEOUT_MS": "10000"}
# Longer than any bound of the turn: the model would answer only after everyone gave up.
NEVER_S = 60.0
# The CLI's start, two silences and the CLI's back-off between its tries, on a loaded machine.
ENDS_WITHIN_S = 20.0


def _logged(capsys: pytest.CaptureFixture[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the JSON log lines on stderr, the EMF metric lines on stdout) so far."""
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    metrics = [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]
    return lines, metrics


BEDROCK = {
    "CLAUDE_CODE_USE_BEDROCK": "1",
    "ANTHROPIC_API_KEY_PARAMETER": "",
    "BEDROCK_MODEL_ID": "anthropic.claude-sonnet-4-5-v1:0",
}


# Bedrock's answer streams as the Messages API's does (the CLI's 1-token start-up checks of its
# default models, not streamed, never reach the model: see test_bedrock_models). The silence
# within a stream is the Messages API's case.
@pytest.mark.parametrize(
    ("backend", "silent_after_events"),
    [("anthropic", None), ("anthropic", 1), ("bedrock", None)],
    ids=["before_answer", "mid_answer", "bedrock"],
)
def test_a_model_that_never_answers_ends_the_turn_in_seconds_named_for_the_operator(
    make_runtime, model_server, turn_request, aws, capsys, backend, silent_after_events
) -> None:
    model_server.usage = CallUsage(input_tokens=1000)
    model_server.inject(ModelFault(silent_s=NEVER_S, silent_after_events=silent_after_events), times=10)
    env = dict(QUICK)
    silence_s, setting = SILENCE_S, "MODEL_SILENCE_S"
    if backend == "bedrock":
        env |= BEDROCK | {"ANTHROPIC_BEDROCK_BASE_URL": model_server.base_url}
    runtime = make_runtime(env=env)
    configure_logging(json_lines=True)
    key = f"default/{1401 + (backend == 'bedrock') * 2 + (silent_after_events is not None)}/0"

    started = time.monotonic()
    failed = runtime.run_turn(turn_request("hello?", turn_id=1, session_key=key))
    took = time.monotonic() - started

    assert failed.error_kind == "model_error" and failed.error_reason == "model_silent", failed
    assert not failed.retryable  # the queue's tries would wait as long again, four times
    assert took < ENDS_WITHIN_S, f"the turn took {took:.1f} s"
    # Two calls were given up on; the CLI's further try (or its non-streamed fallback) was
    # refused without reaching the model.
    assert len(model_server.model_calls) == 2
    lines, metrics = _logged(capsys)
    silent = [line for line in lines if line["event"] == "model_proxy.model_silent"]
    assert [line["during"] for line in silent] == [
        "before_answer" if silent_after_events is None else "answer"
    ] * 2
    assert all(line["setting"] == setting and line["session_key"] == key for line in silent), silent
    assert all(line["silent_s"] == silence_s for line in silent), silent
    # The alarm's mail sends the operator to these lines for the model and the endpoint.
    # (Bedrock names the model in the path, the Messages API in the body; calls may overlap.)
    asked = [call.body.get("model") or call.path for call in model_server.model_calls]
    assert all(line["model"] and any(line["model"] in where for where in asked) for line in silent), silent
    assert {line["upstream"] for line in silent} == {model_server.base_url}, silent
    [turn_line] = [line for line in lines if line["event"] == "turn.model_silent"]
    assert turn_line["silence_s"] == SILENCE_S
    assert [m["ModelSilent"] for m in metrics if "ModelSilent" in m] == [1]
    # What the calls reported before they went silent is paid for, and counted once.
    registry = SessionRegistry(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    record = registry.get_session(SessionKey.parse(key))
    if silent_after_events is None:
        assert failed.cost_usd == 0 and (record is None or record.cost_usd == 0)
    else:
        assert failed.cost_usd > 0 and record is not None
        assert record.cost_usd == pytest.approx(failed.cost_usd)

    model_server.clear_faults()
    after = runtime.run_turn(turn_request("and now?", turn_id=2, session_key=key))
    assert after.ok and after.text == "turns=1 last=and now?", after  # the silent turn left out
    record = registry.get_session(SessionKey.parse(key))
    assert record is not None and record.cost_usd == pytest.approx(failed.cost_usd + after.cost_usd)


def test_a_stop_while_the_model_is_silent_ends_the_turn_at_once(
    aws, make_runtime, model_server, turn_request
) -> None:
    model_server.inject(ModelFault(silent_s=NEVER_S), times=10)
    runtime = make_runtime(env={**QUICK, "MODEL_SILENCE_S": "50", "MODEL_TIMEOUT_MS": "60000"})
    key_text = "default/1410/0"
    key = SessionKey.parse(key_text)
    live = LiveTurns(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    results: list[Any] = []
    turn = threading.Thread(
        target=lambda: results.append(
            runtime.run_turn(turn_request("hello?", turn_id=1, session_key=key_text))
        )
    )
    turn.start()
    deadline = time.monotonic() + 30
    while not model_server.model_calls or live.progress(key, 1) is None:
        assert time.monotonic() < deadline, "the model call never started"
        time.sleep(0.05)

    stop_at = time.monotonic()
    assert live.request_stop(key) == "stopping"
    turn.join(timeout=30)
    took = time.monotonic() - stop_at
    [stopped] = results
    assert stopped.ok and stopped.stopped, stopped
    assert took < 5.0, f"the stop took {took:.1f} s"
    assert len(model_server.model_calls) == 1


@pytest.mark.parametrize("status", [429, 529])
def test_a_model_that_asks_to_wait_long_fails_the_turn_at_once_with_the_wait(
    make_runtime, model_server, turn_request, capsys, status
) -> None:
    error_type = "rate_limit_error" if status == 429 else "overloaded_error"
    model_server.inject(ModelFault(status=status, error_type=error_type, retry_after_s=120), times=10)
    runtime = make_runtime(env=QUICK)
    configure_logging(json_lines=True)

    started = time.monotonic()
    failed = runtime.run_turn(turn_request("hello?", turn_id=1, session_key=f"default/{1420 + status}/0"))
    took = time.monotonic() - started

    assert failed.error_kind == "model_error" and failed.retryable, failed
    assert failed.retry_after_s == 120  # the queue waits it out, not the CLI in "typing…"
    assert took < ENDS_WITHIN_S, f"the turn took {took:.1f} s"
    assert len(model_server.model_calls) == 1  # the CLI's tries after it were refused at once
    lines, _ = _logged(capsys)
    [asked] = [line for line in lines if line["event"] == "model_proxy.model_asks_to_wait"]
    assert (asked["status"], asked["retry_after_s"]) == (status, 120)


def test_a_short_retry_after_is_still_waited_out_within_the_turn(
    make_runtime, model_server, turn_request
) -> None:
    model_server.inject(ModelFault(status=529, error_type="overloaded_error", retry_after_s=2))
    runtime = make_runtime(env=QUICK)

    answered = runtime.run_turn(turn_request("hello?", turn_id=1, session_key="default/1430/0"))

    assert answered.ok and answered.text == "turns=1 last=hello?", answered
    assert len(model_server.model_calls) == 2


def _slow_whole_answer(model_server: Any) -> None:
    """The model takes twice MODEL_SILENCE_S to answer a call that is not streamed: the
    fallback the CLI makes when the stream's endpoint is not found (404)."""
    model_server.inject(ModelFault(status=404, error_type="not_found_error"))
    model_server.inject(ModelFault(silent_s=2 * SILENCE_S))


@pytest.mark.parametrize("backend", ["anthropic", "bedrock"])
def test_a_whole_answer_that_is_not_streamed_is_waited_for_past_the_silence_bound(
    make_runtime, model_server, turn_request, capsys, backend
) -> None:
    """Such a call sends nothing until its answer is ready (minutes for a long one): the silence
    bound cut it, and the turn ended with "the AI model stopped answering"."""
    env = dict(QUICK)
    if backend == "bedrock":
        env |= BEDROCK | {"ANTHROPIC_BEDROCK_BASE_URL": model_server.base_url}
    _slow_whole_answer(model_server)
    runtime = make_runtime(env=env)
    configure_logging(json_lines=True)
    key = f"default/{1440 + (backend == 'bedrock')}/0"

    answered = runtime.run_turn(turn_request("hello?", turn_id=1, session_key=key))

    assert answered.ok and answered.text == "turns=1 last=hello?", answered
    unstreamed = [
        call
        for call in model_server.model_calls
        if not (call.path.endswith("/invoke-with-response-stream") or (call.body or {}).get("stream"))
    ]
    assert unstreamed, model_server.model_calls
    lines, metrics = _logged(capsys)
    assert [line for line in lines if line["event"] == "model_proxy.model_silent"] == []
    assert not [m for m in metrics if "ModelSilent" in m]


@pytest.mark.parametrize(
    ("endpoint", "error"),
    [(refusing_endpoint, "ConnectionRefusedError"), (blackholed_endpoint, "TimeoutError")],
    ids=["refused", "blackholed"],
)
def test_a_model_endpoint_that_cannot_be_reached_is_named_so_not_as_a_silent_model(
    make_runtime, turn_request, capsys, endpoint, error
) -> None:
    """A blackholed endpoint was taken for a silent model ("the AI model stopped answering"),
    a refusing one for any model error, with nothing logged of why."""
    with endpoint() as base_url:
        runtime = make_runtime(env={**QUICK, "ANTHROPIC_BASE_URL": base_url})
        configure_logging(json_lines=True)
        key = f"default/{1450 + (error == 'TimeoutError')}/0"

        started = time.monotonic()
        failed = runtime.run_turn(turn_request("hello?", turn_id=1, session_key=key))
        took = time.monotonic() - started

    assert failed.error_kind == "model_error" and failed.error_reason == "model_unreachable", failed
    assert failed.retryable  # a network path may come back by the queue's next try
    assert took < ENDS_WITHIN_S, f"the turn took {took:.1f} s"
    lines, metrics = _logged(capsys)
    unreachable = [line for line in lines if line["event"] == "model_proxy.model_unreachable"]
    assert unreachable and {line["upstream"] for line in unreachable} == {base_url}, unreachable
    assert {line["error"] for line in unreachable} == {error}
    assert [line for line in lines if "model_silent" in line["event"]] == []
    [turn_line] = [line for line in lines if line["event"] == "turn.model_unreachable"]
    assert turn_line["unreachable_calls"] == len(unreachable)
    assert [m["ModelUnreachable"] for m in metrics if "ModelUnreachable" in m] == [1]
    assert not [m for m in metrics if "ModelSilent" in m]


def test_a_turn_that_also_met_an_unreachable_endpoint_still_waits_what_the_model_asked() -> None:
    """A call that could not connect (a network blip) and then the model's 429 asking to wait
    a minute: the retry went to the queue at once (only to be refused again) and the user was
    told, at the last try, the model could not be reached."""
    from agent_runtime._model_unanswered import unanswered
    from agent_runtime._usage_meter import MeteredSpend
    from session_core import TURN_VERSION, TurnResult

    failed = TurnResult(
        version=TURN_VERSION,
        session_key="default/1460/0",
        turn_id=1,
        error_kind="model_error",
        retryable=True,
    )
    spend = MeteredSpend(unreachable_calls=1, retry_after_s=60.0)

    told = unanswered(failed, spend, tenant="default")

    assert told.retryable and told.retry_after_s == 60.0, told


def test_a_whole_answer_never_ready_is_named_by_the_setting_that_gave_it_up(
    make_runtime, model_server, turn_request, capsys
) -> None:
    """A call not streamed (the CLI's fallback after a stream's 404) is given up after
    MODEL_TIMEOUT_MS: the turn's line said MODEL_SILENCE_S and its seconds, sending the
    operator to the wrong setting."""
    model_server.inject(ModelFault(status=404, error_type="not_found_error"))
    model_server.inject(ModelFault(silent_s=NEVER_S), times=10)
    runtime = make_runtime(env=QUICK | {"MODEL_TIMEOUT_MS": "4000"})
    configure_logging(json_lines=True)

    failed = runtime.run_turn(turn_request("hello?", turn_id=1, session_key="default/1470/0"))

    assert failed.error_reason == "model_silent", failed
    lines, _metrics = _logged(capsys)
    silent = [line for line in lines if line["event"] == "model_proxy.model_silent"]
    assert "MODEL_TIMEOUT_MS" in {line["setting"] for line in silent}, silent
    [turn_line] = [line for line in lines if line["event"] == "turn.model_silent"]
    assert (turn_line["silence_s"], turn_line["setting"]) == (silent[-1]["silent_s"], silent[-1]["setting"])
