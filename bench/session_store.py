"""Restore and persist of long sessions: the transcript store vs a whole-file download.

Run: ``uv run python bench/session_store.py [--turns 10,100,300,1000] [--repeat 3]``

Synthetic sessions of ~110 KB of transcript JSON per turn (as the Claude Code CLI writes:
prompt, assistant turns with tool_use, large tool results, a final answer), all measured on
one moto server in a process of its own (AWS is remote: its CPU must not count against the
bench's) in the same run, on loopback and through ``shaping_proxy`` (a model of S3
and DynamoDB seen from a Lambda function in the same region):

* S3: 15 ms to the first byte of a response, then 90 MB/s per connection (AWS quotes
  single-connection GET throughput of 85-90 MB/s and first-byte latency of tens of ms;
  15 ms is the low end for small objects in-region);
* DynamoDB: 5 ms per round trip (single-digit ms in-region), same per-connection rate;
* lambda 1024: the same network, with the bench's process held to the CPU share of a
  1,024 MB function (0.58 of one CPU, ``cpu_share.py``; ``--runtime-mb`` picks another size;
  needs root and a writable cgroup file system, otherwise the row is left out and the bench
  says why).

Columns (each time the median of ``--repeat`` runs):

* persist: one append per turn (the SDK's batched mode flushes once per turn): mean and
  slowest latency, requests per append, bytes written per turn amortized over the session
  (request bodies of every write, compaction and clean-up included) and that as a multiple
  of the turn's compressed size (zlib 6 of its JSONL); payload: the same without the base64
  DynamoDB's JSON API adds to binary values (DynamoDB bills and stores the bytes);
  reference: the SDK's reference adapter pattern, one PUT of the turn's JSONL per append;
* cold restore: a new process with an empty disk, up to the CLI having its transcript file:
  the runtime's ``TranscriptRestorer.restore`` (Query, GET, list_subkeys, write the file)
  plus the resume-point scan (``find_last_prompt``);
  whole file: GET of the session as one JSONL object + write the file (the baseline);
  floor: GET of the whole history as one gzip object + decompress + write;
* warm restore: the same container, its file current after the last turn;
* CPU cold/whole: CPU time of a cold restore and of the whole-file download, the bench's own
  and its children's (moto, the shaping proxies) together, then each apart: on loopback the
  network's cost is moto's CPU, which shares this machine's cores with the restore.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from agent_runtime._prompt_marks import find_last_prompt, prompt_uuid
from agent_runtime._restore import TranscriptRestorer, transcript_path
from botocore.config import Config
from cpu_share import cpu_share, cpu_share_unavailable, lambda_cpu_share
from local_stack import ResourceNames, local_client, moto_process, provision
from session_core import TranscriptStore
from session_core._snapshot_padding import PADDING_KEY
from shaping_proxy import shaping_process

TURN_BYTES = 100_000
S3_FIRST_BYTE_S = 0.015
DYNAMODB_ROUND_TRIP_S = 0.005
BYTES_PER_S = 90e6
# RuntimeMemoryMb's lowest (infra/template.yaml's MinValue): the smallest CPU share a deployment
# may give a restore (its default, 2048, gives twice as much)
LOWEST_RUNTIME_MB = 1024


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
        self.turns = 0
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

    def _entry(
        self, kind: str, message: dict[str, Any], entry_uuid: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        self.clock += self.rng.uniform(0.5, 20)
        entry_uuid = entry_uuid or str(uuid.UUID(int=self.rng.getrandbits(128)))
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
        self.turns += 1
        prompt = {"role": "user", "content": self.prose(self.rng.randint(80, 600))}
        # The runtime's prompts carry their update id in their uuid (the resume point finds them).
        entries = [self._entry("user", prompt, prompt_uuid(self.turns))]
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
    """Requests and request-body bytes by (service, operation), via botocore's ``before-send`` hook.

    ``written`` counts bytes on the wire; ``payload`` the same without the base64 that
    DynamoDB's JSON API wraps binary values in (what DynamoDB bills and stores); ``once``
    the padding object, put once per bucket (not per session or turn).
    """

    def __init__(self, *clients: Any) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        self.written = 0
        self.payload = 0
        self.once = 0
        for client in clients:
            client.meta.events.register("before-send", self._on_send)

    def _on_send(self, request: Any, event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".", 2)[1:]
        self.requests[(service, operation)] += 1
        if operation not in _WRITES:
            return
        size = _body_size(request)
        if request.url.endswith(PADDING_KEY):
            self.once += size
            return
        self.written += size
        self.payload += size - _base64_excess(request.body) if service == "dynamodb" else size

    def total(self) -> int:
        return sum(self.requests.values())


def _base64_excess(body: Any) -> int:
    """Bytes the base64 of a DynamoDB JSON body's binary (``"B"``) values adds to them."""
    excess = 0

    def walk(node: Any) -> None:
        nonlocal excess
        if isinstance(node, dict):
            for name, value in node.items():
                if name == "B" and isinstance(value, str):
                    excess += len(value) - len(base64.b64decode(value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(body))
    return excess


def _body_size(request: Any) -> int:
    body = request.body
    if isinstance(body, (bytes, bytearray)):
        return len(body)
    headers = request.headers  # S3 uploads send a stream; its length is in the headers
    return int(headers.get("X-Amz-Decoded-Content-Length") or headers.get("Content-Length") or 0)


@dataclass(frozen=True)
class Network:
    name: str
    s3: str
    dynamodb: str
    cpu_share: float | None = None  # this process limited to that share of one CPU

    def clients(self) -> tuple[Any, Any]:
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=4)
        return local_client("s3", self.s3, config=config), local_client(
            "dynamodb", self.dynamodb, config=config
        )


