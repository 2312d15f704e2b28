"""multipart/form-data bodies, as the local Bot API server reads them: how a bot uploads a
file (``sendDocument``, ``sendPhoto``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Upload:
    """A file field of a multipart/form-data request, as the server parsed it."""

    file_name: str
    mime_type: str | None
    content: bytes


_BOUNDARY_RE = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_DISPOSITION_PARAM_RE = re.compile(r';\s*(name|filename)="((?:[^"\\]|\\.)*)"', re.IGNORECASE)
# How browsers and httpx write a quote, CR and LF inside a form's file name (HTML5).
_FORM_NAME_ESCAPES = {"%22": '"', "%0D": "\r", "%0A": "\n"}


def parse_form_data(raw: bytes, content_type: str) -> dict[str, Any]:
    """The fields of a multipart/form-data body: text fields as strings, file fields as
    Upload; ValueError for a body that is not one."""
    boundary = _BOUNDARY_RE.search(content_type)
    if boundary is None:
        raise ValueError("multipart body without a boundary")
    fields: dict[str, Any] = {}
    for part in raw.split(b"--" + boundary.group(1).encode())[1:]:
        if part.startswith(b"--"):
            return fields  # the closing delimiter
        head, found, body = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not found:
            raise ValueError("multipart part without a blank line after its headers")
        headers = {}
        for line in head.decode("utf-8").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        params = {
            key.lower(): re.sub(r"\\(.)", r"\1", value)
            for key, value in _DISPOSITION_PARAM_RE.findall(headers.get("content-disposition", ""))
        }
        if "name" not in params:
            raise ValueError("multipart part without a name")
        content = body.removesuffix(b"\r\n")
        if "filename" in params:
            file_name = re.sub("%22|%0D|%0A", lambda m: _FORM_NAME_ESCAPES[m.group()], params["filename"])
            fields[params["name"]] = Upload(file_name, headers.get("content-type"), content)
        else:
            fields[params["name"]] = content.decode("utf-8")
    raise ValueError("multipart body without its closing delimiter")
