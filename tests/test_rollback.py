"""A feed whose writes are rolled back leaves nothing behind in memory either.

The dedupe window and the tracker are changed while a feed is stored; when its transaction
rolls back (a disk hiccup, a bug), what they learnt must go with it, or the next feed is judged
against items the store does not have: a real feed's article stored as a copy of itself.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from collections.abc import Callable, Mapping, Sequence

import pytest
from sqlite_utils import Database

from worker import pipeline, store, storylines
from worker.clock import to_iso
from worker.cycle import _ingest_together
from worker.tracking.decisions import Doc
from tests.conftest import World
from tests.feedserver import Reply, rss

WORDS = ("Pyongyang and Beijing marked the anniversary of their ties with a ceremony at the "
         "friendship tower where delegations laid wreaths and officials spoke of cooperation ").split()
ARTICLE = "<p>" + " ".join(WORDS[i % len(WORDS)] + (str(i // len(WORDS)) if i % 7 == 0 else "")
                           for i in range(400)) + "</p>"


def _fail_once_for(monkeypatch: pytest.MonkeyPatch, feed_id: int, key: str = "boilerplate") -> list[int]:
    """Writing a feed's state fails once for one feed when it writes `key`: a write that fails
    inside the feed's transaction (the boilerplate model is written after dedupe, the polling
    state after tracking). Alone (store.update_feed) or with other feeds' (store.update_feeds)."""
    real_one, real_many, failures = store.update_feed, store.update_feeds, []

    def fails(fid: int, state: Mapping[str, object]) -> bool:
        if fid == feed_id and key in state and not failures:
            failures.append(fid)
            return True
        return False

    def update_feed(db: Database, fid: int, **state: object) -> None:
        if fails(fid, state):
            raise OSError("disk I/O error (injected)")
        real_one(db, fid, **state)

    def update_feeds(db: Database, states: Sequence[tuple[int, Mapping[str, object]]]) -> None:
        if any([fails(fid, state) for fid, state in states]):
            raise OSError("disk I/O error (injected)")
        real_many(db, states)

    monkeypatch.setattr(store, "update_feed", update_feed)
    monkeypatch.setattr(store, "update_feeds", update_feeds)
    return failures


def _poll_a_then_b(w: World) -> dict[str, str]:
    """Feed A is stored (and rolled back) before feed B: the order in which the bug showed."""
    reports = [*w.poll(feed_url=w.server.url("/a")).reports, *w.poll(feed_url=w.server.url("/b")).reports]
    return {r.feed.url.rsplit("/", 1)[1]: r.outcome for r in reports}


