"""Markdown → Telegram HTML and splitting: every chunk valid on its own, nothing lost."""

from __future__ import annotations

import html.parser
import re

import pytest
from agentbot_testing.telegram_support import long_markdown
from hypothesis import given, settings
from hypothesis import strategies as st
from session_core import utf16_len
from sqs_consumer import (
    TELEGRAM_MESSAGE_LIMIT,
    html_to_plain,
    markdown_to_html,
    render_reply,
    split_html,
    split_plain,
)

_TAGS = {"b", "i", "s", "u", "code", "pre", "a", "blockquote"}


class _Strict(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        assert tag in _TAGS, tag
        assert tag not in self.stack, f"<{tag}> inside <{tag}>"  # Telegram nests no entity in its kind
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


# -- CommonMark's rules, as a property: the visible text is the source minus its markup -----
#
# Each strategy below yields (markdown, visible text CommonMark gives it). The renderer must
# show exactly that text (whitespace aside): no character of content may vanish as markup,
# and no markup character may show. Tables stay text (Telegram has none): their pipes and
# delimiter row show; markup inside cells does not.

_MARKUP = set("*_~`[]()#>|\\-+")
_SAFE = st.characters(codec=None, exclude_categories=("Cs", "Cc", "Z")).filter(lambda c: c not in _MARKUP)
_words = st.text(_SAFE, min_size=1, max_size=8) | st.sampled_from(
    ["C#", "F#", "a_b_c", "x*y", "2*3=6", "<b>", "&amp", "&nosuch;", "\U00100000", "\U0010fffd", "😀"]
)
# Character references show as their character (CommonMark 6.2), whatever their form.
_references = st.sampled_from(
    [
        ("&amp;", "&"),
        ("&lt;b&gt;", "<b>"),
        ("&copy;", "©"),
        ("&#35;", "#"),
        ("&#x1F600;", "😀"),
        ("&nbsp;", " "),
    ]
)
_code_content = st.text(
    st.characters(codec=None, exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=12
).filter(lambda t: t.strip() and "\n" not in t and "\r" not in t)
_escapable = st.sampled_from(list("!\"#$%&'()*+,-./:;<=>?@[\\]^_{|}~"))


def _text(pairs: list[tuple[str, str]]) -> tuple[str, str]:
    return " ".join(m for m, _ in pairs), " ".join(v for _, v in pairs)


@st.composite
def code_spans(draw, size: int | None = None) -> tuple[str, str]:
    content = draw(_code_content)
    runs = [len(r) for r in re.findall("`+", content)]
    n = size if size is not None and size not in runs else max(runs, default=0) + 1
    if n in runs:
        n = max(runs) + 1
    padded = f" {content} " if content.startswith("`") or content.endswith("`") else content
    return f"{'`' * n}{padded}{'`' * n}", content


@st.composite
def emphasis(draw, inner, used: frozenset[str] = frozenset()) -> tuple[str, str]:
    marker = draw(st.sampled_from([m for m in ("**", "__", "*", "_", "~~") if m[0] not in used]))
    middle = draw(st.lists(inner(used | {marker[0]}), max_size=2))
    words = [(w, w) for w in draw(st.lists(_words, min_size=2, max_size=2))]
    markdown, visible = _text([words[0], *middle, words[1]])
    return f"{marker}{markdown}{marker}", visible


def _inline_element(used: frozenset[str] = frozenset()):
    return st.one_of(
        _words.map(lambda w: (w, w)),
        code_spans(),
        _escapable.map(lambda c: (f"\\{c}", c)),
        _references,
        st.deferred(lambda: emphasis(_inline_element, used)) if len(used) < 2 else st.nothing(),
    )


@st.composite
def links(draw) -> tuple[str, str]:
    text = draw(st.lists(_inline_element(frozenset("`")), min_size=1, max_size=3))
    path = draw(st.from_regex(r"[a-z0-9/_.*~-]{0,12}", fullmatch=True))
    markdown, visible = _text(text)
    return f"[{markdown}](https://example.com/{path})", visible


@st.composite
def inline_lines(draw) -> tuple[str, str]:
    first = draw(code_spans(3) | _inline_element() | links())  # ```span``` may open a line
    rest = draw(st.lists(_inline_element() | links(), max_size=5))
    return _text([first, *rest])


@st.composite
def fenced_blocks(draw, last: bool = False) -> tuple[str, str]:
    char = draw(st.sampled_from("`~"))
    size = draw(st.integers(3, 5))
    indent = " " * draw(st.integers(0, 3))
    info = draw(st.sampled_from(["", "py", "rm -rf /tmp/x", "c++ {.numberLines}"]))
    not_a_fence = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*$")
    lines = draw(
        st.lists(
            st.text(
                st.characters(codec=None, exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=20
            ).filter(lambda t: not not_a_fence.match(t) and "\r" not in t),
            max_size=4,
        )
    )
    closed = draw(st.booleans()) if last else True  # an unclosed fence takes the rest as code
    markdown = "\n".join(
        [f"{indent}{char * size}{info}", *lines, *([indent + char * size] if closed else [])]
    )
    return markdown, " ".join(lines)


@st.composite
def blocks(draw) -> tuple[str, str]:
    kind = draw(st.sampled_from(["paragraph", "heading", "bullet", "ordered", "quote", "fence", "table"]))
    if kind == "fence":
        return draw(fenced_blocks())
    if kind == "table":
        rows = draw(
            st.lists(
                st.lists(_inline_element(frozenset("`")), min_size=2, max_size=2), min_size=1, max_size=3
            )
        )
        texts = [[_text([cell]) for cell in row] for row in rows]
        markdown = ["| " + " | ".join(m for m, _ in row) + " |" for row in texts]
        # Lined up in a code block: the cells' text, the rule under the header dashes (which
        # the comparison leaves out).
        visible = [" ".join(v for _, v in row) for row in texts]
        return "\n".join([markdown[0], "|---|---|", *markdown[1:]]), "\n".join(visible)
    markdown, visible = draw(inline_lines())
    if kind == "heading":
        level = draw(st.integers(1, 6))
        closing = draw(st.sampled_from(["", " #", " ###"]))
        return f"{'#' * level} {markdown}{closing}", visible
    if kind == "bullet":
        return f"{draw(st.sampled_from('-*+'))} {markdown}", f"• {visible}"
    if kind == "ordered":
        number = draw(st.integers(1, 99))
        return f"{number}. {markdown}", f"{number}. {visible}"
    if kind == "quote":
        return f"> {markdown}", visible
    return markdown, visible


@settings(max_examples=300, deadline=None)
@given(
    document=st.tuples(st.lists(blocks(), max_size=6), st.lists(fenced_blocks(last=True), max_size=1)).map(
        lambda parts: parts[0] + parts[1]
    ),
    limit=st.sampled_from([64, 200, 4096]),
)
def test_visible_text_is_the_markdown_minus_its_markup(document, limit) -> None:
    markdown = "\n\n".join(m for m, _ in document)
    expected = " ".join(v for _, v in document)

    chunks = render_reply(markdown, limit)

    for chunk in chunks:
        assert_valid(chunk)
    shown = "".join(html_to_plain(c) for c in chunks)
    assert squash(shown).replace("-", "") == squash(expected).replace("-", ""), markdown


@pytest.mark.parametrize(
    ("markdown", "visible"),
    [
        ("```rm -rf /tmp/x```", "rm -rf /tmp/x"),  # found from outside: a code span, not a fence
        ("run ```rm -rf /tmp/x``` now", "run rm -rf /tmp/x now"),
        ("```a``` and ```b```", "a and b"),
        ("``a ` b``", "a ` b"),
        ("~~~\n*kept*\n~~~", "*kept*"),
        ("````\n```\nstill code\n````", "```\nstill code"),
        ("# C#", "C#"),
        ("**bold `code` bold**", "bold code bold"),
        (r"\*literal\* \_x\_", "*literal* _x_"),
        ("**a __b__ c** and *a _b_ c*", "a b c and a b c"),
    ],
)
def test_commonmark_cases_found_from_outside(markdown, visible) -> None:
    assert html_to_plain(markdown_to_html(markdown)) == visible


def test_a_link_whose_tag_cannot_fit_a_message_keeps_its_text() -> None:
    markdown = f"> see [the docs](https://example.com/{'a' * 100}) now"
    chunks = render_reply(markdown, 64)
    for chunk in chunks:
        assert utf16_len(chunk) <= 64
        assert_valid(chunk)
    assert squash("".join(html_to_plain(c) for c in chunks)) == "seethedocsnow"


def test_a_link_whose_url_has_parentheses_keeps_its_whole_url() -> None:
    # Wikipedia's disambiguated pages, as models link them.
    out = markdown_to_html("See [Python](https://en.wikipedia.org/wiki/Python_(programming_language)).")
    assert out == 'See <a href="https://en.wikipedia.org/wiki/Python_(programming_language)">Python</a>.'


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("***Warning:*** do not", "<b><i>Warning:</i></b> do not"),
        ("**a** and ***b***", "<b>a</b> and <b><i>b</i></b>"),
        ("___c___", "<b><i>c</i></b>"),
    ],
)
def test_bold_italic_is_both_not_literal_asterisks(markdown, expected) -> None:
    assert markdown_to_html(markdown) == expected


def test_a_code_block_in_a_nested_list_item_is_code() -> None:
    # Indented to the nested item's text, as CommonMark reads it inside the list.
    markdown = "- Outer\n    - Install it:\n      ```bash\n      pip install a*b*c\n      ```\n- Done"
    assert markdown_to_html(markdown) == (
        '• Outer\n    • Install it:\n<pre><code class="language-bash">pip install a*b*c</code></pre>\n• Done'
    )


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        (
            "Docs: <https://example.com/a_b_c>.",
            'Docs: <a href="https://example.com/a_b_c">https://example.com/a_b_c</a>.',
        ),
        ("![the chart](https://example.com/c.png)", '<a href="https://example.com/c.png">the chart</a>'),
    ],
    ids=["autolink", "image"],
)
def test_autolinks_and_images_become_links_without_stray_brackets(markdown, expected) -> None:
    assert markdown_to_html(markdown) == expected


