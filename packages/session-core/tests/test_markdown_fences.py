"""The end of a long Markdown answer, as the live draft shows it: within the limit, and a code
block it begins inside keeps its opening fence."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from session_core import fenced_blocks, markdown_tail, utf16_len

_lines = st.lists(
    st.sampled_from(["```python", "```", "~~~", "    ```", "text", "x = 1  # 😀", "", "**b**"])
    | st.text(max_size=40).filter(lambda t: "\n" not in t),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(lines=_lines, limit=st.integers(20, 300))
def test_the_tail_fits_and_is_the_answers_end_under_at_most_its_blocks_fence(lines, limit) -> None:
    markdown = "\n".join(lines)
    tail = markdown_tail(markdown, limit)
    assert utf16_len(tail) <= limit
    if tail == markdown:
        return
    fence, _, rest = tail.partition("\n")
    assert markdown.endswith(tail) or (fence in lines and markdown.endswith(rest))
    # What the tail shows as code was code in the whole answer: its fences after its first
    # line open and close blocks where the whole answer's did (counted from the end).
    from_end = {len(lines) - i for s, e, _ in fenced_blocks(lines) for i in (s, e)}
    shown = tail.split("\n")
    for start, end, _ in fenced_blocks(shown):
        assert start == 0 or len(shown) - start in from_end, (markdown, tail)
        assert end == len(shown) or len(shown) - end in from_end, (markdown, tail)


def test_a_closing_fence_at_the_cut_goes_with_its_code() -> None:
    markdown = "```\n" + "code\n" * 10 + "```\nafter one\nafter two"
    assert markdown_tail(markdown, len("```\nafter one\nafter two")) == "after one\nafter two"


def test_one_line_longer_than_the_limit_shows_its_end_under_its_fence() -> None:
    markdown = "```sh\necho " + "a" * 500 + " end"
    assert markdown_tail(markdown, 50) == "```sh\n" + ("a" * 500 + " end")[-44:]


def test_the_end_of_an_answer_with_windows_line_ends_after_its_code_block_gets_no_fence() -> None:
    """A fence line ending in a carriage return closes its block: taken for still open, the
    tail got the fence put first and the draft showed the prose after the block as code."""
    markdown = "```py\r\nx = 1\r\n```\r\n" + "Prose after the code.\r\n" * 20
    tail = markdown_tail(markdown, 100)
    assert "```" not in tail and tail.endswith("Prose after the code.\r\n")


def test_the_end_of_one_long_line_begins_on_a_whole_emoji() -> None:
    # A family emoji is seven code points joined by ZWJ: half of one shows as other people.
    family = "👨‍👩‍👧‍👦"
    for limit in range(20, 40):
        tail = markdown_tail("x" + family * 50, limit)
        assert utf16_len(tail) <= limit and tail and tail.replace(family, "") == "", (limit, tail)
