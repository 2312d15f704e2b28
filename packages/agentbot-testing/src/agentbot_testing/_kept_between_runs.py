"""Where tests keep what is slow to build and safe to reuse between runs (and checkouts)."""

from __future__ import annotations

import os
from pathlib import Path


def kept_dir(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/agentbot-tests/<parts>`` (``~/.cache`` without it): outside the temp
    dir, which a passing run removes, and outside the checkout, so a new clone finds it too."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache.joinpath("agentbot-tests", *parts)
