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
        (".bashrc", "file.bashrc"),  # a hidden file's name reads as its extension (see below)
        ("..", "file"),
        ("", "file"),
        (None, "file"),
        ("my file (1).txt", "my_file_1_.txt"),
        ("отчёт.csv", "file.csv"),
        ("_._hidden", "hidden"),
        ("a" * 150 + ".txt", "a" * 96 + ".txt"),
        # cut where a dot or a space was: not a hidden file, nor one that starts with "_"
        ("x" * 60 + "." + "y" * 95 + ".txt", "y" * 95 + ".txt"),
        ("x" * 60 + " " + "y" * 95 + ".txt", "y" * 95 + ".txt"),
    ],
)
def test_a_name_becomes_one_harmless_path_step(name: str | None, expected: str) -> None:
    assert safe_file_name(name) == expected


def test_the_fallback_names_what_nothing_was_left_of() -> None:
    assert safe_file_name("///", "attachment-2") == "attachment-2"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("отчёт.pdf", "file.pdf"),
        ("写真.JPG", "file.JPG"),
        ("../../отчёт.pdf", "file.pdf"),
        ("отчёт.пдф", "file"),  # an extension in another script says nothing we can keep
        ("отчёт", "file"),
        ("отчёт.tar.gz", "file.tar.gz"),
        ("___.pdf", "file.pdf"),
        (".pdf", "file.pdf"),
        ("_.csv", "file.csv"),
        ("..pdf", "file.pdf"),
        (".tar.gz", "file.tar.gz"),
        ("Отчёт 2024.tar.gz", "2024.tar.gz"),  # what is safe of the stem stays the stem
        ("notes", "notes"),  # none to keep: the agent is told its type beside it (text/plain)
    ],
)
def test_a_document_named_in_another_script_keeps_its_extension(name: str, expected: str) -> None:
    """The agent's tools pick how to read a file (PDF, image) by its extension: "отчёт.pdf"
    must arrive as a .pdf, not as a file called "pdf" (as "___.pdf" and ".pdf" did), and
    "отчёт.tar.gz" as a .tar.gz, not as "tar.gz"."""
    assert safe_file_name(name) == expected


def test_the_fallback_takes_the_extension_of_a_name_in_another_script() -> None:
    assert safe_file_name("отчёт.pdf", "attachment-2") == "attachment-2.pdf"
