"""Whether an endpoint URL is served on this machine, for the commands that must know."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


def names_this_machine(url: str) -> bool:
    """Whether ``url`` is served on this machine: localhost or a loopback (or any-)address."""
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:  # no URL boto3 could call either
        return False
    host = host.removesuffix(".")  # "localhost." is the same name, fully qualified
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:  # the short IPv4 forms a connect takes too: 127.1 is 127.0.0.1
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:  # a name: resolved elsewhere (a VPC endpoint's), not ours to guess
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address.is_loopback or address.is_unspecified
