"""What a private chat's draft shows while the model writes: the answer so far rendered as
the final answer will be, accepted by Telegram at every step, half-written Markdown included."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import httpx
import pytest
from agentbot_testing import FakeClock
from local_stack import TEST_BOT_TOKEN, LocalTelegram, TelegramFault
from session_core import SecretSource, SessionKey, StorageError, TurnProgress
from sqs_consumer._chat_holds import ChatHolds
from sqs_consumer._live_view import LiveView
from sqs_consumer._progress_cleanup import ProgressCleanup
from structlog.testing import capture_logs
from telegram_core import BotApi

CHAT = 501
ANSWER = (
    "## Fix\n\n"
    "Use **`pathlib`** and see [the docs](https://docs.python.org/3/library/pathlib.html).\n\n"
    "```python\nfrom pathlib import Path\nprint(Path('a') / 'b')  # a < b & c\n```\n\n"
    "- Done: *tested*"
)


class StreamedAnswer:
    """A live item whose answer grows by a few characters on each read, as a model writes it."""

    def __init__(self, text: str, step: int) -> None:
        self._prefixes = [text[:end] for end in range(step, len(text) + step, step)]
        self._reads = itertools.count()
        self._lock = threading.Lock()

    def expect(self, key: SessionKey, turn_id: int, *, message_ids: Collection[int] = ()) -> bool:
        return True

    def end(self, key: SessionKey, turn_id: int, progress: TurnProgress | None = None) -> None:
        pass

    def progress(self, key: SessionKey, turn_id: int) -> TurnProgress:
        with self._lock:
            seq = min(next(self._reads), len(self._prefixes) - 1)
        return TurnProgress(turn_id=turn_id, text=self._prefixes[seq], seq=seq + 1)

    @property
    def finished(self) -> int:
        return len(self._prefixes)


def view_of(
    telegram: LocalTelegram,
    http: httpx.Client,
    source: StreamedAnswer,
    chat_id: int = CHAT,
    *,
    sleep: Callable[[float], None] = time.sleep,
    token: str | SecretSource = TEST_BOT_TOKEN,
    **options: Any,
) -> LiveView:
    """A view of ``source`` in ``chat_id`` (private when positive), polling every 10 ms;
    ``sleep``: the Bot API client's waits; ``token``: its bot token, or where it is kept."""
    return LiveView(
        bot=BotApi(http=http, token=token, base_url=telegram.base_url, max_retry_after_s=0, sleep=sleep),
        source=source,
        key=SessionKey(tenant="default", chat_id=chat_id, thread_id=0),
        turn_id=3,
        chat_id=chat_id,
        private=chat_id > 0,
        poll_s=0.01,
        **options,
    )


def stream(telegram: LocalTelegram, http: httpx.Client, source: StreamedAnswer, until: str) -> None:
    """Show ``source`` in a private chat's draft until a draft ends with ``until``."""
    with view_of(telegram, http, source, draft_interval_s=0) as view:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
            d["text"].endswith(until) for d in telegram.drafts(CHAT)
        ):
            time.sleep(0.02)
        view.stop()


def test_a_draft_shows_the_answer_formatted_and_telegram_takes_every_half_written_step(
    telegram: LocalTelegram, http: httpx.Client
) -> None:
    source = StreamedAnswer(ANSWER, step=7)  # cuts the fence, the link and the bold midway
    stream(telegram, http, source, until="<i>tested</i>")

    calls = telegram.calls("sendMessageDraft")
    assert len(calls) >= source.finished // 2  # the steps in between were shown too
    assert all(call.status == 200 for call in calls), [c.params["text"] for c in calls if c.status != 200]
    last = telegram.drafts(CHAT)[-1]
    assert last["text"] == (
        "<b>Fix</b>\n\n"
        'Use <b><code>pathlib</code></b> and see <a href="https://docs.python.org/3/library/pathlib.html">'
        "the docs</a>.\n\n"
        '<pre><code class="language-python">from pathlib import Path\n'
        "print(Path('a') / 'b')  # a &lt; b &amp; c</code></pre>\n\n"
        "• Done: <i>tested</i>"
    )


