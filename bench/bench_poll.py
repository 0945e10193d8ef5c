"""Polling: 1,000 feeds × 50 entries (~2 KB of HTML each) served with ETags on loopback, with
the default config's storylines and seeds (the cycle's budget includes tracking).

Cold cycles and feedparser-alone runs are each taken best of two, warm cycles best of three.

Measured with the full pipeline as it stands (fetch, parse, normalize, dedupe, track, store):
- cold cycle (every feed new): wall time, entries/s, peak PSS of the worker and its parsing
  processes, and its ratio to the time feedparser alone takes to parse the same 1,000 bodies in
  this process, with the worker's options;
- warm cycle (every feed answers 304): feeds/s, in the process that polled before, and as a
  user's one-shot `storywatch poll --force` has it: the command run in a new process on the
  50,000-item store, from Python's start to its exit (bytecode cached, as installed);
- a cycle where 10 % of the feeds changed, with 5 new entries each, in that process; then as
  one-shot commands: one with no tracker saved (it replays the store's window), then one that
  takes up the tracker the first saved.
The server is a separate process; 64 made-up host names resolve to 127.0.0.1 (the per-host
limit applies per name, as it would across real publishers).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from email.utils import format_datetime
from pathlib import Path

import feedparser

from bench import Result, TreeRss, config_without_feeds
from bench.corpus import article
from worker import pipeline, startup, store
from worker.cycle import CycleReport, poll_feeds
from worker.config import load_settings
from worker.sources.network import Network
from worker.pipeline import Runtime

FEEDS, ENTRIES, HOSTS = 1000, 50, 64
# The farm is recent news whenever the benchmark runs: its entries fall in the windows a worker
# keeps (dedupe, tracking) as they would in a live worker's, not further out as the calendar moves on.
NOW = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)


def entry_xml(rng: random.Random, feed: int, n: int) -> str:
    title, text = article(rng, 1700)
    paragraphs = "".join(f"<p>{p} <a href=\"https://news.example/{feed}/{n}\">more</a> &amp; co.</p>" for p in text.split("\n\n"))
    when = format_datetime(NOW - dt.timedelta(minutes=n + feed), usegmt=True)
    return (f"<item><guid isPermaLink=\"false\">urn:{feed}:{n}</guid><title>{title}</title>"
            f"<link>https://site{feed % HOSTS}.example/{feed}/{n}?utm_source=rss</link><pubDate>{when}</pubDate>"
            f"<description><![CDATA[{paragraphs}]]></description></item>")


def write_feed(path: Path, feed: int, entries: list[str]) -> None:
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Feed {feed}</title>'
                    f"<link>https://site{feed % HOSTS}.example/</link>{''.join(entries)}</channel></rss>", encoding="utf-8")


def make_feeds(folder: Path) -> None:
    """Written to disk, nothing kept: the benchmark's own data must not count as the worker's memory."""
    rng = random.Random(3)
    for feed in range(FEEDS):
        write_feed(folder / f"{feed}.xml", feed, [entry_xml(rng, feed, n) for n in range(ENTRIES)])


def start_server(work: Path, folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port_file = work / "port"
    proc = subprocess.Popen([sys.executable, "-m", "bench.feedserver", str(folder), str(port_file)])
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return proc, int(port_file.read_text())
        time.sleep(0.05)
    raise RuntimeError("bench feed server did not start")


def write_config(work: Path, port: int) -> Path:
    """The default config (its storylines and seeds) with the farm's feeds instead of its own."""
    feeds = "".join(f'\n[[feeds]]\nurl = "{url}"\n' for url in feed_urls(port))
    config = work / "bench.toml"
    config.write_text(config_without_feeds(work).replace('path = "var/storywatch.db"', 'path = "poll.db"') + feeds,
                      encoding="utf-8")
    return config


def feed_urls(port: int) -> list[str]:
    return [f"http://feeds{n % HOSTS}.bench:{port}/{n}.xml" for n in range(FEEDS)]


def runtime(config: Path, name: str = "poll.db") -> Runtime:
    settings = load_settings(config)
    settings = dataclasses.replace(settings, storage=dataclasses.replace(settings.storage, path=config.parent / name))
    db = store.open_store(settings.storage.path)
    startup.initialize(db, settings, NOW)
    return pipeline.open_runtime(db, settings, network=Network(resolve=lambda host: ["127.0.0.1"]))


def feedparser_alone(folder: Path) -> float:
    started = time.perf_counter()
    for n in range(FEEDS):
        feedparser.parse((folder / f"{n}.xml").read_bytes(), sanitize_html=False, resolve_relative_uris=False,
                         response_headers={"content-type": "application/rss+xml; charset=utf-8",
                                           "content-location": f"http://feeds{n % HOSTS}.bench/{n}.xml"})
    return time.perf_counter() - started


def change_some(folder: Path, turn: int = 1) -> None:
    """Every tenth feed gets 5 new entries on top (new in each `turn`); the 5 oldest fall off the end."""
    rng = random.Random(4 * turn)
    for feed in range(0, FEEDS, 10):
        path = folder / f"{feed}.xml"
        entries = ["<item>" + part for part in path.read_text(encoding="utf-8").split("<item>")[1:]]
        entries[-1] = entries[-1].replace("</channel></rss>", "")
        write_feed(path, feed, [entry_xml(rng, feed, 1000 * turn + n) for n in range(5)] + entries[: ENTRIES - 5])


