"""How long an Ogg Opus recording (a voice message as Telegram's apps record it) plays:
the duration a message states is the sender's app's word, and Amazon Transcribe bills what
the audio holds.

The larger of two lengths: what the packets play (RFC 6716 §3.1: each one's first byte gives
its frame size and count), and what the pages' granule positions claim (RFC 7845 §4: the
last one, less the pre-skip its OpusHead states, in 48 kHz samples). The writer sets the
granule positions, so a file may claim less than it plays; and it is not known which of the
two Transcribe bills, so neither may pass the limit.
"""

from __future__ import annotations

# A packet's frame length in ms by its TOC byte's configuration (its top 5 bits): SILK
# (0-11), hybrid (12-15), CELT (16-31).
_FRAME_MS = (10, 20, 40, 60) * 3 + (10, 20) * 2 + (2.5, 5, 10, 20) * 4
_PAGE_HEADER = 27
_NO_GRANULE = 2**64 - 1  # -1: no packet ends on the page
_GRANULE_RATE = 48000  # Opus's granule positions count 48 kHz samples whatever its input rate


def opus_seconds(audio: bytes, *, stop_past_s: float) -> float | None:
    """How long ``audio`` plays or claims to, whichever is longer, counting only until one
    passes ``stop_past_s``; None when it is not Ogg Opus throughout (another codec, another
    container, a broken page)."""
    packets: dict[int, int] = {}  # per logical stream (serial number): packets begun
    pre_skips: dict[int, int] = {}  # per logical stream: its OpusHead's pre-skip
    ms = 0.0
    claimed_s = 0.0
    at = 0
    while at < len(audio):
        if audio[at : at + 4] != b"OggS" or at + _PAGE_HEADER > len(audio):
            return None
        serial = int.from_bytes(audio[at + 14 : at + 18], "little")
        lacing = audio[at + _PAGE_HEADER : at + _PAGE_HEADER + audio[at + 26]]
        start = at + _PAGE_HEADER + len(lacing)
        if len(lacing) != audio[at + 26] or start + sum(lacing) > len(audio):
            return None
        begins = not audio[at + 5] & 1  # else the page's first segment goes on a packet
        for size in lacing:
            if begins:
                number = packets.get(serial, 0)
                packets[serial] = number + 1
                if number == 0 and not audio.startswith(b"OpusHead", start):
                    return None
                if number == 0:
                    pre_skips[serial] = int.from_bytes(audio[start + 10 : start + 12], "little")
                if number >= 2 and size:  # after the OpusHead and OpusTags headers
                    ms += _packet_ms(audio[start : start + 2])
            start += size
            begins = size < 255
        granule = int.from_bytes(audio[at + 6 : at + 14], "little")
        if granule != _NO_GRANULE and serial in pre_skips:
            # The largest claim of any page: a well-formed stream's last page states it.
            claimed_s = max(claimed_s, (granule - pre_skips[serial]) / _GRANULE_RATE)
        if max(ms / 1000, claimed_s) > stop_past_s:
            break
        at = start
    return max(ms / 1000, claimed_s) if packets else None


def _packet_ms(head: bytes) -> float:
    toc = head[0]
    frames = (1, 2, 2, head[1] & 0x3F if len(head) > 1 else 0)[toc & 3]
    return _FRAME_MS[toc >> 3] * frames
