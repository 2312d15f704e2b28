"""/status and /new: the chat's conversation and totals, as the session registry keeps them."""

from __future__ import annotations

from typing import Any

from session_core import TURN_VERSION, DynamoTable, SessionKey, SessionRegistry, TurnResult
from sqs_consumer import run_command
from telegram_core import ChatSettings

KEY = SessionKey.parse("default/1001/0")
_DAY_S = 86_400


def test_status_after_the_history_expired_says_the_next_message_starts_a_new_conversation(
    aws: Any,
) -> None:
    """A chat quiet for SessionTtlDays (25): its history expired, though DynamoDB's lagging TTL
    sweep may keep its record for days. /status showed that record's session, turns and cost
    as the conversation going on; it says the conversation expired. The chat's total stays."""
    now = 1_760_000_000.0
    tables = {"dynamodb": aws.dynamodb, "table": aws.resources.table}
    registry = SessionRegistry(**tables, clock=lambda: now)
    session = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
    _answer(registry, KEY, 1, session, cost_usd=0.25)

    def status(days_later: int) -> str:
        return _command_days_later("status", KEY, registry, tables, now + days_later * _DAY_S)

    assert "<b>This conversation</b> (since /new): 1 turn, $0.2500" in status(24)
    expired = status(25)
    assert session not in expired
    assert (
        "<b>This conversation</b>: expired after 25 days without a message; "
        "your next message starts a new one"
    ) in expired
    assert "<b>This chat in total</b>: 1 turn, $0.2500" in expired


def test_status_after_a_first_message_that_broke_off_past_its_tools_names_no_session(aws: Any) -> None:
    """The chat's first message ran a tool and never got an answer: the registry names its
    session so that a retry resumes after the tool, but the next message starts the
    conversation in a new one. /status showed the broken-off session as the conversation's,
    and its id changed with the next answer though nobody sent /new."""
    now = 1_760_000_000.0
    tables = {"dynamodb": aws.dynamodb, "table": aws.resources.table}
    registry = SessionRegistry(**tables, clock=lambda: now)
    lease = registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    registry.keep_unfinished_session(lease, "sdk-broken-off", session_cost_usd=0.05)
    registry.add_failed_turn_cost(KEY, 0.05)
    registry.release_lease(lease)

    status = _command_days_later("status", KEY, registry, tables, now)

    assert "sdk-broken-off" not in status
    assert "<b>Session</b>: <code>none yet (next message starts one)</code>" in status
    assert "<b>This conversation</b> (since /new): 0 turns, $0.0500" in status

    _answer(registry, KEY, 2, "sdk-next", cost_usd=0.25)
    answered = _command_days_later("status", KEY, registry, tables, now)
    assert "<b>Session</b>: <code>sdk-next</code>" in answered
    assert "<b>This conversation</b> (since /new): 1 turn, $0.3000" in answered


def test_status_after_an_expired_history_and_a_broken_off_first_message_shows_the_new_conversation(
    aws: Any,
) -> None:
    """Past its retention the chat's first message ran a tool and broke off: the runtime names
    its session and starts the conversation's figures again. /status showed that session
    with the expired conversation's turns and cost, and added the next answer to them."""
    now = 1_760_000_000.0
    tables = {"dynamodb": aws.dynamodb, "table": aws.resources.table}
    registry = SessionRegistry(**tables, clock=lambda: now)
    _answer(registry, KEY, 1, "sdk-expired", cost_usd=0.25)
    now += 26 * _DAY_S
    lease = registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    registry.add_failed_turn_cost(KEY, 0.05)
    registry.keep_unfinished_session(
        lease, "sdk-broken-off", session_cost_usd=0.05, conversation_cost_usd=0.05
    )
    registry.release_lease(lease)

    broken = _command_days_later("status", KEY, registry, tables, now)
    assert "<b>Session</b>: <code>none yet (next message starts one)</code>" in broken
    assert "<b>This conversation</b> (since /new): 0 turns, $0.0500" in broken
    assert "<b>This chat in total</b>: 1 turn, $0.3000" in broken

    _answer(registry, KEY, 2, "sdk-broken-off", cost_usd=0.25)
    answered = _command_days_later("status", KEY, registry, tables, now)
    assert "<b>Session</b>: <code>sdk-broken-off</code>" in answered
    assert "<b>This conversation</b> (since /new): 1 turn, $0.3000" in answered
    assert "<b>This chat in total</b>: 2 turns, $0.5500" in answered


