"""`storywatch backfill`: every kind of source through the real pipeline into a real store, bad
sources reported without stopping the good ones, idempotent re-runs, resumption after SIGKILL,
and a backfill running beside the daemon."""

from __future__ import annotations

import datetime as dt
import email.utils
import gzip
import json
import os
import pty
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.corpus import article
from worker import backfill, parsing, startup, store, storylines
from worker.errors import StorywatchError
from worker.clock import utc_now
from worker.config import load_settings
from tests.conftest import Cli
from tests.feedserver import FeedServer, Reply
from tests.storyhistory import followups, korea_history, same_secret

FEEDS = Path(__file__).parent / "feeds"
UTC = dt.timezone.utc


def rss_file(path: Path, name: str, entries: list[tuple[str, str, str, dt.datetime]], extra: str = "") -> Path:
    """An RSS file of (guid, title, text, published) entries."""
    items = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>https://{name}.example/{guid}</link>"
        f"<description><![CDATA[<p>{text}</p>]]></description>"
        f"<pubDate>{email.utils.format_datetime(when)}</pubDate></item>"
        for guid, title, text, when in entries)
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
                    f"<channel><title>{name}</title><link>https://{name}.example/</link>{extra}{items}</channel></rss>",
                    encoding="utf-8")
    return path


def synthetic(n_files: int, per_file: int, folder: Path, seed: int = 7) -> int:
    """`n_files` feed files of distinct synthetic articles spread over a year; returns the count."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    start = dt.datetime(2025, 1, 1, tzinfo=UTC)
    for f in range(n_files):
        entries = []
        for n in range(per_file):
            title, text = article(rng, 600)
            entries.append((f"g{f}-{n}", title, text.replace("\n\n", "</p><p>"), start + dt.timedelta(minutes=rng.randrange(525_600))))
        rss_file(folder / f"site{f}.xml", f"site{f}", entries)
    return n_files * per_file


@pytest.fixture
def cli(write_config: object, tmp_path: Path) -> Cli:
    config = tmp_path / "storywatch.toml"
    config.write_text('[storage]\npath = "sw.db"\n[fetch]\nparse_processes = 1\n', encoding="utf-8")
    return Cli(config)


def items(cli: Cli) -> list[sqlite3.Row]:
    conn = sqlite3.connect(cli.config.parent / "sw.db")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM items ORDER BY id").fetchall()
    finally:
        conn.close()


def test_every_kind_of_file_source_and_every_bad_one(cli: Cli, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    (archive / "nested").mkdir(parents=True)
    day = dt.datetime(2024, 5, 1, tzinfo=UTC)
    rss_file(archive / "a.xml", "alpha", [("a1", "Alpha one", "First alpha story about harbour cranes.", day),
                                         ("a2", "Alpha two", "Second alpha story about tram lines.", day + dt.timedelta(days=2))])
    plain = rss_file(tmp_path / "b.xml", "beta", [("b1", "Beta one", "Beta story about a bakery strike.", day + dt.timedelta(days=1))])
    (archive / "nested" / "b.xml.gz").write_bytes(gzip.compress(plain.read_bytes()))
    whole = gzip.compress(plain.read_bytes() * 20)
    (archive / "broken.xml.gz").write_bytes(whole[: len(whole) // 2])
    (archive / "notes.txt").write_text("just some notes, not a feed\n")
    lines = [json.dumps({"id": "j1", "title": "Gamma from JSON", "text": "A gamma story about a river ferry.",
                         "url": "https://gamma.example/1", "published": "2024-05-01T12:00:00Z", "source": "Gamma"}),
             "{broken json",
             json.dumps({"id": "j2", "title": "Gamma two", "text": "Another gamma story, about bridges.",
                         "published": "2024-05-04T09:00:00Z", "source": "Gamma"})]
    (tmp_path / "items.jsonl").write_text("\n".join(lines) + "\n")
    result = cli("backfill", str(archive), str(tmp_path / "items.jsonl"), str(tmp_path / "missing.xml"), "--json", ok=False)
    assert result.exit_code == 3  # sources failed; the good ones are stored
    summary = json.loads(result.stdout)
    assert summary["items_new"] == 5 and summary["exact_copies"] == 0 and summary["revisions"] == 0
    failed = summary["sources_failed"]
    assert failed[str(tmp_path / "missing.xml")] == "no such file or folder"
    assert failed[str(archive / "broken.xml.gz")].startswith("corrupt gzip")
    assert failed[str(archive / "notes.txt")].startswith("not a feed")
    assert summary["warnings"] == [f"{tmp_path / 'items.jsonl'}: line 2: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"]
    stored = items(cli)
    assert [r["title"] for r in stored] == ["Alpha one", "Gamma from JSON", "Beta one", "Alpha two", "Gamma two"]  # time order
    assert {r["source"] for r in stored} == {"backfill"}
    assert {r["publisher"] for r in stored} == {"alpha", "beta", "Gamma"}


def test_an_unreadable_subfolder_is_reported_not_skipped(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder the user cannot list was skipped in silence with exit status 0."""
    archive = tmp_path / "archive"
    (archive / "locked").mkdir(parents=True)
    day = dt.datetime(2024, 5, 1, tzinfo=UTC)
    rss_file(archive / "a.xml", "alpha", [("a1", "Alpha one", "An alpha story.", day)])
    rss_file(archive / "locked" / "b.xml", "beta", [("b1", "Beta one", "A beta story.", day)])
    if os.geteuid() == 0:  # root lists any folder: refuse this one as the kernel would for a user
        real = os.scandir

        def scandir(path: object = ".") -> object:
            if Path(str(path)) == archive / "locked":
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "scandir", scandir)
    else:
        (archive / "locked").chmod(0)
    try:
        result = cli("backfill", str(archive), "--json", ok=False)
    finally:
        (archive / "locked").chmod(0o755)
    assert result.exit_code == 3
    summary = json.loads(result.stdout)
    assert summary["items_new"] == 1
    assert summary["sources_failed"] == {str(archive / "locked"): "cannot read the folder: Permission denied"}