@pytest.mark.parametrize(
    "identifier",
    ["author__name__startswith", "SOME__CONST__NAME", "x___y___z"],
    ids=["django", "const", "triple"],
)
def test_double_underscores_inside_a_word_are_not_bold(identifier) -> None:
    # CommonMark: _ never opens or closes emphasis inside a word (Django lookups, C macros).
    assert (
        markdown_to_html(f"Use {identifier} here, and __this__.")
        == f"Use {identifier} here, and <b>this</b>."
    )


def test_an_indented_fence_inside_code_does_not_end_the_block() -> None:
    # A docstring or template holding Markdown: its fences are code, indented past the opener's.
    markdown = '```python\ndef f():\n    """Usage:\n\n    ```\n    f(**kw)\n    ```\n    """\n```\nDone.'
    assert markdown_to_html(markdown) == (
        '<pre><code class="language-python">def f():\n    """Usage:\n\n    ```\n    f(**kw)\n'
        '    ```\n    """</code></pre>\nDone.'
    )


def test_a_link_text_with_brackets_is_a_link() -> None:
    # Citations as search answers write them: [[1]](url).
    assert markdown_to_html("Python [[1]](https://a.example/x) and [the [docs]](https://b.example).") == (
        'Python <a href="https://a.example/x">[1]</a> and <a href="https://b.example">the [docs]</a>.'
    )


