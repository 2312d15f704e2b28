"""The line under a command's answer when the message that carried it (in its caption) carried
photos or files too, or content the bot does not handle (a GIF): the producer's, for /stop,
and the consumer's, for every other command; and the names of such content."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ._envelope import RECORDING_WORDS, Attachment

# Recordings and GIFs as Telegram's apps name them to the user (the Bot API's "video_note" is a
# video message, its "animation" a GIF), in the plural.
_AS_THE_APPS_SAY: Mapping[str, str] = {
    **{medium: f"{word}s" for medium, word in RECORDING_WORDS.items()},
    "animation": "GIFs",
    "story": "stories",
}


# The same, one of them, as the agent is told it (a replied voice message, an album's video).
_ONE_AS_THE_APPS_SAY: Mapping[str, str] = {
    **{medium: word for medium, word in RECORDING_WORDS.items()},
    "animation": "GIF",
    "giveaway_winners": "giveaway winners post",
    "paid_media": "paid post",
}


def content_word(what: str) -> str:
    """Content the bot does not read (Telegram's name of it: ``video_note``, ``animation``)
    as the apps name one of it: "video message", "GIF"."""
    return _ONE_AS_THE_APPS_SAY.get(what) or what.replace("_", " ") or "message"


def unsupported_notice(what: str | None) -> str:
    """The answer to content the bot does not handle yet (``what``: Telegram's name of it)."""
    kinds = _AS_THE_APPS_SAY.get(what or "") or f"{(what or 'this kind of').replace('_', ' ')} messages"
    return f"Sorry, {kinds} are not supported yet. Send text, a photo or a document."


def unread_files_note(attachments: Sequence[Attachment], command: str, *, of_an_album: bool = False) -> str:
    """A command does only what it says, so ``attachments`` reached no turn: said, so that they
    are sent again. ``of_an_album``: they are one part of an album (the others, which Telegram
    sends apart, go unread with them); none, of an album: the part was content the bot does
    not read (a video), and the rest of its album went unread with it."""
    if of_an_album and not attachments:
        what, them = "the rest of the album", "it"
    else:
        several = len(attachments) > 1 or of_an_album
        noun = ("photo" if all(a.kind == "photo" for a in attachments) else "file") + ("s" if several else "")
        what, them = f"the {noun}", "them" if several else "it"
    return f"(I did not look at {what} sent with /{command}: send {them} again without the command.)"
