"""The model's Markdown as Telegram HTML, split into messages Telegram accepts.

Telegram's HTML mode needs only ``<``, ``>`` and ``&`` escaped and knows a handful of tags.
A message holds at most 4096 characters (UTF-16 code units, as Telegram counts). Chunks
break on paragraph, then line, then word boundaries, never inside a tag or an entity;
tags open at a break are closed at the end of one chunk and reopened at the start of the next.
"""

from __future__ import annotations

import html
import re

TELEGRAM_MESSAGE_LIMIT = 4096

_FENCE_RE = re.compile(
    r"^```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^```[ \t]*(?:\n|\Z)|\Z)", re.M | re.S
)
_INLINE_CODE_RE = re.compile(r"`([^`\n]+)`")
_LINK_RE = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)<>\"]+)\)")
_BOLD_RE = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_STRIKE_RE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_ITALIC_RE = re.compile(
    r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])"
    r"|(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])"
)
_HEADING_RE = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET_RE = re.compile(r"^(\s*)[-*+]\s+")
_TOKEN_RE = re.compile(r"<[^>]*>|&#?[A-Za-z0-9]+;|[^<&]", re.S)
_TAG_RE = re.compile(r"<(/?)([a-z][a-z0-9-]*)")


def escape_html(text: str) -> str:
    """Escape the three characters Telegram's HTML mode requires (quotes left alone)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def markdown_to_html(markdown: str) -> str:
    """Convert common Markdown (code blocks, inline code, bold, italic, strike, links,
    headings, bullets, quotes) to Telegram HTML; anything else stays as escaped text."""
    out: list[str] = []
    pos = 0
    for fence in _FENCE_RE.finditer(markdown):
        out.append(_blocks_to_html(markdown[pos : fence.start()]))
        lang, code = fence.group(1), fence.group(2).rstrip("\n")
        attr = f' class="language-{escape_html(lang)}"' if lang else ""
        out.append(f"<pre><code{attr}>{escape_html(code)}</code></pre>\n")
        pos = fence.end()
    out.append(_blocks_to_html(markdown[pos:]))
    return "".join(out).strip("\n")


def _blocks_to_html(text: str) -> str:
    lines: list[str] = []
    quote: list[str] = []
    for line in text.split("\n"):
        if line.startswith(">"):
            quote.append(_inline(line[1:].removeprefix(" ")))
            continue
        if quote:
            lines.append("<blockquote>" + "\n".join(quote) + "</blockquote>")
            quote = []
        heading = _HEADING_RE.match(line)
        if heading:
            lines.append(f"<b>{_inline(heading.group(1))}</b>")
            continue
        bullet = _BULLET_RE.match(line)
        if bullet:
            line = f"{bullet.group(1)}• {line[bullet.end():]}"
        lines.append(_inline(line))
    if quote:
        lines.append("<blockquote>" + "\n".join(quote) + "</blockquote>")
    return "\n".join(lines)


def _inline(line: str) -> str:
    parts: list[str] = []
    pos = 0
    for code in _INLINE_CODE_RE.finditer(line):
        parts.append(_emphasis(line[pos : code.start()]))
        parts.append(f"<code>{escape_html(code.group(1))}</code>")
        pos = code.end()
    parts.append(_emphasis(line[pos:]))
    converted = "".join(parts)
    # Overlapping markers (``**a *b** c*``) would produce crossed tags: keep such a line as text.
    return converted if _balanced(converted) else escape_html(line)


def _emphasis(text: str) -> str:
    # Links first, so emphasis markers inside a URL never become tags in its href.
    out: list[str] = []
    pos = 0
    for link in _LINK_RE.finditer(text):
        out.append(_styles(escape_html(text[pos : link.start()])))
        href = escape_html(link.group(2)).replace('"', "&quot;")
        out.append(f'<a href="{href}">{_styles(escape_html(link.group(1)))}</a>')
        pos = link.end()
    out.append(_styles(escape_html(text[pos:])))
    return "".join(out)


def _styles(text: str) -> str:
    text = _BOLD_RE.sub(lambda m: f"<b>{m.group(1) or m.group(2)}</b>", text)
    text = _STRIKE_RE.sub(r"<s>\1</s>", text)
    return _ITALIC_RE.sub(lambda m: f"<i>{m.group(1) or m.group(2)}</i>", text)


def _balanced(fragment: str) -> bool:
    stack: list[str] = []
    for closing, name in _TAG_RE.findall(fragment):
        if not closing:
            stack.append(name)
        elif not stack or stack.pop() != name:
            return False
    return not stack


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def split_html(text: str, limit: int = TELEGRAM_MESSAGE_LIMIT) -> list[str]:
    """Split Telegram HTML into chunks of at most ``limit`` UTF-16 units, each valid on its own."""
    if utf16_len(text) <= limit:
        return [text] if html_to_plain(text).strip() else []
    tokens = _TOKEN_RE.findall(text)
    sizes = [utf16_len(t) for t in tokens]
    chunks: list[str] = []
    stack: list[tuple[str, str]] = []  # (tag name, its opening tag) of tags open here
    i = 0
    while i < len(tokens):
        prefix = "".join(opening for _, opening in stack)
        size = utf16_len(prefix)
        cur = list(stack)
        closers = sum(len(name) + 3 for name, _ in cur)
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
        if j >= len(tokens):
            end, end_stack = j, cur
        else:
            end, end_stack = _choose_break(breaks, limit) or (j, cur)
            if end <= i:  # a single token larger than the limit cannot happen with our tags
                end, end_stack = i + 1, cur
        body = "".join(tokens[i:end])
        chunk = prefix + body.rstrip("\n ") + "".join(f"</{name}>" for name, _ in reversed(end_stack))
        if html_to_plain(chunk).strip():
            chunks.append(chunk)
        stack, i = end_stack, end
        while i < len(tokens) and tokens[i] == "\n" and not stack:
            i += 1  # no leading blank lines in the next message
    return chunks


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
            cut = limit
            while utf16_len(line[:cut]) > limit:
                cut -= 1
            parts.append(line[:cut])
            line = line[cut:]
        if utf16_len(current + line) > limit:
            parts.append(current)
            current = ""
        current += line
    if current.strip():
        parts.append(current)
    return [p for p in parts if p.strip()]
