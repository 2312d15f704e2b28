"""Recognising a credential in a string by what it is, whatever it is called: the well-known
token formats (``ghp_…``, ``sk-ant-…``, ``AKIA…``), a URL with a password, and a URL whose query
parameter is named like a secret. Used where a name alone cannot tell (mcp.json's ``env``
values, arguments, headers and URLs), so it must not take an ordinary setting for one."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from session_core import is_secret_variable

# Not preceded by a letter or digit: a token's prefix starts a word ("Bearer ghp_…", "--key=sk-…").
_START = r"(?<![A-Za-z0-9])"
# Each kind, as told to the operator, and its format: a fixed prefix and a long random part, so
# that no setting, hash, id or model name has it.
_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("a GitHub token", _START + r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
        ("an Anthropic API key", _START + r"sk-ant-[A-Za-z0-9_-]{32,}"),
        # OpenAI's (sk-proj-…) and the many APIs that copy it: a digit in the long part, so that a
        # long dashed name after "sk-" is not one
        ("an OpenAI-style API key", _START + r"sk-(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{32,}"),
        # bot, user, refresh..., a browser session's token and cookie (xoxc, xoxd: URL-encoded),
        # an app's (xapp)
        ("a Slack token", _START + r"(?:xox[abcdeprs]|xapp)-[A-Za-z0-9%-]{10,}"),
        ("an AWS access key id", _START + r"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        ("a Google API key", _START + r"AIza[A-Za-z0-9_-]{35}"),
        ("a Stripe key", _START + r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,}"),
        ("a GitLab token", _START + r"glpat-[A-Za-z0-9_-]{20,}"),
        ("a JSON Web Token", _START + r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}"),
        ("a private key", r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"),
        ("a Telegram bot token", r"(?<![0-9])[0-9]{5,16}:A[A-Za-z0-9_-]{34}(?![A-Za-z0-9_-])"),
        ("a Hugging Face token", _START + r"hf_[A-Za-z]{34}(?![A-Za-z0-9])"),
        ("an npm token", _START + r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    )
)
# A URL with a password in it (postgres://bot:pw@db/app)
_URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
# Query parameters that carry a key though no secret variable would be called so. Decided:
# `key` alone too (Google's and many APIs' `?key=`): in an MCP server's URL it is a credential,
# and a number or switch in it still passes.
_SECRET_QUERY_NAMES = frozenset({"key", "apikey", "accesskey", "auth"})
# What such a parameter holds when it names how to authenticate, not a credential (``?auth=none``,
# ``?token_type=bearer``). Decided: these words only, and only under a name of a way to
# authenticate (``auth``…, …``type``, …``mode``): any other word, or any word as a
# ``password``, may be the secret itself.
_AUTH_MODES = frozenset(
    {
        "none",
        "anonymous",
        "public",
        "basic",
        "bearer",
        "digest",
        "oauth",
        "oauth2",
        "header",
        "query",
        "token",
    }
)
# What a value named like a secret may still be: a switch or a number (TOKENIZERS_PARALLELISM=false,
# MAX_TOKENS=4096), never a credential.
_PLAIN_SETTING = re.compile(r"[0-9]{0,12}|true|false|yes|no|on|off", re.IGNORECASE)


def is_plain_setting(value: str) -> bool:
    """True for a value no credential is: empty, a number or a switch (``false``, ``on``)."""
    return bool(_PLAIN_SETTING.fullmatch(value))


def find_credential(value: str) -> str | None:
    """What in ``value`` is a credential, worded to follow a field's name ("looks like a GitHub
    token", "holds a URL with a password"), or None. The words never quote the value."""
    for kind, pattern in _FORMATS:
        if pattern.search(value):
            return f"looks like {kind}"
    if _URL_WITH_PASSWORD.search(value):
        return "holds a URL with a password"
    for url in _URL.findall(value):
        parameter = _secret_query_parameter(url)
        if parameter is not None:
            return f"holds a URL whose query parameter {parameter!r} is named like a secret"
    return None


def _secret_query_parameter(url: str) -> str | None:
    try:
        query = urlsplit(url).query
    except ValueError:  # not a URL after all (an unclosed bracket): nothing to read in it
        return None
    for name, parameter_value in parse_qsl(query, keep_blank_values=True):
        # apiKey and x-api-key read as API_KEY
        words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).replace("-", "_")
        named_like_a_secret = (
            is_secret_variable(words) or words.replace("_", "").lower() in _SECRET_QUERY_NAMES
        )
        lowered = words.lower()
        names_a_way = lowered.startswith("auth") or lowered.endswith(("type", "mode"))
        mode = names_a_way and parameter_value.lower() in _AUTH_MODES
        if named_like_a_secret and not mode and not is_plain_setting(parameter_value):
            return name
    return None
