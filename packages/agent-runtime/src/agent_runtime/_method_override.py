"""Requests that ask the server for another HTTP method than the one they use.

Web frameworks honour such asks (Rails and Express's method-override read a header or a form
field ``_method``, Symfony and Laravel also the query string), so a POST the proxy lets through
to an endpoint with a credential could reach that endpoint's PUT, PATCH or DELETE. Neither the
CLI nor an MCP client ever sends one: the proxies refuse them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl

_OVERRIDE_HEADERS = frozenset({"x-http-method-override", "x-http-method", "x-method-override"})
_OVERRIDE_FIELD = "_method"
# Bodies a framework parses into fields (``_method`` among them); the CLI and MCP send JSON.
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def asks_for_another_method(headers: Iterable[tuple[str, str]], query: str) -> bool:
    """Whether the request (its header fields, every one, and its query string) names another
    method in a header, the query or a form body."""
    pairs = list(headers)
    names = {name.lower() for name, _ in pairs}
    if names & _OVERRIDE_HEADERS:
        return True
    # Some parsers (Rack before 3) split a query on ';' as well as '&'.
    fields = parse_qsl(query.replace(";", "&"), keep_blank_values=True)
    if any(name.lower() == _OVERRIDE_FIELD for name, _ in fields):
        return True
    content_type = next((value for name, value in pairs if name.lower() == "content-type"), "")
    return content_type.strip().lower().startswith(_FORM_TYPES)
