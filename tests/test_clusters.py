"""One copy per story in any arrival order: clusters join when the item that links them arrives,
and the item that represents a cluster is chosen by a rule, not by which feed answered first."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

import pytest

from pathlib import Path

from worker import parsing, pipeline, startup, store
from worker.clock import utc_now
from worker.config import DEFAULT_CLUTTER, StorylineConfig, load_settings
from worker.ingest import dedupe
from worker.models import Item
from worker.sources.parse import Entry
from tests.conftest import Cli, World
from tests.feedserver import Reply, rss

ORIGINAL = (
    "Chinese Vice-Premier Liu Guozhong arrived in Pyongyang on Friday at the head of a party and "
    "government delegation for the celebrations of the 75th founding anniversary of North Korea. "
    "He was greeted at the airport by senior officials of the ruling Workers' Party, state media said. "
    "The visit is the second by a senior Chinese official in six weeks as the North reopens its border. "
    "Analysts said Beijing wanted to show that its ties with Pyongyang remained close despite the rising "
    "attention paid to North Korea's relations with Moscow and the planned summit in Vladivostok. "
    "Liu is expected to attend a military parade and meet leader Kim Jong-un before returning home on "
    "Monday, according to the Chinese foreign ministry, which gave no further details of his programme."
)
CLUTTER = dedupe.Clutter.compile(DEFAULT_CLUTTER)


def rewritten(text: str, start: float, end: float, marker: str) -> str:
    """The text with the words between two fractions of its length replaced: another outlet's edit."""
    words = text.split()
    first, last = int(len(words) * start), int(len(words) * end)
    return " ".join(words[:first] + [f"{marker}{n}" for n in range(first, last)] + words[last:])


COPY_A = rewritten(ORIGINAL, 0.05, 0.27, "alpha")  # the two copies are edited in different places:
COPY_B = rewritten(ORIGINAL, 0.73, 0.95, "beta")  # each is a copy of the original, not of the other
FEEDS = {
    "/o": rss([("o1", "Liu Guozhong in Pyongyang", f"<p>{ORIGINAL}</p>")], date="Mon, 16 Dec 2024 08:00:00 GMT"),
    "/a": rss([("a1", "Report: Liu in Pyongyang", f"<p>{COPY_A}</p>")], date="Mon, 16 Dec 2024 10:00:00 GMT"),
    "/b": rss([("b1", "China's Liu arrives in Pyongyang", f"<p>{COPY_B}</p>")], date="Mon, 16 Dec 2024 12:00:00 GMT"),
}


def similarity(a: str, b: str) -> float:
    words = [dedupe.words_of(dedupe.match_text(t, CLUTTER)) for t in (a, b)]
    return dedupe.jaccard(dedupe.shingles(words[0]), dedupe.shingles(words[1]))


def test_the_copies_differ_more_from_each_other_than_from_the_original() -> None:
    """The case the joins are for (checked so the tests below test it)."""
    threshold = 0.5
    assert similarity(ORIGINAL, COPY_A) >= threshold and similarity(ORIGINAL, COPY_B) >= threshold
    assert similarity(COPY_A, COPY_B) < threshold


def polled(world: Callable[..., World], order: tuple[str, ...]) -> World:
    w = world(*FEEDS)
    for path, body in FEEDS.items():
        w.server.routes[path] = Reply(body=body)
    for path in order:
        w.poll(feed_url=w.server.url(path))
    return w


def by_guid(w: World) -> dict[str, tuple[int, int, int | None]]:
    return {r["guid"]: (r["id"], r["cluster_id"], r["dup_of"]) for r in w.db.query("SELECT * FROM items")}


@pytest.mark.parametrize("order", list(itertools.permutations(FEEDS)), ids="-".join)
def test_every_arrival_order_gives_one_cluster_represented_by_the_original(
    world: Callable[..., World], order: tuple[str, ...]
) -> None:
    items = by_guid(polled(world, order))
    original, _, _ = items["o1"]
    assert {cluster for _, cluster, _ in items.values()} == {original}  # one story, named by its representative
    assert items["o1"][2] is None and items["a1"][2] is not None and items["b1"][2] is not None


