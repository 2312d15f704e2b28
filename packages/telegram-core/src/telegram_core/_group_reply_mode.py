"""GROUP_REPLY_MODE, as the producer (which group messages start a turn) and the consumer
(what /help tells a group) read it alike."""

from __future__ import annotations

from typing import Literal

from session_core import ConfigError

# "mention": a group message is answered when it mentions the bot, replies to it or is one of
# its commands; "always": every group message is.
GroupReplyMode = Literal["mention", "always"]


def group_reply_mode(raw: str) -> GroupReplyMode:
    """The setting GROUP_REPLY_MODE ("mention" when empty); ConfigError names it otherwise."""
    mode = raw.strip().lower() or "mention"
    if mode == "mention":
        return "mention"
    if mode == "always":
        return "always"
    raise ConfigError("GROUP_REPLY_MODE", f"must be 'mention' or 'always', got {mode!r}")
