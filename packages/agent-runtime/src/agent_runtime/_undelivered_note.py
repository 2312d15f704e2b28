"""The files of the last answer that never reached the user, and its text when that did not
either (see session-core's ``_undelivered_files``): the next turn's agent is told of them
before the user's message, one line per file, so that "where is the file?" is not answered
with "I sent it", nor "as I said" by an agent whose answer was never read (decided: told
once, on the next turn, by name and reason only; a lost text in one sentence, not quoted).
Names are quoted as JSON: a name the agent or a tool chose cannot end the note or write one of
its own."""

from __future__ import annotations

import json
from collections.abc import Mapping

from session_core import UndeliveredFiles, UnsentReason, file_size_text

from ._outbox import MAX_FILE_BYTES, MAX_FILES

_REASONS: Mapping[UnsentReason, str] = {
    "too_large": f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB, the most the chat takes from a bot",
    "too_many": f"past the {MAX_FILES} files one answer may send",
    "not_a_file": "not a regular file (a link or a device)",
    "folder": "a folder: only files directly in outbox/ are sent (zip it)",
    "empty": "empty: no empty file is sent",
    "failed": "it could not be prepared or uploaded",
    "unfinished": "still being written when your answer ended",
    "unconfirmed": "the upload went out but Telegram did not confirm it: it may not have arrived",
    "not_allowed": "the chat's permissions do not let the bot send files there",
    "refused": "Telegram refused it (it would not take this file from the bot)",
    "refused_too_large": (
        "Telegram refused it as too large "
        f"(a bot may send files of up to {MAX_FILE_BYTES // (1024 * 1024)} MB)"
    ),
}
_START = (
    "(From the bot, not the user: these files you put in outbox/ for your previous answer did "
    "not reach the user, whatever that answer said:"
)
_END = "If the user asks about them, say which did not arrive and why; do not say they were sent.)"
_TEXT_LOST = (
    "(From the bot, not the user: your previous answer could not be sent to the user, or not all "
    "of it: do not assume they read it."
)
_FILES_TOO = "These files you put in outbox/ for it did not reach them either:"


def undelivered_files_note(undelivered: UndeliveredFiles) -> str:
    """The note for the agent naming each undelivered file with why, and how many more, after
    a line saying its answer's text was lost too when it was."""
    if undelivered.text_lost and not (undelivered.files or undelivered.more):
        return f"{_TEXT_LOST})"
    lines = [f"{_TEXT_LOST} {_FILES_TOO}" if undelivered.text_lost else _START]
    for file in undelivered.files:
        size = "" if file.size is None else f" ({file_size_text(file.size)})"
        lines.append(f"- {json.dumps(file.file_name, ensure_ascii=False)}{size}: {_REASONS[file.reason]}")
    if undelivered.more:
        lines.append(f"- and {undelivered.more} more")
    lines.append(_END)
    return "\n".join(lines)
