"""The one rule for turning a name a user chose into a file name we write under a prefix."""

from __future__ import annotations

import posixpath
import re
import unicodedata

_UNSAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")
# A name's extension: its last dotted parts of ASCII letters and digits ("отчёт.tar.gz" → ".tar.gz").
_EXTENSIONS_RE = re.compile(r"(?:\.[A-Za-z0-9]+)+\Z")
# Where a second file of one name takes its number: before the extension, and before ".tar" of
# a compressed one ("file.tar-2.gz" is no archive to tools that read one by its extension).
_NUMBERED_BEFORE_RE = re.compile(r"(?:\.tar)?\.[A-Za-z0-9]+\Z", re.IGNORECASE)
_MAX_NAME_CHARS = 100
# Brackets, quotes, line breaks and other control characters: what could end a sender's
# quoted file name, or the line it is in, early.
_NOT_IN_A_QUOTED_NAME = re.compile(r"[\[\]\"“”\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# The bidi controls (embeddings, overrides, isolates, direction marks): shown as nothing, they
# reorder what follows ("invoice\u202efdp.exe" reads "invoiceexe.pdf", and the rest of the line
# backwards). Dropped, as from a sender's name.
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+")
# A long name keeps its start and its end (the extension): 100 characters in all.
_NAME_HEAD_CHARS, _NAME_TAIL_CHARS = 60, 39


def safe_file_name(name: str | None, fallback: str = "file") -> str:
    """A file name that is one harmless path step: ASCII letters, digits, ``.``, ``_`` and
    ``-`` only (each other run becomes ``_``), no leading dot or underscore, at most 100
    characters (the end kept, so the extension survives); ``fallback`` when nothing is left,
    and ``fallback`` plus the extension when nothing of the stem was safe ("отчёт.pdf" →
    "file.pdf", "отчёт.tar.gz" → "file.tar.gz", "___.pdf" and ".pdf" → "file.pdf")."""
    base = posixpath.basename(name or "")
    extension = _EXTENSIONS_RE.search(base)
    if extension and not _UNSAFE_NAME_RE.sub("", base[: extension.start()]).strip("._"):
        # Tools pick how to read a file by its extension: a stem in another script (or only
        # dots and underscores, or none) leaves nothing, and the extension alone would become
        # the whole name ("pdf", "tar.gz"). Decided: a hidden file's name counts as its
        # extension too (".bashrc" → "file.bashrc"); the agent is told the name it was sent as.
        base = fallback + extension.group()
    # Stripped after the cut too: it may fall on a dot (a hidden file) or a space's "_".
    cleaned = _UNSAFE_NAME_RE.sub("_", base)[-_MAX_NAME_CHARS:].lstrip("._")
    return cleaned or fallback


def unused_file_name(name: str, used: set[str]) -> str:
    """``name``, or ``name-2.ext``, ``name-3.ext``...: the first not in ``used`` (which it joins).
    Files that go to one folder may have one name ("scan.pdf" twice, or two that became
    "file.pdf" by ``safe_file_name``); a compressed tar keeps ".tar" with its extension
    ("file-2.tar.gz"); never longer than 100 characters, as ``safe_file_name``'s are."""
    found = _NUMBERED_BEFORE_RE.search(name)
    stem, extension = (name[: found.start()], found.group()) if found and found.start() else (name, "")
    candidate, n = name, 1
    while candidate in used:
        n += 1
        number = f"-{n}"
        # Within safe_file_name's length, its stem's end giving way: longer, the name was cut
        # again where it became a key (its head lost), and could be another file's.
        room = _MAX_NAME_CHARS - len(number) - len(extension)
        if room > 0:
            candidate = f"{stem[:room]}{number}{extension}"
        else:
            # A name nearly all extension ("a." and 98 letters) has no stem to give way: its
            # end does, the number last (a name begun by "-" would read as a tool's option).
            candidate = f"{name[: _MAX_NAME_CHARS - len(number)]}{number}"
    used.add(candidate)
    return candidate


def quoted_file_name(raw: str | None) -> str:
    """A file's name as its sender gave it, fit to stand in quotes in a line the agent or the
    chat reads (the document a reply is about, the files a user attached, a file the bot could
    not fetch): the sender chose it, so it may
    not end the quote, the bracket or the line (those characters become spaces, as in a
    sender's name in the prompt), nor run on (the middle of a long one gives way, its
    extension stays), nor reorder what follows it (its bidi controls are dropped). Read as its
    NFKC form: a full-width "]" or '"' is the ASCII one."""
    shown = _BIDI_CONTROLS.sub("", unicodedata.normalize("NFKC", raw or ""))
    name = " ".join(_NOT_IN_A_QUOTED_NAME.sub(" ", shown).split())
    if len(name) > _NAME_HEAD_CHARS + 1 + _NAME_TAIL_CHARS:
        name = f"{name[:_NAME_HEAD_CHARS]}…{name[-_NAME_TAIL_CHARS:]}"
    return name