def _renders_as_fast_as_prose(markdown: str) -> None:
    """Hostile markup renders in time of the order of plain prose as long (timed here, so a
    busy machine slows both): a renderer that backtracks took seconds on 40 kB of it."""
    import time

    def best_of_three(text: str) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            markdown_to_html(text)
            times.append(time.perf_counter() - start)
        return min(times)

    prose = ("Plain words of an answer, with nothing to mark up. " * (len(markdown) // 50 + 1))[
        : len(markdown)
    ]
    assert best_of_three(markdown) < 30 * best_of_three(prose) + 0.05


@pytest.mark.parametrize("unit", ["[", "[a", "[ "])
def test_a_long_line_of_brackets_renders_quickly(unit) -> None:
    _renders_as_fast_as_prose(unit * (40_000 // len(unit)))


@pytest.mark.parametrize(
    "unit",
    [
        "**a ",
        "__a ",
        "~~a ",
        "*a ",
        "_a ",
        "***a ",
        "___a ",
        "***a** ",
        "**a\n",
        "<b>a ",
        "<kbd>a ",
        "<sup>a ",
        "<!--a ",
        '<a href="https://x.example">a ',
        "<a href=",
        "<img a ",
        "<p a",
        "<p> ",
        "  <b>",
    ],
)
def test_a_long_line_of_unclosed_emphasis_renders_quickly(unit) -> None:
    _renders_as_fast_as_prose(unit * (40_000 // len(unit)))


@pytest.mark.parametrize("unit", ["`a\\\n", "`a` b\\\n"])
def test_many_lines_ending_in_a_backslash_among_code_spans_render_quickly(unit) -> None:
    # Each line's backslash is looked up among the paragraph's code spans (a hard break or code).
    _renders_as_fast_as_prose(unit * (40_000 // len(unit)))


def test_emphasis_stops_at_a_marker_that_opens_anew() -> None:
    assert markdown_to_html("**a **b** and *c *d*") == "**a <b>b</b> and *c <i>d</i>"


def test_emphasis_around_a_link_is_emphasis() -> None:
    # Models list sources so: **[Title](url)** — what it says.
    assert markdown_to_html("**[Python](https://python.org)** and _see [x_y](https://a.example/x_y)_") == (
        '<b><a href="https://python.org">Python</a></b> and '
        '<i>see <a href="https://a.example/x_y">x_y</a></i>'
    )


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        (
            "See https://github.com/python/cpython/blob/main/Lib/__init__.py now.",
            "See https://github.com/python/cpython/blob/main/Lib/__init__.py now.",
        ),
        (
            "Open http://localhost:8000/api/_internal_/status",
            "Open http://localhost:8000/api/_internal_/status",
        ),
        ("Old: https://example.com/~~v1~~/x", "Old: https://example.com/~~v1~~/x"),
        ("At www.example.com/_next/_app_.js, see", "At www.example.com/_next/_app_.js, see"),
        ("**https://example.com/a_b_**", "<b>https://example.com/a_b_</b>"),
        ("_(see https://example.com/x_y)_ and __x__", "<i>(see https://example.com/x_y)</i> and <b>x</b>"),
    ],
    ids=["dunder", "underscores", "tildes", "www", "bold-around", "italic-around"],
)
def test_a_bare_url_keeps_its_markers_so_telegrams_link_leads_there(markdown, expected) -> None:
    # Telegram links a bare URL itself: emphasis inside it would point the link elsewhere.
    assert markdown_to_html(markdown) == expected


def test_a_long_formatted_list_is_split_so_no_message_has_more_than_telegrams_100_entities() -> None:
    # Telegram drops every entity after a message's 100th: the list would turn plain midway.
    items = "\n".join(
        f"- **step {i}**: run `make target-{i}` ([log](https://ci.example/{i}))" for i in range(120)
    )
    chunks = render_reply(f"## Plan\n\n{items}")
    for chunk in chunks:
        assert len(re.findall(r"<[a-z]", chunk)) <= 100, chunk
        assert_valid(chunk)
    visible = squash("".join(html_to_plain(c) for c in chunks))
    assert visible == squash("Plan" + html_to_plain(markdown_to_html(items)))


def test_a_table_shows_as_lined_up_columns_in_monospace() -> None:
    """Telegram has no tables: pipes and dashes in a proportional font were noise around words
    that did not line up."""
    markdown = (
        "Prices:\n\n"
        "| Fruit | **Price** | Where |\n"
        "|:------|------:|:---:|\n"
        "| Apple | $1 | [shop](https://shop.example/a_b) |\n"
        "| 香蕉 | $10.50 | `a|b` |\n"
        "| Kiwi \\| gold | $3 |\n\n"
        "Cheap."
    )
    assert markdown_to_html(markdown) == (
        "Prices:\n\n"
        "<pre>Fruit         Price               Where\n"
        "-----------  ------  -------------------------------\n"
        "Apple            $1  shop (https://shop.example/a_b)\n"
        "香蕉         $10.50                a|b\n"  # two columns a character
        "Kiwi | gold      $3</pre>\n\n"
        "Cheap."
    )


@pytest.mark.parametrize(
    "emoji",
    [
        "⚠️",  # a sign made an emoji by its variation selector
        "1️⃣",  # a keycap
        "👍🏽",  # a skin tone
        "👨‍👩‍👧",  # a family joined by ZWJ
        "🏳️‍🌈",  # a flag joined by ZWJ
        "🇷🇺",  # a flag of two regional indicators
    ],
)
def test_an_emoji_in_a_table_takes_two_columns_as_any_other_emoji(emoji: str) -> None:
    """Models mark rows with emoji ("✅ done", "⚠️ partly"): each shows as one picture, as
    wide as "✅". Counted by its code points, "⚠️" took one column and a family six, and the
    columns after them no longer lined up."""
    markdown = f"| State | Task |\n|---|---|\n| ✅ | one |\n| {emoji} | two |"
    _, _, done, other = html_to_plain(markdown_to_html(markdown)).split("\n")
    assert done == "✅     one"
    assert other == f"{emoji}     two"


@pytest.mark.parametrize(
    "markdown",
    [
        "a | b\nno rule under it",
        "| a | b |\n|---|",  # the rule's cells are not the header's
        "x || y, as in shell",
    ],
)
def test_pipes_without_a_table_stay_text(markdown: str) -> None:
    assert html_to_plain(markdown_to_html(markdown)) == markdown


def test_a_long_table_splits_into_messages_each_a_code_block() -> None:
    rows = "\n".join(f"| item {n} | {n * 7} |" for n in range(400))
    chunks = render_reply(f"| Item | Value |\n|---|--:|\n{rows}")
    assert len(chunks) > 1
    for chunk in chunks:
        assert_valid(chunk)
        assert chunk.startswith("<pre>") and chunk.endswith("</pre>")


def test_an_answer_with_windows_line_ends_closes_its_code_block() -> None:
    html_text = markdown_to_html("```py\r\nx = 1\r\n```\r\n**after**")
    assert html_text.endswith("</code></pre>\n<b>after</b>"), html_text


_GRAPHEMES = [
    "👨‍👩‍👧‍👦",  # a family: four emoji joined by ZWJ
    "🇺🇦",  # a flag: two regional indicators
    "👍🏽",  # a skin tone
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿",  # Scotland: a flag of tag characters
    "e\u0301",  # e and a combining accent
]


@pytest.mark.parametrize("grapheme", _GRAPHEMES, ids=["family", "flag", "skin-tone", "tag-flag", "accent"])
@pytest.mark.parametrize("offset", [0, 1, 3])
def test_a_hard_cut_never_splits_what_shows_as_one_character(grapheme, offset) -> None:
    text = "x" * offset + grapheme * 900  # one word: no space to break at
    for pieces in (render_reply(text, 100), split_plain(text, 100)):
        for piece in pieces:
            assert utf16_len(piece) <= 100
            assert piece.removeprefix("x" * offset).replace(grapheme, "") == "", piece
        assert "".join(pieces) == text


def test_a_character_of_endless_accents_is_still_cut_within_the_limit() -> None:
    # Zalgo text: one "character" longer than a message is cut between its accents.
    text = "a" + "\u0301" * 300
    for pieces in (render_reply(text, 100), split_plain(text, 100)):
        assert all(utf16_len(piece) <= 100 for piece in pieces)
        assert "".join(pieces) == text


@pytest.mark.parametrize(
    "markdown",
    [
        '[the docs](https://x.example/a_b "The *docs*")',
        "[the docs](https://x.example/a_b 'The docs')",
        "[the docs](https://x.example/a_b (The docs))",
    ],
    ids=["double-quotes", "single-quotes", "parentheses"],
)
def test_a_link_with_a_title_links_its_address_without_the_title(markdown) -> None:
    assert markdown_to_html(f"See {markdown}.") == 'See <a href="https://x.example/a_b">the docs</a>.'


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ('![a chart](https://x.example/c.png "Sales")', '<a href="https://x.example/c.png">a chart</a>'),
        (
            "![](https://x.example/c_1_.png)",
            '<a href="https://x.example/c_1_.png">https://x.example/c_1_.png</a>',
        ),
        ("[](https://x.example/)", '<a href="https://x.example/">https://x.example/</a>'),
    ],
    ids=["titled-image", "image-without-alt", "link-without-text"],
)
def test_an_image_is_a_link_named_by_its_alt_text_or_its_address(markdown, expected) -> None:
    assert markdown_to_html(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("See example.com/_next/_app_.js now", "See example.com/_next/_app_.js now"),
        ("Open docs.python.org/3/library/__main__.html.", "Open docs.python.org/3/library/__main__.html."),
        ("Old: sub.example.co.uk/~~v1~~/x", "Old: sub.example.co.uk/~~v1~~/x"),
        ("_see example.com/a_b_", "<i>see example.com/a_b</i>"),
        ("edit _main.py_ and **app.py**", "edit <i>main.py</i> and <b>app.py</b>"),
    ],
    ids=["underscores", "dunder", "tildes", "italic-around", "file-names"],
)
def test_a_bare_address_without_scheme_keeps_its_markers(markdown, expected) -> None:
    # Telegram links example.com/path itself: italics inside it would lose the address's _.
    assert markdown_to_html(markdown) == expected


def test_a_list_in_a_quote_shows_as_a_list() -> None:
    markdown = "> Steps:\n> - **open** it\n>   - then `close` it\n> # Note\nAfter."
    assert markdown_to_html(markdown) == (
        "<blockquote>Steps:\n• <b>open</b> it\n  • then <code>close</code> it\n<b>Note</b></blockquote>\n"
        "After."
    )


def test_a_code_block_in_a_quote_is_code_between_the_quotes_parts() -> None:
    # Telegram nests no code block inside a quote: the quote stops around it.
    markdown = "> Run:\n> ```py\n> if a < b:\n>     go(**kw)\n> ```\n> Done."
    html_text = markdown_to_html(markdown)
    assert html_text == (
        "<blockquote>Run:</blockquote>\n"
        '<pre><code class="language-py">if a &lt; b:\n    go(**kw)</code></pre>\n'
        "<blockquote>Done.</blockquote>"
    )
    for chunk in render_reply(markdown, 40):  # split, every part still a whole quote or code
        assert_valid(chunk)


def test_a_nested_quote_is_one_quote_as_telegram_nests_none() -> None:
    assert markdown_to_html("> outer\n> > inner") == "<blockquote>outer\ninner</blockquote>"


DIVIDER = "─" * 12  # a thematic break as the chat shows it


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("Title\n=====\n\nBody.", "<b>Title</b>\n\nBody."),
        ("Part **two**\n---\nBody.", "<b>Part two</b>\nBody."),
        ("A long\ntitle\n===", "<b>A long\ntitle</b>"),
    ],
    ids=["equals", "dashes", "two-lines"],
)
def test_a_setext_heading_is_bold(markdown, expected) -> None:
    assert markdown_to_html(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("Body.\n\n---\n\nMore.", f"Body.\n\n{DIVIDER}\n\nMore."),
        ("---\nText.", f"{DIVIDER}\nText."),
        ("Body.\n***\nMore.", f"Body.\n{DIVIDER}\nMore."),  # under a paragraph: no heading, no bold
        ("___", DIVIDER),
        ("- item\n---", f"• item\n{DIVIDER}"),  # under a list item: a rule, not a heading
        ("- item\n* * *\n- - -", f"• item\n{DIVIDER}\n{DIVIDER}"),  # not bullets
        ("> Quoted.\n>\n> ---\n> More.", f"<blockquote>Quoted.\n\n{DIVIDER}\nMore.</blockquote>"),
    ],
    ids=["dashes", "first", "stars", "underscores", "after-list", "spaced", "in-quote"],
)
def test_a_lone_thematic_break_shows_as_a_divider_line(markdown, expected) -> None:
    assert markdown_to_html(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        (
            "[![Build](https://img.shields.io/badge/build-passing-green.svg)](https://ci.example/job/1)",
            '<a href="https://ci.example/job/1">Build</a>',
        ),
        ("[![Build](img.svg)](https://ci.example/link)", '<a href="https://ci.example/link">Build</a>'),
        (
            '[![PyPI](https://x.example/v.svg "PyPI")](https://pypi.example/p) '
            "[![docs_ok](https://x.example/d.svg)](https://docs.example/)",
            '<a href="https://pypi.example/p">PyPI</a> <a href="https://docs.example/">docs_ok</a>',
        ),
        (
            "[![](https://x.example/b.svg)](https://ci.example/)",
            '<a href="https://ci.example/">https://ci.example/</a>',
        ),
    ],
    ids=["badge", "relative-image", "two-badges", "no-alt-text"],
)
def test_an_image_inside_a_link_is_a_link_named_by_its_alt_text(markdown, expected) -> None:
    # README badges: the image cannot show inline, the link it sits in is what a tap should open.
    assert markdown_to_html(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        (
            "> **Note:** this call\nis deprecated.",
            "<blockquote><b>Note:</b> this call\nis deprecated.</blockquote>",
        ),
        ("> a\nb\n> c\nd\n\nAfter.", "<blockquote>a\nb\nc\nd</blockquote>\n\nAfter."),
        ("> - item\nmore of it", "<blockquote>• item\nmore of it</blockquote>"),
    ],
    ids=["paragraph", "several", "list-item"],
)
def test_a_lazy_line_continues_the_quotes_paragraph(markdown, expected) -> None:
    assert markdown_to_html(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("> a\n\nb", "<blockquote>a</blockquote>\n\nb"),
        ("> a\n- b", "<blockquote>a</blockquote>\n• b"),
        ("> a\n# B", "<blockquote>a</blockquote>\n<b>B</b>"),
        ("> a\n---", f"<blockquote>a</blockquote>\n{DIVIDER}"),
        ("> # A\nb", "<blockquote><b>A</b></blockquote>\nb"),
        ("> ```\n> code\nb", "<pre><code>code</code></pre>\nb"),
    ],
    ids=["blank", "list", "heading", "rule", "after-heading", "after-open-code"],
)
def test_a_line_that_starts_a_block_or_follows_no_paragraph_ends_the_quote(markdown, expected) -> None:
    assert markdown_to_html(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        (
            "- [ ] write **tests**\n- [x] fix the bug\n  * [X] nested, done",
            "☐ write <b>tests</b>\n☑ fix the bug\n  ☑ nested, done",
        ),
        ("1. [ ] first\n2) [x] second", "1. ☐ first\n2) ☑ second"),
        ("- [link](https://a.example) and [ ] text", '• <a href="https://a.example">link</a> and [ ] text'),
        ("- [ ]\n- [y] no", "• [ ]\n• [y] no"),  # a box needs text after it; only x marks one done
    ],
    ids=["bullets", "ordered", "link-first", "not-tasks"],
)
def test_a_task_list_shows_boxes_not_brackets(markdown, expected) -> None:
    # Plans are written so: "• [ ] write tests" read as raw markup in the chat.
    assert markdown_to_html(markdown) == expected