def test_a_join_hands_the_storyline_links_and_marks_to_the_new_representative(world: Callable[..., World]) -> None:
    w = polled(world, ("/a", "/b"))  # two clusters: neither copy is a copy of the other
    items = by_guid(w)
    a, b = items["a1"][0], items["b1"][0]
    assert items["a1"][1] != items["b1"][1]
    day = dt.datetime(2024, 12, 16, 13, tzinfo=dt.timezone.utc)
    with store.transaction(w.db):
        store.save_storyline(w.db, StorylineConfig(id="visits", title="Visits", keywords=("Pyongyang",)), day, origin="cli")
        for item_id, decided in ((a, day), (b, day + dt.timedelta(hours=1))):
            w.db.execute("INSERT INTO storyline_items (storyline_id, item_id, decision, score, threshold, decided_at) "
                         "VALUES ('visits', ?, 'followup', 0.5, 0.3, ?)", [item_id, decided.isoformat()])
        w.db.execute("INSERT INTO marks (storyline_id, item_id, followup, marked_at) VALUES ('visits', ?, 1, ?)",
                     [b, day.isoformat()])
    w.poll(feed_url=w.server.url("/o"))
    original = by_guid(w)["o1"][0]
    links = list(w.db.query("SELECT item_id, decided_at FROM storyline_items"))
    assert links == [{"item_id": original, "decided_at": day.isoformat()}]  # one link: the earlier decided
    assert [m["item_id"] for m in w.db.query("SELECT item_id FROM marks")] == [original]
    copies = {r["id"]: (r["dup_of"], r["dup_kind"]) for r in w.db.query("SELECT * FROM items WHERE id IN (?, ?)", [a, b])}
    assert copies == {a: (original, "near"), b: (original, "near")}


def test_a_story_is_news_once_when_its_representative_changes(world: Callable[..., World]) -> None:
    w = polled(world, ("/a",))  # a copy first: the story is news the day it is seen
    seen = w.clock()
    w.clock.advance(dt.timedelta(days=1))
    w.poll(feed_url=w.server.url("/o"))  # the original the next day: it represents the story now
    day = dt.timedelta(days=1)
    first = store.digest_stories(w.db, seen - day / 2, seen + day / 2, include_backfill=False)
    second = store.digest_stories(w.db, seen + day / 2, seen + day * 1.5, include_backfill=False)
    assert [s.id for s in first] == [by_guid(w)["o1"][0]] and second == []


def test_an_article_listed_under_several_links_keeps_its_first_item(world: Callable[..., World]) -> None:
    w = world("/o")
    w.server.routes["/o"] = Reply(body=rss([("o1", "Liu Guozhong in Pyongyang", f"<p>{ORIGINAL}</p>"),
                                            ("o2", "Liu Guozhong in Pyongyang", f"<p>{ORIGINAL}</p>")]))
    w.poll()
    items = by_guid(w)
    assert items["o2"][1:] == (items["o1"][0], items["o1"][0]) and items["o1"][2] is None


# ── what the attacks on the first version found ──────────────────────────────────────────────


def batch_of(w: World, *posts: tuple[str, str, str, str]) -> list[Item]:
    """Items of several feeds as one batch (as a backfill brings them): (feed path, guid, text, date)."""
    items: list[Item] = []
    for path, guid, text, when in posts:
        feed = store.feeds_to_poll(w.db, w.clock(), url=w.server.url(path))[0]
        entry = Entry(guid, f"https://news.example/{guid}", "Liu in Pyongyang", f"<p>{text}</p>", "",
                      published=dt.datetime.fromisoformat(when))
        items += parsing.normalize_batch(feed, [entry], policy="guid", publisher=path, now=w.clock(),
                                          clutter=DEFAULT_CLUTTER)
    return items


def tracked(w: World, items: list[Item]) -> list[str]:
    """Store one batch through the one ingest path; the guids of the stories tracked as new."""
    seen: list[str] = []

    def track(batch: pipeline.Ingested) -> dict[str, int]:
        seen.extend(item.guid or "" for _, item in batch.originals)
        return {}

    with store.transaction(w.db):
        pipeline.ingest_items(w.db, w.rt.window, None, items, w.clock(), track)
    return seen


