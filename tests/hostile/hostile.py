"""Hostile feeds, served by the test feed server on 127.0.0.1: one table, shared by the hostile
suite (tests/hostile/test_feeds.py) and its benchmark (bench/bench_hostile.py).

Each case is a route and what the worker must do with it: record a clear error on the feed
(`error`: a fragment of feeds.last_error), or store what the feed holds and pass `check`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.feedserver import Reply, deflate_bomb, endless, gzip_bomb, rss, trickle

SECRET = "XXE-SECRET-7f3a9c-the-local-file-must-never-leak"
MIB = 1024 * 1024
GOOD_ITEMS = [(f"good-{n}", f"Good story {n}", f"<p>Ordinary text of good story {n}.</p>") for n in range(3)]

Check = Callable[[sqlite3.Connection, int], None]  # (store, feed id) -> assert


@dataclass(frozen=True)
class Case:
    name: str
    reply: Callable[[Path, int], Reply]  # (a folder for local files, the server's port) -> reply
    error: str | None = None  # a fragment of the feed's last_error; None: the feed is read
    check: Check | None = None


def titles(db: sqlite3.Connection, feed_id: int) -> list[str]:
    return [r[0] for r in db.execute("SELECT title FROM items WHERE feed_id = ? ORDER BY id", [feed_id])]


def _xml(items: str, *, decl: str = '<?xml version="1.0" encoding="utf-8"?>', doctype: str = "") -> str:
    return (f'{decl}{doctype}<rss version="2.0"><channel><title>Hostile</title><link>https://hostile.example/</link>'
            f"{items}</channel></rss>")


def _item(guid: str, title: str, body: str = "<p>text</p>", date: str = "Mon, 16 Dec 2024 08:00:00 GMT",
          link: str | None = None) -> str:
    return (f"<item><guid>{guid}</guid><title>{title}</title><link>{link or f'https://hostile.example/{guid}'}</link>"
            f"<description><![CDATA[{body}]]></description><pubDate>{date}</pubDate></item>")


def _bytes(data: bytes, content_type: str = "application/rss+xml", **headers: str) -> Callable[[Path, int], Reply]:
    return lambda folder, port: Reply(body=data, headers={"Content-Type": content_type, **headers})


@functools.lru_cache(maxsize=None)
def _bomb(kind: str) -> bytes:
    return {"gzip": lambda: gzip_bomb(256 * MIB), "deflate": lambda: deflate_bomb(256 * MIB),
            "raw": lambda: deflate_bomb(256 * MIB, raw=True)}[kind]()


def _hundred_mib() -> Iterator[bytes]:
    block = b"<item><title>x</title></item>" * (MIB // 29)
    for _ in range(100 * MIB // len(block) + 1):
        yield block


def _xxe(folder: Path, port: int) -> Reply:
    secret = folder / "secret.txt"
    secret.write_text(SECRET)
    doctype = (f'<!DOCTYPE rss [<!ENTITY file SYSTEM "file://{secret}">'
               f'<!ENTITY remote SYSTEM "http://127.0.0.1:{port}/xxe-fetch">]>')
    return Reply(body=_xml(_item("xxe-1", "Entity &file; here") + _item("xxe-2", "Remote &remote; here"),
                           doctype=doctype).encode())


def _laughs(folder: Path, port: int) -> Reply:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    return Reply(body=_xml(_item("laughs-1", "Laughs &lol9;"), doctype=f"<!DOCTYPE rss [{entities}]>").encode())


def _redirect(target: str) -> Callable[[Path, int], Reply]:
    return lambda folder, port: Reply(302, headers={"Location": target.format(port=port)})


def _check_xxe(db: sqlite3.Connection, feed_id: int) -> None:
    assert len(titles(db, feed_id)) == 2  # read, entities left unexpanded (checked store-wide too)


def _check_laughs(db: sqlite3.Connection, feed_id: int) -> None:
    (title,) = titles(db, feed_id)
    assert title.count("lol") < 20, "the entities must not be expanded"


def _check_title(expected: str) -> Check:
    def check(db: sqlite3.Connection, feed_id: int) -> None:
        assert titles(db, feed_id) == [expected]
    return check


def _check_count(n: int) -> Check:
    def check(db: sqlite3.Connection, feed_id: int) -> None:
        assert tuple(db.execute("SELECT count(*), count(DISTINCT identity) FROM items WHERE feed_id = ?",
                                [feed_id]).fetchone()) == (n, n)
    return check


def _check_long_title(db: sqlite3.Connection, feed_id: int) -> None:
    (title,) = titles(db, feed_id)
    assert title.startswith("AAAA") and len(title) <= 1000 and title.endswith("…")


def _check_dates(db: sqlite3.Connection, feed_id: int) -> None:
    rows = dict(db.execute("SELECT title, published_at || ' ' || date_flag FROM items WHERE feed_id = ?", [feed_id]).fetchall())
    assert rows["Old"].startswith("1970-01-01") and rows["Old"].endswith(" ")  # kept as given
    assert not rows["Future"].startswith("2100") and rows["Future"].endswith(" future")  # clamped to now, flagged


def _check_duplicate_guids(db: sqlite3.Connection, feed_id: int) -> None:
    assert sorted(titles(db, feed_id)) == ["First story", "Second story"]
    assert db.execute("SELECT identity_policy FROM feeds WHERE id = ?", [feed_id]).fetchone()[0] == "url"


def _check_control(db: sqlite3.Connection, feed_id: int) -> None:
    for title in titles(db, feed_id):
        assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in title), repr(title)
    assert sorted(t.split()[0] for t in titles(db, feed_id)) == ["Bell", "Entity"]


def _check_unsafe(db: sqlite3.Connection, feed_id: int) -> None:
    assert len(titles(db, feed_id)) == 2  # stored as published; the digest must not carry the danger


def _check_no_character(db: sqlite3.Connection, feed_id: int) -> None:
    """Every entry kept: a reference or escape to no character reads as U+FFFD, the rest intact."""
    assert sorted(titles(db, feed_id)) == ["Fine story", *(f"Story \ufffd {n}" for n in range(4))]


# JSON allows escaping lone surrogates; they are written here byte for byte, as a feed would
_JSON_SURROGATES = (
    b'{"version": "https://jsonfeed.org/version/1.1", "title": "J \\ud800", "items": ['
    + b",".join(b'{"id": "j%d", "title": "Story \\udc00 %d", "content_html": "<p>x \\ud800</p>", '
                b'"authors": [{"name": "A \\udfff"}], "tags": ["t\\ud800"]}' % (n, n) for n in range(4))
    + b', {"id": "j-fine", "title": "Fine story", "content_text": "fine", "url": "http://[oops/x"}]}'
)

# the digest lists the newest first: dated an hour ago, these are among its first 30 items
_EARLY = email.utils.format_datetime(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1), usegmt=True)
UNSAFE = _xml(
    _item("unsafe-1", "Unsafe &lt;script&gt;alert('title')&lt;/script&gt;content story",
          body="<p>Read this <a href=\"javascript:alert('link')\">now</a>.</p><script>alert('body')</script>"
               "<img src=\"https://track.example/pixel.gif?u=1\" width=\"1\" height=\"1\">"
               "<p onclick=\"alert('handler')\">More.</p>",
          date=_EARLY, link="javascript:alert('item-link')")
    + _item("unsafe-2", "Second unsafe story", body="<iframe src=\"https://evil.example/\"></iframe><p>Text</p>"
            "<img src=\"https://track.example/p2.gif\">", date=_EARLY)
)
UNSAFE_MARKERS = ("<script", "javascript:", "alert(", "track.example", "evil.example", "onclick", "<iframe", "<img")

CASES: tuple[Case, ...] = (
    Case("trickle", lambda f, p: Reply(body=trickle(rss(GOOD_ITEMS), every=1.0), content_length=len(rss(GOOD_ITEMS))),
         error="timed out reading the response"),
    Case("endless", lambda f, p: Reply(body=endless()), error="body larger than 15 MiB"),
    Case("100mib", lambda f, p: Reply(body=_hundred_mib, content_length=100 * MIB), error="body larger than 15 MiB"),
    Case("gzip-bomb", lambda f, p: Reply(body=_bomb("gzip"), headers={"Content-Encoding": "gzip"}),
         error="body larger than 15 MiB (after decompression)"),
    Case("deflate-bomb", lambda f, p: Reply(body=_bomb("deflate"), headers={"Content-Encoding": "deflate"}),
         error="body larger than 15 MiB (after decompression)"),
    Case("raw-deflate-bomb", lambda f, p: Reply(body=_bomb("raw"), headers={"Content-Encoding": "deflate"}),
         error="body larger than 15 MiB (after decompression)"),
    Case("brotli", lambda f, p: Reply(body=b"\x1b\xff\xff" * 1000, headers={"Content-Encoding": "br"}),
         error="unsupported Content-Encoding 'br'"),
    Case("redirect-loop", _redirect("/redirect-loop-b"), error="redirect loop"),
    Case("20-redirects", _redirect("/hop/1"), error="more than 5 redirects"),
    Case("redirect-file", _redirect("file:///etc/passwd"), error="redirect to unsupported scheme 'file'"),
    Case("redirect-ftp", _redirect("ftp://127.0.0.1:{port}/feed"), error="redirect to unsupported scheme 'ftp'"),
    Case("redirect-gopher", _redirect("gopher://127.0.0.1:{port}/1"), error="redirect to unsupported scheme 'gopher'"),
    Case("xxe", _xxe, check=_check_xxe),
    Case("billion-laughs", _laughs, check=_check_laughs),
    Case("invalid-utf8", _bytes(_xml(_item("u1", "Caf\udce9 \udcff\udcfe broken")).encode("utf-8", "surrogateescape")),
         check=lambda db, fid: titles(db, fid)[0].startswith("Caf")),
    Case("wrong-charset-in-xml", _bytes(_xml(_item("c1", "Café à Pyongyang")).encode("latin-1")),
         check=_check_title("Café à Pyongyang")),
    Case("wrong-charset-in-header", _bytes(_xml(_item("c2", "Café à Pyongyang")).encode(),
                                           "application/rss+xml; charset=iso-8859-1"),
         check=_check_title("Café à Pyongyang")),
    Case("utf16-bom", _bytes(b"\xff\xfe" + _xml(_item("c3", "Café à Pyongyang"),
                                                 decl='<?xml version="1.0" encoding="utf-16"?>').encode("utf-16-le")),
         check=_check_title("Café à Pyongyang")),
    Case("zero-bytes", _bytes(b""), error="empty body: the server sent no feed"),
    Case("html-page", _bytes(b"<!doctype html><html><head><title>Home</title><link rel=alternate "
                             b"type=application/rss+xml href=/real-feed.xml></head><body>Welcome</body></html>",
                             "text/html; charset=utf-8"),
         error="not a feed: the address returned an HTML page; it advertises: http://127.0.0.1:"),
    Case("json-garbage", _bytes(b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": 1,,]',
                                "application/feed+json"), error="not a feed: invalid JSON"),
    Case("char-refs-to-no-character",
         _bytes(_xml("".join(_item(f"ref-{n}", f"Story {ref} {n}") for n, ref in
                             enumerate(["&#xD800;", "&#57343;", "&#x110000;", "&#99999999999;"]))
                     + _item("ref-fine", "Fine story")).encode()),
         check=_check_no_character),
    Case("char-refs-to-no-character-utf16",
         _bytes(b"\xff\xfe" + _xml("".join(_item(f"ref-{n}", f"Story {ref} {n}") for n, ref in
                                           enumerate(["&#xD800;", "&#57343;", "&#x110000;", "&#99999999999;"]))
                                   + _item("ref-fine", "Fine story"),
                                   decl='<?xml version="1.0" encoding="utf-16"?>').encode("utf-16-le")),
         check=_check_no_character),
    Case("json-lone-surrogates", _bytes(_JSON_SURROGATES, "application/feed+json"), check=_check_no_character),
    Case("json-nested-deep", _bytes(b'{"version": "https://jsonfeed.org/version/1.1", "items": '
                                    + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/feed+json"),
         error="not a feed: invalid JSON (nested deeper than"),
    Case("10000-entries", _bytes(_xml("".join(_item(f"many-{n}", f"Entry number {n}", f"<p>Body {n}</p>")
                                              for n in range(10_000))).encode()), check=_check_count(10_000)),
    Case("1mib-title", _bytes(_xml(_item("long-1", "A" * MIB)).encode()), check=_check_long_title),
    Case("dates-1970-2100", _bytes(_xml(_item("d1", "Old", date="Thu, 01 Jan 1970 00:00:00 GMT")
                                        + _item("d2", "Future", date="Fri, 01 Jan 2100 00:00:00 GMT")).encode()),
         check=_check_dates),
    Case("duplicate-guids", _bytes(_xml(_item("same", "First story", "<p>One text</p>", link="https://hostile.example/a")
                                        + _item("same", "Second story", "<p>Another text</p>",
                                                link="https://hostile.example/b")).encode()),
         check=_check_duplicate_guids),
    Case("control-chars", _bytes(_xml(_item("k1", "Bell\x07 and\x1b[31m escape\x00")
                                      + _item("k2", "Entity &#x1b;[2J and &#x85; next")).encode()),
         check=_check_control),
    Case("unsafe-content", _bytes(UNSAFE.encode()), check=_check_unsafe),
    Case("closed-mid-body", lambda f, p: Reply(body=rss(GOOD_ITEMS)[:200], content_length=len(rss(GOOD_ITEMS))),
         error="connection broken"),
)


def routes(folder: Path, port: int) -> dict[str, Reply]:
    """Every case's route, the helper routes (redirect hops) and a good feed."""
    table = {f"/{case.name}": case.reply(folder, port) for case in CASES}
    table["/redirect-loop-b"] = Reply(302, headers={"Location": "/redirect-loop"})
    for n in range(1, 21):
        table[f"/hop/{n}"] = Reply(302, headers={"Location": f"/hop/{n + 1}"})
    table["/good"] = Reply(body=rss(GOOD_ITEMS), headers={"Content-Type": "application/rss+xml"})
    return table
