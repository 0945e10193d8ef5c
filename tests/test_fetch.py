"""Fetching against a real HTTP server on 127.0.0.1: conditional GET, status policy, limits, SSRF."""

from __future__ import annotations

import datetime as dt
import email.utils
import resource
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.errors import FeedGone, FetchError, RateLimited
from worker.sources.fetch import DEFAULT_USER_AGENT, Fetcher, FetchPolicy, FetchRequest
from worker.sources.network import Network, is_public_address
from tests.feedserver import FeedServer, Reply, deflate_bomb, endless, free_port, gzip_bomb, gzipped, rss, trickle

FEED = rss([("a", "First", "<p>One</p>"), ("b", "Second", "<p>Two</p>")])


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(FetchPolicy(timeout=3, connect_timeout=2, max_body_bytes=1 << 20)) as f:
        yield f


def test_sends_user_agent_accept_and_compression_headers(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/feed"] = Reply(body=FEED, headers={"Content-Type": "application/rss+xml"})
    fetched = fetcher.fetch(FetchRequest(server.url("/feed")))
    assert fetched.status == 200 and fetched.body == FEED and not fetched.not_modified
    assert fetched.content_type == "application/rss+xml"
    sent = server.requests[0].headers
    assert sent["user-agent"] == DEFAULT_USER_AGENT and "storywatch/" in sent["user-agent"] and "+http" in sent["user-agent"]
    assert "application/rss+xml" in sent["accept"] and "application/atom+xml" in sent["accept"]
    assert "application/feed+json" in sent["accept"]
    assert sent["accept-encoding"] == "gzip, deflate"


def test_etag_gives_304_and_nothing_to_parse(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/feed"] = lambda seen: (
        Reply(304) if seen.headers.get("if-none-match") == '"v1"' else Reply(body=FEED, headers={"ETag": '"v1"'})
    )
    first = fetcher.fetch(FetchRequest(server.url("/feed")))
    assert first.etag == '"v1"'
    second = fetcher.fetch(FetchRequest(server.url("/feed"), etag=first.etag, body_sha256=first.body_sha256))
    assert second.status == 304 and second.not_modified and second.body == b""
    assert second.etag == '"v1"' and second.body_sha256 == first.body_sha256  # validators kept


def test_last_modified_gives_304(server: FeedServer, fetcher: Fetcher) -> None:
    stamp = "Mon, 16 Dec 2024 08:00:00 GMT"
    server.routes["/feed"] = lambda seen: (
        Reply(304) if seen.headers.get("if-modified-since") == stamp else Reply(body=FEED, headers={"Last-Modified": stamp})
    )
    first = fetcher.fetch(FetchRequest(server.url("/feed")))
    assert first.last_modified == stamp
    assert fetcher.fetch(FetchRequest(server.url("/feed"), last_modified=stamp)).not_modified


def test_the_same_body_again_is_not_modified(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/feed"] = Reply(body=FEED)  # a server without validators
    first = fetcher.fetch(FetchRequest(server.url("/feed")))
    again = fetcher.fetch(FetchRequest(server.url("/feed"), body_sha256=first.body_sha256))
    assert again.status == 200 and again.not_modified


def test_gzip_and_deflate_bodies_are_decoded(server: FeedServer, fetcher: Fetcher) -> None:
    import zlib

    server.routes["/gz"] = Reply(body=gzipped(FEED), headers={"Content-Encoding": "gzip"})
    server.routes["/zlib"] = Reply(body=zlib.compress(FEED), headers={"Content-Encoding": "deflate"})
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    server.routes["/raw"] = Reply(body=raw.compress(FEED) + raw.flush(), headers={"Content-Encoding": "deflate"})
    for path in ("/gz", "/zlib", "/raw"):
        assert fetcher.fetch(FetchRequest(server.url(path))).body == FEED, path


def test_a_gzip_file_served_without_content_encoding_is_decoded(server: FeedServer, fetcher: Fetcher) -> None:
    """feed.xml.gz served as a file (no Content-Encoding) is read as backfill reads it, a byte at
    a time too; a one-byte body is kept as it is."""
    server.routes["/feed.xml.gz"] = Reply(body=gzipped(FEED), headers={"Content-Type": "application/gzip"})
    packed = gzipped(FEED)
    server.routes["/slow.gz"] = Reply(body=trickle(packed, every=0), content_length=len(packed))
    server.routes["/one"] = Reply(body=b"x")
    assert fetcher.fetch(FetchRequest(server.url("/feed.xml.gz"))).body == FEED
    assert fetcher.fetch(FetchRequest(server.url("/slow.gz"))).body == FEED
    assert fetcher.fetch(FetchRequest(server.url("/one"))).body == b"x"


def test_permanent_redirect_reports_the_new_address(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/old"] = Reply(301, headers={"Location": "/new"})
    server.routes["/new"] = Reply(body=FEED)
    fetched = fetcher.fetch(FetchRequest(server.url("/old")))
    assert fetched.body == FEED and fetched.moved_to == server.url("/new") and fetched.final_url == server.url("/new")

    server.routes["/old308"] = Reply(308, headers={"Location": server.url("/old")})  # 308 then 301
    assert fetcher.fetch(FetchRequest(server.url("/old308"))).moved_to == server.url("/new")


@pytest.mark.parametrize("status", [302, 307])
def test_temporary_redirect_is_followed_but_the_address_kept(server: FeedServer, fetcher: Fetcher, status: int) -> None:
    server.routes["/feed"] = Reply(status, headers={"Location": "/elsewhere"})
    server.routes["/elsewhere"] = Reply(body=FEED)
    fetched = fetcher.fetch(FetchRequest(server.url("/feed")))
    assert fetched.body == FEED and fetched.moved_to is None


def test_a_chain_with_a_temporary_hop_is_not_a_move(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/a"] = Reply(301, headers={"Location": "/b"})
    server.routes["/b"] = Reply(302, headers={"Location": "/c"})
    server.routes["/c"] = Reply(body=FEED)
    assert fetcher.fetch(FetchRequest(server.url("/a"))).moved_to is None


def test_redirect_loop_is_an_error(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/a"] = Reply(302, headers={"Location": "/b"})
    server.routes["/b"] = Reply(302, headers={"Location": "/a"})
    with pytest.raises(FetchError, match="redirect loop") as err:
        fetcher.fetch(FetchRequest(server.url("/a")))
    assert err.value.kind == "redirect"


def test_more_than_five_redirects_is_an_error(server: FeedServer, fetcher: Fetcher) -> None:
    for n in range(20):
        server.routes[f"/r{n}"] = Reply(302, headers={"Location": f"/r{n + 1}"})
    server.routes["/r20"] = Reply(body=FEED)
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetcher.fetch(FetchRequest(server.url("/r0")))
    assert len(server.requests) == 6  # the feed's own URL and five hops, no more
    server.routes["/r15"] = Reply(body=FEED)
    assert fetcher.fetch(FetchRequest(server.url("/r10"))).body == FEED  # exactly five hops is fine


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://example.org/feed", "gopher://example.org/1"])
def test_redirect_to_another_scheme_is_refused(server: FeedServer, fetcher: Fetcher, target: str) -> None:
    server.routes["/feed"] = Reply(302, headers={"Location": target})
    with pytest.raises(FetchError, match="unsupported scheme"):
        fetcher.fetch(FetchRequest(server.url("/feed")))
    assert len(server.requests) == 1


def test_gone_is_its_own_error(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/feed"] = Reply(410)
    with pytest.raises(FeedGone, match="410"):
        fetcher.fetch(FetchRequest(server.url("/feed")))


def test_retry_after_in_seconds(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/feed"] = Reply(429, headers={"Retry-After": "120"})
    before = dt.datetime.now(dt.timezone.utc)
    with pytest.raises(RateLimited) as err:
        fetcher.fetch(FetchRequest(server.url("/feed")))
    assert err.value.status == 429
    assert dt.timedelta(seconds=118) <= err.value.retry_after - before <= dt.timedelta(seconds=125)


def test_retry_after_as_an_http_date(server: FeedServer, fetcher: Fetcher) -> None:
    later = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(hours=3)
    server.routes["/feed"] = Reply(503, headers={"Retry-After": email.utils.format_datetime(later, usegmt=True)})
    with pytest.raises(RateLimited) as err:
        fetcher.fetch(FetchRequest(server.url("/feed")))
    assert err.value.retry_after == later and err.value.status == 503


@pytest.mark.parametrize("wait", [str(365 * 86400), "999999999999999999", "9" * 5000])
def test_retry_after_far_in_the_future_is_capped(server: FeedServer, fetcher: Fetcher, wait: str) -> None:
    server.routes["/feed"] = Reply(429, headers={"Retry-After": wait})
    with pytest.raises(RateLimited) as err:
        fetcher.fetch(FetchRequest(server.url("/feed")))
    assert err.value.retry_after - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(days=7)


@pytest.mark.parametrize(("status", "headers"), [(503, {}), (500, {}), (404, {}), (403, {}), (429, {"Retry-After": "soon"})])
def test_other_statuses_are_http_errors(server: FeedServer, fetcher: Fetcher, status: int, headers: dict[str, str]) -> None:
    server.routes["/feed"] = Reply(status, b"nope", headers=headers)
    with pytest.raises(FetchError) as err:
        fetcher.fetch(FetchRequest(server.url("/feed")))
    assert not isinstance(err.value, RateLimited)
    assert err.value.kind == "http" and err.value.status == status and str(status) in str(err.value)


def test_a_trickling_body_hits_the_whole_response_timeout(server: FeedServer) -> None:
    server.routes["/slow"] = Reply(body=trickle(FEED, every=0.2), content_length=len(FEED))
    with Fetcher(FetchPolicy(timeout=1.5)) as fetcher:
        started = time.monotonic()
        with pytest.raises(FetchError, match="timed out") as err:
            fetcher.fetch(FetchRequest(server.url("/slow")))
    assert err.value.kind == "timeout"
    assert time.monotonic() - started < 3.0


def test_trickled_headers_hit_the_timeout_too(server: FeedServer) -> None:
    port = free_port()
    import socket

    listener = socket.create_server(("127.0.0.1", port))

    def serve() -> None:
        conn, _ = listener.accept()
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
            time.sleep(0.1)
            try:
                conn.send(bytes([byte]))
            except OSError:
                return
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    with Fetcher(FetchPolicy(timeout=1.0)) as fetcher:
        started = time.monotonic()
        with pytest.raises(FetchError, match="timed out"):
            fetcher.fetch(FetchRequest(f"http://127.0.0.1:{port}/feed"))
    assert time.monotonic() - started < 2.5
    listener.close()


def test_a_gzip_bomb_stops_at_the_cap(server: FeedServer) -> None:
    bomb = gzip_bomb(200 << 20)  # 200 MiB of zeros in ~200 KB
    server.routes["/bomb"] = Reply(body=bomb, headers={"Content-Encoding": "gzip"})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with Fetcher(FetchPolicy(max_body_bytes=2 << 20)) as fetcher:
        with pytest.raises(FetchError, match="larger than 2 MiB") as err:
            fetcher.fetch(FetchRequest(server.url("/bomb")))
    assert err.value.kind == "too_large"
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 64


@pytest.mark.parametrize("raw", [False, True])
def test_a_deflate_bomb_stops_at_the_cap(server: FeedServer, raw: bool) -> None:
    server.routes["/bomb"] = Reply(body=deflate_bomb(100 << 20, raw=raw), headers={"Content-Encoding": "deflate"})
    with Fetcher(FetchPolicy(max_body_bytes=1 << 20)) as fetcher:
        with pytest.raises(FetchError, match="larger than 1 MiB"):
            fetcher.fetch(FetchRequest(server.url("/bomb")))


def test_an_endless_body_stops_at_the_cap(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/endless"] = Reply(body=endless())
    with pytest.raises(FetchError, match="larger than 1 MiB"):
        fetcher.fetch(FetchRequest(server.url("/endless")))


def test_an_unsupported_encoding_is_a_clear_error(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/br"] = Reply(body=b"\x1b\x00\x00", headers={"Content-Encoding": "br"})
    with pytest.raises(FetchError, match="unsupported Content-Encoding 'br'") as err:
        fetcher.fetch(FetchRequest(server.url("/br")))
    assert err.value.kind == "encoding"


def test_a_connection_closed_mid_body_is_an_error(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/cut"] = Reply(body=FEED[:100], content_length=len(FEED))
    with pytest.raises(FetchError, match="connection broken") as err:
        fetcher.fetch(FetchRequest(server.url("/cut")))
    assert err.value.kind == "protocol"


def test_dns_and_connection_failures_have_their_kinds(fetcher: Fetcher) -> None:
    with pytest.raises(FetchError) as refused:
        fetcher.fetch(FetchRequest(f"http://127.0.0.1:{free_port()}/feed"))
    assert refused.value.kind == "connect"

    def no_such_host(host: str) -> list[str]:
        raise OSError(f"Name or service not known: {host}")

    with Fetcher(FetchPolicy(), Network(resolve=no_such_host)) as offline:
        with pytest.raises(FetchError, match="DNS lookup failed for nowhere.example") as dns:
            offline.fetch(FetchRequest("https://nowhere.example/feed"))
    assert dns.value.kind == "dns"


def test_only_http_and_https_feed_urls(fetcher: Fetcher) -> None:
    with pytest.raises(FetchError, match="unsupported scheme 'file'"):
        fetcher.fetch(FetchRequest("file:///etc/passwd"))


# ── SSRF: public names are resolved by an injected resolver and dialled on 127.0.0.1 ──────────

PUBLIC = {"news.example": "93.184.216.34", "cdn.example": "151.101.1.1"}


class LoopbackNetwork:
    """Pretends names resolve to public addresses; dials those on 127.0.0.1 and records every try."""

    def __init__(self, port: int, answers: dict[str, list[str]] | None = None) -> None:
        self.port = port
        self.answers = {name: [ip] for name, ip in PUBLIC.items()} | (answers or {})
        self.dialled: list[tuple[str, int]] = []

    def resolve(self, host: str) -> list[str]:
        return self.answers.get(host, [host])

    def on_connect(self, ip: str, port: int) -> tuple[str, int]:
        self.dialled.append((ip, port))
        assert ip in {a for answers in self.answers.values() for a in answers if is_public_address(a)}, (
            f"the fetcher tried to dial {ip}: only public test addresses may be dialled"
        )
        return "127.0.0.1", self.port

    def network(self) -> Network:
        return Network(resolve=self.resolve, on_connect=self.on_connect)


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{port}/internal",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/admin",
        "http://100.64.0.1/cgnat",
        "http://[::1]:{port}/v6",
        "http://[::ffff:127.0.0.1]/mapped",
        "http://metadata.internal/",
    ],
)
def test_a_public_feed_may_not_redirect_to_private_addresses(server: FeedServer, location: str) -> None:
    net = LoopbackNetwork(server.port, {"metadata.internal": ["169.254.169.254"]})
    server.routes["/feed"] = Reply(302, headers={"Location": location.format(port=server.port)})
    with Fetcher(FetchPolicy(), net.network()) as fetcher:
        with pytest.raises(FetchError, match="refused to connect") as err:
            fetcher.fetch(FetchRequest(f"http://news.example:{server.port}/feed"))
    assert err.value.kind == "blocked"
    assert net.dialled == [("93.184.216.34", server.port)]  # the feed itself, nothing after it


def test_a_public_feed_may_redirect_to_another_public_host(server: FeedServer) -> None:
    net = LoopbackNetwork(server.port)
    server.routes["/feed"] = Reply(301, headers={"Location": f"http://cdn.example:{server.port}/moved"})
    server.routes["/moved"] = Reply(body=FEED)
    with Fetcher(FetchPolicy(), net.network()) as fetcher:
        fetched = fetcher.fetch(FetchRequest(f"http://news.example:{server.port}/feed"))
    assert fetched.body == FEED and fetched.origin_public is True
    assert [ip for ip, _ in net.dialled] == ["93.184.216.34", "151.101.1.1"]


def test_a_dns_answer_that_moves_a_public_feed_to_loopback_is_refused(server: FeedServer) -> None:
    net = LoopbackNetwork(server.port, {"news.example": ["127.0.0.1"]})  # rebinding since the last poll
    with Fetcher(FetchPolicy(), net.network()) as fetcher:
        with pytest.raises(FetchError, match="refused to connect to news.example"):
            fetcher.fetch(FetchRequest(f"http://news.example:{server.port}/feed", was_public=True))
    assert net.dialled == []


def test_a_mixed_dns_answer_only_dials_the_public_addresses(server: FeedServer) -> None:
    net = LoopbackNetwork(server.port, {"news.example": ["10.0.0.7", "93.184.216.34"]})
    server.routes["/feed"] = Reply(body=FEED)
    with Fetcher(FetchPolicy(), net.network()) as fetcher:
        fetcher.fetch(FetchRequest(f"http://news.example:{server.port}/feed"))
    assert [ip for ip, _ in net.dialled] == ["93.184.216.34"]


def test_allow_private_redirects_lets_them_through(server: FeedServer) -> None:
    dialled: list[tuple[str, int]] = []
    net = Network(resolve=lambda host: PUBLIC.get(host, host) and [PUBLIC.get(host, host)],
                  on_connect=lambda ip, port: (dialled.append((ip, port)), ("127.0.0.1", server.port))[1])
    server.routes["/feed"] = Reply(302, headers={"Location": f"http://127.0.0.1:{server.port}/internal"})
    server.routes["/internal"] = Reply(body=FEED)
    with Fetcher(FetchPolicy(allow_private_redirects=True), net) as fetcher:
        assert fetcher.fetch(FetchRequest(f"http://news.example:{server.port}/feed")).body == FEED
    assert [ip for ip, _ in dialled] == ["93.184.216.34", "127.0.0.1"]


def test_a_feed_configured_on_loopback_may_redirect_within_it(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/feed"] = Reply(302, headers={"Location": "/other"})
    server.routes["/other"] = Reply(body=FEED)
    fetched = fetcher.fetch(FetchRequest(server.url("/feed")))
    assert fetched.body == FEED and fetched.origin_public is False


@pytest.mark.parametrize(
    ("ip", "public"),
    [("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True), ("127.0.0.1", False), ("10.0.0.1", False),
     ("172.16.5.4", False), ("192.168.1.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
     ("224.0.0.1", False), ("0.0.0.0", False), ("::1", False), ("fe80::1", False), ("fc00::1", False),
     ("::ffff:127.0.0.1", False), ("::ffff:93.184.216.34", True), ("240.0.0.1", False)],
)
def test_address_classes(ip: str, public: bool) -> None:
    assert is_public_address(ip) is public


# ── limits ────────────────────────────────────────────────────────────────────────────────────


def test_at_most_two_fetches_at_once_per_host(server: FeedServer) -> None:
    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def slow(seen: object) -> Reply:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.3)
        with lock:
            state["now"] -= 1
        return Reply(body=FEED)

    server.routes["/feed"] = slow
    with Fetcher(FetchPolicy(max_per_host=2)) as fetcher:
        threads = [threading.Thread(target=fetcher.fetch, args=(FetchRequest(server.url("/feed")),)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert state["max"] == 2


def test_abort_stops_a_fetch_in_flight(server: FeedServer) -> None:
    server.routes["/slow"] = Reply(body=trickle(FEED, every=0.2), content_length=len(FEED))
    with Fetcher(FetchPolicy(timeout=30)) as fetcher:
        threading.Timer(0.5, fetcher.abort.set).start()
        started = time.monotonic()
        with pytest.raises(FetchError, match="shutting down"):
            fetcher.fetch(FetchRequest(server.url("/slow")))
    assert time.monotonic() - started < 2.0


def test_abort_stops_a_fetch_waiting_for_its_host_slot(server: FeedServer) -> None:
    """One fetch holds the host's only slot on a server that does not answer; a second waits for
    the slot. Shutting down stops both (the deadline, 60 s, would not)."""
    release = threading.Event()
    server.routes["/hold"] = lambda seen: (release.wait(60), Reply(body=FEED))[1]
    errors: list[str] = []

    def fetch(fetcher: Fetcher) -> None:
        try:
            fetcher.fetch(FetchRequest(server.url("/hold")))
        except FetchError as exc:
            errors.append(str(exc))

    try:
        with Fetcher(FetchPolicy(timeout=60, max_per_host=1)) as fetcher:
            holder = threading.Thread(target=fetch, args=(fetcher,))
            holder.start()
            for _ in range(400):  # until the holder's request reached the server (at most 20 s)
                if server.requests:
                    break
                time.sleep(0.05)
            waiter = threading.Thread(target=fetch, args=(fetcher,))
            waiter.start()
            fetcher.abort.set()
            holder.join(30)
            waiter.join(30)
            assert not holder.is_alive() and not waiter.is_alive()
    finally:
        release.set()
    assert len(errors) == 2 and all("shutting down" in e for e in errors)
    assert len(server.requests) == 1  # the waiter never sent its request


def test_an_untrusted_certificate_is_a_tls_error(tmp_path: Path) -> None:
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with FeedServer() as server:
        server.routes["/feed"] = Reply(body=FEED)
        server._server.socket = context.wrap_socket(server._server.socket, server_side=True)
        with Fetcher(FetchPolicy(timeout=5)) as fetcher:
            with pytest.raises(FetchError, match="TLS error") as err:
                fetcher.fetch(FetchRequest(f"https://127.0.0.1:{server.port}/feed"))
    assert err.value.kind == "tls" and "CERTIFICATE_VERIFY_FAILED" in str(err.value)
