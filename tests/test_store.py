"""The store: a real SQLite file, its pragmas, migrations, transactions and concurrent writers."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlite_utils import Database

from worker import store
from worker.errors import StoreError
from worker.models import Item
from tests.conftest import NOW, PROJECT


def make_item(n: int, **changes: object) -> Item:
    values: dict[str, object] = {
        "identity": f"test:{n}",
        "source": "feed",
        "title": f"Headline number {n}",
        "text": f"Body of article {n} about the Friendship Year.",
        "published_at": NOW,
        "first_seen_at": NOW,
        "content_sha256": f"{n:064x}",
    }
    values.update(changes)
    return Item(**values)  # type: ignore[arg-type]


def test_a_new_store_has_the_promised_pragmas(tmp_path: Path) -> None:
    db = store.open_store(tmp_path / "sub" / "sw.db", busy_timeout=12)
    assert db.execute("PRAGMA page_size").fetchone()[0] == 8192
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 12_000
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert {"feeds", "fetches", "items", "item_revisions", "storylines", "storyline_items", "digests"} <= set(
        db.table_names()
    )
    assert "items_fts" in db.table_names()
    assert store.schema_version(db) == store.MIGRATIONS._migrations[-1].name


def test_reopening_applies_nothing_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "sw.db"
    store.save_items(store.open_store(path), [make_item(1)])
    db = store.open_store(path)
    assert db["items"].count == 1
    assert len(store.MIGRATIONS.applied(db)) == len(store.MIGRATIONS._migrations)


def test_a_migration_that_fails_midway_leaves_none_of_its_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sw.db"
    latest = store.MIGRATIONS._migrations[-1]
    old = Database(sqlite3.connect(path))
    store.MIGRATIONS.apply(old, stop_before=latest.name)
    old.conn.close()

    real = latest.fn

    def killed_midway(db: Database) -> None:
        real(db)  # its statements ran (executescript: each one at once)...
        raise KeyboardInterrupt  # ...and the process stops before the migration is recorded

    monkeypatch.setattr(latest, "fn", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        store.open_store(path)
    monkeypatch.undo()
    db = store.open_store(path)  # the whole migration again, not "duplicate column name"
    assert store.schema_version(db) == latest.name
    assert schema(db) == schema(store.open_store(tmp_path / "fresh.db"))


def schema(db: Database) -> list[tuple[str, ...]]:
    return sorted(db.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall())


def test_migrations_upgrade_a_store_made_by_the_previous_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    latest = store.MIGRATIONS._migrations[-1].name
    old = Database(sqlite3.connect(path))
    store.MIGRATIONS.apply(old, stop_before=latest)  # the schema one version back
    assert latest not in {m.name for m in store.MIGRATIONS.applied(old)}
    old["items"].insert(
        {
            "identity": "old:1",
            "source": "feed",
            "title": "Stored before the upgrade",
            "text": "China-DPRK Friendship Year closing ceremony",
            "published_at": "2024-12-30T00:00:00Z",
            "first_seen_at": "2024-12-30T00:00:00Z",
            "content_sha256": "0" * 64,
        }
    )
    if "items_fts" in old.table_names():  # that version indexed new rows as it stored them
        old.execute("INSERT INTO items_fts(rowid, title, text) SELECT id, title, text FROM items")
    old.conn.commit()
    old.conn.close()

    db = store.open_store(path)
    assert store.schema_version(db) == latest
    assert [i.identity for i in store.find_items(db, search="closing ceremony")] == ["old:1"]
    store.save_items(db, [make_item(2)])
    assert db["items"].count == 2


def test_each_store_has_its_own_identity_made_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = Database(sqlite3.connect(path))
    store.MIGRATIONS.apply(old, stop_before="0011_store_identity")  # a store from before identities
    old.conn.close()
    key = store.identity_key(store.open_store(path))
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    db = store.open_store(path)  # reopened: the same identity
    assert store.identity_key(db) == key
    assert store.identity_key(store.open_store(tmp_path / "other.db")) != key
    with store.transaction(db):
        db.execute("DELETE FROM store_identity")  # lost: a new one is made, then kept
    new = store.identity_key(db)
    assert new != key and store.identity_key(store.open_store(path)) == new


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sw.db"
    db = store.open_store(path)
    db["_sqlite_migrations"].insert({"migration_set": "storywatch", "name": "9999_future", "applied_at": "x"})
    db.conn.close()
    with pytest.raises(StoreError, match="made by a newer storywatch"):
        store.open_store(path)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match=r"cannot use the store at .*notes\.db"):
        store.open_store(path)


def test_an_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the store"):
        store.open_store(blocker / "sw.db")


def test_save_items_ignores_known_identities(tmp_path: Path) -> None:
    db = store.open_store(tmp_path / "sw.db")
    first = store.save_items(db, [make_item(1), make_item(2)])
    again = store.save_items(db, [make_item(1), make_item(2), make_item(3)])
    assert first == [1, 2] and again == [0, 0, 3]  # 0: already stored, skipped
    assert db["items"].count == 3
    clusters = [r["cluster_id"] == r["id"] for r in db.query("SELECT id, cluster_id FROM items")]
    assert all(clusters)  # each new item starts its own cluster


def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    db = store.open_store(tmp_path / "sw.db")
    with pytest.raises(RuntimeError):
        with store.transaction(db):
            store.save_items(db, [make_item(1)])  # nested: a savepoint of the outer transaction
            raise RuntimeError("killed half-way")
    assert db["items"].count == 0
    assert not db.conn.in_transaction


WRITER = textwrap.dedent(
    """
    import sys, time, datetime as dt
    from pathlib import Path
    sys.path.insert(0, {project!r})
    from worker import store
    from worker.models import Item
    path, name, count, start = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    db = store.open_store(path, busy_timeout=30)
    while time.time() < start:
        time.sleep(0.001)
    for n in range(count):  # many small transactions, interleaving with the other writer
        item = Item(identity=f"{{name}}:{{n}}", source="feed", title=f"{{name}} {{n}}", text="x " * 300,
                    published_at=now, first_seen_at=now, content_sha256=f"{{name}}{{n}}")
        store.save_items(db, [item])
    """
)


def test_two_processes_writing_at_once_both_succeed(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    store.open_store(path).conn.close()
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(project=str(PROJECT)))
    import time

    start = str(time.time() + 1.0)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(path), name, "300", start], stderr=subprocess.PIPE, text=True)
        for name in ("a", "b")
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert not any("locked" in e for e in errors)
    db = store.open_store(path)
    assert db["items"].count == 600
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("Friendship Year", '"Friendship" "Year"'),
        ('"Friendship Year" Zhao', '"Friendship Year" "Zhao"'),
        ("NEAR( a AND b", '"NEAR" "a" "AND" "b"'),
        ("title:secret*", '"title secret"'),  # one token's words stay together, as a phrase
        ("Pak Myong-ho", '"Pak" "Myong ho"'),
        ('" "', '""'),
    ],
)
def test_search_text_becomes_a_safe_fts_query(text: str, query: str) -> None:
    assert store.fts_query(text) == query


def test_search_syntax_from_users_never_fails(tmp_path: Path) -> None:
    db = store.open_store(tmp_path / "sw.db")
    store.save_items(db, [make_item(1)])
    for text in ['NEAR(', '"unbalanced', "a OR", "*", "-x", "title:Friendship"]:
        store.find_items(db, search=text)  # no sqlite3.OperationalError
    assert [i.identity for i in store.find_items(db, search="friendship years")] == ["test:1"]  # stemmed


def test_the_full_text_index_catches_up_and_stays_consistent(tmp_path: Path) -> None:
    db = store.open_store(tmp_path / "sw.db")
    ids = store.save_items(db, [make_item(1), make_item(2, title="Zhao Leji in Pyongyang"), make_item(3)])
    # before the index has caught up: an edit and a deletion of rows it has not seen yet
    edited = make_item(1, title="Headline corrected", text="Closing ceremony of the Friendship Year")
    stored = store.known_for(db, [edited])[0][edited.identity]
    store.save_revision(db, stored, edited, ["title", "text"], "diff", NOW)
    db.execute("DELETE FROM items WHERE id = ?", [ids[2]])
    assert store.index_pending(db) == 2
    db.execute("INSERT INTO items_fts(items_fts) VALUES('integrity-check')")  # raises if corrupt
    assert [i.title for i in store.find_items(db, search="closing ceremony")] == ["Headline corrected"]
    # after: edits go through the triggers; a new item is found without waiting
    edited_again = make_item(2, title="Zhao Leji leaves Pyongyang")
    store.save_revision(db, store.known_for(db, [edited_again])[0][edited_again.identity], edited_again, ["title"], "d", NOW)
    store.save_items(db, [make_item(4, title="Kim meets Putin")])
    assert [i.title for i in store.find_items(db, search="Putin")] == ["Kim meets Putin"]
    assert [i.title for i in store.find_items(db, search="leaves")] == ["Zhao Leji leaves Pyongyang"]
    assert store.find_items(db, search="Zhao Leji in") == []
    db.execute("INSERT INTO items_fts(items_fts) VALUES('integrity-check')")
    assert store.save_items(db, [make_item(5)]) == [5]  # ids keep growing past a deleted one


def test_the_full_text_index_merges_eight_segments_at_a_time_and_finds_every_item(tmp_path: Path) -> None:
    """Each catching up writes a segment; eight of them are merged into one (not four: fewer
    rewrites of the same postings as the store grows), and every item is still found."""
    db = store.open_store(tmp_path / "sw.db")
    config = dict(db.execute("SELECT k, v FROM items_fts_config").fetchall())
    assert config["automerge"] == 8 and config["hashsize"] == 8 << 20
    for n in range(1, 41):
        store.save_items(db, [make_item(n, title=f"Headline {n} mentions word{n}")])
        assert store.index_pending(db) == 1  # a segment of its own
    db.execute("INSERT INTO items_fts(items_fts) VALUES('integrity-check')")
    pages = db.execute("SELECT count(*) FROM items_fts_data WHERE id >= 10").fetchone()[0]
    assert pages < 40  # merged: forty one-item segments would take a page each at least
    assert all([i.identity for i in store.find_items(db, search=f"word{n}")] == [f"test:{n}"] for n in range(1, 41))
    assert len(store.find_items(db, search="Friendship Year", limit=100)) == 40


def test_syncing_feeds_finds_each_stored_feed_however_its_address_is_written(tmp_path: Path) -> None:
    """The config's feeds are matched with the stored ones read once: by address, by the address
    a moved feed had in the config, by either written in another case or with a fragment; a feed
    listed under both its old and new address ends with the last entry's values."""
    from worker.config import FeedConfig

    db = store.open_store(tmp_path / "sw.db")
    store.sync_feeds(db, [FeedConfig("http://h.example/feed", name="x")], NOW)
    assert store.sync_feeds(db, [FeedConfig("HTTP://H.Example/feed#top", name="x")], NOW) == \
        {"added": 0, "updated": 0, "removed": 0}
    db.execute("UPDATE feeds SET url = 'http://h.example/new'")  # moved (301); config_url stays
    for written in ("HTTP://H.EXAMPLE/feed#x", "http://H.example/new"):
        assert store.sync_feeds(db, [FeedConfig(written, name="x")], NOW) == {"added": 0, "updated": 0, "removed": 0}
    assert store.sync_feeds(db, [], NOW) == {"added": 0, "updated": 0, "removed": 1}
    assert store.sync_feeds(db, [FeedConfig("http://h.example/feed", name="x2"),
                                 FeedConfig("http://h.example/new", name="x")], NOW)["updated"] == 2
    assert [(r["url"], r["name"], r["disabled_reason"]) for r in db.query("SELECT * FROM feeds")] == [
        ("http://h.example/new", "x", None)]
    counts = store.sync_feeds(db, [FeedConfig("http://h.example/a", name="a"), FeedConfig("http://h.example/new")], NOW)
    assert counts == {"added": 1, "updated": 1, "removed": 0}
