"""What became of one message and of one SQS record, as closed sets of names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# How a message was answered: a turn's reply, a command's, "not supported yet", a refused
# attachment, the budget's refusal, the stop of one of the operator's limits on a turn (its cost
# cap, the agent's step limit, its time) before the run wrote anything, the runtime's for a
# history its memory (or the model's context) cannot hold, or for a message whose files with the
# conversation are too large for the model's API, or with the comment typed before it (messages
# forwarded with a comment).
MessageStatus = Literal[
    "replied",
    "command",
    "unsupported",
    "refused",
    "over_budget",
    "stopped_by_limit",
    "history_too_large",
    "request_too_large",
    "model_silent",
    "chat_moved",
    "answered_with_comment",
]
# What became of a record: answered (a MessageStatus), or handled without an answer
# ("chat_unreachable": the bot may no longer post in the chat, so the answer was dropped;
# "not_allowed": its sender was taken off the allow-list while it waited).
RecordStatus = Literal[
    MessageStatus, "dead_lettered", "requeued", "misconfigured", "chat_unreachable", "not_allowed", "retry"
]


@dataclass(frozen=True)
class RecordOutcome:
    """What became of one record: ``done`` (delete it) or to be retried, and why.

    ``retry_delay_s``: when not done, how long the record stays hidden before its retry.
    """

    done: bool
    status: RecordStatus
    retry_delay_s: int | None = None
