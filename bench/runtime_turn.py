"""Benchmark: wall time and peak memory of one agent-runtime turn.

Runs the real runtime (real Claude Code CLI, moto storage, scripted model server on
127.0.0.1) in fresh processes, as a Lambda container would:

- cold: a new process with an empty SESSIONS_ROOT (import, build, restore from storage, turn);
- warm: the next turn in the same process;
- for a short session (1 earlier turn) and a 100-turn session (``--long-turns``, turns of
  ``--turn-kb`` KB appended one per turn, as a session grows);
- baseline: a bare SDK ``query()`` in the same warm process, without store, lease or registry;
- the long session's cold restore (every load of the turn: transcript, subpaths, resume
  point) next to a whole-file download of it (GET of one JSONL object + write) in the same run.

Peak RSS is the largest sum of RSS over the runtime process and all its children (the CLI,
the MCP server, tools), sampled every 10 ms; shared pages count twice, so it errs high. "of it
runtime" is the runtime process's own peak (its copy of the transcript). With ``--compacted``
the long session's last turn follows a compaction, so the CLI loads only that turn: the
history then costs memory on the runtime's side alone (``agent_runtime/_history_limit.py``).
Target: fits a 1024 MB Lambda with margin.

Containment cost (issue [F], target <= 50 ms per turn): the two process sweeps of a turn
(before and after, both scopes) and starting the CLI through the confining launcher
(clean environment + Landlock) instead of directly, each against its baseline in the same run.

    uv run python bench/runtime_turn.py [--long-turns 100] [--compacted] [--containment-only]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KEY_PARAMETER = "/agentbot/bench/anthropic-api-key"


# ---------------------------------------------------------------------------------------
# memory sampling (child side)
# ---------------------------------------------------------------------------------------
def _tree_rss_bytes(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as f:
                rss[int(entry)] = int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def _own_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakSampler:
    """Peak RSS of this process's tree, and of this process alone (the runtime's Python side)."""

    def __init__(self) -> None:
        self.peak = 0
        self.own_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _tree_rss_bytes(os.getpid()))
            self.own_peak = max(self.own_peak, _own_rss_bytes())

    def __enter__(self) -> PeakSampler:
        self.peak = _tree_rss_bytes(os.getpid())
        self.own_peak = _own_rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------------------
# child: one container
# ---------------------------------------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    with PeakSampler() as import_peak:
        import asyncio

        from agent_runtime import build_runtime
        from claude_agent_sdk import ClaudeAgentOptions, query
        from session_core import TURN_VERSION, TurnRequest
    import_s = time.perf_counter() - started
    runtime = build_runtime()
    build_s = time.perf_counter() - started - import_s
    out: dict[str, Any] = {
        "import_s": import_s,
        "build_s": build_s,
        "import_rss": import_peak.peak,
        "turns": [],
    }
    for index in range(args.turns):
        request = TurnRequest(
            version=TURN_VERSION,
            session_key=args.session_key,
            turn_id=args.first_update + index,
            prompt=f"bench turn {index}",
        )
        with PeakSampler() as peak:
            turn_started = time.perf_counter()
            result = runtime.run_turn(request)
            wall = time.perf_counter() - turn_started
        if not result.ok:
            raise SystemExit(f"turn failed: {result}")
        phases = runtime.last_phases
        out["turns"].append(
            {
                "wall_s": wall,
                "restore_s": phases.restore_s,
                "sdk_s": phases.sdk_s,
                "persist_s": phases.persist_s,
                "peak_rss": peak.peak,
                "own_peak_rss": peak.own_peak,
                "text": result.text,
                "loads": phases.store_loads,
                "appends": phases.store_appends,
            }
        )
    if args.baseline:
        work = Path(tempfile.mkdtemp(prefix="bench-bare-"))
        options = ClaudeAgentOptions(
            cwd=str(work),
            env={
                "ANTHROPIC_BASE_URL": os.environ["ANTHROPIC_BASE_URL"],
                "ANTHROPIC_API_KEY": "sk-bench",
                "CLAUDE_CONFIG_DIR": str(work / "config"),
                "IS_SANDBOX": "1",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            },
            permission_mode="bypassPermissions",
        )

        async def bare() -> None:
            async for _ in query(prompt="bench bare", options=options):
                pass

        with PeakSampler() as peak:
            bare_started = time.perf_counter()
            asyncio.run(bare())
            out["baseline"] = {"wall_s": time.perf_counter() - bare_started, "peak_rss": peak.peak}
        shutil.rmtree(work, ignore_errors=True)
    runtime.model.close()
    print("BENCH-RESULT " + json.dumps(out), flush=True)


# ---------------------------------------------------------------------------------------
# parent: storage, model, scenarios, table
# ---------------------------------------------------------------------------------------
def _responder(request: dict[str, Any]) -> str:
    from local_stack import user_turns

    return f"bench reply; the request carried {user_turns(request)} user turns"


def _run_container(
    env: dict[str, str],
    sessions_root: Path,
    *,
    turns: int,
    first_update: int,
    session_key: str,
    baseline: bool = False,
) -> tuple[dict[str, Any], float]:
    shutil.rmtree(sessions_root, ignore_errors=True)  # a new container: empty /tmp
    command = [
        sys.executable,
        __file__,
        "--child",
        "--turns",
        str(turns),
        "--first-update",
        str(first_update),
        "--session-key",
        session_key,
    ] + (["--baseline"] if baseline else [])
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    wall = time.perf_counter() - started
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH-RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(
            f"bench child failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return json.loads(line.removeprefix("BENCH-RESULT ")), wall


def _prose(rng: random.Random, size: int) -> str:
    # Words drawn at random compress like real text (~3-4x), not like a repeated phrase.
    words = ("agent", "session", "turn", "store", "lambda", "query", "result", "file", "the", "of")
    out: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(words) + str(rng.randrange(1000))
        out.append(word)
        length += len(word) + 1
    return " ".join(out)


def _grow_session(
    store: Any, session: Any, session_id: str, turns: int, turn_bytes: int, *, compacted: bool = False
) -> bytes:
    """Append ``turns`` synthetic user/assistant exchanges of ~``turn_bytes`` to a real
    transcript, one append per turn as if the session had run that many turns (same entry
    shapes, fresh uuids, one parent chain). ``compacted``: the last turn is one the CLI
    compacted the history before (its compact boundary and summary come first, as the CLI
    writes them), so the CLI loads only that turn. Returns the whole transcript as one JSONL file."""
    import asyncio

    from agent_runtime import transcript_project

    key = {"project_key": transcript_project(session), "session_id": session_id}
    entries = asyncio.run(store.load(key))
    chain = [e for e in entries if e.get("uuid")]
    user = next(e for e in chain if e["type"] == "user")
    assistant = next(e for e in reversed(chain) if e["type"] == "assistant")
    parent = chain[-1]["uuid"]
    start = datetime.fromisoformat(chain[-1]["timestamp"].replace("Z", "+00:00"))
    rng = random.Random(turns)
    for index in range(turns):
        filler = _prose(rng, turn_bytes // 2)
        stamp = (start + timedelta(seconds=index + 1)).isoformat().replace("+00:00", "Z")
        u = {
            **user,
            "uuid": str(uuid.uuid4()),
            "parentUuid": parent,
            "timestamp": stamp,
            "message": {"role": "user", "content": f"earlier question {index}: {filler}"},
        }
        a = {
            **assistant,
            "uuid": str(uuid.uuid4()),
            "parentUuid": u["uuid"],
            "timestamp": stamp,
            "message": {
                **assistant["message"],
                "id": f"msg_grow_{index}",
                "content": [{"type": "text", "text": f"earlier answer {index}: {filler}"}],
            },
        }
        new = [u, a]
        if compacted and index == turns - 1:
            boundary, summary = _compaction(user, parent, stamp)
            u["parentUuid"] = summary["uuid"]
            new = [boundary, summary, u, a]
        parent = a["uuid"]
        if index == turns - 1:  # the CLI resumes from the leaf the last "last-prompt" names
            new.append(
                {
                    "type": "last-prompt",
                    "lastPrompt": f"earlier question {index}",
                    "leafUuid": parent,
                    "sessionId": session_id,
                }
            )
        if index % 20 == 0:
            print(f"\r[bench] growing the session: turn {index + 1} of {turns}", end="", file=sys.stderr)
        asyncio.run(store.append(key, new))
    print(file=sys.stderr)
    entries = asyncio.run(store.load(key))
    return b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in entries)


def _compaction(user: dict[str, Any], parent: str, stamp: str) -> list[dict[str, Any]]:
    """A compact boundary and its summary, shaped as the CLI writes them: the boundary starts
    a new chain (no parent), so the CLI reads nothing before it into the conversation."""
    common = {k: v for k, v in user.items() if k not in ("message", "uuid", "parentUuid", "type")}
    boundary = {
        **common,
        "parentUuid": None,
        "logicalParentUuid": parent,
        "type": "system",
        "subtype": "compact_boundary",
        "content": "Conversation compacted",
        "isMeta": False,
        "level": "info",
        "compactMetadata": {"trigger": "auto", "preTokens": 190_000},
        "uuid": str(uuid.uuid4()),
        "timestamp": stamp,
    }
    summary = {
        **common,
        "parentUuid": boundary["uuid"],
        "type": "user",
        "message": {"role": "user", "content": "This session is being continued: a summary."},
        "isCompactSummary": True,
        "isVisibleInTranscriptOnly": True,
        "uuid": str(uuid.uuid4()),
        "timestamp": stamp,
    }
    return [boundary, summary]


def _whole_file_download_s(s3: Any, bucket: str, whole: bytes, runs: int = 3) -> float:
    """The baseline a restore is compared with: GET the session as one JSONL object and write
    the file (a fresh client each time, as a cold container has); median of ``runs``."""
    from local_stack import local_client

    s3.put_object(Bucket=bucket, Key="bench/whole-session.jsonl", Body=whole)
    endpoint = s3.meta.endpoint_url
    samples = []
    with tempfile.TemporaryDirectory(prefix="bench-whole-") as tmp:
        for _ in range(runs):
            fresh = local_client("s3", endpoint)
            began = time.perf_counter()
            body = fresh.get_object(Bucket=bucket, Key="bench/whole-session.jsonl")["Body"].read()
            (Path(tmp) / "session.jsonl").write_bytes(body)
            samples.append(time.perf_counter() - began)
    return sorted(samples)[runs // 2]


def _start_to_answer(run: dict[str, Any]) -> float:
    """Import + build + first turn: a cold container's time to its first answer."""
    return float(run["import_s"] + run["build_s"] + run["turns"][0]["wall_s"])


