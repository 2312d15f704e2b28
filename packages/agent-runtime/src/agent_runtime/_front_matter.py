"""A Markdown file's YAML front matter, read as the bundled Claude Code CLI reads it, so what
the CLI takes is not refused here."""

from __future__ import annotations

import re

import yaml

# A byte-order mark skipped, spaces after either '---', and the closing one may end the file.
FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)^---[ \t]*(?:\r?\n|\Z)", re.S | re.M)
# The CLI's second try when strict YAML fails: a plain "key: value" line whose value holds
# ': ' or a character YAML reserves ("Use when: …", "*.csv …") is quoted, leading tabs become
# two spaces each. Its patterns, kept as they are (a CRLF line is left alone, as there).
_KEY_VALUE = re.compile(r"([a-zA-Z_-]+):\s+(\S[^\r\n]*)")
_NEEDS_QUOTES = re.compile(r"[{}\[\]*&#!|>%@`]|: ")
_LEADING_TABS = re.compile(r"^\t+", re.M)


def load_front_matter(text: str) -> object:
    """The YAML ``text`` of a front matter block; yaml.YAMLError when the CLI's lenient second
    reading fails too (the error is the strict one's, which names the line)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as strict:
        try:
            return yaml.safe_load(_LEADING_TABS.sub(lambda m: "  " * len(m.group(0)), _quoted(text)))
        except yaml.YAMLError:
            raise strict from None


def _quoted(text: str) -> str:
    lines = []
    for line in text.split("\n"):
        match = _KEY_VALUE.fullmatch(line)
        if match and _NEEDS_QUOTES.search(value := match.group(2)) and not _stays(value):
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            line = f'{match.group(1)}: "{escaped}"'
        lines.append(line)
    return "\n".join(lines)


def _stays(value: str) -> bool:
    """A value the CLI leaves as written: already quoted, or a flow list that parses."""
    if (value.startswith('"') and value.endswith('"')) or (value.startswith("'") and value.endswith("'")):
        return True
    if value.startswith("[") and value.endswith("]"):
        try:
            return isinstance(yaml.safe_load(value), list)
        except yaml.YAMLError:
            return False
    return False
