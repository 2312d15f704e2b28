"""A model's base URL as the operator's terminal may show it."""

from __future__ import annotations

from urllib.parse import urlsplit


def shown_base_url(base: str) -> str:
    """``base`` as a line on the screen shows it: its origin, a path only as "/…", since a
    gateway's path may carry a token (the runtime does not echo ANTHROPIC_BASE_URL either)."""
    parts = urlsplit(base)
    host = parts.netloc.rpartition("@")[2]  # [::1]:4000 kept as written, a user:password@ not
    return f"{parts.scheme}://{host}{'/…' if parts.path.strip('/') else ''}"


# What the runtime says of an ANTHROPIC_BASE_URL it refuses (agent_runtime's settings), which
# dev's reachability check and doctor's probe meet first: "cannot reach :///…" hid the typo.
NOT_A_BASE_URL = "must be an http(s) URL such as https://gateway.example.com (the CLI adds /v1/messages)"
