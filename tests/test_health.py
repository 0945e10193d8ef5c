"""`storywatch health` and `storywatch metrics`: real stores, a real feed server, the real CLI."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker import store
from worker.health import Family, Health, render_metrics
from worker.clock import utc_now
from tests.conftest import Cli
from tests.feedserver import FeedServer, Reply, rss


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        s.routes["/good"] = Reply(body=rss([("1", "One", "<p>x</p>"), ("2", "Two", "<p>y</p>")]))
        s.routes["/broken"] = Reply(500)
        yield s


@pytest.fixture
def cli(tmp_path: Path, server: FeedServer) -> Cli:
    config = tmp_path / "storywatch.toml"
    config.write_text(
        '[storage]\npath = "sw.db"\n[fetch]\nparse_processes = 1\n[monitoring]\nmetrics_file = "prom/storywatch.prom"\n'
        f'[[feeds]]\nurl = "{server.url("/good")}"\n[[feeds]]\nurl = "{server.url("/broken")}"\n'
        '[[storylines]]\nid = "friendship"\ntitle = "Friendship"\nkeywords = ["Friendship Year"]\n'
    )
    return Cli(config)


# ── health ────────────────────────────────────────────────────────────────────────────────


def test_healthy_after_a_cycle(cli: Cli) -> None:
    cli("run", "--once")
    result = cli("health")
    assert re.fullmatch(r"healthy: the last polling cycle finished \d+s ago in [\d.]+ s: 2 feeds, 2 new items, "
                        r"1 failed\n", result.output)


def test_unhealthy_without_a_store_or_without_a_cycle(cli: Cli) -> None:
    result = cli("health", ok=False)
    assert result.exit_code == 1 and result.output.startswith("unhealthy: no store at ")
    cli("init")
    result = cli("health", ok=False)
    assert result.exit_code == 1
    assert result.output == "unhealthy: no polling cycle recorded yet (is `storywatch run` running?)\n"


def test_unhealthy_when_the_last_cycle_is_older_than_three_intervals(cli: Cli, tmp_path: Path) -> None:
    db = store.open_store(tmp_path / "sw.db")
    now = utc_now()
    finished = now - dt.timedelta(minutes=4)  # the daemon ticks every minute: 3 intervals = 3 min
    store.record_cycle(db, finished - dt.timedelta(seconds=2), finished, 2.0, interval=60.0, feeds=2,
                       new_items=0, followups=0, errors=0)
    result = cli("health", ok=False)
    assert result.exit_code == 1
    assert re.fullmatch(r"unhealthy: the last polling cycle finished 4m ago, more than 3m \(.* UTC\)\n", result.output)
    assert cli("health", "--max-age", "10m").output.startswith("healthy: ")
    # A cycle that took 2 minutes makes an interval 2 minutes long: 4 minutes ago is within 3 of them.
    store.record_cycle(db, finished - dt.timedelta(minutes=2), finished, 120.0, interval=60.0, feeds=2,
                       new_items=0, followups=0, errors=0)
    assert cli("health").output.startswith("healthy: ")


def test_an_interrupted_cycle_is_never_taken_for_a_finished_one(cli: Cli, tmp_path: Path) -> None:
    db = store.open_store(tmp_path / "sw.db")
    now = utc_now()
    store.record_cycle(db, now - dt.timedelta(minutes=5), now - dt.timedelta(minutes=5), 1.0, interval=60.0, feeds=34,
                       new_items=0, followups=0, errors=0, stopped=30)
    result = cli("health", ok=False)
    assert result.exit_code == 1
    assert result.output == ("unhealthy: no polling cycle has finished whole yet: the last one was interrupted 5m ago "
                             "(4 of 34 feeds polled, 30 stopped or deferred)\n")
    # A whole cycle, then an interrupted one (a restart mid-cycle): judged on the whole one.
    store.record_cycle(db, now - dt.timedelta(minutes=2), now - dt.timedelta(minutes=2), 3.0, interval=60.0, feeds=34,
                       new_items=5, followups=0, errors=1)
    store.record_cycle(db, now - dt.timedelta(seconds=20), now - dt.timedelta(seconds=10), 10.0, interval=60.0,
                       feeds=34, new_items=2, followups=0, errors=0, stopped=20)
    assert re.fullmatch(r"healthy: the last whole polling cycle finished 2m ago in 3.0 s: 34 feeds, 5 new items, 1 failed; "
                        r"the one after it was interrupted \d+s ago \(14 of 34 feeds polled, 20 stopped or deferred\)\n",
                        cli("health").output)
    result = cli("health", "--max-age", "1m", ok=False)
    assert result.exit_code == 1 and result.output.startswith("unhealthy: the last whole polling cycle finished 2m ago")
    metrics = parse_exposition(cli("metrics").output)
    assert metrics["storywatch_last_cycle_stopped"][""] == 20
    assert abs(metrics["storywatch_last_whole_cycle_timestamp_seconds"][""] - (now - dt.timedelta(minutes=2)).timestamp()) < 1
    # Pruning keeps the last cycle and the last whole one, however old.
    assert store.prune_cycles(db, now) == 1
    assert store.last_cycle(db, whole=True)["new_items"] == 5  # type: ignore[index]


def test_unhealthy_when_the_store_is_unreadable(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "sw.db").write_bytes(b"this is not an SQLite database, " * 64)
    result = cli("health", ok=False)
    assert result.exit_code == 1
    assert result.output.startswith("unhealthy: the store cannot be used: ") and result.output.count("\n") == 1


def test_each_problem_is_a_line_of_its_own_starting_unhealthy() -> None:
    """The first line is always the verdict; an unconfirmed digest is a problem even while the
    worker polls on (the end-to-end case, with a killed sender: tests/test_digest_email.py)."""
    note = "2026-11-23 is unconfirmed: the worker stopped while sending it (…)"
    assert str(Health(True, "the last polling cycle finished 5s ago")) == "healthy: the last polling cycle finished 5s ago"
    assert str(Health(True, "the last polling cycle finished 5s ago", (note,))) == (
        f"unhealthy: the digest of {note}\nthe last polling cycle finished 5s ago")
    assert str(Health(False, "no polling cycle recorded yet", (note,))) == (
        f"unhealthy: the digest of {note}\nunhealthy: no polling cycle recorded yet")
    assert not Health(True, "fine", (note,)).ok and Health(True, "fine").ok


def test_the_cycle_log_is_pruned_but_keeps_the_last_cycle(tmp_path: Path) -> None:
    db = store.open_store(tmp_path / "sw.db")
    old = utc_now() - dt.timedelta(days=40)
    for minutes in (0, 1):
        at = old + dt.timedelta(minutes=minutes)
        store.record_cycle(db, at, at, 0.1, interval=60, feeds=0, new_items=0, followups=0, errors=0)
    assert store.prune_cycles(db, utc_now() - dt.timedelta(days=30)) == 1
    last = store.last_cycle(db)
    assert last is not None and last["finished_at"] == old + dt.timedelta(minutes=1)


# ── metrics ───────────────────────────────────────────────────────────────────────────────

# The text exposition format, version 0.0.4
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r"[+-]?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+|NaN|Inf)"
SAMPLE = re.compile(rf"^({NAME})(?:\{{({LABEL}(?:,{LABEL})*)?\}})? ({VALUE})(?: -?\d+)?$")
HELP = re.compile(rf"^# HELP ({NAME}) (.*)$")
TYPE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")


def parse_exposition(text: str) -> dict[str, dict[str, float]]:
    """{family: {labels: value}}, asserting every line follows the grammar and every family has
    its HELP and TYPE lines before its samples, each family in one block."""
    assert text.endswith("\n")
    families: dict[str, dict[str, float]] = {}
    helped: set[str] = set()
    typed: set[str] = set()
    current = ""
    for line in text.splitlines():
        if m := HELP.match(line):
            assert m.group(1) not in helped, f"HELP twice: {line}"
            helped.add(current := m.group(1))
        elif m := TYPE.match(line):
            assert m.group(1) == current and m.group(1) not in typed, f"TYPE out of place: {line}"
            typed.add(m.group(1))
            families[current] = {}
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            assert m.group(1) == current and current in typed, f"sample outside its family: {line}"
            assert (m.group(2) or "") not in families[current], f"duplicate sample: {line}"
            families[current][m.group(2) or ""] = float(m.group(3))
    assert helped == typed
    return families


def test_metrics_are_valid_prometheus_text_with_the_worker_state(cli: Cli, tmp_path: Path) -> None:
    cli("run", "--once")
    text = cli("metrics").output
    metrics = parse_exposition(text)
    assert metrics["storywatch_feeds"]['state="ok"'] == 1
    assert metrics["storywatch_feeds"]['state="failing"'] == 1
    assert metrics["storywatch_feeds"]['state="disabled"'] == 0
    assert metrics["storywatch_items"]['source="feed"'] == 2
    assert metrics["storywatch_storyline_followups"] == {'storyline="friendship"': 0}
    assert metrics["storywatch_fetch_errors"]['kind="http"'] == 1
    assert metrics["storywatch_fetch_errors"]['kind="timeout"'] == 0
    assert metrics["storywatch_fetches"][""] == 2
    assert metrics["storywatch_digests"]['status="written"'] == 1
    assert metrics["storywatch_digests"]['status="sent"'] == 0
    assert metrics["storywatch_last_cycle_feeds"][""] == 2
    assert metrics["storywatch_last_cycle_errors"][""] == 1
    assert 0 <= metrics["storywatch_last_cycle_duration_seconds"][""] < 60
    assert abs(metrics["storywatch_last_cycle_timestamp_seconds"][""] - utc_now().timestamp()) < 120
    # [monitoring] metrics_file: written after the cycle, readable by node_exporter's user
    written = tmp_path / "prom" / "storywatch.prom"
    assert parse_exposition(written.read_text()).keys() == metrics.keys()
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    assert [p.name for p in written.parent.iterdir()] == ["storywatch.prom"]  # no temporary file left


def test_metrics_escape_label_values_and_start_empty(cli: Cli, tmp_path: Path) -> None:
    text = render_metrics([Family("x_total", "counter", "A \\ help\nline", [({"v": 'a"b\\c\nd'}, 1.5)])])
    assert text == '# HELP x_total A \\\\ help\\nline\n# TYPE x_total counter\nx_total{v="a\\"b\\\\c\\nd"} 1.5\n'
    assert parse_exposition(text) == {"x_total": {'v="a\\"b\\\\c\\nd"': 1.5}}
    cli("init")
    metrics = parse_exposition(cli("metrics").output)  # no cycle yet
    assert "storywatch_last_cycle_timestamp_seconds" not in metrics
    assert metrics["storywatch_feeds"]['state="not_polled"'] == 2


# ── a damaged store ──────────────────────────────────────────────────────────────────────


def test_a_damaged_store_is_met_with_one_line_that_says_what_to_do(tmp_path: Path) -> None:
    """Garbage written over the middle of the store: `health` (a bounded quick check of every
    page) says unhealthy, and the commands that read the damaged pages say it in one line with
    what to do, instead of a DatabaseError traceback (status) or "healthy" (health)."""
    config = tmp_path / "storywatch.toml"
    config.write_text('[storage]\npath = "sw.db"\n[fetch]\nparse_processes = 1\n')
    words = "reunification summit delegation harvest railway ".split()
    entries = [(str(i), f"Story {i}", "<p>" + " ".join(words[(i + j) % 5] + str(j) for j in range(300)) + "</p>")
               for i in range(400)]
    archive = tmp_path / "archive.xml"
    archive.write_bytes(rss(entries))
    cli = Cli(config)
    cli("backfill", str(archive))
    cli("run", "--once")
    assert cli("health").output.startswith("healthy: ")
    db_file = tmp_path / "sw.db"
    with sqlite3.connect(db_file) as conn:  # everything in the main file, none in the WAL
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db_file.stat().st_size
    assert size > 1 << 20
    with db_file.open("r+b") as f:  # the middle half of the file, the header and schema left whole
        f.seek(size // 4)
        f.write(bytes([0xA5]) * (size // 2))
    # (`digest` alone would write today's kept digest again: its data is kept apart, whole)
    for args in (["health"], ["status"], ["run", "--once"], ["digest", "--since", "2000-01-01", "--include-backfill"]):
        result = cli(*args, ok=False)
        assert result.exit_code == 1, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "sw.db is damaged" in lines[0] and ".recover" in lines[0], (args, result.output)
        assert "keep the damaged file" in lines[0] and "Only if" in lines[0], lines[0]  # never a blind overwrite
        assert "with its -wal and -shm files" in lines[0], lines[0]  # a journal left behind would be applied


def test_the_damaged_store_advice_can_be_pasted_into_a_shell_whatever_the_path() -> None:
    failure = store.store_failure(Path("my data/sw.db"), sqlite3.DatabaseError("database disk image is malformed"))
    assert "sqlite3 'my data/sw.db' .recover | sqlite3 'my data/sw.db.recovered'" in str(failure.hint), failure.hint


def test_a_read_only_store_is_one_line_that_says_whose_write_failed(tmp_path: Path) -> None:
    """A store file of mode 0444 (restored from a backup as another user, say): a command that
    writes says so in one line with what to change, no traceback. Root writes through file modes, so
    as root the command runs without the capability that lets it (setpriv)."""
    import os
    import shutil
    import subprocess
    import sys

    config = tmp_path / "storywatch.toml"
    config.write_text('[storage]\npath = "sw.db"\n[fetch]\nparse_processes = 1\n')
    Cli(config)("init")
    (tmp_path / "sw.db").chmod(0o444)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to run this test as root"
        prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    status = subprocess.run([*prefix, sys.executable, "-m", "worker", "--config", str(config), "status"],
                            capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent.parent)
    assert "Traceback" not in status.stderr  # reading may work; writing must say why it cannot
    for args in (["run", "--once"], ["feeds", "add", "http://127.0.0.1:9/feed", "--no-check"]):
        done = subprocess.run([*prefix, sys.executable, "-m", "worker", "--config", str(config), *args],
                              capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent.parent)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert done.stderr.strip().splitlines()[-1].startswith(
            f"Error: cannot write the store at {tmp_path / 'sw.db'}: attempt to write a readonly database "
            "(the file, its -wal and -shm files and its folder must be writable by user id"), done.stderr
        assert "Traceback" not in done.stderr


def _as_a_user(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    """`storywatch ARGS` in a process of its own; as root, without the capabilities that read and
    write through file modes (setpriv), so modes apply as to any user."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to run this test as root"
        prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    return subprocess.run([*prefix, sys.executable, "-m", "worker", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent.parent)


@pytest.mark.parametrize("case", ["read-only folder, existing store", "read-only folder, no store yet",
                                  "file mode 000", "a folder", "a loop of links"])
def test_a_store_that_cannot_be_opened_says_why_in_one_line(tmp_path: Path, case: str) -> None:
    """SQLite says only "unable to open database file" (or "attempt to write a readonly
    database"): `status` and `health` say which cause it is, in one line, and create nothing.
    A read-only folder fails even a read of an existing store: SQLite writes its journal there."""
    folder = tmp_path / "data"
    folder.mkdir()
    config = tmp_path / "storywatch.toml"
    config.write_text('[storage]\npath = "data/sw.db"\n[fetch]\nparse_processes = 1\n')
    store_file = folder / "sw.db"
    if case in ("read-only folder, existing store", "file mode 000"):
        Cli(config)("init")
        for name in ("sw.db-wal", "sw.db-shm"):
            (folder / name).unlink(missing_ok=True)
    expected = {
        "read-only folder, existing store": "its folder must be writable by user id",
        "read-only folder, no store yet": f"its folder {folder} is not writable by user id",
        "file mode 000": "the file is not readable and writable by user id",
        "a folder": "it is a folder, not a file",
        "a loop of links": "it is a link to nothing (or a loop of links)",
    }[case]
    if case == "a folder":
        store_file.mkdir()
    if case == "a loop of links":
        store_file.symlink_to(folder / "other.db")
        (folder / "other.db").symlink_to(store_file)
    if case == "file mode 000":
        store_file.chmod(0o000)
    before = sorted(p.name for p in folder.iterdir())
    if case.startswith("read-only folder"):
        folder.chmod(0o555)
    try:
        for args in (["status"], ["health"]):
            done = _as_a_user(*args, config=config)
            said = (done.stdout + done.stderr).strip().splitlines()
            if args == ["health"] and case == "read-only folder, no store yet":
                expected = f"unhealthy: no store at {store_file}"
            assert done.returncode == 1 and len(said) == 1 and expected in said[0], (args, said)
    finally:
        folder.chmod(0o755)
        if case == "file mode 000":
            store_file.chmod(0o644)
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing made, nothing lost


def test_the_daemon_logs_a_damaged_store_met_by_its_jobs_in_one_line_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Damage only the digest reads: the daemon's tick logs "Digest failed" (not a failed poll),
    still writes the metrics file, and its scheduled digest job logs one line, no traceback.
    (`run --once` exits 1 with what to do: test_a_damaged_store_is_met_with_one_line_that_says_what_to_do.)"""
    from loguru import logger

    from worker import pipeline, schedule, startup
    from worker.config import load_settings
    from worker.digest import daily

    config = tmp_path / "storywatch.toml"
    metrics = tmp_path / "metrics.prom"
    config.write_text(f'[storage]\npath = "sw.db"\n[fetch]\nparse_processes = 1\n[monitoring]\nmetrics_file = "{metrics}"\n')
    settings = load_settings(config)
    db = store.open_store(settings.storage.path)
    startup.initialize(db, settings, utc_now())
    rt = pipeline.open_runtime(db, settings)

    def damaged(*args: object, **kwargs: object) -> None:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(daily, "scheduled_digest", damaged)
    logged: list[tuple[str, bool]] = []
    sink = logger.add(lambda m: logged.append((m.record["message"], m.record["exception"] is not None)), level="ERROR")
    try:
        schedule._poll_job(rt, 60.0)
        schedule._digest_job(rt)
    finally:
        logger.remove(sink)
        rt.close()
    assert logged == [("Digest failed: database disk image is malformed", False)] * 2
    assert metrics.exists()
