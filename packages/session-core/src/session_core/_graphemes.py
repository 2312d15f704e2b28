"""What a chat shows as one character: a grapheme (a family of emoji joined by ZWJ, a flag, a
skin tone, a letter with its accents, a conjunct). Text is cut between graphemes, never inside
one: half of a family emoji shows as other people, half a flag as two letters in boxes.

Unicode's rules for graphemes (UAX #29) change with each Unicode version (new emoji sequences,
Indic conjuncts), so they come from the ``regex`` package's ``\\X``, which follows them,
rather than from a rule set of our own that would fall behind."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import regex

# A real grapheme is a few code points (Scotland's flag, 14 UTF-16 units, is among the longest);
# a letter under hundreds of accents ("Zalgo" text) could outgrow a message: such a cluster
# counts as its code points, so any text can still be cut within a limit.
_LONGEST_GRAPHEME_UTF16 = 32


def shown_characters(text: str) -> list[str]:
    """``text`` as the characters a chat shows (graphemes); joined, they are ``text``."""
    characters: list[str] = []
    for cluster in _grapheme_re().findall(text):
        if len(cluster) > 1 and len(cluster.encode("utf-16-le")) // 2 > _LONGEST_GRAPHEME_UTF16:
            characters.extend(cluster)
        else:
            characters.append(cluster)
    return characters


@cache
def _grapheme_re() -> regex.Pattern[str]:
    import regex  # on first use: the producer imports session_core, and cuts text only rarely

    return regex.compile(r"\X", regex.DOTALL)
