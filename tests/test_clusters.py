"""One copy per story in any arrival order: clusters join when the item that links them arrives,
and the item that represents a cluster is chosen by a rule, not by which feed answered first."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

import pytest

from worker import store
from worker.config import DEFAULT_CLUTTER, StorylineConfig
from worker.ingest import dedupe
from tests.conftest import World
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


def test_an_exact_copy_never_represents_its_story(world: Callable[..., World]) -> None:
    """One article listed under several links keeps its first item, whatever their dates."""
    w = world("/o", "/e")
    w.server.routes["/o"] = Reply(body=FEEDS["/o"])
    w.server.routes["/e"] = Reply(body=rss([("e1", "Liu Guozhong in Pyongyang", f"<p>{ORIGINAL}</p>")],
                                           date="Sun, 15 Dec 2024 08:00:00 GMT"))  # dated a day earlier
    w.poll(feed_url=w.server.url("/o"))
    w.poll(feed_url=w.server.url("/e"))
    items = by_guid(w)
    assert items["e1"][1:] == (items["o1"][0], items["o1"][0]) and items["o1"][2] is None
