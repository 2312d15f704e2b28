"""Fixtures of the cross-package tests in this folder (`aws` comes from agentbot_testing's plugin)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def stack(aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The Telegram path on this machine (see agentbot_testing.telegram_stack), stopped after the test."""
    # Imported here: only the Telegram tests pay for importing the producer and consumer.
    from agentbot_testing.telegram_stack import telegram_stack

    with telegram_stack(aws, tmp_path, monkeypatch) as started:
        yield started
