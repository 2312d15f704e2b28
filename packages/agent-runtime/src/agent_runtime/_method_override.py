"""Requests that ask the server for another HTTP method than the one they use.

Web frameworks honour such asks (Rails and Express's method-override read a header or a form
field ``_method``, Symfony and Laravel also the query string, Laravel a JSON body's field), so
a POST the proxy lets through to an endpoint with a credential could reach that endpoint's
PUT, PATCH or DELETE. Neither the CLI nor an MCP client ever sends one: the proxies refuse
them all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import parse_qsl

_OVERRIDE_HEADERS = frozenset({"x-http-method-override", "x-http-method", "x-method-override"})
_OVERRIDE_FIELD = "_method"
# Bodies a framework parses into fields (``_method`` among them); the CLI and MCP send JSON.
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def asks_for_another_method(
    headers: Iterable[tuple[str, str]], query: str, body: bytes | None = None
) -> bool:
    """Whether the request (its header fields, every one, its query string and, when given, its
    JSON body) names another method in a header, the query, a form body or the JSON's top level."""
    pairs = list(headers)
    names = [name.lower() for name, _ in pairs]
    if set(names) & _OVERRIDE_HEADERS:
        return True
    # Some parsers (Rack before 3) split a query on ';' as well as '&'.
    fields = parse_qsl(query.replace(";", "&"), keep_blank_values=True)
    if any(name.lower() == _OVERRIDE_FIELD for name, _ in fields):
        return True
    types = [value for name, value in pairs if name.lower() == "content-type"]
    if len(types) > 1:  # the check would read one, a server may take the other
        return True
    if types and types[0].strip().lower().startswith(_FORM_TYPES):
        return True
    return body is not None and _json_names_a_method(body)


def _json_names_a_method(body: bytes) -> bool:
    """A JSON object (or a batch of them, as JSON-RPC sends) with a top-level ``_method``."""
    try:
        document = json.loads(body)
    except ValueError:
        return False  # not JSON: nothing a framework reads fields from (forms are refused above)
    objects = document if isinstance(document, list) else [document]
    return any(
        isinstance(item, dict) and any(str(key).lower() == _OVERRIDE_FIELD for key in item)
        for item in objects
    )
