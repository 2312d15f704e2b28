"""[I] Approval through the whole stack with the real runtime: producer → moto FIFO → consumer
→ the real runtime (awslambdaric, real CLI, the shipped claude-config that asks before Bash)
→ the local Bot API server. The runtime's processes are killed between the question and the
answer: the press is carried out by a new container, from the store."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agentbot_testing import REPO_CLAUDE_CONFIG
from agentbot_testing.telegram_support import as_read, update, webhook_event
from local_stack import FunctionSpec, ModelServer, ToolCall, last_tool_call, last_user_text, tool_results

pytestmark = pytest.mark.slow
KEY_PARAMETER = "/agentbot/test/approvals/anthropic-key"
CHAT = 501


# Run (and emptied) when the model is told to make an allowed call again, before it answers.
BEFORE_ALLOWED_CALL: list[Callable[[], None]] = []


def responder(request: dict[str, Any]) -> Any:
    """``bash: CMD`` asks to run CMD; told to make an allowed call again, it does; a tool's
    result is reported as ``DONE: <result>``."""
    text = last_user_text(request)
    results = tool_results(request)
    if results:
        return f"DONE: {results[-1]}"
    if "Make exactly that call again" in text:
        while BEFORE_ALLOWED_CALL:
            BEFORE_ALLOWED_CALL.pop(0)()
        again = last_tool_call(request)
        return [again] if again is not None else "nothing to make again"
    if text.startswith("bash:"):
        command = text.splitlines()[0][5:].strip()  # the line listing attached files is not it
        return [
            "Let me run that.",
            ToolCall(name="Bash", input={"command": command, "description": "x"}),
        ]
    return f"you said: {text}"


@pytest.fixture
def live(aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from agentbot_testing.telegram_stack import telegram_stack

    aws.client("ssm").put_parameter(
        Name=KEY_PARAMETER, Value="sk-ant-test-approvals", Type="SecureString", Overwrite=True
    )
    with ModelServer(responder) as model, (tmp_path / "runtime.log").open("a") as log:
        env = {
            "ANTHROPIC_API_KEY_PARAMETER": KEY_PARAMETER,
            "ANTHROPIC_BASE_URL": model.base_url,
            "SESSIONS_ROOT": str(tmp_path / "sessions"),
            "CLAUDE_CONFIG_PATH": str(REPO_CLAUDE_CONFIG),  # as shipped: Bash asks
            "DEEPWIKI_MCP_URL": "http://127.0.0.1:9/mcp",
            "MODEL_MAX_RETRIES": "0",
        }
        spec = FunctionSpec(handler="agent_runtime.handler.handle", env=env, timeout_s=120)
        with telegram_stack(aws, tmp_path, monkeypatch, runtime_spec=spec, runtime_log=log) as stack:
            stack.model = model
            yield stack


def post(stack: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = stack.producer.handle_event(webhook_event(body))
    assert response["statusCode"] == 200, response
    return dict(json.loads(response["body"]))


def asking_message(stack: Any) -> dict[str, Any]:
    def data(message: dict[str, Any]) -> list[str]:
        markup = message.get("reply_markup") or {}
        return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]

    asking = [m for m in stack.replies(CHAT) if any(d.startswith("ap:") for d in data(m))]
    assert asking, [m["text"] for m in stack.replies(CHAT)]
    return copy.deepcopy(asking[-1])


def outputs(stack: Any) -> list[str]:
    """Every tool result the model was shown."""
    return [r for call in stack.model.model_calls for r in tool_results(call.body)]


def ask_to_run(stack: Any, name: str) -> dict[str, Any]:
    """The user asks for ``touch NAME; echo NAME`` (update 1): the message asking to allow it."""
    assert stack.post(update(1, message_id=1, chat_id=CHAT, text=f"bash: touch {name}; echo {name}")) == 200
    stack.drain(stack.consumer())
    return asking_message(stack)


def next_message_is_told_the_call_did_not_run(stack: Any, name: str) -> None:
    """The user's next message runs nothing of the stopped ``touch NAME; echo NAME``, and the
    agent hears with it that the call was stopped before it ran."""
    assert stack.post(update(20_000_003, message_id=5, chat_id=CHAT, text="what now?")) == 200
    stack.drain(stack.consumer())
    assert name not in [out.strip() for out in outputs(stack)]  # it never ran
    told = last_user_text(stack.model.model_calls[-1].body)
    assert "I stopped your Bash call before it ran; it did not run." in told and "what now?" in told, told
    assert "Make exactly that call again" not in told, told


def test_allow_after_the_runtime_was_restarted_runs_the_command_once_and_answers_once(live: Any) -> None:
    marker = uuid.uuid4().hex[:12]
    asking = ask_to_run(live, f"ran-{marker}")
    assert f"touch ran-{marker}; echo ran-{marker}" in asking["text"]
    assert not any(f"ran-{marker}" == out.strip() for out in outputs(live))  # nothing ran

    live.kill_the_runtime()
    answer = post(live, live.telegram.press_button(asking, user_id=CHAT, text="Allow once", username="ada"))
    again = post(live, live.telegram.press_button(asking, user_id=CHAT, text="Allow once", username="ada"))
    live.drain(live.consumer())

    assert answer["text"] == "Allowed once." and again["text"].startswith("Already answered")
    assert [out.strip() for out in outputs(live)].count(f"ran-{marker}") == 1  # ran once
    answers = [m["text"] for m in live.replies(CHAT) if f"DONE: ran-{marker}" in m["text"]]
    assert len(answers) == 1, [m["text"] for m in live.replies(CHAT)]
    edited = next(m for m in live.replies(CHAT) if m["message_id"] == asking["message_id"])
    assert as_read(edited["text"]).startswith("✅ Allowed once by @ada") and not edited.get("reply_markup")


def test_deny_and_a_new_message_keep_the_command_from_running(live: Any) -> None:
    marker = uuid.uuid4().hex[:12]
    assert (
        live.post(update(1, message_id=1, chat_id=CHAT, text=f"bash: touch a-{marker}; echo a-{marker}"))
        == 200
    )
    live.drain(live.consumer())
    denied = post(live, live.telegram.press_button(asking_message(live), user_id=CHAT, text="Deny"))
    live.drain(live.consumer())
    assert (
        live.post(update(2, message_id=2, chat_id=CHAT, text=f"bash: touch b-{marker}; echo b-{marker}"))
        == 200
    )
    live.drain(live.consumer())
    assert live.post(update(3, message_id=3, chat_id=CHAT, text="never mind that")) == 200
    live.drain(live.consumer())

    assert denied["text"] == "Denied."
    ran = [out.strip() for out in outputs(live)]
    assert f"a-{marker}" not in ran and f"b-{marker}" not in ran
    texts = [m["text"] for m in live.replies(CHAT)]
    assert any("I declined your Bash call" in t for t in texts), texts  # the agent was told
    assert any("never mind that" in t for t in texts), texts  # the new message reached it
    assert any(t.startswith("❌ Declined: you sent a new message") for t in texts), texts


def test_a_stop_after_allow_and_before_its_turn_starts_keeps_the_call_from_running(live: Any) -> None:
    """Allowed, then thought better of it: the /stop comes while the allowed call waits in the
    queue for its turn (no turn runs, and no backlog count is kept in this stack)."""
    marker = uuid.uuid4().hex[:12]
    asking = ask_to_run(live, f"s-{marker}")
    calls_before = len(live.model.model_calls)
    allowed = post(live, live.telegram.press_button(asking, user_id=CHAT, text="Allow once", username="ada"))
    # Telegram numbers updates in order: the press's is 10,000,000 and more in this stub.
    stop = post(live, update(20_000_001, message_id=3, chat_id=CHAT, text="/stop"))
    live.drain(live.consumer())

    assert allowed["text"] == "Allowed once." and stop["text"] == "Stopping…"
    assert len(live.model.model_calls) == calls_before  # the allowed turn never started
    edited = next(m for m in live.replies(CHAT) if m["message_id"] == asking["message_id"])
    assert edited["text"].startswith("⏹ Stopped before it ran: Bash") and not edited.get("reply_markup")
    again = post(live, update(20_000_002, message_id=4, chat_id=CHAT, text="/stop"))
    assert again["text"] == "Nothing is running in this chat right now."

    next_message_is_told_the_call_did_not_run(live, f"s-{marker}")


def test_a_stop_while_the_consumer_starts_the_allowed_turn_keeps_the_call_from_running(live: Any) -> None:
    """The /stop comes once the consumer has taken the press's message and marked its turn as
    coming (LiveTurns.expect, before it invokes the runtime, which may take seconds to start):
    the turn is stopped before it starts, and the call must not run with the next message."""
    from session_core import LiveTurns, SessionKey

    marker = uuid.uuid4().hex[:12]
    asking = ask_to_run(live, f"w-{marker}")
    calls_before = len(live.model.model_calls)
    press = live.telegram.press_button(asking, user_id=CHAT, text="Allow once", username="ada")
    assert post(live, press)["text"] == "Allowed once."
    # What the consumer does first with the press's message: its turn is now the coming one.
    key = SessionKey(tenant="default", chat_id=CHAT)
    assert LiveTurns(dynamodb=live.aws.dynamodb, table=live.aws.resources.table).expect(
        key, press["update_id"]
    )
    stop = post(live, update(20_000_001, message_id=3, chat_id=CHAT, text="/stop"))
    live.drain(live.consumer())

    assert stop["text"] == "Stopping…"
    assert len(live.model.model_calls) == calls_before  # the allowed turn never started
    edited = next(m for m in live.replies(CHAT) if m["message_id"] == asking["message_id"])
    assert edited["text"].startswith("⏹ Stopped before it ran: Bash"), edited["text"]

    next_message_is_told_the_call_did_not_run(live, f"w-{marker}")


def test_a_stop_while_the_allowed_turn_asks_the_model_keeps_the_call_from_running(live: Any) -> None:
    """The /stop comes while the press's turn waits for the model's first answer, before the
    allowed call is made again: that turn stops, and the call must not run with the next
    message either (the user said stop after Allow; nothing told them it would run later)."""
    marker = uuid.uuid4().hex[:12]
    asking = ask_to_run(live, f"m-{marker}")
    stops: list[dict[str, Any]] = []

    def stop_now() -> None:
        stops.append(post(live, update(20_000_001, message_id=3, chat_id=CHAT, text="/stop")))
        time.sleep(3)  # the runtime sees the stop (about once a second) before the call is made

    BEFORE_ALLOWED_CALL.append(stop_now)
    allowed = post(live, live.telegram.press_button(asking, user_id=CHAT, text="Allow once", username="ada"))
    live.drain(live.consumer())
    assert allowed["text"] == "Allowed once." and [s["text"] for s in stops] == ["Stopping…"]
    assert f"m-{marker}" not in [out.strip() for out in outputs(live)]  # the stopped turn ran nothing
    edited = next(m for m in live.replies(CHAT) if m["message_id"] == asking["message_id"])
    assert edited["text"].startswith("⏹ Stopped before it ran: Bash") and not edited.get("reply_markup")

    next_message_is_told_the_call_did_not_run(live, f"m-{marker}")


@pytest.mark.parametrize("restarted", [False, True], ids=["same container", "new container"])
def test_allow_runs_the_command_on_the_file_the_user_sent_with_the_question(
    live: Any, restarted: bool
) -> None:
    """The user's file is what the allowed command works on: pressing Allow must not find it
    gone ("No such file"), in the container that asked or in a new one."""
    file_id = live.telegram.add_file(b"apples\npears\n", file_path="documents/file_3.txt")
    document = {
        "file_id": file_id,
        "file_unique_id": "n1",
        "file_name": "notes.txt",
        "mime_type": "text/plain",
    }
    caption = "bash: cp attachments/notes.txt kept.txt && wc -l kept.txt"
    assert (
        live.post(update(1, message_id=1, chat_id=CHAT, text=None, document=document, caption=caption)) == 200
    )
    live.drain(live.consumer())
    asking = asking_message(live)

    if restarted:
        live.kill_the_runtime()
    post(live, live.telegram.press_button(asking, user_id=CHAT, text="Allow once", username="ada"))
    live.drain(live.consumer())

    assert [out.strip() for out in outputs(live)][-1] == "2 kept.txt"
    assert any("DONE: 2 kept.txt" in m["text"] for m in live.replies(CHAT))