@dataclass
class Row:
    turns: int
    network: str
    persist_ms: float = 0.0
    persist_max_ms: float = 0.0
    persist_requests: float = 0.0
    reference_ms: float = 0.0
    written_per_turn: float = 0.0
    payload_per_turn: float = 0.0
    written_once: int = 0
    turn_compressed: float = 0.0
    turn_json: float = 0.0
    cold_ms: float = 0.0
    whole_ms: float = 0.0
    floor_ms: float = 0.0
    warm_ms: float = 0.0
    warm_requests: str = ""
    cold_requests: str = ""
    cold_cpu_ms: tuple[float, float] = (0.0, 0.0)  # (this process, its children)
    whole_cpu_ms: tuple[float, float] = (0.0, 0.0)


def cpu_seconds() -> tuple[float, float]:
    """CPU time of this process (every thread), and of its children still running: the moto
    server, and the shaping proxies where they run. On a machine with N cores a restore cannot
    take less wall time than their sum over N. The children's count in clock ticks (10 ms).
    This process's is read after the scan of /proc, so a start mark leaves that scan out."""
    children = children_cpu_seconds()
    return time.process_time(), children


def children_cpu_seconds() -> float:
    children = 0.0
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[1] == me:  # ppid; utime and stime are fields 14 and 15 of stat
            children += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return children


def cpu_ms_since(before: tuple[float, float]) -> tuple[float, float]:
    """CPU ms since ``cpu_seconds()`` gave ``before``; this process's is read first, so the
    scan of /proc counts in neither."""
    own = time.process_time()
    children = children_cpu_seconds()
    return (own - before[0]) * 1000, (children - before[1]) * 1000


