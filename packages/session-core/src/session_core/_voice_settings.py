"""VOICE_TRANSCRIPTION's values, as the producer and the consumer read them alike."""

from __future__ import annotations

import functools

from ._errors import ConfigError


def voice_transcription(raw: str) -> str | None:
    """The setting VOICE_TRANSCRIPTION: None when recordings are not transcribed ("off",
    the default, or empty), "auto" (Amazon Transcribe identifies each message's language) or
    a language code Amazon Transcribe knows; ConfigError names the setting otherwise (a code
    of the right shape it does not know, "en-UK", would fail every recording)."""
    value = raw.strip() or "off"
    if value == "off":
        return None
    if value == "auto" or value in transcribe_language_codes():
        return value
    raise ConfigError(
        "VOICE_TRANSCRIPTION",
        f"must be 'off', 'auto' or a language code Amazon Transcribe knows "
        f"(en-US, en-GB, de-DE, …), got {value!r}",
    )


@functools.cache
def transcribe_language_codes() -> frozenset[str]:
    """The language codes a batch transcription job takes, as the installed botocore lists them."""
    import botocore.session  # only where a language code is set

    model = botocore.session.get_session().get_service_model("transcribe")
    shape = model.operation_model("StartTranscriptionJob").input_shape.members["LanguageCode"]
    return frozenset(shape.enum)
