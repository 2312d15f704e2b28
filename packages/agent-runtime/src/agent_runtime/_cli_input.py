"""A user's text as words for the model, never input the CLI acts on itself.

The CLI reads a prompt as its terminal would: a leading "/" runs one of its own commands
("/clear" wipes the conversation, "/model" lists or switches the model, "/init" runs a long
paid task, "/context" shows the set-up) and "@path" has the CLI read that file for the model,
with the runtime's rights: past the approval gate and the tools' sandbox
("@/proc/self/environ", "@../other-chat/…", "@~/.aws/…"). An invisible word joiner before such
a "/" or "@" keeps the text as typed for the model and inert for the CLI.

Decided: only an "@" before a path that can leave the session's folder (absolute, from home,
or starting with a dot) gets one. A relative "@notes.md" names a file of the session's own
folder, which its tools read anyway; and a decorator ("@property"), a package's scope
("@types/node") or a handle ("@alice") stays as typed, as a model may copy an invisible
character into the code it writes."""

from __future__ import annotations

import re

_WORD_JOINER = "\u2060"
# A file mention that can leave the session's folder ("@/x", "@~/x", "@../x", "@.aws" where a
# word starts: after a space, a bracket, anything but a letter or digit; "ann@example.com"
# is left alone), or a command ("/x" opening the prompt).
_CLI_SYNTAX = re.compile(r"(?<!\w)@(?=[/~.])|^/")


def as_words(prompt: str) -> str:
    """``prompt`` with every "@" that starts a path leaving the session's folder, and a
    leading "/", made plain text."""
    return _CLI_SYNTAX.sub(lambda match: _WORD_JOINER + match.group(), prompt)
