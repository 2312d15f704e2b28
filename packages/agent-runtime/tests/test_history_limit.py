"""A session whose history outgrows the runtime's memory is refused before the CLI would be
killed loading it, and the user is told as it nears that point (real CLI, moto storage)."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from agent_runtime import transcript_project
from agent_runtime._history_limit import (
    BASE_MIB,
    HEADROOM,
    MIB_PER_HISTORY_MB,
    MOST_HISTORY_MB,
    RUNTIME_MIB_PER_MB,
    WARN_SHARE,
    history_limit_bytes,
    history_size,
    memory_fix,
)
from local_stack import ModelFault
from session_core import HistorySize, SessionKey, TranscriptStore
from structlog.testing import capture_logs

KEY = "default/1001/0"


def stored_mb(runtime, session_id: str) -> float:
    project = transcript_project(SessionKey.parse(KEY))
    stored = asyncio.run(runtime.store.load_stored({"project_key": project, "session_id": session_id}))
    assert stored is not None
    return stored.size / 1_000_000


def test_a_1024_mb_runtime_warns_from_80_percent_of_its_limit_and_refuses_past_it() -> None:
    limit = (1024 * (1 - HEADROOM) - BASE_MIB) / MIB_PER_HISTORY_MB
    assert 64 < limit < 66  # ~65 MB, leaving a tenth of the memory spare

    def at(mb: float) -> HistorySize | None:
        return history_size(int(mb * 1_000_000), 1024)

    assert at(WARN_SHARE * limit - 0.01) is None
    near = at(WARN_SHARE * limit + 0.01)
    assert near is not None and not near.too_large and near.limit_mb == pytest.approx(limit)
    edge = at(limit - 0.01)
    assert edge is not None and not edge.too_large
    past = at(limit + 0.01)
    assert past is not None and past.too_large
    assert history_size(500_000_000, 0) is None  # memory unknown (not on Lambda): no limit
    assert history_size(0, 512) is None  # a new session has no history to load


@pytest.mark.slow
def test_a_history_too_large_for_the_memory_is_refused_without_running_the_model_and_kept(
    make_runtime, model_server, turn_request
) -> None:
    first = make_runtime().run_turn(turn_request("the password is heron", turn_id=1))
    assert first.ok, first
    calls = len(model_server.model_calls)

    # Memory for the runtime alone: no history fits.
    small = make_runtime(env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(BASE_MIB)})
    refused = small.run_turn(turn_request("what is the password?", turn_id=2))

    assert not refused.ok and refused.error_reason == "history_too_large" and not refused.retryable
    assert refused.history is not None and refused.history.mb > refused.history.limit_mb == 0
    assert len(model_server.model_calls) == calls  # nothing was paid for
    # The history is kept whole, and /new starts a fresh session on the same runtime.
    project = transcript_project(SessionKey.parse(KEY))
    kept = asyncio.run(small.store.load({"project_key": project, "session_id": first.session_id}))
    assert kept and "the password is heron" in json.dumps(kept)
    fresh = small.run_turn(turn_request("hello again", turn_id=3, new_session=True))
    assert fresh.ok and fresh.session_id != first.session_id and fresh.history is None


@pytest.mark.slow
def test_a_history_refused_after_the_operator_lowered_the_memory_names_the_setting_to_raise(
    make_runtime, turn_request
) -> None:
    """A chat that fit 2048 MB is refused once RuntimeMemoryMb goes back to 1024 (here: to the
    runtime's own share): no alarm, no dead letter, so the log line is the operator's one sign,
    and it must say what gives the chat its history back rather than /new (which drops it)."""
    assert make_runtime().run_turn(turn_request("a chat that fit before", turn_id=1)).ok
    lowered = make_runtime(env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(BASE_MIB)})

    with capture_logs() as logs:
        refused = lowered.run_turn(turn_request("and now?", turn_id=2))

    assert refused.error_reason == "history_too_large", refused
    [line] = [e for e in logs if e["event"] == "turn.history_too_large"]
    assert "RuntimeMemoryMb" in line["fix"] and f"{BASE_MIB} MB" in line["fix"], line


@pytest.mark.slow
def test_an_answer_says_how_close_the_history_is_once_it_nears_the_limit(
    make_runtime, model_server, turn_request
) -> None:
    # ~0.75 MB of history: the prompt and the model's echo of it.
    first = make_runtime().run_turn(turn_request("remember this: " + "lorem ipsum " * 30_000, turn_id=1))
    assert first.ok, first
    assert first.history is None  # no memory limit known: nothing to say
    history = stored_mb(make_runtime(), first.session_id or "")
    # The most memory whose limit the history still reaches WARN_SHARE of (it is not above it).
    memory = math.floor((BASE_MIB + MIB_PER_HISTORY_MB * history / WARN_SHARE) / (1 - HEADROOM))
    limit = (memory * (1 - HEADROOM) - BASE_MIB) / MIB_PER_HISTORY_MB
    assert limit >= history, "the test's history is too small"
    # The runtime has the CLI compact such a history first (test_compact_ahead.py): only when
    # that fails is the answer given on the history as it was, and says how close it is.
    model_server.inject(ModelFault(status=500))

    answer = make_runtime(env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}).run_turn(
        turn_request("and now?", turn_id=2)
    )

    assert answer.ok and answer.text.startswith("turns=2")
    assert answer.history is not None
    assert answer.history.mb == pytest.approx(history)
    assert answer.history.limit_mb == pytest.approx(limit)


@pytest.mark.slow
def test_a_refused_history_is_not_downloaded(make_runtime, model_server, turn_request, aws) -> None:
    def compacting_store(s3):  # every turn's entries go into the S3 snapshot
        return TranscriptStore(
            s3=s3,
            dynamodb=aws.client("dynamodb"),
            bucket=aws.resources.bucket,
            table=aws.resources.table,
            tail_limit_bytes=1,
            chunk_limit_bytes=1,
        )

    first = make_runtime(store=compacting_store(aws.client("s3"))).run_turn(
        turn_request("the password is heron", turn_id=1)
    )
    assert first.ok, first
    listed = aws.client("s3").list_objects_v2(Bucket=aws.resources.bucket, Prefix="transcripts/")
    assert any("/snap-" in o["Key"] for o in listed.get("Contents", [])), "the history has a snapshot"

    s3 = aws.client("s3")
    read: list[str] = []
    s3.meta.events.register("before-send.s3.GetObject", lambda request, **_: read.append(request.url))
    small = make_runtime(store=compacting_store(s3), env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(BASE_MIB)})
    refused = small.run_turn(turn_request("what is the password?", turn_id=2))

    assert not [url for url in read if "/transcripts/" in url]  # the head said it was too big
    assert not refused.ok and refused.error_reason == "history_too_large"
    assert refused.history is not None
    assert refused.history.mb == pytest.approx(stored_mb(small, first.session_id or ""))
    assert refused.history.loaded_mb is None  # not read: what the CLI would load of it is unknown


def test_a_history_past_what_tmp_holds_is_said_to_need_new_not_more_memory() -> None:
    """Lambda's /tmp holds MOST_HISTORY_MB of transcript beside a turn's files whatever the
    memory: advising more memory would send the operator after a setting that cannot help; the
    chat goes on only after /new. Below it, the memory it needs is named."""
    huge = HistorySize(mb=MOST_HISTORY_MB + 1, limit_mb=MOST_HISTORY_MB, loaded_mb=1.0)
    fix = memory_fix(huge, 10_240)
    assert fix.startswith("none:") and f"{MOST_HISTORY_MB} MB" in fix and "/new" in fix, fix
    assert "needs about" not in fix, fix
    assert "needs about" in memory_fix(HistorySize(mb=100, limit_mb=90), 1024)


def test_no_memory_lets_a_history_past_what_tmp_holds_be_downloaded_or_pass() -> None:
    """Compacted, a history could grow to (0.9 x memory - 340) / 2 MB: 4,438 MB at 10,240, more
    than the 2,048 MB /tmp holds. The limit stops at MOST_HISTORY_MB whatever the memory."""
    assert history_limit_bytes(10_240) == MOST_HISTORY_MB * 1_000_000
    assert history_limit_bytes(1024) == int(
        (1024 * (1 - HEADROOM) - BASE_MIB) / RUNTIME_MIB_PER_MB * 1_000_000
    )
    past = history_size((MOST_HISTORY_MB + 1) * 1_000_000, 10_240, loaded_bytes=1_000_000)
    assert past is not None and past.too_large and past.limit_mb == MOST_HISTORY_MB


def test_a_history_not_read_is_said_to_fit_the_memory_that_would_hold_it_compacted() -> None:
    """A history refused before it was downloaded (past what the runtime could keep even
    compacted) may have been compacted lately: the CLI would load little of it. The operator
    who lowered the memory is told what would do then, not only what a history never compacted
    needs (which may pass Lambda's maximum and say no setting helps)."""
    unread = HistorySize(mb=300, limit_mb=290)  # at 1024 MB, nothing known of what the CLI loads
    fix = memory_fix(unread, 1024)
    compacted = math.ceil((BASE_MIB + RUNTIME_MIB_PER_MB * 300) / (1 - HEADROOM))
    never = math.ceil((BASE_MIB + MIB_PER_HISTORY_MB * 300) / (1 - HEADROOM))
    assert "RuntimeMemoryMb" in fix and f"about {compacted} MB if the CLI compacted it" in fix, fix
    assert f"{never} MB if it never did" in fix, fix
