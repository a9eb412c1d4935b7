"""Fetching a URL that someone else chose (an image URL in a provider's answer) without
letting it reach inside: no redirects, only allowed hosts, and only public addresses.

The address check sits in the connector's resolver, so the address connected to is the
address checked (a name that resolves to a public address for the check and to 127.0.0.1
for the connection, DNS rebinding, is refused either way).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.resolver import ThreadedResolver


def is_public_address(address: str) -> bool:
    """Globally routable unicast: not private, loopback, link-local (cloud metadata at
    169.254.169.254), shared, reserved, multicast or unspecified."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class PublicOnlyResolver(ThreadedResolver):
    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[Any]:
        found = await super().resolve(host, port, family)
        public = [entry for entry in found if is_public_address(entry["host"])]
        if not public:
            raise OSError(f"{host} has no public address")
        return public


def public_only_session(**kwargs: Any) -> aiohttp.ClientSession:
    """A session whose connections go only to public addresses (make it in a running loop)."""
    connector = aiohttp.TCPConnector(resolver=PublicOnlyResolver(), limit=10)
    return aiohttp.ClientSession(connector=connector, **kwargs)


def host_matches(host: str, patterns: list[str]) -> bool:
    """`host` is one of `patterns`, where `*.example.com` matches any subdomain."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*.") and host.endswith(pattern[1:]) and host != pattern[2:]:
            return True
        if host == pattern:
            return True
    return False


def literal_address(url: str) -> str | None:
    """The URL's host when it is an IP literal (aiohttp connects to those unresolved)."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host