def test_the_new_story_of_a_batch_is_tracked_by_the_item_that_represents_it(world: Callable[..., World]) -> None:
    w = world("/a", "/b")
    # the longer of two copies dated alike represents the story: it is the one tracked, once
    assert tracked(w, batch_of(w, ("/a", "x1", ORIGINAL, "2024-12-16T08:00:00+00:00"),
                               ("/b", "y1", ORIGINAL + " Officials declined to comment.", "2024-12-16T08:00:00+00:00"))) == ["y1"]


def test_a_story_stored_before_is_not_new_when_a_batch_joins_it(world: Callable[..., World]) -> None:
    w = world("/a", "/b", "/c")
    assert tracked(w, batch_of(w, ("/a", "r1", COPY_A, "2024-12-16T10:00:00+00:00"))) == ["r1"]
    # an earlier copy and the original, in one batch: the original joins both; the story is r1's
    assert tracked(w, batch_of(w, ("/b", "x1", COPY_B, "2024-12-16T07:00:00+00:00"),
                               ("/c", "y1", ORIGINAL, "2024-12-16T08:00:00+00:00"))) == []
    assert len({row["cluster_id"] for row in w.db.query("SELECT cluster_id FROM items")}) == 1


def test_a_seed_given_by_link_follows_its_story(world: Callable[..., World]) -> None:
    w = world(*FEEDS, extra='[[storylines]]\nid = "visits"\ntitle = "Visits"\nseeds = ["https://news.example/a1"]\n')
    w.server.routes.update({path: Reply(body=body) for path, body in FEEDS.items()})
    w.poll(feed_url=w.server.url("/a"))
    settings = load_settings(w.config)
    startup.initialize(w.db, settings, w.clock())
    w.poll(feed_url=w.server.url("/o"))  # the original takes the story over
    report = startup.initialize(w.db, settings, w.clock())  # as every start does
    original = by_guid(w)["o1"][0]
    assert report.unresolved == () and [s.seed_ids for s in store.active_storylines(w.db)] == [(original,)]


def test_a_live_story_stays_news_when_a_backfilled_copy_takes_it_over(world: Callable[..., World], tmp_path: Path) -> None:
    w = polled(world, ("/a",))
    (tmp_path / "history.xml").write_bytes(FEEDS["/o"])
    Cli(w.config)("backfill", str(tmp_path / "history.xml"))  # the original, dated earlier: it represents the story
    day = dt.timedelta(days=1)
    listed = store.digest_stories(w.db, w.clock() - day, w.clock() + day, include_backfill=False)
    assert [s.id for s in listed] == [by_guid(w)["o1"][0]]


def test_opposite_marks_on_two_copies_leave_the_latest_on_the_representative(world: Callable[..., World]) -> None:
    w = polled(world, ("/a", "/b"))
    items = by_guid(w)
    day = dt.datetime(2024, 12, 16, 13, tzinfo=dt.timezone.utc)
    store.save_storyline(w.db, StorylineConfig(id="visits", title="Visits", keywords=("Pyongyang",)), day, origin="cli")
    store.set_mark(w.db, "visits", items["a1"][0], True, day)
    store.set_mark(w.db, "visits", items["b1"][0], False, day + dt.timedelta(hours=1))  # the reader's last word
    w.poll(feed_url=w.server.url("/o"))
    original = by_guid(w)["o1"][0]
    assert [(m.item_id, m.followup) for m in store.marks(w.db)] == [(original, False)]
    assert list(w.db.query("SELECT * FROM storyline_items")) == []  # ruled out: no follow-up link left
    store.set_mark(w.db, "visits", original, None, day + dt.timedelta(hours=2))  # cleared: the tracker's own
    assert list(w.db.query("SELECT * FROM storyline_items")) == []  # decision, and it never linked any of them


