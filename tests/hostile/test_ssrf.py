"""SSRF through the whole worker: feeds on made-up public names (an injected resolver answers
public addresses, and a connect hook dials them on 127.0.0.1) that redirect, or whose DNS answer
moves, onto cloud metadata, private ranges or loopback. Each is refused before any connection is
attempted, recorded on its feed, and the good feed of the same cycle is read.

Proof that no packet goes anywhere but 127.0.0.1: a Python audit hook sees every
`socket.connect` of this process during the cycles, and every address it saw is 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from tests.conftest import Clock
from tests.feedserver import FeedServer, Reply, rss
from worker import pipeline, startup, store
from worker.cycle import poll_feeds
from worker.config import Settings, load_settings
from worker.sources.network import Network, is_public_address

_CONNECTS: list[Any] = []
_RECORDING: list[bool] = [False]


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _RECORDING[0]:
        _CONNECTS.append(args[1])


sys.addaudithook(_audit)  # hooks cannot be removed: this one records only while a test asks


@pytest.fixture
def connects() -> Iterator[list[Any]]:
    _CONNECTS.clear()
    _RECORDING[0] = True
    try:
        yield _CONNECTS
    finally:
        _RECORDING[0] = False


class PublicNames:
    """Names answer public addresses (or what a test sets); dials go to 127.0.0.1 and are recorded."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answers = {"news.example": ["93.184.216.34"], "rebind.example": ["93.184.216.35"],
                        "metadata.internal": ["169.254.169.254"], "intranet.example": ["10.20.30.40"]}
        self.dialled: list[tuple[str, int]] = []

    def resolve(self, host: str) -> list[str]:
        return list(self.answers.get(host, [host]))

    def on_connect(self, ip: str, port: int) -> tuple[str, int]:
        self.dialled.append((ip, port))
        return "127.0.0.1", self.port


REDIRECTS = {
    "/to-metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "/to-metadata-name": "http://metadata.internal/computeMetadata/v1/",
    "/to-private": "http://10.0.0.5/admin",
    "/to-private-name": "http://intranet.example/admin",
    "/to-loopback": "http://127.0.0.1:{port}/internal",
    "/to-loopback-v6": "http://[::1]:{port}/internal",
    "/to-mapped": "http://[::ffff:127.0.0.1]:{port}/internal",
    "/to-cgnat": "http://100.64.1.1/",
    "/to-zero": "http://0.0.0.0:{port}/internal",
}


def test_no_public_feed_reaches_a_private_address(tmp_path: Path, connects: list[Any]) -> None:
    with FeedServer() as server:
        for path, target in REDIRECTS.items():
            server.routes[path] = Reply(302, headers={"Location": target.format(port=server.port)})
        server.routes["/internal"] = Reply(body=rss([("secret", "Internal admin page", "<p>private</p>")]))
        server.routes["/good"] = Reply(body=rss([("g1", "Public story", "<p>Public text.</p>")]))
        server.routes["/rebind"] = Reply(body=rss([("r1", "Rebind story", "<p>First answer was public.</p>")]))
        urls = [f"http://news.example:{server.port}{p}" for p in [*REDIRECTS, "/good"]]
        urls.append(f"http://rebind.example:{server.port}/rebind")
        feeds = "".join(f'[[feeds]]\nurl = "{u}"\n' for u in urls)
        config = tmp_path / "storywatch.toml"
        config.write_text(textwrap.dedent(f'[storage]\npath = "sw.db"\n[fetch]\ntimeout = 3.0\nparse_processes = 1\n{feeds}'))
        settings = load_settings(config)
        db = store.open_store(settings.storage.path)
        clock = Clock()
        startup.initialize(db, settings, clock())
        names = PublicNames(server.port)
        rt = pipeline.open_runtime(db, settings, network=Network(names.resolve, names.on_connect), clock=clock)
        try:
            first = poll_feeds(rt)
            names.answers["rebind.example"] = ["127.0.0.1"]  # DNS rebinding since the last poll
            clock.advance(dt.timedelta(hours=2))
            second = poll_feeds(rt, force=True)
        finally:
            rt.close()

        rows = {r["url"]: r for r in db.query("SELECT * FROM feeds")}
        for path in REDIRECTS:
            error = rows[f"http://news.example:{server.port}{path}"]["last_error"] or ""
            assert error.startswith("refused to connect to ") and "a public feed may not be moved onto" in error, (path, error)
        rebind = rows[f"http://rebind.example:{server.port}/rebind"]
        assert "refused to connect to rebind.example (127.0.0.1)" in (rebind["last_error"] or "")
        assert rows[f"http://news.example:{server.port}/good"]["last_error"] is None
        titles = sorted(r["title"] for r in db.query("SELECT title FROM items"))
        assert titles == ["Public story", "Rebind story"]  # the rebind story from the first, public, answer
        assert "/internal" not in server.paths()
        assert {ip for ip, _ in names.dialled} == {"93.184.216.34", "93.184.216.35"}
        assert all(is_public_address(ip) for ip, _ in names.dialled)
        assert first.count("error") == len(REDIRECTS) and second.count("error") == len(REDIRECTS) + 1
    assert connects, "the audit hook should have seen the connections to the feed server"
    assert {address[0] for address in connects} == {"127.0.0.1"}, connects


