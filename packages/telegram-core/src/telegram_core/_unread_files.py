"""The line under a command's answer when the message that carried it (in its caption) carried
photos or files too: the producer's, for /stop, and the consumer's, for every other command."""

from __future__ import annotations

from collections.abc import Sequence

from ._envelope import Attachment


def unread_files_note(attachments: Sequence[Attachment], command: str, *, of_an_album: bool = False) -> str:
    """A command does only what it says, so ``attachments`` reached no turn: said, so that they
    are sent again. ``of_an_album``: they are one part of an album (the others, which Telegram
    sends apart, go unread with them)."""
    several = len(attachments) > 1 or of_an_album
    noun = ("photo" if all(a.kind == "photo" for a in attachments) else "file") + ("s" if several else "")
    them = "them" if several else "it"
    return f"(I did not look at the {noun} sent with /{command}: send {them} again without the command.)"
