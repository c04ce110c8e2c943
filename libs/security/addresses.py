"""Which addresses `http` jobs may reach: public unicast ones, and those in networks the
operator allowed (`http.allowed.networks`). One rule, applied twice:

- the executor applies it to every address a target's host resolves to, at connection time
  (`executor_service.ssrf`): the check that matters, since names resolve differently a moment
  later and addresses have many spellings;
- the job service applies it at creation to a URL whose host is an address written out
  (`literal`), so that its owner learns at once instead of from a failed run.

Both services read the same setting; `parse_networks` reads it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Annotated
from urllib.parse import unquote

from pydantic import AfterValidator

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 forms that carry an IPv4 address the packet ends up at. IPv4-mapped (::ffff:0:0/96)
# reaches the IPv4 address through this very host's dual-stack socket; 6to4 (2002::/16) and
# NAT64 (64:ff9b::/96, RFC 6052) through a relay. Teredo (2001::/32) needs no unwrapping:
# `is_global` is false for all of it, so it is refused whole.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Not globally reachable by the IANA registries, yet `is_global` on some Python versions (3.11
# lists only 192.0.0.0/29 of the IETF protocol assignments): refused whatever the version says.
_ALSO_NOT_PUBLIC = (ipaddress.IPv4Network("192.0.0.0/24"),)
# What the resolver reads as an IPv4 address in a legacy spelling (`127.1`, `2130706433`,
# `0x7f000001`, `0177.0.0.1`): digits, hex digits after `0x`, and dots.
_IPV4_SPELLING = frozenset("0123456789abcdefx.")


def embedded_ipv4(ip: IpAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), or None."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def is_public(ip: IpAddress) -> bool:
    """Whether `ip` is a public unicast address: globally reachable, neither multicast nor
    reserved, and, for an IPv6 form of an IPv4 address, the IPv4 address public too."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        # Judged by where the packet goes: 64:ff9b::808:808 is 8.8.8.8 (the NAT64 prefix itself
        # counts as reserved), ::ffff:127.0.0.1 is loopback.
        return is_public(inner)
    if any(ip in network for network in _ALSO_NOT_PUBLIC):
        return False
    # `is_global` excludes private, loopback, link-local, CGNAT (100.64/10), documentation and
    # unique-local ranges, but not multicast, and not all reserved IPv6 ranges (::/8 holds the
    # deprecated IPv4-compatible ::a.b.c.d).
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def is_allowed(ip: IpAddress, allowed_networks: Sequence[IpNetwork] = ()) -> bool:
    """Whether an http job may reach `ip`: a public address, or one inside a network the
    operator allowed (an IPv4-mapped address counts as its IPv4 address there)."""
    candidates = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        candidates.append(ip.ipv4_mapped)
    # `in` is False across IP versions, so mixed lists need no care.
    if any(candidate in network for candidate in candidates for network in allowed_networks):
        return True
    return is_public(ip)


def literal(host: str) -> IpAddress | None:
    """The address a URL's host (`urlsplit(url).hostname`: brackets removed) writes out, as the
    executor's resolver would read it, legacy IPv4 spellings included; None for a name."""
    text = unquote(host)  # an IPv6 zone is written `%25eth0` in a URL
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    lowered = text.lower()
    if not lowered or not set(lowered) <= _IPV4_SPELLING or not lowered[0].isdigit():
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(lowered))
    except OSError:  # not an address after all ("1.2.3.4.5", "08")
        return None


def parse_networks(text: str) -> tuple[IpNetwork, ...]:
    """The networks of a comma-separated list of CIDRs (`http.allowed.networks`); blanks are
    ignored. Raises `ValueError` naming the part that is not a network."""
    networks = []
    for part in text.split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"{part.strip()!r} is not a network (CIDR): {exc}") from None
    return tuple(networks)


def _checked_networks(text: str) -> str:
    parse_networks(text)
    return text


NetworksSetting = Annotated[str, AfterValidator(_checked_networks)]
"""A setting holding comma-separated CIDRs, checked when the settings load."""