def test_an_answer_that_begins_with_a_code_fence_keeps_its_drafts_coming(
    telegram: LocalTelegram, http: httpx.Client
) -> None:
    # "```python" alone shows nothing yet: Telegram would refuse an empty draft, and a refused
    # draft turns drafts off for the rest of the turn.
    source = StreamedAnswer("```python\nprint('hello')\n```\n\nThat prints hello.", step=10)
    stream(telegram, http, source, until="That prints hello.")
    calls = telegram.calls("sendMessageDraft")
    assert all(call.status == 200 for call in calls), [c.params["text"] for c in calls if c.status != 200]
    assert telegram.drafts(CHAT)[-1]["visible"] == "print('hello')\n\nThat prints hello."


class UnchangedAnswer(StreamedAnswer):
    """A live item whose sequence moves on (a tool's activity, say) while what it shows stays."""

    def progress(self, key: SessionKey, turn_id: int) -> TurnProgress:
        with self._lock:
            seq = next(self._reads)
        return TurnProgress(turn_id=turn_id, text="Working on it.", seq=seq + 1)


class CountingBudget:
    def __init__(self) -> None:
        self.taken = 0

    def take(self, bucket: str, per_minute: int, *, now: float) -> bool:
        self.taken += 1
        return True


def test_a_groups_progress_message_is_not_edited_to_the_same_text(
    telegram: LocalTelegram, http: httpx.Client
) -> None:
    """Telegram refuses such an edit ("message is not modified"); each refusal was retried on
    every interval and spent one of the group's 20 messages a minute, which its answers need."""
    budget = CountingBudget()
    with view_of(
        telegram, http, UnchangedAnswer("", step=1), -100501, budget=budget, group_interval_s=0.02
    ) as view:
        time.sleep(0.5)
        view.stop()
    assert [call.method for call in telegram.calls()] == ["sendMessage"]
    assert budget.taken == 1


class AnswerPausedAfterMarkup(StreamedAnswer):
    """A live item whose answer, after its first words, grows only by markup that shows
    nothing yet (a code fence just opened) while the model pauses."""

    def progress(self, key: SessionKey, turn_id: int) -> TurnProgress:
        with self._lock:
            seq = next(self._reads)
        return TurnProgress(turn_id=turn_id, text="Run this:" + ("\n\n```bash" if seq else ""), seq=seq + 1)


def test_a_groups_progress_message_is_not_edited_to_markup_that_shows_nothing_yet(
    telegram: LocalTelegram, http: httpx.Client
) -> None:
    """An opened code fence (or heading, or quote) adds an element that shows nothing:
    Telegram sees the same message and refuses the edit, and each refusal spent a slot of
    the group's 20 messages a minute."""
    budget = CountingBudget()
    with view_of(
        telegram, http, AnswerPausedAfterMarkup("", step=1), -100502, budget=budget, group_interval_s=0.02
    ) as view:
        time.sleep(0.5)
        view.stop()
    assert [(call.method, call.status) for call in telegram.calls()] == [("sendMessage", 200)]
    assert budget.taken == 1


def test_a_draft_that_stays_the_same_while_a_tool_runs_long_is_shown_again_before_it_fades(
    telegram: LocalTelegram, http: httpx.Client
) -> None:
    """Telegram shows a draft for 30 seconds: a tool running for minutes left the user with
    "typing…" alone after the first half-minute."""
    now = [1000.0]
    view = view_of(telegram, http, UnchangedAnswer("", step=1), clock=lambda: now[0])

    def drafts_within(seconds: float) -> int:
        time.sleep(seconds)
        return len(telegram.calls("sendMessageDraft"))

    with view:
        first = drafts_within(0.3)
        now[0] += 19  # under the refresh: nothing new to show, nothing sent
        before_refresh = drafts_within(0.3)
        now[0] += 2
        after_refresh = drafts_within(0.3)
        view.stop()
    assert (first, before_refresh, after_refresh) == (1, 1, 2)
    assert len({call.params["text"] for call in telegram.calls("sendMessageDraft")}) == 1


@pytest.mark.parametrize(("time_left_s", "deleted"), [(10.0, False), (20.0, True)])
def test_a_groups_progress_message_is_deleted_after_telegrams_wait_only_if_the_invocation_has_time(
    telegram: LocalTelegram, http: httpx.Client, time_left_s: float, deleted: bool
) -> None:
    """The answer is out and Telegram asks to wait before the delete: waiting past the
    invocation's end would cut the record off and send its answer again on the retry."""
    group, clock = -100503, FakeClock(0.0)
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds

    view = view_of(telegram, http, UnchangedAnswer("", step=1), group, sleep=wait, clock=clock)
    with view:
        assert telegram.wait_for(lambda t: bool(t.sent_messages(group)))
        view.stop()
    telegram.inject("deleteMessage", TelegramFault.retry_after_seconds(8), times=2)
    view.cleanup(time_left_s=time_left_s)
    # Each wait is taken while it fits in what is left: the second of two does not fit in 10 s.
    assert waits == ([8, 8] if deleted else [8])
    assert (telegram.sent_messages(group) == []) is deleted


