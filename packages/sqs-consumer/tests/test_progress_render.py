"""What a draft or progress message shows: the end of the answer so far, within Telegram's
4,096 characters as Telegram counts them (UTF-16 units), and the tool line."""

from __future__ import annotations

import pytest
from session_core import ErrorReason, ToolActivity, TurnProgress, utf16_len
from sqs_consumer import html_to_plain
from sqs_consumer._progress_render import MAX_SHOWN_TEXT, progress_html


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


@pytest.mark.parametrize(
    ("reason", "after_ms", "says"),
    [
        ("timeout", 17_400, "⏱ <i>I reached the time limit (17 s), so I stopped here."),
        ("timeout", 852_000, "⏱ <i>I reached the time limit (14 min), so I stopped here."),
        ("max_turns", 5_000, "⏹ <i>I stopped here: this took more steps than I may take"),
        ("max_budget", 5_000, "⏹ <i>I stopped here: going on would cost more than one message"),
        ("crashed", 5_000, "⚠️ <i>Something went wrong on my side, so I stopped here."),
        ("disk_limit", 5_000, "⏹ <i>I stopped here: the files I made for this chat grew past the disk"),
    ],
)
def test_a_turn_stopped_by_a_limit_mid_code_block_says_why_outside_the_code(
    reason: ErrorReason, after_ms: int, says: str
) -> None:
    from sqs_consumer._progress_render import stopped_markdown
    from sqs_consumer._render import render_reply

    [chunk] = render_reply(
        stopped_markdown(
            "Here it is:\n\n```python\ndef f():\n    return 1", reason=reason, duration_ms=after_ms
        )
    )
    code, _, note = chunk.partition("</code></pre>\n\n")
    assert code.endswith("return 1") and "Stopped" not in note, chunk
    assert note.startswith(says), note
    assert note.endswith(
        ("ask for the next part.</i>", "Please try again.</i>", "ask for something smaller.</i>")
    )


@pytest.mark.parametrize(
    ("reason", "says"),
    [
        ("timeout", "⏱ <i>I reached the time limit (14 min) before I could write an answer; "),
        ("crashed", "⚠️ <i>Something went wrong on my side before I could write an answer; "),
    ],
)
def test_a_turn_cut_before_it_wrote_any_text_leads_to_the_files_it_made(
    reason: ErrorReason, says: str
) -> None:
    from sqs_consumer._progress_render import stopped_markdown
    from sqs_consumer._render import render_reply

    [chunk] = render_reply(stopped_markdown("", reason=reason, duration_ms=852_000, sends_files=True))
    assert chunk == f"{says}here is what I had made:</i>", chunk


def test_a_long_answer_shown_from_inside_a_code_block_shows_code_as_code_and_text_after_as_text() -> None:
    code = "\n".join(f"    total += values[{i}] * 2  # <{i}>" for i in range(150))
    text = f"Intro.\n\n```python\ndef f(values):\n{code}\n```\n\nThat **doubles** each value."
    shown = progress_html(TurnProgress(turn_id=1, text=text))
    assert shown.startswith('…<pre><code class="language-python">    total += values[')
    assert shown.endswith("</code></pre>\n\nThat <b>doubles</b> each value.")
    assert utf16_len(html_to_plain(shown)) <= MAX_SHOWN_TEXT


def test_a_table_being_written_that_shows_longer_than_written_stays_within_telegrams_limit() -> None:
    """Lined up, a table shows longer than it is written (one long cell pads every row): a
    draft over 4,096 characters is refused, and one refusal turns drafts off for the turn."""
    rows = "\n".join(["| " + "w" * 70 + " | 0 |", *(f"|{n}|{n}|" for n in range(1, 80))])
    written = f"| Word | N |\n|---|--:|\n{rows}"
    shown = progress_html(TurnProgress(turn_id=1, text=written))
    assert utf16_len(written) < MAX_SHOWN_TEXT  # all of it is shown
    assert utf16_len(html_to_plain(shown)) <= MAX_SHOWN_TEXT
    assert html_to_plain(shown).endswith("|79|79|")  # as written, pipes and all


def test_an_answer_with_windows_line_ends_stopped_after_its_code_block_says_stopped_as_text() -> None:
    """A block closed by a fence line ending in a carriage return is closed: taken for still
    open, it got a closing fence that opened a block, and "Stopped." showed as code."""
    from sqs_consumer._progress_render import stopped_markdown
    from sqs_consumer._render import render_reply

    [chunk] = render_reply(stopped_markdown("Run:\r\n\r\n```bash\r\nls\r\n```\r\n\r\nThen **look**."))
    assert chunk.endswith("</code></pre>\n\nThen <b>look</b>.\n\n⏹ <i>Stopped.</i>"), chunk


def test_a_long_answer_with_windows_line_ends_shows_its_text_after_a_code_block_as_text() -> None:
    text = "```python\r\nx = 1\r\n```\r\n\r\n" + "That **works**.\r\n" * 400
    shown = progress_html(TurnProgress(turn_id=1, text=text))
    assert "<pre>" not in shown and shown.endswith("That <b>works</b>."), shown[:200]
