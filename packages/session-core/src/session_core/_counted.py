"""A count and its noun as a message says it: "1 day", "2 days", "1,024 bytes", "3 stories";
a file's size as one: "22 bytes", "3.4 KB", "49.9 MB".
One rule for every count a user or the agent reads, so none says "1 days" when a setting
(SessionTtlDays, ChatQueueLimit) or a size happens to be one."""

from __future__ import annotations


def counted(count: int, noun: str) -> str:
    """``count`` (with thousands separators) and ``noun``, its last word in the plural unless
    ``count`` is 1: ``counted(1, "more day")`` is "1 more day", ``counted(2, "story")``
    "2 stories"."""
    return f"{count:,} {noun if count == 1 else _plural(noun)}"


def _plural(noun: str) -> str:
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return noun[:-1] + "ies"
    return noun + "s"


def file_size_text(size: int) -> str:
    """A file's ``size`` (bytes) as a message says it: bytes below 1 KB, else KB or MB with
    one decimal ("22 bytes", "3.4 KB", "49.9 MB")."""
    if size < 1024:
        return counted(size, "byte")
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"
