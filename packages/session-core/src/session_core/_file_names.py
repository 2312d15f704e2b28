"""The one rule for turning a name a user chose into a file name we write under a prefix."""

from __future__ import annotations

import posixpath
import re

_UNSAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME_CHARS = 100


def safe_file_name(name: str | None, fallback: str = "file") -> str:
    """A file name that is one harmless path step: ASCII letters, digits, ``.``, ``_`` and
    ``-`` only (each other run becomes ``_``), no leading dot or underscore, at most 100
    characters (the end kept, so the extension survives); ``fallback`` when nothing is left."""
    cleaned = _UNSAFE_NAME_RE.sub("_", posixpath.basename(name or "")).lstrip("._")[-_MAX_NAME_CHARS:]
    return cleaned or fallback