def test_more_files_than_may_be_open_at_once_are_all_stored(tmp_path: Path) -> None:
    """400 feed files under a limit of 64 open files (systemd's default is 1,024, for 10,000
    files): the spools are merged a group at a time (every spool was opened at once: EMFILE,
    nothing stored). A spool left by a backfill killed earlier is removed; a live one's is not."""
    import resource

    folder = tmp_path / "many"
    folder.mkdir()
    day = dt.datetime(2024, 5, 1, tzinfo=UTC)
    for n in range(400):
        rss_file(folder / f"f{n:03}.xml", f"site{n}", [(f"g{n}", f"Story number {n}", f"Distinct text {n} of file {n}.",
                                                       day + dt.timedelta(minutes=7 * n % 997))])
    spools = tmp_path / "tmp"
    spools.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (spools / f"storywatch-backfill-{dead.stdout.strip()}-x1").mkdir()  # its process is gone
    (spools / f"storywatch-backfill-{os.getpid()}-x2").mkdir()  # a backfill still running
    config = tmp_path / "storywatch.toml"
    config.write_text('[storage]\npath = "sw.db"\n[fetch]\nparse_processes = 1\n', encoding="utf-8")

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    done = subprocess.run([sys.executable, "-m", "worker", "--config", str(config), "backfill", str(folder), "--json"],
                          cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=600,
                          preexec_fn=low_limit, env={**os.environ, "TMPDIR": str(spools)})
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["items_new"] == 400 and summary["sources_failed"] == {}
    conn = sqlite3.connect(tmp_path / "sw.db")
    published = [row[0] for row in conn.execute("SELECT published_at FROM items ORDER BY id")]
    conn.close()
    assert published == sorted(published)  # stored in time order across the merged groups
    assert sorted(p.name for p in spools.iterdir()) == [f"storywatch-backfill-{os.getpid()}-x2"]


def test_an_empty_feed_file_is_read_with_a_warning_as_when_polled(cli: Cli, tmp_path: Path) -> None:
    empty = rss_file(tmp_path / "empty.xml", "quiet", [])
    result = cli("backfill", str(empty), "--json")
    summary = json.loads(result.stdout)
    assert summary["sources_read"] == 1 and summary["sources_failed"] == {} and summary["items_new"] == 0
    assert summary["warnings"] == [f"{empty}: no entries (rss20 feed)"]


