"""A store written before migration 0010 keeps its entries through the upgrade (issue 16, item 7).

That version keyed a GUID without a scheme ("posts/17", "#20") as the URL feedparser made of it
against the feed's address, and a GUID the feed writes as a URL as written: the keys alone do not
tell the two apart ({server}/feeds/12345 is either). So no migration guesses: the first time an
entry is seen again, polling finds the row the older version stored for it (its key made as then,
from the GUID as written and an address the feed was read at) and gives that row the entry's key.

The stores are real: tests/data/legacy-guids-*.sql hold the rows commit 2522bc4 wrote polling
tests/legacy_guids.py's feed (tests/data/make_legacy_guids.py made them). Each test applies the
migrations up to 0009 to a real SQLite file, loads the rows, opens the store with this version and
polls the feed on the loopback server (tests/feedserver.py): no entry may be stored again.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from sqlite_utils import Database

from worker import store
from worker.config import load_settings
from tests.conftest import Cli, World
from tests.feedserver import Reply
from tests.legacy_guids import FORMS, MOVED, NEWS, feed

DATA = Path(__file__).parent / "data"
LIVE = [name for name in FORMS if name != "pruned"]  # the forms with a row in the store
OLD_KEYS = {  # the key commit 2522bc4 gave each form, read at {server}/feeds/news.xml
    "short-link": "{server}/feeds/12345",
    "trailing-slash": "{server}/feeds/story-b",
    "http-https": "{server}/feeds/story-c",
    "relative-path": "{server}/feeds/posts/17",
    "root-relative": "{server}/posts/18",
    "query": "{server}/feeds/item?id=19",
    "fragment": "{server}/feeds/news.xml#20",
    "dot-dot": "{server}/21",
    "bare": "{server}/feeds/abc-123",
    "urn": "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
    "not-a-permalink": "posts/22",
    "pruned": "{server}/feeds/posts/16",
}


def older_store(w: World, fixture: str, *, first_0010: bool = False) -> dict[str, int]:
    """The store of `fixture` in `w`'s store file, as the older version left it (its schema by
    the migrations up to 0009); `first_0010`: and migration 0010 as first released had run (its
    re-keyed rows are the fixture's; it is recorded as applied). Returns each form's row id."""
    path = load_settings(w.config).storage.path
    old = Database(sqlite3.connect(path))
    store.MIGRATIONS.apply(old, stop_before="0010_bare_guids_by_feed")
    old.conn.executescript((DATA / fixture).read_text(encoding="utf-8").replace("{server}", w.server.url("")))
    if first_0010:
        old["_sqlite_migrations"].insert({"migration_set": store.MIGRATIONS.name, "name": "0010_bare_guids_by_feed",
                                          "applied_at": "2026-12-01 00:00:00+00:00"})
    old.conn.commit()
    titles = {str(r["title"]): int(r["id"]) for r in old.query("SELECT id, title FROM items ORDER BY id DESC")}
    old.conn.close()
    return {name: titles[FORMS[name][2]] for name in LIVE}  # the first row of a title: the original


def serve(w: World, names: Iterable[str], *, at: str = NEWS) -> None:
    """The feed with these entries at `at` (the pruned entry edited: only its identity refuses it)."""
    w.server.routes[at] = Reply(body=feed(w.server.url(""), names, edited=["pruned"]))


def move(w: World) -> None:
    w.server.routes[NEWS] = Reply(301, headers={"Location": MOVED})


def rows(w: World) -> dict[int, tuple[str, str]]:
    return {int(r["id"]): (str(r["identity"]), str(r["guid"])) for r in w.items()}


def key(w: World, name: str) -> str:
    """The key this version gives the form: the feed's id and the GUID as written."""
    return "feed:1:guid:" + FORMS[name][0].replace("{server}", w.server.url(""))


def poll_stores_nothing(w: World) -> None:
    """Two polls an hour apart, the feed read whole each time: nothing stored, nothing revised."""
    for _ in range(2):
        w.clock.advance(dt.timedelta(hours=1))
        report = w.poll(force=True, no_cache=True)
        assert report.count("new") == 1, report.summary()
        assert (report.new_items, sum(r.copies for r in report.reports), sum(r.revisions for r in report.reports)) \
            == (0, 0, 0), report.summary()


def assert_rekeyed(w: World, before: dict[int, tuple[str, str]], ids: dict[str, int], names: Iterable[str]) -> None:
    """The rows of `names` hold their keys as this version makes them (same row, same id); every
    other row is as it was; no row was added or lost."""
    after = rows(w)
    assert after.keys() == before.keys()
    expected = dict(before)
    for name in names:
        if name != "pruned":
            expected[ids[name]] = (key(w, name), FORMS[name][0].replace("{server}", w.server.url("")))
    assert after == expected


@pytest.fixture
def news(world: Callable[..., World]) -> World:
    return world(NEWS)


# ── a store the older version wrote, the feed where it was ──────────────────────────────────


def test_the_older_versions_keys_are_what_the_fixtures_hold(news: World) -> None:
    ids = older_store(news, "legacy-guids-0009.sql")
    server = news.server.url("")
    stored = rows(news)  # opening the store (migrations 0010 to the latest) changes no key
    assert {name: stored[ids[name]][0] for name in LIVE} == {
        name: "feed:1:guid:" + OLD_KEYS[name].replace("{server}", server) for name in LIVE}
    tombstones = {str(r["key"]) for r in news.db.query("SELECT key FROM tombstones WHERE kind = 'identity'")}
    assert tombstones == {f"feed:1:guid:{server}/feeds/posts/16"}


@pytest.mark.parametrize("name", list(FORMS))
def test_an_entry_the_older_version_stored_is_not_stored_again(news: World, name: str) -> None:
    ids = older_store(news, "legacy-guids-0009.sql")
    before = rows(news)
    serve(news, [name])
    poll_stores_nothing(news)
    assert_rekeyed(news, before, ids, [name])
    if name == "pruned":  # refused by its identity, now under its new key too
        assert news.db["tombstones"].count_where("key = ?", [key(news, name)]) == 1


@pytest.mark.parametrize("name", list(FORMS))
def test_an_entry_the_older_version_stored_is_not_stored_again_when_the_feed_moves(news: World, name: str) -> None:
    ids = older_store(news, "legacy-guids-0009.sql")
    before = rows(news)
    move(news)  # after the upgrade: the first poll reads it at the new address
    serve(news, [name], at=MOVED)
    poll_stores_nothing(news)
    assert news.feed(NEWS)["url"] == news.server.url(MOVED)
    assert news.server.paths()[-1] == MOVED
    assert_rekeyed(news, before, ids, [name])


@pytest.mark.parametrize("moved", [False, True], ids=["same-address", "moved"])
def test_the_whole_feed_again_stores_only_its_new_entry(news: World, moved: bool) -> None:
    ids = older_store(news, "legacy-guids-0009.sql")
    before = rows(news)
    if moved:
        move(news)
    at = MOVED if moved else NEWS
    serve(news, FORMS, at=at)
    poll_stores_nothing(news)
    assert_rekeyed(news, before, ids, FORMS)

    # An entry new to the store, with a GUID like the others': stored once, under its own key.
    body = feed(news.server.url(""), FORMS, edited=["pruned"]).replace(b"</channel>", (
        b"<item><title>Power line links the two border towns</title><guid>posts/23</guid>"
        b"<description>The grid operator switched on the new line.</description>"
        b"<pubDate>Mon, 23 Nov 2026 08:00:00 GMT</pubDate></item></channel>"))
    news.server.routes[at] = Reply(body=body)
    news.clock.advance(dt.timedelta(hours=1))
    assert news.poll(force=True).new_items == 1
    assert news.db["items"].count_where("identity = ?", ["feed:1:guid:posts/23"]) == 1
    poll_stores_nothing(news)


def test_backfilling_the_feed_stores_nothing_again(news: World) -> None:
    # backfill reads the feed through the same pipeline: its entries find their rows too.
    ids = older_store(news, "legacy-guids-0009.sql")
    before = rows(news)
    serve(news, FORMS)
    summary = json.loads(Cli(news.config)("backfill", news.server.url(NEWS), "--json").stdout)
    assert (summary["entries"], summary["already_stored"]) == (len(FORMS), len(FORMS))
    assert summary["items_new"] == summary["exact_copies"] == summary["near_duplicates"] == summary["revisions"] == 0
    assert_rekeyed(news, before, ids, FORMS)
    poll_stores_nothing(news)


def test_a_row_an_entry_keys_as_written_stays_that_entrys(news: World) -> None:
    # The feed now also writes {server}/feeds/posts/17 as the GUID of another entry: the row the
    # older version keyed so is that entry's as written (the older version made one item of the
    # two, and would have revised it too). posts/17 does not take it: it is stored, once, as the
    # entry of its own it is (a copy of the text that row held).
    ids = older_store(news, "legacy-guids-0009.sql")
    server = news.server.url("")
    body = feed(server, ["relative-path"]).replace(b"</channel>", (
        f"<item><title>Archive of the ministry's statements</title><guid>{server}/feeds/posts/17</guid>"
        "<description>Every statement the ministry made this year, by date.</description>"
        "<pubDate>Mon, 23 Nov 2026 08:00:00 GMT</pubDate></item></channel>").encode())
    news.server.routes[NEWS] = Reply(body=body)
    report = news.poll(force=True).reports[0]
    assert (report.new_items, report.copies, report.revisions) == (0, 1, 1)
    assert rows(news)[ids["relative-path"]][0] == f"feed:1:guid:{server}/feeds/posts/17"
    assert news.db["items"].count_where("identity = ?", ["feed:1:guid:posts/17"]) == 1
    poll_stores_nothing(news)


# ── a store the older version kept polling after the feed moved ──────────────────────────────


@pytest.mark.parametrize("name", list(FORMS))
def test_a_feed_that_moved_before_the_upgrade_stores_nothing_again(news: World, name: str) -> None:
    # The older version read the feed at /feeds/ and then at /v2/: the relative GUIDs whose URL
    # differs there were stored a second time, as copies (see the fixture). The original takes
    # the key; the copy keeps its old one, which no entry is given any more.
    ids = older_store(news, "legacy-guids-moved-0009.sql")
    before = rows(news)
    serve(news, [name], at=MOVED)
    poll_stores_nothing(news)
    assert news.server.paths() == [MOVED, MOVED]
    assert_rekeyed(news, before, ids, [name])


# ── a store that migration 0010 as first released re-keyed ───────────────────────────────────


@pytest.mark.parametrize("name", list(FORMS))
def test_a_store_the_first_0010_rekeyed_stores_nothing_again(news: World, name: str) -> None:
    # That 0010 took the URLs the feed writes into its own folder for bare GUIDs it had resolved
    # ({server}/feeds/12345 became 12345) and the fragment #20 for news.xml#20; it left the other
    # relative GUIDs alone. Each row gets the key this version makes all the same.
    ids = older_store(news, "legacy-guids-first-0010.sql", first_0010=True)
    before = rows(news)
    serve(news, [name])
    poll_stores_nothing(news)
    assert_rekeyed(news, before, ids, [name])


# ── a store this version made ───────────────────────────────────────────────────────────────


def test_a_store_without_older_keys_never_looks_for_them(news: World) -> None:
    # A new store: every form is stored under its key as written, once; an entry whose GUID is the
    # URL another one's resolves to ({server}/feeds/posts/17 beside posts/17) is an entry of its own.
    server = news.server.url("")
    serve(news, LIVE)
    assert news.poll().new_items == len(LIVE)
    assert {str(r["identity"]) for r in news.items()} == {key(news, name) for name in LIVE}
    assert news.db.execute("SELECT value FROM meta WHERE key = 'legacy_guid_keys'").fetchone()[0] == 0
    body = feed(server, LIVE).replace(b"</channel>", (
        f"<item><title>Archive page</title><guid>{server}/feeds/posts/17</guid>"
        "<description>A page of its own.</description><pubDate>Mon, 23 Nov 2026 08:00:00 GMT</pubDate></item>"
        "</channel>").encode())
    news.server.routes[NEWS] = Reply(body=body)
    news.clock.advance(dt.timedelta(hours=1))
    assert news.poll(force=True).new_items == 1
    assert news.db["items"].count_where("identity = ?", [f"feed:1:guid:{server}/feeds/posts/17"]) == 1
    assert news.db["items"].count_where("identity = ?", ["feed:1:guid:posts/17"]) == 1
