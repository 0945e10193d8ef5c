"""Interrupted or partly failed work says so (issue 16, item 5).

The real CLI in a subprocess, a real feed server on 127.0.0.1, a real SQLite store:

- SIGINT during `poll` prints how many feeds were polled, stopped and failed, exits 130, keeps
  what the polled feeds stored, leaves the stopped feeds as they were (polled next time, no
  error counted), and `health` does not call the interrupted cycle a finished one;
- SIGTERM during `run --once` exits 143, likewise;
- SIGINT during `backfill` lets the batch in flight finish, prints what was stored and what was
  not, exits 130, and running it again stores the rest exactly once, with the storyline
  follow-ups one uninterrupted backfill decides;
- `poll --feed URL` of a failing feed exits 3; a feed that answers 304 is a success.

Every wait is for a condition seen from outside (requests the server received, rows in the
store), bounded by a generous timeout; no assertion is on wall time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import PROJECT
from tests.feedserver import FeedServer, Reply, Route, Seen, rss
from tests.storyhistory import followups, korea_history, same_secret

UTC = dt.timezone.utc
ITEMS = 3  # entries in each test feed


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Held feeds answer once this is set (always set at the end, so no server thread is left)."""
    event = threading.Event()
    yield event
    event.set()


def held(release: threading.Event, reply: Reply) -> Route:
    """A feed that receives the request and answers nothing until `release` is set."""

    def answer(seen: Seen) -> Reply:
        release.wait(300)
        return reply

    return answer


def feed_reply(n: int) -> Reply:
    return Reply(body=rss([(f"f{n}-{i}", f"Feed {n} story {i}", f"<p>Story {i} of feed {n}.</p>") for i in range(ITEMS)]),
                 headers={"ETag": f'"{n}"'})


def write_config(tmp_path: Path, server: FeedServer, paths: list[str], fetch: str = "") -> Path:
    feeds = "".join(f'\n[[feeds]]\nurl = "{server.url(p)}"\n' for p in paths)
    config = tmp_path / "storywatch.toml"
    config.write_text(f'[storage]\npath = "sw.db"\n[fetch]\ntimeout = 300.0\n{fetch}{feeds}', encoding="utf-8")
    return config


def start(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "worker", "--config", str(config), *args], cwd=PROJECT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def storywatch(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = start(config, *args)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def signalled_when(ready: Callable[[], bool], config: Path, *args: str, signum: int = signal.SIGINT,
                   release: threading.Event | None = None) -> tuple[int, str, str]:
    """Start `storywatch ARGS`, send it `signum` once `ready()` holds (it must still be running),
    and wait for its end: (exit status, stdout, stderr). `release` lets held feeds answer after."""
    proc = start(config, *args)
    try:
        wait_for(lambda: proc.poll() is not None or ready())
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if release is not None:
            release.set()
        proc.kill()
    return proc.returncode, out, err


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=60) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # the tables are not created yet
            return []


