"""Backfill: 100 feed files × 1,000 entries (100k items, ~2 KB of HTML each) from a folder.

Measured end to end with the default storylines (parse, normalize, dedupe, track, store) and
the default workers (the number of cores), against feedparser alone parsing the same files in
this process with the worker's options; items/s; peak RSS of the process tree.
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path

import feedparser

from bench import Result, TreeRss
from bench.bench_poll import entry_xml
from worker.clock import utc_now
from worker import backfill, startup, store
from worker.config import DEFAULT_TEMPLATE, load_settings

FILES, ENTRIES = 100, 1000
PROJECT = Path(__file__).resolve().parents[1]


def make_files(folder: Path, files: int = FILES, entries: int = ENTRIES) -> None:
    rng = random.Random(11)
    for f in range(files):
        items = "".join(entry_xml(rng, f, n) for n in range(entries))
        (folder / f"{f}.xml").write_text(
            f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Archive {f}</title>'
            f"<link>https://archive{f}.example/</link>{items}</channel></rss>", encoding="utf-8")


def feedparser_alone(folder: Path) -> float:
    started = time.perf_counter()
    for path in sorted(folder.glob("*.xml")):
        feedparser.parse(path.read_bytes(), sanitize_html=False, resolve_relative_uris=False,
                         response_headers={"content-location": path.as_uri()})
    return time.perf_counter() - started


def run(work: Path, files: int = FILES, entries: int = ENTRIES) -> list[Result]:
    folder = work / "archive"
    folder.mkdir()
    make_files(folder, files, entries)
    total = files * entries
    defaults = load_settings(DEFAULT_TEMPLATE)
    settings = dataclasses.replace(defaults, feeds=(), storage=dataclasses.replace(defaults.storage, path=work / "b.db"))
    db = store.open_store(settings.storage.path)
    startup.initialize(db, settings, utc_now())
    sources, failed = backfill.expand([str(folder)], db)
    with TreeRss() as memory:
        started = time.perf_counter()
        summary = backfill.backfill(db, settings, sources, backfill.Options())
        seconds = time.perf_counter() - started
    alone = feedparser_alone(folder)  # after: its heap must not count as the backfill's memory
    assert not failed and not summary.sources_failed, summary.sources_failed
    assert summary.items_new + summary.exact_copies + summary.near_duplicates == total, summary.as_json()
    note = (f"{total:,} items from {files} files; feedparser alone {alone:.1f} s, backfill {seconds:.1f} s; "
            f"follow-ups {dict(summary.followups)}")
    return [
        Result("backfill ÷ feedparser alone", seconds / alone, "ratio", "<= 2.0", note),
        Result("backfill rate", total / seconds, "items/s", ">= 2500"),
        Result("backfill peak RSS (process tree)", memory.peak_mib, "MiB", "<= 400"),
    ]


if __name__ == "__main__":  # a quick look at a tenth of the size: python -m bench.bench_backfill
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for r in run(Path(tmp), int(sys.argv[1]) if len(sys.argv) > 1 else 10):
            print(f"{r.name}: {r.figure:,.2f} {r.unit} ({r.target}) {r.note}")
