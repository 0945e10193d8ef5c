"""The hostile-feed suite: every case of tests/hostile/hostile.py is served on 127.0.0.1 beside a
good feed and polled in one cycle by the real worker (`storywatch run --once`, a separate process
with its parsing processes). Each case must end as its exact expected outcome on its feed row,
the good feed must be read in the same cycle, the worker must exit 0 with bounded memory, and a
second poll must still work. Then the digest is rendered and must carry nothing dangerous.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.feedserver import FeedServer, Reply, rss
from tests.hostile.hostile import CASES, GOOD_ITEMS, SECRET, UNSAFE_MARKERS, routes

PEAK_RSS_LIMIT_MIB = 600  # the worker and its parsing processes together, 10,000 entries included
EMPTIED = [(f"kept-{n}", f"Story that must be kept {n}", f"<p>Kept text {n}.</p>") for n in range(4)]


@dataclass
class HostileRun:
    db: sqlite3.Connection
    server: FeedServer
    outputs: list[str]  # every stdout and stderr of the worker's processes
    peak_rss_mib: float
    digests: dict[str, str]

    def feed(self, path: str) -> sqlite3.Row:
        row = self.db.execute("SELECT * FROM feeds WHERE config_url = ?", [self.server.url(path)]).fetchone()
        assert row is not None, path
        return row


def _tree_rss_kib(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(k) for k in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            pass
    return total


def worker(config: Path, *args: str, timeout: float = 240) -> tuple[int, str, str, float]:
    """Run `storywatch -v --config CONFIG ARGS` to its end; (status, stdout, stderr, peak RSS MiB)."""
    proc = subprocess.Popen([sys.executable, "-m", "worker", "-v", "--config", str(config), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_kib(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate(timeout=timeout)
    sampler.join()
    return proc.returncode, out, err, peak[0] / 1024


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileRun]:
    folder = tmp_path_factory.mktemp("hostile")
    with FeedServer() as server:
        server.routes.update(routes(folder, server.port))
        server.routes["/emptied"] = Reply(body=rss(EMPTIED))
        paths = [f"/{case.name}" for case in CASES] + ["/good", "/emptied"]
        feeds = "".join(f'[[feeds]]\nurl = "{server.url(p)}"\nname = "{p[1:]}"\n' for p in paths)
        config = folder / "storywatch.toml"
        config.write_text(f'[storage]\npath = "sw.db"\n[fetch]\ntimeout = 4.0\nparse_processes = 2\n'
                          f'max_connections = 32\n[digest]\noutput_dir = "digests"\nhtml = true\n{feeds}')
        outputs: list[str] = []
        status, out, err, peak = worker(config, "run", "--once")
        outputs += [out, err]
        assert status == 0, err[-3000:]
        server.routes["/emptied"] = Reply(body=rss([]))  # the same feed, now answering 200 with no items
        status, out, err, peak2 = worker(config, "poll", "--feed", server.url("/emptied"))
        outputs += [out, err]
        assert status == 0, err[-3000:]
        digests = {}
        for fmt in ("md", "html", "text", "email"):
            status, out, err, _ = worker(config, "digest", "--since", "30d", "--stdout", "--format", fmt)
            assert status == 0, err[-3000:]
            digests[fmt], outputs = out, outputs + [out, err]
        db = sqlite3.connect(folder / "sw.db")
        db.row_factory = sqlite3.Row
        yield HostileRun(db, server, outputs, max(peak, peak2), digests)
        db.close()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_hostile_feed_ends_exactly_as_expected(hostile: HostileRun, case: object) -> None:
    from tests.hostile.hostile import Case

    assert isinstance(case, Case)
    feed = hostile.feed(f"/{case.name}")
    if case.error is not None:
        assert case.error in (feed["last_error"] or ""), feed["last_error"]
        assert feed["error_count"] == 1 and feed["next_poll_at"] is not None
        assert hostile.db.execute("SELECT count(*) FROM items WHERE feed_id = ?", [feed["id"]]).fetchone()[0] == 0
    else:
        assert feed["last_error"] is None and feed["error_count"] == 0, feed["last_error"]
        assert case.check is not None
        case.check(hostile.db, feed["id"])


def test_the_good_feed_is_read_in_the_same_cycle_and_the_worker_stays_small(hostile: HostileRun) -> None:
    good = hostile.feed("/good")
    assert good["last_error"] is None and good["last_status"] == 200
    stored = {r[0] for r in hostile.db.execute("SELECT title FROM items WHERE feed_id = ?", [good["id"]])}
    assert stored == {title for _, title, _ in GOOD_ITEMS}
    assert hostile.peak_rss_mib < PEAK_RSS_LIMIT_MIB, f"peak RSS {hostile.peak_rss_mib:.0f} MiB"
    cycle = hostile.db.execute("SELECT * FROM cycles ORDER BY id DESC LIMIT 1").fetchone()
    assert cycle is not None


def test_a_feed_answering_an_empty_feed_after_items_keeps_them(hostile: HostileRun) -> None:
    feed = hostile.feed("/emptied")
    assert feed["last_error"] is None and feed["error_count"] == 0
    kept = [r[0] for r in hostile.db.execute("SELECT title FROM items WHERE feed_id = ? ORDER BY id", [feed["id"]])]
    assert kept == [title for _, title, _ in EMPTIED]
    statuses = [r[0] for r in hostile.db.execute("SELECT status FROM fetches WHERE feed_id = ?", [feed["id"]])]
    assert statuses == [200, 200]


def test_no_external_entity_is_read_or_fetched(hostile: HostileRun) -> None:
    dump = "\n".join(hostile.db.iterdump())
    assert SECRET not in dump
    assert all(SECRET not in text for text in hostile.outputs)
    assert "/xxe-fetch" not in hostile.server.paths()
    assert all(not p.startswith("/real-feed.xml") for p in hostile.server.paths())  # advertised, not followed


def test_the_digest_carries_no_script_javascript_link_or_tracking_pixel(hostile: HostileRun) -> None:
    for fmt, text in hostile.digests.items():
        assert "Unsafe" in text and "Second unsafe story" in text, fmt  # the items are in it...
        lowered = text.lower()
        for marker in UNSAFE_MARKERS:  # ...without anything dangerous
            assert marker not in lowered, (fmt, marker)


def test_every_error_is_one_clear_line_in_the_log(hostile: HostileRun) -> None:
    log = hostile.outputs[1]
    for case in CASES:
        if case.error:
            lines = [line for line in log.splitlines() if "Feed failed" in line and f"/{case.name}:" in line]
            assert len(lines) == 1, (case.name, lines)
    assert "Traceback" not in "".join(hostile.outputs)
