"""A turn retried after the CLI compacted the history in the middle of its failed attempt: the
retry resumes at that compaction's summary (the CLI keeps nothing from before it), which was
written from a conversation that held the turn's message and the work done for it. The
message is sent again after it, and the agent is told it is the same one (decided: told,
rather than left out, since the summary only paraphrases it and any file it carried)."""

from __future__ import annotations

from ._prompt_marks import prompt_text

SUMMARISED_RETRY_NOTE = (
    "(From the bot, not the user: the summary above was written while you were answering "
    "the message below, and covers it and what you did for it; that answer broke off and "
    "never reached the user. This is the same message again, not a new one: carry on from "
    "where the summary ends and answer it once.)"
)


def carries_summarised_retry_note(content: object) -> bool:
    """Whether a stored prompt's content was sent with the note: a retry that failed too, whose
    own retry resumes at the same summary and needs it again."""
    return prompt_text(content).startswith(SUMMARISED_RETRY_NOTE)
