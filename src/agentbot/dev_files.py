"""`/file <path> [caption]` in `agentbot dev`'s terminal chat: a file of this machine reaches
the bot as a document, as Telegram delivers one (the local Bot API server serves it to the
consumer), so an operator can try a skill that reads files before deploying it.
"""

from __future__ import annotations

import mimetypes
import os
import re
import stat
from pathlib import Path
from typing import Any

from telegram_core import MAX_DOWNLOAD_BYTES

FILE_COMMAND = re.compile(r"/file(?:\s|$)", re.IGNORECASE)
FILE_HINT = "  (send a file with /file <path> [caption]; quote a path that has spaces)"
# The path, quoted when it has spaces, then the caption (what the user asks about the file).
_QUOTE_HINT = '; if the path has spaces, quote it: /file "my notes.txt" [caption]'
_FILE_LINE = re.compile(r"""/file\s+(?:"([^"]+)"|'([^']+)'|(\S+))\s*(.*)""", re.IGNORECASE | re.DOTALL)


def document_message(line: str, server: Any) -> dict[str, Any] | str:
    """The message fields (``document``, ``caption``) that send the file ``line`` names, its
    bytes made available on ``server`` (a LocalTelegram); or, as a line to show, why not. A
    file past the Bot API's 20 MB download limit is offered without its bytes: the bot
    answers it as it would in Telegram."""
    match = _FILE_LINE.fullmatch(line.strip())
    if match is None:
        return FILE_HINT
    name = next(group for group in match.groups()[:3] if group)
    path = Path(name).expanduser()
    try:
        info = path.stat()
    except OSError as exc:
        # An unquoted path ends at its first space: say so, or `my notes.txt` reads as `my`.
        spaced = match.group(3) and match.group(4).strip() and isinstance(exc, FileNotFoundError)
        return f"  (cannot send {name}: {exc.strerror or exc}{_QUOTE_HINT if spaced else ''})"
    if not stat.S_ISREG(info.st_mode):
        return f"  (cannot send {name}: not a regular file)"
    try:
        content = b"" if info.st_size > MAX_DOWNLOAD_BYTES else _read(path)
    except OSError as exc:
        return f"  (cannot send {name}: {exc.strerror or exc})"
    # The server's own path for it, as Telegram's (`documents/file_7.pdf`): not the name, which
    # another file of that name shares and whose `?`, `#` or `%` would break the download URL.
    file_id = server.add_file(content, file_size=info.st_size)
    document = {
        "file_id": file_id,
        "file_unique_id": file_id,
        "file_name": path.name,
        "mime_type": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
        "file_size": info.st_size,
    }
    caption = match.group(4).strip()
    return {"document": document, **({"caption": caption} if caption else {})}


def _read(path: Path) -> bytes:
    # Not through a FIFO or a device that was swapped in after the check.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as file:
            return file.read(MAX_DOWNLOAD_BYTES + 1)
    finally:
        os.close(fd)
