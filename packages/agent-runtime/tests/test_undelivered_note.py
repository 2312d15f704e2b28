"""The note that tells the next turn's agent which files of its last answer never reached the
user: every reason a file can be kept for has its words (a reason without them would fail the
turn that should mention it)."""

from __future__ import annotations

from typing import get_args

import pytest
from agent_runtime._undelivered_note import undelivered_files_note
from session_core import UnsentFile, UnsentReason, undelivered_files


@pytest.mark.parametrize("reason", get_args(UnsentReason))
def test_each_reason_a_file_did_not_go_is_told_to_the_agent(reason: UnsentReason) -> None:
    kept = undelivered_files(3, [UnsentFile(file_name="report.pdf", reason=reason)], 0)
    assert kept is not None
    note = undelivered_files_note(kept)
    [line] = [line for line in note.splitlines() if line.startswith('- "report.pdf": ')]
    assert line.removeprefix('- "report.pdf": ').strip()


def test_files_the_chat_does_not_allow_are_said_to_be_kept_out_by_its_permissions() -> None:
    kept = undelivered_files(3, [UnsentFile(file_name="chart.png", reason="not_allowed")], 0)
    assert kept is not None
    assert '\n- "chart.png": the chat\'s permissions do not let the bot send files there\n' in (
        undelivered_files_note(kept)
    )


def test_a_file_telegram_refused_as_too_large_is_told_with_its_size_and_the_limit() -> None:
    unsent = UnsentFile(file_name="video.mp4", reason="refused_too_large", size=52_000_000)
    kept = undelivered_files(3, [unsent], 0)
    assert kept is not None
    assert (
        '\n- "video.mp4" (49.6 MB): Telegram refused it as too large (a bot may send files of up to 50 MB)\n'
        in (undelivered_files_note(kept))
    )


def test_an_answer_whose_text_was_lost_is_said_to_be_unread() -> None:
    kept = undelivered_files(3, [], text_lost=True)
    assert kept is not None
    assert undelivered_files_note(kept) == (
        "(From the bot, not the user: your previous answer could not be sent to the user, or not "
        "all of it: do not assume they read it.)"
    )


def test_an_answer_whose_text_and_files_were_lost_names_the_files_after_the_text() -> None:
    kept = undelivered_files(3, [UnsentFile(file_name="chart.png", reason="failed")], text_lost=True)
    assert kept is not None
    first, files, last = undelivered_files_note(kept).splitlines()
    assert "could not be sent to the user" in first and first.endswith("did not reach them either:")
    assert files == '- "chart.png": it could not be prepared or uploaded'
    assert last.startswith("If the user asks about them") and last.endswith(")")
