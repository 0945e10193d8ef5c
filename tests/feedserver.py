"""A real HTTP server on 127.0.0.1 for tests: scripted replies, including hostile ones.

Each route maps a path to a `Reply` (or a function of the request returning one). The reply is
written to the socket by hand, so tests can trickle bytes, send endless bodies, lie about the
length, cut the connection mid-body or send compression bombs. Every request is recorded.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: bytes | Callable[[], Iterable[bytes]] = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_length: int | None = None  # None: len(body) when body is bytes, else close-delimited

    def chunks(self) -> Iterable[bytes]:
        return [self.body] if isinstance(self.body, bytes) else self.body()


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]


Route = Reply | Callable[["Seen"], Reply]


class FeedServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                seen = Seen("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
                server.requests.append(seen)
                route = server.routes.get(self.path.split("?")[0], Reply(404, b"not found"))
                reply = route(seen) if callable(route) else route
                try:
                    self._write(reply)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass  # the client gave up: that is what several tests want

            def _write(self, reply: Reply) -> None:
                lines = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}"]
                length = reply.content_length
                if length is None and isinstance(reply.body, bytes):
                    length = len(reply.body)
                headers = {"Connection": "close", **reply.headers}
                if length is not None:
                    headers["Content-Length"] = str(length)
                lines += [f"{k}: {v}" for k, v in headers.items()]
                self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                self.wfile.flush()
                for chunk in reply.chunks():
                    self.wfile.write(chunk)
                    self.wfile.flush()
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def __enter__(self) -> FeedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


_REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 304: "Not Modified", 307: "Temporary Redirect",
            308: "Permanent Redirect", 404: "Not Found", 410: "Gone", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}


# ── bodies ────────────────────────────────────────────────────────────────────────────────────


def trickle(data: bytes, every: float) -> Callable[[], Iterator[bytes]]:
    """One byte every `every` seconds."""

    def chunks() -> Iterator[bytes]:
        for i in range(len(data)):
            time.sleep(every)
            yield data[i : i + 1]

    return chunks


def endless(chunk: bytes = b"<item>" * 1000) -> Callable[[], Iterator[bytes]]:
    def chunks() -> Iterator[bytes]:
        while True:
            yield chunk

    return chunks


def gzip_bomb(size: int) -> bytes:
    """`size` zero bytes, gzip-compressed (about 1,000:1)."""
    out = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    parts = [out.compress(block) for _ in range(size >> 20)]
    return b"".join(parts) + out.flush()


def deflate_bomb(size: int, raw: bool = False) -> bytes:
    out = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    return b"".join(out.compress(block) for _ in range(size >> 20)) + out.flush()


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ── feeds ─────────────────────────────────────────────────────────────────────────────────────


def rss(
    items: Iterable[tuple[str, str, str]], *, title: str = "Test feed", extra: str = "",
    date: str = "Mon, 16 Dec 2024 08:00:00 GMT",
) -> bytes:
    """An RSS 2.0 document; items are (guid, title, body HTML); empty guid: no <guid>."""
    parts = [f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>{title}</title>'
             f"<link>https://news.example/</link>{extra}"]
    for guid, item_title, body in items:
        guid_xml = f'<guid isPermaLink="false">{guid}</guid>' if guid else ""
        slug = (guid or item_title).replace(" ", "-").lower()
        parts.append(
            f"<item>{guid_xml}<title>{item_title}</title><link>https://news.example/{slug}</link>"
            f"<description><![CDATA[{body}]]></description>"
            f"<pubDate>{date}</pubDate></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")