def test_a_typical_long_answer_reads_as_formatted_text() -> None:
    """Headings, a list of three levels (ordered inside unordered), code inside list items,
    a table, a quote, a rule, task boxes and code spans holding * _ < & together."""
    markdown = (
        "## 1. Prepare\n\n"
        "- **Install tooling**\n"
        "  1. Install `uv`:\n"
        "     ```bash\n"
        "     curl -LsSf https://astral.sh/uv/install.sh | sh\n"
        "     ```\n"
        "  2. Pin it: `uv>=0.4,<1 && echo ok`\n"
        "     - on macOS: `brew install uv`\n"
        "- **Check** `**/*_test.py` matches\n\n"
        "---\n\n"
        "| File | Change |\n|---|---|\n| `a_b.py` | `x < 10 & y` |\n\n"
        "> **Note:** `get_event_loop()` is deprecated\nand warns.\n\n"
        "### Next\n\n"
        "- [x] plan\n- [ ] migrate `__init__.py`"
    )
    assert markdown_to_html(markdown) == (
        "<b>1. Prepare</b>\n\n"
        "• <b>Install tooling</b>\n"
        "  1. Install <code>uv</code>:\n"
        '<pre><code class="language-bash">curl -LsSf https://astral.sh/uv/install.sh | sh</code></pre>\n'
        "  2. Pin it: <code>uv&gt;=0.4,&lt;1 &amp;&amp; echo ok</code>\n"
        "     • on macOS: <code>brew install uv</code>\n"
        "• <b>Check</b> <code>**/*_test.py</code> matches\n\n"
        f"{DIVIDER}\n\n"
        "<pre>File    Change\n------  ----------\na_b.py  x &lt; 10 &amp; y</pre>\n\n"
        "<blockquote><b>Note:</b> <code>get_event_loop()</code> is deprecated\nand warns.</blockquote>\n\n"
        "<b>Next</b>\n\n"
        "☑ plan\n☐ migrate <code>__init__.py</code>"
    )
    for chunk in render_reply(markdown, 120):  # split small, every part still valid HTML
        assert_valid(chunk)


