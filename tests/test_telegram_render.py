"""Markdown → Telegram HTML and splitting: every chunk valid on its own, nothing lost."""

from __future__ import annotations

import html.parser
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from sqs_consumer import (
    TELEGRAM_MESSAGE_LIMIT,
    html_to_plain,
    markdown_to_html,
    render_reply,
    split_html,
    split_plain,
    utf16_len,
)
from telegram_support import long_markdown

_TAGS = {"b", "i", "s", "code", "pre", "a", "blockquote"}


class _Strict(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        assert tag in _TAGS, tag
        self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"

    def handle_data(self, data):
        assert "<" not in data and ">" not in data and "&" not in data, data

    def handle_entityref(self, name):
        assert name in {"lt", "gt", "amp", "quot"}, name


def assert_valid(chunk: str) -> None:
    parser = _Strict()
    parser.feed(chunk)
    parser.close()
    assert parser.stack == [] and parser.rawdata == ""


def squash(text: str) -> str:
    return "".join(text.split())


def test_escapes_and_keeps_code_blocks() -> None:
    out = markdown_to_html("a < b && c > d\n\n```js\nif (a<b) { x = '&'; }\n```\n**bold** `x<y`")
    assert out == (
        "a &lt; b &amp;&amp; c &gt; d\n\n"
        "<pre><code class=\"language-js\">if (a&lt;b) { x = '&amp;'; }</code></pre>\n"
        "<b>bold</b> <code>x&lt;y</code>"
    )


def test_crossed_markers_stay_text_instead_of_breaking_html() -> None:
    out = markdown_to_html("**a *b** c*")
    assert_valid(out)
    assert html_to_plain(out) == "**a *b** c*"


def test_ten_thousand_characters_with_code_blocks_split_into_valid_chunks() -> None:
    markdown = long_markdown(10_000)
    chunks = render_reply(markdown)
    assert len(chunks) >= 3
    for chunk in chunks:
        assert utf16_len(chunk) <= TELEGRAM_MESSAGE_LIMIT
        assert_valid(chunk)
    assert squash("".join(html_to_plain(c) for c in chunks)) == squash(
        html_to_plain(markdown_to_html(markdown))
    )


def test_a_code_block_longer_than_a_message_is_closed_and_reopened() -> None:
    code = "\n".join(f"line {i} <x> & y" for i in range(600))
    chunks = render_reply(f"```python\n{code}\n```")
    assert len(chunks) >= 3
    for chunk in chunks:
        assert chunk.startswith('<pre><code class="language-python">')
        assert chunk.endswith("</code></pre>")
        assert_valid(chunk)
    # breaks fall on line boundaries: every line arrives whole
    lines = [line for c in chunks for line in html_to_plain(c).split("\n")]
    assert lines == code.split("\n")


def test_breaks_prefer_paragraphs_then_lines_then_words() -> None:
    paragraphs = ["word " * 150 for _ in range(12)]
    chunks = render_reply("\n\n".join(p.strip() for p in paragraphs))
    for chunk in chunks[:-1]:
        assert chunk.endswith("word")  # a whole paragraph (or line) ended the chunk
    one_line = "x" * 9000
    assert [len(c) for c in render_reply(one_line)] == [4096, 4096, 808]


def test_limit_is_counted_in_utf16_units_as_telegram_does() -> None:
    chunks = render_reply("😀" * 3000)  # 2 UTF-16 units each
    assert all(utf16_len(c) <= TELEGRAM_MESSAGE_LIMIT for c in chunks)
    assert len(chunks) == 2


def test_empty_and_whitespace_answers_give_no_chunks() -> None:
    assert render_reply("") == [] and render_reply("  \n\n ") == []


def test_split_plain_respects_the_limit() -> None:
    parts = split_plain("line\n" * 100 + "z" * 300, 120)
    assert all(utf16_len(p) <= 120 for p in parts)
    assert "".join(parts) == "line\n" * 100 + "z" * 300


markdown_pieces = st.lists(
    st.sampled_from(
        [
            "**bold**",
            "*it*",
            "_u_",
            "~~s~~",
            "`co<de>`",
            "[l](https://x.y/a_b)",
            "# head",
            "- item",
            "> quote",
            "```py\nx < 1\n```",
            "\n",
            "\n\n",
            " ",
            "&",
            "<",
            ">",
            "**",
            "`",
            "😀",
            "word",
        ]
    )
    | st.text(max_size=30),
    max_size=400,
)


@settings(max_examples=150, deadline=None)
@given(pieces=markdown_pieces, limit=st.sampled_from([64, 200, 4096]))
def test_any_markdown_renders_to_valid_chunks_within_the_limit(pieces, limit) -> None:
    markdown = "".join(pieces)
    full = markdown_to_html(markdown)
    assert_valid(full)
    chunks = split_html(full, limit)
    for chunk in chunks:
        assert utf16_len(chunk) <= limit
        assert_valid(chunk)
    assert squash("".join(html_to_plain(c) for c in chunks)) == squash(html_to_plain(full))
