"""How much session history the runtime's memory can load.

The Claude Code CLI reads a resumed session's whole transcript into memory, and the store keeps
a copy too. ``bench/runtime_turn.py`` measured a turn's peak memory (runtime, CLI and tools
together) at ~340 MiB for a short session plus ~9 MiB per MB of transcript (1,230 MiB at
102 MB). A turn whose history needs more than the function's memory would be killed mid-run,
and again on every retry: it is refused instead, with a reason the user can act on (/new), and
from WARN_SHARE of the limit every answer says how close the history is. The limit keeps
HEADROOM of the memory spare: the model was measured on short turns, and a big tool output or
attachment adds to the peak.
"""

from __future__ import annotations

import math

from session_core import HistorySize

BASE_MIB = 340
MIB_PER_HISTORY_MB = 9
HEADROOM = 0.1
WARN_SHARE = 0.8
LAMBDA_MAX_MEMORY_MB = 10_240  # the most memory Lambda gives a function


def history_limit_bytes(memory_mb: int) -> int | None:
    """The most transcript bytes the runtime loads with ``memory_mb`` (None: not on Lambda)."""
    if memory_mb <= 0:
        return None
    return int(_limit_mb(memory_mb) * 1_000_000)


def history_size(history_bytes: int, memory_mb: int) -> HistorySize | None:
    """The history next to its limit once it reaches WARN_SHARE of it; None while it is well
    inside, for a new session (no history), or when the memory is unknown (``memory_mb`` 0:
    not on Lambda)."""
    if memory_mb <= 0 or history_bytes <= 0:
        return None
    limit_mb = _limit_mb(memory_mb)
    mb = history_bytes / 1_000_000
    if mb < WARN_SHARE * limit_mb:
        return None
    return HistorySize(mb=mb, limit_mb=limit_mb)


def memory_fix(history: HistorySize, memory_mb: int) -> str:
    """What gives a refused history back to its chat, for the operator's log line: the memory
    setting, and about how much the history needs (else the user's /new drops it)."""
    needed = math.ceil((BASE_MIB + MIB_PER_HISTORY_MB * history.mb) / (1 - HEADROOM))
    if needed > LAMBDA_MAX_MEMORY_MB:  # no setting helps: only /new
        return (
            f"none: this history needs more memory than Lambda's {LAMBDA_MAX_MEMORY_MB:,} MB maximum "
            f"(RuntimeMemoryMb, now {memory_mb} MB); the chat goes on only after /new"
        )
    return (
        f"RuntimeMemoryMb (AWS_LAMBDA_FUNCTION_MEMORY_SIZE, now {memory_mb} MB): "
        f"this history needs about {needed} MB; below that the chat goes on only after /new"
    )


def _limit_mb(memory_mb: int) -> float:
    return max(0.0, (memory_mb * (1 - HEADROOM) - BASE_MIB) / MIB_PER_HISTORY_MB)
