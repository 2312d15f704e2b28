"""StoredTranscript: a transcript as JSONL fragments, searched without splitting it into lines."""

from __future__ import annotations

from session_core import StoredTranscript

LINES = [b'{"n":0,"tag":"x"}', b'{"n":1}', b'{"n":2,"tag":"x"}', b'{"n":3,"tag":"x"}', b'{"n":4}']


def fragments(*sizes: int) -> StoredTranscript:
    """The same five lines cut into fragments of the given line counts (empty ones included)."""
    parts, start = [], 0
    for size in sizes:
        parts.append(b"".join(line + b"\n" for line in LINES[start : start + size]))
        start += size
    assert start == len(LINES)
    return StoredTranscript(revision="r", count=len(LINES), jsonl=tuple(parts))


def test_matching_lines_come_newest_first_with_the_number_of_lines_after_them() -> None:
    for stored in (fragments(5), fragments(2, 3), fragments(3, 0, 2), fragments(1, 1, 1, 1, 1, 0)):
        assert list(stored.lines_containing(b'"tag"')) == [(LINES[3], 1), (LINES[2], 2), (LINES[0], 4)]
        assert list(stored.lines_containing(b"nowhere")) == []


def test_last_line_skips_empty_fragments_and_is_none_for_an_empty_transcript() -> None:
    assert fragments(4, 1, 0).last_line() == LINES[4]
    assert fragments(5, 0).last_line() == LINES[4]
    assert StoredTranscript(revision="r", count=0, jsonl=(b"", b"")).last_line() is None


def test_matching_lines_come_newest_first_with_the_bytes_from_their_start_to_the_end() -> None:
    def from_line(index: int) -> int:
        return sum(len(line) + 1 for line in LINES[index:])

    expected = [(LINES[3], from_line(3)), (LINES[2], from_line(2)), (LINES[0], from_line(0))]
    for stored in (fragments(5), fragments(2, 3), fragments(3, 0, 2), fragments(1, 1, 1, 1, 1, 0)):
        assert list(stored.tails_containing(b'"tag"')) == expected
        assert list(stored.tails_containing(b"nowhere")) == []
