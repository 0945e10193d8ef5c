"""Digest speed: collect + render one busy day from a real SQLite store.

The day: 5,000 new stories (~2 KB each) from 20 feeds, 1,000 more copies of them from other feeds
("also published by"), 50 storylines with 500 follow-ups between them (reasons, novelty, the
item each is closest to), 200 edited tracked items and 5 open suggestions. Before it, 30 days
of history at 3,000 items a day (with follow-ups, so activity lines and quiet storylines have
something to count) and the fetch log of 20 feeds polled every 30 minutes. Timed: the digest
of that day as the worker makes it (daily.collect, with the default clutter patterns), then
rendered as Markdown and as HTML; the median of three runs on a warm store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import statistics
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from bench import Result
from bench.corpus import article, words
from worker import digest, store
from worker.digest import daily
from worker.config import Settings, StorylineConfig
from worker.models import FollowUp, Item, Placement

UTC = dt.timezone.utc
ZONE = ZoneInfo("Europe/Berlin")
DAY = dt.date(2026, 11, 23)
PERIOD = digest.day_period(DAY, dt.time(7, 0), ZONE)
FEEDS, STORYLINES = 20, 50
NEW, COPIES, FOLLOWUPS, EDITS = 5_000, 1_000, 500, 200
HISTORY_DAYS, HISTORY_PER_DAY = 30, 3_000
RUNS = 3


def _item(n: int, title: str, text: str, published: dt.datetime, feed: int, prefix: str = "day") -> Item:
    return Item(
        identity=f"{prefix}:{n}", source="feed", title=title, text=text, published_at=published,
        first_seen_at=published + dt.timedelta(minutes=7),
        content_sha256=hashlib.sha256(f"{prefix}{n}{text}".encode()).hexdigest(),
        url=f"https://feed{feed}.example/{prefix}/{n}", publisher=f"Feed {feed}", feed_id=feed,
    )


def build(path: Path) -> dict[str, int]:
    """The store described above; returns counts of what it holds."""
    rng = random.Random(11)
    db = store.open_store(path)
    early = PERIOD.start - dt.timedelta(days=HISTORY_DAYS + 1)
    for f in range(1, FEEDS + 1):
        store.add_feed(db, f"https://feed{f}.example/rss", early, name=f"Feed {f}", origin="config")
    for s in range(STORYLINES):
        store.save_storyline(db, StorylineConfig(id=f"story-{s}", title=f"Storyline {s}: " + " ".join(words(rng, 4)),
                                                 keywords=tuple(words(rng, 3))), early, origin="config")

    # History: short items, a follow-up in every 60th.
    history: list[Item] = []
    for n in range(HISTORY_DAYS * HISTORY_PER_DAY):
        published = early + dt.timedelta(seconds=n * 86_400 * HISTORY_DAYS // (HISTORY_DAYS * HISTORY_PER_DAY))
        history.append(_item(n, " ".join(words(rng, 9)).capitalize(), " ".join(words(rng, 60)) + ".", published,
                             1 + n % FEEDS, prefix="old"))
    old_ids: list[int] = []
    for i in range(0, len(history), 2_000):
        old_ids += store.save_items(db, history[i : i + 2_000])
    store.save_followups(db, [
        FollowUp(f"story-{(n // 60) % (STORYLINES - 5)}", item_id, 0.4, 0.25, 0.4,
                 {"names": words(rng, 2), "top_terms": [[w, 0.1] for w in words(rng, 4)]}, (), None)
        for n, item_id in enumerate(old_ids) if n % 60 == 0], early)

    # The day: full articles, copies from other feeds, follow-ups, edits.
    day: list[Item] = []
    for n in range(NEW):
        title, text = article(rng)
        published = PERIOD.start + dt.timedelta(seconds=n * 85_000 // NEW)
        day.append(_item(n, title, text, published, 1 + n % FEEDS))
    ids: list[int] = []
    for i in range(0, NEW, 500):
        ids += store.save_items(db, day[i : i + 500])
    copies = [_item(n, day[n * 5].title, day[n * 5].text, day[n * 5].published_at + dt.timedelta(minutes=20),
                    1 + (n * 5 + 1 + n % 3) % FEEDS, prefix="copy") for n in range(COPIES)]
    store.save_items(db, copies, [Placement(cluster_id=ids[n * 5], dup_of=ids[n * 5], dup_kind="near", similarity=0.8)
                                  for n in range(COPIES)])
    chosen = rng.sample(ids, FOLLOWUPS)
    store.save_followups(db, [
        FollowUp(f"story-{n % STORYLINES}", item_id, 0.3 + rng.random() / 2, 0.25, 0.5,
                 {"names": words(rng, 3), "top_terms": [[w, 0.2] for w in words(rng, 6)], "closest_similarity": 0.4},
                 tuple(words(rng, 2)), rng.choice(old_ids))
        for n, item_id in enumerate(chosen)], PERIOD.end - dt.timedelta(minutes=5))  # decided as they came in
    tracked = [r["item_id"] for r in db.query("SELECT item_id FROM storyline_items WHERE item_id <= ?", [old_ids[-1]])]
    stored = store.items_by_id(db, tracked[:EDITS])
    for n, item_id in enumerate(tracked[:EDITS]):
        old = stored[item_id]
        new = _item(item_id, old.title + " (updated)", old.text + " An added sentence.", old.published_at, 1, "edit")
        store.save_revision(db, old, new, ["title", "text"], "title: … {+(updated)+}\ntext: … {+An added sentence.+}",
                            PERIOD.start + dt.timedelta(minutes=10 + n))

    for n in range(5):
        store.save_suggestion(db, " ".join(words(rng, 3)), words(rng, 6), ids[n * 10 : n * 10 + 8], 3,
                              PERIOD.start - dt.timedelta(days=2), PERIOD.start, PERIOD.start + dt.timedelta(hours=n))
    polls = PERIOD.end - dt.timedelta(days=HISTORY_DAYS)
    while polls < PERIOD.end:
        for f in range(1, FEEDS + 1):
            failing = f == FEEDS and polls > PERIOD.start
            store.record_fetch(db, f, polls, kind="error" if failing else "ok", status=None if failing else 200,
                               error="cannot connect: timed out" if failing else None)
        polls += dt.timedelta(minutes=30)
    db.conn.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    counts = {name: db[name].count for name in ("items", "storyline_items", "item_revisions", "fetches")}
    db.conn.close()
    return counts


def measure(path: Path) -> tuple[float, float, float, digest.DigestData, str]:
    db = store.open_store(path)
    settings = Settings()
    started = time.perf_counter()
    data = daily.collect(db, settings, PERIOD)
    collected = time.perf_counter()
    md = digest.render_markdown(data)
    rendered_md = time.perf_counter()
    html = digest.render_html(data)
    done = time.perf_counter()
    db.conn.close()
    assert data.new_items == NEW and data.followups == FOLLOWUPS, (data.new_items, data.followups)
    assert md and html
    return collected - started, rendered_md - collected, done - rendered_md, data, md


def run(work: Path) -> list[Result]:
    path = work / "digest.db"
    started = time.perf_counter()
    counts = build(path)
    built = time.perf_counter() - started
    runs = [measure(path) for _ in range(RUNS)]
    totals = [sum(r[:3]) for r in runs]
    median = sorted(range(RUNS), key=lambda i: totals[i])[RUNS // 2]
    collect_s, md_s, html_s, data, md = runs[median]
    shape = (f"{data.new_items:,} new items, {data.followups} follow-ups in {data.moved} storylines, "
             f"{len(data.updated)} edits; store of {counts['items']:,} items (built in {built:.0f} s)")
    return [
        Result("digest: collect + render Markdown and HTML, busy day", statistics.median(totals), "s", "<= 2.0",
               note=f"{shape}; first run {totals[0]:.2f} s"),
        Result("digest: collect from the store", collect_s, "s", ""),
        Result("digest: render Markdown", md_s, "s", "", note=f"{len(md.encode()):,} bytes"),
        Result("digest: render HTML (markdown-it + nh3)", html_s, "s", ""),
    ]
