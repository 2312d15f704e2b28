"""The 1-token request `agentbot doctor` and `agentbot dev`'s start send the Anthropic Messages
API to learn whether it takes the key (and the model id), before any turn does."""

from __future__ import annotations

import httpx

DEFAULT_ANTHROPIC_BASE = "https://api.anthropic.com"
DEFAULT_ANTHROPIC_MODEL = "claude-sonnet-4-5"  # the template's AnthropicModel default
# What the operator does locally about a refused ANTHROPIC_API_KEY.
NEW_SHELL_KEY = "export ANTHROPIC_API_KEY=<a key from console.anthropic.com>"


def ask_for_one_token(http: httpx.Client, base: str, key: str, model: str) -> httpx.Response:
    """POST a 1-token message to ``base``'s ``/v1/messages`` (the one path the CLI needs) and
    return the answer, whatever its status; httpx.HTTPError when none comes."""
    return http.post(
        f"{base.rstrip('/')}/v1/messages",
        json={"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]},
        headers={"x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json"},
    )
