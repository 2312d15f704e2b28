"""Transcript store vs the naive whole-file approach, on one local moto server.

Run: ``uv run python bench/session_store.py [--turns 10,100,300]``

For synthetic sessions of 10, 100 and 300 turns (~100 KB of transcript JSON per turn, as
the Claude Code CLI writes: user prompt, assistant turns with tool_use, large tool
results, a final answer) it measures, on the same server in the same run:

* bytes written per turn, amortized over the session (request bodies of every write,
  compaction and clean-up included);
* a cold load (new process, empty cache): requests, bytes read and wall time;
* a warm load (the process that wrote the session): requests by service.

The baseline keeps each session as one JSONL object and, every turn, downloads it whole,
appends the turn and uploads it whole. Request counts come from botocore's ``before-send``
event on the clients (nothing is patched), so they include every HTTP request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from session_core import TranscriptStore

from agentbot.local_aws import local_client, moto_endpoint
from agentbot.provisioning import ResourceNames, provision

TURN_BYTES = 100_000


# --- synthetic transcripts ---------------------------------------------------------------------

_SYLLABLES = ["ka", "to", "ri", "mon", "sel", "da", "ver", "pu", "lin", "gor", "ex", "am", "ti", "no", "qua"]


class Synth:
    """Deterministic, CLI-shaped transcript entries with text that compresses like real output."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words = [
            "".join(self.rng.choice(_SYLLABLES) for _ in range(self.rng.randint(1, 4))) for _ in range(3000)
        ]
        self.idents = [
            w + self.rng.choice(["", "_id", "_count", "s", "_path", "Name"]) for w in self.words[:600]
        ]
        self.session_id = str(uuid.UUID(int=self.rng.getrandbits(128)))
        self.parent: str | None = None
        self.clock = 1_760_000_000.0

    def prose(self, size: int) -> str:
        out: list[str] = []
        n = 0
        while n < size:
            sentence = " ".join(self.rng.choice(self.words) for _ in range(self.rng.randint(6, 18)))
            out.append(sentence.capitalize() + ".")
            n += len(sentence) + 2
        return " ".join(out)

    def code(self, size: int) -> str:
        lines: list[str] = []
        n = 0
        while n < size:
            indent = "    " * self.rng.randint(0, 3)
            a, b, c = (self.rng.choice(self.idents) for _ in range(3))
            template = self.rng.randrange(5)
            line = [
                f"{indent}{a} = {b}({c}, {self.rng.randint(0, 999)})",
                f"{indent}if {a} is not None and {b}.{c}:",
                f"{indent}return {a}.{b}({c!r})",
                f"{indent}def {a}(self, {b}: int, {c}: str | None = None) -> dict[str, Any]:",
                f"{indent}# {self.prose(40)}",
            ][template]
            lines.append(line)
            n += len(line) + 1
        return "\n".join(lines)

    def _entry(self, kind: str, message: dict[str, Any], **extra: Any) -> dict[str, Any]:
        self.clock += self.rng.uniform(0.5, 20)
        entry_uuid = str(uuid.UUID(int=self.rng.getrandbits(128)))
        entry = {
            "parentUuid": self.parent,
            "isSidechain": False,
            "userType": "external",
            "cwd": "/tmp/agentbot-sessions/default/123456789/0",
            "sessionId": self.session_id,
            "version": "2.0.14",
            "gitBranch": "main",
            "type": kind,
            "message": message,
            "uuid": entry_uuid,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(self.clock)),
            **extra,
        }
        self.parent = entry_uuid
        return entry

    def turn(self) -> list[dict[str, Any]]:
        """One user turn: prompt, three tool round trips, final answer (~100 KB of JSON)."""
        entries = [self._entry("user", {"role": "user", "content": self.prose(self.rng.randint(80, 600))})]
        budget = TURN_BYTES - 6_000
        for tool in ("Read", "Grep", "Bash"):
            tool_id = "toolu_" + uuid.UUID(int=self.rng.getrandbits(128)).hex[:24]
            entries.append(
                self._entry(
                    "assistant",
                    {
                        "id": "msg_" + uuid.UUID(int=self.rng.getrandbits(128)).hex[:24],
                        "type": "message",
                        "role": "assistant",
                        "model": "claude-sonnet-4-5",
                        "content": [
                            {"type": "text", "text": self.prose(300)},
                            {
                                "type": "tool_use",
                                "id": tool_id,
                                "name": tool,
                                "input": {"arg": self.prose(40)},
                            },
                        ],
                        "stop_reason": "tool_use",
                        "usage": {"input_tokens": self.rng.randint(1000, 90000), "output_tokens": 200},
                    },
                    requestId="req_" + uuid.UUID(int=self.rng.getrandbits(128)).hex[:20],
                )
            )
            output = self.code(budget // 3 // 2) + "\n" + self.prose(budget // 3 // 2)
            entries.append(
                self._entry(
                    "user",
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": output}],
                    },
                    toolUseResult={"stdout": output[:2000], "stderr": "", "interrupted": False},
                )
            )
        entries.append(
            self._entry(
                "assistant",
                {
                    "role": "assistant",
                    "content": [{"type": "text", "text": self.prose(2500)}],
                    "stop_reason": "end_turn",
                },
            )
        )
        return entries


