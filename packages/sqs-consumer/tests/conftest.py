"""Fixtures the consumer's tests share: a local Telegram Bot API server and an HTTP client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from local_stack import LocalTelegram


@pytest.fixture
def telegram() -> Iterator[LocalTelegram]:
    with LocalTelegram() as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client
