"""What the runtime hands the CLI of a user's text: its own command and file-mention syntax is
made inert where it could act (see test_telegram_live for the real CLI), nothing else changes."""

from __future__ import annotations

from pathlib import Path

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
        'read @"/proc/self/environ" please',
        'read @"~/.aws/credentials"',
        "read @notes/../../other-chat/x",
    ],
)
def test_a_command_or_a_path_leaving_the_sessions_folder_is_made_plain(text: str, tmp_path: Path) -> None:
    plain = as_words(text, str(tmp_path))
    assert plain.replace(JOINER, "") == text
    assert JOINER + "/" in plain or JOINER + "@" in plain


@pytest.mark.parametrize(
    "text",
    [
        "class A:\n    @property\n    def b(self): ...",
        '"@types/node": "^20"',
        "ask @alice, mail ann@example.com",
        "open @notes.md",
        'open @"my notes.md"',
        "why is /tmp full?",  # a "/" inside the text is no command
    ],
)
def test_code_handles_and_the_sessions_own_files_stay_as_typed(text: str, tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("mine")
    (tmp_path / "my notes.md").write_text("mine")
    assert as_words(text, str(tmp_path)) == text


@pytest.mark.parametrize(
    "text",
    [
        "open @notes.md",
        "open @notes.md, then summarise",
        "open @notes.md#L2-5",
        'open @"notes.md"',
        "open @old/notes.md",
        "open @my\\ notes.md",
    ],
)
def test_a_file_of_the_session_that_a_tool_made_a_link_out_is_made_plain(text: str, tmp_path: Path) -> None:
    """A tool may leave "notes.md" as a link to another chat's file, or the runtime's own; the
    CLI would follow it with the runtime's rights when the user then names it."""
    folder = tmp_path / "work"
    folder.mkdir()
    elsewhere = tmp_path / "other-chat"
    elsewhere.mkdir()
    (elsewhere / "notes.md").write_text("not yours")
    (folder / "notes.md").symlink_to(elsewhere / "notes.md")
    (folder / "my notes.md").symlink_to(elsewhere / "notes.md")
    (folder / "old").symlink_to(elsewhere)
    plain = as_words(text, str(folder))
    assert plain.replace(JOINER, "") == text
    assert JOINER + "@" in plain


def test_a_link_that_stays_in_the_sessions_folder_is_left_as_typed(tmp_path: Path) -> None:
    (tmp_path / "drafts").mkdir()
    (tmp_path / "drafts" / "notes.md").write_text("mine")
    (tmp_path / "notes.md").symlink_to(tmp_path / "drafts" / "notes.md")
    assert as_words("open @notes.md", str(tmp_path)) == "open @notes.md"
