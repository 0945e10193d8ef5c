"""Fetch: one polite, bounded, conditional GET per feed (with network.py and decoding.py, the only
modules that import httpx).

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
import re
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit
import httpx

from worker import PROJECT_URL, __version__
from worker.safetext import has_unsafe
from worker.errors import FeedGone, FetchError, RateLimited
from worker.sources.decoding import BodyDecoder
from worker.sources.network import FetchContext, GuardedTransport, Network, READ_SLICE, fetch_context


DEFAULT_USER_AGENT = f"storywatch/{__version__} (+{PROJECT_URL})"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, text/html;q=0.3, */*;q=0.1"
)
REDIRECTS = {301, 302, 303, 307, 308}
PERMANENT = {301, 308}
MAX_RETRY_AFTER = dt.timedelta(days=7)  # honour a server's wait, but never let it mute a feed for good


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


class Fetcher:
    """Fetches feeds, at most `max_per_host` at once per configured host; safe to use from threads."""

    def __init__(self, policy: FetchPolicy, network: Network | None = None) -> None:
        self.policy = policy
        self.network = network or Network()
        self.abort = threading.Event()  # set to make every fetch in flight stop within 0.5 s
        self._client = httpx.Client(
            transport=GuardedTransport(),
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
            ctx = FetchContext(
                url=request.url,
                deadline=started + self.policy.timeout,
                abort=self.abort,
                network=self.network,
                allow_private=self.policy.allow_private_redirects,
                was_public=request.was_public,
            )
            with fetch_context(ctx):
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
        READ_SLICE seconds of an abort (shutdown).
        """
        host = urlsplit(url).hostname or ""
        with self._slots_lock:
            slot = self._slots.setdefault(host, threading.BoundedSemaphore(self.policy.max_per_host))
        while self.abort.is_set() or not slot.acquire(timeout=READ_SLICE):
            if self.abort.is_set():
                raise FetchError("stopped: the worker is shutting down", url=url, kind="timeout")
        try:
            yield
        finally:
            slot.release()

    def _follow(self, request: FetchRequest, ctx: FetchContext) -> Fetched:
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
    def _send(self, url: str, request: FetchRequest, ctx: FetchContext) -> Iterator[httpx.Response]:
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
        decoder = BodyDecoder(response.headers.get("content-encoding", ""), url)
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


def _transport_error(exc: httpx.HTTPError, url: str, ctx: FetchContext) -> FetchError:
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
