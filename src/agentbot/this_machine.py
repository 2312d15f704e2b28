"""Whether an endpoint URL is served on this machine, for the commands that must know."""

from __future__ import annotations

import ipaddress
import queue
import socket
import threading
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

# A name the local resolver has not answered by then counts as elsewhere: an operator command
# never waits on a resolver that does not answer.
RESOLVE_TIMEOUT_S = 2.0

Resolver = Callable[[str], Sequence[str]]


def resolve_host(host: str) -> list[str]:
    """The addresses the system's resolver gives ``host`` (/etc/hosts, DNS), [] when none."""
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [str(address[4][0]) for address in found]


def names_this_machine(url: str, resolve: Resolver = resolve_host) -> bool:
    """Whether ``url`` is served on this machine: localhost, a loopback (or any-)address, or
    a name ``resolve`` answers with those only (an /etc/hosts alias of 127.0.0.1)."""
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:  # no URL boto3 could call either
        return False
    host = host.removesuffix(".")  # "localhost." is the same name, fully qualified
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = _address(host)
    if address is not None:
        return _is_this_machine(address)
    addresses = [_address(found) for found in _resolved_in_time(host, resolve)]
    return bool(addresses) and all(a is not None and _is_this_machine(a) for a in addresses)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        try:  # the short IPv4 forms a connect takes too: 127.1 is 127.0.0.1
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None


def _is_this_machine(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address.is_loopback or address.is_unspecified


def _resolved_in_time(host: str, resolve: Resolver) -> Sequence[str]:
    # getaddrinfo takes no timeout: it runs in a thread left behind (a daemon) when too slow.
    answer: queue.Queue[Sequence[str]] = queue.Queue(maxsize=1)
    threading.Thread(target=lambda: answer.put(resolve(host)), daemon=True).start()
    try:
        return answer.get(timeout=RESOLVE_TIMEOUT_S)
    except queue.Empty:
        return []
