"""How long a recording plays, as the consumer measures it before Amazon Transcribe bills it:
the larger of what the samples and frames the file holds play and what its headers claim
(which of the two Transcribe bills is not known), and None for anything it cannot read as
such (hostile files included)."""

from __future__ import annotations

import random
from math import ceil
from typing import Any

import pytest
from agentbot_testing.recordings import m4a_audio, mp3_audio, said_in, video_note
from agentbot_testing.telegram_support import voice_note
from sqs_consumer._audio_length import audio_heard
from sqs_consumer._mp3_length import mp3_seconds
from sqs_consumer._mp4_length import mp4_seconds
from sqs_consumer._opus_length import opus_seconds

MP3_FRAME_S = 1152 / 44100  # mp3_audio's frames: MPEG-1 Layer III, 44.1 kHz
AAC_FRAME_S = 1024 / 48000  # video_note's and m4a_audio's: a last one cut short plays whole
OPUS_PAGE_S = 255 * 0.06  # voice_note's pages: 255 packets of 60 ms
NO_STOP = 1e9
_Entries = list[tuple[int, int]]  # time-to-sample: (sample count, sample duration)


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return _u32(8 + len(body)) + kind + body


def _top_boxes(media: bytes) -> dict[bytes, bytes]:
    """A built MP4's top-level boxes by type (each there once, 32-bit sizes)."""
    boxes, at = {}, 0
    while at < len(media):
        size = int.from_bytes(media[at : at + 4], "big")
        boxes[media[at + 4 : at + 8]] = media[at : at + size]
        at += size
    return boxes


def _movie(*tracks: bytes, moov_extra: bytes = b"") -> bytes:
    return _box(b"ftyp", b"isom", bytes(4), b"isom") + _box(b"moov", *tracks, moov_extra)


def _track(
    timescale: int,
    entries: list[tuple[int, int]],
    *,
    mdhd_version: int = 0,
    stts: bytes = b"",
    claims: int = 0,
    tkhd: bytes = b"",
) -> bytes:
    """A video track; its mdhd claims ``claims`` ticks (0 by default: nothing)."""
    times = bytes(16 if mdhd_version else 8)
    duration = claims.to_bytes(8 if mdhd_version else 4, "big")
    mdhd = _box(b"mdhd", bytes([mdhd_version, 0, 0, 0]), times, _u32(timescale), duration, bytes(4))
    table = stts or _box(
        b"stts", bytes(4), _u32(len(entries)), *(_u32(count) + _u32(delta) for count, delta in entries)
    )
    return _box(b"trak", tkhd, _box(b"mdia", mdhd, _box(b"minf", _box(b"stbl", _VIDEO_ENTRY, table))))


def _mvhd(version: int, timescale: int, duration: int) -> bytes:
    times = bytes(16 if version else 8)
    size = 8 if version else 4
    return _box(
        b"mvhd", bytes([version, 0, 0, 0]), times, _u32(timescale), duration.to_bytes(size, "big"), bytes(80)
    )


def _tkhd(version: int, duration: int) -> bytes:
    times = bytes(16 if version else 8)
    size = 8 if version else 4
    return _box(
        b"tkhd",
        bytes([version, 0, 0, 3]),
        times,
        _u32(1),
        bytes(4),
        duration.to_bytes(size, "big"),
        bytes(60),
    )


# A video track's sample description: its samples play no sound, so only their times count.
_VIDEO_ENTRY = _box(b"stsd", bytes(4), _u32(1), _box(b"avc1", bytes(78)))


def _mpeg_frames(header: bytes, length: int, count: int) -> bytes:
    return (header + bytes(length - 4)) * count


# --- MP4: round video messages, M4A audio files ---------------------------------------------


