"""The same attack through `agentbot dev` in real-Telegram mode, with a (fake) bot token and
model key, run as root as a developer might: the agent runs as ``nobody`` and reaches neither
the token, the key, the embedded AWS nor the functions, nor another chat.

``LANDLOCK=off`` for the agent, so what is shown here does not depend on the kernel: the local
endpoints demand the functions' signature and the secret holders are out of reach.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from local_stack import LocalTelegram, ModelServer

from tests.containment.support import (
    ROOT_ONLY_REASON,
    WRITE_200_MIB,
    agent_user_processes,
    allow_targets,
    attack_command,
    attack_dir,
    attack_report,
    attack_responder,
    bash_responder,
    listening_ports,
    tools_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason=ROOT_ONLY_REASON)]
BOT_TOKEN = "7000001:AAH-fake-real-mode-token-DO-NOT-LEAK"
MODEL_KEY = "sk-ant-fake-real-mode-key-DO-NOT-LEAK-77"
ATTACKER, VICTIM = 5001, 6002


def start_dev(
    telegram: LocalTelegram,
    model: ModelServer,
    state: Path,
    cwd: Path,
    *,
    config: Path,
    allowed: str,
    **settings: str,
) -> subprocess.Popen[str]:
    """`agentbot dev` in real-Telegram mode against the local Telegram and model servers (none
    of the shell's AWS, model or Telegram settings), its agent's tools from ``config``'s
    tools config, Landlock off (the attacks must hold without it), plus ``settings``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "ANTHROPIC_", "CLAUDE_", "TELEGRAM_"))
    }
    env.update(
        TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_API_BASE=telegram.base_url,
        ANTHROPIC_API_KEY=MODEL_KEY,
        ANTHROPIC_BASE_URL=model.base_url,
        ALLOWED_USER_IDS=allowed,
        CLAUDE_CONFIG_PATH=str(tools_config(config)),
        LANDLOCK="off",
        **settings,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "agentbot.cli", "dev", "--state-dir", str(state)],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _private_message(chat: int, text: str) -> dict[str, object]:
    person = {"id": chat, "is_bot": False, "first_name": f"user{chat}"}
    return {
        "message": {
            "message_id": 1,
            "from": person,
            "chat": {"id": chat, "type": "private", "first_name": person["first_name"]},
            "date": int(time.time()),
            "text": text,
        }
    }


def test_agentbot_dev_keeps_secrets_aws_functions_and_other_chats_from_the_agent() -> None:
    attacker = attack_dir([BOT_TOKEN, MODEL_KEY])
    # A --state-dir any user can reach (as one under /tmp or a home directory may be): what the
    # stack keeps there (every chat's stored sessions, the functions' log) is its own.
    state = attacker / "state"
    # The checkout it runs from, with the .env the README has one copy from .env.example (the
    # shell's umask makes it readable by all) and load into the shell: the real token and key.
    checkout = attacker / "checkout"
    checkout.mkdir(mode=0o755)
    dotenv = checkout / ".env"
    dotenv.write_text(f"TELEGRAM_BOT_TOKEN={BOT_TOKEN}\nANTHROPIC_API_KEY={MODEL_KEY}\n")
    dotenv.chmod(0o644)
    (attacker / "private.txt").write_text(f"{state / 'functions.log'}\n{state / 'aws'}\n{dotenv}\n")
    state.mkdir()
    (state / "functions.log").write_text("")  # as an earlier version left it: readable by all
    (state / "functions.log").chmod(0o644)
    try:
        with (
            LocalTelegram(token=BOT_TOKEN, bot_username="real_mode_bot") as telegram,
            ModelServer(attack_responder(attack_command(attacker))) as model,
        ):
            dev = start_dev(telegram, model, state, checkout, config=attacker, allowed=f"{ATTACKER},{VICTIM}")
            answered = []
            try:
                for chat, text, count in (
                    (VICTIM, "hello", 1),
                    (ATTACKER, "attack", 1),
                    (VICTIM, "again", 2),
                ):
                    if text == "attack":  # every server of the stack runs by now
                        allow_targets(attacker, listening_ports({dev.pid}))
                    telegram.push_update(_private_message(chat, text))
                    answered.append(
                        telegram.wait_for(
                            lambda t, c=chat, n=count: len(t.sent_messages(c)) >= n, timeout_s=240
                        )
                    )
                    if not answered[-1]:
                        break
            finally:
                dev.send_signal(signal.SIGINT)
                out, err = dev.communicate(timeout=60)
            assert all(answered), (answered, err[-3000:])
            sent_files = [
                (f.file_name, f.content()) for f in telegram.sent_files(ATTACKER)
            ]  # kept while it runs
        survivors = agent_user_processes(attacker)
        log = (state / "functions.log").read_text()[-8000:]
        saved = sorted(p.name for p in (state / "aws").rglob("*") if p.is_file())
    finally:
        shutil.rmtree(attacker, ignore_errors=True)

    # (the attack's own file, from its outbox, comes as a document: a message without text)
    answer = "".join(m.get("text", "") for m in telegram.sent_messages(ATTACKER))
    assert "ATTACK-REPORT" in answer, (answer[:2000], err[-3000:])
    report = attack_report(answer)
    moto_port = int(re.search(r"embedded moto server at http://127\.0\.0\.1:(\d+)", err).group(1))
    # The agent ran as nobody and found no secret anywhere.
    assert report["uid"] != 0
    assert report["proc_leaks"] == [] and report["mem_leaks"] == [], report
    assert not {n for n in report["env_names"] if n.startswith(("AWS_", "TELEGRAM"))}
    # It reached the embedded AWS's port (no Landlock here) but nothing answered it.
    assert moto_port in report["connectable"]
    assert [
        call for call in report["aws"] if call.startswith(f"{moto_port}:") or "lambda:agentbot" in call
    ] == []
    # The other chat got only its own answers; nothing was posted anywhere else.
    assert {m["chat"]["id"] for m in telegram.sent_messages()} == {ATTACKER, VICTIM}
    victim_saw = [m["text"] for m in telegram.sent_messages(VICTIM)]
    assert victim_saw[-1].endswith("after 1 earlier turns"), (victim_saw, err[-3000:], log)
    assert all("FORGED" not in m.get("text", "") for m in telegram.sent_messages())
    # Of what it planted in its outbox (links to the stack's files, other processes'
    # environments) only its own file was sent.
    assert sent_files == [("proof.txt", b"the agent's own file")], sent_files
    # The state directory's own files were there, and out of the agent's reach.
    assert saved and report["private_reads"] == [], (saved, report["private_reads"])
    assert f"made private for it: {dotenv}" in err  # and the banner says so
    # Nothing of the agent outlives the command; no secret reached the screen.
    assert survivors == []
    assert "agent     runs as the unprivileged user 'nobody'" in err
    assert f"from user {ATTACKER}: queued" in err  # the id ALLOWED_USER_IDS takes
    assert BOT_TOKEN not in out + err and MODEL_KEY not in out + err


