"""Recordings as text: the model cannot hear, so Amazon Transcribe writes down what each voice
message, round video message, video or audio file says (a batch job on the staged file), and
the turn reads that.

A job is named after the staged file, so a retried record finds the job its first try
started (StartTranscriptionJob answers ConflictException) instead of paying for a second.
Its transcript is kept by the recording's file (Telegram's ``file_unique_id``) within the
session's prefix, so every later reply to that recording reads it and pays nothing.
The recordings of one turn (a forward of several) are written down at once; one not written
down (too long, empty, in a format not heard, nothing made of it, Transcribe refusing the job for
good or failing it for the setup's sake: the operator's to fix, reported as a configuration
error) is named with why in the prompt, and refuses the turn only when the turn has nothing
else. A job Transcribe fails on its own fault is started again on the record's next try. A
stop of the turn ends the wait for the jobs, which go on: Transcribe has no call to cancel one
and refuses to delete one IN_PROGRESS (BadRequestException); its transcript is kept for a later
reply to the recording.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec
from botocore.exceptions import BotoCoreError, ClientError
from session_core import (
    MISSING_OBJECT_CODES,
    StagedAttachment,
    StorageError,
    aws_error_code,
    get_logger,
    report_config_problem,
)
from telegram_core import RECORDING_WORDS, Attachment, InboundMessage, unsupported_notice

from ._audio_length import audio_heard
from ._config import ConsumerConfig
from ._errors import DeferredError
from ._job_failure import job_failure

log = get_logger(__name__)

# Amazon Transcribe bills by the second; a recording is rarely more than a few minutes.
MAX_VOICE_SECONDS = 600
_POLL_S = 1.0
_WAIT_S = 180.0  # short messages take seconds to a minute; past this the user is told
# Telegram's file_unique_id: kept as a file name only when it is one.
_FILE_UNIQUE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Transcribe's 4xx answers that pass (its quota of jobs at once, throttling; credentials that
# expired as the Lambda role's rotate, fresh on the next try): retried, as a 5xx is. Any other
# (AccessDenied, BadRequest: it may not read the bucket) is the operator's to fix.
_PASSING_CODES = frozenset(
    {
        "LimitExceededException",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestTimeout",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)


def voice_transcriber(config: ConsumerConfig, s3: Any) -> VoiceTranscriber | None:
    """The consumer's transcriber of recordings (``s3``: where they are staged); None while
    VOICE_TRANSCRIPTION is off."""
    if config.voice_language is None:
        return None
    import boto3  # only where recordings are transcribed

    return VoiceTranscriber(
        transcribe=boto3.client("transcribe"),
        s3=s3,
        bucket=config.bucket,
        language=config.voice_language,
        tenant=config.tenant,
    )


class HeardRecording(NamedTuple):
    """One recording of a turn's message for its prompt: ``what`` it is (RECORDING_WORDS), the
    name of its file, and what it says or why it was not written down."""

    what: str
    file_name: str
    said: str | Unheard


class TranscriptionStopped(Exception):
    """The turn was stopped (Stop) while its recordings were written down: nothing of it goes
    to the agent."""


class VoiceNotTranscribed(Exception):
    """A recording that could not be written down: ``notice`` tells the user why."""

    def __init__(self, notice: str) -> None:
        super().__init__(notice)
        self.notice = notice


@dataclass(frozen=True)
class Unheard:
    """A recording not written down: ``why``, as the agent is told it; ``notice``, as the user
    is told it when the turn holds nothing else ("{what}": the recording, as RECORDING_WORDS
    names it)."""

    why: str
    notice: str

    def told(self, what: str) -> str:
        return self.notice.format(what=what)


@dataclass
class VoiceTranscriber:
    """``transcribe``: a boto3 Transcribe client; ``language``: "auto" (identified per
    message) or a language code (VOICE_TRANSCRIPTION); the audio and its transcript stay in
    ``bucket`` beside the staged file; ``tenant``: whose configuration-error metric counts a
    refusal of Transcribe's."""

    transcribe: Any
    s3: Any
    bucket: str
    language: str
    tenant: str = "default"
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def transcripts(
        self,
        voices: Sequence[tuple[Attachment, StagedAttachment]],
        *,
        prefix: str,
        wait_s: float,
        stopped: Callable[[], bool] = lambda: False,
    ) -> list[str | Unheard]:
        """What each staged recording says, in order, or why it was not written down (too
        long, empty, in a format not heard: no job is started for it; nothing could be made of it;
        Transcribe refused it or failed it for the setup's sake: reported to the operator).
        One written down before (``prefix``: the session's) is read, not paid for again; every
        other job is started before any is waited for (each takes its time at Amazon
        Transcribe), then all are waited for together, up to _WAIT_S. ``wait_s``: how long the
        invocation may wait and still leave the turn its time; past it, DeferredError (the
        jobs go on: the record's next try finds them by name). ``stopped``: whether the turn
        was stopped, asked before any job is started and at each look at them (one request
        a second, as the runtime asks once it runs): TranscriptionStopped then."""
        outputs = [_transcript_key(prefix, att, voice, self.language) for att, voice in voices]
        said: dict[str, str | Unheard] = {}  # by where the transcript lies
        for output_key in dict.fromkeys(outputs):  # the same file twice (a forward) is read once
            said.update(self._written(output_key))
        todo: dict[str, StagedAttachment] = {}  # where a transcript goes: one recording of it
        for (_, voice), output_key in zip(voices, outputs, strict=True):
            if output_key not in said:
                todo.setdefault(output_key, voice)  # the same file twice (a forward) is paid once
        media_formats: dict[str, str] = {}
        for output_key, voice in todo.items():  # each before any is paid for
            media_format = self._media_format(voice)
            if isinstance(media_format, Unheard):
                said[output_key] = media_format
            else:
                media_formats[output_key] = media_format
        if media_formats and stopped():  # stopped while the recordings were fetched: none is paid
            raise TranscriptionStopped
        jobs: dict[str, str] = {}  # job name: where its transcript goes
        for output_key, voice in todo.items():
            if output_key in said:
                continue
            job_of = (
                f"{self.bucket}/{voice.s3_key}/{self.language}"  # a retry finds it; another language does not
            )
            name = "voice-" + hashlib.sha256(job_of.encode()).hexdigest()[:48]
            try:
                self._start(name, voice, output_key, media_formats[output_key])
            except _Refused as refused:
                said[output_key] = self._reported(refused.reason)
                continue
            jobs[name] = output_key
        give_up_at = self.clock() + min(wait_s, _WAIT_S)
        while True:
            for name, output_key in jobs.items():
                if output_key not in said:
                    said.update(self._look(name, output_key))
            if all(key in said for key in outputs):
                return [said[key] for key in outputs]
            if self.clock() >= give_up_at:
                waiting = sum(1 for key in jobs.values() if key not in said)
                if wait_s < _WAIT_S:
                    log.info("voice.transcription_deferred", waiting=waiting)
                    raise DeferredError("out_of_time", "the invocation's time ran out waiting for Transcribe")
                log.warning("voice.transcription_slow", waiting=waiting)
                slow = next(att for (att, _), key in zip(voices, outputs, strict=True) if key not in said)
                raise VoiceNotTranscribed(
                    f"Sorry, writing down the {RECORDING_WORDS[slow.medium]} is taking too long. "
                    "Please try again or type it."
                )
            if stopped():
                log.info(
                    "voice.transcription_stopped", waiting=sum(1 for key in jobs.values() if key not in said)
                )
                raise TranscriptionStopped
            self.sleep(_POLL_S)

    def _media_format(self, voice: StagedAttachment) -> str | Unheard:
        """The format Transcribe is told of the staged recording, or why it is not sent there:
        longer than MAX_VOICE_SECONDS whatever length the message states (the sender's app's
        word, which check_voice had), empty (no bytes, or no audio in its format: a job would
        be paid for and fail), or in a format not heard."""
        try:
            audio = self.s3.get_object(Bucket=self.bucket, Key=voice.s3_key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise StorageError("transcribe.audio", f"S3 GetObject {voice.s3_key}: {exc}") from exc
        if not audio:
            return EMPTY
        # A second of slack: what a recording states is rounded, and Opus adds its pre-skip.
        measured = audio_heard(audio, stop_past_s=MAX_VOICE_SECONDS + 1)
        if measured is None:
            return NOT_HEARD
        if measured.seconds <= 0:  # by its audio: a stated 0 s is a short one rounded down
            return EMPTY
        if measured.seconds > MAX_VOICE_SECONDS + 1:
            log.warning(
                "voice.too_long", plays_over_s=int(measured.seconds), media_format=measured.media_format
            )
            return TOO_LONG
        return measured.media_format

    def _written(
        self, output_key: str, *, not_kept_codes: frozenset[str] = MISSING_OBJECT_CODES
    ) -> dict[str, str | Unheard]:
        """{output_key: what was said} when a transcript lies there; {} when S3 answers one of
        ``not_kept_codes`` (any other failure is a StorageError)."""
        try:
            raw = self.s3.get_object(Bucket=self.bucket, Key=output_key)["Body"].read()
        except ClientError as exc:
            if aws_error_code(exc) in not_kept_codes:
                return {}
            raise StorageError("transcribe.transcript", f"S3 GetObject {output_key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError("transcribe.transcript", f"S3 GetObject {output_key}: {exc}") from exc
        return {output_key: _said(raw, output_key)}

    def _look(self, name: str, output_key: str) -> dict[str, str | Unheard]:
        """{output_key: what was said} once the job is done; {} while it runs."""
        try:
            job = self.transcribe.get_transcription_job(TranscriptionJobName=name)["TranscriptionJob"]
        except ClientError as exc:
            if _refused_for_good(exc):
                refused = _Refused("GetTranscriptionJob", aws_error_code(exc))
                return {output_key: self._reported(refused.reason)}
            raise StorageError("transcribe.GetTranscriptionJob", str(exc)[:300]) from exc
        except BotoCoreError as exc:
            raise StorageError("transcribe.GetTranscriptionJob", str(exc)[:300]) from exc
        status = job.get("TranscriptionJobStatus")
        if status == "COMPLETED":
            return self._written(output_key, not_kept_codes=frozenset())  # the job wrote it
        if status == "FAILED":
            return {output_key: self._failed(name, output_key, str(job.get("FailureReason") or "")[:300])}
        return {}

    def _failed(self, name: str, output_key: str, reason: str) -> Unheard:
        """Why a FAILED job's recording is not written down, by whose the failure is: the
        recording's is kept (a later reply starts no job to fail again); the setup's, or one
        not known, is reported and nothing is kept, so it is heard once fixed; Transcribe's own
        is a StorageError (retried), its job deleted first, or the retry would find it by name."""
        failure = job_failure(reason)
        log.warning("voice.transcription_failed", reason=reason, failure=failure)
        if failure == "recording":
            self._keep_no_words(output_key)
            return NO_WORDS
        if failure == "passing":
            try:
                self._delete(name)
            except _Refused as refused:
                return self._reported(refused.reason)
            raise StorageError("transcribe.TranscriptionJob", f"Amazon Transcribe failed a job: {reason}")
        return self._reported(f"Amazon Transcribe failed a job: {reason}")

    def _delete(self, name: str) -> None:
        try:
            self.transcribe.delete_transcription_job(TranscriptionJobName=name)
        except ClientError as exc:
            if _refused_for_good(exc):
                raise _Refused("DeleteTranscriptionJob", aws_error_code(exc)) from exc
            raise StorageError("transcribe.DeleteTranscriptionJob", str(exc)[:300]) from exc
        except BotoCoreError as exc:
            raise StorageError("transcribe.DeleteTranscriptionJob", str(exc)[:300]) from exc

    def _keep_no_words(self, output_key: str) -> None:
        """Keep, where the transcript would lie, that nothing could be made of the recording
        (a failed job writes nothing): a later reply to it reads that and starts no
        job, which would fail again and be paid again."""
        try:
            self.s3.put_object(Bucket=self.bucket, Key=output_key, Body=_NO_WORDS)
        except (ClientError, BotoCoreError) as exc:  # the next reply only tries again
            log.warning("voice.no_words_not_kept", error=str(exc)[:200])

    def _start(self, name: str, voice: StagedAttachment, output_key: str, media_format: str) -> None:
        request: dict[str, Any] = {
            "TranscriptionJobName": name,
            "Media": {"MediaFileUri": f"s3://{self.bucket}/{voice.s3_key}"},
            "MediaFormat": media_format,
            "OutputBucketName": self.bucket,
            "OutputKey": output_key,
        }
        if self.language == "auto":
            request["IdentifyLanguage"] = True
        else:
            request["LanguageCode"] = self.language
        try:
            self.transcribe.start_transcription_job(**request)
        except ClientError as exc:
            if aws_error_code(exc) == "ConflictException":  # started by an earlier try of this record
                return
            if _refused_for_good(exc):
                raise _Refused("StartTranscriptionJob", aws_error_code(exc)) from exc
            raise StorageError("transcribe.StartTranscriptionJob", str(exc)[:300]) from exc
        except BotoCoreError as exc:
            raise StorageError("transcribe.StartTranscriptionJob", str(exc)[:300]) from exc

    def _reported(self, reason: str) -> Unheard:
        """Tell the operator (the configuration-error alarm) why Transcribe writes nothing down
        (it refuses the consumer's calls, or fails its jobs for the setup's sake); the
        recording is not written down, and nothing is kept of it, so it is heard again once
        that is fixed."""
        report_config_problem(
            "VoiceTranscription (VOICE_TRANSCRIPTION)",
            reason,
            tenant=self.tenant,
            remedy=(
                "let the consumer's role call Amazon Transcribe and Transcribe read the bucket "
                "(its KMS key too), or set VoiceTranscription to off"
            ),
        )
        return REFUSED


class _Refused(Exception):
    """Transcribe refused ``operation`` with ``code``, which no later try cures."""

    def __init__(self, operation: str, code: str) -> None:
        super().__init__(f"{operation}: {code}")
        self.operation = operation
        self.code = code

    @property
    def reason(self) -> str:
        """What the operator is told."""
        return f"Amazon Transcribe refuses {self.operation}: {self.code}"


def _refused_for_good(exc: ClientError) -> bool:
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 400 <= status < 500 and aws_error_code(exc) not in _PASSING_CODES


def _said(raw: bytes, output_key: str) -> str | Unheard:
    """What a transcript object says (NO_WORDS: nothing)."""
    try:
        said = msgspec.json.decode(raw, type=_Output).results.transcripts
    except msgspec.DecodeError as exc:
        raise StorageError("transcribe.transcript", f"{output_key} is not a transcript: {exc}") from exc
    return " ".join(part.transcript.strip() for part in said).strip() or NO_WORDS


def _transcript_key(prefix: str, att: Attachment, voice: StagedAttachment, language: str) -> str:
    """Where a recording's transcript lies: by its file within the session (``prefix``), so
    each reply to it finds the same; beside the staged file without a usable file id. Per
    ``language`` (VOICE_TRANSCRIPTION): one written down in the language it was set to before
    (often the reason it was changed) is not read again."""
    if _FILE_UNIQUE_ID.fullmatch(att.file_unique_id):
        return f"{prefix}voice/{att.file_unique_id}.{language}.transcript.json"
    return f"{voice.s3_key}.{language}.transcript.json"


NO_WORDS = Unheard(
    why="no words could be made out of it",
    notice="Sorry, I could not make out any words in the {what}. Please try again or type it.",
)
EMPTY = Unheard(
    why="it is empty (no audio at all), so it was not written down",
    notice="Sorry, the {what} is empty: there is nothing in it to listen to.",
)
NOT_HEARD = Unheard(
    why=(
        "its audio is in a format I cannot listen to (Ogg Opus, MP3, MP4 and M4A are heard), "
        "so it was not written down"
    ),
    notice=(
        "Sorry, I cannot listen to this {what}'s audio: I hear Ogg Opus, MP3, MP4 and M4A. "
        "Please record it in Telegram or type it."
    ),
)
TOO_LONG = Unheard(
    why=f"it plays longer than {MAX_VOICE_SECONDS // 60} minutes, so it was not written down",
    notice=(
        f"Sorry, the {{what}} is too long for me: I can listen to up to "
        f"{MAX_VOICE_SECONDS // 60} minutes. Please send a shorter one or type it."
    ),
)
REFUSED = Unheard(
    why="the transcription service refused it, so it was not written down",
    notice=(
        "Sorry, I cannot have the {what} written down right now; the operator has been told. Please type it."
    ),
)


_NO_WORDS = b'{"results": {"transcripts": []}}'


class _Said(msgspec.Struct):
    transcript: str = ""


class _Results(msgspec.Struct):
    transcripts: list[_Said] = []


class _Output(msgspec.Struct):
    results: _Results


def check_voice(msg: InboundMessage, voices: VoiceTranscriber | None) -> None:
    """Refuse, before anything is downloaded, a recording where none is transcribed (the
    producer's VOICE_TRANSCRIPTION differs from the consumer's), or a message of nothing but
    recordings that say they play over MAX_VOICE_SECONDS. Beside a text or a file, such a
    recording is measured like any (what a message states is the sender's app's word) and,
    when too long, named to the agent: the rest is answered."""
    recordings = [att for att in msg.attachments if att.kind == "voice"]
    if recordings and voices is None:
        raise VoiceNotTranscribed(unsupported_notice(recordings[0].medium))
    too_long = [att for att in recordings if (att.duration_s or 0) > MAX_VOICE_SECONDS]
    if too_long and len(too_long) == len(msg.attachments) and not msg.text.strip():
        raise VoiceNotTranscribed(TOO_LONG.told(RECORDING_WORDS[too_long[0].medium]))


def hears_recordings(parts: tuple[InboundMessage, ...], voices: VoiceTranscriber | None) -> bool:
    """Whether the turn of ``parts`` has recordings written down before it runs."""
    return voices is not None and any(att.kind == "voice" for part in parts for att in part.attachments)


def transcripts_of(
    parts: tuple[InboundMessage, ...],
    staged: tuple[StagedAttachment, ...],
    voices: VoiceTranscriber | None,
    *,
    prefix: str,
    wait_s: float,
    stopped: Callable[[], bool],
) -> dict[int, list[HeardRecording]]:
    """What each recording among the ``parts``' attachments says, by its part's update_id, for
    ``prompt_of`` (``staged``: the parts' attachments as staged, in order); empty when there
    is none (``check_voice`` passed: ``voices`` is set when there is one). ``prefix``,
    ``wait_s``, ``stopped``: see ``VoiceTranscriber.transcripts``. VoiceNotTranscribed when the
    turn would have nothing but recordings none of which was written down."""
    if voices is None or not hears_recordings(parts, voices):
        return {}
    files = iter(staged)
    voices_of = {
        part.update_id: [
            (att, file) for att, file in zip(part.attachments, files, strict=False) if att.kind == "voice"
        ]
        for part in parts
    }
    all_voices = [pair for pairs in voices_of.values() for pair in pairs]
    said = voices.transcripts(all_voices, prefix=prefix, wait_s=wait_s, stopped=stopped)
    anything_else = any(
        part.text.strip() or any(att.kind != "voice" for att in part.attachments) for part in parts
    )
    unheard = [(att, why) for (att, _), why in zip(all_voices, said, strict=True) if isinstance(why, Unheard)]
    if not anything_else and len(unheard) == len(said):
        first, why = unheard[0]
        raise VoiceNotTranscribed(why.told(RECORDING_WORDS[first.medium]))
    heard = iter(said)
    return {
        update_id: [
            HeardRecording(RECORDING_WORDS[att.medium], file.file_name, next(heard)) for att, file in pairs
        ]
        for update_id, pairs in voices_of.items()
    }
