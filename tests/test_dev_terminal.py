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


def test_a_control_character_the_agent_wrote_shows_as_a_question_mark_not_acting_on_the_terminal() -> None:
    """The agent chose the text (a web page it read may have told it what to write): an escape
    sequence printed raw would set the clipboard (OSC 52), clear the screen or, after a carriage
    return, write over the line; the file's name was already shown so, its caption and the
    answer were not."""
    osc52 = "\x1b]52;c;cm0gLXJmIH4=\x07"
    assert terminal_reply({"text": f"done{osc52}\rok\u009b2J"}) == "bot> done?]52;c;cm0gLXJmIH4=??ok?2J"
    sent = {"_file": {"name": "a.txt", "size": 5, "path": "/s/4-a.txt"}, "caption": "see\x1b[2J\n\tit"}
    assert terminal_reply(sent) == "bot> 📎 a.txt (5 B) saved to /s/4-a.txt\n     see?[2J\n     \tit"


def test_a_file_named_in_persian_or_with_an_emoji_family_shows_as_named() -> None:
    """A zero-width non-joiner is part of Persian and Hindi words, a zero-width joiner part of
    an emoji family: neither acts on a terminal, and each showed as "?"."""
    persian = "\u06af\u0632\u0627\u0631\u0634\u200c\u0647\u0627.pdf"  # "reports", its plural joined by ZWNJ
    for name in (persian, "👨\u200d👩\u200d👧.png"):
        sent = {"_file": {"name": name, "size": 5, "path": "/s/5-x"}}
        assert terminal_reply(sent) == f"bot> 📎 {name} (5 B) saved to /s/5-x"
    assert terminal_reply({"_file": {"name": "a\nb.txt", "size": 5, "path": "/s/6-x"}}) == (
        "bot> 📎 a?b.txt (5 B) saved to /s/6-x"
    )


def test_a_file_name_cannot_reorder_itself_to_show_another_extension() -> None:
    """A right-to-left override (or isolate) in the name the agent chose draws what follows it
    backwards in a terminal that lays out bidi text (GNOME's): "invoice\u202efdp.exe" reads as
    "invoiceexe.pdf". It showed as "?" before names kept their format characters."""
    for control in ("\u202e", "\u202d", "\u2067", "\u2066"):
        sent = {"_file": {"name": f"invoice{control}fdp.exe", "size": 5, "path": "/s/7-x"}}
        assert terminal_reply(sent) == "bot> 📎 invoice?fdp.exe (5 B) saved to /s/7-x"
