"""moto's request-id stamping without its scan of every response body.

moto puts each response's request id into ``<RequestId>`` of an XML body with a regular
expression that looks behind at every character of the body, JSON bodies included: 9 ms of
the server's CPU for a 500 KB DynamoDB Query, a quarter of what it spends on that Query, and
more than the store's own work on it. Here the same substitution runs only on bodies that
hold the tag, so every response is byte for byte what moto sends, with the scan skipped where
it can match nothing. Should a later moto rename the method, its own runs unchanged.
"""

from __future__ import annotations

from typing import Any

_TAG = "<RequestId>"


def stamp_request_ids_only_where_tagged() -> None:
    from moto.core.responses import BaseResponse

    enrich = getattr(BaseResponse, "_enrich_response", None)
    if enrich is None or getattr(enrich, "skips_untagged", False):
        return

    def enrich_tagged(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
        if isinstance(body, str) and _TAG not in body:
            headers, _ = enrich(headers, "")  # the headers as moto makes them; nothing to stamp
            return headers, body
        stamped: tuple[dict[str, str], Any] = enrich(headers, body)
        return stamped

    enrich_tagged.skips_untagged = True  # type: ignore[attr-defined]
    BaseResponse._enrich_response = staticmethod(enrich_tagged)  # type: ignore[method-assign]