def count(db: Path, sql: str) -> int:
    rows = query(db, sql)
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def wait_for(predicate: Callable[[], bool], timeout: float = 120.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError("condition not met in time")


# ── poll and run --once ───────────────────────────────────────────────────────────────────────

FAST, HELD, CONNECTIONS = 4, 8, 3


def test_sigint_during_poll_reports_what_was_done_and_stopped_and_exits_130(
    tmp_path: Path, server: FeedServer, release: threading.Event
) -> None:
    paths = [f"/f{n}" for n in range(FAST + HELD)]
    for n, path in enumerate(paths):  # the fast feeds come first in the config, so in the queue
        server.routes[path] = feed_reply(n) if n < FAST else held(release, feed_reply(n))
    config = write_config(tmp_path, server, paths, f"max_connections = {CONNECTIONS}\nmax_per_host = {CONNECTIONS}\n")
    db = tmp_path / "sw.db"
    held_sql = f"SELECT url, next_poll_at, last_polled_at, error_count, last_error FROM feeds WHERE id > {FAST} ORDER BY id"

    before: list[tuple[object, ...]] = []

    def all_fetchers_wait() -> bool:
        """The fast feeds are stored, and every fetching thread waits on a held feed."""
        if (count(db, "SELECT count(*) FROM feeds WHERE last_success_at IS NOT NULL") == FAST
                and len(set(server.paths()) - set(paths[:FAST])) == CONNECTIONS):
            before[:] = query(db, held_sql)
            return True
        return False

    status, out, err = signalled_when(all_fetchers_wait, config, "poll", release=release)
    assert status == 130, (out, err)
    assert f"Interrupted: {FAST} of {FAST + HELD} feeds polled" in out, out
    assert f"{HELD} stopped" in out and f"{FAST * ITEMS} new items" in out and "0 failed" in out, out
    assert out.count("stopped ") >= HELD  # each stopped feed has its row
    assert "Traceback" not in err and "Aborted" not in out + err
    # What the polled feeds stored is kept, once; the stopped feeds are as they were.
    assert query(db, "SELECT count(*), count(DISTINCT identity) FROM items") == [(FAST * ITEMS, FAST * ITEMS)]
    assert query(db, held_sql) == before and len(before) == HELD
    assert all(polled is None and errors == 0 and error is None for _, _, polled, errors, error in before)
    assert count(db, "SELECT count(*) FROM fetches") == FAST

    health = storywatch(config, "health")
    assert health.returncode == 1, health
    assert health.stdout.startswith("unhealthy: no polling cycle has finished whole yet: the last one was interrupted"), health.stdout
    assert f"{FAST} of {FAST + HELD} feeds polled, {HELD} stopped" in health.stdout

    again = storywatch(config, "poll")  # the stopped feeds are due; the polled ones are not
    assert again.returncode == 0, again
    assert f"{HELD} feeds polled" in again.stdout and f"{HELD * ITEMS} new items" in again.stdout, again.stdout
    total = (FAST + HELD) * ITEMS
    assert query(db, "SELECT count(*), count(DISTINCT identity) FROM items") == [(total, total)]
    assert count(db, "SELECT count(*) FROM feeds WHERE error_count = 0 AND last_success_at IS NOT NULL") == FAST + HELD
    health = storywatch(config, "health")
    assert health.returncode == 0 and health.stdout.startswith("healthy: the last polling cycle finished"), health


def test_sigterm_during_run_once_exits_143_and_the_cycle_is_not_a_finished_one(
    tmp_path: Path, server: FeedServer, release: threading.Event
) -> None:
    server.routes["/a"] = feed_reply(0)
    server.routes["/held"] = held(release, feed_reply(1))
    config = write_config(tmp_path, server, ["/a", "/held"], "max_per_host = 2\n")
    db = tmp_path / "sw.db"
    status, out, err = signalled_when(
        lambda: count(db, "SELECT count(*) FROM items") == ITEMS and "/held" in server.paths(),
        config, "run", "--once", signum=signal.SIGTERM, release=release)
    assert status == 143, (out, err)
    assert "Interrupted: 1 of 2 feeds polled" in out and "1 stopped" in out, out
    assert query(db, "SELECT stopped, feeds FROM cycles") == [(1, 2)]
    assert count(db, "SELECT count(*) FROM digests") == 0  # nothing new starts after the stop
    health = storywatch(config, "health")
    assert health.returncode == 1 and "interrupted" in health.stdout, health

    again = storywatch(config, "run", "--once")
    assert again.returncode == 0, again
    assert storywatch(config, "health").stdout.startswith("healthy: the last polling cycle finished")


def test_poll_exits_3_when_a_feed_asked_for_failed_and_0_when_it_was_not_modified(
    tmp_path: Path, server: FeedServer
) -> None:
    def conditional(seen: Seen) -> Reply:
        if seen.headers.get("if-none-match") == '"v1"':
            return Reply(304, headers={"ETag": '"v1"'})
        return feed_reply(1)

    server.routes["/ok"] = conditional
    server.routes["/broken"] = Reply(500, b"oops")
    config = write_config(tmp_path, server, ["/ok", "/broken"])

    broken = storywatch(config, "poll", "--feed", server.url("/broken"))
    assert broken.returncode == 3, broken
    assert "error" in broken.stdout and "HTTP 500" in broken.stdout and "1 failed" in broken.stdout
    first = storywatch(config, "poll", "--feed", server.url("/ok"))
    assert first.returncode == 0 and "new" in first.stdout, first
    unchanged = storywatch(config, "poll", "--feed", server.url("/ok"))
    assert unchanged.returncode == 0 and "not_modified" in unchanged.stdout, unchanged
    everything = storywatch(config, "poll", "--force")
    assert everything.returncode == 3 and "1 not modified, 1 failed" in everything.stdout, everything
    unknown = storywatch(config, "poll", "--feed", server.url("/nowhere"))
    assert unknown.returncode == 1 and "no feed " in unknown.stderr and "feeds list" in unknown.stderr


def test_ctrl_c_at_a_confirmation_exits_130_and_removes_nothing(tmp_path: Path, server: FeedServer) -> None:
    server.routes["/a"] = feed_reply(0)
    config = write_config(tmp_path, server, [])
    assert storywatch(config, "feeds", "add", server.url("/a")).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "worker", "--config", str(config), "feeds", "remove", server.url("/a")],
                            cwd=PROJECT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    asked = bytearray()

    def read() -> None:
        assert proc.stdout is not None
        while byte := proc.stdout.read(1):
            asked.extend(byte)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        wait_for(lambda: b"[y/N]" in asked)  # waiting for an answer
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        proc.kill()
        reader.join(timeout=60)
    assert proc.returncode == 130
    assert storywatch(config, "feeds", "list").stdout.count(server.url("/a")) == 1  # still there
    no_answer = subprocess.run([sys.executable, "-m", "worker", "--config", str(config), "feeds", "remove",
                                server.url("/a")], cwd=PROJECT, stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    assert no_answer.returncode == 1  # end of input: no answer, nothing done


# ── backfill ──────────────────────────────────────────────────────────────────────────────────

WORDS = ("harbour crane tram bakery strike river ferry bridge council budget school election festival "
         "museum railway airport hospital market weather drought harvest factory union court").split()


def history(folder: Path, files: int, per_file: int) -> int:
    """JSON Lines files of distinct items spread over a year; returns how many."""
    rng = random.Random(16)
    folder.mkdir(parents=True)
    start = dt.datetime(2025, 1, 1, tzinfo=UTC)
    for f in range(files):
        lines = []
        for n in range(per_file):
            text = " ".join(rng.choice(WORDS) for _ in range(40)) + f" Item {f}-{n}."
            when = start + dt.timedelta(minutes=rng.randrange(525_600))
            lines.append(json.dumps({"id": f"{f}-{n}", "title": f"Report {f}-{n} on the {rng.choice(WORDS)}",
                                     "text": text, "published": when.isoformat(), "source": f"site{f}"}))
        (folder / f"site{f}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files * per_file


def backfill_config(tmp_path: Path) -> Path:
    config = tmp_path / "storywatch.toml"
    config.write_text('[storage]\npath = "sw.db"\n[fetch]\ntimeout = 300.0\n', encoding="utf-8")
    return config


def interrupt_while_storing(config: Path, folder: Path, db: Path, stored_sql: str) -> tuple[str, str]:
    """`backfill FOLDER --json` stopped by SIGINT once `stored_sql` counts an item; its stdout
    and stderr (exit status 130 checked)."""
    proc = start(config, "backfill", str(folder), "--json")
    try:
        wait_for(lambda: proc.poll() is not None or count(db, stored_sql) > 0, every=0.01)
        # Freeze it where it is (a batch may be half written), queue the SIGINT, and let it go on:
        # the signal is handled before it runs any further.
        os.kill(proc.pid, signal.SIGSTOP)
        assert proc.poll() is None, "the backfill should still be storing"
        os.kill(proc.pid, signal.SIGINT)
        os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 130, (out, err)
    return out, err


def test_sigint_while_backfill_stores_finishes_the_batch_reports_and_a_rerun_stores_the_rest(tmp_path: Path) -> None:
    total = history(tmp_path / "history", files=4, per_file=1000)  # 8 batches of 500
    config = backfill_config(tmp_path)
    db = tmp_path / "sw.db"
    out, err = interrupt_while_storing(config, tmp_path / "history", db, "SELECT count(*) FROM items")
    summary = json.loads(out)
    stored = count(db, "SELECT count(*) FROM items")
    assert summary["interrupted"] is True and summary["sources_not_read"] == []
    assert summary["items_new"] + summary["exact_copies"] + summary["near_duplicates"] == stored
    assert 0 < stored < total and stored % 500 == 0, stored  # whole batches: the one in flight finished
    assert summary["items_not_stored"] == total - stored
    assert "Traceback" not in err and "Aborted" not in err

    rest = storywatch(config, "backfill", str(tmp_path / "history"), "--json")
    assert rest.returncode == 0, rest
    again = json.loads(rest.stdout)
    assert again["interrupted"] is False and again["items_not_stored"] == 0
    assert again["already_stored"] == stored and again["items_new"] + again["exact_copies"] + again["near_duplicates"] == total - stored
    assert query(db, "SELECT count(*), count(DISTINCT identity) FROM items") == [(total, total)]


def test_sigint_while_backfill_reads_stores_nothing_and_names_what_was_not_read(
    tmp_path: Path, server: FeedServer, release: threading.Event
) -> None:
    total = history(tmp_path / "history", files=1, per_file=10)
    server.routes["/archive"] = held(release, feed_reply(7))
    config = backfill_config(tmp_path)
    db = tmp_path / "sw.db"
    status, out, err = signalled_when(lambda: "/archive" in server.paths(), config, "backfill",
                                      str(tmp_path / "history"), server.url("/archive"), release=release)
    assert status == 130, (out, err)
    assert f"Interrupted: {total} items not stored, 1 source not read (run the same command again" in out, out
    assert f"Not read (1):\n  {server.url('/archive')}" in out, out
    assert "Failed" not in out and "Traceback" not in err and "Aborted" not in out + err
    assert "2/2 sources read" not in err, err  # the progress counts what was read, not what was passed over
    assert count(db, "SELECT count(*) FROM items") == 0

    rest = storywatch(config, "backfill", str(tmp_path / "history"), server.url("/archive"), "--json")
    assert rest.returncode == 0, rest
    assert json.loads(rest.stdout)["items_new"] == total + ITEMS
    assert query(db, "SELECT count(*), count(DISTINCT identity) FROM items") == [(total + ITEMS, total + ITEMS)]


def test_a_backfill_stopped_by_sigint_and_run_again_decides_the_follow_ups_of_one_run(
    seeded_config: Path, tmp_path: Path
) -> None:
    korea_history(tmp_path / "history", 1200)  # three batches of at most 500
    once = storywatch(seeded_config, "backfill", str(tmp_path / "history"), "--json")
    assert once.returncode == 0, once
    expected = followups(seeded_config.parent / "var" / "storywatch.db")
    assert len({s for _, s in expected}) == 3, expected

    folder = tmp_path / "stopped"
    shutil.copytree(seeded_config.parent / "seeds", folder / "seeds")
    config = folder / "storywatch.toml"
    config.write_text(seeded_config.read_text(encoding="utf-8"), encoding="utf-8")
    db = folder / "var" / "storywatch.db"
    same_secret(seeded_config.parent / "var" / "storywatch.db", db)
    out, _ = interrupt_while_storing(config, tmp_path / "history", db,
                                     "SELECT count(*) FROM items WHERE source = 'backfill'")
    stored = count(db, "SELECT count(*) FROM items WHERE source = 'backfill'")
    assert 0 < stored < 1200 and json.loads(out)["interrupted"] is True

    rest = storywatch(config, "backfill", str(tmp_path / "history"), "--json")
    assert rest.returncode == 0, rest
    assert json.loads(rest.stdout)["already_stored"] == stored
    assert followups(db) == expected
