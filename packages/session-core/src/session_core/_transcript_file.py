"""The transcript file a cold restore fills while the snapshot is still downloading."""

from __future__ import annotations

import os
import threading

_SLICE_BYTES = 1024 * 1024


class TranscriptFile:
    """An open transcript file: its owner writes it, and a load's download threads may first
    put the snapshot's JSONL into it, each range at the offset its head marks, as each frame
    comes out of the decompressor (the write then overlaps the download).

    ``written`` is how many bytes from the start the load vouches for: the JSONL of the
    snapshot it returned, every range the length its mark said. It stays 0 when a range came
    out another length, a write failed, or the load used another read of the snapshot; the
    owner then writes the whole file. After ``close`` returns no write lands (a cancelled
    download may still be running)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._open = True
        self._failed = False
        self.written = 0

    def write_at(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            # A slice at a time, so ``close`` never waits on more than one slice's write.
            piece = view[:_SLICE_BYTES]
            with self._lock:
                if not self._open or self._failed:
                    return
                try:
                    done = os.pwrite(self._fd, piece, offset)
                except (OSError, ValueError, OverflowError):
                    self._failed = True  # the owner's own write of the whole file reports it
                    return
            view, offset = view[done:], offset + done

    def vouch(self, size: int) -> None:
        """The load's snapshot JSONL, ``size`` bytes, is in the file from its start."""
        with self._lock:
            if self._open and not self._failed:
                self.written = size

    def close(self) -> None:
        with self._lock:
            self._open = False
