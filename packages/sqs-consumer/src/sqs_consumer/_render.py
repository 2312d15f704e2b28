"""The model's Markdown as Telegram HTML, split into messages Telegram accepts.

Telegram's HTML mode needs only ``<``, ``>`` and ``&`` escaped and knows a handful of tags.
A message holds at most 4096 characters (UTF-16 code units, as Telegram counts). Chunks
break on paragraph, then line, then word boundaries, never inside a tag or an entity;
tags open at a break are closed at the end of one chunk and reopened at the start of the next.
"""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Callable

from session_core import fenced_blocks, shown_characters, utf16_len, within_utf16

from ._inline_html import DETAILS_TAGS_RE, with_html_links, with_literal_html, with_style_tags
from ._link_address import EMAIL_ADDRESS, LINK_SCHEME, LinkTarget, link_target
from ._tables import table_as_text, table_at

TELEGRAM_MESSAGE_LIMIT = 4096
# Telegram keeps the first 100 formatting entities of a message and drops the rest silently
# (a long list of bold names shows plain from its middle on). Each tag counts as one here.
TELEGRAM_MESSAGE_ENTITIES = 100

_LANG_RE = re.compile(r"[\w+#.-]+")
_BACKTICKS_RE = re.compile(r"`+")
# A backslash before ASCII punctuation makes it a literal character (CommonMark 2.4); at
# a line's end, outside code, it is a hard line break (6.7), shown as the line end alone.
_ESCAPE_RE = re.compile(r"\\([!-/:-@\[-`{-~])")
_ASCII_PUNCTUATION_RE = re.compile(r"([!-/:-@\[-`{-~])")
_HARD_BREAK_RE = re.compile(r"(?<!\\)((?:\\\\)*)\\$", re.M)  # an odd run of backslashes ends the line


def _nested(opening: str, closing: str, inner: str, depth: int) -> str:
    """A pattern for ``opening``…``closing`` around ``inner`` characters and such pairs nested
    up to ``depth`` deep in all. Each level is a separate pattern, so a line of unclosed pairs
    costs a scan ``depth`` pairs long from each, never to the end of the line."""
    pattern = f"{opening}{inner}*{closing}"
    for _ in range(depth - 1):
        pattern = f"{opening}(?:{inner}|{pattern})*{closing}"
    return pattern