@pytest.mark.parametrize("tag", ["<br>", "<br/>", "<br />", "<BR>"])
def test_a_br_tag_breaks_the_line_outside_code(tag) -> None:
    # Models write <br> in Markdown often; escaped, it showed as "<br>" in the chat.
    assert (
        markdown_to_html(f"one{tag}two and `a{tag}b`")
        == f"one\ntwo and <code>{html.escape(f'a{tag}b', quote=False)}</code>"
    )
    assert markdown_to_html(f"- one{tag}\n  two") == "• one\n  two"


def test_a_table_cell_with_br_shows_its_lines_under_each_other() -> None:
    markdown = "| Step | Notes |\n|---|--:|\n| **build** | fast<br>cached<br/>quiet |\n| test | slow |"
    assert markdown_to_html(markdown) == (
        "<pre>Step    Notes\n"
        "-----  ------\n"
        "build    fast\n"
        "       cached\n"
        "        quiet\n"
        "\n"  # a blank line between rows once a row takes more than one
        "test     slow</pre>"
    )


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("**bold that\nwraps** then", "<b>bold that\nwraps</b> then"),
        ("an *italic\nphrase* and ~~struck\nout~~", "an <i>italic\nphrase</i> and <s>struck\nout</s>"),
        ("`code\nspan` here", "<code>code span</code> here"),  # a line end in a code span is a space
        ("**not closed\n\nnew** paragraph", "**not closed\n\nnew** paragraph"),
        # Crossed markers on one line keep only that line as text, not the whole paragraph.
        ("**a *b** c*\n**d** e", "**a *b** c*\n<b>d</b> e"),
    ],
    ids=["bold", "italic-strike", "code-span", "paragraphs", "crossed-line"],
)
def test_emphasis_may_span_the_lines_of_one_paragraph(markdown, expected) -> None:
    assert markdown_to_html(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("first\\\nsecond", "first\nsecond"),
        ("> quoted\\\nline", "<blockquote>quoted\nline</blockquote>"),
        ("ends in \\", "ends in \\"),  # a paragraph's last backslash is a backslash
        ("a \\\\\nb", "a \\\nb"),  # an escaped backslash is no line break
        ("- item\\\n  more\n- last\\", "• item\n  more\n• last\\"),
    ],
)
def test_a_backslash_at_a_line_end_is_a_line_break_not_shown(markdown, expected) -> None:
    assert markdown_to_html(markdown) == expected


def test_continuation_lines_of_a_paragraph_lose_their_indent() -> None:
    assert markdown_to_html("first line\n    second\n\tthird") == "first line\nsecond\nthird"


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("## Title with **bold** and *it*", "<b>Title with bold and <i>it</i></b>"),
        ("# **All bold**", "<b>All bold</b>"),
        ("Setext **bold**\n===", "<b>Setext bold</b>"),
        ("**a __b__ c** and *a _b_ c*", "<b>a b c</b> and <i>a b c</i>"),
        ("### ***Both***", "<b><i>Both</i></b>"),
    ],
)
def test_no_bold_inside_bold_nor_italic_inside_italic(markdown, expected) -> None:
    # Telegram's rules: an entity may hold others, not one of its own kind.
    out = markdown_to_html(markdown)
    assert out == expected
    assert_valid(out)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("a&nbsp;b, AT&amp;T, &copy; 2026, &#8594; &#x2713;", "a\xa0b, AT&amp;T, © 2026, → ✓"),
        ("&lt;div&gt; and &unknown; and `&amp;`", "&lt;div&gt; and &amp;unknown; and <code>&amp;amp;</code>"),
        ("&ast;not italic&ast;", "*not italic*"),  # a reference is text, never markup
        ("H<sub>2</sub>O, E = mc<sup>2</sup>, 10<sup>-3</sup>", "H₂O, E = mc², 10⁻³"),
        ("2<sup>n log n</sup> and log<sub>b</sub>", "2^(n log n) and log_b"),
        (
            "<kbd>Ctrl</kbd>+<kbd>C</kbd> or <code>x<y</code>",
            "<code>Ctrl</code>+<code>C</code> or <code>x&lt;y</code>",
        ),
        (
            "<b>b</b> <strong>s</strong> <i>i</i> <em>e</em> <u>u</u> <ins>n</ins> <s>s</s> <del>d</del>",
            "<b>b</b> <b>s</b> <i>i</i> <i>e</i> <u>u</u> <u>n</u> <s>s</s> <s>d</s>",
        ),
        (
            "List<String> and <b> alone, <span>x</span>",
            "List&lt;String&gt; and &lt;b&gt; alone, &lt;span&gt;x&lt;/span&gt;",
        ),
        (
            "<details>\n<summary>Full log</summary>\n\nline one\n</details>\n\nAfter.",
            "<b>Full log</b>\n\nline one\n\nAfter.",
        ),
        ("<details><summary>More</summary>\nhidden</details>", "<b>More</b>\nhidden"),
        ("<details open>\n<summary><b>Log</b> <i>1</i></summary>", "<b>Log <i>1</i></b>"),
        ("a <!-- a note --> b, <!-- open", "a  b, &lt;!-- open"),
    ],
    ids=[
        "entities",
        "unknown-and-code",
        "reference-no-markup",
        "scripts",
        "scripts-fallback",
        "kbd-code",
        "styles",
        "other-tags",
        "details",
        "details-one-line",
        "details-nested",
        "comment",
    ],
)
def test_html_the_model_writes_reads_as_text_would(markdown, expected) -> None:
    out = markdown_to_html(markdown)
    assert out == expected
    assert_valid(out)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("- **bold that\n  wraps** here\n- next", "• <b>bold that\n  wraps</b> here\n• next"),
        (
            "1. an *italic\n   phrase* and ~~struck\n   out~~",
            "1. an <i>italic\n   phrase</i> and <s>struck\n   out</s>",
        ),
        ("- [ ] **write\n  tests**", "☐ <b>write\n  tests</b>"),
        ("- **a lazy\nline** here", "• <b>a lazy\nline</b> here"),
        ("> - **quoted\n>   item**", "<blockquote>• <b>quoted\n  item</b></blockquote>"),
        ("- **a\n- b**", "• **a\n• b**"),  # two items: no bold runs from one into the next
        ("- **a *b** c*\n  **d** e", "• **a *b** c*\n  <b>d</b> e"),  # crossed: that line alone
        ("- one\\\n  two **x\n  y**", "• one\n  two <b>x\n  y</b>"),
    ],
    ids=["bullet", "ordered", "task", "lazy-line", "in-quote", "two-items", "crossed-line", "hard-break"],
)
def test_emphasis_may_span_the_lines_of_one_list_item(markdown, expected) -> None:
    # A model wraps a long bullet; its **…** showed as raw asterisks on both lines.
    out = markdown_to_html(markdown)
    assert out == expected
    assert_valid(out)


