"""What the user reads when there is no answer from the model: every notice the consumer
words itself, including every sentence about a failed turn (commands and budget refusals are
worded with their rules, in ``_commands`` and ``_budget``). The runtime answers a failure with
an error kind and reason (facts, no wording) and words nothing a user reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from session_core import (
    ApprovalChoice,
    ErrorKind,
    ErrorReason,
    HistorySize,
    TurnResult,
    UnsentFile,
    UnsentReason,
    counted,
    file_size_text,
    quoted_file_name,
)
from telegram_core import RECORDING_WORDS, Attachment

from ._errors import AttachmentTooLargeError
from ._render import escape_html, escape_markdown

if TYPE_CHECKING:  # _attachments names its files' notices with shown_name
    from ._attachments import NotFetched

FAILED_NOTICE = (
    "Sorry, I could not answer this message. Please try again in a moment, "
    "or send /new to start a fresh conversation."
)
MISCONFIGURED_NOTICE = "Sorry, the bot is misconfigured; the operator has been told."
# Before the last try at a message whose try before it ended without a word (the consumer was
# killed: out of memory, out of time). Not "your message stopped me": a neighbour in the same
# batch may have, and in a group "your" would blame whoever reads it.
LAST_TRY_NOTICE = (
    "Sorry for the wait: my last try at answering this message stopped before I could finish. "
    "I'm trying once more; if that fails too, I'll set it aside for the operator to look at."
)
EMPTY_ANSWER = "(I have nothing to add.)"


def model_busy_notice(retry_in_s: int) -> str:
    """What the user reads when the model asked to wait and their message is put off that
    long (once per message, before its first such wait)."""
    minutes = round(retry_in_s / 60)
    when = f"about {minutes} minutes" if minutes > 1 else "about a minute" if minutes == 1 else "a moment"
    return f"The AI model is busy right now. I'll try your message again in {when}; no need to send it again."


def too_large_notice(file_name: str) -> str:
    """The answer to a file above the Bot API's 20 MB download limit (HTML)."""
    return f"Sorry, {escape_html(file_name)} is too large: I can read files up to 20 MB."


def unread_words_note(command: str) -> str:
    """The line under a command's answer when words followed it ("/new what do cats eat?"):
    the command takes none, so they reached no turn (and were not asked about)."""
    return f"(I did not read what you wrote after /{command}: send it again as a message of its own.)"


def shown_name(attachment: Attachment) -> str:
    """What the chat shows ``attachment`` as, for a notice about it: a document by its name
    (``quoted_file_name``: its sender's line breaks and bidi controls stay out of the bot's
    answer), a photo or recording by what it is (the name the producer gives one,
    "photo-10.jpg", is nobody's)."""
    if attachment.kind == "document":
        return quoted_file_name(attachment.file_name) or "the file"
    if attachment.kind == "voice":
        return f"the {RECORDING_WORDS[attachment.medium]}"
    return "the photo"


def shown_among(attachment: Attachment, index: int, files: int) -> str:
    """What the chat shows ``attachment`` as among a message's ``files`` (``index``: its
    place), to tell it from the others: a document by its sender's name, quoted; a photo or
    recording by its place ("photo 2 of 3")."""
    if attachment.kind == "document" and attachment.file_name:
        return f"“{quoted_file_name(attachment.file_name)}”"
    word = RECORDING_WORDS[attachment.medium] if attachment.kind == "voice" else attachment.kind
    return f"{word.replace('document', 'file')} {index + 1} of {files}"


def unavailable_notice(file_name: str) -> str:
    """The answer to a file Telegram will not give the bot (HTML): a new upload is a new file."""
    return f"Sorry, Telegram would not give me {escape_html(file_name)}. Please send it again."