def test_a_no_on_the_representative_rules_out_the_link_a_copy_brings(world: Callable[..., World]) -> None:
    w = polled(world, ("/a", "/b"))  # two stories: a (10:00) will represent them both
    items = by_guid(w)
    day = dt.datetime(2024, 12, 16, 13, tzinfo=dt.timezone.utc)
    with store.transaction(w.db):
        store.save_storyline(w.db, StorylineConfig(id="visits", title="Visits", keywords=("Pyongyang",)), day,
                             origin="cli")
        w.db.execute("INSERT INTO storyline_items (storyline_id, item_id, decision, score, threshold, decided_at) "
                     "VALUES ('visits', ?, 'followup', 0.5, 0.3, ?)", [items["b1"][0], day.isoformat()])
    store.set_mark(w.db, "visits", items["a1"][0], False, day)
    w.server.routes["/o"] = Reply(body=rss([("o1", "Liu Guozhong in Pyongyang", f"<p>{ORIGINAL}</p>")],
                                           date="Mon, 16 Dec 2024 14:00:00 GMT"))  # later than both: it joins them
    w.poll(feed_url=w.server.url("/o"))
    assert by_guid(w)["b1"][1] == items["a1"][0]
    assert list(w.db.query("SELECT * FROM storyline_items")) == []  # the reader said no to this story


def test_a_revision_that_completes_a_text_joins_its_story(world: Callable[..., World]) -> None:
    w = polled(world, ("/o",))
    w.server.routes["/a"] = Reply(body=rss([("a1", "Report: Liu in Pyongyang", "<p>Liu Guozhong arrived.</p>")],
                                           date="Mon, 16 Dec 2024 10:00:00 GMT"))  # cut short: a story apart
    w.poll(feed_url=w.server.url("/a"))
    assert len({cluster for _, cluster, _ in by_guid(w).values()}) == 2
    w.server.routes["/a"] = Reply(body=FEEDS["/a"])  # the whole text now: a copy of the original's
    w.poll(feed_url=w.server.url("/a"), force=True)
    items = by_guid(w)
    assert items["a1"][1] == items["o1"][0] and items["o1"][2] is None


@pytest.mark.parametrize("order", [("/e", "/a", "/o"), ("/o", "/e", "/a")], ids="-".join)
def test_an_exact_copy_dated_earlier_than_its_original_arrives_in_any_order(
    world: Callable[..., World], order: tuple[str, ...]
) -> None:
    w = world("/o", "/e", "/a")
    w.server.routes.update({"/o": Reply(body=FEEDS["/o"]), "/a": Reply(body=FEEDS["/a"]), "/e": Reply(body=rss(
        [("e1", "Liu Guozhong in Pyongyang", f"<p>{ORIGINAL}</p>")], date="Mon, 16 Dec 2024 12:00:00 GMT"))})
    for path in order:
        w.poll(feed_url=w.server.url(path))
    items = by_guid(w)
    assert {cluster for _, cluster, _ in items.values()} == {items["o1"][0]}


def test_a_copy_revised_into_another_story_joins_no_two_stories(world: Callable[..., World]) -> None:
    other = rewritten(ORIGINAL, 0.0, 0.55, "harbour")  # half the text another story's: no copy of the first
    w = polled(world, ("/o", "/a"))
    w.server.routes["/b"] = Reply(body=rss([("y1", "Harbour dredging", f"<p>{other}</p>")]))
    w.poll(feed_url=w.server.url("/b"))
    w.server.routes["/a"] = Reply(body=rss([("a1", "Report: Liu in Pyongyang", f"<p>{other}</p>")],
                                           date="Mon, 16 Dec 2024 10:00:00 GMT"))  # the feed reuses its entry
    w.poll(feed_url=w.server.url("/a"), force=True)
    items = by_guid(w)
    assert items["o1"][1] != items["y1"][1]


def test_history_is_not_news_when_a_feed_carries_it_later(world: Callable[..., World], tmp_path: Path) -> None:
    w = world(*FEEDS)
    w.server.routes["/a"] = Reply(body=FEEDS["/a"])
    (tmp_path / "history.xml").write_bytes(FEEDS["/o"])
    Cli(w.config)("backfill", str(tmp_path / "history.xml"))  # stored now, by the wall clock
    w.clock.now = utc_now() + dt.timedelta(days=1)
    w.poll(feed_url=w.server.url("/a"))  # a copy of the backfilled story, the next day
    day = dt.timedelta(days=1)
    assert store.digest_stories(w.db, w.clock() - day / 2, w.clock() + day / 2, include_backfill=False) == []