# --- measurement -------------------------------------------------------------------------------

_WRITES = {
    "PutObject",
    "TransactWriteItems",
    "BatchWriteItem",
    "DeleteObjects",
    "DeleteObject",
    "UpdateItem",
    "PutItem",
    "DeleteItem",
    "CompleteMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
}


class Recorder:
    """Requests and request-body bytes by (service, operation), via botocore's ``before-send`` hook."""

    def __init__(self, *clients: Any) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        self.written = 0
        self.read = 0
        for client in clients:
            client.meta.events.register("before-send", self._on_send)
            client.meta.events.register("after-call", self._on_response)

    def _on_send(self, request: Any, event_name: str, **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        self.requests[(service, operation)] += 1
        if operation in _WRITES:
            self.written += _body_size(request)

    def _on_response(self, http_response: Any, **_: Any) -> None:
        if http_response is not None:  # headers only: reading the body here would consume a stream
            self.read += int(http_response.headers.get("content-length") or 0)

    def reset(self) -> None:
        self.requests.clear()
        self.written = 0
        self.read = 0

    def by_service(self) -> str:
        s3 = sum(n for (svc, _), n in self.requests.items() if svc == "s3")
        ddb = sum(n for (svc, _), n in self.requests.items() if svc == "dynamodb")
        return f"{s3 + ddb} (S3 {s3}, DDB {ddb})"


def _body_size(request: Any) -> int:
    body = request.body
    if isinstance(body, (bytes, bytearray)):
        return len(body)
    headers = request.headers  # S3 uploads send a stream; its length is in the headers
    return int(headers.get("X-Amz-Decoded-Content-Length") or headers.get("Content-Length") or 0)


def clients(endpoint: str) -> tuple[Any, Any]:
    def make(service: str) -> Any:
        return local_client(
            service,
            endpoint,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=4),
        )

    return make("s3"), make("dynamodb")


@dataclass
class Row:
    variant: str
    turns: int
    written_per_turn: float
    append_ms: float
    slowest_append_ms: float
    cold_requests: str
    cold_read: int
    cold_ms: float
    warm_requests: str
    stored: int


def progress(text: str) -> None:
    sys.stderr.write(f"\r\033[K{text}")
    sys.stderr.flush()


async def bench_store(endpoint: str, bucket: str, table: str, turns: list[list[dict[str, Any]]]) -> Row:
    s3, ddb = clients(endpoint)
    rec = Recorder(s3, ddb)
    store = TranscriptStore(s3=s3, dynamodb=ddb, bucket=bucket, table=table)
    key = {"project_key": "-tmp-agentbot-sessions-default-1-0", "session_id": str(uuid.uuid4())}
    started = time.perf_counter()
    slowest = 0.0
    for i, entries in enumerate(turns):
        progress(f"  store: {len(turns)} turns, turn {i + 1}")
        began = time.perf_counter()
        await store.append(key, entries)  # the SDK's batched mode flushes once per turn
        slowest = max(slowest, time.perf_counter() - began)
    append_ms = (time.perf_counter() - started) * 1000 / len(turns)
    written = rec.written

    s3c, ddbc = clients(endpoint)
    cold_rec = Recorder(s3c, ddbc)
    cold = TranscriptStore(s3=s3c, dynamodb=ddbc, bucket=bucket, table=table)
    started = time.perf_counter()
    loaded = await cold.load(key)
    cold_ms = (time.perf_counter() - started) * 1000
    assert loaded == [e for t in turns for e in t], "store lost or changed entries"
    cold_requests, cold_read = cold_rec.by_service(), cold_rec.read

    rec.reset()
    await store.load(key)
    warm = rec.by_service()
    stored = _stored_bytes(s3, ddb, bucket, table, key)
    return Row(
        "store",
        len(turns),
        written / len(turns),
        append_ms,
        slowest * 1000,
        cold_requests,
        cold_read,
        cold_ms,
        warm,
        stored,
    )


