"""VOICE_TRANSCRIPTION's values, as the producer and the consumer read them alike."""

from __future__ import annotations

import re

from ._errors import ConfigError

# An Amazon Transcribe language code ("en-US", "de-DE", "zh-CN"): the voice messages' one language.
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}-[A-Z]{2}")


def voice_transcription(raw: str) -> str | None:
    """The setting VOICE_TRANSCRIPTION: None when voice messages are not transcribed ("off",
    the default, or empty), "auto" (Amazon Transcribe identifies each message's language) or
    a language code; ConfigError names the setting otherwise."""
    value = raw.strip() or "off"
    if value == "off":
        return None
    if value == "auto" or _LANGUAGE_CODE.fullmatch(value):
        return value
    raise ConfigError(
        "VOICE_TRANSCRIPTION", f"must be 'off', 'auto' or a language code such as 'en-US', got {value!r}"
    )