def cold_cycle(config: Path, name: str) -> tuple[Runtime, CycleReport]:
    rt = runtime(config, name)
    cold = poll_feeds(rt, force=True)
    assert cold.new_items == FEEDS * ENTRIES, cold.summary()
    return rt, cold


def one_shot(config: Path, *, new_items: int = 0) -> float:
    """Seconds for `storywatch poll --force`, run as a user runs it, on the store the cold cycle
    filled: Python's start, the imports, open, sync the config, poll, close. The farm's host
    names resolve to 127.0.0.1 (bench.oneshot)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # bytecode cached, as installed
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.oneshot", "--config", str(config), "poll", "--force", "--json"],
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    cycle = json.loads(done.stdout) if done.returncode == 0 else {}
    assert cycle.get("new_items") == new_items and not cycle.get("failed"), (done.returncode, done.stderr[-2000:])
    return seconds


def one_shots_with_news(config: Path, folder: Path) -> tuple[float, float]:
    """A one-shot poll that brings new items (10 % of the feeds changed), with no tracker saved
    (replayed from the store), then another that takes up the tracker the first one saved."""
    with sqlite3.connect(config.parent / "poll.db") as conn:
        conn.execute("DELETE FROM saved_tracker")
    change_some(folder, turn=2)
    rebuilt = one_shot(config, new_items=FEEDS // 10 * 5)
    change_some(folder, turn=3)
    taken_up = one_shot(config, new_items=FEEDS // 10 * 5)
    return rebuilt, taken_up


READER_WORKERS = 4


def reader_python() -> str | None:
    """An interpreter that has reader (a peer): $STORYWATCH_BENCH_READER, else this one if it
    can import reader; None when neither has it (the peer's figures are then left out)."""
    if peer := os.environ.get("STORYWATCH_BENCH_READER"):
        return peer
    return sys.executable if importlib.util.find_spec("reader") else None


def reader_cold(work: Path, port: int, python: str) -> dict[str, float]:
    """reader's cold update of the same farm, in a process of its own."""
    urls = work / "urls.txt"
    urls.write_text("\n".join(feed_urls(port)), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([python, "-m", "bench.reader_peer", str(work / "reader.sqlite"), str(urls), str(READER_WORKERS)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["entries"] == FEEDS * ENTRIES, figures
    return figures


def run(work: Path) -> list[Result]:
    """Best of two for the cold cycle and for feedparser alone: the machine is shared and noisy."""
    folder = work / "feeds"
    folder.mkdir()
    make_feeds(folder)
    server, port = start_server(work, folder)
    config = write_config(work, port)
    try:
        with TreeRss(exclude={server.pid}) as memory:
            first, first_cold = cold_cycle(config, "first.db")
        first.close()
        rt, cold = cold_cycle(config, "poll.db")
        if first_cold.seconds < cold.seconds:
            cold = first_cold
        warm = min((poll_feeds(rt, force=True) for _ in range(3)), key=lambda cycle: cycle.seconds)
        assert warm.count("not_modified") == FEEDS, warm.summary()
        one_shot_304 = min(one_shot(config) for _ in range(3))
        peer = reader_python()
        reader = reader_cold(work, port, peer) if peer else None
        change_some(folder)
        changed = poll_feeds(rt, force=True)
        assert changed.new_items == FEEDS // 10 * 5, changed.summary()
        rt.close()
        rebuilt, taken_up = one_shots_with_news(config, folder)
    finally:
        server.terminate()
        server.wait()
    alone = min(feedparser_alone(folder), feedparser_alone(folder))
    peers = [
        Result(f"poll cold, reader ({READER_WORKERS} workers): time ÷ feedparser alone", reader["seconds"] / alone, "ratio", "",
               note=f"reader {reader['seconds']:.1f} s, peak RSS {reader['peak_rss_mib']:.0f} MiB"),
        Result("poll cold: storywatch time ÷ reader time", cold.seconds / reader["seconds"], "ratio", "<= 1.0"),
    ] if reader else []
    return [
        Result("poll cold: 1,000 feeds × 50 entries, wall time", cold.seconds, "s", "<= 40"),
        Result("poll cold: entries/s", FEEDS * ENTRIES / cold.seconds, "entries/s", ""),
        Result("poll cold: time ÷ feedparser alone on the same bodies", cold.seconds / alone, "ratio", "<= 2.0",
               note=f"feedparser alone: {alone:.1f} s"),
        *peers,
        Result("poll cold: peak PSS, worker and its parsing processes", memory.peak_pss_mib, "MiB", "<= 250",
               note=f"peak RSS (shared pages counted in each process): {memory.peak_mib:.0f} MiB"),
        Result("poll warm (all 304): feeds/s", FEEDS / warm.seconds, "feeds/s", ">= 500"),
        Result("poll warm (all 304), one-shot `storywatch poll --force` on a 50k-item store: feeds/s",
               FEEDS / one_shot_304, "feeds/s", ">= 500"),
        Result("poll 10 % changed, 5 new entries each: wall time", changed.seconds, "s", "<= 6"),
        Result("poll 10 % changed, one-shot `storywatch poll --force`, the tracker taken up as saved: wall time",
               taken_up, "s", "", note=f"the same with the tracker rebuilt from the store: {rebuilt:.1f} s"),
        Result("poll 10 % changed, one-shot: tracker taken up ÷ tracker rebuilt", taken_up / rebuilt, "ratio", ""),
    ]
