"""Budget caps in DynamoDB (moto over real HTTP): holds, settling, UTC periods, concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from agentbot_testing import FaultProxy, older_consumer_settling_before_each_catch_up
from local_stack import local_client
from session_core import BudgetCaps, BudgetExceeded, BudgetHold, BudgetLedger, StorageError, period_end

# 2026-12-02 23:59:00 UTC, one minute before the day ends (and 29 days before the month does).
LATE = datetime(2026, 12, 2, 23, 59, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ledger(aws: Any, caps: BudgetCaps, clock: Clock) -> BudgetLedger:
    return BudgetLedger(
        dynamodb=aws.dynamodb, table=aws.resources.table, caps=caps, tenant="default", clock=clock
    )


def test_a_chat_over_its_daily_cap_is_refused_until_midnight_utc(aws) -> None:
    clock = Clock(LATE)
    budget = ledger(aws, BudgetCaps(chat_daily_usd=1.0, turn_usd=0.5), clock)
    for _ in range(2):
        hold = budget.hold(chat_id=7, user_id=42)
        assert isinstance(hold, BudgetHold)
        budget.settle(hold, 0.5)

    refused = budget.hold(chat_id=7, user_id=42)
    assert isinstance(refused, BudgetExceeded)
    assert (refused.scope, refused.period, refused.cap_usd, refused.spent_usd) == ("chat", "day", 1.0, 1.0)
    assert refused.resets_at == datetime(2026, 12, 3, tzinfo=UTC).timestamp()
    assert isinstance(budget.hold(chat_id=8, user_id=42), BudgetHold)  # another chat is not capped by it

    clock.now += 60  # a new UTC day
    assert isinstance(budget.hold(chat_id=7, user_id=42), BudgetHold)


def test_monthly_caps_roll_over_with_the_utc_month(aws) -> None:
    clock = Clock(datetime(2026, 12, 31, 12, tzinfo=UTC).timestamp())
    budget = ledger(aws, BudgetCaps(user_monthly_usd=2.0, turn_usd=1.0), clock)
    budget.settle(budget.hold(chat_id=1, user_id=42), 2.0)  # type: ignore[arg-type]
    refused = budget.hold(chat_id=2, user_id=42)
    assert isinstance(refused, BudgetExceeded) and (refused.scope, refused.period) == ("user", "month")
    assert refused.resets_at == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    clock.now = datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC).timestamp()
    assert isinstance(budget.hold(chat_id=2, user_id=42), BudgetHold)


def test_a_chat_over_its_daily_and_monthly_caps_is_told_the_monthly_reset(aws) -> None:
    """Told "resets at midnight", the user would be refused again at midnight: name the cap
    that holds longest."""
    clock = Clock(LATE)
    budget = ledger(aws, BudgetCaps(chat_daily_usd=1.0, chat_monthly_usd=1.0, turn_usd=0.5), clock)
    budget.settle(budget.hold(chat_id=7, user_id=42), 1.0)  # type: ignore[arg-type]
    refused = budget.hold(chat_id=7, user_id=42)
    assert isinstance(refused, BudgetExceeded) and (refused.scope, refused.period) == ("chat", "month")
    assert refused.resets_at == datetime(2027, 1, 1, tzinfo=UTC).timestamp()


def test_a_cap_spent_outright_is_named_before_a_monthly_one_only_held_by_running_turns(aws) -> None:
    """The chat's daily cap is spent; the user's monthly cap is only held by their turn still
    running in another chat. Named first, the held one would send the user back in a few
    minutes to be refused again until midnight."""
    clock = Clock(LATE)
    budget = ledger(aws, BudgetCaps(chat_daily_usd=1.0, user_monthly_usd=2.0, turn_usd=1.0), clock)
    budget.settle(budget.hold(chat_id=7, user_id=42), 1.0)  # type: ignore[arg-type]
    assert isinstance(budget.hold(chat_id=8, user_id=42), BudgetHold)  # running, not settled
    refused = budget.hold(chat_id=7, user_id=42)
    assert isinstance(refused, BudgetExceeded) and (refused.scope, refused.period) == ("chat", "day")
    assert refused.spent_usd == 1.0


def test_spending_reports_settled_costs_and_a_turn_that_spent_nothing_frees_its_hold(aws) -> None:
    clock = Clock(LATE)
    caps = BudgetCaps(chat_daily_usd=1.0, user_monthly_usd=10.0, deployment_daily_usd=100.0, turn_usd=0.9)
    budget = ledger(aws, caps, clock)
    budget.settle(budget.hold(chat_id=7, user_id=42), 0.25)  # type: ignore[arg-type]
    budget.settle(budget.hold(chat_id=7, user_id=42), 0.0)  # type: ignore[arg-type]
    spent = {(s.scope, s.period): (s.spent_usd, s.cap_usd) for s in budget.spending(chat_id=7, user_id=42)}
    assert spent == {
        ("chat", "day"): (0.25, 1.0),
        ("chat", "month"): (0.25, None),  # uncapped accounts are counted too
        ("user", "day"): (0.25, None),
        ("user", "month"): (0.25, 10.0),
        ("deployment", "day"): (0.25, 100.0),
    }
    assert budget.deployment_daily_spent() == 0.25
    # Holds were released: three more turns of 0.25 fit under the chat's 1.0.
    for _ in range(3):
        budget.settle(budget.hold(chat_id=7, user_id=42), 0.25)  # type: ignore[arg-type]
    assert isinstance(budget.hold(chat_id=7, user_id=42), BudgetExceeded)


def test_without_caps_nothing_is_read_or_written(aws) -> None:
    budget = ledger(aws, BudgetCaps(turn_usd=1.0), Clock(LATE))
    hold = budget.hold(chat_id=7, user_id=42)
    assert hold == BudgetHold()
    budget.settle(hold, 5.0)
    assert aws.dynamodb.scan(TableName=aws.resources.table)["Count"] == 0


def test_caps_that_apply_to_no_account_of_the_message_admit_it_holding_nothing(aws) -> None:
    """Only user caps set, and a message with no user (a channel post, an anonymous admin): no
    cap applies, so the turn is admitted with nothing held (not refused with a storage error
    for an empty transaction), and what it spent still counts on the chat's accounts."""
    clock = Clock(LATE)
    budget = ledger(aws, BudgetCaps(user_daily_usd=1.0, user_monthly_usd=5.0, turn_usd=0.5), clock)
    hold = budget.hold(chat_id=7, user_id=None)
    assert isinstance(hold, BudgetHold) and hold.held_usd == 0.0 and hold.held_on == ()
    budget.settle(hold, 0.25)
    spent = {(s.scope, s.period): s.spent_usd for s in budget.spending(chat_id=7, user_id=None)}
    assert spent == {("chat", "day"): 0.25, ("chat", "month"): 0.25}
    # no hold record was left behind for a later refusal to release
    records = aws.dynamodb.scan(TableName=aws.resources.table)["Items"]
    assert not [r for r in records if r["sk"]["S"].startswith("hold|")]