def test_a_copy_cut_short_neither_edits_the_stored_entry_it_ends_in_nor_hides_it(cli: Cli, tmp_path: Path) -> None:
    whole = rss_file(tmp_path / "whole.xml", "wire", [
        (f"g{n}", f"Story {n}", f"Paragraph one of story {n}. " * 20 + f"The end of story {n}.",
         dt.datetime(2025, 3, 1 + n, tzinfo=UTC)) for n in range(3)])
    assert json.loads(cli("backfill", str(whole), "--json").stdout)["items_new"] == 3
    body = whole.read_bytes()
    cut = tmp_path / "cut.xml"
    cut.write_bytes(body[:body.rindex(b"The end of story 2")])  # a copy that stops inside the last entry
    summary = json.loads(cli("backfill", str(cut), "--json").stdout)
    assert (summary["entries"], summary["already_stored"], summary["revisions"]) == (3, 2, 0)
    assert summary["warnings"] == [f"{cut}: the document ends inside its last entry (cut short?): that entry was left out"]
    texts = sorted(row["text"] for row in items(cli))  # each as first stored, whole
    assert len(texts) == 3 and all(text.endswith(f"The end of story {n}.") for n, text in enumerate(texts))


def test_a_second_run_adds_nothing_and_the_period_filters(cli: Cli, tmp_path: Path) -> None:
    total = synthetic(3, 40, tmp_path / "h")
    dry = json.loads(cli("backfill", str(tmp_path / "h"), "--dry-run", "--json").stdout)
    assert dry["entries"] == total and items(cli) == []
    half = json.loads(cli("backfill", str(tmp_path / "h"), "--until", "2025-07-01", "--json").stdout)
    assert 0 < half["items_new"] < total and half["items_new"] + half["outside_period"] == total
    rest = json.loads(cli("backfill", str(tmp_path / "h"), "--json").stdout)
    assert rest["items_new"] == total - half["items_new"] and rest["already_stored"] == half["items_new"]
    again = json.loads(cli("backfill", str(tmp_path / "h"), "--json").stdout)
    assert again["items_new"] == 0 and again["already_stored"] == total
    assert len(items(cli)) == total


def test_a_copy_on_another_site_is_a_near_duplicate(cli: Cli, tmp_path: Path) -> None:
    rng = random.Random(3)
    title, text = article(rng, 1500)
    day = dt.datetime(2024, 3, 1, tzinfo=UTC)
    rss_file(tmp_path / "one.xml", "one", [("x", title, text, day)])
    rss_file(tmp_path / "two.xml", "two", [("y", title + " (updated)", text.replace(".", ";", 2), day + dt.timedelta(hours=3))])
    rss_file(tmp_path / "three.xml", "three", [("z", title, text, day + dt.timedelta(hours=5))])
    summary = json.loads(cli("backfill", str(tmp_path / "one.xml"), str(tmp_path / "two.xml"),
                             str(tmp_path / "three.xml"), "--json").stdout)
    assert (summary["items_new"], summary["near_duplicates"], summary["exact_copies"]) == (1, 1, 1)


def test_a_feed_url_with_archives_and_pages_and_an_opml_file(cli: Cli, tmp_path: Path) -> None:
    day = dt.datetime(2024, 1, 1, tzinfo=UTC)
    with FeedServer() as server:
        def page(n: int, links: str) -> Reply:
            path = tmp_path / f"p{n}.xml"
            rss_file(path, "paged", [(f"p{n}-{k}", f"Page {n} story {k}", f"Story {k} of page {n} about topic {n * 10 + k}.",
                                     day + dt.timedelta(days=n * 3 + k)) for k in range(3)], extra=links)
            return Reply(body=path.read_bytes(), headers={"Content-Type": "application/rss+xml"})
        server.routes["/feed"] = page(3, f'<atom:link rel="prev-archive" href="{server.url("/archive/2")}"/>')
        server.routes["/archive/2"] = page(2, '<atom:link rel="prev-archive" href="/archive/1"/>')
        server.routes["/archive/1"] = page(1, f'<atom:link rel="next" href="{server.url("/feed")}"/>')  # a loop back
        server.routes["/other"] = page(4, "")
        summary = json.loads(cli("backfill", server.url("/feed"), "--json").stdout)
        assert summary["items_new"] == 9 and summary["sources_read"] == 3
        assert server.paths().count("/feed") == 1  # the loop back was not followed
        limited = json.loads(cli("backfill", server.url("/other"), server.url("/feed"), "--max-pages", "1", "--json").stdout)
        assert limited["items_new"] == 3 and limited["already_stored"] == 3
        outline = tmp_path / "feeds.opml"
        outline.write_text(f'<opml version="2.0"><body><outline text="x" xmlUrl="{server.url("/nowhere")}"/>'
                           f'<outline text="y" xmlUrl="{server.url("/other")}"/></body></opml>')
        result = cli("backfill", str(outline), "--json", ok=False)
        summary = json.loads(result.stdout)
        assert result.exit_code == 3 and summary["already_stored"] == 3
        assert "HTTP 404" in summary["sources_failed"][server.url("/nowhere")]


