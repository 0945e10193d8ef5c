"""The daemon's in-memory dedupe window and tracker follow what other processes store.

`storywatch backfill` or `storywatch poll` may write to the store while the daemon runs. The
daemon's window was loaded from the store earlier; an item another process stores inside its
time range must still be found, or a near copy the daemon polls later is a second original
(two copies of one story in the digest). Each process here has its own connection to one real
SQLite file, as separate processes do.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from worker import pipeline, store, storylines
from worker.cycle import _ingest_together, poll_feeds
from worker.window import catch_up
from worker.config import load_settings
from worker.pipeline import Runtime
from tests.conftest import Cli, World
from tests.feedserver import Reply, rss

WORDS = ("Pyongyang and Beijing marked the anniversary of their ties with a ceremony at the "
         "friendship tower where delegations laid wreaths and officials spoke of cooperation ").split()


def article(seed: int = 0, tweak: range | tuple[int, ...] = ()) -> str:
    """400 words; `tweak` changes some of them (a few: a near copy; most: another story)."""
    words = [WORDS[(i + seed) % len(WORDS)] + (str(i // len(WORDS)) if i % 7 == 0 else "") for i in range(400)]
    for k in tweak:
        words[k] = f"changed{k}"
    return "<p>" + " ".join(words) + "</p>"


ORIGINAL = article()
NEAR_COPY = article(tweak=(5, 77, 150))
UNRELATED = article(seed=3, tweak=range(0, 300))
TODAY = "Mon, 23 Nov 2026 10:00:00 GMT"  # within the tracker's window of the test clock


@contextmanager
def other_process(w: World) -> Iterator[Runtime]:
    """A second worker on the same config and store file, with its own connection."""
    settings = load_settings(w.config)
    rt = pipeline.open_runtime(store.open_store(settings.storage.path), settings, clock=w.clock)
    try:
        yield rt
    finally:
        rt.close()


def _polled_by_another(w: World, path: str) -> int:
    with other_process(w) as other:
        poll_feeds(other, feed_url=w.server.url(path))
    return int(_item(w, path)["id"])  # type: ignore[call-overload]


def _backfilled(w: World, tmp_path: Path) -> int:
    history = tmp_path / "history.jsonl"
    history.write_text(json.dumps({"id": "x1", "title": "Friendship tower ceremony", "text": ORIGINAL,
                                   "published": "2024-12-16T07:00:00+00:00"}) + "\n")
    Cli(w.config)("backfill", str(history), "--workers", "1")
    [row] = w.db.query("SELECT id FROM items WHERE source = 'backfill'")
    return int(row["id"])


def _item(w: World, path: str) -> dict[str, object]:
    [row] = w.db.query("SELECT * FROM items WHERE feed_id = ?", [w.feed(path)["id"]])
    return row


def _world(world: Callable[..., World]) -> World:
    """The daemon has polled feed A (its window is loaded); feed C has the original, feed B a near copy."""
    w = world("/a", "/b", "/c")
    w.server.routes["/a"] = Reply(body=rss([("a-1", "Unrelated weather report", UNRELATED)]))
    w.server.routes["/b"] = Reply(body=rss([("b-1", "Ceremony at the friendship tower", NEAR_COPY)]))
    w.server.routes["/c"] = Reply(body=rss([("c-1", "Friendship tower ceremony", ORIGINAL)]))
    w.poll(feed_url=w.server.url("/a"))
    assert w.rt.window.anchor is not None
    return w


@pytest.mark.parametrize("writer", ["poll", "backfill"])
def test_a_near_copy_of_an_item_another_process_stored_joins_its_cluster(
    world: Callable[..., World], tmp_path: Path, writer: str
) -> None:
    w = _world(world)
    original = _polled_by_another(w, "/c") if writer == "poll" else _backfilled(w, tmp_path)
    w.poll(feed_url=w.server.url("/b"))  # the daemon, its window loaded before
    copy = _item(w, "/b")
    assert (copy["dup_of"], copy["dup_kind"]) == (original, "near")
    assert copy["cluster_id"] == original


def test_an_item_stored_by_another_process_during_a_cycle_is_found(world: Callable[..., World]) -> None:
    """Fetched before the other process stored the original, stored after: the write
    transaction itself catches up (the start of the cycle was too early)."""
    w = _world(world)
    [feed_b] = store.feeds_to_poll(w.db, w.clock(), force=True, url=w.server.url("/b"))
    prepared = pipeline.prepare(w.rt, feed_b)
    original = _polled_by_another(w, "/c")
    [report] = _ingest_together(w.rt, [prepared])
    assert (report.outcome, report.new_items, report.copies) == ("new", 0, 1)
    assert _item(w, "/b")["dup_of"] == original


def test_fingerprints_another_process_recomputed_reach_the_window(world: Callable[..., World]) -> None:
    """Another process learns a feed's boilerplate and fingerprints the feed's stored items
    again, without it: the daemon's window, which loaded the old fingerprints, reloads them."""
    w = world("/site", "/copy")
    # Furniture bigger than the story (lines of 300 characters at most): with it, no copy.
    frame = [" ".join(f"x{k}" for k in random.Random(n).choices(range(100), k=70)) for n in range(5)]

    def framed(n: int) -> tuple[str, str]:
        story = " ".join(random.Random(100 + n).choices([*WORDS, *(f"w{k}" for k in range(300))], k=120))
        return "".join(f"<p>{line}</p>" for line in [*frame[:2], story, *frame[2:]]), story

    stories = [framed(n) for n in range(4)]
    site = [(f"s{n}", f"Story {n}", html) for n, (html, _) in enumerate(stories)]
    w.server.routes["/site"] = Reply(body=rss(site[:2]))  # two items: too few to tell the frame
    w.poll(feed_url=w.server.url("/site"))
    with other_process(w) as other:  # two more: the frame is learned, the first two fingerprinted again
        w.server.routes["/site"] = Reply(body=rss(site))
        poll_feeds(other, feed_url=w.server.url("/site"))
    assert w.db.execute("SELECT value FROM meta WHERE key = 'reprints'").fetchone()[0] == 1
    words = stories[0][1].split()
    words[7] = "edited"
    w.server.routes["/copy"] = Reply(body=rss([("c1", "Story 0, reposted", f"<p>{' '.join(words)}</p>")]))
    w.poll(feed_url=w.server.url("/copy"))  # the story without the frame: a copy of what s0 is now
    s0 = w.db.execute("SELECT id FROM items WHERE guid = 's0'").fetchone()[0]
    assert (_item(w, "/copy")["dup_of"], _item(w, "/copy")["dup_kind"]) == (s0, "near")


