"""A feed that moves keeps its items (issue 16, item 7).

A bare GUID ("item-17": not a URL) is keyed by the feed's id, never by the address the feed was
read from, so a permanent redirect (301) stores nothing again. A store that an older version
wrote, where such GUIDs were keyed as URLs made against the feed's address, is re-keyed by
polling as each entry is seen again (tests/data/moved-feed-0009.sql: a store copied from a feed
that moved; every form of GUID in tests/test_legacy_guids.py). Real HTTP server on 127.0.0.1,
real SQLite files.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from sqlite_utils import Database

from worker import store
from worker.config import load_settings
from tests.conftest import SEEDS, Cli, World
from tests.feedserver import Reply

NEWS = "/feeds/news.xml"  # the feed's first address
MOVED = "/v2/news.rss"  # where it moves: another folder, so a GUID resolved against it differs
FIXTURE = Path(__file__).parent / "data" / "moved-feed-0009.sql"
MIGRATION = "0010_bare_guids_by_feed"  # the first migration after the fixture's schema

# guid → (title, publication date). "{server}" stands for the feed server's address: that GUID is
# a URL (the item's permalink, in the feed's own folder), the others are bare or tag: URIs.
STORIES = {
    "item-0": ("Border crossing reopens after four years", "Mon, 06 Jan 2020 08:00:00 GMT"),
    "item-1": ("Delegation arrives in Pyongyang for talks", "Fri, 20 Nov 2026 08:00:00 GMT"),
    "item-2": ("Trade fair opens in Dandong with record exhibitors", "Fri, 20 Nov 2026 09:00:00 GMT"),
    "{server}/feeds/permalink-3": ("Rail link timetable published", "Fri, 20 Nov 2026 10:00:00 GMT"),
    "tag:news.example,2026:4": ("Ministers sign a cultural exchange plan", "Fri, 20 Nov 2026 11:00:00 GMT"),
    "item-5": ("Friendship Year closing ceremony date set", "Sat, 21 Nov 2026 08:00:00 GMT"),
}


def news(server: str, guids: Sequence[str], *, atom: bool = False, edited: str = "", links: str = "") -> bytes:
    """The feed, RSS 2.0 or Atom, with the GUIDs written as a publisher writes them: in RSS without
    isPermaLink="false", in Atom as <id> (both of which feedparser resolves against a base address).
    A URL GUID is its item's only link; the others link to news.example. `edited`: a GUID whose
    text gained a sentence; `links`: atom:link elements of an RSS channel (archives)."""
    entries = [_entry(guid.replace("{server}", server), *STORIES[guid], atom, guid == edited) for guid in guids]
    if atom:
        head = '<feed xmlns="http://www.w3.org/2005/Atom"><title>News</title><id>tag:news.example,2026:feed</id>'
        return (head + "".join(entries) + "</feed>").encode()
    namespace = ' xmlns:atom="http://www.w3.org/2005/Atom"' if links else ""
    head = (f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"{namespace}><channel><title>News</title>'
            f"<link>https://news.example/</link>{links}")
    return (head + "".join(entries) + "</channel></rss>").encode()


def _entry(guid: str, title: str, date: str, atom: bool, edited: bool) -> str:
    text = f"<p>{title}. The news desk reports the story in full, with what each side said.</p>"
    text += "<p>Officials at the crossing confirmed the report on Monday.</p>" if edited else ""
    link = guid if guid.startswith("http") else f"https://news.example/{title.split()[0].lower()}-{len(title)}"
    if atom:
        when = dt.datetime.strptime(date, "%a, %d %b %Y %H:%M:%S GMT").strftime("%Y-%m-%dT%H:%M:%SZ")
        return (f'<entry><id>{guid}</id><title>{title}</title><link href="{link}"/><updated>{when}</updated>'
                f'<content type="html"><![CDATA[{text}]]></content></entry>')
    link_xml = "" if guid == link else f"<link>{link}</link>"
    return (f"<item><guid>{guid}</guid><title>{title}</title>{link_xml}"
            f"<description><![CDATA[{text}]]></description><pubDate>{date}</pubDate></item>")


def identities(w: World) -> dict[int, str]:
    return {int(r["id"]): str(r["identity"]) for r in w.items()}


# ── polling ───────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("atom", [False, True], ids=["rss", "atom"])
def test_a_feed_that_moves_keeps_its_bare_guid_items(world: Callable[..., World], atom: bool) -> None:
    w = world(NEWS)
    server = w.server.url("")
    first = ["item-1", "item-2", "{server}/feeds/permalink-3", "tag:news.example,2026:4"]
    w.server.routes[NEWS] = Reply(body=news(server, first, atom=atom))
    assert w.poll().new_items == 4
    before = identities(w)

    w.server.routes[NEWS] = Reply(301, headers={"Location": MOVED})  # the same feed, at a new address
    w.server.routes[MOVED] = Reply(body=news(server, first, atom=atom))
    w.clock.advance(dt.timedelta(hours=1))
    moved = w.poll(force=True, no_cache=True)  # read whole (the same body would be "not modified")
    assert moved.new_items == 0 and moved.count("new") == 1
    assert w.feed(NEWS)["url"] == w.server.url(MOVED)
    assert len(w.items()) == 4 and identities(w) == before  # no copies under keys made against the new address

    w.server.routes[MOVED] = Reply(body=news(server, [*first, "item-5"], atom=atom))  # a new entry after the move
    w.clock.advance(dt.timedelta(hours=1))
    assert w.poll(force=True).new_items == 1
    assert w.poll(force=True, no_cache=True).new_items == 0
    assert len(w.items()) == 5 and sum(1 for r in w.items() if r["identity"] == "feed:1:guid:item-5") == 1
    assert w.server.paths()[-1] == MOVED
    assert set(identities(w).values()) == {  # keyed by the feed's id and the GUID as written
        "feed:1:guid:item-1", "feed:1:guid:item-2", f"feed:1:guid:{server}/feeds/permalink-3",
        "feed:1:guid:tag:news.example,2026:4", "feed:1:guid:item-5"}


def test_backfilling_a_moved_feed_and_its_archive_stores_nothing_again(world: Callable[..., World]) -> None:
    w = world(NEWS)
    server = w.server.url("")
    w.server.routes[NEWS] = Reply(body=news(server, ["item-1", "item-2"]))
    w.poll()
    w.server.routes[NEWS] = Reply(301, headers={"Location": MOVED})
    archive = f'<atom:link rel="prev-archive" href="{server}/archive/2026-11.xml"/>'
    w.server.routes[MOVED] = Reply(body=news(server, ["item-2", "item-5"], links=archive))
    w.server.routes["/archive/2026-11.xml"] = Reply(body=news(server, ["item-1", "item-2"]))
    w.clock.advance(dt.timedelta(hours=1))
    w.poll(force=True)
    assert len(w.items()) == 3

    # Backfill reads the feed and its archive page (another folder) through the same identity.
    summary = json.loads(Cli(w.config)("backfill", w.server.url(MOVED), "--json").stdout)
    assert summary["sources_read"] == 2 and summary["entries"] == 4
    assert summary["already_stored"] == 4 and summary["items_new"] == summary["exact_copies"] == 0
    assert len(w.items()) == 3


# ── a store the older version wrote ────────────────────────────────────────────────────────────────────────────


def store_before_0010(path: Path, server: str, *, by_hand: bool = False) -> None:
    """The store at tests/data/moved-feed-0009.sql: the schema up to 0009, then the rows an older
    version wrote, their feed server's address replaced by `server`. `by_hand`: the feed was added
    with `feeds add`, so the store keeps no trace of its first address (no config_url)."""
    old = Database(sqlite3.connect(path))
    store.MIGRATIONS.apply(old, stop_before=MIGRATION)
    old.conn.executescript(FIXTURE.read_text(encoding="utf-8").replace("{server}", server))
    if by_hand:
        old.execute("UPDATE feeds SET origin = 'cli', config_url = NULL")
    old.conn.commit()
    old.conn.close()


@pytest.mark.parametrize("by_hand", [False, True], ids=["config-feed", "feed-added-by-hand"])
def test_a_store_copied_from_a_feed_that_moved_is_rekeyed_as_its_entries_are_seen(
        world: Callable[..., World], by_hand: bool) -> None:
    w = world() if by_hand else world(NEWS)
    server = w.server.url("")
    store_before_0010(load_settings(w.config).storage.path, server, by_hand=by_hand)
    w.server.routes[NEWS] = Reply(301, headers={"Location": MOVED})
    w.server.routes[MOVED] = Reply(body=news(server, list(STORIES), edited="item-0"))

    # The store as the old version left it (see the fixture): items 1 and 2 under keys made
    # against /feeds/ (ids 2, 3) and their copies under keys made against /v2/ (ids 6, 7).
    # Opening it (migrations 0010 to the latest) changes no key: a key alone does not say whether
    # it was a bare GUID made into a URL or a URL the feed wrote.
    db = w.db
    items = {r["id"]: r for r in db.query("SELECT * FROM items ORDER BY id")}
    assert {i: r["identity"] for i, r in items.items()} == {
        2: f"feed:1:guid:{server}/feeds/item-1",
        3: f"feed:1:guid:{server}/feeds/item-2",
        4: f"feed:1:guid:{server}/feeds/permalink-3",
        5: "feed:1:guid:tag:news.example,2026:4",
        6: f"feed:1:guid:{server}/v2/item-1",
        7: f"feed:1:guid:{server}/v2/item-2",
        8: f"feed:1:guid:{server}/v2/item-5",
    }
    assert (items[6]["dup_of"], items[7]["dup_of"]) == (2, 3)
    assert {r["key"] for r in db.query("SELECT key FROM tombstones WHERE kind = 'identity'")} == {
        f"feed:1:guid:{server}/feeds/item-0"}
    # The addresses the old version read the feed at: its url and config_url, or for a feed
    # added by hand the folder its copies show (items 1 and 2 stored again under /v2/).
    bases = {r["base"] for r in db.query("SELECT base FROM legacy_guid_bases WHERE scope = 'feed:1'")}
    assert bases == ({f"{server}/v2/news.rss", f"{server}/feeds/"} if by_hand
                     else {f"{server}/v2/news.rss", f"{server}/feeds/news.xml"})

    # Then the feed at its new address, item-0 back with a new sentence (its content hash is not
    # tombstoned: only its identity refuses it): nothing is stored, revised or lost; each entry's
    # row takes its key as written, the original before its copy (which keeps its old key).
    for _ in range(2):
        report = w.poll(force=True, no_cache=True)
        assert report.count("new") == 1 and report.new_items == 0 and report.reports[0].copies == 0
    assert w.server.paths() == [MOVED, MOVED]
    after = {r["id"]: r for r in db.query("SELECT * FROM items ORDER BY id")}
    assert {i: (r["identity"], r["guid"], r["revision"]) for i, r in after.items()} == {
        2: ("feed:1:guid:item-1", "item-1", 1),
        3: ("feed:1:guid:item-2", "item-2", 1),
        4: (f"feed:1:guid:{server}/feeds/permalink-3", f"{server}/feeds/permalink-3", 1),
        5: ("feed:1:guid:tag:news.example,2026:4", "tag:news.example,2026:4", 1),
        6: (f"feed:1:guid:{server}/v2/item-1", f"{server}/v2/item-1", 1),
        7: (f"feed:1:guid:{server}/v2/item-2", f"{server}/v2/item-2", 1),
        8: ("feed:1:guid:item-5", "item-5", 1),
    }
    assert db["item_revisions"].count == 0
    assert db["tombstones"].count_where("key = 'feed:1:guid:item-0' AND kind = 'identity'") == 1
    assert db["feeds"].count == 1 and w.feed(MOVED)["url"] == w.server.url(MOVED)


def test_a_store_this_version_wrote_never_looks_for_older_keys(world: Callable[..., World]) -> None:
    # GUIDs as the feed writes them, a URL GUID, a tag: URI, and the seed documents (items of
    # another source): no key an older version made, so polling never looks for one.
    w = world(NEWS, extra=f'[seeds]\npath = "{SEEDS}"')
    w.server.routes[NEWS] = Reply(body=news(w.server.url(""), list(STORIES)))
    w.poll()
    assert {r["source"] for r in w.items()} == {"feed", "seeds"} and len(w.items()) == 5 + 6
    assert w.db.execute("SELECT value FROM meta WHERE key = 'legacy_guid_keys'").fetchone()[0] == 0
    assert w.db["legacy_guid_bases"].count == 0
