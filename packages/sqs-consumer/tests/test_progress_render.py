"""What a draft or progress message shows: the end of the answer so far, within Telegram's
4,096 characters as Telegram counts them (UTF-16 units), and the tool line."""

from __future__ import annotations

import pytest
from session_core import ToolActivity, TurnProgress
from sqs_consumer._progress_render import MAX_SHOWN_TEXT, progress_html
from sqs_consumer._render import utf16_len


@pytest.mark.parametrize("unit", ["a", "é", "😀", "<"], ids=["ascii", "accented", "emoji", "escaped"])
def test_a_long_answer_shows_its_end_within_telegrams_limit(unit: str) -> None:
    text = "start " + unit * 5000 + " the end"
    shown = progress_html(
        TurnProgress(turn_id=1, text=text, activity=ToolActivity(kind="tool", name="Bash", argument="ls"))
    )
    answer, _, tool_line = shown.rpartition("\n\n")
    visible = answer.replace("&lt;", "<")  # Telegram counts the text after entity parsing
    assert visible.endswith(" the end") and visible.startswith("…")
    assert utf16_len(visible) <= MAX_SHOWN_TEXT
    assert utf16_len(visible) + utf16_len(tool_line) + 2 <= 4096


def test_a_turn_stopped_mid_code_block_says_stopped_outside_the_code() -> None:
    from sqs_consumer._progress_render import stopped_markdown
    from sqs_consumer._render import render_reply

    [chunk] = render_reply(stopped_markdown("Here it is:\n\n```python\ndef f():\n    return 1"))
    assert chunk.endswith("</code></pre>\n\n⏹ <i>Stopped.</i>"), chunk


@pytest.mark.parametrize(("after_ms", "shown"), [(17_400, "17 s"), (852_000, "14 min")])
def test_a_turn_out_of_time_mid_code_block_says_so_outside_the_code(after_ms: int, shown: str) -> None:
    from sqs_consumer._progress_render import stopped_markdown
    from sqs_consumer._render import render_reply

    [chunk] = render_reply(
        stopped_markdown("Here it is:\n\n```python\ndef f():\n    return 1", time_limit_after_ms=after_ms)
    )
    code, _, note = chunk.partition("</code></pre>\n\n")
    assert code.endswith("return 1") and "Stopped" not in note, chunk
    assert note.startswith(f"⏱ <i>I reached the time limit ({shown}), so I stopped here.")
    assert note.endswith("To go on, ask for the next part.</i>")
