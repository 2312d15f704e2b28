"""What the runtime hands the CLI of a user's text: its own command and file-mention syntax is
made inert where it could act (see test_telegram_live for the real CLI), nothing else changes."""

from __future__ import annotations

import pytest
from agent_runtime._cli_input import as_words

JOINER = "\u2060"


@pytest.mark.parametrize(
    "text",
    [
        "/clear",
        "read @/proc/self/environ",
        "(@~/.aws/credentials)",
        'see "@../other-chat/transcript.jsonl"',
        "@.aws/config",
    ],
)
def test_a_command_or_a_path_leaving_the_sessions_folder_is_made_plain(text: str) -> None:
    plain = as_words(text)
    assert plain.replace(JOINER, "") == text
    assert JOINER + "/" in plain or JOINER + "@" in plain


@pytest.mark.parametrize(
    "text",
    [
        "class A:\n    @property\n    def b(self): ...",
        '"@types/node": "^20"',
        "ask @alice, mail ann@example.com",
        "open @notes.md",
        "why is /tmp full?",  # a "/" inside the text is no command
    ],
)
def test_code_handles_and_the_sessions_own_files_stay_as_typed(text: str) -> None:
    assert as_words(text) == text