def test_a_rolled_back_feed_leaves_no_phantom_in_the_dedupe_window(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world("/a", "/b")
    w.server.routes["/a"] = Reply(body=rss([("a-1", "Friendship tower ceremony", ARTICLE)]))
    w.server.routes["/b"] = Reply(body=rss([("b-1", "Friendship tower ceremony held", ARTICLE)]))
    failures = _fail_once_for(monkeypatch, int(w.feed("/a")["id"]))  # type: ignore[arg-type]

    first = _poll_a_then_b(w)
    assert failures and first == {"a": "error", "b": "new"}
    [b_item] = w.items()
    assert b_item["feed_id"] == w.feed("/b")["id"]
    assert b_item["dup_of"] is None and b_item["dup_kind"] is None  # an original, not a copy of itself

    w.clock.advance(dt.timedelta(hours=1))
    w.poll(force=True)  # feed A again: now its copy joins B's cluster
    a_item, b_again = sorted(w.items(), key=lambda r: r["feed_id"] != w.feed("/a")["id"])
    assert b_again["id"] == b_item["id"] and a_item["dup_of"] == b_item["id"]
    assert a_item["cluster_id"] == b_item["cluster_id"]


TOWER = """
[[storylines]]
id = "tower"
title = "The friendship tower"
keywords = ["friendship tower"]
"""


def test_a_rolled_back_feed_leaves_no_phantom_in_the_tracker(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world("/a", "/b", extra=TOWER)
    today = "Mon, 23 Nov 2026 10:00:00 GMT"  # within the tracker's window (a rebuild replays it)
    w.server.routes["/a"] = Reply(body=rss([("a-1", "Friendship tower ceremony", ARTICLE)], date=today))
    w.server.routes["/b"] = Reply(body=rss([("b-1", "Wreaths at the Friendship Tower",
                                             "<p>Officials laid wreaths at the Friendship Tower in Pyongyang.</p>")],
                                           date=today))
    _fail_once_for(monkeypatch, int(w.feed("/a")["id"]), "last_success_at")  # type: ignore[arg-type]
    assert _poll_a_then_b(w) == {"a": "error", "b": "new"}
    # Feed B's article took the rowid feed A's rolled-back item had: it is decided as itself.
    [b_item] = w.items()
    assert [r["item_id"] for r in w.db.query("SELECT item_id FROM storyline_items WHERE storyline_id = 'tower' "
                                             "AND decision = 'followup'")] == [b_item["id"]]
    # The live tracker is the one the store makes: same statistics, same profile, same scores.
    live = w.rt.tracking.current(w.db, w.clock())
    rebuilt = storylines.build_tracker(w.db, w.rt.settings.tracking, w.clock()).tracker
    probe = Doc("probe", "Ceremony at the tower", ARTICLE[3:200], w.clock().timestamp())
    assert live.n_docs == rebuilt.n_docs == 1
    assert list(live.decide(probe).raw) == list(rebuilt.decide(probe).raw)


# ── a group of feeds stored in one transaction that cannot commit ───────────────────────────


def _group(w: World) -> list[pipeline.Prepared]:
    """Feeds A, B and C fetched and parsed, to be stored together in one transaction."""
    for n, path in enumerate(("a", "b", "c")):
        story = " ".join(f"w{k}" for k in random.Random(n).choices(range(2000), k=200))  # three different stories
        w.server.routes[f"/{path}"] = Reply(body=rss([(f"{path}-1", f"Story {path}", f"<p>{story}</p>")]))
    return [pipeline.prepare(w.rt, store.feeds_to_poll(w.db, w.clock(), force=True, url=w.server.url(f"/{p}"))[0])
            for p in ("a", "b", "c")]


class CommitFailsOnce:
    """The store's connection, but its first COMMIT fails as on a full disk: SQLite either
    rolled the transaction back or left it open (it may do either)."""

    def __init__(self, conn: sqlite3.Connection, rolled_back: bool) -> None:
        self.conn, self.rolled_back, self.failed = conn, rolled_back, False

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == "COMMIT" and not self.failed:
            self.failed = True
            if self.rolled_back:
                self.conn.execute("ROLLBACK")
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)


def _nothing_stored_and_then_everything_once(w: World, reports: list[pipeline.FeedReport], error: str) -> None:
    """One report per feed, each failed with the error; nothing of the group in the store or in
    memory; the next poll stores each item exactly once."""
    assert [(r.feed.url.rsplit("/", 1)[1], r.outcome, r.new_items) for r in reports] == [
        ("a", "error", 0), ("b", "error", 0), ("c", "error", 0)]
    assert all(r.error and r.error.startswith("not stored: ") and error in r.error for r in reports)
    assert not w.db.conn.in_transaction
    assert w.items() == []
    assert [(r["last_success_at"], r["last_error"]) for r in w.db.query("SELECT * FROM feeds")] == [(None, None)] * 3
    assert len(w.rt.window.index) == 0 and w.rt.tracking.replayed is None  # rebuilt from the store
    again = w.poll()  # still due: a store failure is not the feeds' fault
    assert sorted((r.feed.url.rsplit("/", 1)[1], r.outcome, r.new_items) for r in again.reports) == [
        ("a", "new", 1), ("b", "new", 1), ("c", "new", 1)]
    assert sorted(r["guid"] for r in w.items()) == ["a-1", "b-1", "c-1"]
    assert all(r["dup_of"] is None for r in w.items())


@pytest.mark.parametrize("rolled_back", [False, True], ids=["left-open", "rolled-back"])
def test_a_group_that_cannot_commit_is_reported_once_and_stored_once_later(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch, rolled_back: bool
) -> None:
    w = world("/a", "/b", "/c")
    prepared = _group(w)
    failing = CommitFailsOnce(w.db.conn, rolled_back)
    monkeypatch.setattr(w.db, "conn", failing)
    reports = _ingest_together(w.rt, prepared)
    monkeypatch.setattr(w.db, "conn", failing.conn)
    assert failing.failed
    _nothing_stored_and_then_everything_once(w, reports, "database or disk is full")


def test_when_sqlite_rolls_the_group_back_midway_no_feed_writes_outside_it(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error while feed B is stored makes SQLite roll back the whole transaction: feed C
    must not then be stored in a transaction of its own, nor B's failure (reported, not kept)."""
    w = world("/a", "/b", "/c")
    prepared = _group(w)
    real, feed_b = store.update_feeds, prepared[1].feed.id

    def update_feeds(db: Database, states: Sequence[tuple[int, Mapping[str, object]]]) -> None:
        if any(fid == feed_b and "last_success_at" in state for fid, state in states):
            db.conn.execute("ROLLBACK")  # what SQLite does on some I/O errors
            raise sqlite3.OperationalError("disk I/O error")
        real(db, states)

    monkeypatch.setattr(store, "update_feeds", update_feeds)
    reports = _ingest_together(w.rt, prepared)
    monkeypatch.setattr(store, "update_feeds", real)
    _nothing_stored_and_then_everything_once(w, reports, "disk I/O error")


def test_a_full_disk_is_one_line_per_failure_and_loses_nothing(world: Callable[..., World]) -> None:
    """A store that cannot grow (SQLite's page limit: a full disk as SQLite sees it): the
    daemon's cycle logs each failure in one line, no traceback (a failure of the machine, not of
    the code: tracebacks buried the log, 89 in 15 s), and stores everything once room is made."""
    from loguru import logger

    from worker import schedule

    w = world("/a", "/b")
    for path in ("a", "b"):
        story = " ".join(f"w{k}" for k in random.Random(path).choices(range(5000), k=40000))
        w.server.routes[f"/{path}"] = Reply(body=rss([(f"{path}-1", f"Story {path}", f"<p>{story}</p>")]))
    pages = w.db.execute("PRAGMA page_count").fetchone()[0]
    w.db.execute(f"PRAGMA max_page_count = {pages + 1}")
    errors: list[tuple[str, object]] = []
    sink = logger.add(lambda m: errors.append((m.record["message"], m.record["exception"])), level="ERROR")
    try:
        schedule._poll_job(w.rt, 60.0)
    finally:
        logger.remove(sink)
    assert any("database or disk is full" in message for message, _ in errors), errors
    assert all(exception is None for _, exception in errors), errors
    assert w.items() == []
    w.db.execute("PRAGMA max_page_count = 1073741823")
    again = w.poll()
    assert sorted((r.feed.url.rsplit("/", 1)[1], r.outcome, r.new_items) for r in again.reports) == [
        ("a", "new", 1), ("b", "new", 1)]


# ── feeds with nothing new (304s) stored together ───────────────────────────────────────────


def _three_polled_then_not_modified(w: World) -> list[pipeline.Prepared]:
    """Feeds A, B and C polled once (stored), then fetched again: each answers 304."""
    _group(w)
    w.poll(force=True)
    w.clock.advance(dt.timedelta(hours=1))
    prepared = [pipeline.prepare(w.rt, store.feeds_to_poll(w.db, w.clock(), force=True, url=w.server.url(f"/{p}"))[0])
                for p in ("a", "b", "c")]
    assert all(p.quiet and p.fetched and p.fetched.not_modified for p in prepared)
    return prepared


def _fetch_log(w: World) -> list[tuple[str, str]]:
    return [(r["url"].rsplit("/", 1)[1], r["kind"]) for r in w.db.query(
        "SELECT f.url, x.kind FROM fetches x JOIN feeds f ON f.id = x.feed_id ORDER BY x.id")]


def test_feeds_with_nothing_new_are_stored_together_each_with_its_state(world: Callable[..., World]) -> None:
    w = world("/a", "/b", "/c")
    prepared = _three_polled_then_not_modified(w)
    reports = _ingest_together(w.rt, prepared)
    assert [(r.feed.url.rsplit("/", 1)[1], r.outcome) for r in reports] == [
        ("a", "not_modified"), ("b", "not_modified"), ("c", "not_modified")]
    assert _fetch_log(w)[3:] == [("a", "not_modified"), ("b", "not_modified"), ("c", "not_modified")]
    polled = {r["url"].rsplit("/", 1)[1]: r["last_polled_at"] for r in w.db.query("SELECT * FROM feeds")}
    assert set(polled.values()) == {to_iso(w.clock())}, polled


def test_when_feeds_stored_together_fail_each_is_stored_alone(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One statement for several feeds' states fails (its savepoint rolls back): each feed is then
    stored alone, so one feed's failure is that feed's only, and no fetch is logged twice."""
    w = world("/a", "/b", "/c")
    prepared = _three_polled_then_not_modified(w)
    failures = _fail_once_for(monkeypatch, int(prepared[1].feed.id), "last_success_at")
    reports = _ingest_together(w.rt, prepared)
    assert failures == [prepared[1].feed.id]
    assert [(r.feed.url.rsplit("/", 1)[1], r.outcome) for r in reports] == [
        ("a", "not_modified"), ("b", "not_modified"), ("c", "not_modified")]
    assert _fetch_log(w)[3:] == [("a", "not_modified"), ("b", "not_modified"), ("c", "not_modified")]


def test_when_sqlite_drops_the_transaction_under_quiet_feeds_the_group_fails_once_with_its_cause(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error while the 304s are written together makes SQLite roll the transaction back:
    no feed is then tried alone (each would fail again, one error line each), and the reports
    say why."""
    from loguru import logger

    w = world("/a", "/b", "/c")
    prepared = _three_polled_then_not_modified(w)

    def update_feeds(db: Database, states: Sequence[tuple[int, Mapping[str, object]]]) -> None:
        db.conn.execute("ROLLBACK")  # what SQLite does on some I/O errors
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "update_feeds", update_feeds)
    errors: list[str] = []
    sink = logger.add(lambda m: errors.append(m.record["message"]), level="ERROR")
    try:
        reports = _ingest_together(w.rt, prepared)
    finally:
        logger.remove(sink)
    assert [r.outcome for r in reports] == ["error"] * 3
    assert all(r.error and "disk I/O error" in r.error for r in reports), reports
    assert len(errors) == 1 and "disk I/O error" in errors[0], errors
    assert _fetch_log(w)[3:] == [] and not w.db.conn.in_transaction


def test_feeds_that_moved_are_stored_one_at_a_time(world: Callable[..., World], monkeypatch: pytest.MonkeyPatch) -> None:
    """Two feeds that moved (301) to one address, beside a feed with news: the first takes the
    address, the second keeps its own (another feed has that one), and nothing is rolled back
    (so the tracker is not rebuilt inside the write transaction)."""
    w = world("/a", "/b", "/c", extra=TOWER)
    _group(w)
    w.poll(force=True)
    w.clock.advance(dt.timedelta(hours=1))
    w.server.routes["/a"] = w.server.routes["/b"] = Reply(301, headers={"Location": w.server.url("/merged")})
    w.server.routes["/merged"] = Reply(body=rss([]))
    w.server.routes["/c"] = Reply(body=rss([("c-2", "Another story", "<p>" + " ".join(WORDS) + "</p>")]))
    prepared = [pipeline.prepare(w.rt, f) for f in store.feeds_to_poll(w.db, w.clock(), force=True)]
    assert [p.quiet for p in prepared] == [False, False, False]  # moved: not stored with the quiet ones
    w.rt.tracking.current(w.db, w.clock())
    builds: list[bool] = []
    real = storylines.build_tracker
    monkeypatch.setattr(storylines, "build_tracker", lambda db, *a, **k: builds.append(True) or real(db, *a, **k))
    reports = _ingest_together(w.rt, prepared)
    assert [(r.feed.url.rsplit("/", 1)[1], r.outcome) for r in reports] == [("a", "new"), ("b", "new"), ("c", "new")]
    assert [r["url"].rsplit("/", 1)[1] for r in w.db.query("SELECT url FROM feeds ORDER BY id")] == ["merged", "b", "c"]
    assert builds == []
