"""Store writes: 100k items of ~2 KB in batched transactions, through store.save_items.

Baseline in the same process: sqlite-utils insert_all of the same rows into a bare table
(no indexes, no full-text index), the cheapest way to put them in SQLite.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import time
from pathlib import Path

from sqlite_utils import Database

from bench import Result
from bench.corpus import article
from worker import store
from worker.models import Item

ITEMS = 100_000
BATCH = 500  # items per transaction, about ten feeds' worth
NOW = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)


def make_items() -> list[Item]:
    rng = random.Random(7)
    items = []
    for n in range(ITEMS):
        title, text = article(rng)
        items.append(
            Item(
                identity=f"bench:{n}",
                source="feed",
                title=title,
                text=text,
                url=f"https://news.example/{n}",
                published_at=NOW - dt.timedelta(minutes=n),
                first_seen_at=NOW,
                content_sha256=hashlib.sha256(text.encode()).hexdigest(),
                publisher="Example News",
            )
        )
    return items


def write_with_store(path: Path, items: list[Item]) -> float:
    db = store.open_store(path)
    started = time.perf_counter()
    for i in range(0, len(items), BATCH):
        store.save_items(db, items[i : i + BATCH])
    elapsed = time.perf_counter() - started
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    return elapsed


def write_baseline(path: Path, items: list[Item]) -> float:
    db = Database(path)
    db.enable_wal()
    db.execute("PRAGMA synchronous=NORMAL")
    rows = ({"identity": i.identity, "title": i.title, "text": i.text, "url": i.url} for i in items)
    started = time.perf_counter()
    db["items"].insert_all(rows, batch_size=BATCH)  # type: ignore[union-attr]
    return time.perf_counter() - started


def run(work: Path) -> list[Result]:
    items = make_items()
    baseline = write_baseline(work / "baseline.db", items)
    elapsed = write_with_store(work / "store.db", items)
    size = (work / "store.db").stat().st_size
    text_bytes = sum(len(i.title.encode()) + len(i.text.encode()) for i in items)
    return [
        Result("store: items/s, 100k items, batched", ITEMS / elapsed, "items/s", ">= 5000"),
        Result("store: DB bytes per item", size / ITEMS, "bytes", "",
               note=f"stored text (title + body) averages {text_bytes / ITEMS:,.0f} bytes"),
        Result("store: DB bytes ÷ stored text bytes (row + FTS + indexes)", size / text_bytes, "ratio", "<= 2.0"),
        Result("store: time ÷ bare insert_all baseline", elapsed / baseline, "ratio", "",
               note=f"baseline {ITEMS / baseline:,.0f} items/s without indexes or FTS"),
    ]
