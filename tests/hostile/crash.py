"""Crash safety, as a scenario shared by tests/hostile/test_crash.py and bench/bench_hostile.py.

Real worker processes (`run --once`, `poll --force`, `backfill`, `digest --send`, in turn) run
against a feed server and an SMTP server on 127.0.0.1 and are killed with SIGKILL at seeded
random moments, the feeds growing (and some items being edited) between kills. Then each
command runs to its end once more, and the store is checked:

- `PRAGMA integrity_check` is ok;
- every entry the feed server served (in any 200 answer) is stored, exactly once;
- every entry of the history files is stored by backfill, exactly once;
- no storyline decision and no revision is duplicated (an edit is one revision, however often
  its storing was cut short);
- no digest reached the SMTP server twice, and each one recorded as sent reached it once;
- each feed's state matches what the server serves now (ETag, body hash, no error, next poll
  after the last poll).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from worker.config import default_config_text
from tests.feedserver import FeedServer, Reply, Seen
from tests.smtpserver import SMTPServer

PROJECT = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc
TOPICS = ("China and North Korea marked the Friendship Year with a delegation to Pyongyang",
          "Beijing hosted high-level talks with DPRK officials on trade and border crossings",
          "North Korea deepened its military ties with Russia after a summit in Vladivostok",
          "A regional football league announced its new season schedule and ticket prices",
          "Farmers in the province reported a strong rice harvest despite a dry summer")


@dataclass
class GrowingFeed:
    """A feed that gains entries as `round` grows; entry 0 is edited from round 3 on, entry 1
    once `corrected` is set (after the kills: an edit every run stores whatever the kills did)."""

    number: int
    round: int = 0
    corrected: bool = False
    served: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def entries(self) -> list[tuple[str, str, str]]:
        count = 3 + self.round * (1 + self.number % 2)
        out = []
        for n in range(count):
            topic = TOPICS[(self.number + n) % len(TOPICS)]
            title = f"Site {self.number} report {n}: {topic.split(' with ')[0]}"
            if n == 0 and self.round >= 3:
                title += " (updated)"
            if n == 1 and self.corrected:
                title += " (corrected)"
            text = (f"{topic}. Report {n} of site {self.number} gives the details, the names of the officials "
                    f"and what was agreed, in {40 + n} words of plain text that differ for every report "
                    f"number {self.number * 1000 + n}.")
            out.append((f"s{self.number}-{n}", title, text))
        return out

    def body(self) -> bytes:
        date = email.utils.format_datetime(dt.datetime.now(UTC) - dt.timedelta(hours=1), usegmt=True)
        items = "".join(f"<item><guid>{g}</guid><title>{t}</title><link>https://site{self.number}.example/{g}</link>"
                        f"<description><![CDATA[<p>{x}</p>]]></description><pubDate>{date}</pubDate></item>"
                        for g, t, x in self.entries())
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Site {self.number}</title>'
                f"<link>https://site{self.number}.example/</link>{items}</channel></rss>").encode()

    def etag(self) -> str:
        return f'"{self.number}-{self.round}{"c" if self.corrected else ""}"'

    def reply(self, seen: Seen) -> Reply:
        with self.lock:
            if seen.headers.get("if-none-match") == self.etag():
                return Reply(304, headers={"ETag": self.etag()})
            self.served |= {guid for guid, _, _ in self.entries()}
            return Reply(body=self.body(), headers={"ETag": self.etag(), "Content-Type": "application/rss+xml"})


@dataclass
class CrashReport:
    kills: int
    violations: list[str]
    served: int
    stored: int
    backfilled: int
    revisions: int
    decisions: int
    digests_sent: int
    seconds: float


def _history(folder: Path, files: int, per_file: int, first: int = 0) -> int:
    """`files` archive files of `per_file` items, numbered from `first` (archives of other numbers
    hold other entries: the same file in two folders is the same history)."""
    folder.mkdir(parents=True, exist_ok=True)
    start = dt.datetime(2025, 3, 1, tzinfo=UTC)
    for f in range(first, first + files):
        items = "".join(
            f"<item><guid>h{f}-{n}</guid><title>Archive {f}-{n}: {TOPICS[n % 5][:60]}</title>"
            f"<link>https://archive{f}.example/{n}</link><description>{TOPICS[(n + f) % 5]}, archived report "
            f"{f * 1000 + n} with its own details.</description>"
            f"<pubDate>{email.utils.format_datetime(start + dt.timedelta(hours=7 * n + f))}</pubDate></item>"
            for n in range(per_file))
        (folder / f"archive{f}.xml").write_text(
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>Archive {f}</title>'
            f"<link>https://archive{f}.example/</link>{items}</channel></rss>", encoding="utf-8")
    return files * per_file


def write_config(folder: Path, server: FeedServer, feeds: int, smtp_port: int) -> Path:
    """The shipped default (seeds, storylines; never the user's config/storywatch.toml) with
    local feeds, a digest due all day, and email to the loopback SMTP server."""
    shutil.copytree(PROJECT / "seeds", folder / "seeds", dirs_exist_ok=True)
    text = default_config_text()
    text = text.replace('"../var/storywatch.db"', '"sw.db"').replace('"../seeds', '"seeds')
    text = text.replace('"../digests"', '"digests"').replace('time = "07:00"', 'time = "00:00"')
    text = text.replace('timezone = ""', 'timezone = "UTC"', 1)
    email_at = text.index("\n[email]")
    email = text[email_at:].replace("enabled = false", "enabled = true", 1).replace('smtp_host = ""', 'smtp_host = "127.0.0.1"')
    email = email.replace("smtp_port = 587", f"smtp_port = {smtp_port}").replace('security = "starttls"', 'security = "none"')
    email = email.replace('to = []', 'to = ["reader@example.org"]').replace('from = ""', 'from = "digest@storywatch.example"')
    text = text[:email_at] + email
    assert f"smtp_port = {smtp_port}" in text and 'to = ["reader@example.org"]' in text, "the template changed"
    head, tail = text[: text.index("\n[[feeds]]\n")], text[text.index("\n[[storylines]]\n"):]
    feed_tables = "".join(f'\n[[feeds]]\nurl = "{server.url(f"/site{n}")}"\n' for n in range(feeds))
    path = folder / "storywatch.toml"
    path.write_text(head + feed_tables + tail, encoding="utf-8")
    return path


def storywatch(config: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "worker", "--config", str(config), *args], cwd=PROJECT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def finish(config: Path, *args: str) -> str:
    """Run a command to its end. `digest --send` may rightly refuse: the digest was sent, or a
    kill landed inside its sending so it is unconfirmed (at most once: never sent again unasked)."""
    proc = storywatch(config, *args)
    _, err = proc.communicate(timeout=600)
    if proc.returncode != 0 and not (args[0] == "digest" and _digest_settled(config.parent / "sw.db")):
        raise AssertionError(f"storywatch {' '.join(args)} failed: {err.decode()[-2000:]}")
    return err.decode()


def _digest_settled(path: Path) -> bool:
    """Every digest recorded is sent or unconfirmed (a send cut short by a kill)."""
    with sqlite3.connect(path) as db:
        return {s for (s,) in db.execute("SELECT status FROM digests")} <= {"sent", "unconfirmed"}


def crash_run(folder: Path, *, kills: int, seed: int = 9, feeds: int = 8, history: tuple[int, int] = (6, 120)) -> CrashReport:
    started = time.monotonic()
    rng = random.Random(seed)
    sites = [GrowingFeed(n) for n in range(feeds)]
    with FeedServer() as server, SMTPServer() as smtp:
        for site in sites:
            server.routes[f"/site{site.number}"] = site.reply
        config = write_config(folder, server, feeds, smtp.port)
        archive = folder / "history"
        backfill_total = _history(archive, *history)
        commands = [("run", "--once"), ("backfill", str(archive)), ("poll", "--force"), ("digest", "--send")]
        errors: list[str] = []
        for kill in range(kills):
            for site in sites:
                site.round = kill // 2
            proc = storywatch(config, *commands[kill % len(commands)])
            time.sleep(rng.uniform(0.3, 3.0))
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=60)
            errors.append(err.decode())
        logs = [finish(config, "backfill", str(archive)), finish(config, "run", "--once"),
                finish(config, "poll", "--force"), finish(config, "digest", "--send")]
        for site in sites:
            site.corrected = True
        logs.append(finish(config, "poll", "--force"))
        violations = check(folder / "sw.db", sites, backfill_total, smtp, errors + logs)
        subjects = Counter(str(r.message["Subject"]) for r in smtp.received)
    db = sqlite3.connect(folder / "sw.db")
    try:
        count = lambda sql: int(db.execute(sql).fetchone()[0])  # noqa: E731
        return CrashReport(
            kills=kills, violations=violations, served=sum(len(s.served) for s in sites),
            stored=count("SELECT count(*) FROM items WHERE source = 'feed'"),
            backfilled=count("SELECT count(*) FROM items WHERE source = 'backfill'"),
            revisions=count("SELECT count(*) FROM item_revisions"),
            decisions=count("SELECT count(*) FROM storyline_items WHERE decision = 'followup'"),
            digests_sent=sum(subjects.values()), seconds=time.monotonic() - started)
    finally:
        db.close()


def check(path: Path, sites: list[GrowingFeed], backfill_total: int, smtp: SMTPServer, logs: list[str]) -> list[str]:
    """Every invariant; returns what was violated (empty: all hold)."""
    bad: list[str] = []
    db = sqlite3.connect(path)
    try:
        q = lambda sql, *args: db.execute(sql, args).fetchall()  # noqa: E731
        if (ok := q("PRAGMA integrity_check")[0][0]) != "ok":
            bad.append(f"integrity_check: {ok}")
        if (locked := sum("database is locked" in log for log in logs)):
            bad.append(f"'database is locked' in {locked} logs")
        for site in sites:
            site_url = f"/site{site.number}"
            rows = q("SELECT id, etag, body_sha256, error_count, last_error, next_poll_at, last_polled_at, last_status "
                     "FROM feeds WHERE url LIKE ?", f"%{site_url}")
            if len(rows) != 1:
                bad.append(f"{site_url}: {len(rows)} feed rows")
                continue
            feed_id, etag, _, errors, error, next_poll, last_polled, status = rows[0]
            # feedparser resolves a bare <guid> (a permalink by default) against the feed's address
            stored = Counter(g.rsplit("/", 1)[-1] for (g,) in q("SELECT guid FROM items WHERE feed_id = ?", feed_id))
            if dupes := [g for g, n in stored.items() if n > 1]:
                bad.append(f"{site_url}: stored more than once: {dupes}")
            if lost := site.served - set(stored):
                bad.append(f"{site_url}: served but not stored: {sorted(lost)}")
            if etag != site.etag():
                bad.append(f"{site_url}: etag {etag} != {site.etag()}")
            if errors or error or status not in (200, 304) or not next_poll or not last_polled or next_poll <= last_polled:
                bad.append(f"{site_url}: inconsistent state {rows[0]}")
        backfilled = q("SELECT count(*), count(DISTINCT identity) FROM items WHERE source = 'backfill'")[0]
        if backfilled != (backfill_total, backfill_total):
            bad.append(f"backfill: {backfilled[0]} items ({backfilled[1]} distinct) of {backfill_total}")
        if dup := q("SELECT storyline_id, item_id, count(*) FROM storyline_items GROUP BY 1, 2 HAVING count(*) > 1"):
            bad.append(f"duplicated storyline decisions: {dup}")
        if dup := q("SELECT item_id, content_sha256, count(*) FROM item_revisions GROUP BY 1, 2 HAVING count(*) > 1"):
            bad.append(f"duplicated revisions: {dup}")
        if many := q("SELECT item_id, count(*) FROM item_revisions GROUP BY 1 HAVING count(*) > 1"):
            bad.append(f"an item edited once has several revisions: {many}")
        corrected = q("SELECT count(*) FROM item_revisions JOIN items ON items.id = item_id "
                      "WHERE items.guid LIKE '%-1' AND items.title LIKE '%(corrected)'")[0][0]
        if corrected != len(sites):
            bad.append(f"{corrected} revisions of the corrected entries, not {len(sites)}")
        subjects = Counter(str(r.message["Subject"]) for r in smtp.received)
        if twice := [s for s, n in subjects.items() if n > 1]:
            bad.append(f"digests sent twice: {twice}")
        for day, status in q("SELECT day, status FROM digests"):
            got = sum(n for s, n in subjects.items() if f" {day}:" in s or s.endswith(f" {day}"))
            if status == "sent" and got != 1:
                bad.append(f"digest {day} is 'sent' but reached the server {got} times")
    finally:
        db.close()
    return bad