def median_pair(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """The pair of the run whose total is the median."""
    return sorted(pairs, key=sum)[len(pairs) // 2]


def progress(text: str) -> None:
    sys.stderr.write(f"\r\033[K{text}")
    sys.stderr.flush()


def jsonl(entries: list[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps(e, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for e in entries
    )


async def persist(
    network: Network,
    bucket: str,
    table: str,
    key: dict[str, str],
    turns: list[list[dict[str, Any]]],
    row: Row,
) -> None:
    s3, ddb = network.clients()
    rec = Recorder(s3, ddb)
    store = TranscriptStore(s3=s3, dynamodb=ddb, bucket=bucket, table=table)
    times = []
    for i, entries in enumerate(turns):
        progress(f"  {len(turns)} turns: persist turn {i + 1}")
        began = time.perf_counter()
        await store.append(key, entries)
        times.append(time.perf_counter() - began)
    row.persist_ms = statistics.mean(times) * 1000
    row.persist_max_ms = max(times) * 1000
    row.persist_requests = rec.total() / len(turns)
    row.written_per_turn = rec.written / len(turns)
    row.payload_per_turn = rec.payload / len(turns)
    row.written_once = rec.once
    ref_s3, _ = network.clients()
    ref_times = []
    for i, entries in enumerate(turns):
        body = jsonl(entries)
        began = time.perf_counter()
        ref_s3.put_object(Bucket=bucket, Key=f"reference/{key['session_id']}/{i:06d}.jsonl", Body=body)
        ref_times.append(time.perf_counter() - began)
    row.reference_ms = statistics.mean(ref_times) * 1000


# Where restores write the CLI's file: a tmpfs when there is one. On this machine's ext4 disk
# writing the same 110 MB file took anywhere from 30 to 550 ms (writeback of the earlier
# runs' files), noise that drowned the rest; every column writes the same bytes to it.
FILE_DIR = "/dev/shm" if Path("/dev/shm").is_dir() else None


async def measure_restores(
    network: Network, bucket: str, table: str, key: dict[str, str], whole: bytes, repeat: int, row: Row
) -> None:
    whole_key = f"whole/{key['session_id']}.jsonl"
    floor_key = f"whole/{key['session_id']}.jsonl.gz"
    workdir = Path(tempfile.mkdtemp(prefix="bench-restore-", dir=FILE_DIR))
    limited = cpu_share(network.cpu_share) if network.cpu_share else contextlib.nullcontext()
    try:
        with limited:
            await _time_restores(
                network, bucket, table, key, whole, repeat, row, workdir, whole_key, floor_key
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _time_restores(
    network: Network,
    bucket: str,
    table: str,
    key: dict[str, str],
    whole: bytes,
    repeat: int,
    row: Row,
    workdir: Path,
    whole_key: str,
    floor_key: str,
) -> None:
    path = transcript_path(str(workdir / "config"), "-bench-work", key["session_id"])

    def fresh_disk() -> None:
        path.unlink(missing_ok=True)

    cold_times, whole_times, floor_times, warm_times, cold_cpu, whole_cpu = [], [], [], [], [], []
    for attempt in range(repeat):
        progress(f"  {row.turns} turns, {network.name}: restores, run {attempt + 1}")
        # cold: new clients, new store, empty disk
        fresh_disk()
        s3, ddb = network.clients()
        rec = Recorder(s3, ddb)
        store = TranscriptStore(s3=s3, dynamodb=ddb, bucket=bucket, table=table)
        restorer = TranscriptRestorer(store)
        cpu, began = cpu_seconds(), time.perf_counter()  # /proc is read outside the wall time
        restored = await restorer.restore("bench", key, path)
        assert restored is not None and restored.written
        assert find_last_prompt(restored.stored) is not None
        cold_times.append(time.perf_counter() - began)
        cold_cpu.append(cpu_ms_since(cpu))
        row.cold_requests = _by_service(rec.requests)
        if attempt == 0:
            assert path.read_bytes() == whole, "restored file differs from the session"
        # warm: the same container after a clean turn
        assert restorer.remember("bench", key, path)
        before = Counter(rec.requests)
        began = time.perf_counter()
        again = await restorer.restore("bench", key, path)
        assert again is not None and again.local and not again.written
        assert find_last_prompt(again.stored) is not None
        warm_times.append(time.perf_counter() - began)
        row.warm_requests = _by_service(rec.requests - before)
        # whole-file download
        fresh_disk()
        s3, _ = network.clients()
        cpu, began = cpu_seconds(), time.perf_counter()  # /proc is read outside the wall time
        body = s3.get_object(Bucket=bucket, Key=whole_key)["Body"].read()
        path.write_bytes(body)
        whole_times.append(time.perf_counter() - began)
        whole_cpu.append(cpu_ms_since(cpu))
        # floor: one GET of the compressed history, decompress, write
        fresh_disk()
        s3, _ = network.clients()
        began = time.perf_counter()
        body = gzip.decompress(s3.get_object(Bucket=bucket, Key=floor_key)["Body"].read())
        path.write_bytes(body)
        floor_times.append(time.perf_counter() - began)
    row.cold_ms = statistics.median(cold_times) * 1000
    row.warm_ms = statistics.median(warm_times) * 1000
    row.whole_ms = statistics.median(whole_times) * 1000
    row.floor_ms = statistics.median(floor_times) * 1000
    row.cold_cpu_ms = median_pair(cold_cpu)
    row.whole_cpu_ms = median_pair(whole_cpu)


def _by_service(requests: Counter[tuple[str, str]]) -> str:
    s3 = sum(n for (svc, _), n in requests.items() if svc == "s3")
    ddb = sum(n for (svc, _), n in requests.items() if svc == "dynamodb")
    return f"S3 {s3}, DDB {ddb}"


def print_tables(rows: list[Row]) -> None:
    print("persist (loopback)")
    header = (
        f"{'turns':>5} {'KB/turn':>8} {'zlib/turn':>9} {'append avg/max ms':>18} {'reference PUT':>13} "
        f"{'req/append':>10} {'written/turn':>12} {'x compressed':>12} {'payload x':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        if r.network != "loopback":
            continue
        print(
            f"{r.turns:>5} {r.turn_json / 1000:>8.0f} {r.turn_compressed / 1000:>8.1f}K "
            f"{r.persist_ms:>9.1f}/{r.persist_max_ms:>7.1f} {r.reference_ms:>10.1f} ms "
            f"{r.persist_requests:>10.2f} {r.written_per_turn / 1000:>10.1f}KB "
            f"{r.written_per_turn / r.turn_compressed:>11.2f}x "
            f"{r.payload_per_turn / r.turn_compressed:>8.2f}x"
        )
    once = sum(r.written_once for r in rows)
    print(
        "payload: the same bytes without DynamoDB's base64 (what it bills and stores); the padding "
        f"snapshots start with was put once for the bucket ({once / 2**20:.0f} MiB), not counted per turn"
    )
    print()
    where = f"files written to {FILE_DIR}" if FILE_DIR else "files written to the temp dir"
    print(f"restore (median ms; ratio = store / whole-file download in the same run; {where})")
    header = (
        f"{'turns':>5} {'network':<11} {'whole file':>10} {'floor':>8} {'cold store':>10} {'/whole':>7} "
        f"{'/floor':>7} {'cold requests':>14} {'warm':>7} {'/whole':>7} {'warm requests':>14} "
        f"  {'CPU cold (own+servers) / whole':<32}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.turns:>5} {r.network:<11} {r.whole_ms:>10.1f} {r.floor_ms:>8.1f} {r.cold_ms:>10.1f} "
            f"{r.cold_ms / r.whole_ms:>7.2f} {r.cold_ms / r.floor_ms:>7.2f} {r.cold_requests:>14} "
            f"{r.warm_ms:>7.1f} {r.warm_ms / r.whole_ms:>7.3f} {r.warm_requests:>14} "
            f"  {_cpu(r.cold_cpu_ms):>15} / {_cpu(r.whole_cpu_ms):<15}"
        )
    cores = os.cpu_count()
    print(
        f"CPU: ms of CPU per restore: this process and its children (moto, the shaping proxies) "
        f"together, then each; on {cores} cores a restore takes at least its CPU / {cores} of wall time"
    )


def _cpu(pair: tuple[float, float]) -> str:
    own, servers = pair
    return f"{own + servers:.0f} ({own:.0f}+{servers:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", default="10,100,300,1000", help="comma list of session lengths")
    parser.add_argument("--repeat", type=int, default=3, help="runs per restore timing (median)")
    parser.add_argument(
        "--runtime-mb",
        type=int,
        default=LOWEST_RUNTIME_MB,
        help="memory of the function whose CPU share the CPU-limited row gets (RuntimeMemoryMb)",
    )
    args = parser.parse_args()
    lengths = [int(x) for x in args.turns.split(",")]
    rows: list[Row] = []
    unavailable = cpu_share_unavailable()
    with moto_process() as endpoint:
        port = urlparse(endpoint).port
        assert port is not None
        loopback = Network("loopback", endpoint, endpoint)
        s3, ddb = loopback.clients()
        sqs = local_client("sqs", endpoint)
        resources = provision(dynamodb=ddb, s3=s3, sqs=sqs, names=ResourceNames(prefix="bench"))
        bucket, table = resources.bucket, resources.table
        with (
            shaping_process(port, first_byte_s=S3_FIRST_BYTE_S, bytes_per_s=BYTES_PER_S) as s3_url,
            shaping_process(port, first_byte_s=DYNAMODB_ROUND_TRIP_S, bytes_per_s=BYTES_PER_S) as ddb_url,
        ):
            shaped = Network("lambda", s3_url, ddb_url)
            networks = [loopback, shaped]
            if unavailable is None:
                share = lambda_cpu_share(args.runtime_mb)
                networks.append(Network(f"lambda {args.runtime_mb}", s3_url, ddb_url, share))
            for n in lengths:
                progress(f"generating {n} turns")
                synth = Synth(seed=n)
                turns = [synth.turn() for _ in range(n)]
                key = {"project_key": "bench-project", "session_id": str(uuid.uuid4())}
                whole = jsonl([e for t in turns for e in t])
                s3.put_object(Bucket=bucket, Key=f"whole/{key['session_id']}.jsonl", Body=whole)
                s3.put_object(
                    Bucket=bucket,
                    Key=f"whole/{key['session_id']}.jsonl.gz",
                    Body=gzip.compress(whole, compresslevel=6, mtime=0),
                )
                base = Row(turns=n, network="loopback")
                base.turn_json = len(whole) / n
                base.turn_compressed = sum(len(zlib.compress(jsonl(t), 6)) for t in turns) / n
                asyncio.run(persist(loopback, bucket, table, key, turns, base))
                for network in networks:
                    row = base if network is loopback else Row(turns=n, network=network.name)
                    asyncio.run(measure_restores(network, bucket, table, key, whole, args.repeat, row))
                    rows.append(row)
                del turns, whole
    progress("")
    print()
    print_tables(rows)
    if unavailable is None:
        print(
            f"lambda {args.runtime_mb}: the lambda network, and this process limited to "
            f"{lambda_cpu_share(args.runtime_mb):.2f} of one CPU (a CFS quota: the share of a "
            f"{args.runtime_mb} MB function; moto is not limited)"
        )
    else:
        print(f"lambda {args.runtime_mb} left out (a CPU-limited run): {unavailable}")


if __name__ == "__main__":
    main()
