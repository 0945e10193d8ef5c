"""A feed that moves keeps its items (issue 16, item 7).

A bare GUID ("item-17": not a URL) is keyed by the feed's id, never by the address the feed was
read from, so a permanent redirect (301) stores nothing again. Migration 0010 re-keys a store
that an older version wrote, where such GUIDs were keyed as URLs made against the feed's address
(tests/data/moved-feed-0009.sql: a store copied from a feed that moved). Real HTTP server on
127.0.0.1, real SQLite files.
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
MIGRATION = "0010_bare_guids_by_feed"

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


# ── migration 0010 ────────────────────────────────────────────────────────────────────────────


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
def test_migration_rekeys_a_store_copied_from_a_feed_that_moved(world: Callable[..., World], by_hand: bool) -> None:
    w = world() if by_hand else world(NEWS)
    server = w.server.url("")
    store_before_0010(load_settings(w.config).storage.path, server, by_hand=by_hand)
    w.server.routes[NEWS] = Reply(301, headers={"Location": MOVED})
    w.server.routes[MOVED] = Reply(body=news(server, list(STORIES), edited="item-0"))

    # The store as the old version left it (see the fixture): items 1 and 2 under keys made
    # against /feeds/ (ids 2, 3) and their copies under keys made against /v2/ (ids 6, 7).
    db = w.db  # opening it applies 0010
    items = {r["id"]: r for r in db.query("SELECT * FROM items ORDER BY id")}
    assert {i: r["identity"] for i, r in items.items()} == {
        2: "feed:1:guid:item-1",  # the first row of a key takes it ...
        3: "feed:1:guid:item-2",
        4: f"feed:1:guid:{server}/feeds/permalink-3",  # a GUID that is the item's link keeps its key
        5: "feed:1:guid:tag:news.example,2026:4",
        6: f"feed:1:guid:{server}/v2/item-1",  # ... its copies keep theirs (no entry is keyed so now)
        7: f"feed:1:guid:{server}/v2/item-2",
        8: "feed:1:guid:item-5",  # keyed against the new address only
    }
    assert [items[i]["guid"] for i in (2, 8)] == ["item-1", "item-5"]
    assert (items[6]["dup_of"], items[7]["dup_of"]) == (2, 3)
    tombstones = {r["key"] for r in db.query("SELECT key FROM tombstones")}
    assert {"feed:1:guid:item-0", f"feed:1:guid:{server}/feeds/item-0"} <= tombstones

    # Then the feed at its new address, item-0 back with a new sentence (its content hash is not
    # tombstoned: only its identity refuses it): nothing is stored, revised or lost.
    report = w.poll(force=True)
    assert report.count("new") == 1 and w.server.paths() == [MOVED]
    after = {r["id"]: r for r in db.query("SELECT * FROM items ORDER BY id")}
    assert {i: (r["identity"], r["revision"]) for i, r in after.items()} == {
        i: (r["identity"], r["revision"]) for i, r in items.items()}
    assert db["item_revisions"].count == 0
    assert db["feeds"].count == 1 and w.feed(MOVED)["url"] == w.server.url(MOVED)


def test_migration_run_again_changes_nothing(world: Callable[..., World]) -> None:
    w = world(NEWS)
    store_before_0010(load_settings(w.config).storage.path, w.server.url(""))
    once = snapshot(w.db)  # migrated once on opening
    rerun(w.db)
    assert snapshot(w.db) == once


def test_migration_on_a_store_without_bare_guid_keys_changes_nothing(world: Callable[..., World]) -> None:
    # A store the current version wrote: GUIDs as the feed writes them, a URL GUID, a tag: URI,
    # and the seed documents (items of another source).
    w = world(NEWS, extra=f'[seeds]\npath = "{SEEDS}"')
    w.server.routes[NEWS] = Reply(body=news(w.server.url(""), list(STORIES)))
    w.poll()
    before = snapshot(w.db)
    assert {r["source"] for r in w.items()} == {"feed", "seeds"} and len(before[0]) == 5 + 6
    rerun(w.db)
    assert snapshot(w.db) == before


def snapshot(db: Database) -> list[list[tuple[object, ...]]]:
    return [[tuple(r) for r in db.execute(sql).fetchall()]
            for sql in ("SELECT * FROM items ORDER BY id", "SELECT * FROM tombstones ORDER BY key")]


def rerun(db: Database) -> None:
    """Migration 0010 once more, as if it had not been recorded as applied."""
    migration = next(m for m in store.MIGRATIONS._migrations if m.name == MIGRATION)
    with store.transaction(db):
        migration.fn(db)
