"""The network under a fetch: which addresses are public, and httpx's transport over an httpcore
pool whose backend checks every connection's address (SSRF) and bounds each read by the fetch's
deadline."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
import typing
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit
import httpcore
import httpx

from worker.errors import FetchError


READ_SLICE = 0.5  # seconds a blocking read waits before checking the deadline and abort flag again
def _system_resolve(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class Network:
    """How names become addresses and addresses become connections (tests replace both)."""

    resolve: Callable[[str], list[str]] = _system_resolve
    # Called just before dialling (ip, port); returns the address actually dialled.
    on_connect: Callable[[str, int], tuple[str, int]] = lambda ip, port: (ip, port)


def is_public_address(ip: str) -> bool:
    """True for globally routable unicast addresses; False for loopback, private, link-local
    (169.254/16: cloud metadata), CGNAT (100.64/10), multicast, reserved and unspecified."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_site_local:
            return False
        embedded = address.ipv4_mapped or address.sixtofour or _nat64_or_compatible(address)
        if embedded is not None:  # an IPv4 address written as IPv6 reaches that IPv4 address
            address = embedded
    return address.is_global and not address.is_multicast


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")  # "IPv4-compatible" (deprecated), e.g. ::127.0.0.1
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT "IPv4-translated"


def _nat64_or_compatible(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in _NAT64 or address in _TRANSLATED or (address in _COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_link_local(ip: str) -> bool:
    """169.254.0.0/16 and fe80::/10: where cloud metadata services answer."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_link_local


@dataclass
class FetchContext:
    url: str
    deadline: float
    abort: threading.Event
    network: Network
    allow_private: bool
    was_public: bool | None
    origin_public: bool | None = None
    attempts: list[tuple[str, int]] = field(default_factory=list)

    @property
    def origin_host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()

    def check_addresses(self, host: str, ips: list[str]) -> list[str]:
        """The addresses this fetch may dial for `host`; raises when none may be used."""
        public = [ip for ip in ips if is_public_address(ip)]
        if self.allow_private:
            return ips
        if self.origin_public is None:  # the configured host: its first answer sets the rule
            if public or self.was_public:
                self.origin_public = True
            else:
                self.origin_public = False
                return ips
        if not self.origin_public:
            if host != self.origin_host:  # a private feed may move within its network, never onto metadata
                ips = [ip for ip in ips if not _is_link_local(ip)]
                if not ips:
                    raise FetchError(f"refused to connect to {host}: a feed may not be moved onto a link-local "
                                     "address (169.254.0.0/16, fe80::/10: cloud metadata)", url=self.url, kind="blocked",
                                     hint="set fetch.allow_private_redirects = true if this is intended")
            return ips
        if public:
            return public
        raise FetchError(
            f"refused to connect to {host} ({', '.join(ips)}): a public feed may not be moved onto a "
            "loopback, private, link-local or reserved address",
            url=self.url,
            kind="blocked",
            hint="set fetch.allow_private_redirects = true if this is intended",
        )


_local = threading.local()


@contextmanager
def fetch_context(ctx: FetchContext) -> Iterator[FetchContext]:
    _local.ctx = ctx
    try:
        yield ctx
    finally:
        _local.ctx = None


def _context() -> FetchContext:
    ctx = getattr(_local, "ctx", None)
    if ctx is None:  # pragma: no cover - the transport is only used through Fetcher.fetch
        raise RuntimeError("network use outside Fetcher.fetch")
    return typing.cast(FetchContext, ctx)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write respects the fetch's deadline and abort flag."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def _budget(self, timeout: float | None) -> float:
        ctx = _context()
        remaining = ctx.deadline - time.monotonic()
        if ctx.abort.is_set():
            raise httpcore.ReadTimeout("stopped: the worker is shutting down")
        if remaining <= 0:
            raise httpcore.ReadTimeout("the whole response took longer than the time allowed")
        return min(remaining, READ_SLICE, timeout if timeout is not None else READ_SLICE)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        waited = 0.0
        while True:
            budget = self._budget(timeout)
            try:
                return self._inner.read(max_bytes, budget)
            except httpcore.ReadTimeout:  # nothing was read; wait again unless the caller's time is up
                waited += budget
                if timeout is not None and waited >= timeout:
                    raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._budget(timeout)
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves with the injected resolver, applies the SSRF rule, then dials."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        ctx = _context()
        try:
            ips = ctx.network.resolve(host)
        except (OSError, UnicodeError) as exc:
            raise FetchError(f"DNS lookup failed for {host}: {exc}", url=ctx.url, kind="dns") from None
        if not ips:
            raise FetchError(f"DNS lookup failed for {host}: no address", url=ctx.url, kind="dns")
        last_error: Exception | None = None
        for ip in ctx.check_addresses(host, ips):
            dial_ip, dial_port = ctx.network.on_connect(ip, port)
            ctx.attempts.append((ip, port))
            try:
                stream = super().connect_tcp(dial_ip, dial_port, timeout, local_address, socket_options)
                return _DeadlineStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport (its public interface) over an httpcore pool (a declared dependency)
    that dials through _GuardedBackend and never reuses a connection."""

    def __init__(self) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=None,
            max_keepalive_connections=0,
            network_backend=_GuardedBackend(),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        sent = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw, content=typing.cast(Iterable[bytes], request.stream),
            extensions=request.extensions,
        )
        with _as_httpx_error(request):
            answer = self._pool.handle_request(sent)
        return httpx.Response(status_code=answer.status, headers=answer.headers, extensions=answer.extensions,
                              stream=_Body(answer, request))

    def close(self) -> None:
        self._pool.close()


class _Body(httpx.SyncByteStream):
    """A response body read from httpcore, its errors raised as httpx's."""

    def __init__(self, answer: httpcore.Response, request: httpx.Request) -> None:
        self._answer, self._request = answer, request

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_error(self._request):
            yield from typing.cast(Iterable[bytes], self._answer.stream)

    def close(self) -> None:
        self._answer.close()


# httpcore's errors and the httpx errors the fetch code reads (httpx documents the same names).
_HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout), (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout), (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.ConnectError, httpx.ConnectError), (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError), (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError), (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProxyError, httpx.ProxyError), (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.TimeoutException, httpx.TimeoutException), (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _as_httpx_error(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core, public in _HTTPX_ERRORS:
            if isinstance(exc, core):
                raise public(str(exc), request=request) from exc
        raise
