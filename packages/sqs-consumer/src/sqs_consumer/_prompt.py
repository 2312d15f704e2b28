"""What the agent is asked for a message (never shown to the user)."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence

from session_core import counted
from telegram_core import RECORDING_WORDS, InboundMessage, attachment_words, content_word

from ._attachments import NotFetched
from ._errors import AttachmentTooLargeError
from ._voice import HeardRecording, Unheard
from ._wording import shown_among

# The prompt of a turn whose message is only files.
FILE_ONLY_PROMPT = "The user sent the attached file(s) without a message."
# Where several people talk to one session, the agent is told who says what.
_SHARED_CHATS = ("group", "supergroup")
# A display name is the sender's to choose: it must not open a line or close the bracket.
_NOT_IN_A_NAME = re.compile(r"[\[\]\r\n\u2028\u2029]+")
# The lines before a message's text that say who sent it and what it refers to; a line of the
# text that reads like one is escaped, so nobody speaks as another member or as the bot.
# Matched on the line's NFKC form (full-width letters and brackets read as their ASCII), with
# the brackets NFKC leaves alone that look like one (U+3010, U+3014, U+27E6, U+301A). A
# recording's head line names it by RECORDING_WORDS, so every word there is matched. So is a
# line opening as the runtime's notes to the agent do ("(From the bot, not the user: …"): the
# runtime carries such a paragraph of a failed turn's prompt over to the next message as its own.
_LIKE_A_HEAD_LINE = re.compile(
    "\\s*(?:[\\[\u3010\u3014\u27e6\u301a]\\s*"
    f"(?:from|in reply to|forwarded from|{'|'.join(map(re.escape, RECORDING_WORDS.values()))})"
    "|\\(\\s*from\\s+the\\s+bot)\\b",
    re.IGNORECASE,
)

# What a part's recordings said (or why each was not written down), by the part's update_id.
Heard = Mapping[int, Sequence[HeardRecording]]


def prompt_of(
    msg: InboundMessage,
    *,
    staged: bool,
    parts: tuple[InboundMessage, ...] = (),
    heard: Heard | None = None,
    not_fetched: Sequence[NotFetched] = (),
) -> str:
    """Who sent the message (in a group), what it refers to (its ``context``: the message it
    replies to, where it was forwarded from), then its text; ``staged``: files came with it
    (files alone say so). Empty for a message with nothing to say (a button press's turn).

    ``parts``: the messages ``msg`` joins (an album, a forward of several): when they refer to
    different things (forwarded from different chats), each part's text comes after what it
    refers to, said again only where that changes. ``heard``: what the parts' recordings
    said, each after its part's text under a head line of its own (typed text cannot pose as
    one: it is escaped). ``not_fetched``: the message's files the bot could not get (never
    said to be attached)."""
    if len({part.context for part in parts}) > 1:
        blocks, said_before = [], None
        for part in parts:
            context = part.context if part.context != said_before else ""
            said_before = part.context
            blocks.append("\n\n".join(line for line in (context, _said(part, heard)) if line))
        return "\n\n".join(block for block in (_sender_line(msg), *blocks) if block)
    said = (
        "\n\n".join(t for t in (_said(part, heard) for part in parts) if t) if heard else _escaped(msg.text)
    )
    own = said or (_files_only(msg, not_fetched) if staged else "")
    if not (own or msg.context):
        return ""
    head = "\n".join(part for part in (_sender_line(msg), msg.context) if part)
    return "\n\n".join(part for part in (head, own) if part)


def _files_only(msg: InboundMessage, not_fetched: Sequence[NotFetched]) -> str:
    """What the agent is told of a message that is files alone. Beside a reply line (which
    names the replied message's file) the sender's own are named: "the attached file(s)"
    would be both, and nothing said which was the user's. Only those fetched: one said to be
    attached that is not, the replied message's file passes for the user's."""
    if not msg.context:
        return FILE_ONLY_PROMPT
    # The sender's own come first among the message's files, as NotFetched.index counts them.
    left_out = {nf.index for nf in not_fetched}
    own = [attachment_words(att) for i, att in enumerate(msg.own_attachments) if i not in left_out]
    if not own:
        return ""  # only the replied message's: the reply line says so
    named = own[0] if len(own) == 1 else f"{', '.join(own[:-1])} and {own[-1]}"
    return f"The user sent the attached {named} without a message."


def with_not_fetched(prompt: str, not_fetched: Sequence[NotFetched], *, files: int) -> str:
    """``prompt`` with a line naming the message's files the bot could not get (of ``files``
    in all), each as the user sees it and why, for the agent to tell the user: the rest of
    the message is answered without them."""
    if not not_fetched:
        return prompt
    named = "; ".join(f"{shown_among(nf.attachment, nf.index, files)} ({_why(nf)})" for nf in not_fetched)
    several = len(not_fetched) > 1
    line = (
        f"[Not attached, as the bot could not fetch {'them' if several else 'it'}: {named}. "
        f"Tell the user which {'files' if several else 'file'} you could not read and why.]"
    )
    return "\n\n".join(part for part in (prompt, line) if part)


def with_unread_parts(prompt: str, parts: Sequence[InboundMessage]) -> str:
    """``prompt`` with a line naming the parts of an album the bot does not read (a video
    beside its photos, without VOICE_TRANSCRIPTION), for the agent to tell the user: the
    rest of the album is answered without them."""
    counts = Counter(part.unsupported_what or "" for part in parts if part.kind == "unsupported")
    if not counts:
        return prompt
    named = [counted(n, content_word(what)) for what, n in counts.items()]
    them = "them" if counts.total() > 1 else "it"
    line = (
        f"[Not attached, as the bot cannot read {them} yet: {' and '.join(named)}. "
        f"Tell the user you could not look at {them}.]"
    )
    return "\n\n".join(part for part in (prompt, line) if part)


def _why(not_fetched: NotFetched) -> str:
    error = not_fetched.error
    if isinstance(error, AttachmentTooLargeError):
        size = f"{error.size / 1024 / 1024:.0f} MB, " if error.size else ""
        return f"{size}over the 20 MB a bot may download from Telegram"
    return "Telegram would not give it to the bot; sending it again may work"


def _sender_line(msg: InboundMessage) -> str:
    if msg.chat_type not in _SHARED_CHATS or msg.user_id is None:
        return ""
    raw = msg.user_name or ""
    name = _NOT_IN_A_NAME.sub(" ", raw).strip()
    # A person's username is theirs alone, and the producer starts no other person's name
    # with "@" (a first name loses a leading one); a chat's title still may, hence the
    # positive id (a person's): such a name is shown as the username it is, without the id.
    if raw.startswith("@") and msg.user_id > 0:
        return f"[From {name}]"
    # Anyone can take a first name or a title: the id tells two of the same name apart (a
    # negative one is a chat speaking for itself: an anonymous admin's group, a channel).
    kind = "chat" if msg.user_id < 0 else "user"
    return f"[From {name or 'someone'} ({kind} {msg.user_id})]"


def _said(part: InboundMessage, heard: Heard | None) -> str:
    recordings = [
        f"[{what.capitalize()} {name}: {said.why}]"
        if isinstance(said, Unheard)
        else f"[{what.capitalize()} {name}, transcribed:]\n{_escaped(said)}"
        for what, name, said in (heard or {}).get(part.update_id, ())
    ]
    return "\n\n".join(t for t in (_escaped(part.text), *recordings) if t.strip())


def _escaped(text: str) -> str:
    return "".join(
        f"\\{line}" if _LIKE_A_HEAD_LINE.match(unicodedata.normalize("NFKC", line)) else line
        for line in text.splitlines(keepends=True)
    )
