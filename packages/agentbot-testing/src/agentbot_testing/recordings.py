"""Media as Telegram's users send it, built from the format specs for the voice tests: round
video messages (MP4), audio files (M4A, MP3). Each plays the length asked for, carries what
it ``said`` as ``said=<text>`` and a NUL for a scripted Transcribe (``said_in``), and its
samples are silence or zeros: only the structure is real.
"""

from __future__ import annotations

from math import ceil

from agentbot_testing.telegram_support import heard

_VIDEO_TIMESCALE = 90000
_VIDEO_TICKS = 3000  # a 30 fps frame
_AUDIO_TIMESCALE = 48000
_AUDIO_TICKS = 1024  # an AAC frame
# A 3x3 matrix in 16.16 / 2.30 fixed point: the identity (mvhd, tkhd).
_IDENTITY = b"".join(v.to_bytes(4, "big") for v in (0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000))
_MP3_RATE = 44100
_MP3_BPS = 128000
_MP3_SAMPLES = 1152
_Entries = list[tuple[int, int]]  # time-to-sample: (sample count, sample duration)


def video_note(said: str, *, seconds: float = 4.0, claims_s: float = 1.0) -> bytes:
    """A round video message: H.264 video and AAC audio tracks in an MP4 that play ``seconds``
    while every duration in its headers says ``claims_s``."""
    return _mp4(b"isom", said, seconds, claims_s, video=True)


def m4a_audio(said: str, *, seconds: float = 4.0, claims_s: float | None = None) -> bytes:
    """An M4A audio file (one AAC track) that plays ``seconds`` while every duration in its
    headers says ``claims_s`` (by default ``seconds``, as an honest file's do)."""
    return _mp4(b"M4A ", said, seconds, seconds if claims_s is None else claims_s, video=False)


def mp3_audio(said: str, *, seconds: float = 4.0, claims_s: float | None = None) -> bytes:
    """An MP3: an ID3v2 tag (v2.4, so its text may be UTF-8) whose TXXX frame holds what is
    ``said``, MPEG-1 Layer III frames (128 kbps, 44.1 kHz, padded as encoders do to keep the
    bitrate) enough to play ``seconds``, and an ID3v1 tag. With ``claims_s``, the first frame
    holds a Xing header whose frame count says that instead."""
    text = b"\x03" + b"\x00" + f"said={said}".encode() + b"\x00"  # UTF-8, empty description
    frame = b"TXXX" + _syncsafe(len(text)) + bytes(2) + text
    tag = b"ID3\x04\x00\x00" + _syncsafe(len(frame)) + frame
    frames = []
    for index in range(ceil(seconds * _MP3_RATE / _MP3_SAMPLES)):
        # A frame holds 144 x bitrate / rate bytes (417.96 here): padded by one byte whenever
        # the bytes written so far fall behind.
        length = _mp3_bytes(index + 1) - _mp3_bytes(index)
        header = bytes([0xFF, 0xFB, 0x90 | (length - 417) << 1, 0xC4])  # mono, original
        frames.append(header + bytes(length - 4))
    if claims_s is not None:
        # After a mono MPEG-1 frame's header and 17 bytes of side information: flags (the
        # frame count only), then the count.
        xing = b"Xing" + _u32(1) + _u32(round(claims_s * _MP3_RATE / _MP3_SAMPLES))
        frames[0] = frames[0][:21] + xing + frames[0][21 + len(xing) :]
    id3v1 = b"TAG" + bytes(124) + b"\xff"  # no title, artist, album, year, comment; no genre
    return tag + b"".join(frames) + id3v1


def said_in(media: bytes) -> str | None:
    """What a recording built here (or ``telegram_support.voice_note``) says; "noise" means
    nothing can be made out, so None, as for no ``said=`` at all."""
    if media.startswith(b"OggS"):
        return heard(media)
    start = media.find(b"said=")
    end = media.find(b"\x00", start)
    if start < 0 or end < 0:
        return None
    said = media[start + 5 : end].decode()
    return None if said == "noise" else said