def test_a_table_cells_lines_keep_their_code_their_link_and_no_asterisks() -> None:
    markdown = (
        "| Step | How |\n|---|---|\n"
        "| Setup | **`uv sync`<br>`uv run`** |\n"
        "| Docs | [**the<br>guide**](https://a.example/g) |\n"
        "| Note | **Linux:<br>** apt |"
    )
    assert markdown_to_html(markdown) == (
        "<pre>Step   How\n"
        "-----  ---------------------------\n"
        "Setup  uv sync\n"
        "       uv run\n"
        "\n"
        "Docs   the\n"
        "       guide (https://a.example/g)\n"
        "\n"
        "Note   Linux:\n"
        "       apt</pre>"
    )


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        (
            'See <a href="https://x.example/a_b?q=1&amp;r=2">the *docs*</a>.',
            'See <a href="https://x.example/a_b?q=1&amp;r=2">the <i>docs</i></a>.',
        ),
        ("<a href='tg://user?id=42' target=_blank>Alice</a>", '<a href="tg://user?id=42">Alice</a>'),
        ("<A HREF=https://x.example/>site</A>", '<a href="https://x.example/">site</a>'),
        ('<a href="javascript:alert(1)">click</a> me', "click me"),
        ('<a href="data:text/html;base64,PGI+">open</a>', "open"),
        ('<a href="/docs/intro">the intro</a>', "the intro"),
        (
            '<img src="https://x.example/c.png" alt="a chart">',
            '<a href="https://x.example/c.png">a chart</a>',
        ),
        ('<img alt="logo" src="https://x.example/l.png" />', '<a href="https://x.example/l.png">logo</a>'),
        (
            '<img src="https://x.example/c_1_.png">',
            '<a href="https://x.example/c_1_.png">https://x.example/c_1_.png</a>',
        ),
        ('<img src="data:image/png;base64,AAAA" alt="a chart">', "a chart"),
        (
            '<a href="https://ci.example/1"><img src="https://x.example/b.svg" alt="Build"></a>',
            '<a href="https://ci.example/1">Build</a>',
        ),
        (
            '[<a href="https://a.example">inner</a>](https://b.example)',
            '<a href="https://b.example">inner</a>',
        ),
        ("<p>One.</p><p>Two <b>bold</b>.</p>", "One.\n\nTwo <b>bold</b>."),
        ('<p align="center">\nCentered\n</p>\n<p>Next</p>', "Centered\n\nNext"),
        ("Before\n<p>After</p>", "Before\n\nAfter"),
        ("> <p>a</p><p>b</p>", "<blockquote>a\n\nb</blockquote>"),
        (
            'Use `<p>` and `<a href="https://x.example">`, not <pre> nor <param>',
            'Use <code>&lt;p&gt;</code> and <code>&lt;a href="https://x.example"&gt;</code>, '
            "not &lt;pre&gt; nor &lt;param&gt;",
        ),
    ],
    ids=[
        "link",
        "tg-link",
        "unquoted",
        "javascript",
        "data",
        "relative",
        "image",
        "image-alt-first",
        "image-without-alt",
        "data-image",
        "image-in-link",
        "link-in-link",
        "paragraphs",
        "paragraphs-on-lines",
        "paragraph-after-text",
        "paragraphs-in-quote",
        "code-and-other-tags",
    ],
)
def test_links_images_and_paragraphs_the_model_writes_in_html_read_as_meant(markdown, expected) -> None:
    # They showed as escaped markup; only an address Telegram opens becomes a link.
    out = markdown_to_html(markdown)
    assert out == expected
    assert_valid(out)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("<u><s><i><b>deep</b></i></s></u>", "<u><s><i><b>deep</b></i></s></u>"),
        (
            '<a href="https://x.example"><del><em>pre <ins><strong>five</strong></ins> post</em></del></a>',
            '<a href="https://x.example"><s><i>pre <u><b>five</b></u> post</i></s></a>',
        ),
        (
            "[~~*<u>__bold__</u> in it*~~](https://x.example)",
            '<a href="https://x.example"><s><i><u><b>bold</b></u> in it</i></s></a>',
        ),
        ("# <u><s><i><b>x</b></i></s></u>", "<b><u><s><i>x</i></s></u></b>"),  # no bold in bold
        (
            "<b><i><s><u>x</b></i></s></u>",
            "&lt;b&gt;&lt;i&gt;&lt;s&gt;&lt;u&gt;x&lt;/b&gt;&lt;/i&gt;&lt;/s&gt;&lt;/u&gt;",
        ),
    ],
    ids=["html", "html-in-link", "mixed-in-link", "in-heading", "crossed"],
)
def test_styles_nested_deeper_than_three_are_all_shown_as_valid_html(markdown, expected) -> None:
    out = markdown_to_html(markdown)
    assert out == expected
    assert_valid(out)
    for chunk in render_reply(markdown, 24):  # split, each part closes and reopens them in order
        assert_valid(chunk)


_STYLE_WRAPPERS = [
    ("<b>", "</b>"),
    ("<strong>", "</strong>"),
    ("<i>", "</i>"),
    ("<em>", "</em>"),
    ("<u>", "</u>"),
    ("<ins>", "</ins>"),
    ("<s>", "</s>"),
    ("<del>", "</del>"),
    ("**", "**"),
    ("*", "*"),
    ("~~", "~~"),
]
_LINK_WRAPPERS = [("[", "](https://x.example/a_b)"), ('<a href="https://x.example/c">', "</a>")]


