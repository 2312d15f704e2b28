"""Benchmark [I]: what one approval round trip costs the runtime, next to a turn that runs the
same command without asking (the baseline, measured in the same run).

The real runtime and Claude Code CLI, moto storage, the scripted model on 127.0.0.1. A round
trip is the asking turn (the call is held back and stored; the invocation returns) and, after
the answer is recorded, the answering turn in a NEW runtime (another container: cold restore
from the store), which makes the allowed call and answers. Nothing runs in between: the
runtime is not invoked, so nothing is billed while the user thinks.

Target (issue [I]): one extra turn per approval, nothing billed while waiting.

    uv run python bench/approvals.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agent_runtime import build_runtime, load_settings
from agentbot_testing import REPO_CLAUDE_CONFIG, claude_config_without_approvals
from local_stack import (
    LOCAL_CREDENTIALS,
    ModelServer,
    ToolCall,
    last_tool_call,
    last_user_text,
    local_client,
    moto_endpoint,
    provision,
    tool_results,
)
from session_core import TURN_VERSION, Approvals, SessionKey, TurnRequest, configure_logging

KEY_PARAMETER = "/agentbot/bench/approvals-key"


def _model(request: dict[str, Any]) -> Any:
    """Runs ``bash: CMD``; makes an allowed call again; reports a tool's result."""
    text = last_user_text(request)
    if tool_results(request):
        return "result: " + " | ".join(tool_results(request))[:200]
    if "Make exactly that call again" in text:
        again = last_tool_call(request)
        return [again] if again is not None else "nothing to make again"
    if text.startswith("bash:"):
        return [ToolCall(name="Bash", input={"command": text[5:].strip(), "description": "bench"})]
    return "ok"


def _runtime(env: dict[str, str], clients: dict[str, Any]) -> Any:
    os.environ["CLAUDE_CONFIG_PATH"] = env["CLAUDE_CONFIG_PATH"]  # read by the config loader
    return build_runtime(load_settings(env), **clients)


def _turn(runtime: Any, key: str, turn_id: int, prompt: str, **fields: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = runtime.run_turn(
        TurnRequest(version=TURN_VERSION, session_key=key, turn_id=turn_id, prompt=prompt, **fields)
    )
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    configure_logging(json_lines=False)
    work = Path(tempfile.mkdtemp(prefix="agentbot-bench-approvals-"))
    plain_config = claude_config_without_approvals(work)
    with moto_endpoint() as aws_url, ModelServer(_model) as model:
        clients = {s: local_client(s, aws_url) for s in ("s3", "dynamodb", "ssm")}
        resources = provision(
            dynamodb=clients["dynamodb"], s3=clients["s3"], sqs=local_client("sqs", aws_url)
        )
        clients["ssm"].put_parameter(Name=KEY_PARAMETER, Value="sk-ant-bench", Type="SecureString")
        base = {
            **resources.environment(),
            **LOCAL_CREDENTIALS,
            "AWS_ENDPOINT_URL": aws_url,
            "AWS_DEFAULT_REGION": "us-east-1",
            "ANTHROPIC_API_KEY_PARAMETER": KEY_PARAMETER,
            "ANTHROPIC_BASE_URL": model.base_url,
            "SESSIONS_ROOT": str(work / "sessions"),
            "DEEPWIKI_MCP_URL": "http://127.0.0.1:9/mcp",
            "MODEL_MAX_RETRIES": "0",
        }
        asking_env = {**base, "CLAUDE_CONFIG_PATH": str(REPO_CLAUDE_CONFIG)}
        plain_env = {**base, "CLAUDE_CONFIG_PATH": str(plain_config)}
        approvals = Approvals(dynamodb=clients["dynamodb"], table=resources.table)
        rows: dict[str, list[float]] = {
            "baseline": [],
            "asking": [],
            "answering": [],
            "calls": [],
            "base_calls": [],
        }
        print(
            f"{args.rounds} rounds; each: a baseline turn, an asking turn, an answering turn", file=sys.stderr
        )
        for round_no in range(args.rounds):
            command = f"bash: touch /tmp/agentbot-bench-{round_no}; echo done"  # not read-only: asks
            calls = len(model.model_calls)
            _, baseline = _turn(_runtime(plain_env, clients), f"default/{9000 + round_no}/0", 1, command)
            rows["baseline"].append(baseline)
            rows["base_calls"].append(len(model.model_calls) - calls)
            key = f"default/{8000 + round_no}/0"
            calls = len(model.model_calls)
            asked, asking = _turn(_runtime(asking_env, clients), key, 1, command, user_id=1)
            assert asked.approval_request is not None, asked
            approvals.decide(
                SessionKey.parse(key), asked.approval_request.approval_id, "once", decided_by="bench"
            )
            answered, answering = _turn(
                _runtime(asking_env, clients), key, 2, "", resume_approval=asked.approval_request.approval_id
            )
            assert "done" in answered.text, answered
            rows["asking"].append(asking)
            rows["answering"].append(answering)
            rows["calls"].append(len(model.model_calls) - calls)
            print(
                f"  round {round_no + 1}/{args.rounds}: baseline {baseline:.2f} s, asking {asking:.2f} s, "
                f"answering {answering:.2f} s",
                file=sys.stderr,
            )
    med = {name: statistics.median(values) for name, values in rows.items()}
    extra = med["asking"] + med["answering"] - med["baseline"]
    print(f"\n| turn (median of {args.rounds}) | runtime wall time | model calls |")
    print("|---|---|---|")
    baseline = f"{med['baseline']:.2f} s | {med['base_calls']:.0f}"
    print(f"| baseline: the command runs unasked (one turn) | {baseline} |")
    print(f"| asking turn (held, stored, returns) | {med['asking']:.2f} s | |")
    print(f"| answering turn (new runtime, cold restore) | {med['answering']:.2f} s | |")
    print(
        f"| round trip (asking + answering) | {med['asking'] + med['answering']:.2f} s | {med['calls']:.0f} |"
    )
    print(
        f"| extra runtime per approval | {extra:.2f} s (one extra turn) | "
        f"{med['calls'] - med['base_calls']:+.0f} |"
    )
    print("| runtime time while the user thinks | 0 s (no invocation) | 0 |")
    print(json.dumps({k: round(v, 3) for k, v in med.items()}), file=sys.stderr)


if __name__ == "__main__":
    main()
