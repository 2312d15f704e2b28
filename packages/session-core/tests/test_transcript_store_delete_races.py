"""Delete racing a stale writer's append: however the two interleave, a load afterwards gives
``None`` (the delete won) or the append's batch alone (it landed after the delete, as a new
transcript), never an error or a mix; nothing the live head needs is gone, nothing of the
deleted transcript is left, and the session index lists exactly what loads.

Each side talks to the moto server through a proxy of its own (``FaultProxy``) that holds one
of its requests until the test lets it go, so every interleaving is driven, not hoped for: the
first side runs up to its i-th request and waits there, the other runs up to its j-th and
waits, the first finishes, then the other. Every pair (i, j) is tried, with either side first.
The first test is the one interleaving the defect was found with, spelt out.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from itertools import count
from typing import Any

import pytest
from agentbot_testing import AwsFault, FaultProxy
from botocore.handlers import add_expect_header
from session_core import TranscriptStore

SMALL = {"tail_limit_bytes": 6_000, "chunk_limit_bytes": 4_000}
SUBAGENT = "subagents/agent-1"
WAIT_S = 60.0


def turn(n: int) -> list[dict[str, Any]]:
    text = " ".join(f"w{(n * 31 + i * i) % 997}" for i in range(300))
    return [
        {"type": "user", "uuid": f"u{n}", "message": {"content": f"question {n}"}},
        {"type": "assistant", "uuid": f"a{n}", "message": {"content": text}},
    ]


def turns(first: int, stop: int) -> list[dict[str, Any]]:
    return [e for n in range(first, stop) for e in turn(n)]


# What the stale writer appends while the session is being deleted.
BATCHES = {
    "chunk": turn(100),
    "compaction": turns(100, 109),  # too big for a chunk: a new snapshot
}


class Lane:
    """One side's way to the server: its own proxy and clients through it."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.s3 = proxy.client("s3")
        # The proxy answers HTTP/1.0, so an upload that asks to hear "100 Continue" first would
        # wait a second for it before sending its body.
        self.s3.meta.events.unregister("before-call.s3", add_expect_header)
        self.dynamodb = proxy.client("dynamodb")


@pytest.fixture
def lanes(aws: Any) -> Iterator[dict[str, Lane]]:
    with (
        FaultProxy(aws.endpoint, services=aws.endpoints.services) as append_side,
        FaultProxy(aws.endpoint, services=aws.endpoints.services) as delete_side,
    ):
        yield {"append": Lane(append_side), "delete": Lane(delete_side)}


def store_through(aws: Any, lane: Lane | None) -> TranscriptStore:
    return TranscriptStore(
        s3=lane.s3 if lane else aws.s3,
        dynamodb=lane.dynamodb if lane else aws.dynamodb,
        bucket=aws.resources.bucket,
        table=aws.resources.table,
        **SMALL,
    )


# Steps of a multipart upload before its completion change nothing the other side can see:
# holding before each of them as well would add time, not interleavings worth telling apart.
_UNSEEN = frozenset({"s3:CreateMultipartUpload", "s3:UploadPartCopy", "s3:UploadPart"})


