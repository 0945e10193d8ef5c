"""Makes legacy-guids-0009.sql and legacy-guids-moved-0009.sql with the storywatch of commit
2522bc4 (schema 0009_digest_sender), the last that keyed GUIDs as feedparser resolved them:

    git worktree add --detach /tmp/storywatch-2522bc4 2522bc4
    PYTHONPATH=/tmp/storywatch-2522bc4 .venv/bin/python tests/data/make_legacy_guids.py

That version polls tests/legacy_guids.py's feed (every form) on tests/feedserver.py at
{server}/feeds/news.xml, clock 2026-11-23T12:00Z, retention 365 days (the 2020 entry is pruned
after the poll). legacy-guids-0009.sql: that store. legacy-guids-moved-0009.sql: then the feed
answers 301 to {server}/v2/news.rss and is polled again an hour later. Each file holds the rows
as INSERT statements, the feed server's address written {server}: tests/test_legacy_guids.py
applies the migrations up to 0009 to a new file, runs them, and opens the store.

legacy-guids-first-0010.sql: legacy-guids-0009.sql as migration 0010 left it as first released
(commit 9820840 to 2f5423d, which re-keyed in place by guessing from the keys), made with that version:

    git worktree add --detach /tmp/storywatch-2f5423d 2f5423d
    PYTHONPATH=/tmp/storywatch-2f5423d .venv/bin/python tests/data/make_legacy_guids.py --first-0010
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import sqlite3
import sys
import tempfile
import textwrap
from pathlib import Path
from types import ModuleType

from sqlite_utils import Database

from worker import pipeline, store  # the older version, from PYTHONPATH
from worker.config import load_settings

HERE = Path(__file__).resolve().parent
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
TABLES = ("feeds", "items", "tombstones")


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


legacy = load("legacy_guids", HERE.parent / "legacy_guids.py")
feedserver = load("feedserver", HERE.parent / "feedserver.py")


def make(folder: Path, moved: bool) -> str:
    assert store.MIGRATIONS._migrations[-1].name == "0009_digest_sender", "run it with commit 2522bc4"
    now = [NOW]
    with feedserver.FeedServer() as server:
        address = server.url("")
        config = folder / "storywatch.toml"
        config.write_text(textwrap.dedent(f"""\
            [storage]
            path = "sw.db"
            retention_days = 365
            [fetch]
            parse_processes = 1
            [[feeds]]
            url = "{server.url(legacy.NEWS)}"
            name = "News"
            """))
        settings = load_settings(config)
        db = store.open_store(settings.storage.path)
        pipeline.initialize(db, settings, now[0])
        rt = pipeline.open_runtime(db, settings, clock=lambda: now[0])
        server.routes[legacy.NEWS] = feedserver.Reply(body=legacy.feed(address))
        print(pipeline.poll_feeds(rt, force=True).summary(), file=sys.stderr)
        if moved:
            server.routes[legacy.NEWS] = feedserver.Reply(301, headers={"Location": legacy.MOVED})
            server.routes[legacy.MOVED] = feedserver.Reply(body=legacy.feed(address))
            now[0] += dt.timedelta(hours=1)
            print(pipeline.poll_feeds(rt, force=True, no_cache=True).summary(), file=sys.stderr)
        rt.close()
        return dump(settings.storage.path).replace(address, "{server}")


def dump(path: Path) -> str:
    conn = sqlite3.connect(path)
    lines = []
    for table in TABLES:
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        quoted = ", ".join(f"quote({c})" for c in columns)
        for values in conn.execute(f"SELECT {quoted} FROM {table} ORDER BY rowid"):
            lines.append(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(values)});")
    last_id = conn.execute("SELECT value FROM meta WHERE key = 'last_id'").fetchone()[0]
    lines.append(f"UPDATE meta SET value = {last_id} WHERE key = 'last_id';")
    conn.close()
    return "\n".join(lines) + "\n"


HEADER = """\
-- A store as storywatch wrote it before migration 0010 (commit 2522bc4, schema 0009_digest_sender),
-- from the feed of tests/legacy_guids.py {what}.
-- Made by tests/data/make_legacy_guids.py (see there); only the rows, the feed server's address
-- written {{server}}. GUIDs without a scheme were keyed as URLs made against the address the
-- feed was read from; URLs, the urn: and the isPermaLink="false" GUID as written.
"""

def first_0010(folder: Path) -> str:
    """legacy-guids-0009.sql opened by the version that released 0010 first (from PYTHONPATH)."""
    names = [m.name for m in store.MIGRATIONS._migrations]
    assert names[-1] == "0012_interrupted_cycles", "run it with commit 2f5423d"
    address = "http://127.0.0.1:8999"
    path = folder / "sw.db"
    old = Database(sqlite3.connect(path))
    store.MIGRATIONS.apply(old, stop_before="0010_bare_guids_by_feed")
    rows = (HERE / "legacy-guids-0009.sql").read_text(encoding="utf-8")
    old.conn.executescript(rows.replace("{server}", address))
    old.conn.commit()
    old.conn.close()
    store.open_store(path).conn.close()  # applies 0010 (as it was then), 0011, 0012
    return dump(path).replace(address, "{server}")


FIRST_0010 = """\
-- legacy-guids-0009.sql after migration 0010 as first released (commits 9820840 to 2f5423d):
-- it re-keyed in place the keys it took for bare GUIDs made into URLs (the URLs in the feed's
-- folder too; not the relative GUIDs with a slash, a query or a leading #) and left no mark in
-- `meta`, which the 0010 of later versions leaves. Made by tests/data/make_legacy_guids.py
-- --first-0010 (see there); only the rows, the feed server's address written {server}.
"""

if __name__ == "__main__" and sys.argv[1:] == ["--first-0010"]:
    with tempfile.TemporaryDirectory() as tmp:
        (HERE / "legacy-guids-first-0010.sql").write_text(FIRST_0010 + first_0010(Path(tmp)), encoding="utf-8")
elif __name__ == "__main__":
    for name, moved, what in (
        ("legacy-guids-0009.sql", False, "polled once at {server}/feeds/news.xml"),
        ("legacy-guids-moved-0009.sql", True, "polled at {server}/feeds/news.xml, then an hour later\n"
         "-- after it moved (301) to {server}/v2/news.rss, where its relative GUIDs were stored again"),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            (HERE / name).write_text(HEADER.format(what=what) + make(Path(tmp), moved), encoding="utf-8")
