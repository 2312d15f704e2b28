"""Fenced code blocks in the model's Markdown, found as CommonMark finds them, and the end of
an answer cut so that its code still reads as code. One home for the runtime (which publishes
the end of a long answer while it is written) and the consumer (which renders it)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ._visible_text import end_within_utf16, utf16_len

# CommonMark fences: 3+ backticks or tildes; a backtick fence's info string has no backtick
# (```a``` on one line is a code span, not a fence). Any indentation: inside a nested list
# item CommonMark counts it from the item's text, and models indent fences to nest them so
# (an indented code block, which the indentation would otherwise make, is not rendered).
# A closing fence is indented no deeper than its opener (or 3 spaces): a fence indented
# further inside the code (Markdown in a docstring) is code. A line may end in "\r" (an
# answer written with Windows line ends): its fence closes all the same.
_FENCE_OPEN_RE = re.compile(r"^( *)(`{3,}(?=[^`]*$)|~{3,})(.*)$")
_FENCE_CLOSE_RE = re.compile(r"^( *)(`{3,}|~{3,})[ \t\r]*$")


def fenced_blocks(lines: list[str]) -> Iterator[tuple[int, int, re.Match[str]]]:
    """(index of the opening fence, index of the closing fence, the opening's match: indent,
    fence, info string) of each fenced code block; an unclosed block runs to the end (its
    closing index is ``len(lines)``)."""
    start = 0
    while start < len(lines):
        opener = _FENCE_OPEN_RE.match(lines[start])
        if opener is None:
            start += 1
            continue
        end = start + 1
        while end < len(lines) and not _closes(lines[end], opener):
            end += 1
        yield start, end, opener
        start = end + 1


def markdown_tail(markdown: str, limit: int) -> str:
    """The end of ``markdown`` within ``limit`` UTF-16 units, from the start of a line (unless
    its last line alone is longer). When that end begins inside a fenced code block, the
    block's opening fence line is put first (within the limit too): the code still reads as
    code, and its closing fence does not open a block that takes the text after it."""
    if utf16_len(markdown) <= limit:
        return markdown
    lines = markdown.split("\n")
    first = _first_line_within(lines, limit)
    opening = ""
    for start, end, _ in fenced_blocks(lines):
        if start < first < end and utf16_len(lines[start]) < limit // 2:
            # Inside this block's code: its fence line goes first.
            opening = lines[start]
            first = max(first, _first_line_within(lines, limit - utf16_len(opening) - 1))
            if first < end:
                break
            opening = ""  # no room for any of its code
        if first == end and first < len(lines) - 1:
            first += 1  # a closing fence alone would open a block: it goes with its code
    kept = [opening, *lines[first:]] if opening else lines[first:]
    tail = "\n".join(kept)
    if utf16_len(tail) <= limit:
        return tail
    # The last line alone is longer than the limit: its end, after the fence line if any.
    head = f"{opening}\n" if opening else ""
    return head + end_within_utf16(lines[-1], limit - utf16_len(head))


def _first_line_within(lines: list[str], limit: int) -> int:
    """The first of the last lines that fit ``limit`` together (the last one if none fits)."""
    first, used = len(lines) - 1, utf16_len(lines[-1])
    while first > 0 and used + 1 + utf16_len(lines[first - 1]) <= limit:
        first -= 1
        used += 1 + utf16_len(lines[first])
    return first


def _closes(line: str, opener: re.Match[str]) -> bool:
    closing = _FENCE_CLOSE_RE.match(line)
    if closing is None:
        return False
    indent, fence = closing.groups()
    opening = opener.group(2)
    return (
        fence[0] == opening[0] and len(fence) >= len(opening) and len(indent) <= max(3, len(opener.group(1)))
    )
