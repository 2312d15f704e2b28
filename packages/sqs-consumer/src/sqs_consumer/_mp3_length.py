"""How long an MP3 (any MPEG-1, -2 or -2.5 Layer I, II or III stream) plays: the larger of
what its frames play and what a Xing, Info or VBRI header in its first frame claims (a frame
count). That count is the encoder's word, so a file may claim less than it plays; and it is
not known which of the two Amazon Transcribe bills, so neither may pass the limit.

Each frame's 4-byte header (ISO/IEC 11172-3, 13818-3) gives its length and how many samples
it plays; the stream must be frames end to end, between an optional ID3v2 tag at the start
and optional APEv2 and ID3v1 tags at the end.
"""

from __future__ import annotations

from functools import cache

# Bitrates in kbps by bitrate index (0, free format, and 15, bad, are refused).
_KBPS_V1 = {
    1: (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    2: (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
}
_KBPS_V2 = {
    1: (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    3: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
# Sample rates by version bits (0: MPEG-2.5, 1: reserved, 2: MPEG-2, 3: MPEG-1).
_RATES = {0: (11025, 12000, 8000), 2: (22050, 24000, 16000), 3: (44100, 48000, 32000)}
_ID3V1 = 128
_APE_FOOTER = 32
# An APE tag is skipped here, but a decoder reading to the end of the file plays any frames
# hidden in it (an item's value is any bytes): its bytes count as frames of the lowest bitrate
# a decoder plays, 8 kbps (free format it does not), so a tag of text adds a fraction of a second.
_LOWEST_BYTES_PER_S = 1000
_SHAPE = 0x1E0C  # in a header's 2nd and 3rd bytes: version, layer, sample rate
_VBRI_AT = 36  # into the first frame: its 4-byte header and 32 bytes


@cache  # built on the first MP3 measured, not at every consumer's cold start (~2 ms)
def _frame_kinds() -> list[tuple[int, float] | None]:
    """(length in bytes, seconds played) by a header's 2nd and 3rd bytes less 0xE000 (its
    low sync bits on): one lookup per frame keeps a 20 MB file's ~50k frames quick."""
    kinds: list[tuple[int, float] | None] = []
    for key in range(0x2000):
        version, layer = key >> 11 & 3, 4 - (key >> 9 & 3)  # layer bits 3, 2, 1: I, II, III
        bitrate_index, rate_index, padding = key >> 4 & 15, key >> 2 & 3, key >> 1 & 1
        if version not in _RATES or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
            kinds.append(None)
            continue
        bps = (_KBPS_V1 if version == 3 else _KBPS_V2)[layer][bitrate_index] * 1000
        rate = _RATES[version][rate_index]
        if layer == 1:
            samples, length = 384, (12 * bps // rate + padding) * 4
        else:
            samples = 576 if layer == 3 and version != 3 else 1152
            length = samples // 8 * bps // rate + padding
        kinds.append((length, samples / rate))
    return kinds


def mp3_seconds(audio: bytes, *, stop_past_s: float) -> float | None:
    """How long ``audio`` plays, counting only until it passes ``stop_past_s``; None when it
    is not MPEG audio frames throughout (another format, junk between frames, free-format or
    reserved headers, a change of version, layer or sample rate mid-stream)."""
    at = _id3v2_end(audio)
    end = _tags_start(audio)
    if at is None or end is None or at >= end:
        return None
    kinds = _frame_kinds()
    # Version, layer and sample rate bits of the first frame's header, which all must share.
    shape = int.from_bytes(audio[at + 1 : at + 3], "big") & _SHAPE
    seconds = (_id3v1_start(audio) - end) / _LOWEST_BYTES_PER_S
    claimed = 0.0
    frames = 0
    while end - at >= 4:
        header = audio[at + 1] << 8 | audio[at + 2]
        kind = kinds[header - 0xE000] if header >= 0xE000 else None
        if audio[at] != 0xFF or kind is None or header & _SHAPE != shape:
            return None
        length, plays = kind
        if at + length > end:
            break  # a truncated last frame: nothing of it is counted
        if not frames:
            claimed = _claimed_seconds(audio, at, plays)
        seconds += plays
        frames += 1
        if max(seconds, claimed) > stop_past_s:
            break
        at += length
    return max(seconds, claimed) if frames else None


def _claimed_seconds(audio: bytes, at: int, frame_s: float) -> float:
    """How long the frame count of a Xing or Info header (after the first frame's side
    information, where its flags say the count is there) or a VBRI header in the frame at
    ``at`` claims, each frame playing ``frame_s``; 0 without one."""
    mpeg1 = audio[at + 1] >> 3 & 3 == 3
    mono = audio[at + 3] >> 6 == 3
    tag = at + 4 + ((17 if mono else 32) if mpeg1 else (9 if mono else 17))
    # With a CRC the side information starts 2 bytes later; some readers look there, some not.
    frames = 0
    for xing in (tag, tag + 2) if not audio[at + 1] & 1 else (tag,):
        flags = int.from_bytes(audio[xing + 4 : xing + 8], "big")
        if audio[xing : xing + 4] in (b"Xing", b"Info") and flags & 1:
            frames = max(frames, int.from_bytes(audio[xing + 8 : xing + 12], "big"))
    if audio.startswith(b"VBRI", at + _VBRI_AT):  # then version, delay, quality, bytes, frames
        frames = max(frames, int.from_bytes(audio[at + _VBRI_AT + 14 : at + _VBRI_AT + 18], "big"))
    return frames * frame_s


def _id3v2_end(audio: bytes) -> int | None:
    """Where the frames begin: after an ID3v2 tag (10-byte header, syncsafe size, and a
    10-byte footer when its flag says so), if there is one."""
    if not audio.startswith(b"ID3"):
        return 0
    size = audio[6:10]
    if len(size) < 4 or any(byte & 0x80 for byte in size):
        return None
    end = 10 + (size[0] << 21 | size[1] << 14 | size[2] << 7 | size[3]) + (10 if audio[5] & 0x10 else 0)
    return end if end <= len(audio) else None


def _tags_start(audio: bytes) -> int | None:
    """Where the frames end: before an ID3v1 tag (the last 128 bytes, "TAG") and an APEv2 tag
    (32-byte "APETAGEX" footer, its size counting items and footer, plus a header if flagged),
    if there are any."""
    end = _id3v1_start(audio)
    footer = end - _APE_FOOTER
    if footer >= 0 and audio.startswith(b"APETAGEX", footer):
        size = int.from_bytes(audio[footer + 12 : footer + 16], "little")
        has_header = audio[footer + 23] & 0x80  # bit 31 of the little-endian flags
        end -= size + (_APE_FOOTER if has_header else 0)
        if size < _APE_FOOTER or end < 0:
            return None
    return end


def _id3v1_start(audio: bytes) -> int:
    """Where an ID3v1 tag (the last 128 bytes, "TAG") begins; the end when there is none."""
    end = len(audio)
    return end - _ID3V1 if end >= _ID3V1 and audio.startswith(b"TAG", end - _ID3V1) else end
