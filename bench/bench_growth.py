"""Cost as the store grows: a 200k-item backfill's store rate over its first 10k items against its
last 10k, and a cold poll of 5,000 new entries into that store against the same poll into an
empty one. Default storylines and workers, as in bench_backfill and bench_poll.
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path

from bench import Result, config_without_feeds
from bench.bench_backfill import make_files
from bench.bench_poll import NOW, entry_xml, runtime, start_server, write_feed
from worker import backfill, startup, store
from worker.config import load_settings
from worker.cycle import poll_feeds

FILES, ENTRIES = 200, 1000  # the backfill: 200k items
SPAN = 10_000  # items in the first and in the last stretch compared
POLL_FEEDS, POLL_ENTRIES = 100, 50  # the poll: 5,000 entries
FIRST_POLL_FEED = 1000  # past the backfill's files: no link shared with a backfilled item


def make_poll_feeds(folder: Path) -> None:
    rng = random.Random(5)
    for feed in range(FIRST_POLL_FEED, FIRST_POLL_FEED + POLL_FEEDS):
        write_feed(folder / f"{feed}.xml", feed, [entry_xml(rng, feed, n) for n in range(POLL_ENTRIES)])


def write_poll_config(work: Path, port: int) -> Path:
    feeds = "".join(f'\n[[feeds]]\nurl = "http://127.0.0.1:{port}/{feed}.xml"\n'
                    for feed in range(FIRST_POLL_FEED, FIRST_POLL_FEED + POLL_FEEDS))
    config = work / "growth.toml"
    config.write_text(config_without_feeds(work) + feeds, encoding="utf-8")
    return config


def timed_poll(config: Path, name: str) -> float:
    """Seconds for a cold poll of the farm into the store `name` (beside the config)."""
    rt = runtime(config, name)
    try:
        started = time.perf_counter()
        report = poll_feeds(rt, force=True)
        seconds = time.perf_counter() - started
    finally:
        rt.close()
    assert report.new_items == POLL_FEEDS * POLL_ENTRIES, report.summary()
    return seconds


def backfill_steps(work: Path, config: Path, name: str) -> list[tuple[float, int]]:
    """Backfill FILES × ENTRIES items into the store `name`; (time, items stored) at each batch."""
    folder = work / "archive"
    folder.mkdir()
    make_files(folder, FILES, ENTRIES)
    settings = load_settings(config)
    settings = dataclasses.replace(settings, feeds=(), storage=dataclasses.replace(settings.storage, path=work / name))
    db = store.open_store(settings.storage.path)
    steps: list[tuple[float, int]] = []

    def progress(step: backfill.Step) -> None:
        if step.phase == "store":
            steps.append((time.perf_counter(), step.done))

    try:
        startup.initialize(db, settings, NOW)
        sources, failed = backfill.expand([str(folder)], db)
        summary = backfill.backfill(db, settings, sources, backfill.Options(), progress)
    finally:
        db.close()
    assert not failed and summary.items_new == FILES * ENTRIES, summary.as_json()
    return steps


def rate(steps: list[tuple[float, int]], start: int, end: int) -> float:
    """Items/s between the first steps that had stored `start` and `end` items."""
    (t0, n0), (t1, n1) = (next(s for s in steps if s[1] >= at) for at in (start, end))
    return (n1 - n0) / (t1 - t0)


def run(work: Path) -> list[Result]:
    feeds = work / "feeds"
    feeds.mkdir()
    make_poll_feeds(feeds)
    server, port = start_server(work, feeds)
    try:
        config = write_poll_config(work, port)
        empty = timed_poll(config, "empty.db")
        steps = backfill_steps(work, config, "grown.db")
        grown = timed_poll(config, "grown.db")
    finally:
        server.terminate()
        server.wait()
    total = FILES * ENTRIES
    first, last = rate(steps, 0, SPAN), rate(steps, total - SPAN, total)
    # Every stretch's rate: whether the cost grows all along or steps up once the store outgrows
    # the caches (then the first stretch alone is fast), and how far one stretch's noise goes.
    stretches = " ".join(f"{rate(steps, start, start + SPAN):.0f}" for start in range(0, total, SPAN))
    return [
        Result(f"growth: backfill store rate, first {SPAN // 1000}k of {total // 1000}k items", first, "items/s", ""),
        Result(f"growth: backfill store rate, last {SPAN // 1000}k of {total // 1000}k items", last, "items/s", ""),
        Result(f"growth: backfill, last {SPAN // 1000}k's rate ÷ first {SPAN // 1000}k's", last / first, "ratio", ">= 0.9",
               f"items/s of each {SPAN // 1000}k in turn: {stretches}"),
        Result(f"growth: poll of {POLL_FEEDS * POLL_ENTRIES:,} new entries into a {total // 1000}k-item store "
               "÷ into an empty one", grown / empty, "ratio", "",
               f"empty store {empty:.1f} s, {total:,} items stored {grown:.1f} s"),
    ]


if __name__ == "__main__":  # a quick look at a tenth of the size: python -m bench.bench_growth [FILES]
    import sys
    import tempfile

    from worker.log import configure_logging

    configure_logging("WARNING")
    FILES = max(4, int(sys.argv[1]) if len(sys.argv) > 1 else 20)  # a stretch spans whole batches of 500
    SPAN = FILES * ENTRIES // 4 // 1000 * 1000
    with tempfile.TemporaryDirectory() as tmp:
        for r in run(Path(tmp)):
            print(f"{r.name}: {r.figure:,.2f} {r.unit} ({r.target}) {r.note}")