def _mb(value: float) -> str:
    return f"{value / 2**20:7.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--turns", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--first-update", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--session-key", default="default/1/0", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--long-turns", type=int, default=100, help="length of the long session (default 100)"
    )
    parser.add_argument(
        "--turn-kb", type=int, default=100, help="size of each grown turn in KB (default 100)"
    )
    parser.add_argument(
        "--compacted",
        action="store_true",
        help="the long session's last grown turn follows a compaction (the CLI loads only that turn)",
    )
    parser.add_argument(
        "--containment-only", action="store_true", help="only measure the sweep and launcher cost"
    )
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.containment_only:
        print_containment_costs()
        return

    from local_stack import (
        LOCAL_CREDENTIALS,
        ModelServer,
        ResourceNames,
        local_client,
        moto_endpoint,
        provision,
    )
    from session_core import SessionKey, SessionRegistry, TranscriptStore

    def progress(message: str) -> None:
        print(f"[bench] {message}", file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="agentbot-bench-"))
    sessions_root = work / "sessions"
    with moto_endpoint() as endpoint, ModelServer(_responder) as model:
        clients = {s: local_client(s, endpoint) for s in ("s3", "dynamodb", "sqs", "ssm")}
        resources = provision(
            dynamodb=clients["dynamodb"],
            s3=clients["s3"],
            sqs=clients["sqs"],
            names=ResourceNames(prefix="bench"),
        )
        clients["ssm"].put_parameter(Name=KEY_PARAMETER, Value="sk-ant-bench-fake", Type="SecureString")
        env = {
            **os.environ,
            **LOCAL_CREDENTIALS,
            **resources.environment(),
            "AWS_ENDPOINT_URL": endpoint,
            "ANTHROPIC_API_KEY_PARAMETER": KEY_PARAMETER,
            "ANTHROPIC_BASE_URL": model.base_url,
            "SESSIONS_ROOT": str(sessions_root),
            "CLAUDE_CONFIG_PATH": str(REPO / "claude-config"),
            "DEEPWIKI_MCP_URL": "http://127.0.0.1:9/mcp",
            "LOG_LEVEL": "WARNING",
        }
        rows: list[tuple[str, dict[str, Any], float | None]] = []

        progress(
            "short session: first turn (creates it), then a fresh container runs turns 2 (cold) and 3 (warm)"
        )
        _run_container(env, sessions_root, turns=1, first_update=1, session_key="default/1/0")
        short, _ = _run_container(
            env, sessions_root, turns=2, first_update=2, session_key="default/1/0", baseline=True
        )
        rows.append(("short, cold process", short["turns"][0], _start_to_answer(short)))
        rows.append(("short, warm", short["turns"][1], None))

        progress(f"long session: one real turn, grown to {args.long_turns} turns of {args.turn_kb} KB")
        _run_container(env, sessions_root, turns=1, first_update=1, session_key="default/2/0")
        store = TranscriptStore(
            s3=clients["s3"], dynamodb=clients["dynamodb"], bucket=resources.bucket, table=resources.table
        )
        record = SessionRegistry(dynamodb=clients["dynamodb"], table=resources.table).get_session(
            SessionKey.parse("default/2/0")
        )
        assert record is not None and record.sdk_session_id
        grown, size = args.long_turns - 1, args.turn_kb * 1000
        session = SessionKey.parse("default/2/0")
        whole = _grow_session(store, session, record.sdk_session_id, grown, size, compacted=args.compacted)
        whole_s = _whole_file_download_s(clients["s3"], resources.bucket, whole)
        progress("long session: a fresh container runs a cold and a warm turn")
        long, _ = _run_container(env, sessions_root, turns=2, first_update=2, session_key="default/2/0")
        name = f"{args.long_turns}-turn{', compacted' if args.compacted else ''}"
        rows.append((f"{name}, cold process", long["turns"][0], _start_to_answer(long)))
        rows.append((f"{name}, warm", long["turns"][1], None))

    shutil.rmtree(work, ignore_errors=True)
    baseline = short["baseline"]
    print()
    print(f"agent-runtime turn (real CLI, moto storage, scripted model; {os.cpu_count()} CPUs)")
    print(f"process start → runtime built: import {short['import_s']:.2f} s, build {short['build_s']:.2f} s")
    header = (
        f"{'scenario':<34} {'cold→1st':>8} {'turn':>6} {'restore':>8} {'SDK+CLI':>8} {'persist':>8} "
        f"{'loads':>5} {'appends':>7} {'peak RSS MiB':>12} {'of it runtime':>13}"
    )
    print(header)
    print("-" * len(header))
    for name, turn, process_wall in rows:
        process = f"{process_wall:7.2f}s" if process_wall is not None else f"{'-':>8}"
        print(
            f"{name:<34} {process} {turn['wall_s']:5.2f}s {turn['restore_s']:7.3f}s {turn['sdk_s']:7.2f}s "
            f"{turn['persist_s']:7.3f}s {turn['loads']:>5} {turn['appends']:>7} {_mb(turn['peak_rss']):>12} "
            f"{_mb(turn['own_peak_rss']):>13}"
        )
    print(
        f"{'baseline: bare SDK query':<34} {'-':>8} {baseline['wall_s']:5.2f}s {'-':>8} {'-':>8} {'-':>8} "
        f"{'-':>5} {'-':>7} {_mb(baseline['peak_rss']):>12}"
    )
    print()
    cold_restore = long["turns"][0]["restore_s"]
    print(
        f"{args.long_turns}-turn session ({len(whole) / 1e6:.1f} MB): cold restore "
        f"{cold_restore * 1000:.0f} ms, whole-file download (GET + write, same run) "
        f"{whole_s * 1000:.0f} ms: {cold_restore / whole_s:.2f}x"
    )
    print(f"model saw (long session, cold): {long['turns'][0]['text']}")
    worst = max(t["peak_rss"] for _, t, _ in rows)
    print(f"largest peak {worst / 2**20:.0f} MiB of a 1024 MB Lambda ({worst / (1024 * 10**6) * 100:.0f}%)")
    print_containment_costs()


