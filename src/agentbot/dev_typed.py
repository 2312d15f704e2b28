"""Lines typed at `agentbot dev`'s terminal chat that the terminal mangled before we read them.

The terminal hands over whole lines (canonical mode), so it edits them, not us: an arrow key
pressed out of habit arrives as an escape sequence ("\\x1b[A"), and a line longer than its
buffer (Linux: 4095 bytes) arrives cut, its end dropped without a word. Sending either would
decline a waiting call and spend a turn on what the user did not mean, so neither is sent.
"""

from __future__ import annotations

# Linux's n_tty keeps at most 4095 bytes of a line (one more for its newline).
TERMINAL_LINE_BYTES = 4095

ESCAPE_TYPED = "  (arrow keys do not work here: this line was not sent; type it again)"
LINE_CUT = (
    f"  (this line was cut at {TERMINAL_LINE_BYTES} bytes, the most a terminal line holds, and was "
    "not sent; send long text as a file: /file <path>)"
)


def mangled_line(line: str) -> str | None:
    """Why a line typed at a terminal is not sent, as a line to show; None to send it."""
    if "\x1b" in line:
        return ESCAPE_TYPED
    if len(line.encode("utf-8", errors="replace")) >= TERMINAL_LINE_BYTES:
        return LINE_CUT
    return None