@settings(max_examples=200, deadline=None)
@given(
    # A Markdown marker inside its own (**a **b** c**) stays text, as the renderer decided.
    styles=st.lists(st.sampled_from(_STYLE_WRAPPERS), min_size=4, max_size=7).filter(
        lambda styles: all(styles.count(marker) <= 1 for marker in _STYLE_WRAPPERS[-3:])
    ),
    link=st.sampled_from([None, *_LINK_WRAPPERS]),
    link_at=st.integers(0, 7),
    padded=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_styles_nested_deep_show_their_text_without_markup_in_valid_html(
    styles, link, link_at, padded
) -> None:
    wrappers = [*styles]
    if link is not None:
        wrappers.insert(min(link_at, len(wrappers)), link)
    markdown, visible = "word", "word"
    for (opening, closing), pad in zip(wrappers, padded, strict=False):
        # Markdown markers side by side (***, ****) read otherwise: words keep them apart.
        if pad or opening[0] not in "<[":
            markdown, visible = f"{opening}pre {markdown} post{closing}", f"pre {visible} post"
        else:
            markdown = f"{opening}{markdown}{closing}"
    out = markdown_to_html(markdown)
    assert_valid(out)
    assert html_to_plain(out) == visible, out
    for chunk in render_reply(markdown, 40):
        assert_valid(chunk)


def test_a_code_span_in_a_links_address_puts_no_tag_in_its_href() -> None:
    # The href held "<code>y</code>": Telegram refuses such a message, which fell back to plain.
    out = markdown_to_html("[a](https://x.example/`y`)")
    assert out == '<a href="https://x.example/y">a</a>'


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("Use `C:\\dir\\\nfoo` here", "Use <code>C:\\dir\\ foo</code> here"),
        ("`C:\\dir\\\n` is the folder", "<code>C:\\dir\\ </code> is the folder"),
        ("- run `a\\\nb`\n- next", "• run <code>a\\ b</code>\n• next"),
        ("> `a\\\n> b`", "<blockquote><code>a\\ b</code></blockquote>"),
        # Crossed markers show the lines as written, code and its backslash too.
        ("**a *b** c* `x\\\ny`", "**a *b** c* `x\\\ny`"),
    ],
    ids=["inside", "before-closing", "list-item", "quote", "crossed"],
)
def test_a_backslash_ending_a_line_inside_code_is_code(markdown, expected) -> None:
    # It was taken for a line break and dropped: a Windows path lost its last backslash.
    out = markdown_to_html(markdown)
    assert out == expected
    assert_valid(out)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("\\`not code`", "`not code`"),
        ("\\`a\\` and \\`b\\`", "`a` and `b`"),
        # The run goes on after the escaped backtick: ``x`` is code, as CommonMark reads it.
        ("\\```x``", "`<code>x</code>"),
        ("a \\`b` c `d`", "a `b<code>c</code>d`"),
        # An escaped backslash escapes no backtick; in code a backslash is code.
        ("\\\\`code`", "\\<code>code</code>"),
        ("`a\\` b", "<code>a\\</code> b"),
        # A line's last backslash outside code is a line break, shown as the line end alone.
        ("- run \\`x\\\n  y`", "• run `x\n  y`"),
    ],
    ids=["opens-nothing", "pairs", "rest-of-run", "closes-nothing", "escaped-backslash", "in-code", "list"],
)
def test_an_escaped_backtick_is_a_backtick_and_opens_no_code_span(markdown, expected) -> None:
    # It opened a code span: a name or file name with a backtick, escaped, swallowed the text
    # after it into code and showed its backslashes.
    out = markdown_to_html(markdown)
    assert out == expected
    assert_valid(out)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("Ask [Alice](tg://user?id=123).", 'Ask <a href="tg://user?id=123">Alice</a>.'),
        ("**[Alice](tg://user?id=123)**", '<b><a href="tg://user?id=123">Alice</a></b>'),
        (
            "[the bot](tg://resolve?domain=some_bot&start=a_b_c)",
            '<a href="tg://resolve?domain=some_bot&amp;start=a_b_c">the bot</a>',
        ),
        ("<tg://user?id=123>", '<a href="tg://user?id=123">tg://user?id=123</a>'),
        ("[Docs](HTTPS://X.example/A)", '<a href="HTTPS://X.example/A">Docs</a>'),
        # The same rule as for <a href>: no other scheme becomes a link.
        (
            "[Alice](tg://user?id=1) or [run](javascript:alert(1))",
            '<a href="tg://user?id=1">Alice</a> or [run](javascript:alert(1))',
        ),
        (
            "[Alice](tg://user?id=1), [page](data:text/html,hi), [key](file:///etc/passwd)",
            '<a href="tg://user?id=1">Alice</a>, [page](data:text/html,hi), [key](file:///etc/passwd)',
        ),
    ],
    ids=["tg-user", "tg-in-bold", "tg-resolve", "tg-autolink", "upper-case", "javascript", "data-file"],
)
def test_markdown_links_lead_where_html_links_may(markdown, expected) -> None:
    # A mention written [Alice](tg://user?id=123) showed as that literal text.
    out = markdown_to_html(markdown)
    assert out == expected
    assert_valid(out)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ('[search](https://x.example/?q="hi")', '<a href="https://x.example/?q=&quot;hi&quot;">search</a>'),
        (
            '<https://x.example/?q="hi">',
            '<a href="https://x.example/?q=&quot;hi&quot;">https://x.example/?q="hi"</a>',
        ),
        (
            "[Foo](<https://en.wikipedia.org/wiki/Foo_(bar>)",
            '<a href="https://en.wikipedia.org/wiki/Foo_(bar">Foo</a>',
        ),
        (
            '[the report](<https://x.example/my report.pdf> "Q3")',
            '<a href="https://x.example/my%20report.pdf">the report</a>',
        ),
        ("[Alice](<tg://user?id=1>)", '<a href="tg://user?id=1">Alice</a>'),
        (
            "See [Foo]( https://en.wikipedia.org/wiki/Foo_(bar) ).",
            'See <a href="https://en.wikipedia.org/wiki/Foo_(bar)">Foo</a>.',
        ),
    ],
    ids=["quotes", "quotes-autolink", "angle-brackets", "angle-brackets-space", "angle-tg", "spaced"],
)
def test_link_addresses_commonmark_allows_are_links(markdown, expected) -> None:
    # They showed as literal Markdown, brackets and all.
    out = markdown_to_html(markdown)
    assert out == expected
    assert_valid(out)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        (
            "[x](https://en.wikipedia.org/wiki/A_(b_(c)))",
            '<a href="https://en.wikipedia.org/wiki/A_(b_(c))">x</a>',
        ),
        ("[deep](https://x.example/(1(2(3))))", '<a href="https://x.example/(1(2(3)))">deep</a>'),
        ("[a [b [c]]](https://x.org)", '<a href="https://x.org">a [b [c]]</a>'),
        ("[a [b [c [d]]]](https://x.org)", '<a href="https://x.org">a [b [c [d]]]</a>'),
    ],
    ids=["parens-two-deep", "parens-three-deep", "brackets-two-deep", "brackets-three-deep"],
)
def test_brackets_nested_three_deep_in_a_link_are_part_of_it(markdown, expected) -> None:
    # CommonMark allows balanced parentheses in an address (at least three levels) and balanced
    # brackets in a link's text; two deep, they showed as the literal Markdown.
    out = markdown_to_html(markdown)
    assert out == expected
    assert_valid(out)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("Write to <ada@example.org>.", "Write to ada@example.org."),
        ("<*ada*.lovelace@example.org> or *here*", "*ada*.lovelace@example.org or <i>here</i>"),
        ("[mail <ada@example.org>](https://x.org)", '<a href="https://x.org">mail ada@example.org</a>'),
    ],
    ids=["plain", "markers-kept", "in-link-text"],
)
def test_an_email_autolink_shows_the_address_without_angle_brackets(markdown, expected) -> None:
    # Telegram opens no mailto: link (only http(s), tg and ton addresses) but links an e-mail
    # address in the text itself; the angle brackets showed.
    out = markdown_to_html(markdown)
    assert out == expected
    assert_valid(out)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("[a](<https://>)", "[a](&lt;https://&gt;)"),
        ("[a](<https:// >) b", "[a](&lt;https:// &gt;) b"),
        ("[Alice](<tg://>)", "[Alice](&lt;tg://&gt;)"),
        ("[a](https://?q=1)", "[a](https://?q=1)"),
        ("<https://#top>", "&lt;https://#top&gt;"),
        ("![chart](https:///c.png)", "![chart](https:///c.png)"),
        ('<a href="https://">the docs</a>', "the docs"),
        ('<a href=" tg:// ">Alice</a>', "Alice"),
    ],
    ids=["empty", "space", "tg", "query-only", "autolink", "image", "html", "html-tg"],
)
def test_a_link_to_an_address_without_a_host_stays_text(markdown, expected) -> None:
    # Telegram refuses such an address ("URL is invalid"): a link to it put the message at risk.
    out = markdown_to_html(markdown)
    assert out == expected
    assert_valid(out)