def _stored_bytes(s3: Any, ddb: Any, bucket: str, table: str, key: dict[str, str]) -> int:
    total = sum(
        o["Size"]
        for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        if key["session_id"] in o["Key"]
    )
    items = ddb.scan(TableName=table)["Items"]
    for item in items:
        if key["session_id"] in item["pk"]["S"]:
            total += len(item.get("data", {}).get("B", b""))
    return total


def bench_naive(endpoint: str, bucket: str, turns: list[list[dict[str, Any]]]) -> Row:
    s3, _ = clients(endpoint)
    rec = Recorder(s3)
    object_key = f"naive/{uuid.uuid4()}.jsonl"
    started = time.perf_counter()
    slowest = 0.0
    for i, entries in enumerate(turns):
        progress(f"  naive: {len(turns)} turns, turn {i + 1}")
        began = time.perf_counter()
        try:  # restore before the turn ...
            body = s3.get_object(Bucket=bucket, Key=object_key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            body = b""
        body += b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in entries)
        s3.put_object(Bucket=bucket, Key=object_key, Body=body)  # ... persist whole after it
        slowest = max(slowest, time.perf_counter() - began)
    append_ms = (time.perf_counter() - started) * 1000 / len(turns)
    written = rec.written

    s3c, _ = clients(endpoint)
    cold_rec = Recorder(s3c)
    started = time.perf_counter()
    body = s3c.get_object(Bucket=bucket, Key=object_key)["Body"].read()
    loaded = [json.loads(line) for line in body.splitlines()]
    cold_ms = (time.perf_counter() - started) * 1000
    assert len(loaded) == sum(len(t) for t in turns)
    cold_requests, cold_read = cold_rec.by_service(), cold_rec.read
    rec.reset()
    s3.get_object(Bucket=bucket, Key=object_key)["Body"].read()  # it always downloads
    return Row(
        "naive",
        len(turns),
        written / len(turns),
        append_ms,
        slowest * 1000,
        cold_requests,
        cold_read,
        cold_ms,
        rec.by_service(),
        len(body),
    )


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'turns':>5} {'variant':<6} {'written/turn':>13} {'vs naive':>9} {'append avg/max':>17} "
        f"{'cold load requests':>20} {'cold read':>11} {'cold load':>10} "
        f"{'warm load requests':>20} {'stored':>10}"
    )
    print(header)
    print("-" * len(header))
    naive = {r.turns: r for r in rows if r.variant == "naive"}
    for row in rows:
        ratio = (
            naive[row.turns].written_per_turn / row.written_per_turn if row.turns in naive else float("nan")
        )
        print(
            f"{row.turns:>5} {row.variant:<6} {_size(row.written_per_turn):>13} "
            f"{'1/' + format(ratio, '.0f'):>9} {row.append_ms:>6.0f}/{row.slowest_append_ms:>5.0f} ms "
            f"{row.cold_requests:>20} "
            f"{_size(row.cold_read):>11} {row.cold_ms:>8.1f}ms "
            f"{row.warm_requests:>20} {_size(row.stored):>10}"
        )


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", default="10,100,300", help="comma list of session lengths")
    args = parser.parse_args()
    lengths = [int(x) for x in args.turns.split(",")]
    rows: list[Row] = []
    with moto_endpoint() as endpoint:
        s3, ddb = clients(endpoint)
        sqs = local_client("sqs", endpoint)
        resources = provision(dynamodb=ddb, s3=s3, sqs=sqs, names=ResourceNames(prefix="bench"))
        for n in lengths:
            progress(f"generating {n} turns")
            synth = Synth(seed=n)
            turns = [synth.turn() for _ in range(n)]
            size = sum(len(json.dumps(e)) for t in turns for e in t) / n
            rows.append(await bench_store(endpoint, resources.bucket, resources.table, turns))
            rows.append(bench_naive(endpoint, resources.bucket, turns))
            progress(f"done {n} turns ({size / 1000:.0f} KB of JSON per turn)\n")
    progress("")
    print()
    print_table(rows)
    print(
        "\nwritten/turn: request bodies of all writes (compaction and clean-up included), amortized;"
        "\ncold load: a new process with an empty cache; warm load: the process that wrote the session;"
        "\nnaive: one JSONL object per session, downloaded whole before and uploaded whole after each turn."
    )


if __name__ == "__main__":
    asyncio.run(main())
