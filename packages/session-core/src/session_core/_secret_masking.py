"""Masking what looks like a credential in text a user reads (a tool's progress line, the
command an approval asks about, the rule "Always" would grant): one home for the runtime and the
Telegram side, so what one masks the other never shows."""

from __future__ import annotations

import re

_MASK = "…"
# Secret-looking material: API keys and tokens by their well-known prefixes, credentials in
# URLs, assignments and headers (the scheme of an Authorization header kept), passwords given
# as options (--password, curl -u user:, sshpass -p), and long runs of key-like characters.
_SECRETS = re.compile(
    r"(?i)(?P<keep>bearer\s+|authorization\s*[=:]\s*\w+\s+|basic\s+|://[^/\s:@]+:"
    r"|(?<![\w-])-u\s*[^\s:]+:|(?<![\w-])(?:--?(?:password|passwd|pass)|sshpass\s+-p)[=\s]\s*"
    r"|\b[\w.-]*(?:password|passwd|secret|token|api[_-]?key|authorization)[\w.-]*\s*[=:]\s*)"
    r"(?P<secret>[^\s@&'\"]+)"
    r"|sk-[a-z0-9_-]{8,}|A[KS]IA[0-9A-Z]{12,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\d{6,}:[A-Za-z0-9_-]{30,}"
)
# A long run of key-like characters (base64, hex, random ids) is taken for a credential too.
_LONG_RUN = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}")
_SHORT_SEGMENTS = re.compile(r"[A-Za-z0-9+_-]{1,31}(?:/[A-Za-z0-9+_-]{1,31})*/?")


def mask_secrets(text: str, *, keep_paths: bool = False) -> str:
    """``text`` with anything that looks like a credential replaced by an ellipsis. With
    ``keep_paths`` a long run that reads as a path (``/`` and short parts) stays visible: an
    approval must show which file a command touches."""
    text = _SECRETS.sub(lambda m: (m.group("keep") or "") + _MASK, text)
    return _LONG_RUN.sub(lambda m: m.group(0) if keep_paths and _is_path(m.group(0)) else _MASK, text)


def mask_command_secrets(command: str) -> str:
    """``command`` with its secrets masked (paths kept) and every bit of shell syntax still in
    sight: a mask that would swallow a ``;`` after a secret masks word by word instead."""
    masked = mask_secrets(command, keep_paths=True)
    if _SHELL_SYNTAX.findall(masked) != _SHELL_SYNTAX.findall(command):
        masked = _WORD.sub(lambda m: mask_secrets(m.group(0), keep_paths=True), command)
    return masked


_SHELL_SYNTAX = re.compile(r"[\s;|&$()<>`{}\\'\"#!*?\[\]~=]")
_WORD = re.compile(r"[^\s;|&$()<>`{}\\'\"#!*?\[\]~]+")


def _is_path(run: str) -> bool:
    return run.startswith("/") and _SHORT_SEGMENTS.fullmatch(run[1:]) is not None