def test_the_tracker_learns_originals_another_process_stored(world: Callable[..., World]) -> None:
    w = world("/a", "/c")
    w.server.routes["/a"] = Reply(body=rss([("a-1", "Unrelated weather report", UNRELATED)], date=TODAY))
    w.server.routes["/c"] = Reply(body=rss([("c-1", "Friendship tower ceremony", ORIGINAL)], date=TODAY))
    w.poll(feed_url=w.server.url("/a"))
    assert w.rt.tracking.current(w.db, w.clock()).n_docs == 1
    _polled_by_another(w, "/c")
    w.poll(force=True)  # the next cycle: nothing new for the daemon itself
    # The live tracker is the one the store makes (a restarted daemon's): it learnt item C.
    live = w.rt.tracking.current(w.db, w.clock())
    rebuilt = storylines.build_tracker(w.db, w.rt.settings.tracking, w.clock()).tracker
    assert live.n_docs == rebuilt.n_docs == 2



def test_after_another_process_recomputed_fingerprints_its_next_originals_still_reach_the_tracker(
        world: Callable[..., World]) -> None:
    """The window reloads its index when fingerprints were recomputed (or items pruned) elsewhere;
    what other processes store after that must still be taken in, so that the tracker knows it
    missed it (a saved tracker would otherwise be taken up without it)."""
    w = world("/a", "/c")
    w.server.routes["/a"] = Reply(body=rss([("a-1", "Unrelated weather report", UNRELATED)], date=TODAY))
    w.server.routes["/c"] = Reply(body=rss([("c-1", "Friendship tower ceremony", ORIGINAL)], date=TODAY))
    w.poll(feed_url=w.server.url("/a"))
    w.rt.tracking.current(w.db, w.clock())
    with other_process(w) as other, store.transaction(other.db):
        store.count_reprint(other.db)
    catch_up(w.rt.window, w.rt.tracking)  # the window reloads its index
    _polled_by_another(w, "/c")
    catch_up(w.rt.window, w.rt.tracking)
    assert w.rt.tracking.stale

