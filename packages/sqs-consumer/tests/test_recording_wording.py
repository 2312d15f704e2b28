"""What a user reads about a round video message or an audio file is worded as Telegram's apps
name it, never as a voice message or by the Bot API's field name ("video note")."""

from __future__ import annotations

import io
from typing import Any

import pytest
from agentbot_testing.recordings import m4a_audio
from botocore.exceptions import ClientError
from session_core import StagedAttachment
from sqs_consumer._voice import VoiceNotTranscribed, VoiceTranscriber
from telegram_core import Attachment, unsupported_notice


class _S3:
    """The staged audio; no transcript kept yet."""

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        if Key.endswith(".transcript.json"):
            raise ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")
        return {"Body": io.BytesIO(m4a_audio("hello"))}


class _SlowTranscribe:
    """A job that never finishes."""

    def start_transcription_job(self, **_: Any) -> None:
        return None

    def get_transcription_job(self, **_: Any) -> dict[str, Any]:
        return {"TranscriptionJob": {"TranscriptionJobStatus": "IN_PROGRESS"}}


def test_a_slow_transcription_of_an_audio_file_names_the_audio_file() -> None:
    now = [0.0]

    def tick(seconds: float) -> None:
        now[0] += seconds * 60

    voices = VoiceTranscriber(
        transcribe=_SlowTranscribe(), s3=_S3(), bucket="b", language="auto", sleep=tick, clock=lambda: now[0]
    )
    audio = Attachment(
        kind="voice", medium="audio", file_id="f", file_unique_id="u1", file_name="audio-1.m4a"
    )
    staged = StagedAttachment(s3_key="p/files/audio-1.m4a", file_name="audio-1.m4a")
    with pytest.raises(VoiceNotTranscribed) as refused:
        voices.transcripts([(audio, staged)], prefix="p/", wait_s=900)
    assert refused.value.notice == (
        "Sorry, writing down the audio file is taking too long. Please try again or type it."
    )


@pytest.mark.parametrize(
    ("what", "notice"),
    [
        ("video_note", "Sorry, video messages are not supported yet. Send text, a photo or a document."),
        ("audio", "Sorry, audio files are not supported yet. Send text, a photo or a document."),
        ("voice", "Sorry, voice messages are not supported yet. Send text, a photo or a document."),
        ("video", "Sorry, videos are not supported yet. Send text, a photo or a document."),
    ],
)
def test_not_supported_yet_names_a_recording_as_the_apps_do(what: str, notice: str) -> None:
    assert unsupported_notice(what) == notice
