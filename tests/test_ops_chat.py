"""`agentbot chat KEY`: an operator asked "why no answer?" looks up one chat in the registry
the producer, consumer and runtime (stand-in) wrote, never seeing what anyone wrote. The
Telegram path on this machine (moto, a local Bot API server)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from agentbot_testing.telegram_support import update

from agentbot.cli import main

CHAT = 7301
KEY = f"default/{CHAT}/0"


def chat_report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["chat", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_chat_shows_its_answers_with_the_chunks_delivered_and_its_budget_but_no_text(
    stack: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BUDGET_CHAT_DAILY_USD", "1")  # the consumer's cap, and the command's
    consumer = stack.consumer()
    for update_id, words in ((7401, "first question"), (7402, "long:6000")):
        assert stack.post(update(update_id, chat_id=CHAT, user_id=CHAT, text=words)) == 200
        stack.drain(consumer)
    assert len(stack.replies(CHAT)) >= 3  # the long answer went out in two chunks or more

    code, out, _ = chat_report(capsys, KEY)

    assert code == 0, out
    assert out.splitlines()[0] == f"chat {KEY}"
    assert "2 turns since /new; chat total 2 turns, $0.02" in out
    assert "lease:    free (no turn running)" in out
    assert "approval: none" in out
    assert "budget:   chat day $0.02 of $1.00, chat month $0.02 (no cap)" in out
    answers = [line.strip() for line in out.splitlines() if line.strip().startswith("update ")]
    assert [line.split()[1] for line in answers] == ["7402", "7401"]  # newest first
    assert re.search(r"answered  \$0\.01  \d+ ms  [2-9] chunks sent$", answers[0]), answers[0]
    assert answers[1].endswith("1 chunk sent"), answers[1]
    assert "question" not in out and "Answer to" not in out


def test_a_pending_approval_and_the_running_turns_lease_are_shown(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stack.post(update(7403, chat_id=CHAT, user_id=CHAT, text="ask:Bash rm -rf build")) == 200
    stack.drain(stack.consumer())
    registry = stack.registry()
    from session_core import SessionKey

    lease = registry.acquire_lease(SessionKey.parse(KEY), owner="runtime-test", duration_s=300)

    code, out, _ = chat_report(capsys, KEY)

    registry.release_lease(lease)
    assert code == 0, out
    assert re.search(r"approval: pending: Bash asked by user 7301 \(approval \S+\)", out), out
    assert "lease:    held by runtime-test until " in out
    assert "waiting for approval" in out
    assert "rm -rf" not in out
    assert "budget:   no cap set" in out


def test_a_chat_nobody_wrote_in_says_so(stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = chat_report(capsys, "default/7399/0")
    assert code == 0
    assert "session:  none" in out and "answers:  none saved" in out


def test_a_key_that_is_no_session_key_is_refused_with_its_form(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = chat_report(capsys, "7301")
    assert code == 1 and "tenant/chat_id/thread_id" in err
