"""[H] The live progress sink: what it publishes (the answer so far, the tool line, masked and
shortened), how often (at most once per interval, the first change at once) and how it learns
of a stop on the same round trip."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from agent_runtime._live_progress import LiveProgress
from agent_runtime._tool_activity import tool_activity
from agent_runtime._turn_events import TextBlockEnded, TextWritten, ToolFinished, ToolStarted
from local_stack import ModelServer, ToolCall, tool_results
from session_core import MAX_PROGRESS_TEXT, SessionKey, ToolActivity, TurnProgress, shown_characters

KEY = SessionKey.parse("default/1/0")


class RecordingLive:
    """A LiveTurns double: records publications and answers a stop when told."""

    def __init__(self) -> None:
        self.published: list[tuple[float, TurnProgress]] = []
        self.reads = 0
        self.stop = False

    def begin(self, key: SessionKey, turn_id: int) -> None: ...

    def publish(self, key: SessionKey, progress: TurnProgress) -> bool:
        self.published.append((time.monotonic(), progress))
        return self.stop

    def stop_requested(self, key: SessionKey, turn_id: int) -> bool:
        self.reads += 1
        return self.stop

    def end(self, key: SessionKey, turn_id: int, progress: TurnProgress | None = None) -> None: ...


def bash(argument: str) -> ToolActivity:
    return ToolActivity(kind="tool", name="Bash", argument=argument)


@pytest.mark.parametrize(
    ("name", "tool_input", "expected"),
    [
        ("Bash", {"command": "ls -la"}, ToolActivity(kind="tool", name="Bash", argument="ls -la")),
        (
            "Read",
            {"file_path": "/s/work/notes.md"},
            ToolActivity(kind="tool", name="Read", argument="work/notes.md"),
        ),
        ("Agent", {"subagent_type": "aws-support"}, ToolActivity(kind="subagent", name="aws-support")),
        ("mcp__deepwiki__ask", {"question": "x"}, ToolActivity(kind="tool", name="deepwiki: ask")),
        (
            "WebFetch",
            {"url": "https://x.io/a?token=s3cret"},
            ToolActivity(kind="tool", name="WebFetch", argument="https://x.io/a"),
        ),
        (
            "Bash",
            {"command": "export ANTHROPIC_API_KEY=sk-ant-api03-abcdefghij"},
            ToolActivity(kind="tool", name="Bash", argument="export ANTHROPIC_API_KEY=…"),
        ),
        (
            "Bash",
            {"command": "curl -H 'Authorization: Bearer abc.def' https://u:pw@h/"},
            ToolActivity(
                kind="tool", name="Bash", argument="curl -H 'Authorization: Bearer …' https://u:…@h/"
            ),
        ),
        (
            "Bash",
            {"command": "echo " + "word " * 40},
            ToolActivity(kind="tool", name="Bash", argument=("echo " + "word " * 15)[:79].rstrip() + "…"),
        ),
        ("Bash", {"command": "curl -H 'X-Api-Key: abc123def' x"}, bash("curl -H 'X-Api-Key: …' x")),
        ("Bash", {"command": "mysql --password hunter2 db"}, bash("mysql --password … db")),
        ("Bash", {"command": "curl -u admin:hunter2 https://h"}, bash("curl -u admin:… https://h")),
        ("Bash", {"command": "sshpass -p hunter2 ssh h"}, bash("sshpass -p … ssh h")),
        (
            "Bash",
            {"command": "curl -H 'Authorization: Basic dXNlcjpwdw==' x"},
            bash("curl -H 'Authorization: Basic …' x"),
        ),
    ],
    ids=[
        "bash",
        "read",
        "subagent",
        "mcp",
        "url_query",
        "api_key",
        "bearer_and_userinfo",
        "long",
        "header_key",
        "password_option",
        "curl_user",
        "sshpass",
        "basic_auth",
    ],
)
def test_the_tool_line_names_the_tool_and_its_main_argument_never_a_secret(
    name, tool_input, expected
) -> None:
    assert tool_activity(name, tool_input) == expected


@pytest.mark.parametrize(
    "said",
    [
        "a" + "🇷🇺" * 40,  # the cut falls between a flag's two letters
        "ab " * 24 + "👨‍👩‍👧‍👦",  # inside a family joined by ZWJ
        "क्ष" * 30,  # inside a Hindi conjunct
    ],
    ids=["flag", "family", "conjunct"],
)
def test_a_long_tool_line_is_cut_between_characters_as_the_chat_shows_them(said: str) -> None:
    """A command or search in the user's script, cut to fit the line, ends with whole
    characters: half a flag showed as a letter in a box, half a family as other people."""
    command = f"echo {said}"
    shown = tool_activity("Bash", {"command": command}).argument
    assert shown.endswith("…")
    kept = shown_characters(shown[:-1])
    assert kept == shown_characters(command)[: len(kept)]


def test_a_tool_call_with_half_an_emoji_in_its_command_neither_breaks_the_turn_nor_its_line(
    make_runtime: Any, model_server: ModelServer, turn_request: Any
) -> None:
    """A model writes a tool's input as JSON, where "\\ud83d" alone is valid: the command holds
    half an emoji (as a model's answer may, see test_turn_failures). Measuring the tool line in
    UTF-16 units refused it, which ended the turn (in every chat: the line is made whether a
    draft shows it or not); it shows U+FFFD there, as the answer does."""
    command = "echo '\ud83d' # a stray half of an emoji"

    def responder(request: dict[str, Any]) -> Any:
        return "DONE" if tool_results(request) else [ToolCall(name="Bash", input={"command": command})]

    model_server.responder = responder
    result = make_runtime().run_turn(turn_request("run it", turn_id=1))

    assert result.ok and result.text == "DONE", result
    assert tool_activity("Bash", {"command": command}).argument == "echo '\ufffd' # a stray half of an emoji"


def test_progress_is_published_at_most_once_per_interval_and_a_stop_ends_the_watch() -> None:
    live = RecordingLive()
    sink = LiveProgress(live, KEY, 7, interval_s=0.2)  # type: ignore[arg-type]

    async def scenario() -> float:
        watcher = asyncio.create_task(sink.watch())
        started = time.monotonic()
        sink.emit(TextWritten("Hello"))
        for n in range(40):  # a burst of deltas over 0.8 s
            sink.emit(TextWritten(f" {n}"))
            await asyncio.sleep(0.02)
        sink.emit(TextBlockEnded())
        sink.emit(ToolStarted(ToolActivity(kind="tool", name="Bash", argument="ls")))
        await asyncio.sleep(0.3)
        sink.emit(ToolFinished())
        live.stop = True
        await asyncio.wait_for(watcher, timeout=2)
        return time.monotonic() - started

    took = asyncio.run(scenario())
    times = [at for at, _ in live.published]
    assert len(times) <= took / 0.2 + 2, times
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(times)), times
    last = live.published[-1][1]
    assert last.text.startswith("Hello 0 1 2") and last.text.endswith(" 39")
    assert any(p.activity == ToolActivity(kind="tool", name="Bash", argument="ls") for _, p in live.published)
    assert sink.stop_requested.is_set()
    assert [p.seq for _, p in live.published] == sorted({p.seq for _, p in live.published})


def test_the_first_text_is_published_at_once_after_a_quiet_start() -> None:
    """The watch looks for a stop as the turn starts (a read, nothing to publish yet); the
    model's first words a moment later go out at once, not a whole interval after that look:
    the user's first visible text came up to a second late."""
    live = RecordingLive()
    sink = LiveProgress(live, KEY, 7, interval_s=1.0)  # type: ignore[arg-type]

    async def scenario() -> float:
        watcher = asyncio.create_task(sink.watch())
        await asyncio.sleep(0.2)  # the CLI starts, the model thinks
        emitted = time.monotonic()
        sink.emit(TextWritten("Hello"))
        while not live.published:
            await asyncio.sleep(0.01)
        shown_after = live.published[0][0] - emitted
        sink.emit(TextWritten(" again"))  # a second change still waits for the interval
        await asyncio.sleep(0.5)
        assert len(live.published) == 1
        live.stop = True
        await asyncio.wait_for(watcher, timeout=3)
        return shown_after

    shown_after = asyncio.run(scenario())
    assert live.reads >= 1  # the look at the start
    assert shown_after < 0.3, shown_after


def test_a_long_answer_published_from_inside_a_code_block_keeps_the_blocks_fence_first() -> None:
    """Only the end of a long answer is published: when that end begins inside a code block,
    its opening fence comes first, so the draft shows the code as code and the closing fence
    does not turn the text after it into code."""
    sink = LiveProgress(RecordingLive(), KEY, 7)  # type: ignore[arg-type]
    code = "\n".join(f"    total += values[{i}]  # 😀" for i in range(300))
    sink.emit(TextWritten(f"Here:\n\n```python\ndef f(values):\n{code}\n```\n\nThat sums them."))

    published = sink.snapshot().text

    assert published.startswith("```python\n    total += values[")
    assert published.endswith("\n```\n\nThat sums them.")
    assert len(published) <= MAX_PROGRESS_TEXT
