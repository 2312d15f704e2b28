"""The draft of a long answer, from what the runtime publishes to what the chat shows."""

from __future__ import annotations

from agent_runtime._live_progress import LiveProgress
from agent_runtime._turn_events import TextWritten
from session_core import SessionKey
from sqs_consumer import html_to_plain
from sqs_consumer._progress_render import progress_html


def test_a_long_answer_of_long_paragraphs_shows_that_its_beginning_is_left_out() -> None:
    """The runtime publishes the answer's end from a line's start: with long paragraphs that
    end can be much shorter than the draft's room, and the draft then showed a paragraph from
    the middle of the answer as if the answer began there."""
    paragraphs = [f"Paragraph {n}: " + "word " * 200 for n in range(1, 6)]
    live = LiveProgress(None, SessionKey.parse("default/1/0"), 7)  # type: ignore[arg-type]  # not published
    live.emit(TextWritten("\n\n".join(paragraphs)))

    shown = html_to_plain(progress_html(live.snapshot()))

    assert shown.startswith("…Paragraph "), shown[:40]
    assert "Paragraph 1:" not in shown and shown.endswith(paragraphs[-1].strip())
