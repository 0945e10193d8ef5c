"""Reliability and security figures (issue 9): the hostile-feed suite, crash-restart cycles,
the daemon under concurrent load, and a simulated 24-hour run.

- hostile cases: tests/hostile/test_feeds.py and test_ssrf.py run by pytest: cases tried / passed;
- crash: 30 SIGKILLs of real worker processes at seeded random moments, then every invariant
  (tests/hostile/crash.py): cycles and violations (target 0);
- concurrency: the daemon with 500 feeds for 3 minutes while backfill, digest and poll run in
  other processes (tests/hostile/concurrency.py): served / stored / duplicated / lost, and
  "database is locked" errors (target 0);
- 24 hours: a fake clock drives a cycle every 5 minutes (`schedule.run_once`: poll, digest,
  metrics) against a local server whose feeds appear, change, fail and recover: the RSS curve,
  peak RSS, store size, fetch log rows (and after a 31-day jump: pruned), file descriptors and
  threads at start and end.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from email.utils import format_datetime
from pathlib import Path

from bench import Result, TreeRss
from bench.bench_poll import start_server

PROJECT = Path(__file__).resolve().parent.parent
START = dt.datetime(2026, 11, 23, 0, 0, tzinfo=dt.timezone.utc)


@dataclass
class DayReport:
    hours: int
    cycles: int
    rss_curve_mib: list[float] = field(default_factory=list)  # one sample per simulated hour
    peak_rss_mib: float = 0.0
    store_mib: float = 0.0
    items: int = 0
    fetch_rows: int = 0
    fetch_rows_after_prune: int = 0
    fds: tuple[int, int] = (0, 0)
    fds_new: tuple[str, ...] = ()
    """What the descriptors open at the end and not at the start point to (a leak's name)."""
    threads: tuple[int, int] = (0, 0)
    errors_seen: int = 0


def _feed(number: int, version: int, now: dt.datetime) -> bytes:
    items = "".join(
        f"<item><guid>f{number}-{n}</guid><title>Feed {number} story {n}</title>"
        f"<link>https://site{number}.example/{n}</link><description>Story {n} of feed {number}, version "
        f"{version if n == 0 else 0}: {' '.join(f'word{(number * 31 + n * 7 + k) % 997}' for k in range(60))}"
        f"</description><pubDate>{format_datetime(now - dt.timedelta(minutes=n))}</pubDate></item>"
        for n in range(version, version + 20))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {number}</title>'
            f"<link>https://site{number}.example/</link>{items}</channel></rss>").encode()


def _open_fds() -> int:
    return len(_fd_targets())


