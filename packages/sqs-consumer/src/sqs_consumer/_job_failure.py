"""Whose a FAILED Amazon Transcribe job is, read from its FailureReason (free text: Transcribe
gives no code). The recording's (its media, its length, no speech in it) is kept as such; the
setup's (Transcribe may not read the bucket or use its KMS key) is the operator's to fix; its
own internal failure passes. A reason none of these names is "unknown" (README: reported to
the operator like the setup's, so a new text is seen rather than kept as the recording's).
"""

from __future__ import annotations

from typing import Literal

JobFailure = Literal["recording", "setup", "passing", "unknown"]

# Fragments of Transcribe's texts, lower case, as its API reference and its answers give them.
_RECORDING = (
    "unsupported media format",
    "does not match the detected media format",
    "sample rate",
    "invalid file size",
    "number of channels",
    "media file length is too small",
    "speech segment long enough",  # no speech to identify the language of
    "data in your input media file isn't valid",
    "failed to parse audio file",
)
_SETUP = ("can't be accessed", "can't be written", "permission", "access denied", "kms")
_PASSING = ("internal failure", "internal error")


def job_failure(reason: str) -> JobFailure:
    """Whose the failure a job's ``reason`` (its FailureReason) tells is."""
    said = reason.lower()
    if any(part in said for part in _SETUP):  # checked first: such a text may name the media too
        return "setup"
    if any(part in said for part in _PASSING):
        return "passing"
    if any(part in said for part in _RECORDING):
        return "recording"
    return "unknown"
