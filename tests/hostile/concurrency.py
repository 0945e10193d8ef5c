"""Concurrency, as a scenario shared by tests/hostile/test_concurrency.py and the benchmark.

The daemon (`storywatch run`, polling every minute with feeds due every minute) polls a local
server of many growing feeds while other processes run `backfill` (a new archive each time),
`digest` (write and send) and `poll --force`, over and over, for `seconds`. Then the extra
processes finish, the daemon is left to go idle and is stopped with SIGTERM, and the store is
compared with what the server served: items served / stored / duplicated / lost, and every log
searched for "database is locked".
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.feedserver import FeedServer
from tests.hostile.crash import GrowingFeed, _history, storywatch, write_config
from tests.smtpserver import SMTPServer


@dataclass
class ConcurrencyReport:
    feeds: int
    seconds: float
    served: int
    stored: int
    duplicated: int
    lost: int
    locked: int  # "database is locked" in any log or feed error
    backfilled: int
    runs: dict[str, int]  # finished runs of each side process
    failures: list[str]


def concurrency_run(folder: Path, *, feeds: int, seconds: float, archives: int = 6) -> ConcurrencyReport:
    sites = [GrowingFeed(n) for n in range(feeds)]
    logs: list[str] = []
    runs: Counter[str] = Counter()
    failures: list[str] = []
    with FeedServer() as server, SMTPServer() as smtp:
        server._server.request_queue_size = 256
        for site in sites:
            server.routes[f"/site{site.number}"] = site.reply
        config = write_config(folder, server, feeds, smtp.port)
        text = config.read_text().replace('interval = "30m"', 'interval = "1m"', 1)
        text = text.replace('min_interval = "5m"', 'min_interval = "1m"', 1)
        config.write_text(text.replace("busy_timeout = 30.0", "busy_timeout = 60.0"))
        backfill_total = sum(_history(folder / f"archive{k}", 2, 100, first=2 * k) for k in range(archives))
        daemon = storywatch(config, "run")
        deadline = time.monotonic() + seconds
        stop = threading.Event()

        def loop(role: str, commands: list[tuple[str, ...]]) -> None:
            n = 0
            while time.monotonic() < deadline:
                proc = storywatch(config, *commands[n % len(commands)])
                _, err = proc.communicate(timeout=900)
                logs.append(err.decode())
                if proc.returncode != 0 and b"was already sent" not in err and b"is being sent right now" not in err:
                    failures.append(f"{role}: exit {proc.returncode}: {err.decode()[-3000:]}")
                runs[role] += 1
                n += 1

        def grow() -> None:
            while not stop.wait(5.0):
                for site in sites:
                    with site.lock:
                        site.round += 1

        threads = [threading.Thread(target=grow, daemon=True)] + [
            threading.Thread(target=loop, args=args) for args in (
                ("backfill", [("backfill", str(folder / f"archive{k}")) for k in range(archives)]),
                # -v: a store error in a digest logs where it happened (its traceback, at DEBUG)
                ("digest", [("-v", "digest", "--send"), ("-v", "digest")]),
                ("poll", [("poll", "--force")]),
            )]
        for t in threads:
            t.start()
        for t in threads[1:]:
            t.join()
        stop.set()
        _wait_idle(server)
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=300)
        logs.append(err.decode())
        if daemon.returncode != 0:
            failures.append(f"daemon: exit {daemon.returncode}: {err.decode()[-500:]}")
    db = sqlite3.connect(folder / "sw.db")
    try:
        served = {(s.number, g) for s in sites for g in s.served}
        stored_rows = [(int(f), g.rsplit("/", 1)[-1]) for f, g in db.execute(
            "SELECT CAST(substr(f.url, instr(f.url, '/site') + 5) AS INTEGER), i.guid FROM items i "
            "JOIN feeds f ON f.id = i.feed_id WHERE i.source = 'feed'")]
        stored = Counter(stored_rows)
        locked = sum("database is locked" in log for log in logs) + int(db.execute(
            "SELECT count(*) FROM fetches WHERE error LIKE '%locked%'").fetchone()[0])
        backfilled = db.execute("SELECT count(DISTINCT identity) FROM items WHERE source = 'backfill'").fetchone()[0]
        if backfilled != backfill_total and runs["backfill"] >= archives:
            failures.append(f"backfill stored {backfilled} of {backfill_total}")
    finally:
        db.close()
    return ConcurrencyReport(
        feeds=feeds, seconds=seconds, served=len(served), stored=len(stored),
        duplicated=sum(n - 1 for n in stored.values()), lost=len(served - set(stored)), locked=locked,
        backfilled=int(backfilled), runs=dict(runs), failures=failures)


def _wait_idle(server: FeedServer, quiet: float = 2.0, timeout: float = 240.0) -> None:
    """Until the server has seen no request for `quiet` seconds (the daemon's cycle is over)."""
    deadline = time.monotonic() + timeout
    seen, since = len(server.requests), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if len(server.requests) != seen:
            seen, since = len(server.requests), time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
