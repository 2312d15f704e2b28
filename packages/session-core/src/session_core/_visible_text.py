"""[I] Text from the agent as a chat shows it without hiding anything (docs/approvals.md, "What
is shown is what runs"): the command an approval asks about, and the rule "Always in this chat"
would grant for it, wherever that rule is shown (the asking message, /permissions, the revoke's
answer). One home for both the runtime and the Telegram side: they must never disagree."""

from __future__ import annotations

import re
import unicodedata
from itertools import groupby

from ._graphemes import shown_characters
from ._secret_masking import mask_command_secrets

# Spaces of typography (no-break, narrow no-break, figure, thin): a chat shows each as a gap,
# as it shows a space, and French text is full of them. Shown as they are, one at a time;
# their runs are counted like runs of spaces. (As code points they would make an ordinary
# command too long to show.)
_TYPOGRAPHIC_SPACES = "\u00a0\u2007\u2009\u202f"
_SPACE_RUN = re.compile(f"[ \\t{_TYPOGRAPHIC_SPACES}]{{3,}}")
# Characters a chat shows as nothing, as a gap, or that reorder or break the text around them:
# controls (tab and newline aside), format characters (zero-width spaces and joiners, bidi
# controls), unassigned and private-use code points, space separators other than the space,
# line and paragraph separators, the default-ignorable marks (variation selectors, ...), and
# letters drawn blank (Hangul fillers, the blank Braille pattern).
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp", "Zs"})
_BLANK_GLYPHS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0")
_IGNORABLE_RANGES = ((0x180B, 0x180F), (0xFE00, 0xFE0F), (0xE0100, 0xE01EF))
_NAMED_HIDDEN = 4  # a run of blank-looking lines names this many of its characters
# An exact Bash grant too long to show is the command the asking message shows whole above it.
_EXACT_COMMAND_ABOVE = "Bash(the exact command above)"
_LEFT_OUT = "… ({count} more characters not shown)"


def visible_text(text: str) -> str:
    """Runs of blank (or blank-looking) lines and long runs of spaces as a count, every
    character a chat would not show as its code point (``⟨U+200B⟩``): nothing can push a part
    of the text out of sight, disguise it, or reorder it."""
    shown: list[str] = []
    for blank, group in groupby(text.split("\n"), key=_looks_blank):
        run = list(group)
        if blank and len(run) > 1:
            shown.append(_counted_lines(run))
        else:
            shown.extend(_escaped(line) for line in run)
    return _SPACE_RUN.sub(lambda m: f" ⟨{len(m.group(0))} spaces⟩ ", "\n".join(shown))


def shown_command(command: str) -> str:
    """A Bash command as an approval shows it: ``visible_text``, secrets masked without hiding
    any of the shell's syntax (a ``;`` after a masked value stays in sight)."""
    return mask_command_secrets(visible_text(command))


def shown_grant_rule(rule: str, limit: int, *, command_above: bool = False) -> str:
    """A grant rule (``Bash(git *)``) as ``visible_text`` shows it, within ``limit`` UTF-16
    units; what is matched stays ``rule``. One too long to show whole is never cut where the cut
    could read as another rule: with ``command_above`` (the asking message, which shows the
    command whole) an exact Bash grant reads "Bash(the exact command above)"; else its start is
    followed by how much is left out. A Bash rule's command is shown as ``shown_command`` shows
    it: an exact grant holds the command whole, secrets and all."""
    bash = rule.startswith("Bash(") and rule.endswith(")")
    shown = f"Bash({shown_command(rule[5:-1])})" if bash else visible_text(rule)
    if utf16_len(shown) <= limit:
        return shown
    if command_above and _is_exact_bash(rule):
        return _EXACT_COMMAND_ABOVE
    room = limit - len(_LEFT_OUT.format(count=len(shown)))
    kept = within_utf16(shown, max(room, 0))
    return kept + _LEFT_OUT.format(count=len(shown) - len(kept))


def shows_nothing(text: str) -> bool:
    """Whether a chat shows ``text`` as nothing at all: spaces, line breaks and characters
    drawn as nothing (zero-width spaces, word joiners, variation selectors, ...) only."""
    return all(_looks_blank(line) for line in text.split("\n"))


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units: an emoji is two)."""
    return len(text.encode("utf-16-le")) // 2


def within_utf16(text: str, limit: int) -> str:
    """The longest start of ``text`` of at most ``limit`` UTF-16 units, of whole characters
    as a chat shows them (see shown_characters)."""
    if utf16_len(text) <= limit:
        return text
    used = kept = 0
    for char in shown_characters(text):
        used += utf16_len(char)
        if used > limit:
            break
        kept += len(char)
    return text[:kept]


def end_within_utf16(text: str, limit: int) -> str:
    """The longest end of ``text`` of at most ``limit`` UTF-16 units, of whole characters."""
    if utf16_len(text) <= limit:
        return text
    used, start = 0, len(text)
    for char in reversed(shown_characters(text)):
        used += utf16_len(char)
        if used > limit:
            break
        start -= len(char)
    return text[start:]


def _is_exact_bash(rule: str) -> bool:
    # The runtime grants a Bash command as "Bash(program *)" or as that very command
    # (agent_runtime._approval_rules.grant_rule_for); a "*" of the command itself is escaped.
    return rule.startswith("Bash(") and rule.endswith(")") and not rule.endswith(" *)")


def _is_hidden(char: str) -> bool:
    if char in " \t\n" or char in _TYPOGRAPHIC_SPACES:
        return False
    if char in _BLANK_GLYPHS or unicodedata.category(char) in _HIDDEN_CATEGORIES:
        return True
    return any(low <= ord(char) <= high for low, high in _IGNORABLE_RANGES)


def _counted_lines(run: list[str]) -> str:
    """Consecutive blank-looking lines as one count that names their hidden characters: bash
    still runs such a line, so the user must know it is there."""
    hidden = list(dict.fromkeys(c for line in run for c in line if _is_hidden(c) or c in _TYPOGRAPHIC_SPACES))
    if not hidden:
        return f"⟨{len(run)} blank lines⟩"
    named = ", ".join(_code_point(c) for c in hidden[:_NAMED_HIDDEN])
    more = ", …" if len(hidden) > _NAMED_HIDDEN else ""
    return f"⟨{len(run)} blank-looking lines: {named}{more}⟩"


def _looks_blank(line: str) -> bool:
    return all(c in " \t" or c in _TYPOGRAPHIC_SPACES or _is_hidden(c) for c in line)


def _escaped(line: str) -> str:
    """``line`` with each hidden character as its code point (a run of one as a count)."""
    parts = []
    for char, group in groupby(line):
        if not _is_hidden(char):
            parts.append("".join(group))
            continue
        n = sum(1 for _ in group)
        parts.append(f"⟨{_code_point(char)}⟩" if n == 1 else f"⟨{n} times {_code_point(char)}⟩")
    return "".join(parts)


def _code_point(char: str) -> str:
    return f"U+{ord(char):04X}"