def test_backfilled_items_are_tracked_and_their_follow_ups_found_later_in_the_digest(run: Cli, tmp_path: Path) -> None:
    closing = ("China and North Korea end Friendship Year with gala in Pyongyang",
               "A gala in Pyongyang on Saturday closed the China-DPRK Friendship Year, the year of exchanges held for "
               "the 75th anniversary of diplomatic relations between China and North Korea. Chinese ambassador Wang "
               "Yajun and senior North Korean officials attended the closing ceremony.")
    rss_file(tmp_path / "wire.xml", "wire", [("c1", *closing, dt.datetime(2024, 12, 28, tzinfo=UTC))])
    run("init")
    summary = json.loads(run("backfill", str(tmp_path / "wire.xml"), "--json").stdout)
    assert summary["followups"].get("friendship-year") == 1
    shown = run("storylines", "show", "friendship-year").stdout
    assert closing[0] in shown
    # Not a new item of the digest, but a follow-up found later (once: the backfill decided it in this period).
    without = run("digest", "--since", "2000-01-01", "--until", "2100-01-01", "--stdout").stdout
    assert without.count(closing[0]) == 1 and closing[0] in without.split("\n## Found later\n", 1)[1].split("\n## ")[0]
    assert "**0 follow-ups**, **1 follow-up found later**" in without
    with_backfill = run("digest", "--since", "2000-01-01", "--until", "2100-01-01", "--stdout", "--include-backfill").stdout
    assert with_backfill.count(closing[0]) == 1 and "## Found later" not in with_backfill
    none = json.loads(run("backfill", str(tmp_path / "wire.xml"), "--no-track", "--json").stdout)
    assert none["followups"] == {}



# ── progress ──────────────────────────────────────────────────────────────────────────────────


def progress_lines(stderr: str, phase: str) -> list[str]:
    """A phase's progress lines, as logged (a line each) or drawn on a terminal (\r between)."""
    unit = "sources read" if phase == "read" else "items loaded"
    lines = [line.split("Backfill: ", 1)[-1].strip() for line in re.split(r"[\r\n]", stderr)]
    return [line for line in lines if unit in line]


def test_the_progress_counts_sources_as_the_summary_does_and_starts_each_phase_at_zero(cli: Cli, tmp_path: Path) -> None:
    synthetic(2, 30, tmp_path / "h")
    (tmp_path / "h" / "broken.xml").write_text("not a feed at all\n")
    day = dt.datetime(2024, 1, 1, tzinfo=UTC)
    with FeedServer() as server:
        def page(n: int, links: str) -> Reply:
            path = rss_file(tmp_path / f"p{n}.xml", "paged", [(f"p{n}-{k}", f"Page {n} story {k}", f"Story {k} of page {n}.",
                                                             day + dt.timedelta(days=n * 3 + k)) for k in range(3)], extra=links)
            return Reply(body=path.read_bytes(), headers={"Content-Type": "application/rss+xml"})
        server.routes["/feed"] = page(2, f'<atom:link rel="prev-archive" href="{server.url("/archive")}"/>')
        server.routes["/archive"] = page(1, "")
        result = cli("backfill", str(tmp_path / "h"), server.url("/feed"), str(tmp_path / "missing.xml"), "--json", ok=False)
    summary = json.loads(result.stdout)
    read, failed = summary["sources_read"], len(summary["sources_failed"])
    assert (read, failed, summary["entries"]) == (4, 2, 66)  # two files and two pages; the broken file, the missing one
    lines = progress_lines(result.stderr, "read")
    assert lines[0] == "[######........................] 0/5 sources read, 1 failed, 0 entries"  # the archive page is not known yet
    assert lines[-1].startswith("[##############################] 4/6 sources read, 2 failed, 66 entries, "), lines
    stored = progress_lines(result.stderr, "store")
    assert stored[0] == "[..............................] 0/66 items loaded", stored
    assert stored[-1].startswith("[##############################] 66/66 items loaded, ") and "ETA" not in stored[-1]
    again = progress_lines(cli("backfill", str(tmp_path / "h"), "--json", ok=False).stderr, "store")
    assert again[0] == "[..............................] 0/60 items loaded"  # each run's phase starts at zero
    assert again[-1].startswith("[##############################] 60/60 items loaded, 60 already stored, ")


