"""A count a user or the agent reads says its noun in the singular for one, and only then."""

from __future__ import annotations

import pytest
from session_core import counted


@pytest.mark.parametrize(
    ("count", "noun", "said"),
    [
        (1, "day", "1 day"),
        (0, "day", "0 days"),
        (25, "day", "25 days"),
        (1, "more day", "1 more day"),
        (3, "more hour", "3 more hours"),
        (1, "story", "1 story"),
        (2, "story", "2 stories"),
        (2, "day", "2 days"),  # a vowel before the y: not "daies"
        (1_048_576, "byte", "1,048,576 bytes"),
    ],
)
def test_a_count_says_its_noun_in_the_plural_unless_it_is_one(count: int, noun: str, said: str) -> None:
    assert counted(count, noun) == said
