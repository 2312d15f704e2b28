"""How long an MP4 plays (a round video message, an M4A audio file), from its sample tables:
the durations in its headers (mvhd, tkhd, mdhd) are the writer's word, and Amazon Transcribe
bills what the audio holds.

Each track plays the sum of its time-to-sample entries (stts: sample_count x sample_delta)
over its media timescale (mdhd); the file plays as long as its longest track. ISO/IEC 14496-12
boxes: a 32-bit size (or 1 and a 64-bit size after the type, or 0 for "to the end" at the top
level), then a 4-byte type. Only the path moov/trak/mdia/minf/stbl is walked, so the nesting
depth is bounded by that path, and mdat is skipped by its size, never read.
"""

from __future__ import annotations

from array import array
from operator import mul
from sys import byteorder
from typing import NamedTuple

# A real MP4 has a few dozen boxes on the walked path; a file of millions of tiny boxes is
# hostile, and reading them all would take seconds.
_MAX_BOXES = 10_000
# Time-to-sample entries read in all (~60 ns each): a new entry only where the sample
# duration changes, so a 60 s round video needs a few thousand at most; a 20 MB file of
# entries (2.5M) is hostile and would take ~150 ms.
_MAX_STTS_ENTRIES = 1 << 19


class _Box(NamedTuple):
    kind: bytes
    start: int  # where its body begins
    end: int


def mp4_seconds(media: bytes) -> float | None:
    """How long ``media`` plays (its longest track); None when it is not an ISO base media
    file throughout (no leading ftyp, a box overrunning its parent, a track without a sample
    table or with a zero timescale, a fragmented file whose samples are not in its moov)."""
    walk = _Walk(media)
    top = walk.children(0, len(media), top=True)
    if not top or top[0].kind != b"ftyp" or any(box.kind == b"moof" for box in top):
        return None
    movies = [box for box in top if box.kind == b"moov"]
    if len(movies) != 1:
        return None
    movie = walk.children(movies[0].start, movies[0].end)
    # mvex: a fragmented file, whose samples are listed in moof boxes, not in stts.
    if movie is None or any(box.kind == b"mvex" for box in movie):
        return None
    seconds: list[float] = []
    for track in (box for box in movie if box.kind == b"trak"):
        plays = _track_seconds(walk, track)
        if plays is None:
            return None
        seconds.append(plays)
    return max(seconds, default=None)


def _track_seconds(walk: _Walk, track: _Box) -> float | None:
    header = walk.path(track, b"mdia", b"mdhd")
    table = walk.path(track, b"mdia", b"minf", b"stbl", b"stts")
    if header is None or table is None:
        return None
    timescale = _timescale(walk.data, header)
    ticks = _stts_ticks(walk, table)
    if not timescale or ticks is None:
        return None
    return ticks / timescale


def _timescale(data: bytes, header: _Box) -> int | None:
    # After version and flags: creation and modification times, 4 bytes each in version 0
    # and 8 in version 1, then the timescale.
    if header.end - header.start < 4 or data[header.start] > 1:
        return None
    at = header.start + (20 if data[header.start] else 12)
    if at + 4 > header.end:
        return None
    return int.from_bytes(data[at : at + 4], "big")


def _stts_ticks(walk: _Walk, table: _Box) -> int | None:
    """Sum of sample_count x sample_delta, or None when the box holds fewer entries than it
    claims (the count is only trusted once the bytes are there to back it) or too many."""
    data = walk.data
    if table.end - table.start < 8:
        return None
    count = int.from_bytes(data[table.start + 4 : table.start + 8], "big")
    first = table.start + 8
    walk.entries_left -= count
    if count > (table.end - first) // 8 or walk.entries_left < 0:
        return None
    entries = array("I", data[first : first + 8 * count])  # 'I' is 4 bytes on CPython's platforms
    if byteorder == "little":
        entries.byteswap()
    ticks: int = sum(map(mul, entries[0::2], entries[1::2]))
    return ticks


class _Walk:
    """Reads boxes from one file, counting them against _MAX_BOXES (and the stts entries
    read against _MAX_STTS_ENTRIES)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.left = _MAX_BOXES
        self.entries_left = _MAX_STTS_ENTRIES

    def path(self, box: _Box, *kinds: bytes) -> _Box | None:
        """The box down ``kinds`` from ``box``, each the only one of its kind in its parent
        (None when one is missing, repeated, or its parent is broken)."""
        for kind in kinds:
            found = [child for child in self.children(box.start, box.end) or () if child.kind == kind]
            if len(found) != 1:
                return None
            box = found[0]
        return box

    def children(self, start: int, end: int, *, top: bool = False) -> list[_Box] | None:
        data = self.data
        boxes: list[_Box] = []
        at = start
        while at < end:
            self.left -= 1
            if end - at < 8 or self.left < 0:
                return None
            size = int.from_bytes(data[at : at + 4], "big")
            head = 8
            if size == 1:  # the 64-bit size follows the type
                size = int.from_bytes(data[at + 8 : at + 16], "big") if end - at >= 16 else 0
                head = 16
            elif size == 0 and top:  # the last box, to the end of the file
                size = end - at
            if size < head or size > end - at:
                return None
            boxes.append(_Box(data[at + 4 : at + 8], at + head, at + size))
            at += size
        return boxes