def test_a_round_video_measures_the_longer_of_what_it_plays_and_what_its_headers_claim() -> None:
    assert mp4_seconds(video_note("hi", seconds=700, claims_s=1)) == pytest.approx(700, abs=AAC_FRAME_S)
    # Once measured as what it plays (4.5 s); but Transcribe may bill the 60 s its headers
    # claim, so the claim is what is checked against the limit.
    assert mp4_seconds(video_note("hi", seconds=4.5, claims_s=60)) == pytest.approx(60)


def test_an_m4a_file_plays_its_audio_track() -> None:
    assert mp4_seconds(m4a_audio("hi", seconds=3.3)) == pytest.approx(3.3, abs=AAC_FRAME_S)


def test_the_longest_track_is_how_long_the_file_plays() -> None:
    one_second = _track(1000, [(10, 100)])
    three_seconds = _track(48000, [(140, 1024), (1, 512)], mdhd_version=1)
    assert mp4_seconds(_movie(one_second, three_seconds)) == pytest.approx((140 * 1024 + 512) / 48000)


def test_the_movie_box_may_follow_the_media_data() -> None:
    boxes = _top_boxes(video_note("hi", seconds=30))
    assert mp4_seconds(boxes[b"ftyp"] + boxes[b"mdat"] + boxes[b"moov"]) == pytest.approx(30, abs=AAC_FRAME_S)


def test_media_data_with_a_64_bit_size_or_running_to_the_end_of_the_file() -> None:
    boxes = _top_boxes(video_note("hi", seconds=30))
    samples = boxes[b"mdat"][8:]
    large = (1).to_bytes(4, "big") + b"mdat" + (16 + len(samples)).to_bytes(8, "big") + samples
    assert mp4_seconds(boxes[b"ftyp"] + large + boxes[b"moov"]) == pytest.approx(30, abs=AAC_FRAME_S)
    to_the_end = bytes(4) + b"mdat" + samples
    assert mp4_seconds(boxes[b"ftyp"] + boxes[b"moov"] + to_the_end) == pytest.approx(30, abs=AAC_FRAME_S)


_ONE_SECOND = _track(1000, [(1, 1000)])


def _nested(kind: bytes, depth: int) -> bytes:
    return b"".join(_u32(8 * (depth - level)) + kind for level in range(depth))


@pytest.mark.parametrize(
    "media",
    [
        pytest.param(b"", id="empty"),
        pytest.param(video_note("hi")[:-10], id="truncated media data"),
        pytest.param(video_note("hi")[:200], id="truncated movie box"),
        pytest.param(
            _movie(_ONE_SECOND) + _u32(1) + b"mdat" + (2**63).to_bytes(8, "big"),
            id="a box claiming 2**63 bytes",
        ),
        pytest.param(_movie(_ONE_SECOND) + _u32(4) + b"free", id="a box smaller than its header"),
        pytest.param(_movie(_ONE_SECOND, moov_extra=bytes(4) + b"free"), id="size 0 not at the top"),
        pytest.param(_movie(_nested(b"trak", 10_000)), id="10,000 nested boxes"),
        pytest.param(_movie(_box(b"free", bytes(8)) * 20_000), id="20,000 boxes in the movie box"),
        pytest.param(
            _movie(_track(1000, [], stts=_box(b"stts", bytes(4), _u32(2**32 - 1), bytes(12)))),
            id="an stts claiming 2**32 entries in 20 bytes",
        ),
        pytest.param(_movie(_track(1000, [], stts=_box(b"stts", bytes(4)))), id="an stts without its count"),
        pytest.param(_movie(_track(0, [(10, 100)])), id="timescale 0"),
        pytest.param(_movie(_track(1000, [(10, 100)], mdhd_version=2)), id="an unknown mdhd version"),
        pytest.param(_movie(_track(1000, [(10, 100)]), _box(b"trak")), id="a track without a sample table"),
        pytest.param(_movie(moov_extra=_box(b"mvhd", bytes(100))), id="no track"),
        pytest.param(_movie(_track(1000, [(10, 100)]), moov_extra=_box(b"mvex")), id="fragmented"),
        pytest.param(_movie(_track(1000, [(10, 100)])) * 2, id="two movie boxes"),
        pytest.param(_top_boxes(video_note("hi"))[b"moov"], id="no ftyp first"),
        pytest.param(random.Random(7).randbytes(1 << 16), id="random bytes"),
        pytest.param(_box(b"ftyp", b"isom") + random.Random(8).randbytes(1 << 16), id="random after an ftyp"),
        pytest.param(voice_note("hi"), id="Ogg Opus"),
        pytest.param(mp3_audio("hi"), id="MP3"),
    ],
)
def test_what_is_not_a_well_formed_mp4_cannot_be_measured(media: bytes) -> None:
    assert mp4_seconds(media) is None


