"""Fixtures shared by the cross-package tests in this folder (the root conftest.py gives `aws`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).parent


@pytest.fixture
def stack(aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The Telegram path on this machine (see telegram_stack.py), stopped after the test."""
    # Imported here: only the Telegram tests pay for starting the stack's packages.
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))
    from telegram_stack import telegram_stack

    with telegram_stack(aws, tmp_path, monkeypatch) as started:
        yield started
