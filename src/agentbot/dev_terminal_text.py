"""What `agentbot dev`'s terminal chat prints of what the bot sends: the agent chose that text
(a web page it read may have told it what to write), and a control character printed raw acts
on the terminal instead of showing: an escape sequence moves the cursor, clears the screen or
sets the clipboard (OSC 52), a carriage return writes over the line.

Format characters are words' own and act on nothing: a zero-width non-joiner in Persian or
Hindi, the zero-width joiners of an emoji family, direction marks. They are kept.
"""

from __future__ import annotations

import unicodedata


def shown_at_terminal(text: str, *, one_line: bool = False) -> str:
    """``text`` with each control character (C0, DEL, C1) shown as "?", but its line breaks and
    tabs (``one_line``: those too, for a name shown within a line)."""
    kept = "" if one_line else "\n\t"
    return "".join("?" if unicodedata.category(char) == "Cc" and char not in kept else char for char in text)
