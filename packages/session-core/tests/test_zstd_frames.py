"""Reading concatenated zstd frames a whole frame at a time, however the download cuts them."""

from __future__ import annotations

import os
import tracemalloc

import pytest
import zstandard
from session_core._zstd_frames import FrameError, FrameScan, decompress_frames

TEXT = b"".join(b'{"n":%d,"text":"some words that repeat"}\n' % n for n in range(2000))
NOISE = os.urandom(300_000)  # stored as raw blocks: the walk must skip them by their size
SKIPPABLE = (0x184D2A50).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"01234"


def frame(data: bytes, *, content_size: bool = True, checksum: bool = True, threads: int = 0) -> bytes:
    compressor = zstandard.ZstdCompressor(
        level=3, write_checksum=checksum, write_content_size=content_size, threads=threads
    )
    return compressor.compress(data)


def cut(stream: bytes, size: int) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


def test_every_frame_comes_out_whole_wherever_the_pieces_are_cut() -> None:
    frames = [
        SKIPPABLE,
        frame(TEXT),
        frame(b""),
        frame(NOISE),
        frame(b"x" * 100_000),  # RLE blocks
        frame(b"tail\n", content_size=False),
        frame(b"short\n", checksum=False),  # a 1-byte size field, no checksum
        frame(TEXT * 40, threads=2),  # a 4-byte size field, several blocks from several jobs
    ]
    stream = b"".join(frames)
    for size in (1, 5, 4096, 256 * 1024, len(stream)):
        pieces = decompress_frames(cut(stream, size))
        assert b"".join(pieces) == TEXT + NOISE + b"x" * 100_000 + b"tail\n" + b"short\n" + TEXT * 40, size
        # Frames that state their size come out whole (one-shot); the one that does not streams.
        assert all(whole in pieces for whole in (TEXT, NOISE, b"x" * 100_000, b"short\n", TEXT * 40))


def test_a_frame_bigger_than_the_one_shot_limit_streams_as_it_arrives() -> None:
    stream = frame(TEXT) + frame(NOISE) + frame(b"after\n")
    pieces = decompress_frames(cut(stream, 4096), one_shot_max=len(TEXT))
    assert b"".join(pieces) == TEXT + NOISE + b"after\n"
    assert pieces[0] == TEXT and pieces[-1] == b"after\n"  # whole frames around the streamed one
    assert len(pieces) > 3  # the big one came out as its pieces arrived


def test_a_frame_is_found_only_once_all_of_it_is_there_and_its_blocks_are_walked_once() -> None:
    whole = frame(TEXT * 40)
    scan = FrameScan(0)
    ends = [scan.end(whole[:stop]) for stop in range(0, len(whole), 997)]
    assert set(ends) == {None}
    assert scan.end(whole) == len(whole)
    assert FrameScan(0).end(whole) == len(whole)


def test_a_header_that_claims_a_huge_size_is_an_error_not_an_allocation_of_that_size() -> None:
    damaged = bytearray(frame(TEXT * 40))
    assert damaged[4] >> 6 == 2 and not damaged[4] >> 5 & 1  # a window byte, then a 4-byte size
    damaged[6:10] = (2**32 - 1).to_bytes(4, "little")  # "4 GiB"
    tracemalloc.start()
    try:
        with pytest.raises(zstandard.ZstdError):
            decompress_frames([bytes(damaged)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, peak


def test_a_stream_that_ends_inside_a_frame_is_an_error_naming_where_that_frame_starts() -> None:
    first = frame(TEXT)
    with pytest.raises(FrameError, match=f"ends inside the frame at byte {len(first)}"):
        decompress_frames(cut(first + frame(TEXT)[:-2], 1000))
    with pytest.raises(FrameError, match=f"ends inside the frame at byte {len(first)}"):
        decompress_frames([first, frame(TEXT * 3)[:-10]], one_shot_max=len(TEXT))  # streaming


def test_bytes_that_are_no_frame_are_an_error() -> None:
    with pytest.raises(FrameError, match="no zstd frame starts at byte 0"):
        decompress_frames([b"not zstd at all"])


@pytest.mark.parametrize("one_shot_max", [16 * 1024 * 1024, 1])
def test_a_damaged_frame_fails_its_checksum(one_shot_max: int) -> None:
    damaged = bytearray(frame(TEXT))
    damaged[-1] ^= 0xFF
    with pytest.raises(zstandard.ZstdError, match="checksum"):
        decompress_frames([bytes(damaged)], one_shot_max=one_shot_max)


@pytest.mark.parametrize("one_shot_max", [16 * 1024 * 1024, 100])  # one-shot and streaming
def test_frames_out_of_the_order_their_marks_say_are_a_frame_error(one_shot_max: int) -> None:
    first, second = frame(TEXT), frame(b"second\n" * 500)
    marks = {len(first): len(TEXT), len(first) + len(second): len(TEXT) + 3500}
    stream = first + second
    assert (
        b"".join(decompress_frames(cut(stream, 4096), one_shot_max, content_at=marks))
        == TEXT + b"second\n" * 500
    )
    with pytest.raises(FrameError):
        decompress_frames(cut(second + first, 4096), one_shot_max, content_at=marks)
    with pytest.raises(FrameError, match="holds content from"):  # a frame start, other content
        decompress_frames([stream], one_shot_max, content_at={len(first): 10})
    with pytest.raises(FrameError, match="inside frames"):  # a mark that is no frame start
        decompress_frames([stream], one_shot_max, content_at={**marks, 7: 5})
