"""The worker as a real process: started, stopped with SIGTERM, killed with SIGKILL and restarted."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from worker import schedule
from tests.conftest import PROJECT, World
from tests.feedserver import FeedServer, Reply, rss, trickle


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def write_config(tmp_path: Path, server: FeedServer, paths: list[str]) -> Path:
    feeds = "".join(f'\n[[feeds]]\nurl = "{server.url(p)}"\n' for p in paths)
    config = tmp_path / "storywatch.toml"
    config.write_text(textwrap.dedent(f'[storage]\npath = "sw.db"\n[fetch]\ntimeout = 20.0\nmax_per_host = 2\n{feeds}'))
    return config


def start(config: Path, *args: str, tag: str = "") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "--config", str(config), *args],
        cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "STORYWATCH_TEST_TAG": tag},
    )


def tagged_processes(tag: str) -> list[int]:
    """Processes (the worker and anything it started) whose environment carries `tag`."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"STORYWATCH_TEST_TAG={tag}".encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            pass
    return found


def count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db, timeout=30) as conn:
        try:
            return int(conn.execute(sql).fetchone()[0])
        except sqlite3.OperationalError:  # tables not created yet
            return 0


def wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_run_polls_then_exits_zero_on_sigterm(tmp_path: Path, server: FeedServer) -> None:
    server.routes["/a"] = Reply(body=rss([("1", "One", "x"), ("2", "Two", "y")]))
    config = write_config(tmp_path, server, ["/a"])
    proc = start(config, "run")
    try:
        wait_for(lambda: count(tmp_path / "sw.db", "SELECT count(*) FROM items") == 2)
        proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert time.monotonic() - stopped < 30
    assert "Worker started" in err and "Stopping on SIGTERM" in err and "Worker stopped" in err
    assert "Traceback" not in err


def test_sigterm_cuts_a_slow_fetch_short_and_does_not_blame_the_feed(tmp_path: Path, server: FeedServer) -> None:
    body = rss([("1", "One", "x")])
    server.routes["/slow"] = Reply(body=trickle(body, every=0.5), content_length=len(body))
    config = write_config(tmp_path, server, ["/slow"])
    proc = start(config, "run")
    try:
        wait_for(lambda: "/slow" in server.paths())
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert time.monotonic() - stopped < 5
    assert count(tmp_path / "sw.db", "SELECT count(*) FROM feeds WHERE error_count = 0 AND last_error IS NULL") == 1


def test_run_once_does_one_cycle_and_exits(tmp_path: Path, server: FeedServer) -> None:
    server.routes["/a"] = Reply(body=rss([("1", "One", "x")]))
    server.routes["/b"] = Reply(500)
    proc = start(write_config(tmp_path, server, ["/a", "/b"]), "run", "--once")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "2 feeds polled" in out and "1 new item," in out and "1 failed" in out


FEEDS = 40
ITEMS = 3


def test_sigkill_in_the_middle_of_a_cycle_loses_and_duplicates_nothing(tmp_path: Path, server: FeedServer) -> None:
    def slow_feed(n: int) -> Reply:
        time.sleep(0.05)
        return Reply(body=rss([(f"f{n}-{i}", f"Feed {n} story {i}", f"<p>Body {n}.{i}</p>") for i in range(ITEMS)]),
                     headers={"ETag": f'"{n}"'})

    paths = [f"/f{n}" for n in range(FEEDS)]
    for n, path in enumerate(paths):
        server.routes[path] = lambda seen, n=n: slow_feed(n)
    config = write_config(tmp_path, server, paths)
    db = tmp_path / "sw.db"

    for kill_at in (ITEMS * 5, ITEMS * 20):  # two kills, at different points of the cycle
        proc = start(config, "run", "--once")
        wait_for(lambda: count(db, "SELECT count(*) FROM items") >= kill_at or proc.poll() is not None)
        proc.kill()
        proc.wait()
    stored_before_restart = count(db, "SELECT count(*) FROM items")
    assert 0 < stored_before_restart < FEEDS * ITEMS, "the kills should land mid-cycle"

    proc = start(config, "run", "--once")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    proc = start(config, "poll", "--force")  # everything again: conditional requests, nothing new
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*), count(DISTINCT identity) FROM items").fetchone() == (FEEDS * ITEMS, FEEDS * ITEMS)
        per_feed = conn.execute(
            "SELECT f.id, f.etag, f.last_success_at, f.next_poll_at, count(i.id) FROM feeds f "
            "LEFT JOIN items i ON i.feed_id = f.id GROUP BY f.id"
        ).fetchall()
        assert len(per_feed) == FEEDS
        for feed_id, etag, last_success, next_poll, items in per_feed:
            assert items == ITEMS and etag and last_success and next_poll, (feed_id, etag, last_success, next_poll, items)
        assert conn.execute("SELECT count(*) FROM fetches WHERE kind = 'new' AND new_items > 0").fetchone()[0] == FEEDS


