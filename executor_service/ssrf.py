"""The guard that keeps http jobs from reaching the executor's own networks (SSRF).

A job names any URL, so without a guard a job owner could make the executor call the cloud's
metadata service (169.254.169.254), an admin port on loopback or a database on the private
network. `GuardedBackend` is the network layer of the executor's HTTP client: it resolves the
host itself, refuses the connection when ANY resolved address is not public (unless it lies in a
network the operator allowed: the rule is `libs.security.addresses`, which the job service also
applies to literal addresses at creation), and then connects to the vetted address, never to the
name again, so a DNS answer that changes between the check and the connect (DNS rebinding) cannot
slip through. Checking at connection time also covers every spelling of an address
(`2130706433`, `0x7f000001`, `127.1`, `0177.0.0.1`): the resolver normalises them all.

TLS is unaffected: httpcore calls `start_tls` on the stream with the URL's host name as
`server_hostname`, so certificates are still verified against the name, not the address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence

import httpcore

from libs.infra import log
from libs.security import addresses


class AddressNotAllowed(Exception):
    """A connection was refused because the host resolves to an address that is not public.

    The message names the host only (not the URL, which may hold a token in its query, nor the
    address, which would tell a job owner how internal names resolve); `address` holds the
    refused address for the executor's own log."""

    def __init__(self, host: str, address: str | None = None):
        super().__init__(f"refused to connect to {host}: it resolves to a non-public address")
        self.host = host
        self.address = address


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to allowed addresses (see the module
    docstring). `backend` does the actual connecting; by default httpcore's asyncio one."""

    def __init__(
        self,
        allowed_networks: Sequence[addresses.IpNetwork] = (),
        backend: httpcore.AsyncNetworkBackend | None = None,
    ):
        self._allowed = tuple(allowed_networks)
        self._backend = backend or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        resolved = await self._resolve(host, port, timeout)
        for address in resolved:
            if not addresses.is_allowed(ipaddress.ip_address(address), self._allowed):
                log.get(__name__).warning("http_address_refused", host=host, address=address)
                raise AddressNotAllowed(host, address)

        # Every address passed; connect to them in turn, as a resolver-driven client would.
        # They are literals, so the backend resolves nothing again.
        last_error: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in resolved:
            try:
                return await self._backend.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None  # _resolve returns at least one address
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # A job has no business with the executor's local sockets (docker.sock, say).
        raise AddressNotAllowed("a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)

    @staticmethod
    async def _resolve(host: str, port: int, timeout_s: float | None) -> list[str]:
        """The distinct addresses `host` resolves to, in the resolver's order."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took over {timeout_s} s") from None
        except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
            raise httpcore.ConnectError(f"could not resolve {host}: {exc}") from exc
        # sockaddr[0] is the address as text; IPv6 link-local ones keep their "%scope".
        found = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not found:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        return found