def test_on_a_terminal_the_progress_shows_a_rate_and_an_eta_once_known(tmp_path: Path) -> None:
    total = synthetic(3, 400, tmp_path / "h")  # three batches
    config = tmp_path / "storywatch.toml"
    config.write_text('[storage]\npath = "sw.db"\n', encoding="utf-8")
    main, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "worker", "--config", str(config), "backfill", str(tmp_path / "h")],
                            stdout=subprocess.PIPE, stderr=terminal, text=True)
    os.close(terminal)
    drawn = b""
    while True:  # what the terminal got, until the command closes it
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: closed
            break
        if not chunk:
            break
        drawn += chunk
    out, _ = proc.communicate(timeout=300)
    os.close(main)
    assert proc.returncode == 0
    assert out.startswith(f"3 sources read, {total:,} entries in ")
    pace = re.compile(r", [\d,]+ (entries|items)/s, ETA \d+:\d\d$")
    for phase, first in (("read", "0/3 sources read, 0 entries"), ("store", f"0/{total:,} items loaded")):
        lines = progress_lines(drawn.decode(), phase)
        assert lines[0].endswith("] " + first), lines  # nothing to tell a rate or an ETA by yet
        middle = lines[1:-1]
        assert middle and all(pace.search(line) for line in middle), lines
        assert re.search(r", [\d,]+ (entries|items)/s$", lines[-1]), lines  # done: no time left to tell
    assert progress_lines(drawn.decode(), "store")[-1].startswith(f"[##############################] {total:,}/{total:,} items loaded, ")


# ── interruption and concurrency (real processes) ─────────────────────────────────────────────


def storywatch(config: Path, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "worker", "--config", str(config), *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, **kwargs)  # type: ignore[call-overload]


def snapshot(db_path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], str]:
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute("SELECT identity, title, published_at, dup_of IS NOT NULL, "
                            "(SELECT identity FROM items c WHERE c.id = items.cluster_id) FROM items ORDER BY identity").fetchall()
        decisions = conn.execute("SELECT storyline_id, (SELECT identity FROM items WHERE id = item_id), decision "
                                 "FROM storyline_items ORDER BY 1, 2").fetchall()
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    return rows, decisions, check


@pytest.mark.slow
def test_killed_at_random_moments_it_finishes_with_the_same_store(tmp_path: Path) -> None:
    total = synthetic(12, 150, tmp_path / "history")
    configs = []
    for name in ("once", "killed"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "storywatch.toml").write_text('[storage]\npath = "sw.db"\n')
        configs.append(folder / "storywatch.toml")
    done = storywatch(configs[0], "backfill", str(tmp_path / "history"), "--json")
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    rng = random.Random(5)
    for attempt in range(4):
        proc = storywatch(configs[1], "backfill", str(tmp_path / "history"), "--workers", "2")
        time.sleep(rng.uniform(1.0, 4.0))
        proc.send_signal(signal.SIGKILL if attempt % 2 == 0 else signal.SIGINT)
        proc.communicate(timeout=60)
    finish = storywatch(configs[1], "backfill", str(tmp_path / "history"), "--json")
    out, err = finish.communicate(timeout=300)
    assert finish.returncode == 0, err
    once, killed = snapshot(configs[0].parent / "sw.db"), snapshot(configs[1].parent / "sw.db")
    assert killed[2] == "ok" and len(killed[0]) == total
    assert killed == once


