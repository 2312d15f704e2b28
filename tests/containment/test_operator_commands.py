"""The operator's own commands, run as root while the agent's user has a process (a tool of a
running turn): what they start as that user must not carry the operator's secrets. `agentbot
doctor` and dev's start look claude-config's command-server programs up, and check the config is
readable, by running this interpreter as the agent's user; a child given the operator's
environment is dumpable, so that user's other processes read its /proc/<pid>/environ."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.containment.support import ROOT_ONLY_REASON

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason=ROOT_ONLY_REASON)]
REPO = Path(__file__).resolve().parents[2]

# As the agent's user: read every process's environment and command line it can until the file
# ``stop`` exists, then print "<pid> <part>" for each that held the needle.
_WATCH = r"""
import os, sys
needle, stop = sys.argv[1].encode(), sys.argv[2]
seen = set()
print("watching", flush=True)
while not os.path.exists(stop):
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        for part in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as f:
                    if needle in f.read():
                        seen.add(f"{pid} {part}")
            except OSError:
                pass
print("\n".join(sorted(seen)))
"""


def test_a_local_doctor_runs_nothing_as_the_agent_with_the_operators_secrets() -> None:
    secret = f"not-a-real-secret-{uuid.uuid4().hex}"
    stop = Path(f"/tmp/agentbot-watch-stop-{uuid.uuid4().hex}")
    nobody = pwd.getpwnam("nobody")
    watcher = subprocess.Popen(
        [sys.executable, "-I", "-c", _WATCH, secret, str(stop)],
        user=nobody.pw_uid,
        group=nobody.pw_gid,
        extra_groups=[],
        env={},
        cwd="/",
        stdout=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None and watcher.stdout.readline().strip() == "watching"
    shell = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "ANTHROPIC_", "CLAUDE_", "TELEGRAM_"))
    }
    shell |= {
        "TELEGRAM_BOT_TOKEN": f"7000001:{secret}",
        "ANTHROPIC_API_KEY": secret,
        "AWS_ACCESS_KEY_ID": "AKIDNOTREAL000000001",
        "AWS_SECRET_ACCESS_KEY": secret,
    }
    try:
        for _ in range(3):
            done = subprocess.run(
                [sys.executable, "-m", "agentbot.cli", "doctor"],
                env=shell,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            # it ran its checks, the claude-config one (which looks programs up as the agent) too
            assert "claude-config" in done.stdout + done.stderr, (done.stdout + done.stderr)[-2000:]
    finally:
        stop.touch()
        seen = watcher.communicate(timeout=60)[0].strip()
    stop.unlink()
    assert seen == "", seen
