"""How long an MP4 plays (a round video message, an M4A audio file): the larger of what its
sample tables play and what its headers claim. The durations in its headers (mvhd, tkhd,
mdhd) are the writer's word, so a file may claim less than it plays; and it is not known
which of the two Amazon Transcribe bills, so neither may pass the limit.

Each track plays the longest of: the sum of its time-to-sample entries (stts: sample_count x
sample_delta) over its media timescale (mdhd); its samples as a decoder plays them, whatever
stts says (an AAC frame, 1024 samples at the rate its AudioSpecificConfig states: a track of
another codec is not measured); its edit list (elst), which may play the media more than
once; its tkhd's duration (in the movie's timescale) and its mdhd's (in its own) are claims
beside them. The file plays as long as its longest track, or its mvhd's duration if that is
longer; a duration of all ones means "unknown", and claims nothing. ISO/IEC 14496-12
boxes: a 32-bit size (or 1 and a 64-bit size after the type, or 0 for "to the end" at the top
level), then a 4-byte type. Only the paths moov/trak/mdia/minf/stbl (to stsd's one entry and
its esds) and moov/trak/edts are walked, so the nesting depth is bounded by them, and mdat is
skipped by its size, never read.
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
# Sample entries (stsd) of tracks that play no sound: video, text, timed metadata.
_SILENT = frozenset(b"avc1 avc3 hvc1 hev1 mp4v vp08 vp09 av01 tx3g text wvtt stpp c608 mett mebx".split())
# MPEG-4 audio object types whose frames play 1024 samples (960 with frameLengthFlag: fewer)
# at the AudioSpecificConfig's first rate: Main, LC, SSR, LTP, and SBR and PS over them
# (their output rate is twice that, their frames twice as long). ISO/IEC 14496-3 1.6.2.1.
_AAC_OBJECTS = frozenset({1, 2, 3, 4, 5, 29})
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
# MPEG-4 audio and MPEG-2 AAC (Main, LC, SSR) object type indications (DecoderConfigDescriptor).
_AAC_INDICATIONS = frozenset({0x40, 0x66, 0x67, 0x68})


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
    movie_header = [box for box in movie if box.kind == b"mvhd"]
    movie_timescale = _timescale(media, movie_header[0]) if len(movie_header) == 1 else None
    seconds: list[float] = []
    for track in (box for box in movie if box.kind == b"trak"):
        plays = _track_seconds(walk, track, movie_timescale)
        if plays is None:
            return None
        seconds.append(plays)
    if not seconds:
        return None
    # Each mvhd's claim in its own timescale: a repeated one may be the one a reader believes.
    claimed = [_claimed_seconds(media, box, _timescale(media, box), 16, 24) for box in movie_header]
    return max(seconds + claimed)


def _track_seconds(walk: _Walk, track: _Box, movie_timescale: int | None) -> float | None:
    header = walk.path(track, b"mdia", b"mdhd")
    samples = walk.path(track, b"mdia", b"minf", b"stbl")
    table = None if samples is None else walk.path(samples, b"stts")
    if header is None or samples is None or table is None:
        return None
    timescale = _timescale(walk.data, header)
    ticks = _stts_ticks(walk, table)
    if not timescale or ticks is None:
        return None
    decoded = _decoded_seconds(walk, samples)
    if decoded is None:
        return None
    media = max(ticks / timescale, decoded)
    edited = _edited_seconds(walk, track, movie_timescale, media)
    if edited is None:
        return None
    # Claims beside what plays: mdhd's in the track's timescale, each tkhd's in the movie's.
    track_headers = [box for box in walk.children(track.start, track.end) or () if box.kind == b"tkhd"]
    claimed = [_claimed_seconds(walk.data, box, movie_timescale, 20, 28) for box in track_headers]
    return max(media, edited, _claimed_seconds(walk.data, header, timescale, 16, 24), *claimed)


def _claimed_seconds(data: bytes, header: _Box, timescale: int | None, at_v0: int, at_v1: int) -> float:
    """The duration a full box (mvhd, tkhd, mdhd) states at ``at_v0`` into its body (4 bytes)
    or ``at_v1`` in its version 1 (8 bytes), over ``timescale``; 0 when it claims nothing
    readable: unknown (all ones), no timescale, an unknown version, a box cut short."""
    version = data[header.start] if header.end > header.start else 2
    width = 8 if version == 1 else 4
    at = header.start + (at_v1 if version == 1 else at_v0)
    if version > 1 or not timescale or at + width > header.end:
        return 0.0
    ticks = int.from_bytes(data[at : at + width], "big")
    return 0.0 if ticks == (1 << 8 * width) - 1 else ticks / timescale


def _decoded_seconds(walk: _Walk, samples: _Box) -> float | None:
    """How long the track's samples play as a decoder plays them (stts times them, but a
    decoder plays every frame it is given): 0 for a track without sound; None for one whose
    codec is not AAC, or whose description is broken."""
    data = walk.data
    description = walk.path(samples, b"stsd")
    if description is None or description.end - description.start < 8:
        return None
    entries = walk.children(description.start + 8, description.end)
    if (
        entries is None
        or len(entries) != 1
        or data[description.start + 4 : description.start + 8] != b"\0\0\0\1"
    ):
        return None
    [entry] = entries
    if entry.kind in _SILENT:
        return 0.0
    sizes = walk.path(samples, b"stsz")
    frame_s = _aac_frame_seconds(walk, entry) if entry.kind == b"mp4a" else None
    if sizes is None or frame_s is None or sizes.end - sizes.start < 12:
        return None
    return int.from_bytes(data[sizes.start + 8 : sizes.start + 12], "big") * frame_s


def _aac_frame_seconds(walk: _Walk, entry: _Box) -> float | None:
    """How long one frame of an mp4a sample entry plays, from its esds's AudioSpecificConfig
    (a decoder's word, not the entry's sample rate); None unless it is AAC at a listed rate."""
    data = walk.data
    # A sound sample entry: 28 bytes before its boxes; QuickTime's versions 1 and 2 add more.
    version = int.from_bytes(data[entry.start + 8 : entry.start + 10], "big")
    if version > 2 or entry.end - entry.start < 28:
        return None
    config = walk.children(entry.start + 28 + (0, 16, 36)[version], entry.end)
    esds = [box for box in config or () if box.kind == b"esds"]
    if len(esds) != 1:
        return None
    stream = _descriptor(data, esds[0].start + 4, esds[0].end, 0x03)  # ES_Descriptor
    if stream is None or stream[1] - stream[0] < 3:
        return None
    flags = data[stream[0] + 2]
    at = stream[0] + 3 + (2 if flags & 0x80 else 0) + (2 if flags & 0x20 else 0)
    if flags & 0x40:  # a URL: its length, then it
        at += 1 + data[at] if at < stream[1] else stream[1]
    decoder = _descriptor(data, at, stream[1], 0x04)  # DecoderConfigDescriptor
    if decoder is None or decoder[1] - decoder[0] < 13 or data[decoder[0]] not in _AAC_INDICATIONS:
        return None
    specific = _descriptor(data, decoder[0] + 13, decoder[1], 0x05)  # the AudioSpecificConfig
    if specific is None or specific[1] - specific[0] < 2:
        return None
    bits = int.from_bytes(data[specific[0] : specific[0] + 2], "big")
    object_type, rate_index = bits >> 11, bits >> 7 & 15
    if object_type not in _AAC_OBJECTS or rate_index >= len(_AAC_RATES):  # 15: a rate of its own
        return None
    return 1024 / _AAC_RATES[rate_index]


def _descriptor(data: bytes, at: int, end: int, tag: int) -> tuple[int, int] | None:
    """Where the body of the MPEG-4 descriptor at ``at`` begins and ends, when it has ``tag``
    (its size: up to 4 bytes of 7 bits, each but the last with its top bit set)."""
    if at >= end or data[at] != tag:
        return None
    size = 0
    for byte_at in range(at + 1, min(at + 5, end)):
        size = size << 7 | data[byte_at] & 0x7F
        if not data[byte_at] & 0x80:
            body = byte_at + 1
            return (body, body + size) if body + size <= end else None
    return None


def _edited_seconds(walk: _Walk, track: _Box, movie_timescale: int | None, media_s: float) -> float | None:
    """How long the track's edit list plays (in the movie's timescale): 0 without one; an
    entry of no duration counted as the whole media (``media_s``), as some players read it."""
    if not any(box.kind == b"edts" for box in walk.children(track.start, track.end) or ()):
        return 0.0
    edits = walk.path(track, b"edts", b"elst")
    data = walk.data
    if edits is None or not movie_timescale or edits.end - edits.start < 8 or data[edits.start] > 1:
        return None
    wide = data[edits.start] == 1
    size, count = (20 if wide else 12), int.from_bytes(data[edits.start + 4 : edits.start + 8], "big")
    walk.entries_left -= count
    if count > (edits.end - edits.start - 8) // size or walk.entries_left < 0:
        return None
    width = 8 if wide else 4
    seconds = 0.0
    for at in range(edits.start + 8, edits.start + 8 + count * size, size):
        ticks = int.from_bytes(data[at : at + width], "big")
        seconds += ticks / movie_timescale if ticks else media_s
    return seconds


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