def test_backfill_beside_the_running_daemon(tmp_path: Path) -> None:
    total = synthetic(4, 100, tmp_path / "history")
    with FeedServer() as server:
        rng = random.Random(9)
        feed = rss_file(tmp_path / "live.xml", "live", [(f"l{n}", *article(rng, 500), dt.datetime(2026, 1, 1, tzinfo=UTC))
                                                       for n in range(30)])
        server.routes["/live"] = Reply(body=feed.read_bytes())
        config = tmp_path / "storywatch.toml"
        config.write_text(f'[storage]\npath = "sw.db"\nbusy_timeout = 30.0\n[[feeds]]\nurl = "{server.url("/live")}"\n'
                          'interval = "5m"\n')
        daemon = storywatch(config, "run")
        try:
            time.sleep(1.0)
            loader = storywatch(config, "backfill", str(tmp_path / "history"), "--json")
            out, err = loader.communicate(timeout=300)
            assert loader.returncode == 0, err
            assert json.loads(out)["items_new"] == total
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(snapshot(tmp_path / "sw.db")[0]) < total + 30:
                time.sleep(0.2)
        finally:
            daemon.send_signal(signal.SIGTERM)
            _, daemon_err = daemon.communicate(timeout=60)
    assert "database is locked" not in err + daemon_err
    rows = snapshot(tmp_path / "sw.db")[0]
    assert len(rows) == total + 30 and len({r[0] for r in rows}) == len(rows)


def test_near_copies_within_one_file_stay_apart_as_within_one_feed(cli: Cli, tmp_path: Path) -> None:
    rng = random.Random(4)
    title, text = article(rng, 1500)
    day = dt.datetime(2024, 3, 1, tzinfo=UTC)
    rss_file(tmp_path / "one.xml", "one", [("x", title, text, day),
                                           ("y", title + " (part 2)", text.replace(".", ";", 2), day + dt.timedelta(hours=1))])
    summary = json.loads(cli("backfill", str(tmp_path / "one.xml"), "--json").stdout)
    assert (summary["items_new"], summary["near_duplicates"]) == (2, 0)


# ── an interrupted backfill, resumed, decides what one run decides ─────────────────────────────

def backfill_in_process(config: Path, history: Path, *, stop_after: int | None = None, batch: int = 20,
                        since: dt.datetime | None = None, workers: int = 1) -> backfill.Summary:
    """`storywatch backfill HISTORY` through the library, stopped (as by Ctrl-C) once `stop_after`
    items are stored: the stop is checked between batches, as in the CLI."""
    settings = load_settings(config)
    db = store.open_store(settings.storage.path)
    try:
        startup.initialize(db, settings, utc_now())
        sources, failed = backfill.expand([str(history)], db)
        assert not failed
        stop = threading.Event()

        def progress(step: backfill.Step) -> None:
            if step.phase == "store" and stop_after is not None and step.done >= stop_after:
                stop.set()

        options = backfill.Options(since=since, workers=workers, batch=batch)
        return backfill.backfill(db, settings, sources, options, progress, stop=stop)
    finally:
        db.conn.close()


def test_a_backfill_stopped_while_another_process_writes_ends_in_seconds_and_the_next_run_stores_the_rest(
    seeded_config: Path, tmp_path: Path
) -> None:
    """The stop comes while a batch waits for the write lock: that batch is not stored (all or
    nothing) and the backfill ends within seconds, not 3 × 30 s and an error."""
    korea_history(tmp_path / "history", 160)
    settings = load_settings(seeded_config)
    db = store.open_store(settings.storage.path)
    other = sqlite3.connect(settings.storage.path, isolation_level=None, check_same_thread=False)
    stop, stopped_at = threading.Event(), []

    def progress(step: backfill.Step) -> None:
        if step.phase == "store" and step.done >= 40 and not stopped_at:
            other.execute("BEGIN IMMEDIATE")  # another process starts writing, and the user stops the backfill
            stopped_at.append(time.monotonic())
            threading.Timer(0.3, stop.set).start()

    try:
        startup.initialize(db, settings, utc_now())
        sources, _ = backfill.expand([str(tmp_path / "history")], db)
        summary = backfill.backfill(db, settings, sources, backfill.Options(workers=1, batch=20), progress, stop=stop)
        assert time.monotonic() - stopped_at[0] < 20  # 3 × 30 s before
    finally:
        other.rollback()
        other.close()
        db.conn.close()
    assert summary.interrupted and summary.items_new == 40 and summary.items_not_stored == 120
    rest = backfill_in_process(seeded_config, tmp_path / "history")
    assert rest.items_new == 120 and rest.already_stored == 40


