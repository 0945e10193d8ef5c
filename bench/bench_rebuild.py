"""Rebuilding the tracker (a restart, a storyline change, another process's writes).

A store with the shipped storylines and seeds, REPLAY_MAX originals in the window from a few busy
feeds, and SLOW_FEEDS feeds whose last items all predate the window. The rebuild replays the
window and reads the slow feeds' earlier items to count their names (storylines.NAMES_COUNTED
each, NAMES_BUDGET at most); the baseline, run in the same process, reads none. Best of two each.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import time
from pathlib import Path

from bench import Result, config_without_feeds
from bench.corpus import article
from worker import startup, store, storylines
from worker.config import Settings, load_settings
from worker.models import Item

NOW = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)
BUSY_FEEDS, SLOW_FEEDS = 5, 200


def make_store(work: Path) -> Settings:
    config = work / "storywatch.toml"
    config.write_text(config_without_feeds(work), encoding="utf-8")
    settings = load_settings(config)
    db = store.open_store(settings.storage.path)
    startup.initialize(db, settings, NOW)
    rng = random.Random(7)
    for n in range(BUSY_FEEDS + SLOW_FEEDS):
        store.add_feed(db, f"https://feed{n}.example/rss", NOW)
    ids = [row["id"] for row in db.query("SELECT id FROM feeds ORDER BY id")]
    items = []
    for n in range(storylines.REPLAY_MAX):  # the window: busy feeds, the last 10 days
        items.append(_item(rng, f"busy:{n}", ids[n % BUSY_FEEDS], NOW - dt.timedelta(minutes=3 * n)))
    for f, feed_id in enumerate(ids[BUSY_FEEDS:]):  # slow feeds: 40 items each, 20 to 60 days ago
        items += [_item(rng, f"slow:{f}:{n}", feed_id, NOW - dt.timedelta(days=20 + n)) for n in range(40)]
    for i in range(0, len(items), 500):
        store.save_items(db, items[i:i + 500])
    db.conn.close()
    return settings


def _item(rng: random.Random, key: str, feed_id: int, published: dt.datetime) -> Item:
    title, text = article(rng, 1600)
    return Item(identity=key, source="feed", title=title, text=text, url=f"https://news.example/{key}",
                published_at=published, first_seen_at=published, feed_id=feed_id,
                content_sha256=hashlib.sha256(text.encode()).hexdigest(), publisher="Example")


def rebuild_seconds(settings: Settings, counted: int) -> float:
    storylines.NAMES_COUNTED = counted
    db = store.open_store(settings.storage.path)
    started = time.perf_counter()
    storylines.build_tracker(db, settings.tracking, NOW)
    elapsed = time.perf_counter() - started
    db.conn.close()
    return elapsed


def run(work: Path) -> list[Result]:
    shipped = storylines.NAMES_COUNTED
    settings = make_store(work)
    without, with_names = [], []
    for _ in range(2):  # interleaved: the machine is shared and noisy
        without.append(rebuild_seconds(settings, 0))
        with_names.append(rebuild_seconds(settings, shipped))
    storylines.NAMES_COUNTED = shipped
    base, full = min(without), min(with_names)
    read = min(SLOW_FEEDS * shipped, storylines.NAMES_BUDGET)
    return [
        Result(f"tracker rebuild: {storylines.REPLAY_MAX:,} items replayed, no earlier names read", base, "s", ""),
        Result(f"tracker rebuild: also {read:,} earlier items of {SLOW_FEEDS} slow feeds read for their names",
               full, "s", "", f"ratio {full / base:.2f} to the rebuild without them"),
    ]
