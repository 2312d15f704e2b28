"""Where a link in an answer may lead, decided as Telegram decides it.

Telegram's HTML parser (TDLib's ``LinkManager::check_link``) keeps an ``<a href>`` to an
``http(s)://`` address only when its host has a dot or is a bracketed IPv6 address, holds only
the characters a host may, and any port is 1-65535; it drops any other link silently, its text
kept and the address lost (``http://localhost:3000``, ``http://intranet/wiki``). IPv4 hosts
(``http://127.0.0.1:8080``) are links. It opens no ``mailto:`` link at all, but links an e-mail
address written in the text.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

# The addresses a link may be written with, in Markdown or in HTML.
LINK_SCHEME = r"(?i:https?://|tg://|mailto:)"
# A web or Telegram (tg://user?id=…) address: its part before any / ? # must name a host, with
# a letter or digit and no space ("https://", "tg://", "https://?q=1" name none). Any other
# (javascript:, data:, file:, a relative path) stays text.
_WITH_HOST_RE = re.compile(r"(?i:https?|tg)://(?=[^/?#]*[^\W_])[^\s/?#]+(?:[/?#].*)?", re.S)
_WEB_AUTHORITY_RE = re.compile(r"(?i:https?)://([^/?#]*)")
# What a host (and the user part before an @) may hold, as TDLib checks it: RFC 3986's
# characters, percent escapes, and any non-ASCII character.
_HOST_CHARACTERS = r"(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2}|[^\x00-\x7f])"
_HOST_RE = re.compile(f"{_HOST_CHARACTERS}+")
_USER_RE = re.compile(f"(?:{_HOST_CHARACTERS}|:)*")
_IPV6_RE = re.compile(r"\[([0-9A-Fa-f:.]+)\]")
EMAIL_ADDRESS = (
    r"[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*"
)
# mailto: and one address; a query after it (?subject=…) is no part of the address shown.
_MAILTO_RE = re.compile(rf"(?i:mailto:)({EMAIL_ADDRESS})(?:\?.*)?", re.S)

# opens: Telegram makes it a link. refused: a web address Telegram would drop the link to.
# mail: a mailto: link to one address. text: no link at all (javascript:, a relative path).
LinkKind = Literal["opens", "refused", "mail", "text"]


@dataclass(frozen=True, kw_only=True)
class LinkTarget:
    """What a link's address is to Telegram, and the address as a reader would want it shown
    (a ``mailto:`` link's e-mail address alone)."""

    kind: LinkKind
    address: str
    shown: str


def link_target(address: str) -> LinkTarget:
    """What Telegram makes of a link to ``address`` (plain text, spaces around it ignored)."""
    address = address.strip()
    mail = _MAILTO_RE.fullmatch(address)
    if mail:
        return LinkTarget(kind="mail", address=address, shown=mail.group(1))
    if _WITH_HOST_RE.fullmatch(address) is None:
        return LinkTarget(kind="text", address=address, shown=address)
    web = _WEB_AUTHORITY_RE.match(address)
    opens = web is None or _telegram_opens_host(web.group(1))  # tg:// addresses open as they are
    return LinkTarget(kind="opens" if opens else "refused", address=address, shown=address)


def _telegram_opens_host(authority: str) -> bool:
    """Whether Telegram links a web address with this ``[user@]host[:port]``."""
    colon = authority.rfind(":")
    if colon > 0 and colon > max(authority.rfind("]"), authority.rfind("@")):
        port = authority[colon + 1 :].lstrip("0")
        if not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535):
            return False  # none, 0, or out of range
        authority = authority[:colon]
    user, _, host = authority.rpartition("@")
    if _USER_RE.fullmatch(user) is None:
        return False
    ipv6 = _IPV6_RE.fullmatch(host)
    if ipv6:
        try:
            ipaddress.IPv6Address(ipv6.group(1))
        except ValueError:
            return False
        return True
    return "." in host and host != "." and _HOST_RE.fullmatch(host) is not None
