"""Documents for tests that need the agent to read a large file (the CLI keeps its base64)."""

from __future__ import annotations

import random

_PAGE_SIDE = 512  # a page's image is 512 pixels wide and up to 512 high: 768 KiB of noise


def noise_pdf(size: int, seed: int = 0) -> bytes:
    """A valid PDF of about ``size`` bytes (a little under), each page one image of random
    pixels (``seed``), stored unfiltered: it does not compress, as a scanned document."""
    rng = random.Random(seed)
    rows = max(1, (size - 1000) // (_PAGE_SIDE * 3 + 1))  # ~400 bytes of objects a page
    heights = [_PAGE_SIDE] * (rows // _PAGE_SIDE) + ([rows % _PAGE_SIDE] if rows % _PAGE_SIDE else [])
    pages = len(heights)
    # Objects: 1 catalog, 2 page tree, then per page: page, content, image.
    kids = " ".join(f"{3 + 3 * n} 0 R" for n in range(pages))
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
    ]
    for n, height in enumerate(heights):
        content, image = 4 + 3 * n, 5 + 3 * n
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_PAGE_SIDE} {height}]"
            f" /Resources << /XObject << /Im0 {image} 0 R >> >> /Contents {content} 0 R >>".encode()
        )
        objects.append(_stream(b"", f"q {_PAGE_SIDE} 0 0 {height} 0 0 cm /Im0 Do Q".encode()))
        objects.append(
            _stream(
                f"/Type /XObject /Subtype /Image /Width {_PAGE_SIDE} /Height {height}"
                " /ColorSpace /DeviceRGB /BitsPerComponent 8".encode(),
                rng.randbytes(_PAGE_SIDE * height * 3),
            )
        )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _stream(dictionary: bytes, data: bytes) -> bytes:
    return b"<< " + dictionary + f" /Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream"
