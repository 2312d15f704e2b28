"""The bits of HTML a model writes in its Markdown, shown as Telegram can show them.

Models write ``<br>`` in table cells, ``&nbsp;``, ``<kbd>Ctrl</kbd>``, ``H<sub>2</sub>O`` and
``<details>`` around a long part. Telegram's HTML mode knows a few tags and four named
entities and refuses the rest, and escaped they showed as markup. Each becomes what it means:
a line break, the character, code, Unicode sub/superscripts, or the tag Telegram has for it;
any other tag stays visible text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

# Tags whose text is literal, like a code span's: matched before any Markdown, on the source.
# A code tag's text never runs past another code tag (a line of unclosed ones stays quick).
_LITERAL_HTML_RE = re.compile(
    r"(?P<br><br[ \t]*/?>[ \t]*(?P<line_end>\n|$)?)"
    r"|(?P<comment><!--(?:(?!<!--|-->).)*-->)"
    r"|(?P<reference>&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});)"
    r"|<(?P<code>kbd|code|samp)>(?P<code_text>(?:[^<\n]|<(?!/?(?:kbd|code|samp)>))*)</(?P=code)>"
    r"|<(?P<script>sub|sup)>(?P<script_text>[^<>\n]+)</(?P=script)>",
    re.I,
)
# Tags with a Telegram equivalent, matched on escaped text with the Markdown emphasis. A pair
# never runs past another opener of its own (a long line of unclosed ones stays quick).
# <summary> names a <details> whose body is shown in full: Telegram folds nothing that may
# hold code blocks and lists.
_STYLE_TAGS = {"b": "b", "strong": "b", "summary": "b", "i": "i", "em": "i"}
_STYLE_TAGS |= {"u": "u", "ins": "u", "s": "s", "strike": "s", "del": "s"}
_STYLE_TAG_RE = re.compile(
    rf"&lt;({'|'.join(_STYLE_TAGS)})&gt;((?:(?!&lt;\1&gt;).)+?)&lt;/\1&gt;", re.I | re.S
)
# <details> and </details> at a line's start or end: the line keeps the rest (often <summary>).
DETAILS_TAGS_RE = re.compile(
    r"^[ \t]*(?:</?details\b[^<>]*>[ \t]*)+|(?:[ \t]*</?details\b[^<>]*>)+[ \t]*$", re.I
)

_SUPERSCRIPTS = str.maketrans(
    "0123456789+-=()abcdefghijklmnoprstuvwxyz",
    "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻ",
)
_SUBSCRIPTS = str.maketrans("0123456789+-=()aehijklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ")


def with_style_tags(text: str) -> str:
    """Escaped ``text`` with each pair of style tags the model wrote as Telegram's tag."""

    def styled(tag: re.Match[str]) -> str:
        name = _STYLE_TAGS[tag.group(1).lower()]
        return f"<{name}>{tag.group(2)}</{name}>"

    # A pass takes the outermost pairs; a few more take what nests in them (<summary><b>).
    for _ in range(3):
        text, found = _STYLE_TAG_RE.subn(styled, text)
        if not found:
            break
    return text


def with_literal_html(text: str, protect: Callable[[str], str], escape: Callable[[str], str]) -> str:
    """``text`` with each ``<br>`` a line end, and each character reference, code tag and
    sub/superscript set aside by ``protect`` as Telegram HTML (``escape`` makes text HTML)."""

    def shown(match: re.Match[str]) -> str:
        if match.group("br"):
            # One line break, with the line end after it or without; none at the text's end.
            return "" if match.group("line_end") == "" else "\n"
        if match.group("comment"):
            return ""  # Markdown shows none
        if match.group("reference"):
            reference = match.group("reference")
            character = html.unescape(reference)
            return reference if character == reference else protect(escape(character))
        if match.group("code"):
            return protect(f"<code>{escape(html.unescape(match.group('code_text')))}</code>")
        return protect(
            escape(_script(match.group("script").lower(), html.unescape(match.group("script_text"))))
        )

    return _LITERAL_HTML_RE.sub(shown, text)


def _script(kind: str, text: str) -> str:
    """A sub- or superscript in Unicode's small characters; where some character has none,
    as a formula writes it (``2^(n log n)``, ``log_b``)."""
    table, mark = (_SUPERSCRIPTS, "^") if kind == "sup" else (_SUBSCRIPTS, "_")
    if all(ord(char) in table for char in text):
        return text.translate(table)
    return f"{mark}{text}" if len(text) == 1 or text[0] in "([{" else f"{mark}({text})"
