"""What `agentbot dev`'s terminal chat prints of what the bot sends: the agent chose that text
(a web page it read may have told it what to write), and a control character printed raw acts
on the terminal instead of showing: an escape sequence moves the cursor, clears the screen or
sets the clipboard (OSC 52), a carriage return writes over the line.

Format characters are words' own and act on nothing: a zero-width non-joiner in Persian or
Hindi, the zero-width joiners of an emoji family, direction marks. They are kept, but in a
name: there a bidi override or isolate would draw its end backwards ("invoice\u202efdp.exe"
reads as "invoiceexe.pdf" in a terminal that lays out bidi text).
"""

from __future__ import annotations

import unicodedata

# Embeddings, overrides and isolates: what reorders the characters after it, not a mark.
_REORDERING = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def shown_at_terminal(text: str, *, one_line: bool = False) -> str:
    """``text`` with each control character (C0, DEL, C1) shown as "?", but its line breaks and
    tabs (``one_line``: those too, and bidi overrides and isolates, for a name shown within a
    line)."""
    kept = "" if one_line else "\n\t"
    hidden = _REORDERING if one_line else frozenset()
    return "".join(
        "?" if (unicodedata.category(char) == "Cc" and char not in kept) or char in hidden else char
        for char in text
    )
