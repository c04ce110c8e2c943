"""Which addresses http jobs may reach (`libs.security.addresses`): the public ones, and those the
operator allowed; the addresses a URL's host writes out; the setting that lists the networks."""

from __future__ import annotations

import ipaddress
import re

import pytest

from libs.security import addresses


def ip(text):
    return ipaddress.ip_address(text)


def networks(*texts):
    return tuple(ipaddress.ip_network(text) for text in texts)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",  # loopback
        "127.255.255.254",
        "0.0.0.0",  # noqa: S104 ("this host": Linux connects it to loopback)
        "10.1.2.3",  # private
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # link-local: the cloud metadata service
        "100.64.0.1",  # carrier-grade NAT (shared address space)
        "100.127.255.255",
        "192.0.0.8",  # IETF protocol assignments
        "192.0.2.1",  # documentation
        "198.18.0.1",  # benchmarking
        "224.0.0.1",  # multicast
        "239.255.255.250",
        "240.0.0.1",  # reserved
        "255.255.255.255",  # broadcast
        "::1",  # IPv6 loopback
        "::",  # unspecified
        "fc00::1",  # unique local (fc00::/7)
        "fd12:3456::1",
        "fe80::1",  # link-local
        "ff02::1",  # multicast, link scope
        "ff0e::1",  # multicast, global scope: is_global, refused all the same
        "2001:db8::1",  # documentation
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",  # IPv4-compatible (deprecated, reserved ::/8)
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2001::1",  # Teredo
        "fe80::1%eth0",  # with a scope, as the resolver writes link-local addresses
    ],
)
def test_non_public_addresses_are_refused(address):
    assert not addresses.is_public(ip(address))
    assert not addresses.is_allowed(ip(address))


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "100.63.255.255",  # just below CGNAT
        "100.128.0.0",  # just above it
        "2606:4700:4700::1111",
        "2a00:1450:4001::200e",
        "::ffff:8.8.8.8",  # IPv4-mapped public
        "2002:808:808::1",  # 6to4 of 8.8.8.8
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8 (DNS64 networks synthesise these)
    ],
)
def test_public_addresses_are_allowed(address):
    assert addresses.is_public(ip(address))
    assert addresses.is_allowed(ip(address))


@pytest.mark.parametrize(
    ("address", "allowed", "expected"),
    [
        ("127.0.0.1", ("127.0.0.0/8",), True),
        ("127.0.0.1", ("10.0.0.0/8",), False),
        ("10.20.30.40", ("10.0.0.0/8", "::1/128"), True),
        ("169.254.169.254", ("10.0.0.0/8",), False),
        ("::1", ("127.0.0.0/8",), False),  # another version's network does not match
        ("::1", ("::1/128",), True),
        ("::ffff:127.0.0.1", ("127.0.0.0/8",), True),  # mapped counts as its IPv4 address
        ("2002:7f00:1::1", ("127.0.0.0/8",), False),  # 6to4 goes to a relay, not loopback
        ("fd00::5", ("fd00::/8",), True),
        ("8.8.8.8", ("10.0.0.0/8",), True),  # public stays allowed
        ("8.8.8.8", (), True),
    ],
)
def test_allowed_networks_override_the_refusal(address, allowed, expected):
    assert addresses.is_allowed(ip(address), networks(*allowed)) is expected


@pytest.mark.parametrize(
    ("address", "inner"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("2002:7f00:1::1", "127.0.0.1"),
        ("64:ff9b::808:808", "8.8.8.8"),
        ("2606:4700:4700::1111", None),
        ("8.8.8.8", None),
    ],
)
def test_embedded_ipv4_addresses_are_unwrapped(address, inner):
    expected = None if inner is None else ip(inner)
    assert addresses.embedded_ipv4(ip(address)) == expected


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("::1", "::1"),  # urlsplit's hostname: without the brackets
        ("169.254.169.254", "169.254.169.254"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
        ("fe80::1%25eth0", "fe80::1%eth0"),  # a zone, percent-encoded as URLs write it
        # Legacy IPv4 spellings, which the executor's resolver reads as addresses too.
        ("2130706433", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("example.com", None),
        ("localhost", None),
        ("10.0.0.1.example.com", None),
        ("1.2.3.4.5", None),
        ("08.0.0.1", None),  # not octal: a name for the resolver to fail on
        ("0xdead.beef", None),
        ("deadbeef", None),
        ("", None),
        ("١٢٧.0.0.1", None),  # non-ASCII digits: not an address the resolver reads
    ],
)
def test_literal_addresses_are_read_as_the_resolver_reads_them(host, address):
    expected = None if address is None else ip(address)
    assert addresses.literal(host) == expected


def test_networks_are_parsed_from_the_setting():
    assert addresses.parse_networks(" 10.0.0.0/8, ,::1/128,10.1.2.3/8") == networks(
        "10.0.0.0/8", "::1/128", "10.0.0.0/8"
    )
    assert addresses.parse_networks("") == ()


def test_a_setting_that_is_not_a_network_is_refused_naming_it():
    with pytest.raises(ValueError, match=re.escape("'10.0.0.0/33' is not a network")):
        addresses.parse_networks("127.0.0.0/8,10.0.0.0/33")
