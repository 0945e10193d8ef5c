"""Dedupe speed and scale: per-item cost of normalize + identity + exact + near-duplicate lookup.

Measured on one core, in this process, for 2,000 new items (~2 KB of HTML each, a fifth of them
near copies of stored articles), against a store of 10k and of 500k items spread over a year (a
30-day window holds about a twelfth of them). Most stored items carry random signatures (cheap
to make by the hundred thousand); the newest 2,000 are real articles with their text, so the
exact checks of close calls read real rows. Peak RSS is measured in a fresh process that loads
a 30-day window of 100k items.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench import Result
from bench.corpus import article
from worker import store
from worker.window import Window
from worker.ingest import dedupe, normalize
from worker.config import Settings
from worker.models import Feed
from worker.sources.parse import Entry

NOW = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)
YEAR = dt.timedelta(days=365)
REAL, NEW = 2000, 2000


def populate(path: Path, stored: int, span: dt.timedelta, real_texts: list[tuple[str, str]]) -> None:
    """`stored` items over `span` before NOW: random fingerprints, then REAL articles at the end."""
    db = store.open_store(path)
    rng = np.random.default_rng(5)
    filler = stored - len(real_texts)
    db.execute("INSERT INTO feeds (url, created_at) VALUES ('https://stored.example/feed', '2026-01-01T00:00:00Z')")
    rows = (
        (n + 1, n + 1, f"filler:{n}", 1, "feed", f"Headline {n}", "", _iso(NOW - span * (1 - n / stored)), _iso(NOW),
         hashlib.sha256(str(n).encode()).hexdigest(), rng.integers(0, 2**32, 64, dtype=np.uint32).tobytes(), "", 300)
        for n in range(filler)
    )
    with store.transaction(db):
        db.conn.executemany(
            "INSERT INTO items (id, cluster_id, identity, feed_id, source, title, text, published_at, first_seen_at, "
            "content_sha256, signature, title_key, words) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    clutter = dedupe.Clutter.compile(Settings().dedupe.clutter_patterns)
    items = [
        normalize.normalize_entry(
            Entry(f"real{n}", f"https://stored.example/{n}", title, _html(text), "",
                  published=NOW - dt.timedelta(hours=(REAL - n) / 5)),  # the last 17 days: in the window
            feed_id=1, policy="guid", publisher="stored", now=NOW, clutter=clutter)
        for n, (title, text) in enumerate(real_texts)
    ]
    store.save_items(db, items)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()


def _iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _html(text: str) -> str:
    return "".join(f"<p>{p}</p>" for p in text.split("\n\n"))


def new_entries(real_texts: list[tuple[str, str]]) -> list[Entry]:
    rng = random.Random(9)
    entries = []
    for n in range(NEW):
        if n % 5 == 0:  # a near copy of a stored article: a few words changed
            title, text = real_texts[rng.randrange(len(real_texts))]
            words = text.split(" ")
            for i in rng.sample(range(len(words)), len(words) // 30):
                words[i] = "changed"
            text = " ".join(words)
        else:
            title, text = article(rng, 2048)
        entries.append(Entry(f"new{n}", f"https://new.example/{n}", title, _html(text), "", published=NOW))
    return entries


def per_item_seconds(path: Path, entries: list[Entry]) -> tuple[float, int]:
    """Seconds per item for normalize + identity + exact + near-duplicate lookup; copies found."""
    db = store.open_store(path)
    settings = Settings()
    window = Window(db, settings, NOW)
    window.index_for([normalize.normalize_entry(entries[0], feed_id=2, policy="guid", publisher="new", now=NOW,
                                                clutter=window.clutter)])  # load the window first
    feed = Feed(id=2, url="https://new.example/feed")
    found = 0
    started = time.perf_counter()
    for entry in entries:
        item = normalize.normalize_entry(entry, feed_id=feed.id, policy="guid", publisher="new", now=NOW,
                                         clutter=window.clutter)
        known = dedupe.Known(*store.known_for(db, [item]))
        verdicts = dedupe.classify([item], known, window.index, window.clutter, frozenset(), window.stored_text)
        found += verdicts[0].kind != "new"
    elapsed = time.perf_counter() - started
    db.conn.close()
    return elapsed / len(entries), found


RSS_PROBE = """
import datetime as dt, resource, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from worker import store
from worker.config import Settings
from worker.window import Window
db = store.open_store(Path({path!r}))
window = Window(db, Settings(), dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc))
window._advance(dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc))
print(len(window.index), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def window_rss(path: Path) -> tuple[int, float]:
    code = RSS_PROBE.format(root=str(Path(__file__).resolve().parents[1]), path=str(path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), float(out[1])


def run(work: Path) -> list[Result]:
    rng = random.Random(1)
    real_texts = [article(rng, 2048) for _ in range(REAL)]
    entries = new_entries(real_texts)
    small, large, window_db = work / "10k.db", work / "500k.db", work / "window.db"
    populate(small, 10_000, YEAR, real_texts)
    populate(large, 500_000, YEAR, real_texts)
    populate(window_db, 100_000, dt.timedelta(days=29), real_texts)
    small_cost, small_found = per_item_seconds(small, entries)
    large_cost, large_found = per_item_seconds(large, entries)
    indexed, rss = window_rss(window_db)
    return [
        Result("dedupe: items/s, normalize + identity + exact + near lookup, 10k stored", 1 / small_cost, "items/s",
               ">= 1000", note=f"{small_found} of {NEW // 5} near copies found"),
        Result("dedupe: items/s, the same with 500k stored", 1 / large_cost, "items/s", ">= 1000",
               note=f"{large_found} of {NEW // 5} near copies found"),
        Result("dedupe: per-item cost, 500k stored ÷ 10k stored", large_cost / small_cost, "ratio", "<= 1.5"),
        Result(f"dedupe: peak RSS, process holding a 30-day window of {indexed:,} items", rss, "MiB", "<= 400"),
    ]