def test_agentbot_dev_stops_a_turn_whose_files_pass_the_disk_limit_and_the_chat_goes_on() -> None:
    """Lambda's /tmp is bounded by its ephemeral storage, the developer's disk by nothing: a
    tool must not fill it in one turn. With SESSION_DISK_LIMIT_MB=16 in the shell, the turn that
    writes 200 MiB is stopped soon after 16, the chat reads why, and its next message is
    answered with its history."""
    scratch = tempfile.mkdtemp(prefix="agentbot-dev-disk-")
    state = Path(scratch) / "state"
    try:
        with (
            LocalTelegram(token=BOT_TOKEN, bot_username="real_mode_bot") as telegram,
            ModelServer(bash_responder) as model,
        ):
            dev = start_dev(
                telegram,
                model,
                state,
                Path(scratch),
                config=Path(scratch),
                allowed=str(ATTACKER),
                SESSION_DISK_LIMIT_MB="16",
            )
            written_mib = -1.0
            try:
                for count, text in enumerate(["hello", f"bash: {WRITE_200_MIB}", "hello again"], 1):
                    telegram.push_update(_private_message(ATTACKER, text))
                    if not telegram.wait_for(
                        lambda t, n=count: len(t.sent_messages(ATTACKER)) >= n, timeout_s=240
                    ):
                        break
                    if count == 2:
                        files = (state / "work").glob("*/work/f*")
                        written_mib = sum(f.stat().st_size for f in files) / 2**20
            finally:
                dev.send_signal(signal.SIGINT)
                _, err = dev.communicate(timeout=60)
            replies = [m.get("text", "") for m in telegram.sent_messages(ATTACKER)]
            left = list((state / "work").glob("*/work/f*"))
            log = (state / "functions.log").read_text()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    assert len(replies) == 3, (replies, err[-3000:])
    assert replies[0] == "answer after 0 earlier turns", replies
    assert "grew past the disk space one chat may use" in replies[1] and "WROTE-ALL" not in replies[1], (
        replies
    )
    # The developer's disk took 16 MiB and what the tool wrote before the watch's next look:
    # stopped well before the 200 MiB it set out to write. How soon depends on the CPU the watch
    # gets (64 MiB on a quiet machine; 99 in a CI run building an image beside it).
    assert 8 < written_mib < 150, written_mib
    assert replies[2] == "answer after 1 earlier turns" and left == [], (replies, left)
    assert "turn.over_disk_limit" in log and "SESSION_DISK_LIMIT_MB" in log