def test_new_after_the_history_expired_does_not_say_the_previous_conversation_is_kept(aws: Any) -> None:
    """/new in a chat quiet for SessionTtlDays said the previous conversation "is kept for 25
    days", though it had expired (and /status said so): it just starts a fresh one."""
    now = 1_760_000_000.0
    tables = {"dynamodb": aws.dynamodb, "table": aws.resources.table}
    registry = SessionRegistry(**tables, clock=lambda: now)
    for chat, turn in ((KEY, 1), (SessionKey.parse("default/1002/0"), 2)):
        _answer(registry, chat, turn, f"s-{turn}")

    def new(key: SessionKey, days_later: int) -> str:
        return _command_days_later("new", key, registry, tables, now + days_later * _DAY_S)

    assert new(KEY, 25) == "Started a fresh conversation."
    assert "The previous one is kept for 1 more day" in new(SessionKey.parse("default/1002/0"), 24)


def test_new_after_weeks_of_quiet_says_how_long_the_previous_conversation_is_still_kept(aws: Any) -> None:
    """The previous conversation's history lives SessionTtlDays (25) after its last message,
    and /new does not extend it. After 20 quiet days /new said it "is kept for 25 days", though
    it is gone 5 days later."""
    now = 1_760_000_000.0
    tables = {"dynamodb": aws.dynamodb, "table": aws.resources.table}
    registry = SessionRegistry(**tables, clock=lambda: now)
    chats = [SessionKey.parse(f"default/{chat}/0") for chat in (1003, 1004, 1005)]
    for turn, chat in enumerate(chats, start=1):
        _answer(registry, chat, turn, f"s-{turn}")

    def new(key: SessionKey, days_later: float) -> str:
        return _command_days_later("new", key, registry, tables, now + days_later * _DAY_S)

    assert new(chats[0], 0) == (
        "Started a fresh conversation. The previous one is kept for 25 days but I will not draw on "
        "it any more."
    )
    assert "The previous one is kept for 5 more days but" in new(chats[1], 20)
    # Under a day left it says hours, rounded down: "1 more day" with 3 hours left misled.
    assert "The previous one is kept for 12 more hours but" in new(chats[2], 24.5)


def test_status_after_a_failed_message_counts_the_chat_as_used_then(aws: Any) -> None:
    """The last answer came 26 days ago, but a message 6 days ago ran and failed (its cost
    counted): its history was written then and still reads. /status said the conversation
    expired after 25 days without a message."""
    now = 1_760_000_000.0
    tables = {"dynamodb": aws.dynamodb, "table": aws.resources.table}
    registry = SessionRegistry(**tables, clock=lambda: now)
    _answer(registry, KEY, 1, "s-1", cost_usd=0.25)
    now += 20 * _DAY_S
    registry.add_failed_turn_cost(KEY, 0.05, continued_session=True)

    status = _command_days_later("status", KEY, registry, tables, now + 6 * _DAY_S)
    assert "<b>Session</b>: <code>s-1</code>" in status
    assert "<b>This conversation</b> (since /new): 1 turn, $0.3000" in status


def test_a_one_day_history_is_not_said_to_last_1_days(aws: Any) -> None:
    """SessionTtlDays may be 1: /new said the previous conversation "is kept for 1 days" and
    /status that it "expired after 1 days without a message"."""
    now = 1_760_000_000.0
    tables = {"dynamodb": aws.dynamodb, "table": aws.resources.table}
    registry = SessionRegistry(**tables, clock=lambda: now)
    chats = [SessionKey.parse(f"default/{chat}/0") for chat in (1006, 1007)]
    for turn, chat in enumerate(chats, start=1):
        _answer(registry, chat, turn, f"s-{turn}")

    new = _command_days_later("new", chats[0], registry, tables, now + 600, retention_days=1)
    assert new == (
        "Started a fresh conversation. The previous one is kept for 1 day but I will not draw on it any more."
    )
    status = _command_days_later("status", chats[1], registry, tables, now + _DAY_S, retention_days=1)
    assert "<b>This conversation</b>: expired after 1 day without a message;" in status


def _answer(
    registry: SessionRegistry, key: SessionKey, turn_id: int, session_id: str, *, cost_usd: float = 0.0
) -> None:
    """Record turn ``turn_id`` of ``key`` as answered in SDK session ``session_id``."""
    lease = registry.acquire_lease(key, owner="runtime-a", duration_s=60)
    result = TurnResult(
        version=TURN_VERSION,
        session_key=key.canonical,
        turn_id=turn_id,
        session_id=session_id,
        cost_usd=cost_usd,
    )
    registry.record_turn(lease, result=result)
    registry.release_lease(lease)


def _command_days_later(
    command: str,
    key: SessionKey,
    registry: SessionRegistry,
    tables: dict[str, Any],
    at: float,
    *,
    retention_days: int = 25,
) -> str:
    """The answer to ``command`` at ``at`` (epoch seconds), with a ``retention_days`` history."""
    return run_command(
        command,
        key,
        registry=registry,
        chat_settings=ChatSettings(DynamoTable(**tables)),
        retention_days=retention_days,
        clock=lambda: at,
    )
