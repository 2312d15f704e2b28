"""Fixtures of the cross-package tests in this folder (`aws` comes from agentbot_testing's plugin)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def agent_tmp_path() -> Iterator[Path]:
    """A fresh directory for what `agentbot dev`'s agent (``nobody`` when started as root) must
    reach while it runs, e.g. a --state-dir: in /tmp itself, not under pytest's basetemp, which
    another pytest session starting on this machine makes 0700 again (its own safety check),
    cutting a running agent off from its state. Root's and 0700 like ``tmp_path``: dev makes it
    passable as it does any directory. Removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="agentbot-dev-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def stack(aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The Telegram path on this machine (see agentbot_testing.telegram_stack), stopped after the test."""
    # Imported here: only the Telegram tests pay for importing the producer and consumer.
    from agentbot_testing.telegram_stack import telegram_stack

    with telegram_stack(aws, tmp_path, monkeypatch) as started:
        yield started


@pytest.fixture
def transcribe(aws: Any) -> Iterator[Any]:
    """A scripted Amazon Transcribe on 127.0.0.1 that hears what the test recordings say."""
    from agentbot_testing.recordings import said_in
    from local_stack import LocalTranscribe

    with LocalTranscribe(aws.s3, said_in) as service:
        yield service


@pytest.fixture
def voice_stack(aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transcribe: Any) -> Iterator[Any]:
    """``stack`` with recordings transcribed (VOICE_TRANSCRIPTION=auto) by ``transcribe``."""
    from agentbot_testing.telegram_stack import telegram_stack

    monkeypatch.setenv("VOICE_TRANSCRIPTION", "auto")
    monkeypatch.setenv("AWS_ENDPOINT_URL_TRANSCRIBE", transcribe.base_url)
    with telegram_stack(aws, tmp_path, monkeypatch) as started:
        yield started