# CommonMark allows any balanced parentheses in an address (Wikipedia's
# "Python_(programming_language)") and brackets in a link's text ([[1]](url)); three levels,
# the least it asks implementations to support, are plenty for real links. In <…> an address
# may hold any but a line end or angle brackets (spaces, a lone parenthesis). A title after it
# ("…", '…' or (…)) is dropped: Telegram shows none. An image (![alt](url)) cannot be shown
# inline: it becomes a link named by its alt text. <https://…> is an autolink.
_LABEL_CHARACTER, _ADDRESS_CHARACTER = r"[^\[\]\n]", r"[^\s()<>]"
_BRACKETS = _nested(r"\[", r"\]", _LABEL_CHARACTER, 3)
_PARENTHESES = _nested(r"\(", r"\)", _ADDRESS_CHARACTER, 3)
_LABEL = f"(?:{_LABEL_CHARACTER}|{_BRACKETS})*"
_ADDRESS = f"(?:{_ADDRESS_CHARACTER}|{_PARENTHESES})+"
_LINK_RE = re.compile(
    rf"!?\[({_LABEL})\]\([ \t]*"
    rf"(?:<({LINK_SCHEME}[^<>\n]*)>|({LINK_SCHEME}{_ADDRESS}))"
    r"""(?:[ \t]+(?:"[^"\n]*"|'[^'\n]*'|\([^()\n]*\)))?[ \t]*\)"""
    rf"|<({LINK_SCHEME}[^\s<>]+)>"
)
# Autolinks bind before a link's brackets (CommonMark 6.3: [see <https://a.example>](url) is
# a link whose text holds an autolink), so they are set aside first; an e-mail one
# (<ada@example.org>, 6.5) shows without its angle brackets, as Telegram links an address in
# the text itself. A link's address in angle brackets ([a](<https://…>)) is no autolink.
_AUTOLINK_RE = re.compile(
    rf"(?P<destination>\]\([ \t]*<[^<>\n]*>)"
    rf"|<(?P<address>{LINK_SCHEME}[^\s<>]+)>"
    rf"|<(?P<email>{EMAIL_ADDRESS})>"
)
# An image inside a link's text (a README badge, [![Build](badge.svg)](https://ci/…)) is
# named by its alt text: Telegram nests no link in a link, and the outer one is what a tap
# should open. Its address may be relative (no scheme), as badges' often are.
_IMAGE_IN_LABEL_RE = re.compile(r"!\[([^\[\]\n]*)\]\((?:[^()\n]|\([^()\n]*\))*\)")
# A bare URL (GFM's extended autolink), or an address with a path and no scheme
# (example.com/a_b): Telegram links it itself, so its _ * ~ are part of the address, never
# emphasis. Such an address starts a word, not a path (a/b.com/c) nor a file name's middle
# (_main.py_). Trailing punctuation ends the sentence, not the URL.
_BARE_URL_RE = re.compile(
    r"(?<![^\W_])(?:https?://|www\.|(?<![./@-])(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}/)"
    r"[^\s<>\"`\U00100000-\U0010ffff]+"
)
_URL_TRAILING = "?!.,:;*_~'\""
# One pattern per marker, applied in turn, so one kind nests inside another (**a _b_ c**).
# They span the lines of a paragraph (which is matched whole), never a blank line.
# Emphasis never runs past a marker that could open another (one after a space, or for _
# and * not inside a word): CommonMark reads "**a **b**" so, and an opener without a closer
# then costs a scan to the next marker, not to the end of the line (a long line of
# unclosed markers would take seconds).
_BOLD_ITALIC_RES = (
    re.compile(r"\*\*\*(?=[^\s*])((?:(?!(?<!\S)\*\*\*).)+?)(?<=[^\s*])\*\*\*", re.S),
    re.compile(r"(?<![\w_])___(?=[^\s_])((?:(?!(?<![\w_])___).)+?)(?<=[^\s_])___(?![\w_])", re.S),
)
# Underscores never open or close emphasis inside a word (author__name__startswith).
_BOLD_RES = (
    re.compile(r"\*\*(?=\S)((?:(?!(?<!\S)\*\*).)+?)(?<=\S)\*\*", re.S),
    re.compile(r"(?<![\w_])__(?=[^\s_])((?:(?!(?<![\w_])__).)+?)(?<=[^\s_])__(?![\w_])", re.S),
)
_STRIKE_RE = re.compile(r"~~(?=\S)((?:(?!(?<!\S)~~).)+?)(?<=\S)~~", re.S)
_ITALIC_RES = (
    re.compile(r"(?<![\w*])\*(?=[^\s*])((?:(?!(?<![\w*])\*).)+?)(?<=[^\s*])\*(?![\w*])", re.S),
    re.compile(r"(?<![\w_])_(?=[^\s_])((?:(?!(?<![\w_])_).)+?)(?<=[^\s_])_(?![\w_])", re.S),
)
# ATX heading: the closing #s count only after a space ("# C#" is the heading "C#").
_HEADING_RE = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_BULLET_RE = re.compile(r"^(\s*)[-*+]\s+")
_ORDERED_RE = re.compile(r"^\s*\d{1,9}[.)](?:\s|$)")
# A GFM task list item's box, "[ ]" or "[x]", before its text.
_TASK_RE = re.compile(r"\[([ xX])\][ \t]+(?=\S)")
# A thematic break (---, ***, _ _ _): under a paragraph, --- underlines a heading instead.
_RULE_RE = re.compile(r"^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$")
# Telegram has no rule: a row of box-drawing lines reads as one, short enough not to wrap
# on a phone, in a quote too.
_DIVIDER = "─" * 12
# Setext heading: its text's lines underlined with = or - (CommonMark 4.3).
_SETEXT_UNDERLINE_RE = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
_QUOTE_RE = re.compile(r"^ {0,3}>")
# Every level of a quote's markers: Telegram nests no quote in another, so > > is one quote.
_QUOTE_MARKERS_RE = re.compile(r"^(?: {0,3}> ?)+")
_PRE_BLOCK_RE = re.compile(r"(<pre>.*?</pre>)", re.S)
# Stand-ins for code spans and escaped characters while emphasis and links are matched:
# private-use characters of plane 16, which any such character in the text also becomes.
_PLACEHOLDER_BASE = 0x100000
_PLACEHOLDER_RE = re.compile("[\U00100000-\U0010ffff]")
_TOKEN_RE = re.compile(r"<[^>]*>|&#?[A-Za-z0-9]+;|[^<&]+", re.S)
_TAG_RE = re.compile(r"<(/?)([a-z][a-z0-9-]*)")
_OPENING_TAG_RE = re.compile(r"<[a-z]")
_LINKED_RE = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.S)
_LINK_TAG_RE = re.compile(r"</?a\b[^>]*>")
# Telegram nests no entity in one of its kind (a heading's **bold**, **a __b__ c**): the inner
# one goes, its text stays as styled by the outer.
_STYLE_RE = re.compile(r"<(/?)([bisu])>")