def _fd_targets() -> set[str]:
    """The process's open descriptors, but for those into /proc: the listing's own, and the
    memory sampler's (TreeRss reads smaps_rollup from a thread, each file open for an instant)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
        if not target.startswith("/proc/"):
            found.add(f"{fd}->{target}")
    return found


def simulate_day(work: Path, *, hours: int = 24, feeds: int = 60, step: dt.timedelta = dt.timedelta(minutes=5),
                 seed: int = 24) -> DayReport:
    """Cycles driven by a fake clock against a local feed server; figures of the whole run."""
    from worker import pipeline, schedule, startup, store
    from worker.config import load_settings

    rng = random.Random(seed)
    folder = work / "feeds"
    folder.mkdir(parents=True, exist_ok=True)
    versions = {n: 0 for n in range(feeds)}
    for n in range(feeds // 2):  # the other half appears during the day
        (folder / f"f{n}.xml").write_bytes(_feed(n, 0, START))
    server, port = start_server(work, folder)
    now = [START]
    try:
        urls = "".join(f'[[feeds]]\nurl = "http://127.0.0.1:{port}/f{n}.xml"\n' for n in range(feeds))
        config = work / "storywatch.toml"
        config.write_text(f'[storage]\npath = "sw.db"\n[fetch]\ninterval = "15m"\nparse_processes = 2\n'
                          f'[digest]\noutput_dir = "digests"\ntime = "07:00"\ntimezone = "UTC"\n{urls}')
        settings = load_settings(config)
        db = store.open_store(settings.storage.path)
        startup.initialize(db, settings, now[0])
        rt = pipeline.open_runtime(db, settings, clock=lambda: now[0])
        report = DayReport(hours=hours, cycles=0)
        with TreeRss(exclude={server.pid}) as rss:
            schedule.run_once(rt)  # warm: the parsing processes and the store are open from here on
            report.fds, report.threads = (_open_fds(), 0), (threading.active_count(), 0)
            at_start = _fd_targets()
            steps = int(dt.timedelta(hours=hours) / step)
            for i in range(steps):
                now[0] += step
                _weather(folder, versions, rng, now[0], feeds)
                result = schedule.run_once(rt)
                report.errors_seen += result.count("error")
                report.cycles += 1
                if (i + 1) % int(dt.timedelta(hours=1) / step) == 0:
                    report.rss_curve_mib.append(round(rss.total_kib() / 1024, 1))
            report.fds = (report.fds[0], _open_fds())
            report.fds_new = tuple(sorted(_fd_targets() - at_start))
            report.threads = (report.threads[0], threading.active_count())
            report.fetch_rows = int(next(db.query("SELECT count(*) AS n FROM fetches"))["n"])
            report.items = int(next(db.query("SELECT count(*) AS n FROM items"))["n"])
            now[0] += dt.timedelta(days=31)  # the fetch log keeps 30 days
            schedule.run_once(rt)
            report.fetch_rows_after_prune = int(next(db.query("SELECT count(*) AS n FROM fetches"))["n"])
        report.peak_rss_mib = rss.peak_mib
        rt.close()
        db.conn.close()
        report.store_mib = sum(p.stat().st_size for p in work.glob("sw.db*")) / 1024 / 1024
        return report
    finally:
        server.terminate()
        server.wait()


def _weather(folder: Path, versions: dict[int, int], rng: random.Random, now: dt.datetime, feeds: int) -> None:
    """Feeds appear, publish (a new version shifts the window and edits the top story), fail and recover."""
    for n in range(feeds):
        path = folder / f"f{n}.xml"
        roll = rng.random()
        if not path.exists():
            if roll < 0.05:  # a new feed appears, or a failed one recovers
                path.write_bytes(_feed(n, versions[n], now))
        elif roll < 0.02:  # fails: 404 until it recovers
            path.unlink()
        elif roll < 0.30:
            versions[n] += 1
            path.write_bytes(_feed(n, versions[n], now))


def _hostile_cases() -> tuple[int, int]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/hostile/test_feeds.py", "tests/hostile/test_ssrf.py"],
                          cwd=PROJECT, capture_output=True, text=True, timeout=900)
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|error)", proc.stdout)}
    passed = counts.get("passed", 0)
    return passed + counts.get("failed", 0) + counts.get("error", 0), passed


def run(work: Path) -> list[Result]:
    sys.path.insert(0, str(PROJECT))
    from tests.hostile.concurrency import concurrency_run
    from tests.hostile.crash import crash_run

    tried, passed = _hostile_cases()
    results = [Result("hostile cases tried", tried, "cases", ">= 30"),
               Result("hostile cases passed", passed, "cases", f">= {tried}")]
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        crash = crash_run(Path(tmp), kills=30, seed=30, feeds=16, history=(10, 200))
    results += [Result("crash-restart cycles (SIGKILL)", crash.kills, "kills", ">= 30"),
                Result("crash invariant violations", len(crash.violations), "violations", "<= 0",
                       "; ".join(crash.violations)[:500]),
                Result("crash: items served / stored", crash.stored, "items", f">= {crash.served}",
                       f"served {crash.served}, backfilled {crash.backfilled}, revisions {crash.revisions}")]
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        conc = concurrency_run(Path(tmp), feeds=500, seconds=180)
    results += [Result("concurrency: items served", conc.served, "items", ""),
                Result("concurrency: items stored", conc.stored, "items", f">= {conc.served}", f"runs {conc.runs}"),
                Result("concurrency: items duplicated", conc.duplicated, "items", "<= 0"),
                Result("concurrency: items lost", conc.lost, "items", "<= 0"),
                Result("concurrency: 'database is locked'", conc.locked, "errors", "<= 0", "; ".join(conc.failures)[:300])]
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        day = simulate_day(Path(tmp))
    curve = ", ".join(f"{v:.0f}" for v in day.rss_curve_mib)
    results += [Result("24 h: cycles", day.cycles, "cycles", ""),
                Result("24 h: peak RSS (worker + parsers)", day.peak_rss_mib, "MiB", "<= 400", f"hourly RSS MiB: {curve}"),
                Result("24 h: RSS growth, last hour vs hour 2", day.rss_curve_mib[-1] - day.rss_curve_mib[1], "MiB", "<= 30"),
                Result("24 h: store size", day.store_mib, "MiB", "", f"{day.items} items, {day.fetch_rows} fetch rows"),
                Result("24 h: fetch rows after a 31-day jump", day.fetch_rows_after_prune, "rows", f"<= {day.fetch_rows // 10}"),
                Result("24 h: file descriptors start", day.fds[0], "fds", ""),
                Result("24 h: file descriptors end", day.fds[1], "fds", f"<= {day.fds[0]}"),
                Result("24 h: threads start", day.threads[0], "threads", ""),
                Result("24 h: threads end", day.threads[1], "threads", f"<= {day.threads[0]}")]
    return results
