"""Text cut to a length Telegram counts: never inside what shows as one character."""

from __future__ import annotations

import pytest
from session_core import utf16_len, within_utf16


@pytest.mark.parametrize(
    "grapheme",
    ["👨‍👩‍👧‍👦", "🇺🇦", "👍🏽", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "e\u0301", "क्षि"],
    ids=["family", "flag", "skin-tone", "tag-flag", "accent", "conjunct"],
)
def test_a_cut_keeps_only_whole_characters(grapheme) -> None:
    text = grapheme * 20
    for limit in range(utf16_len(text) + 1):
        kept = within_utf16(text, limit)
        assert utf16_len(kept) <= limit
        assert kept == grapheme * (limit // utf16_len(grapheme)), limit


def test_one_character_of_endless_accents_is_cut_between_them() -> None:
    # Zalgo text: kept to the limit rather than dropped whole.
    assert within_utf16("a" + "\u0301" * 300, 10) == "a" + "\u0301" * 9
