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