def none_fetched_notice(not_fetched: Sequence[NotFetched]) -> str:
    """The answer to a message none of whose files the bot could get (HTML): a turn would be
    paid only to say so. One file is named as the chat shows it; several (an album, a forward)
    each by ``shown_among``, grouped by why."""
    if len(not_fetched) == 1:
        [only] = not_fetched
        why = too_large_notice if isinstance(only.error, AttachmentTooLargeError) else unavailable_notice
        return why(shown_name(only.attachment))
    files = len(not_fetched)
    too_large: list[str] = []
    refused: list[str] = []
    for nf in not_fetched:
        named = shown_among(nf.attachment, nf.index, files)
        (too_large if isinstance(nf.error, AttachmentTooLargeError) else refused).append(named)
    reasons = []
    if too_large:
        are = "are" if len(too_large) > 1 else "is"
        reasons.append(f"{_listed(too_large)} {are} too large (I can read files up to 20 MB)")
    if refused:
        reasons.append(f"Telegram would not give me {_listed(refused)}")
    noun = "photos" if all(nf.attachment.kind == "photo" for nf in not_fetched) else "files"
    text = f"Sorry, I could not read any of the {files} {noun}: {'; '.join(reasons)}."
    if refused:
        text += f" Please send {'them' if len(refused) > 1 else 'it'} again."
    return escape_html(text)