def escape_html(text: str) -> str:
    """Escape the three characters Telegram's HTML mode requires (quotes left alone)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_markdown(text: str) -> str:
    """``text`` as Markdown that shows exactly it: each ASCII punctuation character escaped
    (HTML in it is escaped when rendered)."""
    return _ASCII_PUNCTUATION_RE.sub(r"\\\1", text)


def shortened(text: str, limit: int) -> str:
    """``text`` within ``limit`` UTF-16 units, as Telegram counts: cut with "…" when longer
    (never inside a character)."""
    if utf16_len(text) <= limit:
        return text
    return within_utf16(text, limit - 1) + "…"


def markdown_to_html(markdown: str) -> str:
    """Convert common Markdown (code blocks, inline code, bold, italic, strike, links,
    headings, bullets, quotes, rules) to Telegram HTML; anything else stays as escaped text.
    Fences and code spans follow CommonMark, so no text is ever taken for markup; a bare URL
    is left whole for Telegram to link."""
    out: list[str] = []
    lines = markdown.replace("\r\n", "\n").split("\n")  # no "\r" in code, headings, tables
    pos = 0
    for start, end, opener in fenced_blocks(lines):
        if start > pos:
            out.append(_blocks_to_html("\n".join(lines[pos:start])) + "\n")
        indent, info = len(opener.group(1)), opener.group(3).strip()
        code = [_unindent(line, indent) for line in lines[start + 1 : end]]
        lang = _LANG_RE.fullmatch(info.split()[0]) if info else None
        attr = f' class="language-{escape_html(lang.group())}"' if lang else ""
        out.append(f"<pre><code{attr}>{escape_html(chr(10).join(code))}</code></pre>\n")
        pos = end + 1  # past the closing fence
    out.append(_blocks_to_html("\n".join(lines[pos:])))
    return _without_nested_styles("".join(out).strip("\n"))


def _without_nested_styles(fragment: str) -> str:
    depth = dict.fromkeys("bisu", 0)

    def kept(tag: re.Match[str]) -> str:
        closing, name = tag.groups()
        depth[name] += -1 if closing else 1
        outermost = depth[name] == (0 if closing else 1)
        return tag.group() if outermost else ""

    return _STYLE_RE.sub(kept, fragment)


def with_note(markdown: str, note: str) -> str:
    """``markdown`` with the Markdown ``note`` as a paragraph under it. A code block the text
    left open (an answer cut short by Stop or by the model's output limit) is closed first,
    so the note reads as a note, not as code."""
    text = markdown.strip()
    if not text:
        return note
    lines = text.split("\n")
    fence = next((opener.group(2) for _, end, opener in fenced_blocks(lines) if end == len(lines)), None)
    closing = f"\n{fence}" if fence else ""
    return f"{text}{closing}\n\n{note}"


def _unindent(line: str, indent: int) -> str:
    return line[min(indent, len(line) - len(line.lstrip(" "))) :]


def _blocks_to_html(text: str) -> str:
    lines: list[str] = []
    # A line of <details> tags only goes: its body shows in full (Telegram folds no code block).
    source = [rest for line in text.split("\n") if (rest := DETAILS_TAGS_RE.sub("", line)) or not line]
    index = 0
    in_list = False  # lines under a list item are its own, not a paragraph (nor a heading)
    while index < len(source):
        line = source[index]
        table = table_at(source, index)
        if table is not None:
            shown = table_as_text(table, _cell_text)
            lines.append(f"<pre>{escape_html(shown)}</pre>")
            index, in_list = table.end, False
            continue
        if _QUOTE_RE.match(line):
            end = _quote_end(source, index)
            lines.append(_quote_to_html(source[index:end]))
            index, in_list = end, False
            continue
        heading = _HEADING_RE.match(line)
        if heading:
            lines.append(f"<b>{_inline(heading.group(1) or '')}</b>")
            index, in_list = index + 1, False
            continue
        if _RULE_RE.match(line):  # a lone one: a paragraph's underline went with its heading
            lines.append(_DIVIDER)
            index, in_list = index + 1, False
            continue
        if not in_list and not _starts_block(line):
            end = _paragraph_end(source, index)
            shown = _paragraph_html(source[index:end])
            if end < len(source) and _SETEXT_UNDERLINE_RE.match(source[end]):
                lines.append(f"<b>{shown}</b>")
                end += 1
            else:
                lines.append(shown)
            index = end
            continue
        item = _BULLET_RE.match(line) or _ORDERED_RE.match(line)
        in_list = bool(item) or (in_list and bool(line.strip()))
        if not in_list:  # a blank line
            lines.append(line)
            index += 1
            continue
        end = _list_item_end(source, index)
        marker, first = _shown_list_item(line, item) if item else ("", line)
        item_lines = [first, *source[index + 1 : end]]
        list_goes_on = end < len(source) and bool(source[end].strip())
        lines.append(marker + _lines_html(item_lines, line_follows=list_goes_on))
        index = end
    return "\n".join(lines)


def _paragraph_html(lines: list[str]) -> str:
    """A paragraph's lines, their indent gone (CommonMark strips it)."""
    return _lines_html([line.strip(" \t") for line in lines])


def _lines_html(lines: list[str], *, line_follows: bool = False) -> str:
    """The lines of one paragraph or list item, matched together so emphasis may span them.
    Crossed markers keep only their own line as text."""
    text = _without_break_marks("\n".join(lines), line_follows=line_follows)
    whole, crossed = _inline_checked(text)
    return "\n".join(_inline(line) for line in text.split("\n")) if crossed else whole


def _without_break_marks(text: str, *, line_follows: bool) -> str:
    """``text`` without the backslashes that end its lines as hard breaks: the line end shows
    one. The last line's is a backslash unless a line follows it (the next list item). In a
    code span, found across the lines as CommonMark finds it, a backslash is code."""
    spans = _code_spans(text)  # in order, apart: the one a backslash may be in is found by bisection
    starts = [start for start, _, _ in spans]

    def shown(mark: re.Match[str]) -> str:
        backslash = mark.end() - 1
        before = bisect.bisect_left(starts, backslash) - 1
        in_code = before >= 0 and backslash < spans[before][1]
        ends_text = mark.end() == len(text) and not line_follows
        return mark.group() if in_code or ends_text else mark.group(1)

    return _HARD_BREAK_RE.sub(shown, text)


def _list_item_end(source: list[str], start: int) -> int:
    """The index after the list item at ``source[start]``: the lines under it that carry on
    its text (indented or lazy), up to a blank line, a new item or another block."""
    end = start + 1
    while end < len(source) and not _starts_block(source[end]) and table_at(source, end) is None:
        end += 1
    return end


def _shown_list_item(line: str, item: re.Match[str]) -> tuple[str, str]:
    """A list item's marker as the chat shows it (a bullet as "•", a task's box as "☐" or
    "☑", in place of the bullet as GitHub shows it), and its text."""
    bullet = item.re is _BULLET_RE
    marker, text = f"{item.group(1)}• " if bullet else item.group(), line[item.end() :]
    task = _TASK_RE.match(text)
    if task:
        box = "☐ " if task.group(1) == " " else "☑ "
        marker, text = (item.group(1) if bullet else marker) + box, text[task.end() :]
    return marker, text


def _starts_block(line: str) -> bool:
    """Whether ``line`` is anything but paragraph text (a paragraph's lines end before it)."""
    return (
        not line.strip()
        or bool(_QUOTE_RE.match(line) or _HEADING_RE.match(line) or _RULE_RE.match(line))
        or bool(_BULLET_RE.match(line) or _ORDERED_RE.match(line))
    )


def _paragraph_end(source: list[str], start: int) -> int:
    end = start + 1
    while (
        end < len(source)
        and not _starts_block(source[end])
        and not _SETEXT_UNDERLINE_RE.match(source[end])
        and table_at(source, end) is None
    ):
        end += 1
    return end


def _quote_end(source: list[str], start: int) -> int:
    """The index after the quote that starts at ``source[start]``: its ``>`` lines and the
    lazy lines that carry on a paragraph in it (CommonMark 5.1: "> a" then "b" is one
    quoted paragraph)."""
    end = start
    since_lazy: list[str] = []  # the quote's content since its last lazy line
    while end < len(source):
        line = source[end]
        if _QUOTE_RE.match(line):
            since_lazy.append(_QUOTE_MARKERS_RE.sub("", line, count=1))
        elif _continues_paragraph(since_lazy, source, end):
            since_lazy = []  # a lazy line is paragraph text: no code block is open after it
        else:
            break
        end += 1
    return end


def _continues_paragraph(since_lazy: list[str], source: list[str], index: int) -> bool:
    """Whether ``source[index]``, with no ``>``, carries on the paragraph the quote's content
    ends in (``since_lazy`` empty: the line before was such a line itself)."""
    line = source[index]
    if _starts_block(line) or _SETEXT_UNDERLINE_RE.match(line) or table_at(source, index) is not None:
        return False
    if next(fenced_blocks([line]), None) is not None:
        return False  # a fence opens a code block after the quote
    if not since_lazy:
        return True
    last = since_lazy[-1]
    ends_in_text = not (
        _HEADING_RE.match(last)
        or _RULE_RE.match(last)
        or _SETEXT_UNDERLINE_RE.match(last)
        or not last.strip()
    )
    # A quote's code block (or its closing fence) is no paragraph: the quote ends with it.
    in_code = any(end >= len(since_lazy) - 1 for _, end, _ in fenced_blocks(since_lazy))
    return ends_in_text and not in_code


def _quote_to_html(quoted: list[str]) -> str:
    """A quote's lines rendered as any Markdown (lists, headings, code) inside the quote.
    Telegram nests no code block in a quote: the quote stops around each one."""
    content = "\n".join(_QUOTE_MARKERS_RE.sub("", line, count=1) for line in quoted)
    parts = _PRE_BLOCK_RE.split(markdown_to_html(content))
    shown = [part.strip("\n") for part in parts]
    return "\n".join(
        part if part.startswith("<pre>") else f"<blockquote>{part}</blockquote>" for part in shown if part
    )


def _cell_text(cell: str) -> str:
    """A table cell as monospace text shows it: its visible text, a link's address after its
    words (a code block holds no link to tap)."""

    def with_address(link: re.Match[str]) -> str:
        href, words = link.groups()
        return words if html_to_plain(words) == html.unescape(href) else f"{words} ({href})"

    return html_to_plain(_LINKED_RE.sub(with_address, _inline(cell)))


def _inline(line: str) -> str:
    return _inline_checked(line)[0]


def _inline_checked(line: str) -> tuple[str, bool]:
    """``line`` as HTML, and whether its markers crossed (``**a *b** c*``): they would
    produce crossed tags, so the line's markers are then kept as text."""
    # Code spans, escapes and the HTML the model writes are taken out first (CommonMark gives
    # them precedence), so emphasis and links may contain them and never look inside them.
    protected: list[str] = []

    def protect(html_text: str) -> str:
        protected.append(html_text)
        return chr(_PLACEHOLDER_BASE + len(protected) - 1)

    line = _PLACEHOLDER_RE.sub(lambda m: protect(m.group()), line)
    parts: list[str] = []
    pos = 0
    for start, end, content in _code_spans(line):
        parts.append(line[pos:start])
        parts.append(protect(f"<code>{escape_html(_restore(content, protected, plain=True))}</code>"))
        pos = end
    parts.append(line[pos:])
    # The rest is matched whole, code spans set aside: a <br> between two of them breaks the line.
    text = _ESCAPE_RE.sub(lambda m: protect(escape_html(m.group(1))), "".join(parts))
    text = with_literal_html(text, protect, escape_html)
    # Links next, also kept aside, so emphasis may wrap one (**[Title](url)**) and markers
    # inside a URL never become tags in its href.
    text = _AUTOLINK_RE.sub(lambda m: _autolink(m, protect, protected), text)
    text = with_html_links(text, lambda address, label: _link_or_text(address, label, protect, protected))
    text = _LINK_RE.sub(lambda m: _link_or_markdown(m, protect, protected), text)
    text = _BARE_URL_RE.sub(lambda m: _protect_url(m.group(), protect), text)
    converted = _styles(escape_html(text))
    crossed = not _balanced(converted)
    return _restore(escape_html(text) if crossed else converted, protected), crossed


def _protect_url(candidate: str, protect: Callable[[str], str]) -> str:
    url = candidate
    while url and (url[-1] in _URL_TRAILING or (url[-1] == ")" and url.count(")") > url.count("("))):
        url = url[:-1]
    return protect(escape_html(url)) + candidate[len(url) :]


def _code_spans(line: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of each code span: a run of n backticks up to the next run of
    exactly n; one space on each side is dropped when both are there (CommonMark 6.1). A
    backslash before a run makes its first backtick literal (the rest may still open one);
    in a code span a backslash is code, so it never keeps a run from closing one."""
    spans = []
    search = 0
    while (opening := _BACKTICKS_RE.search(line, search)) is not None:
        start = opening.start() + (1 if _escaped(line, opening.start(), since=search) else 0)
        size = opening.end() - start
        closing = None
        if size:  # not the escaped backtick alone
            closing = next(
                (m for m in _BACKTICKS_RE.finditer(line, opening.end()) if len(m.group()) == size), None
            )
        if closing is None:  # no partner: the run is literal text
            search = opening.end()
            continue
        content = line[opening.end() : closing.start()].replace("\n", " ")  # one in a paragraph
        if len(content) >= 2 and content[0] == content[-1] == " " and content.strip(" "):
            content = content[1:-1]
        spans.append((start, closing.end(), content))
        search = closing.end()
    return spans


def _escaped(line: str, index: int, *, since: int) -> bool:
    """Whether ``line[index]`` follows an odd run of backslashes (an even one is backslashes
    escaped in turn), counting none before ``since`` (the end of the last code span)."""
    backslashes = 0
    while index - backslashes > since and line[index - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def _restore(text: str, protected: list[str], *, plain: bool = False) -> str:
    def original(m: re.Match[str]) -> str:
        snippet = protected[ord(m.group()) - _PLACEHOLDER_BASE]
        return html_to_plain(snippet) if plain else snippet

    return _PLACEHOLDER_RE.sub(original, text)


def _autolink(match: re.Match[str], protect: Callable[[str], str], protected: list[str]) -> str:
    if match.group("destination"):
        return match.group()
    if match.group("email"):
        return protect(escape_html(match.group("email")))
    return _link_or_markdown(match, protect, protected)


def _link_or_markdown(link: re.Match[str], protect: Callable[[str], str], protected: list[str]) -> str:
    """A Markdown link or autolink set aside as it shows (see ``_shown_link``); to an address
    that is no link (``javascript:``, a relative path), the Markdown as written."""
    if link.re is _AUTOLINK_RE:
        label, address = "", link.group("address")  # its text is its URL, whose _ and * are no markup
    else:
        label, bracketed_url, url, autolink = link.groups()
        address = bracketed_url or url or autolink
        label = "" if autolink else _IMAGE_IN_LABEL_RE.sub(r"\1", label or "")
    target = link_target(_restore(address, protected, plain=True))
    if target.kind == "text":
        return link.group()
    return protect(_shown_link(target, label, protected))


def _link_or_text(address: str, label: str, protect: Callable[[str], str], protected: list[str]) -> str:
    """A link the model wrote in HTML, set aside as it shows (see ``_shown_link``); to an
    address that is no link (javascript:, data:, a relative path, one without a host), its
    text alone, unlinked."""
    target = link_target(_restore(address, protected, plain=True))
    if target.kind == "text":
        return label
    return protect(_shown_link(target, label, protected))


def _shown_link(target: LinkTarget, label: str, protected: list[str]) -> str:
    """A link named by the Markdown ``label`` as Telegram can show it: ``<a>`` where Telegram
    opens the address; elsewhere the text and then the address, which would be lost: an
    e-mail address as text (Telegram links it itself), any other as code (a tap copies it)."""
    if target.kind == "opens":
        return _anchor(target.address, label, protected)
    words = _label_html(label, protected)
    address = escape_html(target.shown)
    shown_address = address if target.kind == "mail" else f"<code>{address}</code>"
    text = html_to_plain(words).strip().casefold()
    if text in ("", target.shown.casefold(), target.address.casefold()):
        return shown_address
    return f"{words} ({shown_address})"


def _anchor(address: str, label: str, protected: list[str]) -> str:
    """``<a>`` to the plain ``address`` named by the Markdown ``label`` (which may hold
    set-aside text). A link that names nothing ([](url), ![](url)) is named by its address,
    whose _ and * are no markup: Telegram would show it as nothing."""
    # A space (an address in <…> may hold one) is encoded as a browser would send it.
    href = escape_html(address).replace('"', "&quot;").replace(" ", "%20")
    shown = _label_html(label, protected) if label.strip() else escape_html(address)
    # Telegram nests no link in a link: one set aside inside this one's text keeps its text.
    return f'<a href="{href}">{_LINK_TAG_RE.sub("", shown)}</a>'


def _label_html(label: str, protected: list[str]) -> str:
    shown = _styles(escape_html(label))
    if not _balanced(shown):
        shown = escape_html(label)
    return _restore(shown, protected)


def _styles(text: str) -> str:
    text = with_style_tags(text)
    for bold_italic in _BOLD_ITALIC_RES:
        text = bold_italic.sub(r"<b><i>\1</i></b>", text)
    for bold in _BOLD_RES:
        text = bold.sub(r"<b>\1</b>", text)
    text = _STRIKE_RE.sub(r"<s>\1</s>", text)
    for italic in _ITALIC_RES:
        text = italic.sub(r"<i>\1</i>", text)
    return text


def _balanced(fragment: str) -> bool:
    stack: list[str] = []
    for closing, name in _TAG_RE.findall(fragment):
        if not closing:
            stack.append(name)
        elif not stack or stack.pop() != name:
            return False
    return not stack


def split_html(
    text: str, limit: int = TELEGRAM_MESSAGE_LIMIT, max_entities: int = TELEGRAM_MESSAGE_ENTITIES
) -> list[str]:
    """Split Telegram HTML into chunks of at most ``limit`` UTF-16 units and ``max_entities``
    tags, each valid on its own."""
    if utf16_len(text) <= limit and len(_OPENING_TAG_RE.findall(text)) <= max_entities:
        return [text] if html_to_plain(text).strip() else []
    tokens = _tokens(text)
    sizes = [utf16_len(t) for t in tokens]
    chunks: list[str] = []
    stack: list[tuple[str, str]] = []  # (tag name, its opening tag) of tags open here
    i = 0
    while i < len(tokens):
        prefix = "".join(opening for _, opening in stack)
        size = utf16_len(prefix)
        cur = list(stack)
        closers = sum(len(name) + 3 for name, _ in cur)
        entities = len(cur)  # the tags reopened here are entities of this message too
        # best break after each kind: 2 = paragraph, 1 = line, 0 = word
        breaks: dict[int, tuple[int, list[tuple[str, str]], int]] = {}
        j = i
        while j < len(tokens):
            tok = tokens[j]
            nxt, nxt_closers = cur, closers
            if tok.startswith("<"):
                closing, name = _TAG_RE.match(tok).groups()  # type: ignore[union-attr]
                if closing:
                    nxt = cur[:-1]
                    nxt_closers -= len(name) + 3
                else:
                    nxt = [*cur, (name, tok)]
                    nxt_closers += len(name) + 3
                    if entities == max_entities:
                        break
                    entities += 1
            if size + sizes[j] + nxt_closers > limit:
                break
            size += sizes[j]
            cur, closers = nxt, nxt_closers
            j += 1
            if tok == "\n":
                kind = 2 if j >= 2 and tokens[j - 2] == "\n" else 1
                breaks[kind] = (j, list(cur), size)
            elif tok == " ":
                breaks[0] = (j, list(cur), size)
        if j == i and _TAG_RE.match(tokens[i]) and not tokens[i].startswith("</"):
            # An opening tag too long for any message (a link to a huge URL): its text is
            # kept, the tag and its closing tag go.
            _drop_tag_pair(tokens, sizes, i)
            continue
        if j >= len(tokens):
            end, end_stack = j, cur
        else:
            end, end_stack = _choose_break(breaks, limit) or (j, cur)
            if end <= i:  # a token larger than the limit: our tags are short, a grapheme too
                end, end_stack = i + 1, cur
        body = "".join(tokens[i:end])
        chunk = prefix + body.rstrip("\n ") + "".join(f"</{name}>" for name, _ in reversed(end_stack))
        if html_to_plain(chunk).strip():
            chunks.append(chunk)
        stack, i = end_stack, end
        while i < len(tokens) and tokens[i] == "\n" and not stack:
            i += 1  # no leading blank lines in the next message
    return chunks


def _tokens(html_text: str) -> list[str]:
    """Tags, entities and the characters a chat shows (graphemes: a hard cut never splits a
    family emoji or a flag), in order."""
    tokens: list[str] = []
    for token in _TOKEN_RE.findall(html_text):
        tokens.extend(shown_characters(token) if token[0] not in "<&" else (token,))
    return tokens


def _drop_tag_pair(tokens: list[str], sizes: list[int], start: int) -> None:
    depth = 0
    for index in range(start, len(tokens)):
        tag = _TAG_RE.match(tokens[index])
        if tag is None:
            continue
        depth += -1 if tag.group(1) else 1
        if depth == 0:
            del tokens[index], sizes[index]
            break
    del tokens[start], sizes[start]


def _choose_break(
    breaks: dict[int, tuple[int, list[tuple[str, str]], int]], limit: int
) -> tuple[int, list[tuple[str, str]]] | None:
    # A paragraph break is preferred unless it would leave the chunk less than half full.
    for kind in (2, 1, 0):
        if kind in breaks and breaks[kind][2] >= limit // 2:
            return breaks[kind][0], breaks[kind][1]
    for kind in (2, 1, 0):
        if kind in breaks:
            return breaks[kind][0], breaks[kind][1]
    return None


def render_reply(markdown: str, limit: int = TELEGRAM_MESSAGE_LIMIT) -> list[str]:
    """The model's Markdown answer as Telegram HTML messages (empty list for an empty answer)."""
    return split_html(markdown_to_html(markdown), limit)


def html_to_plain(fragment: str) -> str:
    """The visible text of a Telegram HTML fragment (for the plain-text fallback)."""
    return html.unescape(re.sub(r"<[^>]*>", "", fragment))


def split_plain(text: str, limit: int) -> list[str]:
    """Split plain text on line (then hard) boundaries into parts of at most ``limit`` units."""
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while utf16_len(line) > limit:
            if current:
                parts.append(current)
                current = ""
            part = within_utf16(line, limit) or line[0]  # whole characters, if one fits
            parts.append(part)
            line = line[len(part) :]
        if utf16_len(current + line) > limit:
            parts.append(current)
            current = ""
        current += line
    if current.strip():
        parts.append(current)
    return [p for p in parts if p.strip()]