def copy_config(config: Path, folder: Path) -> Path:
    """The same config and seeds in `folder`: another store, with the same secret (same_secret)."""
    shutil.copytree(config.parent / "seeds", folder / "seeds")
    (folder / "storywatch.toml").write_text(config.read_text(encoding="utf-8"), encoding="utf-8")
    same_secret(load_settings(config).storage.path, load_settings(folder / "storywatch.toml").storage.path)
    return folder / "storywatch.toml"


def test_an_interrupted_backfill_run_again_decides_the_follow_ups_of_one_uninterrupted_run(
    seeded_config: Path, tmp_path: Path
) -> None:
    korea_history(tmp_path / "history", 160)
    once = backfill_in_process(seeded_config, tmp_path / "history")
    assert once.items_new == 160 and not once.interrupted
    expected = followups(load_settings(seeded_config).storage.path)
    assert len(expected) >= 30 and len({s for _, s in expected}) == 3, expected  # every storyline decides some
    for cut in (40, 100):  # stops early, then past the middle
        config = copy_config(seeded_config, tmp_path / f"cut{cut}")
        first = backfill_in_process(config, tmp_path / "history", stop_after=cut)
        assert first.interrupted and first.items_new == cut
        rest = backfill_in_process(config, tmp_path / "history")
        assert (rest.already_stored, rest.items_new, rest.interrupted) == (cut, 160 - cut, False)
        resumed = followups(load_settings(config).storage.path)
        assert resumed == expected, (cut, sorted(expected - resumed), sorted(resumed - expected))


