"""The padding that lets a snapshot grow by server-side copy from its first compaction on.

S3 joins objects only as the parts of a multipart upload, and every part but the last must
hold at least 5 MiB. So a new snapshot is one shared padding object of exactly 5 MiB, copied
inside S3 as part 1 (none of its bytes cross the wire), and its frames, uploaded as part 2.
From then on the snapshot is big enough to be part 1 of the next one: every compaction sends
only its new frame, and nothing stored is ever uploaded again. Once its frames alone reach
5 MiB, the next compaction copies only them (a ranged copy), and the padding is gone from it.

The padding is a zstd skippable frame, so a snapshot stays one valid ``.zst`` stream. Loads
never fetch it: the head records where the first real frame starts (``snap_start``).
"""

from __future__ import annotations

import struct

from ._transcript_format import S3_PREFIX
from ._transcript_items import MIN_COPY_PART_BYTES

PADDING_BYTES = MIN_COPY_PART_BYTES
# Outside every session's prefix (those end in "/"): listings and deletions never meet it.
PADDING_KEY = f"{S3_PREFIX}_padding/zstd-skippable-{PADDING_BYTES}"
_SKIPPABLE_MAGIC = 0x184D2A50  # the first of the 16 magic numbers zstd reserves for skipping
_FRAME_HEADER_BYTES = 8  # magic number and content size, 4 bytes each, little-endian


def padding_body() -> bytes:
    """The padding object: one zstd skippable frame of PADDING_BYTES, all zeros inside."""
    content = PADDING_BYTES - _FRAME_HEADER_BYTES
    return struct.pack("<II", _SKIPPABLE_MAGIC, content) + bytes(content)
