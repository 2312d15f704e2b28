"""The bits of HTML a model writes in its Markdown, shown as Telegram can show them.

Models write ``<br>`` in table cells, ``&nbsp;``, ``<kbd>Ctrl</kbd>``, ``H<sub>2</sub>O`` and
``<details>`` around a long part. Telegram's HTML mode knows a few tags and four named
entities and refuses the rest, and escaped they showed as markup. Each becomes what it means:
a line break, the character, code, Unicode sub/superscripts, or the tag Telegram has for it.
``<p>`` sets its text apart by a blank line; ``<a href>`` is a link and ``<img>`` a link named
by its alt text, as Markdown's are; any other tag stays visible text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

# Tags whose text is literal, like a code span's: matched before any Markdown, on the source
# (code spans in it already set aside as private-use characters, which no code tag holds).
# A code tag's text never runs past another code tag (a line of unclosed ones stays quick).
_LITERAL_HTML_RE = re.compile(
    r"(?P<br><br[ \t]*/?>[ \t]*(?P<line_end>\n|$)?)"
    r"|(?P<comment><!--(?:(?!<!--|-->).)*-->)"
    r"|(?P<reference>&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});)"
    r"|<(?P<code>kbd|code|samp)>"
    r"(?P<code_text>(?:[^<\n\U00100000-\U0010ffff]|<(?!/?(?:kbd|code|samp)>))*)</(?P=code)>"
    r"|<(?P<script>sub|sup)>(?P<script_text>[^<>\n\U00100000-\U0010ffff]+)</(?P=script)>",
    re.I,
)
# A run of <p> and </p> tags is one paragraph break.
_PARAGRAPH_TAGS_RE = re.compile(r"(?:</?p(?:\s[^<>]*)?>\s*)+", re.I)
# <a href="…">text</a>: its text never runs past another <a (a line of unclosed ones stays
# quick). An attribute's value may be quoted either way or not at all.
_VALUE = r"""(?:"([^"<>]*)"|'([^'<>]*)'|([^\s"'<>=`]+))"""
_HTML_LINK_RE = re.compile(
    rf"<a\s(?:[^<>]*?\s)??href\s*=\s*{_VALUE}[^<>]*>((?:(?!<a[\s>]|</a>).)*)</a\s*>", re.I | re.S
)
_HTML_IMAGE_RE = re.compile(r"<img\s[^<>]*>", re.I)
_IMAGE_ATTRIBUTE_RE = re.compile(rf"(?<![\w-])(src|alt)\s*=\s*{_VALUE}", re.I)
# Tags with a Telegram equivalent, matched on escaped text with the Markdown emphasis.
# <summary> names a <details> whose body is shown in full: Telegram folds nothing that may
# hold code blocks and lists.
_STYLE_TAGS = {"b": "b", "strong": "b", "summary": "b", "i": "i", "em": "i"}
_STYLE_TAGS |= {"u": "u", "ins": "u", "s": "s", "strike": "s", "del": "s"}
_STYLE_TAG_RE = re.compile(rf"&lt;(/?)({'|'.join(_STYLE_TAGS)})&gt;", re.I)
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
    """Escaped ``text`` with each pair of style tags the model wrote as Telegram's tag, nested
    however deep; a closing tag pairs with the nearest opening one of its name before it, and
    a tag without a partner (or around nothing) stays text."""
    pieces: list[str] = []
    opened: dict[str, list[tuple[int, int]]] = {}  # name: (piece index, end in text) of each open tag
    pos = 0
    for tag in _STYLE_TAG_RE.finditer(text):
        pieces.append(text[pos : tag.start()])
        pos = tag.end()
        closing, name = tag.group(1), tag.group(2).lower()
        waiting = opened.setdefault(name, [])
        if not closing:
            waiting.append((len(pieces), tag.end()))
            pieces.append(tag.group())
            continue
        if waiting and waiting[-1][1] < tag.start():
            index, _ = waiting.pop()
            pieces[index] = f"<{_STYLE_TAGS[name]}>"
            pieces.append(f"</{_STYLE_TAGS[name]}>")
        else:
            if waiting:
                waiting.pop()  # around nothing: both stay text
            pieces.append(tag.group())
    pieces.append(text[pos:])
    return "".join(pieces)


def with_html_links(text: str, link: Callable[[str, str], str]) -> str:
    """``text`` with each ``<a href>`` the model wrote as ``link(address, label)``, and each
    ``<img>`` as ``link(src, alt)`` (an image inside a link's text as its alt text alone:
    Telegram shows no image inline and nests no link in a link)."""

    def anchor(match: re.Match[str]) -> str:
        address = next(value for value in match.groups()[:3] if value is not None)
        label = _HTML_IMAGE_RE.sub(
            lambda image: _image_attributes(image.group()).get("alt", ""), match.group(4)
        )
        return link(address, label)

    def image(match: re.Match[str]) -> str:
        attributes = _image_attributes(match.group())
        return link(attributes.get("src", ""), attributes.get("alt", ""))

    return _HTML_IMAGE_RE.sub(image, _HTML_LINK_RE.sub(anchor, text))


def _image_attributes(tag: str) -> dict[str, str]:
    return {
        match.group(1).lower(): next(value for value in match.groups()[1:] if value is not None)
        for match in _IMAGE_ATTRIBUTE_RE.finditer(tag)
    }


def with_literal_html(text: str, protect: Callable[[str], str], escape: Callable[[str], str]) -> str:
    """``text`` with each ``<br>`` a line end, each run of ``<p>`` tags a blank line, and each
    character reference, code tag and sub/superscript set aside by ``protect`` as Telegram
    HTML (``escape`` makes text HTML)."""

    def shown(match: re.Match[str]) -> str:
        if match.group("br"):
            # One line break, with the line end after it or without; none at the text's end.
            # Set aside, it is no space to emphasis: **Note:<br>** is bold, as CommonMark has it.
            return "" if match.group("line_end") == "" else protect("\n")
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

    return _paragraphs_apart(_LITERAL_HTML_RE.sub(shown, text))


def _paragraphs_apart(text: str) -> str:
    """``text`` with each run of ``<p>`` and ``</p>`` tags inside it a blank line, and those
    at its start or end gone."""
    pieces: list[str] = []
    pos, text_seen, text_end = 0, False, len(text.rstrip())
    for tags in _PARAGRAPH_TAGS_RE.finditer(text):
        before = text[pos : tags.start()]
        text_seen = text_seen or bool(before.strip())
        pos = tags.end()
        at_edge = not text_seen or pos >= text_end
        pieces.append(before if at_edge else before.rstrip() + "\n\n")
    pieces.append(text[pos:])
    return "".join(pieces)


def _script(kind: str, text: str) -> str:
    """A sub- or superscript in Unicode's small characters; where some character has none,
    as a formula writes it (``2^(n log n)``, ``log_b``)."""
    table, mark = (_SUPERSCRIPTS, "^") if kind == "sup" else (_SUBSCRIPTS, "_")
    if all(ord(char) in table for char in text):
        return text.translate(table)
    return f"{mark}{text}" if len(text) == 1 or text[0] in "([{" else f"{mark}({text})"