class Side:
    """One store call run in a thread of its own, held before its ``at``-th request (from 0;
    multipart steps uncounted), or before its first request of the operation ``at`` names."""

    def __init__(
        self, proxy: FaultProxy, at: int | str, call: Callable[[], Coroutine[Any, Any, Any]]
    ) -> None:
        self.at = at
        self.sent = 0
        self.held = False
        self.stopped = threading.Event()  # held, or finished
        self.go = threading.Event()
        self.error: BaseException | None = None
        proxy.faults[:] = [AwsFault("*", when=self._hold)]
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _hold(self, operation: str, body: bytes) -> bool:
        if operation in _UNSEEN:
            return False
        if not self.held and self.at in (self.sent, operation):
            self.held = True
            self.stopped.set()
            self.go.wait(WAIT_S)
        self.sent += 1
        return False  # never a fault: the request goes on

    def _run(self, call: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        try:
            asyncio.run(call())
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.stopped.set()

    def wait_stopped(self) -> bool:
        """Whether it is held (else it finished before its ``at``-th request)."""
        assert self.stopped.wait(WAIT_S), "side neither held nor finished"
        return self.held

    def finish(self) -> None:
        self.go.set()
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "side did not finish"


def test_a_new_transcript_appended_while_the_delete_runs_keeps_its_snapshot(
    aws: Any, lanes: dict[str, Lane]
) -> None:
    """F5 as it was found: the delete has removed the head when a stale writer appends a batch
    too big for a chunk; its write fails against the missing head, so it starts the transcript
    anew with a snapshot. The delete, going on to the session's objects, deleted that snapshot
    too, and every load after failed ("snapshot object is missing")."""
    main = {"project_key": "proj", "session_id": "s"}
    writer = store_through(aws, lanes["append"])
    asyncio.run(writer.append(main, turns(0, 9)))
    asyncio.run(writer.append(main, turn(9)))
    deleter = store_through(aws, lanes["delete"])
    delete = Side(lanes["delete"].proxy, "s3:ListObjectsV2", lambda: deleter.delete(main))
    assert delete.wait_stopped()  # the transcript is gone for readers; its objects are not yet
    asyncio.run(writer.append(main, BATCHES["compaction"]))
    delete.finish()
    assert delete.error is None
    assert asyncio.run(store_through(aws, None).load(main)) == BATCHES["compaction"]


def race(
    aws: Any, lanes: dict[str, Lane], first: str, i: int, j: int, case: str
) -> tuple[bool, bool, str | None]:
    """Run one interleaving; whether each side was held (first, second) and what is wrong with
    what it left (None: nothing)."""
    kind, appended, deleted = CASES[case]
    # A project of its own: the listings below read only this interleaving's sessions.
    main = {"project_key": f"{case}-{first}-{i}-{j}", "session_id": "s"}
    key = {**main, "subpath": SUBAGENT} if appended == "subagent" else main
    writer = store_through(aws, lanes["append"])
    for lane in lanes.values():
        lane.proxy.faults.clear()
    # The writer's history: a snapshot and a chunk after it; its cache is current.
    asyncio.run(writer.append(key, turns(0, 9)))
    asyncio.run(writer.append(key, turn(9)))
    if key != main:
        asyncio.run(writer.append(main, turn(50)))
    deleter = store_through(aws, lanes["delete"])
    batch = BATCHES[kind]
    calls: dict[str, Callable[[], Coroutine[Any, Any, Any]]] = {
        "append": lambda: writer.append(key, batch),
        "delete": lambda: deleter.delete(main if deleted == "session" else key),
    }
    second = "delete" if first == "append" else "append"
    one = Side(lanes[first].proxy, i, calls[first])
    one_held = one.wait_stopped()
    two = Side(lanes[second].proxy, j, calls[second])
    two_held = two.wait_stopped()
    one.finish()
    two.finish()
    for lane in lanes.values():
        lane.proxy.faults.clear()
    try:
        assert one.error is None and two.error is None, repr(one.error or two.error)
        check_what_is_left(aws, main, key, batch, [writer, deleter], session_deleted=deleted == "session")
    except Exception as exc:  # every interleaving is tried; the test reports all that fail
        where = f"{first} held before request {i}, the other before request {j} ({case})"
        return one_held, two_held, f"{where}: {str(exc).splitlines()[0]}"
    return one_held, two_held, None


def check_what_is_left(
    aws: Any,
    main: dict[str, str],
    key: dict[str, str],
    batch: list[dict[str, Any]],
    stores: list[TranscriptStore],
    *,
    session_deleted: bool,
) -> None:
    fresh = store_through(aws, None)
    loaded = asyncio.run(fresh.load(key))
    assert loaded is None or loaded == batch, f"loaded {len(loaded)} entries, not the batch's {len(batch)}"
    for store in stores:  # what each side has cached agrees
        assert asyncio.run(store.load(key)) == loaded, "a store's cache disagrees with the stored transcript"
    main_loaded = asyncio.run(fresh.load(main))
    if key != main:
        assert main_loaded == (None if session_deleted else turn(50)), f"main transcript: {main_loaded!r:.80}"
    # Nothing the live transcript does not need is left, and all it needs is there.
    sub = "~" if key == main else SUBAGENT.replace("/", "%2F")
    pk = f"tx|{main['project_key']}|{main['session_id']}|{sub}"
    items = {
        i["sk"]["S"]: i
        for i in aws.dynamodb.query(
            TableName=aws.resources.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
        )["Items"]
    }
    prefix = f"transcripts/{main['project_key']}/{main['session_id']}/{sub}/"
    listed = aws.s3.list_objects_v2(Bucket=aws.resources.bucket, Prefix=prefix)
    objects = {o["Key"] for o in listed.get("Contents", [])}
    if loaded is None:
        assert items == {} and objects == set(), f"left behind: {sorted(items)} {sorted(objects)}"
    else:
        head = items["head"]
        needed = {f"c#{seq:012d}" for seq in range(int(head["snap_seq"]["N"]), int(head["next_seq"]["N"]))}
        assert set(items) == {"head", *needed}, f"items {sorted(items)}, the head needs {sorted(needed)}"
        assert all(items[sk]["epoch"] == head["epoch"] for sk in needed), "a chunk of another epoch"
        named = {head["snap_key"]["S"]} if "snap_key" in head else set()
        assert objects == named, f"objects {sorted(objects)}, the head names {sorted(named)}"
    # The index lists what loads.
    sessions = [s["session_id"] for s in asyncio.run(fresh.list_sessions(main["project_key"]))]
    assert sessions == (["s"] if main_loaded is not None else []), f"sessions listed: {sessions}"
    subkeys = asyncio.run(fresh.list_subkeys(main))
    expected = [SUBAGENT] if key != main and loaded is not None else []
    assert subkeys == expected, f"subkeys listed: {subkeys}"


# What the writer appends (BATCHES), to which transcript, and what is deleted.
CASES = {
    "chunk": ("chunk", "main", "session"),
    "compaction": ("compaction", "main", "session"),
    "subagent": ("chunk", "subagent", "session"),
    "subagent-alone": ("chunk", "subagent", "subagent"),
}


@pytest.mark.parametrize("first", ["append", "delete"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_delete_racing_a_stale_writers_append_leaves_nothing_or_the_append_alone(
    aws: Any, lanes: dict[str, Lane], case: str, first: str
) -> None:
    failed: list[str] = []
    for i in count():
        for j in count():
            one_held, two_held, problem = race(aws, lanes, first, i, j, case)
            if problem:
                failed.append(problem)
            if not (one_held and two_held):
                break  # the rest of the j's run the same: one side before the other
        if not one_held:
            break
    assert not failed, "\n".join(failed)
