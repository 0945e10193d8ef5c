"""Fetch: one polite, bounded, conditional GET per feed. The only module that imports httpx.

What "polite and bounded" means here:
- conditional requests (If-None-Match / If-Modified-Since); a 304, or a body whose sha256 equals
  the last one, means nothing to parse;
- an explicit User-Agent and an Accept header listing feed types;
- a deadline for the whole response (headers and body), enforced on every socket read, so a
  server that trickles bytes cannot hold a worker past `timeout`;
- a body cap counted after decompression (we decode gzip/deflate ourselves, bounded), so a
  compression bomb stops at the cap;
- redirects followed by hand: at most `max_redirects` hops, no loops, http and https only;
  a chain of 301/308 reports the feed's new permanent address;
- an SSRF guard at connect time: every address a connection would use is classified; a feed
  whose configured host is public may not be moved (by a redirect or a DNS answer) onto a
  loopback, private, link-local, CGNAT, multicast or reserved address unless allowed. A feed
  the operator configured on such an address is allowed. Connections are never reused, so a
  connection opened for one feed cannot carry another feed's redirect past the check.

The resolver and the connect hook are injectable (`Network`), so tests map made-up public
names onto 127.0.0.1 and record every connection attempt.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import hashlib
import ipaddress
import re
import socket
import ssl
import threading
import time
import typing
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from worker import PROJECT_URL, __version__
from worker.safetext import has_unsafe
from worker.errors import FeedGone, FetchError, RateLimited

DEFAULT_USER_AGENT = f"storywatch/{__version__} (+{PROJECT_URL})"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, text/html;q=0.3, */*;q=0.1"
)
REDIRECTS = {301, 302, 303, 307, 308}
PERMANENT = {301, 308}
MAX_RETRY_AFTER = dt.timedelta(days=7)  # honour a server's wait, but never let it mute a feed for good
_SLICE = 0.5  # seconds a blocking read waits before checking the deadline and abort flag again


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    connect_timeout: float = 10.0
    timeout: float = 30.0
    max_body_bytes: int = 15 * 1024 * 1024
    max_redirects: int = 5
    max_per_host: int = 2
    allow_private_redirects: bool = False
    user_agent: str = DEFAULT_USER_AGENT


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """What we know of a feed before asking for it."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    body_sha256: str | None = None
    was_public: bool | None = None  # the configured host's class at the last successful poll


@dataclass(frozen=True, slots=True)
class Fetched:
    """A successful answer: 2xx with a body, or "not modified" (304 or the same body)."""

    url: str
    final_url: str
    status: int
    not_modified: bool
    body: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    body_sha256: str | None = None
    moved_to: str | None = None  # the new address when every redirect hop was permanent
    max_age: dt.timedelta | None = None
    origin_public: bool | None = None
    elapsed_ms: int = 0


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


# ── per-fetch context, read by the network layer on the fetching thread ─────────────────────


@dataclass
class _Context:
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
def _fetch_context(ctx: _Context) -> Iterator[_Context]:
    _local.ctx = ctx
    try:
        yield ctx
    finally:
        _local.ctx = None


def _context() -> _Context:
    ctx = getattr(_local, "ctx", None)
    if ctx is None:  # pragma: no cover - the transport is only used through Fetcher.fetch
        raise RuntimeError("network use outside Fetcher.fetch")
    return typing.cast(_Context, ctx)


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
        return min(remaining, _SLICE, timeout if timeout is not None else _SLICE)

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


class _GuardedTransport(httpx.BaseTransport):
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


# ── bounded decoding ─────────────────────────────────────────────────────────────────────────


GZIP_MAGIC = b"\x1f\x8b"


