"""A user's text as words for the model, never input the CLI acts on itself.

The CLI reads a prompt as its terminal would: a leading "/" runs one of its own commands
("/clear" wipes the conversation, "/model" lists or switches the model, "/init" runs a long
paid task, "/context" shows the set-up) and "@path" (or '@"a path"', quoted) has the CLI read
that file for the model, with the runtime's rights: past the approval gate and the tools'
sandbox ("@/proc/self/environ", "@../other-chat/…", "@~/.aws/…"). An invisible word joiner
before such a "/" or "@" keeps the text as typed for the model and inert for the CLI.

Decided: only an "@" before a path that can leave the session's folder gets one: absolute,
from home, starting with a dot, or one whose file there is a link out (a tool may have put
"notes.md" there as a link to another chat's file; no tool runs between this check and the
CLI reading the prompt). A relative "@notes.md" names a file of the session's own folder,
which its tools read anyway; and a decorator ("@property"), a package's scope ("@types/node")
or a handle ("@alice") stays as typed, as a model may copy an invisible character into the
code it writes."""

from __future__ import annotations

import os
import re

_WORD_JOINER = "\u2060"
# A file mention where a word starts (after a space, a bracket, anything but a letter or digit;
# "ann@example.com" is left alone): the quoted path, or the path up to the next space (which
# "\ " escapes, as the CLI reads it).
_MENTION = re.compile(r'(?<!\w)@(?:"([^"]*)"?|((?:\\ |\S)*))')
_LONGEST_NAME_CHECKED = 1024


def as_words(prompt: str, folder: str) -> str:
    """``prompt`` with every "@" that starts a path leaving ``folder`` (the CLI's working
    directory), and a leading "/", made plain text."""

    def plain(mention: re.Match[str]) -> str:
        quoted, bare = mention.groups()
        path = quoted if quoted is not None else bare.replace("\\ ", " ")
        return _WORD_JOINER + mention.group() if _leaves(path, folder) else mention.group()

    words = _MENTION.sub(plain, prompt)
    return _WORD_JOINER + words if words.startswith("/") else words


def _leaves(path: str, folder: str) -> bool:
    if path.startswith(("/", "~", ".")) or ".." in path.split("/"):
        return True
    # The CLI may cut the path short (at "#" for lines, before trailing punctuation): any
    # start of it that names a link out of the folder counts.
    inside = os.path.realpath(folder)
    for end in range(1, min(len(path), _LONGEST_NAME_CHECKED) + 1):
        candidate = os.path.join(inside, path[:end])
        if os.path.lexists(candidate) and not _within(os.path.realpath(candidate), inside):
            return True
    return False


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + os.sep)
