"""[H] How a running turn looks in Telegram: the answer so far and one line on what the agent
does ("Bash: `ls -la`", "Reading `notes.md`", "Subagent aws-support"), in Telegram HTML, and
how a stopped answer ends. The runtime sends raw, masked, shortened facts; the words are here."""

from __future__ import annotations

import re

from session_core import ErrorReason, ToolActivity, TurnProgress, markdown_tail, utf16_len

from ._person_names import person_markdown
from ._render import escape_html, html_to_plain, markdown_to_html, with_note
from ._wording import limit_note

# A draft or progress message shows the end of the answer: room for the activity line.
MAX_SHOWN_TEXT = 3500
THINKING = "<i>Thinking…</i>"
STOPPED_NOTE = "⏹ *Stopped.*"
STOPPED_EMPTY = "⏹ *Stopped before I wrote anything.*"
STOPPED_BY_NOTE = "⏹ *Stopped by {who}.*"
STOPPED_BY_EMPTY = "⏹ *Stopped by {who} before I wrote anything.*"
STOP_BUTTON_TEXT = "⏹ Stop"
# An element that shows nothing yet (a code fence, heading or quote just begun). Telegram
# drops it and trims the text, so an edit that only adds one would be refused as unchanged.
_SHOWS_NOTHING_RE = re.compile(r"<([a-z]+)[^>]*>(\s*)</\1>")
_FILE_VERBS = {
    "Read": "Reading",
    "Write": "Writing",
    "Edit": "Editing",
    "MultiEdit": "Editing",
    "NotebookEdit": "Editing",
    "Glob": "Finding files",
    "Grep": "Searching for",
    "WebFetch": "Fetching",
    "WebSearch": "Searching the web for",
}


def activity_line(activity: ToolActivity) -> str:
    """One escaped line on what the agent does now."""
    name = escape_html(activity.name)
    if activity.kind == "subagent":
        return f"🤖 Subagent <b>{name}</b>"
    argument = f"<code>{escape_html(activity.argument)}</code>" if activity.argument else ""
    verb = _FILE_VERBS.get(activity.name)
    if verb:
        return f"🔧 {verb} {argument}".rstrip()
    return f"🔧 {name}: {argument}" if argument else f"🔧 {name}"


def progress_html(progress: TurnProgress) -> str:
    """The draft's (private chat) or progress message's (group) text: the answer so far
    rendered as the answer will be (its end: a code block it starts inside stays code; a
    construct still half-written shows as text until it is whole) and the activity."""
    parts = []
    text = progress.text.strip()
    tail = markdown_tail(text, MAX_SHOWN_TEXT - 1)
    answer = _without_empty_elements(markdown_to_html(tail))
    if utf16_len(html_to_plain(answer)) >= MAX_SHOWN_TEXT:
        # A table lined up (its padding, its links' addresses) may show longer than written.
        answer = escape_html(tail)
    # Markup alone ("```python" as the answer begins) shows nothing: Telegram refuses an
    # empty text.
    if html_to_plain(answer).strip():
        parts.append(("…" if progress.cut or tail != text else "") + answer)
    if progress.activity is not None:
        parts.append(activity_line(progress.activity))
    elif not parts:
        parts.append(THINKING)
    return "\n\n".join(parts)


def _without_empty_elements(html_text: str) -> str:
    while (emptier := _SHOWS_NOTHING_RE.sub(r"\2", html_text)) != html_text:  # <pre><code></code></pre>
        html_text = emptier
    return html_text.strip()


def stopped_markdown(
    text: str,
    *,
    reason: ErrorReason | None = None,
    duration_ms: int = 0,
    sends_files: bool = False,
    stopped_by: str | None = None,
) -> str:
    """A stopped turn's answer (Markdown, rendered and split like any answer) marked stopped:
    by the user (``stopped_by``: the name of a group member who stopped someone else's turn),
    or by a limit (``reason``) after ``duration_ms`` (the runtime records that only once
    something was written or a file made; a turn stopped so before fails instead). One
    stopped before it wrote any text but that ``sends_files`` it made is just "Stopped." (or
    "Stopped by …"), or says which limit cut it before the files."""
    if reason is not None:
        return with_note(text, limit_note(reason, duration_ms, wrote_nothing=not text.strip()))
    wrote = bool(text.strip()) or sends_files
    if stopped_by is None:
        return with_note(text, STOPPED_NOTE) if wrote else STOPPED_EMPTY
    who = person_markdown(stopped_by)
    return with_note(text, STOPPED_BY_NOTE.format(who=who)) if wrote else STOPPED_BY_EMPTY.format(who=who)
