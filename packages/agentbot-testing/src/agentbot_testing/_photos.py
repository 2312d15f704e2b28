"""Photos for tests that need the agent to read a large image (the CLI keeps its base64)."""

from __future__ import annotations

import random
import struct
import zlib


def noise_png(side: int, seed: int = 0) -> bytes:
    """A ``side`` by ``side`` PNG of random pixels (``seed``): it does not compress, so it is
    as large as such a photo gets (~3 bytes a pixel) and its base64 as long."""
    pixels = random.Random(seed).randbytes(side * side * 3)
    rows = b"".join(b"\x00" + pixels[y * side * 3 : (y + 1) * side * 3] for y in range(side))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, 1))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