def public_names_world(tmp_path: Path, port: int, feed: str) -> tuple[Settings, Database, PublicNames, Network]:
    """A store configured with one feed, and the made-up names network that dials the feed server."""
    config = tmp_path / "storywatch.toml"
    config.write_text(f'[storage]\npath = "sw.db"\n[fetch]\ntimeout = 3.0\nparse_processes = 1\n[[feeds]]\nurl = "{feed}"\n')
    settings = load_settings(config)
    db = store.open_store(settings.storage.path)
    startup.initialize(db, settings, Clock()())
    names = PublicNames(port)
    return settings, db, names, Network(names.resolve, names.on_connect)


def test_a_backfilled_feeds_archive_links_never_reach_a_private_address(tmp_path: Path, connects: list[Any]) -> None:
    """`backfill URL` of a feed on a public name, never polled: the archive and next pages it
    links to (loopback, cloud metadata, a private name) are refused as its redirects would be;
    its own items and a public archive page are stored. Same through `backfill --all`."""
    from worker import backfill

    with FeedServer() as server:
        port = server.port
        links = (f'<atom:link xmlns:atom="http://www.w3.org/2005/Atom" rel="prev-archive" href="http://127.0.0.1:{port}/secret"/>'
                 f'<atom:link xmlns:atom="http://www.w3.org/2005/Atom" rel="next" href="http://169.254.169.254/latest/meta-data/"/>')
        server.routes["/feed"] = Reply(body=rss([("p1", "Public story", "<p>Public text.</p>")], extra=links))
        server.routes["/other"] = Reply(body=rss([("o1", "Other story", "<p>x</p>")], extra=(
            f'<atom:link xmlns:atom="http://www.w3.org/2005/Atom" rel="prev-archive" href="http://intranet.example:{port}/secret"/>'
            f'<atom:link xmlns:atom="http://www.w3.org/2005/Atom" rel="next" href="http://news.example:{port}/page2"/>')))
        server.routes["/page2"] = Reply(body=rss([("o2", "Archived public story", "<p>y</p>")]))
        server.routes["/secret"] = Reply(body=rss([("s1", "Internal secret", "<p>private</p>")]))
        settings, db, names, network = public_names_world(tmp_path, port, f"http://news.example:{port}/other")
        sources, _ = backfill.expand([f"http://news.example:{port}/feed"], db)
        one = backfill.backfill(db, settings, sources, backfill.Options(workers=1), network=network)
        everything, _ = backfill.expand([], db, all_feeds=True)
        every = backfill.backfill(db, settings, everything, backfill.Options(workers=1), network=network)

        titles = sorted(r["title"] for r in db.query("SELECT title FROM items WHERE source = 'backfill'"))
        assert titles == ["Archived public story", "Other story", "Public story"]
        assert "/secret" not in server.paths() and "/latest/meta-data/" not in server.paths()
        assert all(is_public_address(ip) for ip, _ in names.dialled), names.dialled
        failed = {**one.sources_failed, **every.sources_failed}
        assert set(failed) == {f"http://127.0.0.1:{port}/secret", "http://169.254.169.254/latest/meta-data/",
                               f"http://intranet.example:{port}/secret"}, failed
        assert all("a public feed may not be moved onto" in error for error in failed.values()), failed
    assert {address[0] for address in connects} == {"127.0.0.1"}, connects


@pytest.mark.parametrize("ip", ["64:ff9b::7f00:1", "2002:7f00:1::", "::7f00:1", "::ffff:0:7f00:1", "fec0::1",
                                "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::"])
def test_ipv4_written_as_ipv6_is_judged_as_the_ipv4_address(ip: str) -> None:
    """NAT64, 6to4, IPv4-compatible and IPv4-translated addresses reach the IPv4 address they
    hold (here loopback or metadata); site-local is private."""
    assert not is_public_address(ip)


def test_a_feed_on_a_private_address_may_not_be_moved_onto_metadata(tmp_path: Path, connects: list[Any]) -> None:
    """A name whose first answer is private (an intranet feed, or a hostile domain answering so)
    may be moved within private addresses, never onto a link-local one (cloud metadata)."""
    with FeedServer() as server:
        server.routes["/feed"] = Reply(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        server.routes["/latest/meta-data/"] = Reply(body=rss([("m", "Metadata", "<p>secret</p>")]))
        settings, db, names, network = public_names_world(tmp_path, server.port, f"http://intranet.example:{server.port}/feed")
        rt = pipeline.open_runtime(db, settings, network=network, clock=Clock())
        try:
            report = poll_feeds(rt)
        finally:
            rt.close()
        [feed] = report.reports
        assert feed.outcome == "error" and "may not be moved onto a link-local address" in (feed.error or "")
        assert "/latest/meta-data/" not in server.paths()
        assert [ip for ip, _ in names.dialled] == ["10.20.30.40"]
