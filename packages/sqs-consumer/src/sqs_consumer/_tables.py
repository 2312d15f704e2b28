"""Markdown tables as Telegram can show them.

Telegram has no tables, and a table's pipes and dashes in a proportional font read as noise
around words that no longer line up. A GFM table (a header row, then a delimiter row of as
many cells) becomes monospace text: each cell its visible text (its Markdown rendered away),
the columns padded to line up (as the delimiter row aligns them), a rule under the header.
A cell of several lines (a model's ``<br>``) shows them under each other in its column; the
rows are then set apart by a blank line, so a line that carries a cell on is not read as a
row of its own.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from session_core import shown_characters

_DELIMITER_CELL = re.compile(r"\s*(:?)-+(:?)\s*")
_BACKTICKS = re.compile(r"`+")
_COLUMN_GAP = "  "
_EMOJI_PRESENTATION = "\ufe0f"  # variation selector 16: the character before it is drawn as an emoji


@dataclass(frozen=True)
class Table:
    end: int  # the index of the first line after the table
    rows: list[list[str]]  # the header first, each row as many cells as the header
    aligns: list[str]  # per column: "left", "right" or "center"


def table_at(lines: Sequence[str], start: int) -> Table | None:
    """The table whose header row is ``lines[start]``, or None if none starts there."""
    if start + 1 >= len(lines) or "|" not in lines[start]:
        return None
    header, delimiter = _cells(lines[start]), _cells(lines[start + 1])
    marks = [_DELIMITER_CELL.fullmatch(cell) for cell in delimiter]
    if len(header) != len(delimiter) or not all(marks) or "-" not in lines[start + 1]:
        return None
    aligns = [_align(bool(m.group(1)), bool(m.group(2))) for m in marks if m]
    rows, end = [header], start + 2
    while end < len(lines) and "|" in lines[end] and lines[end].strip():
        cells = _cells(lines[end])[: len(header)]
        rows.append(cells + [""] * (len(header) - len(cells)))
        end += 1
    return Table(end=end, rows=rows, aligns=aligns)


def table_as_text(table: Table, visible: Callable[[str], str]) -> str:
    """``table`` as lined-up plain text; ``visible`` gives a cell's text as the chat shows it."""
    rows = [[_cell_lines(visible(cell)) for cell in row] for row in table.rows]
    widths = [
        max(_width(line) for row in rows for line in row[column]) for column in range(len(table.aligns))
    ]
    shown = ["\n".join(_row(line, widths, table.aligns) for line in _row_lines(row)) for row in rows]
    rule = _COLUMN_GAP.join("-" * width for width in widths)
    between_rows = "\n\n" if any(len(cell) > 1 for row in rows for cell in row) else "\n"
    body = between_rows.join(shown[1:])
    return f"{shown[0]}\n{rule}\n{body}" if body else f"{shown[0]}\n{rule}"


def _cell_lines(text: str) -> list[str]:
    lines = [" ".join(line.split()) for line in text.split("\n")]
    while len(lines) > 1 and not lines[-1]:
        lines.pop()
    while len(lines) > 1 and not lines[0]:
        lines.pop(0)
    return lines


def _row_lines(row: list[list[str]]) -> list[list[str]]:
    """A row's cells line by line: a cell with fewer lines than the row is blank below."""
    height = max(len(cell) for cell in row)
    return [[cell[n] if n < len(cell) else "" for cell in row] for n in range(height)]


def _cells(line: str) -> list[str]:
    """A row's cells: split at each pipe neither escaped nor inside a code span (GFM splits
    there too, but a model writing `a|b` in a cell means the code)."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    cells, start, index = [], 0, 0
    while index < len(inner):
        ticks = _BACKTICKS.match(inner, index)
        if ticks:
            closing = inner.find(ticks.group(), ticks.end())
            index = closing + len(ticks.group()) if closing >= 0 else ticks.end()
        elif inner[index] == "\\":
            index += 2
        elif inner[index] == "|":
            cells.append(inner[start:index])
            start = index = index + 1
        else:
            index += 1
    cells.append(inner[start:])
    return [cell.strip().replace("\\|", "|") for cell in cells]


def _align(left_colon: bool, right_colon: bool) -> str:
    if right_colon:
        return "center" if left_colon else "right"
    return "left"


def _row(cells: Sequence[str], widths: Sequence[int], aligns: Sequence[str]) -> str:
    padded = []
    for cell, width, align in zip(cells, widths, aligns, strict=True):
        room = width - _width(cell)
        before = room if align == "right" else room // 2 if align == "center" else 0
        padded.append(" " * before + cell + " " * (room - before))
    return _COLUMN_GAP.join(padded).rstrip()


def _width(text: str) -> int:
    """Columns ``text`` takes in a monospace font: wide East Asian characters two, marks none."""
    return sum(_character_width(character) for character in shown_characters(text))


def _character_width(character: str) -> int:
    # One character as the chat shows it (a grapheme): an emoji is one picture two columns
    # wide however many code points make it ("⚠️" is a sign and a variation selector, "👍🏽"
    # two wide ones, a family several joined), as is a wide character with its marks.
    if _wide(character[0]) or _EMOJI_PRESENTATION in character:
        return 2
    return sum(0 if unicodedata.category(char) in ("Mn", "Me", "Cf") else 1 for char in character)


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")
