"""Producer benchmark: webhook handler time in-process against moto, and cold import time.

Run: uv run python bench/producer.py [--requests 500]

Baselines measured in the same run, on the same moto server:
- "floor": the three AWS calls the handler makes (GetItem, SendMessage, UpdateItem) issued
  directly with boto3, i.e. what the handler costs with zero code of its own;
- "import boto3" in a fresh interpreter, which any Lambda handler on boto3 pays;
- the rate-limit check: the same handler with the limit off, and the limit's one UpdateItem
  issued alone (the round trip the check needs). Target: the check adds <= 2 ms at p50
  beyond that round trip, and makes <= 1 DynamoDB call per accepted message;
- the per-chat backlog count (CHAT_QUEUE_LIMIT): the same handler with only it on.
Target: handler p99 <= 10 ms.

Cold import of the shipped artefact: infra/Makefile builds the producer's zip (for this
machine's CPU, with Lambda's Python) and ``import telegram_producer.handler`` runs from it in a
fresh interpreter that cannot write bytecode (Lambda's /var/task is read-only): as shipped,
with compiled .pyc files, and the same files without them (what every cold start paid before).
``--artefact-only`` runs just that.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from local_stack import moto_process

TARGET_P99_MS = 10.0
TARGET_RATE_LIMIT_OVERHEAD_MS = 2.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def row(name: str, samples: list[float]) -> str:
    return (
        f"| {name:<44} | {len(samples):>5} | {statistics.median(samples):>8.2f} | "
        f"{percentile(samples, 99):>8.2f} | {max(samples):>8.2f} |"
    )


def cold_import(statement: str, repeats: int) -> list[float]:
    code = f"import time; t = time.perf_counter(); {statement}; print((time.perf_counter() - t) * 1000)"
    return [
        float(
            subprocess.run(
                [sys.executable, "-X", "frozen_modules=on", "-c", code],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(repeats)
    ]


def build_artefact(target: Path) -> Path:
    """The producer's zip contents as infra/Makefile builds them, for this machine's CPU."""
    root = Path(__file__).resolve().parents[1]
    machine = "aarch64" if os.uname().machine in ("aarch64", "arm64") else "x86_64"
    subprocess.run(
        [
            "make",
            "-s",
            "-f",
            str(root / "infra" / "Makefile"),
            "build-ProducerFunction",
            f"ARTIFACTS_DIR={target}",
            f"LAMBDA_PLATFORM={machine}-manylinux2014",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return target


def lambda_python() -> str:
    found = subprocess.run(
        [
            "make",
            "-s",
            "-f",
            str(Path(__file__).resolve().parents[1] / "infra" / "Makefile"),
            "--eval",
            "print-python: ; @echo $(LAMBDA_PYTHON_BIN)",
            "print-python",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not found:
        raise SystemExit("Lambda's Python (3.12) is needed for the artefact's import time")
    return found


def artefact_imports(repeats: int) -> tuple[list[float], list[float]]:
    """Cold import of the handler from the shipped artefact, with and without its .pyc."""
    import shutil
    import tempfile

    python = lambda_python()
    code = (
        "import time; t = time.perf_counter(); import telegram_producer.handler; "
        "print((time.perf_counter() - t) * 1000)"
    )
    with tempfile.TemporaryDirectory(prefix="bench-artefact-") as tmp:
        shipped = build_artefact(Path(tmp) / "shipped")
        bare = Path(tmp) / "without-pyc"
        shutil.copytree(shipped, bare, ignore=shutil.ignore_patterns("__pycache__"))

        def run(where: Path) -> float:
            env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(where), "PYTHONDONTWRITEBYTECODE": "1"}
            out = subprocess.run(
                [python, "-c", code], cwd=where, env=env, capture_output=True, text=True, check=True
            )
            return float(out.stdout)

        with_pyc, without_pyc = [], []
        for _ in range(repeats):  # interleaved: both see the same machine load
            with_pyc.append(run(shipped))
            without_pyc.append(run(bare))
        return with_pyc, without_pyc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--imports", type=int, default=5)
    parser.add_argument("--artefact-only", action="store_true", help="only the shipped artefact's import")
    args = parser.parse_args()
    shipped, bare = artefact_imports(args.imports)
    print(
        f"\n| {'cold import of telegram_producer.handler':<44} | {'n':>5} | {'p50 ms':>8} | "
        f"{'p99 ms':>8} | {'max ms':>8} |"
    )
    print(f"|{'-' * 46}|{'-' * 7}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    print(row("shipped zip (with .pyc)", shipped))
    print(row("baseline: same zip without .pyc", bare))
    print(f"ratio shipped / without .pyc at p50: {statistics.median(shipped) / statistics.median(bare):.2f}")
    if args.artefact_only:
        return 0

    import boto3
    from agentbot_testing.telegram_support import WEBHOOK_SECRET, update, webhook_event
    from local_stack import LOCAL_CREDENTIALS, ResourceNames, provision

    os.environ.update(LOCAL_CREDENTIALS)
    os.environ["LOG_LEVEL"] = "ERROR"
    with moto_process() as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        clients = {s: boto3.client(s) for s in ("s3", "dynamodb", "sqs", "ssm")}
        resources = provision(
            dynamodb=clients["dynamodb"],
            s3=clients["s3"],
            sqs=clients["sqs"],
            names=ResourceNames(prefix=f"bench{uuid.uuid4().hex[:6]}"),
        )
        os.environ.update(resources.environment())
        clients["ssm"].put_parameter(Name="/bench/webhook-secret", Value=WEBHOOK_SECRET, Type="SecureString")
        os.environ["WEBHOOK_SECRET_PARAMETER"] = "/bench/webhook-secret"
        # The check runs on every message; the limit is high enough that none is dropped.
        os.environ["RATE_LIMIT_USER_PER_MINUTE"] = "100000"
        os.environ["CHAT_QUEUE_LIMIT"] = "0"  # measured on its own below

        from telegram_producer import handler

        started = time.perf_counter()
        producer = handler.build_producer()
        build_ms = (time.perf_counter() - started) * 1000
        os.environ["RATE_LIMIT_USER_PER_MINUTE"] = "0"
        unlimited = handler.build_producer()
        os.environ["CHAT_QUEUE_LIMIT"] = "100000"  # nothing consumes here: a limit never reached
        backlogged = handler.build_producer()

        def private(update_id: int, i: int) -> dict:
            return webhook_event(
                update(update_id, chat_id=500 + i % 50, user_id=500 + i % 50, text=f"message {i}")
            )

        events = [private(10_000 + i, i) for i in range(args.requests)]
        unlimited_events = [private(200_000 + i, i) for i in range(args.requests)]
        backlog_events = [private(400_000 + i, i) for i in range(args.requests)]
        db, sqs, table = clients["dynamodb"], clients["sqs"], resources.table
        floor_queue = sqs.create_queue(
            QueueName=f"floor{uuid.uuid4().hex[:6]}.fifo", Attributes={"FifoQueue": "true"}
        )["QueueUrl"]

        def purge() -> None:
            # moto's FIFO send scans the queue: keep both queues short so neither side drifts
            for url in (resources.queue_url, floor_queue):
                while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
                    sqs.delete_message_batch(
                        QueueUrl=url,
                        Entries=[
                            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(got)
                        ],
                    )

        def floor_call(i: int) -> float:
            key = {"pk": {"S": f"update|bench|{i}"}, "sk": {"S": "seen"}}
            t = time.perf_counter()
            db.get_item(TableName=table, Key=key, ConsistentRead=True)
            sqs.send_message(
                QueueUrl=floor_queue,
                MessageBody=json.dumps({"i": i}),
                MessageGroupId=f"g{i % 50}",
                MessageDeduplicationId=f"floor-{i}",
            )
            db.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET expires_at = :t",
                ExpressionAttributeValues={":t": {"N": "1"}},
            )
            return (time.perf_counter() - t) * 1000

        def rate_call(i: int) -> float:
            # What RateLimiter sends for a bucket with room (its one conditional UpdateItem), alone.
            now_ms = round(time.time() * 1000)
            t = time.perf_counter()
            key = {"pk": {"S": f"rate|bench|user|{i % 50}"}, "sk": {"S": "bucket"}}
            db.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET tat = :next, expires_at = :ttl",
                ConditionExpression="attribute_not_exists(tat) OR tat <= :now",
                ExpressionAttributeValues={
                    ":next": {"N": str(now_ms + 1)},
                    ":now": {"N": str(now_ms)},
                    ":ttl": {"N": "1"},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return (time.perf_counter() - t) * 1000

        for i, event in enumerate(events[:20]):  # warm connections
            producer.handle_event(event)
            unlimited.handle_event(unlimited_events[i])
            backlogged.handle_event(backlog_events[i])
            floor_call(-i - 1)
            rate_call(i)
        accepted: list[float] = []
        accepted_unlimited: list[float] = []
        accepted_backlog: list[float] = []
        floor: list[float] = []
        rate_trip: list[float] = []
        for i, event in enumerate(events[20:]):  # interleaved, so all see the same moto
            if i % 25 == 0:
                purge()
            t = time.perf_counter()
            response = producer.handle_event(event)
            accepted.append((time.perf_counter() - t) * 1000)
            assert json.loads(response["body"])["outcome"] == "enqueued", response
            t = time.perf_counter()
            response = unlimited.handle_event(unlimited_events[20 + i])
            accepted_unlimited.append((time.perf_counter() - t) * 1000)
            assert json.loads(response["body"])["outcome"] == "enqueued", response
            t = time.perf_counter()
            response = backlogged.handle_event(backlog_events[20 + i])
            accepted_backlog.append((time.perf_counter() - t) * 1000)
            assert json.loads(response["body"])["outcome"] == "enqueued", response
            floor.append(floor_call(i))
            rate_trip.append(rate_call(i))
        limiter = producer._rate_limiter
        calls_per_message = limiter.calls / len(events) if limiter is not None else 0.0
        duplicate: list[float] = []
        for event in events[20:220]:
            t = time.perf_counter()
            producer.handle_event(event)
            duplicate.append((time.perf_counter() - t) * 1000)
        rejected: list[float] = []
        bad = webhook_event(update(1), secret="wrong")
        for _ in range(200):
            t = time.perf_counter()
            producer.handle_event(bad)
            rejected.append((time.perf_counter() - t) * 1000)

    imports_handler = cold_import("import telegram_producer.handler", args.imports)
    imports_boto3 = cold_import("import boto3", args.imports)

    print(f"\nProducer handler in process, moto in its own process ({args.requests - 20} requests)\n")
    print(f"| {'case':<44} | {'n':>5} | {'p50 ms':>8} | {'p99 ms':>8} | {'max ms':>8} |")
    print(f"|{'-' * 46}|{'-' * 7}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    print(row("baseline: the 3 AWS calls alone (floor)", floor))
    print(row("handler: update accepted and enqueued", accepted))
    print(row("baseline: same handler, rate limit off", accepted_unlimited))
    print(row("baseline: the rate limit's UpdateItem alone", rate_trip))
    print(row("handler: only the chat backlog count on", accepted_backlog))
    print(row("handler: duplicate update (1 GetItem)", duplicate))
    print(row("handler: wrong secret (no I/O)", rejected))
    print(row("cold import: boto3 (baseline)", imports_boto3))
    print(row("cold import: telegram_producer.handler", imports_handler))
    overhead = statistics.median(accepted) - statistics.median(floor)
    p99 = percentile(accepted, 99)
    added = statistics.median(accepted) - statistics.median(accepted_unlimited)
    beyond = added - statistics.median(rate_trip)
    print(
        f"\nrate-limit check: adds {added:.2f} ms at p50; beyond its UpdateItem round trip "
        f"({statistics.median(rate_trip):.2f} ms): {beyond:.2f} ms "
        f"(target <= {TARGET_RATE_LIMIT_OVERHEAD_MS:.0f} ms: "
        f"{'met' if beyond <= TARGET_RATE_LIMIT_OVERHEAD_MS else 'NOT met'})"
    )
    backlog_added = statistics.median(accepted_backlog) - statistics.median(accepted_unlimited)
    print(f"chat backlog count (CHAT_QUEUE_LIMIT): adds {backlog_added:.2f} ms at p50 (one UpdateItem)")
    print(f"rate-limit DynamoDB calls per accepted message: {calls_per_message:.2f} (target <= 1)")
    print(f"first-call build (config + SSM secret + clients): {build_ms:.1f} ms")
    print(f"handler overhead over the floor at p50: {overhead:.2f} ms")
    print(
        f"target p99 <= {TARGET_P99_MS:.0f} ms: {'met' if p99 <= TARGET_P99_MS else 'NOT met'} "
        f"(p99 {p99:.2f} ms, of which the floor's p99 is {percentile(floor, 99):.2f} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