def test_the_parsing_processes_analyse_the_stored_items_and_the_writer_takes_over_if_they_fail(
    seeded_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    korea_history(tmp_path / "history", 160)
    given: list[bool] = []  # per item the tracker took: whether it came analysed
    arriving = storylines.arriving_doc
    monkeypatch.setattr(storylines, "arriving_doc", lambda i, item: given.append(item.analysis is not None) or arriving(i, item))
    # A parsing process of its own analyses the items while the writer stores the batches before.
    once = backfill_in_process(seeded_config, tmp_path / "history", workers=2)
    assert once.items_new == 160 and given == [True] * 160
    expected = followups(load_settings(seeded_config).storage.path)
    assert len(expected) >= 30
    # Every analysis fails (as when a parsing process dies): the writer analyses, and decides the same.
    calls: list[int] = []

    def failing(texts: list[tuple[str, str]], bucket_key: bytes) -> list[object]:
        calls.append(len(texts))
        raise StorywatchError("the parsing process died")
    monkeypatch.setattr(parsing, "analyses", failing)  # one process: the pool runs tasks in this one
    given.clear()
    config = copy_config(seeded_config, tmp_path / "failing")
    assert backfill_in_process(config, tmp_path / "history").items_new == 160
    assert given == [False] * 160 and sum(calls) == 160
    assert followups(load_settings(config).storage.path) == expected
    # Run again over stored history: nothing is left to decide, so nothing is analysed.
    calls.clear()
    assert backfill_in_process(config, tmp_path / "history").already_stored == 160 and calls == []


def test_history_stored_ahead_is_not_seen_before_the_earlier_items_it_follows(seeded_config: Path, tmp_path: Path) -> None:
    korea_history(tmp_path / "history", 160)
    backfill_in_process(seeded_config, tmp_path / "history")
    later = copy_config(seeded_config, tmp_path / "later-first")
    cut = dt.datetime(2024, 1, 1, tzinfo=UTC)
    ahead = backfill_in_process(later, tmp_path / "history", since=cut)  # the months from January first
    rest = backfill_in_process(later, tmp_path / "history")
    assert 0 < ahead.items_new < 160 and rest.items_new == 160 - ahead.items_new
    conn = sqlite3.connect(load_settings(later).storage.path)
    try:
        earlier = {identity for (identity,) in conn.execute("SELECT identity FROM items WHERE published_at < ? AND "
                                                            "source = 'backfill'", [cut.strftime("%Y-%m-%dT%H:%M:%SZ")])}
    finally:
        conn.close()
    assert len(earlier) == rest.items_new
    # The autumn was decided as if January were not stored yet: as one run over the whole history did.
    expected = {(i, s) for i, s in followups(load_settings(seeded_config).storage.path) if i in earlier}
    assert expected and {(i, s) for i, s in followups(load_settings(later).storage.path) if i in earlier} == expected


# ── seed documents are init's ─────────────────────────────────────────────────────────────────


def test_backfill_of_seed_documents_fails_with_a_hint_that_init_loads_them(run: Cli, tmp_path: Path) -> None:
    run("init")
    seeds = run.config.parent / "seeds"
    copy = tmp_path / "elsewhere"
    shutil.copytree(seeds, copy)  # a seed folder by its seeds.toml, wherever it is
    for location in (seeds, f"{seeds}/", seeds / "000_258aa0af6080a6dd.txt", seeds / "seeds.toml", copy):
        result = run("backfill", str(location), ok=False)
        assert result.exit_code == 1, result.output
        assert "backfill does not load seed documents" in result.stderr and "not a feed" in result.stderr
        assert "seed documents are loaded by `storywatch init` from [seeds] path" in result.stderr
        assert "SAXParseException" not in result.output
    conn = sqlite3.connect(run.config.parent / "var" / "storywatch.db")
    try:
        assert conn.execute("SELECT count(*) FROM items WHERE source != 'seeds'").fetchone()[0] == 0
    finally:
        conn.close()
    # Walked into inside a folder of feeds, a seed folder is one failed source, saying why; the feeds load.
    archive = tmp_path / "archive"
    shutil.copytree(seeds, archive / "notes")
    rss_file(archive / "wire.xml", "wire", [("w1", "A harbour story", "Cranes at the harbour.", dt.datetime(2024, 5, 1, tzinfo=UTC))])
    result = run("backfill", str(archive), "--json", ok=False)
    summary = json.loads(result.stdout)
    assert result.exit_code == 3 and summary["items_new"] == 1 and summary["sources_read"] == 1
    assert summary["sources_failed"] == {str(archive / "notes"): "a seed folder, not feeds: `storywatch init` loads seed "
                                                                  "documents, from [seeds] path"}


def test_a_hostile_jsonl_record_and_a_bad_archive_link_cost_only_themselves(cli: Cli, tmp_path: Path) -> None:
    """A JSON Lines record whose source and title carry ESC sequences, a bidi override and a line
    break is stored as one safe line; a feed whose next page is an address no client can request
    fails that page only (it was a traceback, and the good file was not stored)."""
    record = {"id": "a", "title": "T\u202eevil\nSecond line", "text": "x \u202e y", "published": "2024-01-02T00:00:00Z",
              "source": "Pub\u001b]0;PWNED\u0007\u001b[2J\u202eRLO", "url": "https://a.example/\u202e\u009b31m"}
    (tmp_path / "evil.jsonl").write_text(json.dumps(record) + "\n")
    with FeedServer() as server:
        server.routes["/bad"] = Reply(body=(
            '<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel><title>b</title>'
            '<atom:link rel="next" href="http://[::1/x"/><item><guid>b1</guid><title>Bad-link feed story</title>'
            '<description>y</description><pubDate>Tue, 02 Jan 2024 10:00:00 GMT</pubDate></item></channel></rss>').encode())
        result = cli("backfill", str(tmp_path / "evil.jsonl"), server.url("/bad"), "--json", ok=False)
    assert result.exit_code == 3 and "Traceback" not in result.output
    summary = json.loads(result.stdout)
    assert summary["items_new"] == 2 and list(summary["sources_failed"]) == ["http://[::1/x"]
    [evil] = [r for r in items(cli) if r["identity"].startswith("jsonl:")]
    assert (evil["title"], evil["publisher"]) == ("Tevil Second line", "Pub ]0;PWNED [2J RLO")
    assert evil["text"] == "x y" and evil["url"] == "https://a.example/%E2%80%AE%C2%9B31m"
    shown = cli("items").output + cli("items", "show", str(evil["id"])).output
    assert not any(c in shown for c in "\x1b\x07\u202e\x9b")
