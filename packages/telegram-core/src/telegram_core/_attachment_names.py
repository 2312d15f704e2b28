"""How the agent is told of a photo, file or recording attached to a turn, in the lines that
say whose it is: the replied message's (the producer's reply line) or the sender's own (the
consumer's line for files sent without a message)."""

from __future__ import annotations

from session_core import quoted_file_name

from ._envelope import RECORDING_WORDS, Attachment


def attachment_words(attachment: Attachment) -> str:
    """A recording or photo by its name (one the producer gives): the sender's own recording
    or photo may come too, and each is named so (a transcript's head line, the file in the
    workspace), so neither passes for the other author's. A document by the name its sender
    gave it, as the chat shows it, in quotes it cannot close (``session_core.quoted_file_name``)."""
    if attachment.kind == "document":
        name = quoted_file_name(attachment.file_name)
        return f"document “{name}”" if name else "document"
    kind = RECORDING_WORDS[attachment.medium] if attachment.kind == "voice" else "photo"
    return f"{kind} {attachment.file_name}"
