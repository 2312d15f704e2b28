"""How `agentbot dev`'s terminal chat shows what the bot sends (without starting it)."""

from __future__ import annotations

from agentbot.dev import terminal_reply


def test_a_reply_reads_as_one_block() -> None:
    assert terminal_reply({"text": "two\nlines"}) == "bot> two\n     lines"


def test_a_file_is_one_line_naming_it_its_size_and_where_it_was_saved() -> None:
    sent = {
        "_file": {"name": "chart.png", "mime_type": "image/png", "size": 12_600, "path": "/s/1-chart.png"}
    }
    assert terminal_reply(sent) == "bot> 📎 chart.png (12.3 KB) saved to /s/1-chart.png"
    big = {"_file": {"name": "a.zip", "size": 3 * 1024 * 1024, "path": "/s/2-a.zip"}, "caption": "the data"}
    assert terminal_reply(big) == "bot> 📎 a.zip (3.0 MB) saved to /s/2-a.zip\n     the data"
    hostile = {"_file": {"name": "x\x1b[2J.txt", "size": 5, "path": "/s/3-x_2J.txt"}}
    assert terminal_reply(hostile) == "bot> 📎 x?[2J.txt (5 B) saved to /s/3-x_2J.txt"
