"""One rule makes a user's file name safe to write under a prefix (staged attachments)."""

from __future__ import annotations

import pytest
from session_core import safe_file_name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("dir/sub/notes.txt", "notes.txt"),
        (".bashrc", "bashrc"),
        ("..", "file"),
        ("", "file"),
        (None, "file"),
        ("my file (1).txt", "my_file_1_.txt"),
        ("отчёт.csv", "csv"),
        ("_._hidden", "hidden"),
        ("a" * 150 + ".txt", "a" * 96 + ".txt"),
    ],
)
def test_a_name_becomes_one_harmless_path_step(name: str | None, expected: str) -> None:
    assert safe_file_name(name) == expected


def test_the_fallback_names_what_nothing_was_left_of() -> None:
    assert safe_file_name("///", "attachment-2") == "attachment-2"
