"""Webhook → reply latency of the whole local stack with the offline demo model, by stage.

Runs the same stack as `agentbot dev` (moto, the three functions under real awslambdaric,
the local HTTP API and SQS event source, the local Bot API server) and sends 20 sequential
messages in one chat. Stages: producer (webhook answer), queue wait, restore / SDK / persist
(from the runtime's `turn.done` log lines), delivery (the rest, until the reply reached
Telegram). Baseline measured in the same run: a bare Claude Agent SDK turn against the same
model server, with no stack around it (the CLI's own time).

Live turns ([H]): turns that write a line and then run a 3 s tool measure the time from the
model's first token to the first visible text (the first draft with text; target p50 ≤ 1.0 s)
and the Telegram calls per turn; turns stopped with /stop while their tool runs measure the
stop latency (from the /stop webhook call to the stopped answer; target p95 ≤ 2 s).

    uv run python bench/pipeline.py [--turns 20] [--live-turns 10] [--stops 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from local_stack import ModelServer, demo_responder

from agentbot.cli import build_parser
from agentbot.dev import TERMINAL_CHAT_ID, TERMINAL_USER, Progress, start_stack
from agentbot.dev_approvals import TerminalApprovals


class TimedProgress(Progress):
    """Progress that also records when each update was picked up."""

    def __init__(self, out: Any) -> None:
        super().__init__(out)
        self.received: dict[int, float] = {}

    def say(self, text: str) -> None:  # keep the table readable: progress goes to a counter
        pass

    def running(self, messages: list[dict[str, Any]]) -> None:
        now = time.perf_counter()
        for message in messages:
            body = json.loads(message["Body"])
            self.received.setdefault(int(body["message"]["update_id"]), now)
        super().running(messages)


def _turn_logs(log_path: Path) -> dict[int, dict[str, float]]:
    found = {}
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if '"turn.done"' not in line:
            continue
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            found[int(event["turn_id"])] = event  # the consumer's turn id is the update's id
    return found


def bare_sdk_turns(turns: int) -> list[float]:
    """The CLI's own time: one SDK query per turn against the demo model, nothing around it."""
    from claude_agent_sdk import ClaudeAgentOptions, query

    timings = []
    with ModelServer(responder=demo_responder) as server, tempfile.TemporaryDirectory() as work:
        env = {
            "ANTHROPIC_BASE_URL": server.base_url,
            "ANTHROPIC_API_KEY": "offline-demo-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CONFIG_DIR": str(Path(work) / "config"),
            "IS_SANDBOX": "1",
        }

        async def one(prompt: str, resume: str | None) -> str | None:
            options = ClaudeAgentOptions(cwd=work, env=env, resume=resume, max_turns=3)
            session = None
            async for message in query(prompt=prompt, options=options):
                session = getattr(message, "session_id", session)
            return session

        session_id = None
        for n in range(turns):
            started = time.perf_counter()
            session_id = asyncio.run(one(f"message {n}", session_id))
            timings.append(time.perf_counter() - started)
            print(f"  baseline turn {n + 1}/{turns}: {timings[-1]:.2f} s", file=sys.stderr, flush=True)
    return timings


def pipeline_turns(turns: int) -> list[dict[str, float]]:
    progress = TimedProgress(sys.stderr)
    args = build_parser().parse_args(["dev"])  # the defaults a user gets
    rows = []
    with contextlib.ExitStack() as stack:
        dev = start_stack(args, stack, progress)
        replied: dict[int, float] = {}
        arrived = threading.Condition()

        def on_send(message: dict[str, Any]) -> None:
            quoted = (message.get("reply_to_message") or {}).get("message_id")
            with arrived:
                replied.setdefault(int(quoted or 0), time.perf_counter())
                arrived.notify_all()

        dev.terminal.on_send = on_send
        client = httpx.Client(timeout=60)
        for n in range(1, turns + 1):
            update_id = 10_000 + n
            update = {
                "update_id": update_id,
                "message": {
                    "message_id": n,
                    "from": TERMINAL_USER,
                    "chat": {"id": TERMINAL_CHAT_ID, "type": "private"},
                    "date": int(time.time()),
                    "text": f"message {n}",
                },
            }
            posted = time.perf_counter()
            status, _outcome = dev.post_update(client, update)
            acked = time.perf_counter()
            if status != 200:
                raise SystemExit(f"webhook answered {status} for update {update_id}")
            with arrived:
                if not arrived.wait_for(lambda n=n: n in replied, timeout=300):
                    raise SystemExit(f"no reply to message {n} within 300 s; see {dev.log_path}")
            rows.append(
                {
                    "update_id": update_id,
                    "posted": posted,
                    "acked": acked,
                    "received": progress.received.get(update_id, acked),
                    "replied": replied[n],
                }
            )
            print(f"  pipeline turn {n}/{turns}: {replied[n] - posted:.2f} s", file=sys.stderr, flush=True)
        logs = _turn_logs(dev.log_path)
    for row in rows:
        log = logs.get(int(row["update_id"]), {})
        row["restore"] = float(log.get("restore_s", 0.0))
        row["sdk"] = float(log.get("sdk_s", 0.0))
        row["persist"] = float(log.get("persist_s", 0.0))
    return rows