@pytest.mark.parametrize(
    "markdown",
    [
        "[a](https://x" + "(" * 20_000 + ")" * 20_000 + ")",
        "[a [b " * 7_000 + "](https://x)",
        "[" * 20_000 + "a" + "]" * 20_000 + "(https://x)",
        "<a.b" * 10_000 + "@x",
    ],
    ids=["nested-parens", "unclosed-brackets", "nested-brackets", "email-without-end"],
)
def test_deeply_nested_link_markup_renders_quickly(markdown) -> None:
    _renders_as_fast_as_prose(markdown)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        (
            "Open [the dashboard](http://localhost:3000/a_b).",
            "Open the dashboard (<code>http://localhost:3000/a_b</code>).",
        ),
        ('See <a href="http://wiki/Setup">the wiki</a>.', "See the wiki (<code>http://wiki/Setup</code>)."),
        ("<http://localhost:8080>", "<code>http://localhost:8080</code>"),
        (
            "[x](https://x.example:0/) and [y](https://y.example:70000)",
            "x (<code>https://x.example:0/</code>) and y (<code>https://y.example:70000</code>)",
        ),
        (
            "**[the *API*](http://api:8000/docs)**",
            "<b>the <i>API</i> (<code>http://api:8000/docs</code>)</b>",
        ),
        (
            '<img src="http://localhost/c.png" alt="the chart">',
            "the chart (<code>http://localhost/c.png</code>)",
        ),
        # Telegram links these: they stay links.
        ("[app](http://127.0.0.1:8080/a)", '<a href="http://127.0.0.1:8080/a">app</a>'),
        ("[app](http://[::1]:8080/)", '<a href="http://[::1]:8080/">app</a>'),
        ("[app](https://x.example:08080/)", '<a href="https://x.example:08080/">app</a>'),
    ],
    ids=["localhost", "html-intranet", "autolink", "ports", "in-bold", "image", "ipv4", "ipv6", "port"],
)
def test_a_link_telegram_makes_no_link_of_shows_its_address_after_its_text(markdown, expected) -> None:
    # Telegram drops a link whose host has no dot (localhost, an intranet name) or whose port
    # is no port, keeping its text: the user never learnt where it led.
    out = markdown_to_html(markdown)
    assert out == expected
    assert_valid(out)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("Please [write to us](mailto:ada@example.org).", "Please write to us (ada@example.org)."),
        ('<a href="mailto:ada@example.org">write to us</a>', "write to us (ada@example.org)"),
        ("[Ada](MAILTO:ada_lovelace_@example.org?subject=Hi)", "Ada (ada_lovelace_@example.org)"),
        ("[ada@example.org](mailto:ada@example.org)", "ada@example.org"),
        ("<mailto:ada@example.org>", "ada@example.org"),
        ("[*us*](mailto:)", "[<i>us</i>](mailto:)"),
    ],
    ids=["markdown", "html", "query", "text-is-address", "autolink", "no-address"],
)
def test_a_mailto_link_shows_its_address(markdown, expected) -> None:
    # Telegram opens no mailto: link and dropped it, keeping the text: the address was lost.
    # It links an e-mail address in the text itself.
    out = markdown_to_html(markdown)
    assert out == expected
    assert_valid(out)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        (
            "[see <https://a.example>](https://b.example)",
            '<a href="https://b.example">see https://a.example</a>',
        ),
        (
            "[<https://a.example/x_y_>](https://b.example)",
            '<a href="https://b.example">https://a.example/x_y_</a>',
        ),
        (
            "[a <https://x.example/]> b](https://y.example)",
            '<a href="https://y.example">a https://x.example/] b</a>',
        ),
        (
            '<a href="https://b.example">see <https://a.example></a>',
            '<a href="https://b.example">see https://a.example</a>',
        ),
        # Not a link itself, the outer one leaves the autolink a link.
        (
            "[see <https://a.example>](javascript:x)",
            '[see <a href="https://a.example">https://a.example</a>](javascript:x)',
        ),
    ],
    ids=["in-text", "whole-text", "bracket-inside", "html-link", "outer-no-link"],
)
def test_an_autolink_in_a_links_text_shows_as_its_address_in_the_link(markdown, expected) -> None:
    # CommonMark: an autolink binds before the link's brackets, so the link's text holds it
    # (the reference parsers nest it); Telegram nests no link, so it shows as its address. Its
    # angle brackets showed.
    out = markdown_to_html(markdown)
    assert out == expected
    assert_valid(out)


@pytest.mark.parametrize(
    "markdown",
    [
        "](<a" * 10_000,
        "<https://a" * 10_000,
        "[a](http://x:" * 4_000,
        "[a <https://x.example> " * 2_000 + "](https://y)",
        "[a](mailto:a@" * 4_000,
    ],
    ids=["destinations", "autolinks", "ports", "autolinks-in-label", "mailto"],
)
def test_unfinished_autolinks_and_addresses_render_quickly(markdown) -> None:
    _renders_as_fast_as_prose(markdown)