def test_the_wait_to_delete_a_groups_progress_message_counts_slow_calls_against_the_time_left(
    telegram: LocalTelegram, http: httpx.Client
) -> None:
    """Each delete took Telegram 5 s to refuse with a 429 asking for 8 s: counting only the
    waits (16 s of 20), the cleanup ran 31 s, past the invocation's end (Lambda kills it
    mid-record, and the record's answer goes out again on the retry)."""
    group, clock = -100507, FakeClock(0.0)

    def slow_deletes(method: str, params: dict[str, Any]) -> None:
        if method == "deleteMessage":
            clock.now += 5

    def wait(seconds: float) -> None:
        clock.now += seconds

    view = view_of(telegram, http, UnchangedAnswer("", step=1), group, sleep=wait, clock=clock)
    with view:
        assert telegram.wait_for(lambda t: bool(t.sent_messages(group)))
        view.stop()
    telegram.on_call = slow_deletes
    telegram.inject("deleteMessage", TelegramFault.retry_after_seconds(8), times=2)
    view.cleanup(time_left_s=20)
    assert clock.now <= 20
    assert len(telegram.sent_messages(group)) == 1  # no time for the last try: left, and logged


@pytest.mark.parametrize("time_left_s", [14.0, 17.0])
def test_a_wait_to_delete_a_groups_progress_message_leaves_time_for_the_call_after_it(
    telegram: LocalTelegram, http: httpx.Client, time_left_s: float
) -> None:
    """Each delete took Telegram 5 s to refuse with a 429 asking for 8 s: the wait fitted in
    the time left (8 s of 9, or of 12), the delete after it did not, and the cleanup ran past
    its end (the invocation's, less the record's own writes)."""
    group, clock = -100509, FakeClock(0.0)

    def slow_deletes(method: str, params: dict[str, Any]) -> None:
        if method == "deleteMessage":
            clock.now += 5

    def wait(seconds: float) -> None:
        clock.now += seconds

    view = view_of(telegram, http, UnchangedAnswer("", step=1), group, sleep=wait, clock=clock)
    with view:
        assert telegram.wait_for(lambda t: bool(t.sent_messages(group)))
        view.stop()
    telegram.on_call = slow_deletes
    telegram.inject("deleteMessage", TelegramFault.retry_after_seconds(8), times=2)
    view.cleanup(time_left_s=time_left_s)
    assert clock.now <= time_left_s
    assert len(telegram.sent_messages(group)) == 1  # no time for the next try: left, and logged


def test_a_429_on_a_groups_progress_edit_holds_its_updates_back_until_the_retry_after(
    telegram: LocalTelegram, http: httpx.Client
) -> None:
    """Telegram said when to come back: each edit before then would fail again and spend a
    slot of the group's budget, which its answers need."""
    group, budget = -100505, CountingBudget()
    telegram.inject("editMessageText", TelegramFault.retry_after_seconds(2), times=1)
    with view_of(telegram, http, StreamedAnswer(ANSWER, step=1), group, budget=budget, group_interval_s=0.02):
        assert telegram.wait_for(lambda t: bool(t.calls("editMessageText")))
        time.sleep(1)
        assert [c.status for c in telegram.calls("editMessageText")] == [429]
        assert telegram.wait_for(lambda t: len(t.edits(group)) >= 2, timeout_s=5)  # then it goes on
    assert budget.taken == len(telegram.calls("sendMessage")) + len(telegram.calls("editMessageText"))