class TimedModel:
    """[H] The demo model, noting when it answered each call (its first token follows at once)."""

    def __init__(self) -> None:
        import local_stack

        self._inner = local_stack.demo_responder
        self.answered: list[float] = []
        local_stack.demo_responder = self  # `agentbot dev` picks the demo model up by this name

    def __call__(self, request: dict[str, Any]) -> Any:
        reply = self._inner(request)
        self.answered.append(time.perf_counter())
        return reply


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def live_turns(turns: int, stops: int) -> dict[str, list[float]]:
    """[H] First token → first visible text, Telegram calls per turn, and stop latency."""
    model = TimedModel()
    progress = TimedProgress(sys.stderr)
    args = build_parser().parse_args(["dev"])
    found: dict[str, list[float]] = {"first text": [], "telegram calls": [], "stop latency": []}
    with contextlib.ExitStack() as stack:
        dev = start_stack(args, stack, progress)
        server = dev.terminal
        events = threading.Condition()
        drafts: list[tuple[float, str]] = []
        sends: list[tuple[float, str]] = []

        def on_draft(draft: dict[str, Any]) -> None:
            with events:
                drafts.append((time.perf_counter(), str(draft.get("visible", ""))))
                events.notify_all()

        approvals = TerminalApprovals()
        asked: list[float] = []

        def on_send(message: dict[str, Any]) -> None:
            with events:
                if approvals.seen(message):
                    asked.append(time.perf_counter())
                sends.append((time.perf_counter(), str(message.get("text", ""))))
                events.notify_all()

        server.on_draft, server.on_send = on_draft, on_send
        client = httpx.Client(timeout=60)
        update_id = 20_000

        def post(text: str) -> None:
            nonlocal update_id
            update_id += 1
            status, _ = dev.post_update(
                client,
                {
                    "update_id": update_id,
                    "message": {
                        "message_id": update_id,
                        "from": TERMINAL_USER,
                        "date": int(time.time()),
                        "chat": {"id": TERMINAL_CHAT_ID, "type": "private"},
                        "text": text,
                    },
                },
            )
            if status != 200:
                raise SystemExit(f"webhook answered {status} for update {update_id}")

        def wait(predicate: Any, what: str) -> None:
            with events:
                if not events.wait_for(predicate, timeout=300):
                    raise SystemExit(f"no {what} within 300 s; see {dev.log_path}")

        short, long = "perl -e 'sleep 3'", "perl -e 'sleep 60'"

        def allow_always(command: str) -> None:
            """The shipped approvals.json asks before these commands (and "Always in this chat"
            allows exactly a command that quotes): the user answers "Always" once, as a user of
            the bot would, and the measured turns then run it unasked."""
            nonlocal update_id
            asked_before, sends_before = len(asked), len(sends)
            post(f"run {command}")
            wait(lambda: len(asked) > asked_before, f"approval question for {command}")
            press = approvals.press("/always", TERMINAL_USER)
            assert press is not None
            update_id += 1
            dev.post_update(client, {"update_id": update_id, **press})
            answer = "ran"
            if command == long:  # not waited out: stopped once its tool runs
                wait(lambda: any("🔧" in t for _, t in drafts[drafts_before:]), "tool line in a draft")
                post("/stop")
                answer = "Stopped"  # the answer, not "Stopping…", which comes before it
            wait(
                lambda: any(answer in t for _, t in sends[sends_before:]), f"answer after allowing {command}"
            )

        drafts_before = len(drafts)
        allow_always(short)
        if stops:
            drafts_before = len(drafts)
            allow_always(long)

        for n in range(1, turns + 1):
            calls_before, drafts_before, sends_before = len(server.calls()), len(drafts), len(sends)
            answered_before = len(model.answered)
            post(f"run {short}")
            wait(lambda sends_before=sends_before: len(sends) > sends_before, "answer")
            first_token = model.answered[answered_before]
            shown = next((at for at, text in drafts[drafts_before:] if "Running" in text), None)
            if shown is not None:
                found["first text"].append(shown - first_token)
            # everything but the runtime's own tool time: drafts, typing, the answer
            found["telegram calls"].append(len(server.calls()) - calls_before)
            print(
                f"  live turn {n}/{turns}: first text after {(shown or 0) - first_token:.2f} s",
                file=sys.stderr,
                flush=True,
            )
        for n in range(1, stops + 1):
            drafts_before, sends_before = len(drafts), len(sends)
            post(f"run {long}")
            wait(
                lambda drafts_before=drafts_before: any("🔧" in t for _, t in drafts[drafts_before:]),
                "tool line in a draft",
            )
            stopped_at = time.perf_counter()
            post("/stop")
            wait(
                lambda sends_before=sends_before: any("Stopped" in t for _, t in sends[sends_before:]),
                "stopped answer",
            )
            at = next(at for at, text in sends[sends_before:] if "Stopped" in text)
            found["stop latency"].append(at - stopped_at)
            print(
                f"  stop {n}/{stops}: answered {at - stopped_at:.2f} s after /stop",
                file=sys.stderr,
                flush=True,
            )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--live-turns", type=int, default=10)
    parser.add_argument("--stops", type=int, default=10)
    options = parser.parse_args()
    turns = options.turns

    print(f"baseline: {turns} bare SDK turns against the demo model", file=sys.stderr, flush=True)
    baseline = bare_sdk_turns(turns)
    print(f"pipeline: {turns} turns webhook → reply through the local stack", file=sys.stderr, flush=True)
    rows = pipeline_turns(turns)

    stages: dict[str, list[float]] = {
        k: []
        for k in (
            "producer",
            "queue wait",
            "restore",
            "SDK",
            "persist",
            "delivery",
            "total",
            "overhead vs SDK stage",
            "overhead vs bare SDK",
        )
    }
    bare = statistics.median(baseline)
    for row in rows:
        producer = row["acked"] - row["posted"]
        queue_wait = max(0.0, row["received"] - row["acked"])
        runtime = row["restore"] + row["sdk"] + row["persist"]
        total = row["replied"] - row["posted"]
        stages["producer"].append(producer)
        stages["queue wait"].append(queue_wait)
        stages["restore"].append(row["restore"])
        stages["SDK"].append(row["sdk"])
        stages["persist"].append(row["persist"])
        stages["delivery"].append(max(0.0, row["replied"] - max(row["received"], row["acked"]) - runtime))
        stages["total"].append(total)
        stages["overhead vs SDK stage"].append(total - row["sdk"])
        stages["overhead vs bare SDK"].append(total - bare)

    print(f"\nwebhook → reply, {turns} sequential turns in one chat, offline demo model (seconds)")
    print(f"{'stage':<24}{'median':>10}{'p90':>10}{'max':>10}")
    for name, values in stages.items():
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        print(f"{name:<24}{statistics.median(values):>10.3f}{p90:>10.3f}{max(values):>10.3f}")
    print(
        f"{'baseline: bare SDK turn':<24}{bare:>10.3f}{sorted(baseline)[int(0.9 * len(baseline))]:>10.3f}"
        f"{max(baseline):>10.3f}"
    )
    print("\ntarget: overhead beyond the CLI's own time <= 0.5 s per turn")

    if options.live_turns or options.stops:
        live = live_turns(options.live_turns, options.stops)
        print("\nlive turns (a line, a 3 s tool, the answer) and stops (seconds; calls)")
        print(f"{'measure':<32}{'p50':>10}{'p95':>10}{'max':>10}")
        for name, values in live.items():
            if values:
                print(
                    f"{name:<32}{statistics.median(values):>10.3f}{_percentile(values, 0.95):>10.3f}"
                    f"{max(values):>10.3f}"
                )
        print("targets: first token → first visible text p50 <= 1.0 s; stop latency p95 <= 2 s")


if __name__ == "__main__":
    main()