def test_an_mp4_is_read_without_walking_its_media_data() -> None:
    # 20 MB of media data that looks like boxes: skipped by its size, never read as boxes.
    boxes = _top_boxes(video_note("hi", seconds=60))
    mdat = _box(b"mdat", _box(b"free") * (20_000_000 // 8))
    assert mp4_seconds(boxes[b"ftyp"] + mdat + boxes[b"moov"]) == pytest.approx(60, abs=AAC_FRAME_S)


# --- hostile MP4s: what a decoder plays that the sample tables' times hide -------------------


def _aac_track(
    asc: bytes, samples: int, entries: _Entries, *, timescale: int = 48000, edits: bytes = b""
) -> bytes:
    """A sound track of ``samples`` AAC frames (its AudioSpecificConfig ``asc``) timed by the
    stts ``entries``."""
    decoder = b"\x40\x15" + bytes(11) + b"\x05" + bytes([len(asc)]) + asc  # AAC, audio stream
    es = b"\x00\x01\x00" + b"\x04" + bytes([len(decoder)]) + decoder + b"\x06\x01\x02"
    esds = _box(b"esds", bytes(4), b"\x03", bytes([len(es)]), es)
    rate = (timescale << 16) % 2**32
    mp4a = _box(b"mp4a", bytes(6), b"\x00\x01", bytes(8), b"\x00\x01\x00\x10", bytes(4), _u32(rate), esds)
    stsd = _box(b"stsd", bytes(4), _u32(1), mp4a)
    stsz = _box(b"stsz", bytes(4), _u32(100), _u32(samples))  # each 100 bytes
    stts = _box(
        b"stts", bytes(4), _u32(len(entries)), *(_u32(count) + _u32(delta) for count, delta in entries)
    )
    mdhd = _box(b"mdhd", bytes(4), bytes(8), _u32(timescale), bytes(8))
    stbl = _box(b"stbl", stsd, stts, stsz)
    return _box(b"trak", edits, _box(b"mdia", mdhd, _box(b"minf", stbl)))


_AAC_LC_48K_MONO = b"\x11\x88"  # object type 2, sampling frequency index 3, 1 channel


def test_an_aac_track_plays_its_frames_whatever_its_sample_times_say() -> None:
    # 30,000 AAC frames decode to 1024 samples each at 48 kHz (640 s) while the stts times each
    # at one tick (0.6 s): a decoder plays the frames, and Transcribe bills what it plays.
    honest = _movie(_aac_track(_AAC_LC_48K_MONO, 30_000, [(30_000, 1024)]))
    lying = _movie(_aac_track(_AAC_LC_48K_MONO, 30_000, [(30_000, 1)]))
    assert mp4_seconds(honest) == pytest.approx(640)
    assert mp4_seconds(lying) == pytest.approx(640)


def test_an_edit_list_playing_the_media_over_and_over_counts_each_time() -> None:
    # 60 s of audio whose edit list plays it 20 times (in the movie's timescale, 1000).
    mvhd = _box(b"mvhd", bytes(4), bytes(8), _u32(1000), _u32(60_000), bytes(80))
    edit = _u32(60_000) + _u32(0) + b"\x00\x01\x00\x00"  # 60 s from the media's start, rate 1
    edts = _box(b"edts", _box(b"elst", bytes(4), _u32(20), edit * 20))
    track = _aac_track(_AAC_LC_48K_MONO, 2813, [(2812, 1024), (1, 256)], edits=edts)
    media = _box(b"ftyp", b"isom", bytes(4), b"isom") + _box(b"moov", mvhd, track)
    assert mp4_seconds(media) == pytest.approx(1200)


# --- MP3 (MPEG audio) ---------------------------------------------------------------------


def test_an_mp3_plays_what_its_frames_hold() -> None:
    assert mp3_seconds(mp3_audio("hi", seconds=4), stop_past_s=NO_STOP) == pytest.approx(
        ceil(4 / MP3_FRAME_S) * MP3_FRAME_S
    )


def test_a_xing_header_claiming_fewer_frames_does_not_shorten_the_file() -> None:
    audio = mp3_audio("hi", seconds=30)
    first = audio.index(b"\xff\xfb")
    xing = first + 4 + 17  # after the header and a mono MPEG-1 frame's side information
    claim = b"Xing" + _u32(1) + _u32(10)  # flags: frame count; 10 frames (0.26 s)
    lying = audio[:xing] + claim + audio[xing + len(claim) :]
    assert mp3_seconds(lying, stop_past_s=NO_STOP) == pytest.approx(mp3_seconds(audio, stop_past_s=NO_STOP))
    assert mp3_seconds(lying, stop_past_s=NO_STOP) == pytest.approx(30, abs=MP3_FRAME_S)


def test_counting_stops_once_past_the_limit() -> None:
    seconds = mp3_seconds(mp3_audio("hi", seconds=600), stop_past_s=60)
    assert seconds is not None
    assert 60 < seconds <= 60 + MP3_FRAME_S


def test_a_20_mb_mp3_is_measured_to_its_end() -> None:
    audio = mp3_audio("hi", seconds=1300)
    assert len(audio) > 20_000_000
    assert mp3_seconds(audio, stop_past_s=NO_STOP) == pytest.approx(1300, abs=MP3_FRAME_S)


@pytest.mark.parametrize(
    ("header", "length", "plays_s"),
    [
        pytest.param(b"\xff\xf3\x80\xc4", 208, 576 / 22050, id="MPEG-2 Layer III 64 kbps 22.05 kHz"),
        pytest.param(b"\xff\xe3\x48\xc4", 288, 576 / 8000, id="MPEG-2.5 Layer III 32 kbps 8 kHz"),
        pytest.param(b"\xff\xfd\x94\xc4", 480, 1152 / 48000, id="MPEG-1 Layer II 160 kbps 48 kHz"),
        pytest.param(b"\xff\xff\xc4\xc4", 384, 384 / 48000, id="MPEG-1 Layer I 384 kbps 48 kHz"),
        pytest.param(b"\xff\xfa\x92\xc4", 418, 1152 / 44100, id="with a CRC, padded"),
    ],
)
def test_frames_of_every_version_and_layer(header: bytes, length: int, plays_s: float) -> None:
    assert mp3_seconds(_mpeg_frames(header, length, 50), stop_past_s=NO_STOP) == pytest.approx(50 * plays_s)


def test_tags_before_and_after_the_frames() -> None:
    frames = _mpeg_frames(b"\xff\xfb\x90\xc4", 417, 40)
    # ID3v2.4 with a footer: the size (syncsafe) counts neither the header nor the footer.
    id3v2 = b"ID3\x04\x00\x10\x00\x00\x01\x00" + bytes(128) + b"3DI\x04\x00\x10\x00\x00\x01\x00"
    item = (5).to_bytes(4, "little") + bytes(4) + b"Title\x00" + b"hello"
    ape_flags = (1 << 31 | 1 << 29).to_bytes(4, "little")  # has a header; this is the header
    ape = (
        b"APETAGEX" + (2000).to_bytes(4, "little") + (32 + len(item)).to_bytes(4, "little")
        + (1).to_bytes(4, "little") + ape_flags + bytes(8)
        + item
        + b"APETAGEX" + (2000).to_bytes(4, "little") + (32 + len(item)).to_bytes(4, "little")
        + (1).to_bytes(4, "little") + (1 << 31).to_bytes(4, "little") + bytes(8)
    )  # fmt: skip
    id3v1 = b"TAG" + bytes(125)
    for audio in (id3v2 + frames, frames + id3v1):
        assert mp3_seconds(audio, stop_past_s=NO_STOP) == pytest.approx(40 * MP3_FRAME_S)
    # An APE tag's bytes count as frames at 8 kbps (they might hide some): 1 ms a byte.
    for audio in (frames + ape, id3v2 + frames + ape + id3v1):
        assert mp3_seconds(audio, stop_past_s=NO_STOP) == pytest.approx(40 * MP3_FRAME_S + len(ape) / 1000)


def test_frames_hidden_in_an_ape_tag_are_counted() -> None:
    # 10 s of frames, then an APE tag whose one item holds 700 s more: a decoder reading to
    # the end of the file (or resyncing past the tag's header) plays them.
    hidden = mp3_audio("hi", seconds=700)
    item = len(hidden).to_bytes(4, "little") + bytes(4) + b"Cover Art (Front)\x00" + hidden
    footer = (
        b"APETAGEX" + (2000).to_bytes(4, "little") + (32 + len(item)).to_bytes(4, "little")
        + (1).to_bytes(4, "little") + bytes(4) + bytes(8)
    )  # fmt: skip
    audio = mp3_audio("hi", seconds=10)[:-128] + item + footer
    seconds = mp3_seconds(audio, stop_past_s=NO_STOP)
    assert seconds is None or seconds > 700


def test_a_truncated_last_frame_is_not_counted() -> None:
    cut = mp3_audio("hi", seconds=4)[: -128 - 100]  # the ID3v1 tag and the last frame's end
    frames = ceil(4 / MP3_FRAME_S)
    assert mp3_seconds(cut, stop_past_s=NO_STOP) == pytest.approx((frames - 1) * MP3_FRAME_S)


def _spliced(audio: bytes, at_frame: int, insert: bytes) -> bytes:
    """``audio`` (frames of 417 bytes) with ``insert`` before its frame ``at_frame``."""
    at = 417 * at_frame
    return audio[:at] + insert + audio[at:]


_FRAMES = _mpeg_frames(b"\xff\xfb\x90\xc4", 417, 20)


@pytest.mark.parametrize(
    "audio",
    [
        pytest.param(b"", id="empty"),
        pytest.param(_spliced(_FRAMES, 10, b"junk"), id="junk between frames"),
        pytest.param(b"junk" + _FRAMES, id="junk before the frames"),
        pytest.param(_spliced(_FRAMES, 10, bytes(500)), id="zeros between frames"),
        pytest.param(_mpeg_frames(b"\xff\xfb\x00\xc4", 417, 20), id="free format"),
        pytest.param(_mpeg_frames(b"\xff\xfb\xf0\xc4", 417, 20), id="bad bitrate"),
        pytest.param(_mpeg_frames(b"\xff\xeb\x90\xc4", 417, 20), id="reserved version"),
        pytest.param(_mpeg_frames(b"\xff\xf9\x90\xc4", 417, 20), id="reserved layer"),
        pytest.param(_mpeg_frames(b"\xff\xfb\x9c\xc4", 417, 20), id="reserved sample rate"),
        pytest.param(_FRAMES + _mpeg_frames(b"\xff\xfb\x94\xc4", 384, 20), id="sample rate changing"),
        pytest.param(_FRAMES + _mpeg_frames(b"\xff\xf3\x80\xc4", 208, 20), id="version changing"),
        pytest.param(b"ID3\x04\x00\x00\x00\x00\x10\x00" + bytes(100), id="an ID3v2 tag overrunning the file"),
        pytest.param(b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(100), id="nothing but tags and zeros"),
        pytest.param(b"ID3\x04\x00\x00\x00\x00\x00\x00", id="nothing but a tag"),
        pytest.param(b"ID3\x04\x00\x00\x00\x80\x00\x00" + _FRAMES, id="an ID3v2 size not syncsafe"),
        pytest.param(
            _FRAMES + b"APETAGEX" + bytes(4) + (10**8).to_bytes(4, "little") + bytes(16),
            id="an APE tag overrunning",
        ),
        pytest.param(random.Random(7).randbytes(1 << 16), id="random bytes"),
        pytest.param(voice_note("hi"), id="Ogg Opus"),
        pytest.param(video_note("hi"), id="MP4"),
    ],
)
def test_what_is_not_mpeg_audio_throughout_cannot_be_measured(audio: bytes) -> None:
    assert mp3_seconds(audio, stop_past_s=NO_STOP) is None


# --- claims: the longer of what a recording plays and what its headers say ---------------------

_BUILDERS = [
    pytest.param(voice_note, id="Ogg Opus"),
    pytest.param(video_note, id="MP4"),
    pytest.param(m4a_audio, id="M4A"),
    pytest.param(mp3_audio, id="MP3"),
]


@pytest.mark.parametrize("build", _BUILDERS)
def test_a_recording_claiming_11_minutes_that_plays_4_s_measures_its_claim(build: Any) -> None:
    # Transcribe may bill what the headers claim: refused as a recording playing 11 minutes.
    heard = audio_heard(build("hi", seconds=4, claims_s=660), stop_past_s=601)
    assert heard is not None and heard.seconds >= 660


@pytest.mark.parametrize("build", _BUILDERS)
def test_a_recording_claiming_1_s_that_plays_700_s_measures_what_it_plays(build: Any) -> None:
    heard = audio_heard(build("hi", seconds=700, claims_s=1), stop_past_s=NO_STOP)
    assert heard is not None and heard.seconds >= 700


@pytest.mark.parametrize("build", _BUILDERS)
def test_an_honest_recording_measures_what_it_plays(build: Any) -> None:
    heard = audio_heard(build("hi", seconds=4, claims_s=4), stop_past_s=NO_STOP)
    assert heard is not None and heard.seconds == pytest.approx(4, abs=0.06)


def _granules_unknown(audio: bytes) -> bytes:
    """``audio`` (a voice_note) with every page past its headers at granule position -1."""
    pages = audio.split(b"OggS")[1:]  # its packets hold no "OggS"
    unknown = (2**64 - 1).to_bytes(8, "little")
    return b"".join(
        b"OggS" + (page[:2] + unknown + page[10:] if n > 1 else page) for n, page in enumerate(pages)
    )


def test_an_ogg_granule_position_of_minus_one_claims_nothing() -> None:
    audio = _granules_unknown(voice_note("hi", seconds=4, claims_s=660))
    assert opus_seconds(audio, stop_past_s=NO_STOP) == pytest.approx(4, abs=0.06)


def test_ogg_counting_stops_once_what_plays_or_what_is_claimed_passes_the_limit() -> None:
    plays = opus_seconds(voice_note("hi", seconds=700), stop_past_s=60)
    assert plays is not None and 60 < plays <= 60 + OPUS_PAGE_S
    claimed = opus_seconds(voice_note("hi", seconds=4, claims_s=660), stop_past_s=60)
    assert claimed is not None and claimed > 60


def test_an_ogg_claim_is_its_last_granule_position_less_the_pre_skip() -> None:
    # voice_note's pre-skip is 312 samples: a claim of 100 s is 4,800,312 past the start.
    assert opus_seconds(voice_note("hi", seconds=4, claims_s=100), stop_past_s=NO_STOP) == pytest.approx(100)


_ALL_ONES_32 = 2**32 - 1
_ALL_ONES_64 = 2**64 - 1


@pytest.mark.parametrize(
    ("media", "seconds"),
    [
        pytest.param(_movie(_track(1000, [(10, 100)], claims=700_000)), 700, id="mdhd version 0"),
        pytest.param(
            _movie(_track(1000, [(10, 100)], mdhd_version=1, claims=700_000)), 700, id="mdhd version 1"
        ),
        pytest.param(_movie(_track(1000, [(10, 100)], claims=_ALL_ONES_32)), 1, id="mdhd unknown"),
        pytest.param(
            _movie(_track(1000, [(10, 100)], mdhd_version=1, claims=_ALL_ONES_64)),
            1,
            id="mdhd version 1 unknown",
        ),
        pytest.param(_movie(_ONE_SECOND, moov_extra=_mvhd(0, 600, 600 * 700)), 700, id="mvhd version 0"),
        pytest.param(_movie(_ONE_SECOND, moov_extra=_mvhd(1, 600, 600 * 700)), 700, id="mvhd version 1"),
        pytest.param(_movie(_ONE_SECOND, moov_extra=_mvhd(0, 600, _ALL_ONES_32)), 1, id="mvhd unknown"),
        pytest.param(
            _movie(_ONE_SECOND, moov_extra=_mvhd(1, 600, _ALL_ONES_64)), 1, id="mvhd version 1 unknown"
        ),
        pytest.param(
            _movie(_track(1000, [(1, 1000)], tkhd=_tkhd(0, 700 * 90)), moov_extra=_mvhd(0, 90, 0)),
            700,
            id="tkhd version 0, in the movie's timescale",
        ),
        pytest.param(
            _movie(_track(1000, [(1, 1000)], tkhd=_tkhd(1, 700 * 90)), moov_extra=_mvhd(1, 90, 0)),
            700,
            id="tkhd version 1",
        ),
        pytest.param(
            _movie(_track(1000, [(1, 1000)], tkhd=_tkhd(1, _ALL_ONES_64)), moov_extra=_mvhd(0, 90, 0)),
            1,
            id="tkhd unknown",
        ),
        pytest.param(
            _movie(_track(1000, [(1, 1000)], tkhd=_tkhd(0, 700 * 90))), 1, id="tkhd without a movie timescale"
        ),
    ],
)
def test_each_mp4_header_duration_is_a_claim(media: bytes, seconds: float) -> None:
    assert mp4_seconds(media) == pytest.approx(seconds)


def _with_first_frame(audio: bytes, at: int, insert: bytes) -> bytes:
    """``audio`` (an mp3_audio) with ``insert`` written ``at`` bytes into its first frame."""
    first = audio.index(b"\xff\xfb") + at
    return audio[:first] + insert + audio[first + len(insert) :]


@pytest.mark.parametrize(
    ("at", "header", "seconds"),
    [
        pytest.param(21, b"Info" + _u32(1) + _u32(25_782), 25_782 * MP3_FRAME_S, id="Info"),
        pytest.param(21, b"Xing" + _u32(0xE) + _u32(25_782), 4, id="Xing without a frame count"),
        pytest.param(36, b"VBRI" + bytes(10) + _u32(25_782), 25_782 * MP3_FRAME_S, id="VBRI"),
    ],
)
def test_an_mp3_header_frame_count_is_a_claim(at: int, header: bytes, seconds: float) -> None:
    audio = _with_first_frame(mp3_audio("hi", seconds=4), at, header)
    assert mp3_seconds(audio, stop_past_s=NO_STOP) == pytest.approx(seconds, abs=MP3_FRAME_S)


# --- the builders: what a scripted Transcribe hears -------------------------------------------


def test_what_each_recording_says_can_be_found() -> None:
    for build in (video_note, m4a_audio, mp3_audio, voice_note):
        assert said_in(build("meet at the station")) == "meet at the station"
        assert said_in(build("noise")) is None
