"""What a turn costs: each turn's own price, not the SDK session's running total."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from session_core import SessionKey, SessionRegistry

from agentbot.model_server import CallUsage, ModelServer

from .conftest import flow_responder

KEY = "default/1001/0"
# Every model call reports exactly this usage, so every one-call turn has one price.
PER_CALL = CallUsage(input_tokens=1000, output_tokens=100)


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    with ModelServer(flow_responder, usage=PER_CALL) as server:
        yield server


def test_twenty_resumed_turns_each_cost_one_turns_price(
    make_runtime, model_server, turn_request, fresh_container, aws
) -> None:
    registry = SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table)
    results = []
    runtime = make_runtime()
    for update_id in range(1, 21):
        if update_id % 7 == 0:  # now and then a new container resumes from the store
            fresh_container()
            runtime = make_runtime()
        result = runtime.run_turn(turn_request(f"message {update_id}", update_id=update_id))
        assert result.ok, result
        results.append(result)

    price = results[0].cost_usd
    assert price > 0
    assert len(model_server.model_calls) == 20  # one call per turn
    assert {r.session_id for r in results} == {results[0].session_id}  # all one SDK session
    assert [r.cost_usd for r in results] == pytest.approx([price] * 20, rel=1e-9)
    assert all((r.usage.input_tokens, r.usage.output_tokens) == (1000, 100) for r in results)
    # The CLI's own running total after 20 turns is what the chat was charged, no more.
    assert results[-1].session_cost_usd == pytest.approx(20 * price, rel=1e-9)
    record = registry.get_session(SessionKey.parse(KEY))
    assert record is not None and record.turns == 20
    assert record.cost_usd == pytest.approx(20 * price, rel=1e-9)
    assert record.conversation_cost_usd == pytest.approx(20 * price, rel=1e-9)

    fresh = runtime.run_turn(turn_request("start over", update_id=21, new_session=True))
    assert fresh.ok and fresh.session_id != results[0].session_id
    assert fresh.cost_usd == pytest.approx(price, rel=1e-9)  # a new SDK session: its whole total
    record = registry.get_session(SessionKey.parse(KEY))
    assert record is not None and (record.turns, record.conversation_turns) == (21, 1)
    assert record.conversation_cost_usd == pytest.approx(price, rel=1e-9)
    assert record.cost_usd == pytest.approx(21 * price, rel=1e-9)


def test_a_turn_over_its_cost_cap_stops_in_the_cli_and_its_cost_still_counts(
    make_runtime, model_server, turn_request, aws
) -> None:
    registry = SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table)
    runtime = make_runtime()
    first = runtime.run_turn(turn_request("hello", update_id=1))
    assert first.ok, first
    price = first.cost_usd  # one model call

    # A tool step needs a second call; a cap below one call's price stops the run after the first.
    capped = runtime.run_turn(turn_request("bash: echo hi", update_id=2, max_cost_usd=price / 2))
    assert capped.error_kind == "model_error" and not capped.retryable, capped
    assert "cost more than one message may spend" in (capped.user_message or "")
    assert capped.cost_usd == pytest.approx(price, rel=1e-9)  # what the stopped run paid
    assert len(model_server.model_calls) == 2  # the CLI stopped before the tool's second call

    after = runtime.run_turn(turn_request("and now?", update_id=3))
    assert after.ok and after.cost_usd == pytest.approx(price, rel=1e-9), after
    record = registry.get_session(SessionKey.parse(KEY))
    assert record is not None and record.turns == 2  # the stopped run is no recorded turn
    assert record.cost_usd == pytest.approx(3 * price, rel=1e-9)  # but what it paid counts