def test_a_429_one_view_of_a_group_got_holds_the_groups_other_views_back_too(
    telegram: LocalTelegram, http: httpx.Client
) -> None:
    """Telegram's limit is the group's: the view of another topic in the same invocation spent
    a failed call to learn it again (each failed call one more the group is refused)."""
    group, holds = -100508, ChatHolds()
    telegram.group_limit_per_minute = 3
    first = view_of(
        telegram, http, StreamedAnswer(ANSWER, step=1), group, group_interval_s=0.02, chat_holds=holds
    )
    with first:
        assert telegram.wait_for(lambda t: bool(t.group_limited))
        first.stop()
    other_topic = view_of(
        telegram, http, StreamedAnswer(ANSWER, step=1), group, thread_id=8, chat_holds=holds
    )
    with other_topic:
        time.sleep(0.5)
        other_topic.stop()
    assert telegram.group_limited == ["editMessageText"]  # the first view's, once
    assert other_topic.calls == 0  # it waits for the group's minute, as the first view does


def test_a_groups_progress_message_a_member_deleted_costs_the_group_nothing_more(
    telegram: LocalTelegram, http: httpx.Client
) -> None:
    """Each edit of it failed ("message to edit not found") and spent a slot of the group's
    budget until the turn ended, holding back the group's answers and its other progress."""
    group, budget = -100506, CountingBudget()
    view = view_of(
        telegram, http, StreamedAnswer(ANSWER, step=1), group, budget=budget, group_interval_s=0.02
    )
    with view:
        assert telegram.wait_for(lambda t: bool(t.edits(group)))
        [progress] = telegram.sent_messages(group)
        admin = BotApi(http=http, token=TEST_BOT_TOKEN, base_url=telegram.base_url)
        admin.call("deleteMessage", {"chat_id": group, "message_id": progress["message_id"]})
        time.sleep(0.5)
        view.stop()
    view.cleanup(time_left_s=60)
    edits = telegram.calls("editMessageText")
    assert [c.status for c in edits if c.status != 200] == [400]  # the first one finds it gone
    assert budget.taken == len(edits) + 1  # and the progress message itself
    assert [c.status for c in telegram.calls("deleteMessage")] == [200]  # the admin's; none after


class TokenStoreDown:
    """The bot token's store, out of reach once Telegram refuses the token it gave."""

    name = "/agentbot/bot-token"
    unreadable = False

    def current(self) -> str:
        return TEST_BOT_TOKEN

    def renew(self, refused: str) -> bool:
        raise StorageError("ssm.GetParameter", "endpoint not reachable")


def test_a_progress_message_whose_delete_fails_oddly_leaves_the_records_other_ones_deleted(
    telegram: LocalTelegram, http: httpx.Client
) -> None:
    """The record's outcome is out when its progress messages go: a delete that fails with
    something other than Telegram's refusal (the token refused, its store out of reach) is
    logged, neither skipping the other messages' deletes nor failing the record, which would
    run its handling again."""
    first, second = -100507, -100508
    views = [
        view_of(telegram, http, StreamedAnswer(ANSWER, step=1), chat, group_interval_s=0.02, token=token)
        for chat, token in ((first, TokenStoreDown()), (second, TEST_BOT_TOKEN))
    ]
    for chat, view in zip((first, second), views, strict=True):
        with view:
            assert telegram.wait_for(lambda t, chat=chat: bool(t.sent_messages(chat)))
            view.stop()
    telegram.inject("deleteMessage", TelegramFault(401, "Unauthorized"), times=1)
    with capture_logs() as logs, ProgressCleanup(lambda: 60_000) as cleanup:
        for view in views:
            cleanup.add(view)
    deleted = [c.params["chat_id"] for c in telegram.calls("deleteMessage") if c.status == 200]
    assert deleted == [second]
    [left] = [e for e in logs if e["event"] == "progress_message_left"]
    assert left["kind"] == "StorageError", left


def test_a_progress_message_whose_send_is_answered_after_the_turn_ended_is_deleted_all_the_same(
    telegram: LocalTelegram,
) -> None:
    """Telegram answered the progress message's send after the view's wait for it when the
    turn ended (or Stop was pressed): the cleanup found no message to delete, the late answer
    then gave the view one, and the group kept a progress message whose Stop stops nothing."""
    group, sent = -100510, threading.Event()

    def slow_answer(message: dict[str, Any]) -> None:
        sent.set()
        time.sleep(5.5)  # longer than stop() waits for a step in flight

    telegram.on_send = slow_answer
    with httpx.Client(timeout=30) as http:  # the consumer's own read timeout
        view = view_of(telegram, http, UnchangedAnswer("", step=1), group)
        with ProgressCleanup(lambda: 60_000) as cleanup:
            cleanup.add(view)
            with view:
                assert sent.wait(10)
                view.stop()
        assert telegram.wait_for(lambda t: bool(t.calls("sendMessage")))
        time.sleep(0.2)  # the late answer reaches the view
    assert telegram.sent_messages(group) == []