def test_a_killed_worker_leaves_no_processes_behind(tmp_path: Path, server: FeedServer) -> None:
    import uuid

    tag = uuid.uuid4().hex
    body = rss([("1", "One", "x")])
    server.routes["/slow"] = Reply(body=trickle(body, every=0.5), content_length=len(body))
    server.routes["/a"] = Reply(body=rss([("2", "Two", "y")]))
    config = write_config(tmp_path, server, ["/a", "/slow"])
    proc = start(config, "run", tag=tag)
    wait_for(lambda: count(tmp_path / "sw.db", "SELECT count(*) FROM items") == 1)
    assert len(tagged_processes(tag)) >= 3, "the worker should have started its parsing processes"
    proc.kill()
    proc.wait()
    wait_for(lambda: tagged_processes(tag) == [], timeout=10)


def test_run_once_and_the_daemons_tick_do_the_same_cycle(tmp_path: Path, world: Callable[..., World]) -> None:
    """`run --once` writes what a daemon's cycle writes: items, the storylines' Atom feeds, the
    digest when due and the metrics file (it used to skip the Atom feeds)."""
    extra = textwrap.dedent("""
        [digest]
        atom = true
        output_dir = "out"
        [monitoring]
        metrics_file = "out/metrics.prom"
        [[storylines]]
        id = "tower"
        title = "The friendship tower"
        keywords = ["friendship tower"]
    """)
    outputs = []
    for entry_point in (schedule.run_once, lambda rt: schedule._poll_job(rt, 60.0)):
        w = world("/a", extra=extra)
        w.server.routes["/a"] = Reply(body=rss([("1", "Wreaths at the Friendship Tower", "<p>Wreaths were laid.</p>")]))
        entry_point(w.rt)
        folder = w.rt.settings.digest.output_dir
        outputs.append(({p.name for p in folder.iterdir()}, len(w.items()),
                        count(w.rt.settings.storage.path, "SELECT count(*) FROM cycles")))
        shutil.rmtree(folder)
    assert outputs[0] == outputs[1]
    assert {"tower.atom", "metrics.prom", "2026-11-23.md"} <= outputs[0][0] and outputs[0][1:] == (1, 1)


def test_the_daemons_first_digest_comes_after_its_first_poll(tmp_path: Path, server: FeedServer) -> None:
    """A worker started on a fresh store writes its first digest (due at once) from what its first
    cycle polled, not from the seeds alone just before it (it used to lock in a 'nothing new' day)."""
    server.routes["/a"] = Reply(body=rss([("1", "Wreaths at the Friendship Tower", "<p>Wreaths were laid.</p>")]))
    config = write_config(tmp_path, server, ["/a"])
    with config.open("a") as f:
        f.write('[digest]\noutput_dir = "out"\n')
    proc = start(config, "run")
    try:
        wait_for(lambda: count(tmp_path / "sw.db", "SELECT count(*) FROM digests") > 0, timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    [digest] = list((tmp_path / "out").glob("*.md"))
    assert "Wreaths at the Friendship Tower" in digest.read_text(encoding="utf-8")