def _median_ms(samples: list[float]) -> float:
    return sorted(samples)[len(samples) // 2] * 1000


def _time_exec(argv: list[str], env: dict[str, str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, env=env, check=True)
        samples.append(time.perf_counter() - started)
    return _median_ms(samples)


def print_containment_costs(runs: int = 40) -> None:
    """What containment adds to a turn: two sweeps and the launcher's start-up."""
    from agent_runtime._cli_launcher import landlock_abi
    from agent_runtime._environment import install_cli_launcher
    from agent_runtime._process_sweep import sweep_turn_processes
    from session_core import ancestors, become_subreaper, boot_ticks, descendants, process_table

    def look_as_uid_scope() -> None:  # what a uid sweep does when nothing is left to kill
        table = process_table()
        spared, me = ancestors(os.getpid(), table), os.getpid()
        descendants(me, table, since_ticks=since) | {p.pid for p in table.values() if p.pid not in spared}

    become_subreaper()
    since = boot_ticks()
    processes = sum(1 for entry in os.listdir("/proc") if entry.isdigit())
    sweeps = {}
    # A sweep that finds nothing left is one look at /proc; the uid scope is only looked at
    # (never swept here: the bench may run as root, or as you).
    for name, sweep in (
        ("descendants", lambda: sweep_turn_processes(scope="descendants", since_ticks=since)),
        ("uid", look_as_uid_scope),
    ):
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            sweep()
            samples.append(time.perf_counter() - started)
        sweeps[name] = _median_ms(samples)
    work = Path(tempfile.mkdtemp(prefix="agentbot-bench-launch-"))
    launcher = install_cli_launcher(work / "bin")
    target = shutil.which("true") or "/bin/true"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AGENTBOT_CLI_PATH": target,
        "AGENTBOT_CLI_ENV_NAMES": "PATH",
        "AGENTBOT_SANDBOX": json.dumps({"landlock": True, "write": [str(work)], "connect": [443, 80, 53]}),
    }
    direct = _time_exec([target], env, runs)
    confined = _time_exec([launcher], env, runs)
    unconfined = _time_exec([launcher], {**env, "AGENTBOT_SANDBOX": json.dumps({"landlock": False})}, runs)
    shutil.rmtree(work, ignore_errors=True)
    added = 2 * sweeps["uid"] + (confined - direct)
    print()
    print(
        f"containment cost per turn (medians of {runs}; {processes} processes on this machine; "
        f"Landlock ABI {landlock_abi()})"
    )
    print(f"{'what':<52} {'ms':>7}")
    print("-" * 60)
    print(f"{'process sweep, descendants scope (one)':<52} {sweeps['descendants']:7.2f}")
    print(f"{'process sweep, uid scope (one; Lambda)':<52} {sweeps['uid']:7.2f}")
    print(f"{'baseline: start the CLI binary directly':<52} {direct:7.2f}")
    print(f"{'start it through the launcher, no Landlock':<52} {unconfined:7.2f}")
    print(f"{'start it through the launcher with Landlock':<52} {confined:7.2f}")
    print(f"{'added per turn: 2 sweeps (uid) + launcher - direct':<52} {added:7.2f}  (target <= 50)")


if __name__ == "__main__":
    main()