def test_concurrent_chats_of_one_user_overspend_by_less_than_one_turns_cap(aws) -> None:
    """Ten chats of one user start turns at the same moment; each turn spends its whole cap."""
    clock = Clock(LATE)
    caps = BudgetCaps(user_daily_usd=1.0, turn_usd=0.3)
    admitted: list[BudgetHold] = []
    lock = threading.Lock()

    def chat(chat_id: int) -> None:
        budget = BudgetLedger(
            dynamodb=local_client("dynamodb", aws.endpoints.url_for("dynamodb")),
            table=aws.resources.table,
            caps=caps,
            tenant="default",
            clock=clock,
        )
        while True:
            hold = budget.hold(chat_id=chat_id, user_id=42)
            if isinstance(hold, BudgetExceeded):
                return
            with lock:
                admitted.append(hold)
            budget.settle(hold, caps.turn_usd or 0)

    threads = [threading.Thread(target=chat, args=(100 + i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = ledger(aws, caps, clock).spending(chat_id=0, user_id=42)
    spent = {(s.scope, s.period): s.spent_usd for s in report}
    total = spent[("user", "day")]
    assert total == pytest.approx(len(admitted) * 0.3)
    assert 1.0 <= total < 1.0 + 0.3  # reached the cap, overspent by less than one turn


def test_period_end_is_the_next_utc_midnight_or_first_of_month() -> None:
    assert period_end("day", LATE) == datetime(2026, 12, 3, tzinfo=UTC).timestamp()
    assert period_end("month", LATE) == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    assert (
        period_end("month", datetime(2028, 2, 29, tzinfo=UTC).timestamp())
        == datetime(2028, 3, 1, tzinfo=UTC).timestamp()
    )


def test_a_hold_left_by_a_crashed_turn_is_released_after_its_deadline(aws) -> None:
    from session_core._budgets import HOLD_LIFETIME_S

    clock = Clock(datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp())
    budget = ledger(aws, BudgetCaps(user_daily_usd=1.0, turn_usd=0.5), clock)
    settled = budget.hold(chat_id=7, user_id=42)
    assert isinstance(settled, BudgetHold)
    budget.settle(settled, 0.1)
    crashed = budget.hold(chat_id=8, user_id=42)  # its consumer dies: never settled
    assert isinstance(crashed, BudgetHold)
    clock.now += 60
    running = budget.hold(chat_id=9, user_id=42)  # 0.1 spent + 0.5 held: admitted
    assert isinstance(running, BudgetHold)
    assert isinstance(budget.hold(chat_id=9, user_id=42), BudgetExceeded)  # 0.1 + 0.5 + 0.5
    budget.settle(running, 0.4)
    # 0.5 spent + the crashed turn's 0.5: the cap is reached while its hold counts.
    assert isinstance(budget.hold(chat_id=9, user_id=42), BudgetExceeded)

    clock.now += HOLD_LIFETIME_S  # the crashed turn's deadline passed: its hold goes
    late = budget.hold(chat_id=9, user_id=42)
    assert isinstance(late, BudgetHold)
    spent = {(s.scope, s.period): s.spent_usd for s in budget.spending(chat_id=9, user_id=42)}
    assert spent[("user", "day")] == pytest.approx(0.5)  # the crashed turn counted nothing

    # A turn that outlives its hold's deadline still counts its cost when it settles, once.
    budget.settle(crashed, 0.05)
    budget.settle(late, 0.1)
    spent = {(s.scope, s.period): s.spent_usd for s in budget.spending(chat_id=9, user_id=42)}
    assert spent[("user", "day")] == pytest.approx(0.65)
    # Nothing is held any more: 0.65 spent, so one more hold fits and then no other.
    again = budget.hold(chat_id=9, user_id=42)
    assert isinstance(again, BudgetHold)
    assert isinstance(budget.hold(chat_id=9, user_id=42), BudgetExceeded)


def test_a_cap_held_by_a_crashed_turn_says_when_its_hold_lapses(aws) -> None:
    """The user is told the real wait (the hold's deadline), not "a few minutes" that may be
    twenty; with two holds and room for one, the first to lapse frees the cap."""
    from session_core._budgets import HOLD_LIFETIME_S

    clock = Clock(datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp())
    budget = ledger(aws, BudgetCaps(user_daily_usd=1.0, turn_usd=0.5), clock)
    first = budget.hold(chat_id=8, user_id=42)  # its consumer dies: never settled
    clock.now += 300
    second = budget.hold(chat_id=9, user_id=42)  # this one too, five minutes later
    assert isinstance(first, BudgetHold) and isinstance(second, BudgetHold)
    clock.now += 120
    refused = budget.hold(chat_id=10, user_id=42)
    assert isinstance(refused, BudgetExceeded) and refused.only_held
    assert refused.frees_by == datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp() + HOLD_LIFETIME_S

    # A cap spent outright does not free as holds lapse: it says when it resets instead.
    spent = ledger(aws, BudgetCaps(chat_daily_usd=0.5, turn_usd=0.5), clock)
    spent.settle(spent.hold(chat_id=11, user_id=None), 0.5)  # type: ignore[arg-type]
    outright = spent.hold(chat_id=11, user_id=None)
    assert isinstance(outright, BudgetExceeded) and outright.frees_by is None


def test_a_cap_held_just_before_midnight_frees_at_midnight_not_at_the_holds_deadline(aws) -> None:
    """At 23:55 a crashed turn's hold fills the user's daily cap: it lapses at 00:15, but the
    new day admits them at midnight. They were told "in 20 minutes at the latest", not 5."""
    clock = Clock(datetime(2026, 12, 2, 23, 55, tzinfo=UTC).timestamp())
    midnight = datetime(2026, 12, 3, tzinfo=UTC).timestamp()
    budget = ledger(aws, BudgetCaps(user_daily_usd=0.5, user_monthly_usd=10.0, turn_usd=0.5), clock)
    assert isinstance(budget.hold(chat_id=1, user_id=42), BudgetHold)  # its consumer dies
    refused = budget.hold(chat_id=2, user_id=42)
    assert isinstance(refused, BudgetExceeded) and refused.only_held
    assert refused.frees_by == midnight
    clock.now = midnight
    assert isinstance(budget.hold(chat_id=2, user_id=42), BudgetHold)


class OtherConsumerFirst:
    """The real DynamoDB client, where another consumer's turn runs just before this ledger
    reads the account's hold records (``at`` "query") or releases one of them ("release")."""

    def __init__(self, inner: Any, other_turn: Any, at: str) -> None:
        self.inner, self.other_turn, self.at = inner, other_turn, at

    def _other_turn_first(self) -> None:
        if self.other_turn is not None:
            other_turn, self.other_turn = self.other_turn, None
            other_turn()

    def query(self, **kwargs: Any) -> Any:
        if self.at == "query":
            self._other_turn_first()
        return self.inner.query(**kwargs)

    def transact_write_items(self, **kwargs: Any) -> Any:
        if self.at == "release" and any("Delete" in item for item in kwargs["TransactItems"]):
            self._other_turn_first()
        return self.inner.transact_write_items(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize(
    "at", ["release", "query"], ids=["released-first-there", "released-before-the-query"]
)
def test_a_turn_refused_by_holds_another_consumer_released_meanwhile_is_admitted(aws, at: str) -> None:
    """Two crashed turns fill a user's cap; past their deadline two messages are refused at
    once. The other consumer released the holds first (before this one could, or even before
    it read them): this one was refused, told to try again in a few minutes (or in 20, for
    the other turn's new hold), though the cap had room for both turns, as it has when they
    come one after the other."""
    from session_core._budgets import HOLD_LIFETIME_S

    clock = Clock(datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp())
    caps = BudgetCaps(user_daily_usd=1.0, turn_usd=0.5)
    crashed = ledger(aws, caps, clock)
    assert isinstance(crashed.hold(chat_id=1, user_id=42), BudgetHold)  # never settled
    assert isinstance(crashed.hold(chat_id=2, user_id=42), BudgetHold)  # nor this one
    clock.now += HOLD_LIFETIME_S + 60
    others: list[BudgetHold | BudgetExceeded] = []
    other = ledger(aws, caps, clock)

    def other_turn() -> None:
        others.append(other.hold(chat_id=3, user_id=42))

    racing = BudgetLedger(
        dynamodb=OtherConsumerFirst(aws.dynamodb, other_turn, at),
        table=aws.resources.table,
        caps=caps,
        tenant="default",
        clock=clock,
    )

    mine = racing.hold(chat_id=4, user_id=42)

    assert [type(hold) for hold in others] == [BudgetHold]
    assert isinstance(mine, BudgetHold), mine
    # Both turns hold the cap now: the next one waits for one of them, no overspend.
    full = other.hold(chat_id=5, user_id=42)
    assert isinstance(full, BudgetExceeded) and full.frees_by == clock.now + HOLD_LIFETIME_S


def test_a_recorded_answer_counts_once_whichever_attempt_settles_it(aws) -> None:
    """Two attempts of one update: one ran the model, the other replays its recorded answer.
    Whichever settles first counts the cost; the other only gives its hold back."""
    clock = Clock(datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp())
    budget = ledger(aws, BudgetCaps(user_daily_usd=1.0, turn_usd=0.5), clock)
    ran, replayed = budget.hold(chat_id=7, user_id=42), budget.hold(chat_id=7, user_id=42)
    assert isinstance(ran, BudgetHold) and isinstance(replayed, BudgetHold)
    budget.settle(replayed, 0.2, answer="default/7/0|900")  # the replay got there first
    budget.settle(ran, 0.2, answer="default/7/0|900")
    budget.settle(budget.hold(chat_id=7, user_id=42), 0.3, answer="default/7/0|901")  # type: ignore[arg-type]
    spent = {(s.scope, s.period): s.spent_usd for s in budget.spending(chat_id=7, user_id=42)}
    assert spent[("user", "day")] == pytest.approx(0.5)
    # Every hold was given back: 0.5 spent, so one turn's 0.5 is held and then no more.
    assert isinstance(budget.hold(chat_id=7, user_id=42), BudgetHold)
    assert isinstance(budget.hold(chat_id=7, user_id=42), BudgetExceeded)


def test_a_turn_running_past_midnight_counts_on_the_day_it_started(aws) -> None:
    """Held at 23:59, settled at 00:01: the day that admitted it pays, and the new day starts
    from nothing (what /cost said of that day when the turn began stays true)."""
    clock = Clock(LATE)
    budget = ledger(aws, BudgetCaps(chat_daily_usd=1.0, turn_usd=0.5), clock)
    hold = budget.hold(chat_id=7, user_id=42)
    assert isinstance(hold, BudgetHold)
    clock.now += 120  # 00:01 the next day
    budget.settle(hold, 0.4)
    spent = {(s.scope, s.period): s.spent_usd for s in budget.spending(chat_id=7, user_id=42)}
    assert spent[("chat", "day")] == 0.0 and spent[("chat", "month")] == 0.4
    clock.now = LATE
    spent = {(s.scope, s.period): s.spent_usd for s in budget.spending(chat_id=7, user_id=42)}
    assert spent[("chat", "day")] == 0.4
    # The old day's hold was given back: a late turn of that day fits beside the 0.4.
    assert isinstance(budget.hold(chat_id=7, user_id=42), BudgetHold)


def test_a_cap_the_operator_adds_mid_day_counts_what_was_spent_before_it(aws) -> None:
    """The chat's cap was the only one; the user spent $3 today in it. The operator then
    sets a user daily cap of $2 (a redeploy, the consumer reads it anew): /cost says the user
    spent $3 of $2, so the next turn must be refused, not admitted as if nothing were spent."""
    clock = Clock(datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp())
    before = ledger(aws, BudgetCaps(chat_daily_usd=100.0, turn_usd=1.0), clock)
    for _ in range(3):
        before.settle(before.hold(chat_id=7, user_id=42), 1.0)  # type: ignore[arg-type]

    after = ledger(aws, BudgetCaps(chat_daily_usd=100.0, user_daily_usd=2.0, turn_usd=1.0), clock)
    spent = {(s.scope, s.period): (s.spent_usd, s.cap_usd) for s in after.spending(chat_id=8, user_id=42)}
    assert spent[("user", "day")] == (3.0, 2.0)
    refused = after.hold(chat_id=8, user_id=42)
    assert isinstance(refused, BudgetExceeded)
    assert (refused.scope, refused.period, refused.spent_usd) == ("user", "day", 3.0)
    assert not refused.only_held  # told it resets at midnight, not to try again in minutes


def test_a_cap_lifted_and_set_again_counts_what_was_spent_while_it_was_lifted(aws) -> None:
    clock = Clock(datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp())
    capped = ledger(aws, BudgetCaps(chat_daily_usd=2.0, turn_usd=1.0), clock)
    capped.settle(capped.hold(chat_id=7, user_id=42), 1.0)  # type: ignore[arg-type]
    lifted = ledger(aws, BudgetCaps(user_daily_usd=100.0, turn_usd=1.0), clock)
    lifted.settle(lifted.hold(chat_id=7, user_id=42), 1.5)  # type: ignore[arg-type]
    refused = capped.hold(chat_id=7, user_id=42)  # 2.5 spent today against the chat's 2.0
    assert isinstance(refused, BudgetExceeded)
    assert (refused.scope, refused.period, refused.spent_usd) == ("chat", "day", 2.5)


def test_running_turns_on_an_account_an_older_consumer_counted_uncapped_hold_on_what_it_spent(aws) -> None:
    """Before the upgrade the user had no cap, and the older consumer counted their $2.50 of
    today in ``spent_usd`` only (no ``committed_usd``). The operator now sets a $3 daily cap:
    turns of theirs running at once in ten chats must be admitted while what was spent and
    what they hold is below it (two of $0.30), not while what they hold alone is (ten, $5.50)."""
    clock = Clock(datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp())
    aws.dynamodb.put_item(
        TableName=aws.resources.table,
        Item={
            "pk": {"S": "budget|user|default|42"},
            "sk": {"S": "day|2026-12-02"},
            "spent_usd": {"N": "2.5"},
            "expires_at": {"N": str(int(clock.now) + 3 * 86_400)},
        },
    )
    budget = ledger(aws, BudgetCaps(user_daily_usd=3.0, turn_usd=0.3), clock)
    holds = [budget.hold(chat_id=100 + i, user_id=42) for i in range(10)]
    admitted = [hold for hold in holds if isinstance(hold, BudgetHold)]
    assert len(admitted) == 2  # 2.5 + 0.3 + 0.3 held: together less than one turn's cap over
    refused = holds[2]
    assert isinstance(refused, BudgetExceeded) and (refused.scope, refused.spent_usd) == ("user", 2.5)
    assert refused.only_held  # told to try again once the running turns end
    for hold in admitted:
        budget.settle(hold, 0.3)
    spent = {(s.scope, s.period): s.spent_usd for s in budget.spending(chat_id=100, user_id=42)}
    assert spent[("user", "day")] == pytest.approx(3.1)
    assert isinstance(budget.hold(chat_id=100, user_id=42), BudgetExceeded)


def test_an_account_an_older_consumer_keeps_counting_under_every_catch_up_is_retried_not_told_held(
    aws,
) -> None:
    """An older consumer still running (a deploy under way) counts the user's turns in
    ``spent_usd`` alone, and settled one between this consumer's read of the account and each
    of its catch-ups: every catch-up found the account changed. The user was refused as if
    their running turns held the $3 cap, though nothing held it ($2.50 spent, no turn running)."""
    clock = Clock(datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp())
    account = {"pk": {"S": "budget|user|default|42"}, "sk": {"S": "day|2026-12-02"}}
    aws.dynamodb.put_item(
        TableName=aws.resources.table,
        Item={**account, "spent_usd": {"N": "2.5"}, "expires_at": {"N": str(int(clock.now) + 3 * 86_400)}},
    )

    race = older_consumer_settling_before_each_catch_up(aws, account)
    with FaultProxy(aws.endpoint, services=aws.endpoints.services, faults=[race]) as proxy:
        budget = BudgetLedger(
            dynamodb=proxy.client("dynamodb"),
            table=aws.resources.table,
            caps=BudgetCaps(user_daily_usd=3.0, turn_usd=0.3),
            tenant="default",
            clock=clock,
        )
        with pytest.raises(StorageError) as raised:
            budget.hold(chat_id=100, user_id=42)
        assert raised.value.retryable  # the record is tried again, the user told nothing yet

        proxy.faults.clear()  # the older consumer is gone: the record's retry is admitted
        assert isinstance(budget.hold(chat_id=100, user_id=42), BudgetHold)


def test_a_catch_up_under_a_running_turn_keeps_its_hold(aws) -> None:
    """A deploy under way: this consumer caught the user's account up and admitted a turn
    ($2.50 spent + $0.30 held of $3); then an older consumer settled a turn of theirs in
    ``spent_usd`` alone ($2.85 spent). The next catch-up brought ``committed_usd`` up to what was
    spent and dropped the running turn's hold: a second turn was admitted on $2.85 + $0.30, and
    both together could spend $3.45, more than one turn's cap over the $3."""
    clock = Clock(datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp())
    account = {"pk": {"S": "budget|user|default|42"}, "sk": {"S": "day|2026-12-02"}}

    def older_consumer_settles(cost: str) -> None:
        aws.dynamodb.update_item(
            TableName=aws.resources.table,
            Key=account,
            UpdateExpression="ADD spent_usd :cost SET expires_at = :ttl",
            ExpressionAttributeValues={":cost": {"N": cost}, ":ttl": {"N": str(int(clock.now) + 3 * 86_400)}},
        )

    older_consumer_settles("2.5")
    budget = ledger(aws, BudgetCaps(user_daily_usd=3.0, turn_usd=0.3), clock)
    running = budget.hold(chat_id=1, user_id=42)
    assert isinstance(running, BudgetHold)
    older_consumer_settles("0.35")

    refused = budget.hold(chat_id=2, user_id=42)
    assert isinstance(refused, BudgetExceeded) and refused.only_held, refused  # 2.85 + 0.30 held
    budget.settle(running, 0.3)
    spent = {(s.scope, s.period): s.spent_usd for s in budget.spending(chat_id=1, user_id=42)}
    assert spent[("user", "day")] == pytest.approx(3.15)
    assert isinstance(budget.hold(chat_id=2, user_id=42), BudgetExceeded)  # spent outright now
