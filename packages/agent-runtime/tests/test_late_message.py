"""A message that reaches the agent late (an outage, a queue behind a slow turn, Telegram
redelivering a failed webhook) is answered knowing when it was sent: before, yesterday's "good
morning" was answered at night as if just said. A prompt answered promptly carries no note.
Real CLI, scripted model server, moto."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from local_stack import last_user_text

pytestmark = pytest.mark.slow

NOW = datetime(2026, 12, 7, 12, 24, 30, tzinfo=UTC).timestamp()


def _epoch(*when: int) -> int:
    return int(datetime(*when, tzinfo=UTC).timestamp())


def test_a_message_answered_hours_after_it_was_sent_tells_the_agent_when(
    make_dated_runtime, model_server, turn_request, lease_clock
) -> None:
    lease_clock.now = NOW
    sent = _epoch(2026, 12, 7, 9, 12)

    result = make_dated_runtime().run_turn(
        turn_request("is the site down right now?", turn_id=1, sent_at_epoch_s=sent)
    )

    assert result.ok, result
    prompt = last_user_text(model_server.model_calls[-1].body)
    assert "the message below was sent 3 h 12 min ago, at 09:12 UTC" in prompt
    assert prompt.endswith("\n\nis the site down right now?")


def test_a_message_of_yesterday_says_its_date(
    make_dated_runtime, model_server, turn_request, lease_clock
) -> None:
    lease_clock.now = NOW
    sent = _epoch(2026, 12, 6, 8, 5)

    assert make_dated_runtime().run_turn(turn_request("good morning", turn_id=1, sent_at_epoch_s=sent)).ok

    prompt = last_user_text(model_server.model_calls[-1].body)
    assert "was sent 1 d 4 h ago, at 08:05 UTC on 2026-12-06" in prompt


def test_a_message_answered_within_minutes_gets_no_note(
    make_dated_runtime, model_server, turn_request, lease_clock
) -> None:
    lease_clock.now = NOW
    sent = int(NOW) - 4 * 60  # a slow turn ahead of it, not a late message

    result = make_dated_runtime().run_turn(turn_request("hello", turn_id=1, sent_at_epoch_s=sent))

    assert result.ok, result
    assert last_user_text(model_server.model_calls[-1].body) == "hello"