def test_a_delete_telegram_answers_slowly_ends_within_the_time_left(telegram: LocalTelegram) -> None:
    """The HTTP call kept its own timeout (30 s in the consumer): a delete Telegram was slow to
    answer ran past the invocation's end, and Lambda cut the record off mid-cleanup."""
    group = -100511
    with httpx.Client(timeout=30) as http:  # the consumer's own read timeout
        view = view_of(telegram, http, UnchangedAnswer("", step=1), group)
        with view:
            assert telegram.wait_for(lambda t: bool(t.sent_messages(group)))
            view.stop()
        telegram.on_call = lambda method, params: time.sleep(3) if method == "deleteMessage" else None
        started = time.monotonic()
        with capture_logs() as logs:
            view.cleanup(time_left_s=1)
        took = time.monotonic() - started
    assert took < 2
    assert [e["kind"] for e in logs if e["event"] == "progress_message_left"] == ["network"]


def test_a_429_on_one_progress_messages_delete_holds_the_groups_other_deletes_back(
    telegram: LocalTelegram, http: httpx.Client
) -> None:
    """Telegram's limit is the group's: the progress message of the group's other topic spent
    a failed delete to learn it again, one more call the group is refused."""
    group, holds = -100512, ChatHolds()
    views = [
        view_of(telegram, http, UnchangedAnswer("", step=1), group, thread_id=topic, chat_holds=holds)
        for topic in (0, 8)
    ]
    for shown, view in enumerate(views, start=1):
        with view:
            assert telegram.wait_for(lambda t, shown=shown: len(t.sent_messages(group)) == shown)
            view.stop()
    telegram.inject("deleteMessage", TelegramFault.retry_after_seconds(40), times=2)
    with capture_logs() as logs, ProgressCleanup(lambda: 30_000) as cleanup:  # 20 s: no 40 s wait
        for view in views:
            cleanup.add(view)
    assert [c.status for c in telegram.calls("deleteMessage")] == [429]
    assert len([e for e in logs if e["event"] == "progress_message_left"]) == 2


def test_a_delete_waits_out_the_429_the_groups_progress_got_before_it_is_sent(
    telegram: LocalTelegram, http: httpx.Client
) -> None:
    """An edit of the group's progress was refused with a 429 for a second: the delete went at
    once and was refused too, one more failed call the group's limit counts."""
    group = -100513
    telegram.inject("editMessageText", TelegramFault.retry_after_seconds(1), times=1)
    view = view_of(telegram, http, StreamedAnswer(ANSWER, step=1), group, group_interval_s=0.02)
    with view:
        assert telegram.wait_for(lambda t: bool(t.calls("editMessageText")))
        view.stop()
    [refused] = telegram.calls("editMessageText")

    def refused_while_limited(method: str, params: dict[str, Any]) -> None:
        if method == "deleteMessage" and time.monotonic() < refused.at + 1:
            telegram.inject("deleteMessage", TelegramFault.retry_after_seconds(1), times=1)

    telegram.on_call = refused_while_limited
    view.cleanup(time_left_s=20)
    assert [c.status for c in telegram.calls("deleteMessage")] == [200]
    assert telegram.sent_messages(group) == []


def test_a_slow_draft_in_a_private_chat_does_not_hold_back_the_chats_next_record(
    telegram: LocalTelegram,
) -> None:
    """A private chat has no progress message to delete, yet the cleanup waited for a draft
    Telegram was slow to answer, up to the client's 30 s timeout: the chat's next message was
    answered that much later."""
    started_draft = threading.Event()

    def slow_draft(method: str, params: dict[str, Any]) -> None:
        if method == "sendMessageDraft" and not started_draft.is_set():
            started_draft.set()
            time.sleep(9)  # longer than stop() waits for a step in flight

    telegram.on_call = slow_draft
    with httpx.Client(timeout=30) as http:  # the consumer's own read timeout
        view = view_of(telegram, http, UnchangedAnswer("", step=1), CHAT)
        with ProgressCleanup(lambda: 60_000) as cleanup:
            cleanup.add(view)
            with view:
                assert started_draft.wait(10)
                view.stop()
            stopped = time.monotonic()
        took = time.monotonic() - stopped
    assert took < 1
