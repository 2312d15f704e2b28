"""A scripted Amazon Transcribe on 127.0.0.1 for tests: batch transcription jobs of audio in S3.

It answers the two calls the consumer makes (JSON 1.1, ``X-Amz-Target``
``Transcribe.StartTranscriptionJob`` / ``Transcribe.GetTranscriptionJob``) as the service does:
a job reads its media from S3 (the local AWS endpoint), puts its transcript JSON at
``OutputBucketName``/``OutputKey`` and is COMPLETED at the ``looks_to_finish``-th look (2:
IN_PROGRESS at the first); a second job of the same name is a ConflictException, until
``DeleteTranscriptionJob`` removes the first. What was said comes from a *hearing* function of
the audio's bytes; None makes the job FAILED for want of speech, and ``fail_next`` makes the
next jobs FAILED with a FailureReason of the test's (Transcribe's own texts: the bucket it
cannot read, its internal failure). Every job is recorded, and every call in ``calls`` (the
action and the job's name, in order).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from ._loopback import LoopbackServer

__all__ = ["LocalTranscribe", "TranscriptionJob"]

Hearing = Callable[[bytes], "str | None"]

# Transcribe's FailureReason for a recording it hears no speech in (identifying its language).
NO_SPEECH = (
    "Your audio file must have a speech segment long enough in duration to perform automatic "
    "language identification. Provide an audio file with someone speaking for a longer period "
    "of time and try your request again."
)


@dataclass
class TranscriptionJob:
    """One job as started: its request, what it heard (None: nothing), why it fails (None: it
    does not), and how many times it was looked at."""

    request: dict[str, Any]
    transcript: str | None
    failure_reason: str | None = None
    looks: int = 0


class LocalTranscribe(LoopbackServer):
    """``s3``: a boto3 client of the local AWS endpoint the media and transcripts live in."""

    thread_name = "local-transcribe"

    def __init__(self, s3: Any, hearing: Hearing, *, looks_to_finish: int = 2, port: int = 0) -> None:
        super().__init__(port=port)
        self._s3 = s3
        self.hearing = hearing
        self.looks_to_finish = looks_to_finish
        self._lock = threading.Lock()
        self.jobs: dict[str, TranscriptionJob] = {}
        self.calls: list[tuple[str, str]] = []
        self._failing: list[str] = []

    def fail_next(self, reason: str, *, times: int = 1) -> None:
        """The next ``times`` jobs started end FAILED with ``reason`` as their FailureReason."""
        with self._lock:
            self._failing.extend([reason] * times)

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                action = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                status, answer = server.answer(action, body)
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        return Handler

    def answer(self, action: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = str(body.get("TranscriptionJobName", ""))
        with self._lock:
            self.calls.append((action, name))
        if action == "StartTranscriptionJob":
            return self._start(name, body)
        if action == "GetTranscriptionJob":
            with self._lock:
                job = self.jobs.get(name)
                if job is not None:
                    job.looks += 1
            if job is None:
                return 400, {"__type": "BadRequestException", "Message": f"job {name} not found"}
            return 200, {"TranscriptionJob": _described(name, job, self.looks_to_finish)}
        if action == "DeleteTranscriptionJob":
            with self._lock:
                if self.jobs.pop(name, None) is None:
                    return 400, {"__type": "BadRequestException", "Message": f"job {name} not found"}
            return 200, {}
        return 400, {"__type": "UnknownOperationException", "Message": action}

    def _start(self, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if name in self.jobs:
                return 400, {
                    "__type": "ConflictException",
                    "Message": "The requested job name already exists.",
                }
            bucket, _, key = str(body["Media"]["MediaFileUri"]).removeprefix("s3://").partition("/")
            audio = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            job = TranscriptionJob(request=body, transcript=self.hearing(audio))
            if self._failing:
                job.failure_reason = self._failing.pop(0)
            elif job.transcript is None:
                job.failure_reason = NO_SPEECH
            if job.failure_reason is None:
                output = {"jobName": name, "results": {"transcripts": [{"transcript": job.transcript}]}}
                self._s3.put_object(
                    Bucket=body["OutputBucketName"], Key=body["OutputKey"], Body=json.dumps(output).encode()
                )
            self.jobs[name] = job
        return 200, {"TranscriptionJob": _described(name, job, self.looks_to_finish)}


def _described(name: str, job: TranscriptionJob, looks_to_finish: int) -> dict[str, Any]:
    described: dict[str, Any] = {"TranscriptionJobName": name, "Media": job.request["Media"]}
    if job.looks < looks_to_finish:
        described["TranscriptionJobStatus"] = "IN_PROGRESS" if job.looks else "QUEUED"
    elif job.failure_reason is not None:
        described.update(TranscriptionJobStatus="FAILED", FailureReason=job.failure_reason)
    else:
        uri = f"https://s3.amazonaws.com/{job.request['OutputBucketName']}/{job.request['OutputKey']}"
        described.update(TranscriptionJobStatus="COMPLETED", Transcript={"TranscriptFileUri": uri})
    return described
