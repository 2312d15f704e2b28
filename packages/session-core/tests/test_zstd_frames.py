"""Reading concatenated zstd frames a whole frame at a time, however the download cuts them."""

from __future__ import annotations

import os

import pytest
import zstandard
from session_core._zstd_frames import FrameError, decompress_frames, frame_end

TEXT = b"".join(b'{"n":%d,"text":"some words that repeat"}\n' % n for n in range(2000))
NOISE = os.urandom(300_000)  # stored as raw blocks: the walk must skip them by their size
SKIPPABLE = (0x184D2A50).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"01234"


def frame(data: bytes, *, write_content_size: bool = True) -> bytes:
    compressor = zstandard.ZstdCompressor(level=3, write_checksum=True, write_content_size=write_content_size)
    return compressor.compress(data)


def cut(stream: bytes, size: int) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


def test_every_frame_comes_out_whole_wherever_the_pieces_are_cut() -> None:
    stream = SKIPPABLE + frame(TEXT) + frame(b"") + frame(NOISE) + frame(b"tail\n", write_content_size=False)
    for size in (1, 5, 4096, 256 * 1024, len(stream)):
        assert decompress_frames(cut(stream, size)) == [TEXT, NOISE, b"tail\n"], size


def test_a_frame_is_found_only_once_all_of_it_is_there() -> None:
    whole = frame(TEXT)
    assert frame_end(whole, 0) == len(whole)
    assert all(frame_end(whole[:stop], 0) is None for stop in range(0, len(whole), 7))


def test_a_stream_that_ends_inside_a_frame_is_an_error() -> None:
    with pytest.raises(FrameError, match="ends inside a frame"):
        decompress_frames([frame(TEXT)[:-2]])


def test_bytes_that_are_no_frame_are_an_error() -> None:
    with pytest.raises(FrameError, match="no zstd frame starts at byte 0"):
        decompress_frames([b"not zstd at all"])


def test_a_damaged_frame_fails_its_checksum() -> None:
    damaged = bytearray(frame(TEXT))
    damaged[-1] ^= 0xFF
    with pytest.raises(zstandard.ZstdError, match="checksum"):
        decompress_frames([bytes(damaged)])
