"""What a recording's audio is and how long it plays, from its bytes: the format Amazon
Transcribe is told (it bills by the second of audio), and the length that is checked against
MAX_VOICE_SECONDS before it is paid for. Telegram's voice messages are Ogg Opus (some apps
send MP3 or M4A), its round video messages and videos MP4, audio files mostly MP3 or M4A.
"""

from __future__ import annotations

from typing import NamedTuple

from ._mp3_length import mp3_seconds
from ._mp4_length import mp4_seconds
from ._opus_length import opus_seconds


class MeasuredAudio(NamedTuple):
    """A recording's format and how long it plays (or claims to), as measured from its bytes."""

    media_format: str  # Transcribe's MediaFormat
    seconds: float


def audio_heard(audio: bytes, *, stop_past_s: float) -> MeasuredAudio | None:
    """``audio``'s format and play length (counted only until past ``stop_past_s`` where the
    format allows); None when it is none of the formats heard, or broken."""
    if audio.startswith(b"OggS"):
        seconds = opus_seconds(audio, stop_past_s=stop_past_s)
        return None if seconds is None else MeasuredAudio("ogg", seconds)
    if audio[4:8] == b"ftyp":
        if audio[8:12] == b"qt  ":
            return None  # QuickTime: no MediaFormat of Transcribe's names it
        seconds = mp4_seconds(audio)
        # Transcribe names an audio-only MPEG-4 file (brand "M4A ") apart from a video.
        media_format = "m4a" if audio[8:12] == b"M4A " else "mp4"
        return None if seconds is None else MeasuredAudio(media_format, seconds)
    seconds = mp3_seconds(audio, stop_past_s=stop_past_s)
    return None if seconds is None else MeasuredAudio("mp3", seconds)