def _listed(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


# Never a stack trace or a provider message. "config" has no entry: the operator was told
# (log, metric, alarm) and the user gets the consumer's general FAILED_NOTICE.
FAILURE_WORDING: Mapping[ErrorKind | ErrorReason, str] = {
    # "here": in a forum topic the previous message is this topic's, not the whole chat's
    "busy": "I'm still working on your previous message here; I'll answer this one right after.",
    "model_error": "The AI model did not answer this time (it may be busy). Please try again in a minute.",
    "internal": "Something went wrong on my side while answering. Please try again.",
    "bad_request": "This message could not be processed.",
    "max_turns": "I stopped because this took too many steps. Please ask for a smaller part.",
    "attachment": "I could not open the file you sent. Please send it again.",
    "timeout": "This took longer than I can spend on one message, so I stopped. "
    "Please ask for a smaller part.",
    "max_budget": "I stopped because answering this would cost more than one message may spend. "
    "Please ask for a smaller part.",
    "history_too_large": "This conversation has grown too long for me to continue: its history no "
    "longer fits in my memory. Send /new to start a fresh one.",
    "model_refused": "The AI model refused this message as it was sent. Please send it in "
    "other words (or without its file), or send /new to start a fresh conversation.",
    "request_too_large": "This message, with its files, is too large for the AI model together with "
    "our conversation. Please send a smaller file or fewer pages, or send /new to start a fresh "
    "conversation.",
    "context_full": "This conversation has grown too long for the AI model, and I could not shorten "
    "it enough. Send /new to start a fresh one.",
    "crashed": "Something went wrong on my side while answering. Please try again.",
    "disk_limit": "I stopped because the files I made for this chat grew past the disk space one "
    "chat may use. I remove them before your next message; please ask for something smaller.",
    "model_silent": "The AI model stopped answering, so after a few minutes I gave up on this "
    "message. Please send it again in a little while.",
    "model_unreachable": "I could not reach the AI model, so I could not answer this message. "
    "Please send it again in a little while.",
}


# A turn out of time because the consumer's own had gone to a wait before it began (the
# result's ``timed_out_by`` "caller", and the wait a real share of the invocation: see
# ``_turn_limits.timeout_cut_by``): the message was not too big, so not "a smaller part".
OUT_OF_TIME_AFTER_WAITING = (
    "I had to wait before I could start on this message (for the previous message here, or "
    "to write down a recording), and ran out of time for it. Please send it again."
)


# Under what a turn wrote before the agent's step limit or the turn's cost cap stopped it.
# True to what the runtime keeps: such a run stops between steps, all of them in the
# conversation the next message resumes.
_LIMIT_NOTES: Mapping[ErrorReason, str] = {
    "max_turns": "⏹ _I stopped here: this took more steps than I may take for one message. "
    "I remember what I did so far; to go on, ask for the next part._",
    "max_budget": "⏹ _I stopped here: going on would cost more than one message may spend. "
    "I remember what I did so far; to go on, ask for the next part._",
}


def limit_note(reason: ErrorReason, duration_ms: int, *, wrote_nothing: bool = False) -> str:
    """The line under what a turn wrote before a limit stopped it (Markdown), in place of
    "Stopped."; ``duration_ms``: how long it ran. A turn cut by its time or a crash that
    ``wrote_nothing`` is recorded only for the files it made: the line leads to them."""
    seconds = round(duration_ms / 1000)
    took = f"{round(seconds / 60)} min" if seconds >= 90 else f"{seconds} s"
    if wrote_nothing and reason in ("timeout", "crashed"):
        cut = (
            f"⏱ _I reached the time limit ({took})"
            if reason == "timeout"
            else "⚠️ _Something went wrong on my side"
        )
        return f"{cut} before I could write an answer; here is what I had made:_"
    # True to what the runtime keeps of a killed run: the next turn resumes after the steps it
    # finished (text written before a tool call included), not after a text it was still writing.
    remembered = "I remember your message and the steps I finished, not words I was still writing."
    if reason == "crashed":
        return f"⚠️ _Something went wrong on my side, so I stopped here. {remembered} Please try again._"
    if reason == "disk_limit":
        return (
            "⏹ _I stopped here: the files I made for this chat grew past the disk space one chat may "
            f"use, and I remove them before your next message. {remembered} Please ask for something "
            "smaller._"
        )
    if reason != "timeout":
        return _LIMIT_NOTES.get(reason, "⏹ _Stopped._")
    return (
        f"⏱ _I reached the time limit ({took}), so I stopped here. {remembered} "
        "To go on, ask for the next part._"
    )


def history_notice(history: HistorySize) -> str:
    """The line under an answer once the session's history nears what the runtime can load."""
    return (
        f"_⚠️ This conversation is long: {history.mb:.0f} MB of history, and at about "
        f"{history.limit_mb:.0f} MB I can no longer continue it. Send /new to start a fresh one._"
    )


# Why a file the agent meant to send did not go: (said of one file, said of several).
UNSENT_WORDING: Mapping[UnsentReason, tuple[str, str]] = {
    "too_large": (
        "it is larger than 50 MB, the most a bot can send",
        "they are larger than 50 MB, the most a bot can send",
    ),
    "too_many": (
        "only 10 files can be sent with one answer",
        "only 10 files can be sent with one answer",
    ),
    "not_a_file": ("it is not a regular file", "they are not regular files"),
    "folder": (
        "it is a folder, and only files can be sent: ask me for it as a zip",
        "they are folders, and only files can be sent: ask me for them as a zip",
    ),
    "empty": ("it is empty", "they are empty"),
    "failed": ("something went wrong while preparing it", "something went wrong while preparing them"),
    "unfinished": ("I was still writing it when I stopped", "I was still writing them when I stopped"),
    "unconfirmed": (
        "Telegram did not confirm it, so ask me for it again if it is missing",
        "Telegram did not confirm them, so ask me for them again if they are missing",
    ),
    "not_allowed": ("this chat does not let me send files", "this chat does not let me send files"),
    "refused": ("Telegram refused it", "Telegram refused them"),
    # each named with its size (``_named``)
    "refused_too_large": (
        "Telegram refused it as too large, and a bot can send files of up to 50 MB",
        "Telegram refused them as too large, and a bot can send files of up to 50 MB",
    ),
}
# What is said of files whose reason is not that they were not sent.
_MAY_HAVE_GONE: Mapping[UnsentReason, tuple[str, str]] = {
    "unconfirmed": ("may not have arrived", "may not have arrived"),
}
_NAMES_SHOWN = 3


def unsent_files_notice(unsent: Sequence[UnsentFile], *, more_too_many: int = 0) -> str:
    """The line under an answer naming the files that were not sent and why (Markdown, one
    sentence per reason), e.g. "(report.zip was not sent: it is larger than 50 MB, ...)";
    empty when every file went. ``more_too_many``: files not named that were one too many
    too (``TurnResult.more_files_not_sent``), counted with them."""
    sentences = []
    for reason, (one, several) in UNSENT_WORDING.items():
        names = [_named(f) for f in unsent if f.reason == reason]
        unnamed = more_too_many if reason == "too_many" else 0
        count = len(names) + unnamed
        if not count:
            continue
        if not names:
            listed = counted(unnamed, "file")
        elif count > len(names[:_NAMES_SHOWN]):
            listed = f"{', '.join(names[:_NAMES_SHOWN])} and {count - len(names[:_NAMES_SHOWN])} more"
        elif len(names) > 1:
            listed = f"{', '.join(names[:-1])} and {names[-1]}"
        else:
            listed = names[0]
        lead_one, lead_several = _MAY_HAVE_GONE.get(reason, ("was not sent", "were not sent"))
        lead, why = (lead_one, one) if count == 1 else (lead_several, several)
        sentences.append(f"{listed} {lead}: {why}")
    return f"({'; '.join(sentences)})" if sentences else ""


# Under the line naming the files that did not go, when the agent cannot be told of them (see
# ``_undelivered``): the user hears what the agent will not know.
UNDELIVERED_NOT_NOTED_NOTICE = (
    "(I could not make a note that the files above did not reach you, so later I may wrongly "
    "say I sent them.)"
)


def _named(file: UnsentFile) -> str:
    """A file not sent by its name, and its size where that is why ("data.zip (50.2 MB)")."""
    name = _literal(file.file_name)
    return name if file.size is None else f"{name} ({file_size_text(file.size)})"


def _literal(name: str) -> str:
    """``name`` as Markdown that shows exactly it (a file name may hold ``_`` or ``*``)."""
    return escape_markdown(" ".join(name.split()))


# After a failed turn's sentence when its agent had called tools: "try again" alone would have
# the user ask for a mail that went out to be sent again. The next message's turn is told which
# calls ran (agent-runtime's _tools_ran), so the agent can answer "ask me which".
TOOLS_RAN_NOTE = (
    "Some steps I took for it may already have run before it stopped (changed a file, sent "
    "something): ask me which before you try again."
)


def failure_text(result: TurnResult, *, after_a_wait: bool = False) -> str | None:
    """The sentence for a failed turn: by its reason when it has one, else by its kind, with
    ``TOOLS_RAN_NOTE`` when its tools had run; None when there is none (the caller sends its
    general notice). ``after_a_wait``: the consumer's wait before the turn is what cut its time
    (a timeout of the caller's deadline only tells so then: without a wait, it is the usual)."""
    if result.error_reason == "timeout" and result.timed_out_by == "caller" and after_a_wait:
        text: str | None = OUT_OF_TIME_AFTER_WAITING
    elif result.error_reason is not None:
        text = FAILURE_WORDING[result.error_reason]
    else:
        text = None if result.error_kind is None else FAILURE_WORDING.get(result.error_kind)
    return f"{text} {TOOLS_RAN_NOTE}" if text is not None and result.tools_ran else text


# [I] Tool approval: the buttons under a call that waits, what the message says once answered,
# and /permissions. {where}: where a grant holds, "this chat" or "this topic" (telegram_core's
# this_place): a forum topic's grants are its own.
APPROVAL_BUTTON_TEXT: Mapping[ApprovalChoice, str] = {
    "once": "Allow once",
    "always": "Always in {where}",
    "deny": "Deny",
}
APPROVAL_ASKS = "🔐 May I run this?"
APPROVAL_ALWAYS_WOULD_ALLOW = "“Always in {where}” would allow"
APPROVAL_DECIDED: Mapping[ApprovalChoice, str] = {
    "once": "✅ Allowed once by {who}",
    "always": "✅ Always allowed in {where} by {who}",
    "deny": "❌ Denied by {who}",
}
APPROVAL_DECLINED = "❌ Declined: you sent a new message"
# In a group the new message may be anyone's: "you" would blame whoever reads it.
APPROVAL_DECLINED_BY = "❌ Declined: {who} sent a new message"
APPROVAL_STOPPED = "⏹ Stopped before it ran"
# /new drops a call still waiting: its question says so, and in a group who sent it.
APPROVAL_DROPPED_BY_NEW = "❌ Declined: you started a new conversation"
APPROVAL_DROPPED_BY_NEW_FROM = "❌ Declined: {who} started a new conversation"
# An Allow the budget kept from the agent, then /new: the call was allowed yet will never run.
ALLOWED_DROPPED_BY_NEW = "❌ Not run: you started a new conversation before it could"
ALLOWED_DROPPED_BY_NEW_FROM = "❌ Not run: {who} started a new conversation before it could"
NO_GRANTS = "Nothing is always allowed in {where}. Tools that need approval ask each time."
GRANTS_HEADING = "Always allowed in {where}:"
# More grants than one message lists: a page of them, numbered as the user asks for them.
GRANTS_PAGE_HEADING = "Always allowed in {where} ({first}-{last} of {total}):"
GRANTS_MORE = "{count} more: send /permissions {page} to see them."
# Rules, not tools: one tool (Bash) may have many.
GRANTS_NO_SUCH_PAGE = (
    "Always allowed in {where}: {total} rules, on {pages} pages. Send /permissions {pages} for the last one."
)
GRANTS_ONE_PAGE = "Only one page: send /permissions to see what is always allowed in {where}."
GRANT_LINE = "{rule} (by {who})"
REVOKE_BUTTON_TEXT = "Revoke {rule}"