def _mp4(brand: bytes, said: str, seconds: float, claims_s: float, *, video: bool) -> bytes:
    tracks = [(2, b"soun", _AUDIO_TIMESCALE, _AUDIO_TICKS)]
    if video:
        tracks.insert(0, (1, b"vide", _VIDEO_TIMESCALE, _VIDEO_TICKS))
    ftyp = _box(b"ftyp", brand, (0x200).to_bytes(4, "big"), brand, b"isomiso2mp41")
    mvhd = _full(
        b"mvhd",
        bytes(8),  # creation and modification times
        _u32(1000),
        _u32(round(claims_s * 1000)),
        _u32(0x10000),  # rate 1.0
        b"\x01\x00" + bytes(10),  # volume 1.0, reserved
        _IDENTITY,
        bytes(24),
        _u32(len(tracks) + 1),  # next track ID
    )
    comment = f"said={said}".encode() + b"\x00"
    udta = _box(b"udta", _box(b"\xa9cmt", len(comment).to_bytes(2, "big"), b"\x55\xc4", comment))
    samples = 0
    traks = []
    for track_id, handler, timescale, ticks in tracks:
        entries = _stts_entries(round(seconds * timescale), ticks)
        samples += sum(count for count, _ in entries)
        traks.append(_trak(track_id, handler, timescale, entries, claims_s))
    moov = _box(b"moov", mvhd, *traks, udta)
    mdat = _box(b"mdat", bytes(samples))  # a byte a sample: no sample table points at them
    return ftyp + moov + mdat


def _trak(
    track_id: int, handler: bytes, timescale: int, entries: list[tuple[int, int]], claims_s: float
) -> bytes:
    is_video = handler == b"vide"
    tkhd = _full(
        b"tkhd",
        bytes(8),
        _u32(track_id),
        bytes(4),
        _u32(round(claims_s * 1000)),  # in the movie's timescale
        bytes(8),
        bytes(4),  # layer, alternate group
        b"\x00\x00" if is_video else b"\x01\x00",  # volume
        bytes(2),
        _IDENTITY,
        _u32(240 << 16 if is_video else 0) * 2,  # width and height, 16.16
        flags=3,  # enabled, in the movie
    )
    mdhd = _full(b"mdhd", bytes(8), _u32(timescale), _u32(round(claims_s * timescale)), b"\x55\xc4", bytes(2))
    hdlr = _full(b"hdlr", bytes(4), handler, bytes(12), b"Telegram\x00")
    header = _full(b"vmhd", bytes(8), flags=1) if is_video else _full(b"smhd", bytes(4))
    dinf = _box(b"dinf", _full(b"dref", _u32(1), _full(b"url ", flags=1)))
    stts = _full(b"stts", _u32(len(entries)), *(_u32(count) + _u32(delta) for count, delta in entries))
    samples = sum(count for count, _ in entries)
    stbl = _box(
        b"stbl",
        _full(b"stsd", _u32(1), _avc1() if is_video else _mp4a()),
        stts,
        _full(b"stsz", _u32(1), _u32(samples)),  # a byte a sample
        _full(b"stsc", _u32(0)),
        _full(b"stco", _u32(0)),
    )
    minf = _box(b"minf", header, dinf, stbl)
    return _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))


def _avc1() -> bytes:
    """An H.264 sample entry without its decoder configuration: no one decodes it here."""
    dimensions = (240).to_bytes(2, "big") * 2
    resolution = _u32(72 << 16) * 2
    return _box(
        b"avc1",
        bytes(6),
        b"\x00\x01",
        bytes(16),
        dimensions,
        resolution,
        bytes(4),
        b"\x00\x01",
        bytes(32),
        b"\x00\x18\xff\xff",
    )


def _mp4a() -> bytes:
    """An AAC-LC sample entry, 48 kHz mono: its esds's AudioSpecificConfig says so."""
    asc = b"\x11\x88"  # object type 2, sampling frequency index 3, 1 channel
    decoder = b"\x40\x15" + bytes(11) + b"\x05" + bytes([len(asc)]) + asc
    es = b"\x00\x01\x00" + b"\x04" + bytes([len(decoder)]) + decoder + b"\x06\x01\x02"
    esds = _full(b"esds", b"\x03", bytes([len(es)]), es)
    rate = _u32(_AUDIO_TIMESCALE << 16 & 0xFFFFFFFF)  # 16.16, wrapped as writers do above 65535 Hz
    return _box(b"mp4a", bytes(6), b"\x00\x01", bytes(8), b"\x00\x01\x00\x10", bytes(4), rate, esds)


def _stts_entries(total: int, ticks: int) -> _Entries:
    """Samples of ``ticks`` each, and a shorter last one, that add up to ``total``."""
    full, rest = divmod(total, ticks)
    return [(count, delta) for count, delta in ((full, ticks), (1, rest)) if count and delta]


def _mp3_bytes(frames: int) -> int:
    return frames * _MP3_SAMPLES // 8 * _MP3_BPS // _MP3_RATE


def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return _u32(8 + len(body)) + kind + body


def _full(kind: bytes, *parts: bytes, flags: int = 0) -> bytes:
    """A box with a version (0 here) and 24 bits of flags before its fields."""
    return _box(kind, flags.to_bytes(4, "big"), *parts)


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def _syncsafe(size: int) -> bytes:
    return bytes(size >> shift & 0x7F for shift in (21, 14, 7, 0))
