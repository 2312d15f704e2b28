"""/status and /new: the chat's conversation and totals, as the session registry keeps them."""

from __future__ import annotations

from typing import Any

from session_core import TURN_VERSION, DynamoTable, SessionKey, SessionRegistry, TurnResult, session_item_pk
from session_core._registry_keys import META
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
    assert "only stored until it is deleted in 1 day." in new(SessionKey.parse("default/1002/0"), 24)


def test_new_says_it_cannot_be_undone_and_when_the_stored_history_is_deleted(aws: Any) -> None:
    """/new said the previous conversation "is kept for 25 days", but nothing brings it back:
    the user read it as a way back. Its history lives SessionTtlDays (25) after its last message,
    and /new does not extend it: after 20 quiet days it is deleted 5 days later."""
    now = 1_760_000_000.0
    tables = {"dynamodb": aws.dynamodb, "table": aws.resources.table}
    registry = SessionRegistry(**tables, clock=lambda: now)
    chats = [SessionKey.parse(f"default/{chat}/0") for chat in (1003, 1004, 1005)]
    for turn, chat in enumerate(chats, start=1):
        _answer(registry, chat, turn, f"s-{turn}")

    def new(key: SessionKey, days_later: float) -> str:
        return _command_days_later("new", key, registry, tables, now + days_later * _DAY_S)

    assert new(chats[0], 0) == (
        "Started a fresh conversation. I no longer draw on the previous one, and /new cannot be "
        "undone: its history is not kept to come back to, only stored until it is deleted in 25 days."
    )
    assert new(chats[1], 20).endswith(
        "/new cannot be undone: its history is not kept to come back to, only stored until it is "
        "deleted in 5 days."
    )
    # Under a day left it says hours, rounded down: "in 1 day" with 3 hours left would mislead.
    assert new(chats[2], 24.5).endswith("only stored until it is deleted in 12 hours.")


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
    assert new.endswith("only stored until it is deleted in 1 day.")
    status = _command_days_later("status", chats[1], registry, tables, now + _DAY_S, retention_days=1)
    assert "<b>This conversation</b>: expired after 1 day without a message;" in status


def test_status_after_weeks_and_a_new_says_when_the_conversation_and_the_chat_began(aws: Any) -> None:
    """/status's "Age" was the chat's (its first message), read as the conversation's: a user
    who sent /new 3 days ago read "23 d". Both are shown, labelled; one line while they agree."""
    clock = [1_760_000_000.0]
    tables = {"dynamodb": aws.dynamodb, "table": aws.resources.table}
    registry = SessionRegistry(**tables, clock=lambda: clock[0])
    _answer(registry, KEY, 1, "s-1")
    first = _command_days_later("status", KEY, registry, tables, clock[0] + 2 * _DAY_S)
    assert "<b>Age</b>" not in first
    assert first.endswith("<b>This conversation began</b>: 2 d 0 h ago")

    clock[0] += 20 * _DAY_S
    _command_days_later("new", KEY, registry, tables, clock[0])
    clock[0] += _DAY_S
    _answer(registry, KEY, 2, "s-2")

    status = _command_days_later("status", KEY, registry, tables, clock[0] + 2 * _DAY_S)
    assert status.endswith(
        "<b>This conversation began</b>: 3 d 0 h ago\n<b>This chat began</b>: 23 d 0 h ago"
    )


def test_status_does_not_date_a_conversation_begun_after_an_expiry_before_this_release(aws: Any) -> None:
    """A chat's history expired and its next answer began another conversation under the last
    release, which recorded no conversation_started_at: /status said "This conversation
    began" when the chat did (28 days, over an expired conversation), as for the chat's first.
    Its start is unknown: only the chat's is said."""
    clock = [1_760_000_000.0]
    tables = {"dynamodb": aws.dynamodb, "table": aws.resources.table}
    registry = SessionRegistry(**tables, clock=lambda: clock[0])
    _answer(registry, KEY, 1, "s-1")
    clock[0] += 26 * _DAY_S
    _answer(registry, KEY, 2, "s-2", new_conversation=True)
    aws.dynamodb.update_item(  # as the release before recorded that answer
        TableName=aws.resources.table,
        Key={"pk": {"S": session_item_pk(KEY)}, "sk": {"S": META}},
        UpdateExpression="REMOVE conversation_started_at",
    )

    status = _command_days_later("status", KEY, registry, tables, clock[0] + 2 * _DAY_S)
    assert "This conversation began" not in status
    assert status.endswith("<b>This chat began</b>: 28 d 0 h ago")