def _story(n: int) -> str:
    """200 words drawn from 2,000: a story of its own."""
    return "<p>" + " ".join(f"w{k}" for k in random.Random(n).choices(range(2000), k=200)) + "</p>"


def test_with_no_outside_writes_catching_up_is_one_pragma_per_write_transaction(world: Callable[..., World]) -> None:
    """Cheap when nothing changed: no query reads items or counters, only PRAGMA data_version
    (no page read) once at the start of the cycle and once per write transaction."""
    paths = [f"/f{n}" for n in range(8)]
    w = world(*paths)
    for n, path in enumerate(paths):
        w.server.routes[path] = Reply(body=rss([(f"g{n}", f"Story {n}", _story(n))]))
    w.poll()
    w.clock.advance(dt.timedelta(hours=1))
    for n, path in enumerate(paths):
        w.server.routes[path] = Reply(body=rss([(f"h{n}", f"More {n}", _story(100 + n))]))
    statements: list[str] = []
    w.db.conn.set_trace_callback(statements.append)
    report = w.poll(force=True)
    w.db.conn.set_trace_callback(None)
    assert report.new_items == len(paths)
    pragmas = statements.count("PRAGMA data_version")
    assert 1 < pragmas <= statements.count("BEGIN IMMEDIATE") + 1
    assert not [s for s in statements if "WHERE id > ?" in s or "'reprints'" in s]


def test_an_item_another_process_pruned_leaves_the_window(world: Callable[..., World]) -> None:
    """Another process's cycle prunes an item the running worker's window holds: a near copy of
    it polled afterwards is an original (nothing left to copy), not a copy of a deleted row."""
    w = world("/x", "/b", "/z")
    w.config.write_text(w.config.read_text().replace('path = "sw.db"', 'path = "sw.db"\nretention_days = 7', 1))
    at = lambda ago: email.utils.format_datetime(w.clock() - ago, usegmt=True)  # noqa: E731
    w.server.routes["/x"] = Reply(body=rss([("x-1", "Friendship tower ceremony", ORIGINAL)], date=at(dt.timedelta(days=5))))
    w.poll(feed_url=w.server.url("/x"))
    w.clock.now += dt.timedelta(days=3)
    w.server.routes["/z"] = Reply(body=rss([("z-1", "Weather", UNRELATED)], date=at(dt.timedelta(hours=2))))
    settings = load_settings(w.config)
    other = pipeline.open_runtime(store.open_store(settings.storage.path), settings, clock=w.clock)
    poll_feeds(other, feed_url=w.server.url("/z"))  # its cycle prunes x-1: 8 days old
    other.close()
    assert w.db.execute("SELECT count(*) FROM items WHERE guid = 'x-1'").fetchone()[0] == 0
    w.server.routes["/b"] = Reply(body=rss([("b-1", "Ceremony at the friendship tower", NEAR_COPY)], date=at(dt.timedelta(hours=1))))
    (report,) = w.poll(feed_url=w.server.url("/b")).reports
    assert (report.outcome, report.error) == ("new", None)
    (row,) = w.db.query("SELECT id, dup_of, cluster_id FROM items WHERE guid = 'b-1'")
    assert row["dup_of"] is None and row["cluster_id"] == row["id"]
