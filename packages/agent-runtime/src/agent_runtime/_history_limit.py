"""How much session history the runtime's memory can load.

A turn's peak memory (runtime, CLI and tools together) is ~340 MiB for a short session, plus
what the history costs on two sides, measured by ``bench/runtime_turn.py``:

* the CLI reads only what follows the transcript's last compaction (its compact boundary):
  before one, the whole transcript (1,230 MiB at 102 MB uncompacted); the runtime's model proxy
  carries the same conversation in every request. ~7 MiB per MB of what the CLI loads;
* the runtime keeps the whole transcript as stored (its copy to restore and mirror from):
  ~1.2 MiB per MB measured (457 MiB peak at 102 MB compacted, 391 at 30.5 MB); 2 is counted.

So a compacted chat keeps going far past an uncompacted one: 500 MB (MOST_HISTORY_MB) against
167 MB at 2048 MB (RuntimeMemoryMb's default), 290 MB against 65 MB at 1024 MB.
A turn whose history needs more than the function's memory would be killed mid-run, and again
on every retry: it is refused instead, with a reason the user can act on (/new), and from
WARN_SHARE of the limit every answer says how close the history is. The limit keeps HEADROOM
of the memory spare: the model was measured on short turns, and a big tool output or
attachment adds to the peak.

The CLI compacts only when the model's context fills, and a transcript can outgrow the memory
with few tokens (every photo the agent reads is kept as base64, twice). So from WARN_SHARE of
an uncompacted history's limit on, the runtime has the CLI compact first (``compact_first``,
``_compact_ahead``): the compaction loads the whole history too, so it must run while it fits.
"""

from __future__ import annotations

import math

from session_core import HistorySize

BASE_MIB = 340
CLI_MIB_PER_LOADED_MB = 7  # per MB the CLI loads (after the last compaction)
RUNTIME_MIB_PER_MB = 2  # per MB of the whole stored transcript
MIB_PER_HISTORY_MB = CLI_MIB_PER_LOADED_MB + RUNTIME_MIB_PER_MB  # a history never compacted
HEADROOM = 0.1
WARN_SHARE = 0.8
# The most transcript /tmp holds, whatever the memory: Lambda's 2,048 MB (EphemeralStorage in
# infra/template.yaml) hold the CLI's copy (~400 MB), the turn's files (SESSION_DISK_LIMIT_MB,
# 512) and the transcript twice while a restore or a clean turn's rewrite replaces it.
MOST_HISTORY_MB = 500


def history_limit_bytes(memory_mb: int) -> int | None:
    """The most transcript bytes the runtime downloads with ``memory_mb``: those of a history
    whose last compaction left the CLI next to nothing to load (None: not on Lambda)."""
    if memory_mb <= 0:
        return None
    return int(min(_spare_mib(memory_mb) / RUNTIME_MIB_PER_MB, MOST_HISTORY_MB) * 1_000_000)


def history_size(
    history_bytes: int, memory_mb: int, *, loaded_bytes: int | None = None, read: bool = True
) -> HistorySize | None:
    """The history next to its limit once it reaches WARN_SHARE of it; None while it is well
    inside, for a new session (no history), or when the memory is unknown (``memory_mb`` 0:
    not on Lambda). ``loaded_bytes``: what of it the CLI loads (from the last compaction on);
    None: all of it. The limit is the whole history's, with the CLI loading as much as now.
    ``read`` False: the history was not downloaded (past what the runtime keeps even
    compacted), so what the CLI would load of it is unknown (``loaded_mb`` None)."""
    if memory_mb <= 0 or history_bytes <= 0:
        return None
    mb = history_bytes / 1_000_000
    loaded_mb = mb if loaded_bytes is None else min(mb, loaded_bytes / 1_000_000)
    if loaded_mb >= mb:  # never compacted: the CLI's share grows with it
        limit_mb = _spare_mib(memory_mb) / MIB_PER_HISTORY_MB
    else:
        limit_mb = max(0.0, (_spare_mib(memory_mb) - CLI_MIB_PER_LOADED_MB * loaded_mb) / RUNTIME_MIB_PER_MB)
    limit_mb = min(limit_mb, MOST_HISTORY_MB)
    if mb < WARN_SHARE * limit_mb:
        return None
    return HistorySize(mb=mb, limit_mb=limit_mb, loaded_mb=loaded_mb if read else None)


def compact_first(
    history: HistorySize | None, memory_mb: int, *, loaded_bytes: int | None, resumes_at_end: bool
) -> bool:
    """Whether the CLI compacts the conversation before the turn: what it loads (``loaded_bytes``,
    from the last compaction on; None: not restored locally, or too small to be looked for)
    has reached WARN_SHARE of the limit of a history never compacted, and still loads
    (``history`` not too large). Only for a turn that resumes at the transcript's end
    (``resumes_at_end``): a retry that resumes before its failed attempt is left alone."""
    if memory_mb <= 0 or loaded_bytes is None or not resumes_at_end:
        return False
    if history is not None and history.too_large:
        return False
    return loaded_bytes / 1_000_000 >= WARN_SHARE * _spare_mib(memory_mb) / MIB_PER_HISTORY_MB


def memory_fix(history: HistorySize, memory_mb: int) -> str:
    """What gives a refused history back to its chat, for the operator's log line: the memory
    setting, and about how much the history needs (else the user's /new drops it). Not knowing
    what of it the CLI loads (``loaded_mb`` None: not downloaded), both ends: compacted lately
    (the CLI loads next to nothing) and never (it loads all). Under MOST_HISTORY_MB both stay
    below Lambda's 10,240 MB maximum; past it no setting helps."""
    if history.mb > MOST_HISTORY_MB:
        return (
            f"none: past the {MOST_HISTORY_MB} MB of transcript Lambda's /tmp holds beside a turn's "
            f"files, whatever RuntimeMemoryMb (now {memory_mb} MB); the chat goes on only after /new"
        )
    setting = f"RuntimeMemoryMb (AWS_LAMBDA_FUNCTION_MEMORY_SIZE, now {memory_mb} MB)"
    if history.loaded_mb is not None:
        needs = f"about {_needed_mb(history.mb, history.loaded_mb)} MB"
    else:
        compacted, never = _needed_mb(history.mb, 0.0), _needed_mb(history.mb, history.mb)
        needs = f"about {compacted} MB if the CLI compacted it lately, {never} MB if it never did"
    return f"{setting}: this history needs {needs}; below that the chat goes on only after /new"


def _needed_mb(history_mb: float, loaded_mb: float) -> int:
    """The function memory a history needs, the CLI loading ``loaded_mb`` of it."""
    peak = BASE_MIB + RUNTIME_MIB_PER_MB * history_mb + CLI_MIB_PER_LOADED_MB * loaded_mb
    return math.ceil(peak / (1 - HEADROOM))


def _spare_mib(memory_mb: int) -> float:
    """The memory a history may take: the function's, less HEADROOM and the base."""
    return max(0.0, memory_mb * (1 - HEADROOM) - BASE_MIB)