def test_status_says_when_the_cli_last_summarised_the_conversation(aws: Any) -> None:
    """The CLI compacts a long conversation (the agent keeps only its summary of the earlier
    part) without a word: the user could not tell why the agent forgot what they had said.
    /status says whether and when; a new conversation (/new, or after an expired one) has none."""
    clock = [1_760_000_000.0]
    tables = {"dynamodb": aws.dynamodb, "table": aws.resources.table}
    registry = SessionRegistry(**tables, clock=lambda: clock[0])
    _answer(registry, KEY, 1, "s-1")

    def status(hours_later: float = 0) -> str:
        return _command_days_later("status", KEY, registry, tables, clock[0] + hours_later * 3_600)

    assert "<b>Summarised</b>: no (I still read all of this conversation)" in status()
    clock[0] += _DAY_S
    _answer(registry, KEY, 2, "s-1", summarised=True)
    assert "<b>Summarised</b>: 2 h 0 min ago (it grew too long for me: I now keep only a summary" in (
        status(2)
    )
    _answer(registry, KEY, 3, "s-1")  # a later answer leaves the summary standing
    assert "<b>Summarised</b>: 3 h 0 min ago" in status(3)

    _command_days_later("new", KEY, registry, tables, clock[0])
    assert "<b>Summarised</b>: no" in status()

    _answer(registry, KEY, 4, "s-2", summarised=True)
    clock[0] += 26 * _DAY_S  # expired: the next answer begins another conversation
    _answer(registry, KEY, 5, "s-3", new_conversation=True)
    assert "<b>Summarised</b>: no" in status()
    assert "<b>This conversation began</b>: 0 s ago" in status()


def test_status_does_not_say_a_conversation_begun_before_this_release_was_never_summarised(
    aws: Any,
) -> None:
    """The CLI's compactions are recorded from this release on: a long conversation it
    compacted the day before the upgrade read "Summarised: no (I still read all of this
    conversation)", the very users who wonder why the agent forgot. /status says how long it
    has kept track instead; a chat begun since (or a /new since) still reads "no"."""
    clock = [1_760_000_000.0]
    tables = {"dynamodb": aws.dynamodb, "table": aws.resources.table}
    registry = SessionRegistry(**tables, clock=lambda: clock[0])
    _answer(registry, KEY, 1, "s-1")
    aws.dynamodb.update_item(  # as the release before left it
        TableName=aws.resources.table,
        Key={"pk": {"S": session_item_pk(KEY)}, "sk": {"S": META}},
        UpdateExpression="REMOVE summaries_recorded_since",
    )

    def status(hours_later: float = 0) -> str:
        return _command_days_later("status", KEY, registry, tables, clock[0] + hours_later * 3_600)

    assert "<b>Summarised</b>: unknown (I kept no record of it before my last update)" in status()
    clock[0] += _DAY_S
    _answer(registry, KEY, 2, "s-1")  # the first turn after the upgrade
    assert "<b>Summarised</b>: not in the last 2 h 0 min (I kept no record of it before then)" in status(2)
    _answer(registry, KEY, 3, "s-1", summarised=True)
    assert "<b>Summarised</b>: 1 h 0 min ago" in status(1)

    _command_days_later("new", KEY, registry, tables, clock[0])
    assert "<b>Summarised</b>: no (I still read all of this conversation)" in status()


def _answer(
    registry: SessionRegistry,
    key: SessionKey,
    turn_id: int,
    session_id: str,
    *,
    cost_usd: float = 0.0,
    summarised: bool = False,
    new_conversation: bool = False,
) -> None:
    """Record turn ``turn_id`` of ``key`` as answered in SDK session ``session_id``
    (``summarised``: the CLI compacted the history in it)."""
    lease = registry.acquire_lease(key, owner="runtime-a", duration_s=60)
    result = TurnResult(
        version=TURN_VERSION,
        session_key=key.canonical,
        turn_id=turn_id,
        session_id=session_id,
        cost_usd=cost_usd,
        summarised=summarised,
    )
    registry.record_turn(lease, result=result, new_conversation=new_conversation)
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