class _Decoder:
    """Content-Encoding decoders whose output never exceeds the cap, whatever the input."""

    def __init__(self, encodings: str, url: str) -> None:
        self._url = url
        names = [e.strip().lower() for e in encodings.split(",") if e.strip() and e.strip().lower() != "identity"]
        self._stages = [self._stage(name) for name in reversed(names)]
        # A gzip file served as it is (feed.xml.gz, no Content-Encoding) is read as backfill
        # reads it: its first two bytes say so.
        self._sniffing, self._head = not self._stages, b""

    def _stage(self, name: str) -> typing.Any:
        if name in ("gzip", "x-gzip"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if name == "deflate":
            return _Deflate()
        raise FetchError(
            f"unsupported Content-Encoding {name!r}", url=self._url, kind="encoding",
        )

    def decode(self, data: bytes, budget: int) -> bytes:
        """Decode a chunk, producing at most budget + 1 bytes (one more means: over the cap)."""
        if self._sniffing:
            data, self._head = self._head + data, b""
            if len(data) < len(GZIP_MAGIC):
                self._head = data
                return b""
            self._sniffing = False
            if data.startswith(GZIP_MAGIC):
                self._stages = [self._stage("gzip")]
        for stage in self._stages:
            try:
                data = stage.decompress(data, budget + 1)
            except zlib.error as exc:
                raise FetchError(f"corrupt compressed body: {exc}", url=self._url, kind="encoding") from None
        return data

    def held(self) -> bytes:
        """What a body too short to sniff left behind (one byte)."""
        return self._head


class _Deflate:
    """'deflate' is zlib-wrapped per the RFC, but many servers send it raw; accept both."""

    def __init__(self) -> None:
        self._inner: typing.Any = None

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return typing.cast(bytes, self._inner.decompress(data, max_length))


# ── the fetcher ──────────────────────────────────────────────────────────────────────────────


class Fetcher:
    """Fetches feeds, at most `max_per_host` at once per configured host; safe to use from threads."""

    def __init__(self, policy: FetchPolicy, network: Network | None = None) -> None:
        self.policy = policy
        self.network = network or Network()
        self.abort = threading.Event()  # set to make every fetch in flight stop within 0.5 s
        self._client = httpx.Client(
            transport=_GuardedTransport(),
            follow_redirects=False,
            timeout=httpx.Timeout(policy.timeout, connect=policy.connect_timeout),
            headers={"User-Agent": policy.user_agent or DEFAULT_USER_AGENT, "Accept": ACCEPT},
        )
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._slots_lock = threading.Lock()
        self.last_attempts: list[tuple[str, int]] = []

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(self, request: FetchRequest) -> Fetched:
        """One conditional GET, redirects followed; raises FetchError (or a subclass).

        The deadline and `elapsed_ms` start once the host's slot is ours: the time spent queueing
        behind other feeds of the same host says nothing about this server's speed, and counting
        it made feeds that share a busy host time out though each answered quickly.
        """
        _require_web_url(request.url, request.url)
        with self._host_slot(request.url):
            started = time.monotonic()
            ctx = _Context(
                url=request.url,
                deadline=started + self.policy.timeout,
                abort=self.abort,
                network=self.network,
                allow_private=self.policy.allow_private_redirects,
                was_public=request.was_public,
            )
            with _fetch_context(ctx):
                try:
                    fetched = self._follow(request, ctx)
                finally:
                    self.last_attempts = ctx.attempts
            elapsed = int((time.monotonic() - started) * 1000)
        return dataclasses.replace(fetched, elapsed_ms=elapsed, origin_public=ctx.origin_public)

    @contextmanager
    def _host_slot(self, url: str) -> Iterator[None]:
        """One of the `max_per_host` slots of the feed's configured host, held for the whole fetch.

        The slot covers the configured host only: redirect hops to other hosts run inside it and
        take no slot of their own, since holding one host's slot while waiting for another's
        could deadlock two feeds that redirect to each other's host. Waiting stops within
        _SLICE seconds of an abort (shutdown).
        """
        host = urlsplit(url).hostname or ""
        with self._slots_lock:
            slot = self._slots.setdefault(host, threading.BoundedSemaphore(self.policy.max_per_host))
        while self.abort.is_set() or not slot.acquire(timeout=_SLICE):
            if self.abort.is_set():
                raise FetchError("stopped: the worker is shutting down", url=url, kind="timeout")
        try:
            yield
        finally:
            slot.release()

    def _follow(self, request: FetchRequest, ctx: _Context) -> Fetched:
        url, seen, permanent = request.url, {request.url}, True
        for _ in range(self.policy.max_redirects + 1):
            with self._send(url, request, ctx) as response:
                if response.status_code not in REDIRECTS or "location" not in response.headers:
                    return self._answer(request, url, response, permanent)
                target = urljoin(url, response.headers["location"].strip())
                permanent = permanent and response.status_code in PERMANENT
            _require_web_url(target, request.url, redirect=True)
            if target in seen:
                raise FetchError(f"redirect loop at {target}", url=request.url, kind="redirect")
            seen.add(target)
            url = target
        raise FetchError(
            f"more than {self.policy.max_redirects} redirects", url=request.url, kind="redirect"
        )

    @contextmanager
    def _send(self, url: str, request: FetchRequest, ctx: _Context) -> Iterator[httpx.Response]:
        headers = {"Accept-Encoding": "gzip, deflate"}
        if request.etag:
            headers["If-None-Match"] = request.etag
        if request.last_modified:
            headers["If-Modified-Since"] = request.last_modified
        try:
            response = self._client.send(self._client.build_request("GET", url, headers=headers), stream=True)
        except FetchError:
            raise
        except httpx.HTTPError as exc:
            raise _transport_error(exc, request.url, ctx) from None
        try:
            yield response
        except httpx.HTTPError as exc:
            raise _transport_error(exc, request.url, ctx) from None
        finally:
            response.close()

    def _answer(self, request: FetchRequest, url: str, response: httpx.Response, permanent: bool) -> Fetched:
        status = response.status_code
        moved_to = url if permanent and url != request.url else None
        if status == 304:
            return Fetched(request.url, url, status, True, etag=request.etag,
                           last_modified=request.last_modified, body_sha256=request.body_sha256,
                           moved_to=moved_to, max_age=_max_age(response.headers))
        if not 200 <= status < 300:
            raise _status_error(request.url, response)
        body = self._read_body(request.url, response)
        digest = hashlib.sha256(body).hexdigest()
        return Fetched(
            url=request.url,
            final_url=url,
            status=status,
            not_modified=digest == request.body_sha256,
            body=body,
            content_type=response.headers.get("content-type", ""),
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            body_sha256=digest,
            moved_to=moved_to,
            max_age=_max_age(response.headers),
        )

    def _read_body(self, url: str, response: httpx.Response) -> bytes:
        cap = self.policy.max_body_bytes
        decoder = _Decoder(response.headers.get("content-encoding", ""), url)
        chunks, size = [], 0
        for raw in response.iter_raw():
            chunk = decoder.decode(raw, cap - size)
            size += len(chunk)
            if size > cap:
                raise FetchError(
                    f"body larger than {cap / 1024 / 1024:g} MiB (after decompression)",
                    url=url, kind="too_large", status=response.status_code,
                )
            chunks.append(chunk)
        return b"".join(chunks) + decoder.held()


def _require_web_url(url: str, feed_url: str, redirect: bool = False) -> None:
    """An http(s) address that can be requested, else a FetchError (a feed's or a server's bad
    address fails that feed, never the run)."""
    kind = "redirect" if redirect else "scheme"
    try:
        scheme = urlsplit(url).scheme.lower()
        urlsplit(url).port  # raises on "http://[::1/x", a port past 65535
        httpx.URL(url)  # raises on a host no IDNA encoding can write
    except (ValueError, httpx.InvalidURL) as exc:
        raise FetchError(f"{'redirect to an' if redirect else 'an'} invalid address ({exc})", url=feed_url, kind=kind) from None
    if has_unsafe(url):
        raise FetchError(f"{'redirect to an' if redirect else 'an'} address with control or bidirectional characters",
                         url=feed_url, kind=kind)
    if scheme not in ("http", "https"):
        what = "redirect to" if redirect else "feed URL with"
        raise FetchError(f"{what} unsupported scheme {scheme or '(none)'!r}: only http and https",
                         url=feed_url, kind=kind)



def _transport_error(exc: httpx.HTTPError, url: str, ctx: _Context) -> FetchError:
    """httpx's exception as one of our kinds, with a message a user can read."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        if ctx.abort.is_set():
            return FetchError("stopped: the worker is shutting down", url=url, kind="timeout")
        phase = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "reading the response"
        return FetchError(f"timed out {phase}: {text}", url=url, kind="timeout")
    if isinstance(exc, httpx.ConnectError):
        if isinstance(exc.__context__, ssl.SSLError) or "SSL" in text or "CERTIFICATE" in text:
            return FetchError(f"TLS error: {text}", url=url, kind="tls")
        return FetchError(f"cannot connect: {text}", url=url, kind="connect")
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return FetchError(f"connection broken: {text}", url=url, kind="protocol")
    return FetchError(f"HTTP error: {text}", url=url, kind="protocol")


def _status_error(url: str, response: httpx.Response) -> FetchError:
    status = response.status_code
    reason = response.reason_phrase or ""
    if status == 410:
        return FeedGone(f"HTTP 410 {reason}: the publisher removed this feed".replace("  ", " "), url=url)
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"), dt.datetime.now(dt.timezone.utc))
        if retry_after is not None:
            return RateLimited(f"HTTP {status}: asked to wait until {retry_after:%Y-%m-%d %H:%M} UTC",
                               url=url, status=status, retry_after=retry_after)
    return FetchError(f"HTTP {status} {reason}".strip(), url=url, kind="http", status=status)


def parse_retry_after(value: str | None, now: dt.datetime) -> dt.datetime | None:
    """Retry-After as seconds or an HTTP date; None when absent or unreadable. Capped at 7 days."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = int(value) if len(value) <= 12 else MAX_FRESH_S  # capped below; 10**18 s would overflow a date
        when = now + min(dt.timedelta(seconds=seconds), MAX_RETRY_AFTER)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
    return min(max(when, now), now + MAX_RETRY_AFTER)


_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.I)


def _max_age(headers: httpx.Headers) -> dt.timedelta | None:
    """How long the server says the answer stays fresh (Cache-Control max-age)."""
    control = headers.get("cache-control", "")
    if "no-cache" in control.lower() or "no-store" in control.lower():
        return None
    match = _MAX_AGE.search(control)
    if not match:
        return None
    digits = match.group(1)  # a year at most (polling caps it lower): 10**20 s would overflow a date
    return dt.timedelta(seconds=min(int(digits) if len(digits) <= 12 else MAX_FRESH_S, MAX_FRESH_S))


MAX_FRESH_S = 365 * 86400
