"""The store: the only module that speaks SQL (through sqlite-utils).

Opening a store (`open_store`) creates the file with 8 KiB pages, switches to WAL with
synchronous=NORMAL, sets a busy timeout so a second process waits for the lock instead of
failing, and applies pending migrations. Writes that belong together run in one
`transaction(db)` (BEGIN IMMEDIATE: the write lock is taken up front, so two writers queue
instead of deadlocking on a lock upgrade). The schema is documented in docs/schema.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import sqlite3
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from loguru import logger
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from worker.ingest.identity import guid_folder, legacy_guid_keys, split_guid_identity, unresolved_guid
from worker.clock import from_iso, to_iso
from worker.config import FeedConfig, StorylineConfig
from worker.errors import StoreError
from worker.safetext import without_password
from worker.models import (
    Feed, FeedHealth, FetchHistory, Fingerprint, FollowUp, Indexed, Item, ItemDetail, Placement, Revision, Stored, StoredItem,
    StoreStatus, StorylineDef, StorylineSummary, TimelineEntry, feed_address, index_source,
)

PAGE_SIZE = 8192
MIGRATIONS = Migrations("storywatch")


# ── schema history: append new migrations, never edit an applied one ─────────────────────


@MIGRATIONS(name="0001_core_tables")
def _core_tables(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE feeds (
            id INTEGER PRIMARY KEY,
            url TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL DEFAULT '',
            title TEXT,
            site_url TEXT,
            tags TEXT NOT NULL DEFAULT '[]',
            interval_s INTEGER,
            origin TEXT NOT NULL DEFAULT 'config',
            etag TEXT,
            last_modified TEXT,
            body_sha256 TEXT,
            next_poll_at TEXT,
            last_polled_at TEXT,
            last_success_at TEXT,
            error_count INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            last_status INTEGER,
            disabled_reason TEXT,
            created_at TEXT NOT NULL
        );
        CREATE TABLE fetches (
            id INTEGER PRIMARY KEY,
            feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
            started_at TEXT NOT NULL,
            status INTEGER,
            bytes INTEGER,
            ms INTEGER,
            new_items INTEGER NOT NULL DEFAULT 0,
            error TEXT
        );
        CREATE INDEX fetches_feed_started ON fetches(feed_id, started_at);
        CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            identity TEXT NOT NULL UNIQUE,
            feed_id INTEGER REFERENCES feeds(id),
            source TEXT NOT NULL CHECK (source IN ('feed', 'seeds', 'backfill')),
            guid TEXT,
            url TEXT,
            title TEXT NOT NULL,
            text TEXT NOT NULL,
            summary TEXT NOT NULL DEFAULT '',
            author TEXT NOT NULL DEFAULT '',
            publisher TEXT NOT NULL DEFAULT '',
            lang TEXT NOT NULL DEFAULT '',
            published_at TEXT NOT NULL,
            first_seen_at TEXT NOT NULL,
            content_sha256 TEXT NOT NULL,
            cluster_id INTEGER,
            revision INTEGER NOT NULL DEFAULT 1
        );
        CREATE INDEX items_published ON items(published_at);
        CREATE INDEX items_first_seen ON items(first_seen_at);
        CREATE INDEX items_content_sha256 ON items(content_sha256);
        CREATE INDEX items_url ON items(url);
        CREATE INDEX items_feed ON items(feed_id);
        CREATE INDEX items_cluster ON items(cluster_id);
        CREATE TABLE item_revisions (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            revision INTEGER NOT NULL,
            seen_at TEXT NOT NULL,
            title TEXT NOT NULL,
            text TEXT NOT NULL,
            content_sha256 TEXT NOT NULL,
            changed TEXT NOT NULL DEFAULT '[]',
            diff TEXT NOT NULL DEFAULT '',
            UNIQUE (item_id, revision)
        );
        CREATE TABLE storylines (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            keywords TEXT NOT NULL DEFAULT '[]',
            seeds TEXT NOT NULL DEFAULT '[]',
            origin TEXT NOT NULL DEFAULT 'config',
            active INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE storyline_items (
            storyline_id TEXT NOT NULL REFERENCES storylines(id) ON DELETE CASCADE,
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            decision TEXT NOT NULL CHECK (decision IN ('seed', 'followup')),
            score REAL,
            threshold REAL,
            reasons TEXT NOT NULL DEFAULT '{}',
            novelty TEXT NOT NULL DEFAULT '[]',
            decided_at TEXT NOT NULL,
            PRIMARY KEY (storyline_id, item_id)
        );
        CREATE INDEX storyline_items_item ON storyline_items(item_id);
        CREATE TABLE digests (
            id INTEGER PRIMARY KEY,
            day TEXT NOT NULL UNIQUE,
            period_start TEXT NOT NULL,
            period_end TEXT NOT NULL,
            created_at TEXT NOT NULL,
            path TEXT,
            status TEXT NOT NULL DEFAULT 'written',
            sent_at TEXT,
            recipients TEXT NOT NULL DEFAULT '[]',
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT
        );
        """
    )


@MIGRATIONS(name="0002_items_fts")
def _items_fts(db: Database) -> None:
    # New rows are indexed by save_items in one statement per batch (twice as fast as a row
    # trigger); edits and deletes are kept in step by triggers, whatever code path makes them.
    db.executescript(
        """
        CREATE VIRTUAL TABLE items_fts USING fts5(
            title, text, content=items, content_rowid=id, tokenize='porter'
        );
        INSERT INTO items_fts(rowid, title, text) SELECT id, title, text FROM items;
        CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN
            INSERT INTO items_fts(items_fts, rowid, title, text)
            VALUES ('delete', old.id, old.title, old.text);
        END;
        CREATE TRIGGER items_fts_update AFTER UPDATE OF title, text ON items BEGIN
            INSERT INTO items_fts(items_fts, rowid, title, text)
            VALUES ('delete', old.id, old.title, old.text);
            INSERT INTO items_fts(rowid, title, text) VALUES (new.id, new.title, new.text);
        END;
        """
    )


@MIGRATIONS(name="0003_polling_state")
def _polling_state(db: Database) -> None:
    db.executescript(
        """
        ALTER TABLE feeds ADD COLUMN config_url TEXT;
        ALTER TABLE feeds ADD COLUMN identity_policy TEXT NOT NULL DEFAULT 'guid';
        ALTER TABLE feeds ADD COLUMN public_origin INTEGER;
        ALTER TABLE feeds ADD COLUMN retry_after TEXT;
        ALTER TABLE items ADD COLUMN date_flag TEXT NOT NULL DEFAULT '';
        ALTER TABLE fetches ADD COLUMN kind TEXT NOT NULL DEFAULT 'ok';
        CREATE INDEX feeds_next_poll ON feeds(next_poll_at);
        CREATE INDEX feeds_config_url ON feeds(config_url);
        CREATE INDEX fetches_started ON fetches(started_at);
        """
    )


@MIGRATIONS(name="0004_dedupe_and_revisions")
def _dedupe_and_revisions(db: Database) -> None:
    db.executescript(
        """
        ALTER TABLE items ADD COLUMN raw_sha256 TEXT;
        ALTER TABLE items ADD COLUMN signature BLOB;
        ALTER TABLE items ADD COLUMN title_key TEXT NOT NULL DEFAULT '';
        ALTER TABLE items ADD COLUMN words INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE items ADD COLUMN dup_of INTEGER REFERENCES items(id);
        ALTER TABLE items ADD COLUMN dup_kind TEXT;
        ALTER TABLE items ADD COLUMN similarity REAL;
        ALTER TABLE items ADD COLUMN updated_at TEXT;
        ALTER TABLE feeds ADD COLUMN boilerplate TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE item_revisions ADD COLUMN url TEXT;
        ALTER TABLE item_revisions ADD COLUMN published_at TEXT;
        CREATE TABLE tombstones (
            key TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            pruned_at TEXT NOT NULL
        );
        CREATE INDEX items_dup_of ON items(dup_of);
        """
    )


@MIGRATIONS(name="0005_deferred_full_text")
def _deferred_full_text(db: Database) -> None:
    # New rows are indexed in bulk by index_pending (about half the cost a row of indexing each
    # feed's rows as they are stored). The triggers only touch rows already indexed: giving FTS5
    # a 'delete' for a row it never indexed would corrupt the index.
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO meta (key, value) SELECT 'fts_upto', coalesce(max(id), 0) FROM items;
        INSERT INTO meta (key, value) SELECT 'last_id', coalesce(max(id), 0) FROM items;
        DROP TRIGGER items_fts_delete;
        DROP TRIGGER items_fts_update;
        CREATE TRIGGER items_fts_delete AFTER DELETE ON items
        WHEN old.id <= (SELECT value FROM meta WHERE key = 'fts_upto') BEGIN
            INSERT INTO items_fts(items_fts, rowid, title, text)
            VALUES ('delete', old.id, old.title, old.text);
        END;
        CREATE TRIGGER items_fts_update AFTER UPDATE OF title, text ON items
        WHEN old.id <= (SELECT value FROM meta WHERE key = 'fts_upto') BEGIN
            INSERT INTO items_fts(items_fts, rowid, title, text)
            VALUES ('delete', old.id, old.title, old.text);
            INSERT INTO items_fts(rowid, title, text) VALUES (new.id, new.title, new.text);
        END;
        """
    )


@MIGRATIONS(name="0006_storyline_tracking")
def _storyline_tracking(db: Database) -> None:
    db.executescript(
        """
        ALTER TABLE storylines ADD COLUMN aliases TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE storylines ADD COLUMN exclude TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE storylines ADD COLUMN threshold REAL;
        ALTER TABLE storylines ADD COLUMN expires_after_s INTEGER;
        ALTER TABLE storylines ADD COLUMN profile_hash TEXT NOT NULL DEFAULT '';
        ALTER TABLE storyline_items ADD COLUMN closest_item_id INTEGER;
        ALTER TABLE storyline_items ADD COLUMN raw_score REAL;
        CREATE INDEX storyline_items_decided ON storyline_items(decided_at);
        CREATE TABLE suggestions (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            title TEXT NOT NULL,
            terms TEXT NOT NULL DEFAULT '[]',
            item_ids TEXT NOT NULL DEFAULT '[]',
            sources INTEGER NOT NULL,
            first_at TEXT NOT NULL,
            last_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'adopted', 'dismissed')),
            storyline_id TEXT
        );
        """
    )


@MIGRATIONS(name="0007_digest_delivery")
def _digest_delivery(db: Database) -> None:
    db.executescript("ALTER TABLE digests ADD COLUMN next_attempt_at TEXT;")


@MIGRATIONS(name="0008_cycles")
def _cycles(db: Database) -> None:
    # One row a polling cycle of the worker (pruned like the fetch log): `storywatch health`
    # and `storywatch metrics` read the last one.
    db.executescript(
        """
        CREATE TABLE cycles (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT NOT NULL,
            seconds REAL NOT NULL,
            interval_s REAL,
            feeds INTEGER NOT NULL DEFAULT 0,
            new_items INTEGER NOT NULL DEFAULT 0,
            followups INTEGER NOT NULL DEFAULT 0,
            errors INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX cycles_finished ON cycles(finished_at);
        """
    )


@MIGRATIONS(name="0009_digest_sender")
def _digest_sender(db: Database) -> None:
    # Which process is sending a digest, and since when: a digest another live process is
    # sending is neither sent again nor taken for one a stopped worker left half sent.
    db.executescript(
        """
        ALTER TABLE digests ADD COLUMN sender_pid INTEGER;
        ALTER TABLE digests ADD COLUMN sending_at TEXT;
        """
    )


@MIGRATIONS(name="0010_bare_guids_by_feed")
def _bare_guids_by_feed(db: Database) -> None:
    # As first released (commits 9820840 to 2f5423d) this re-keyed, in place, the keys it took
    # for bare GUIDs an older version had made into URLs against the feed's address. From a key
    # alone that cannot be told: it re-keyed URLs feeds write into their own folder and missed
    # relative GUIDs ("posts/17", "#20"), and either way the next poll stored entries again. It
    # now changes no key (polling re-keys an entry when it sees it: 0013_legacy_guid_keys) and
    # leaves this mark, so that 0013 knows a store the first release re-keyed by its absence.
    db.execute("INSERT INTO meta (key, value) VALUES (?, 0)", [_UNGUESSED_0010])


_UNGUESSED_0010 = "0010_rekeyed_nothing"


def _feed_addresses(db: Database) -> dict[str, tuple[str, ...]]:
    """Each feed's identity scope and the addresses it was read from: now, and before a move
    (the config's address stays in config_url)."""
    return {f"feed:{row['id']}": tuple(u for u in (row["url"], row["config_url"]) if u)
            for row in db.query("SELECT id, url, config_url FROM feeds")}


def _earlier_folders(db: Database, addresses: dict[str, tuple[str, ...]]) -> dict[str, set[str]]:
    """Folders a feed was read from before a move that the store no longer names (a feed added
    by hand or from OPML keeps no config_url). The old version stored each entry again after the
    move, as an exact copy in the entry's cluster: a GUID URL whose bare GUID and cluster are
    those of a row keyed against a known address shows that its folder was the feed's too."""
    known: set[tuple[str, int, str]] = set()
    maybe: list[tuple[str, int, str, str]] = []
    for row in db.query("SELECT identity, url, cluster_id FROM items WHERE identity GLOB 'feed:*:guid:*'"):
        scope, guid = split_guid_identity(row["identity"]) or ("", "")
        if bare := unresolved_guid(guid, addresses.get(scope, ()), row["url"]):
            known.add((scope, row["cluster_id"], bare))
        elif (folder := guid_folder(guid)) and (bare := unresolved_guid(guid, (folder,), row["url"])):
            maybe.append((scope, row["cluster_id"], bare, folder))
    found: dict[str, set[str]] = {}
    for scope, cluster, bare, folder in maybe:
        if (scope, cluster, bare) in known:
            found.setdefault(scope, set()).add(folder)
    return found


@MIGRATIONS(name="0011_store_identity")
def _store_identity(db: Database) -> None:
    # A random secret made once per store: the Message-ID of each digest email is derived from
    # it and the day, so a resend repeats it and no other store (another user's, a test store)
    # makes the same one. It needs no other migration's tables.
    db.execute("CREATE TABLE store_identity (key TEXT NOT NULL, created_at TEXT NOT NULL)")
    db.execute("INSERT INTO store_identity (key, created_at) VALUES (?, ?)",
               [secrets.token_hex(16), to_iso(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))])


@MIGRATIONS(name="0012_interrupted_cycles")
def _interrupted_cycles(db: Database) -> None:
    # Feeds a stop left undone in a cycle: more than 0 means the cycle was interrupted, and
    # `storywatch health` does not count it as one that finished.
    db.executescript("ALTER TABLE cycles ADD COLUMN stopped INTEGER NOT NULL DEFAULT 0;")


LEGACY_NONE, LEGACY_KEYS, LEGACY_FIRST_0010 = 0, 1, 2  # meta 'legacy_guid_keys'


@MIGRATIONS(name="0013_legacy_guid_keys")
def _legacy_guid_keys(db: Database) -> None:
    # Versions before 0010 keyed a GUID without a scheme ("posts/17") as the URL feedparser made
    # of it against the address the feed was read from; the keys alone do not say which were
    # made so. Polling finds them from the GUIDs as written (adopt_legacy_keys), against the
    # document's own address and the addresses the older version read each feed at, kept here:
    # its url, its config_url (before a move) and the folders its copies show (_earlier_folders).
    # meta 'legacy_guid_keys': LEGACY_NONE when no scope holds a key an older version could have
    # made (a new store: nothing is ever looked up), LEGACY_KEYS, or LEGACY_FIRST_0010 when 0010
    # as first released re-keyed the store (no mark of the later 0010).
    db.execute("CREATE TABLE legacy_guid_bases (scope TEXT NOT NULL, base TEXT NOT NULL, "
               "PRIMARY KEY (scope, base)) WITHOUT ROWID")
    first_0010 = _one(db, "SELECT value FROM meta WHERE key = ?", [_UNGUESSED_0010]) is None
    db.execute("DELETE FROM meta WHERE key = ?", [_UNGUESSED_0010])
    scopes = _legacy_scopes(db, any_guid=first_0010)
    addresses = _feed_addresses(db)
    for scope, folders in _earlier_folders(db, addresses).items():
        addresses[scope] = addresses.get(scope, ()) + tuple(sorted(folders))
    for scope in sorted(scopes):
        for base in addresses.get(scope, ()):
            db.execute("INSERT OR IGNORE INTO legacy_guid_bases (scope, base) VALUES (?, ?)", [scope, base])
    mode = LEGACY_NONE if not scopes else LEGACY_FIRST_0010 if first_0010 else LEGACY_KEYS
    db.execute("INSERT INTO meta (key, value) VALUES ('legacy_guid_keys', ?)", [mode])


@MIGRATIONS(name="0014_digest_send_phase")
def _digest_send_phase(db: Database) -> None:
    # How far a send got: "connecting" from the claim, "data" from just before the message is
    # handed over. A digest a killed sender left "connecting" was not sent (it is sent again);
    # one left at "data" may have arrived (unconfirmed). NULL: a send begun before this column,
    # taken for "data".
    db.executescript("ALTER TABLE digests ADD COLUMN send_phase TEXT;")


@MIGRATIONS(name="0015_digest_resend")
def _digest_resend(db: Database) -> None:
    # A resend of a sent or unconfirmed digest that fails must not lose that record: while it is
    # "sending", resend_of keeps the status it started from (the digest returns to it), and
    # resend_error says why the last resend failed (cleared once a send succeeds).
    db.executescript(
        """
        ALTER TABLE digests ADD COLUMN resend_of TEXT;
        ALTER TABLE digests ADD COLUMN resend_error TEXT;
        """
    )


@MIGRATIONS(name="0016_reader_marks")
def _reader_marks(db: Database) -> None:
    # A reader's judgement of an item for a storyline (`items mark`): followup 1 (yes) or 0 (no);
    # displaced: the tracker's own link the mark replaced or removed (JSON of the storyline_items
    # row, NULL if it had none), put back when the mark is cleared. meta 'marks_version' counts
    # changes, so that a running worker rebuilds its tracker.
    db.executescript(
        """
        CREATE TABLE marks (
            storyline_id TEXT NOT NULL REFERENCES storylines(id) ON DELETE CASCADE,
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            followup INTEGER NOT NULL CHECK (followup IN (0, 1)),
            marked_at TEXT NOT NULL,
            displaced TEXT,
            PRIMARY KEY (storyline_id, item_id)
        );
        CREATE INDEX marks_item ON marks(item_id);
        INSERT INTO meta (key, value) VALUES ('marks_version', 0);
        """
    )


@MIGRATIONS(name="0017_paused_storylines")
def _paused_storylines(db: Database) -> None:
    # A storyline the reader paused (`storylines pause`) stays inactive when the config is synced.
    db.executescript("ALTER TABLE storylines ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;")


@MIGRATIONS(name="0018_kept_digests")
def _kept_digests(db: Database) -> None:
    # The data a recorded digest was rendered from (worker.snapshot JSON): written again or sent
    # later, it is the same digest, whatever the store holds by then.
    db.executescript("ALTER TABLE digests ADD COLUMN snapshot TEXT;")


def _legacy_scopes(db: Database, *, any_guid: bool) -> set[str]:
    """The identity scopes ("feed:N", "backfill:KEY") holding a GUID key, of an item or of a
    tombstone, that an older version could have made by resolving a GUID: a web or file: URL
    (`any_guid`: any GUID key, when 0010 as first released may have made some bare)."""
    urls = "" if any_guid else "AND (g GLOB 'http://*' OR g GLOB 'https://*' OR g GLOB 'file:*')"
    found: set[str] = set()
    for table, column in (("items", "identity"), ("tombstones", "key")):
        sql = f"""
            SELECT DISTINCT scope FROM (
                SELECT substr({column}, 1, instr({column}, ':guid:') - 1) AS scope,
                       substr({column}, instr({column}, ':guid:') + 6) AS g
                FROM {table} WHERE {column} GLOB 'feed:*:guid:*' OR {column} GLOB 'backfill:*:guid:*')
            WHERE 1 {urls}"""
        found |= {row["scope"] for row in db.query(sql)
                  if split_guid_identity(f"{row['scope']}:guid:x")}  # a scope as guid_identity makes it
    return found


# ── opening ───────────────────────────────────────────────────────────────────────────────


def open_store(path: Path, *, busy_timeout: float = 30.0, shared: bool = False) -> Database:
    """Open (creating if needed) the store at `path` and bring its schema up to date.

    `shared`: the connection may be used from another thread than the one that opened it
    (the daemon's jobs run in the scheduler's threads), one thread at a time.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        is_new = not path.exists() or path.stat().st_size == 0
        conn = sqlite3.connect(path, timeout=busy_timeout, check_same_thread=not shared)
        db = Database(conn)
        if is_new:
            db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        db.enable_wal()
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        _migrate(db, path)
    except sqlite3.DatabaseError as exc:
        raise store_failure(path, exc) from None
    except OSError as exc:
        raise StoreError(f"cannot create the store at {path}: {exc.strerror}") from None
    return db


_DAMAGED = ("malformed", "corrupt")


def is_damage(exc: sqlite3.DatabaseError) -> bool:
    """SQLite found the file damaged (not busy, not read-only, not full)."""
    return any(word in str(exc).lower() for word in _DAMAGED)


def integrity_problem(db: Database, seconds: float) -> str | None:
    """SQLite's quick check of every page, given `seconds` at most (a large store is then left
    unchecked: None, as for a sound one); the first problem found, if any."""
    deadline = time.monotonic() + seconds
    db.conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
    try:
        first = db.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            return None
        raise
    finally:
        db.conn.set_progress_handler(None, 0)
    return None if first == "ok" else " ".join(str(first).split())


def store_failure(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    """What a user reads when SQLite fails on the store: for a damaged file, what to do."""
    if is_damage(exc):
        return StoreError(
            f"the store at {path} is damaged ({exc})",
            hint=f"stop the worker, then restore the store from a backup, or keep what is readable: "
                 f"sqlite3 {path} .recover | sqlite3 {path}.recovered, then move {path}.recovered to {path}")
    if "not a database" in str(exc).lower():
        return StoreError(f"cannot use the store at {path}: {exc}",
                          hint="check [storage] path; if this file was the store, restore it from a backup")
    if "full" in str(exc).lower():
        return StoreError(f"cannot write the store at {path}: {exc}",
                          hint="free space on its disk: what was stored before is kept, and the write is retried")
    if "readonly" in str(exc).lower():
        return StoreError(f"cannot write the store at {path}: {exc}",
                          hint=f"the file and its folder must be writable by user id {os.geteuid()}")
    return StoreError(f"cannot use the store at {path}: {exc}")


def _migrate(db: Database, path: Path) -> None:
    known = {m.name for m in MIGRATIONS._migrations}
    applied = {m.name for m in MIGRATIONS.applied(db)}
    if unknown := applied - known:
        raise StoreError(
            f"the store at {path} was made by a newer storywatch (migration {sorted(unknown)[0]})",
            hint="upgrade storywatch or point [storage] path at another file",
        )
    if not MIGRATIONS.pending(db):
        return
    with transaction(db):  # one process migrates; another waits, then finds nothing pending
        MIGRATIONS.apply(db)


def identity_key(db: Database) -> str:
    """The store's own random secret (migration 0011_store_identity), kept for the store's life;
    only copies of its file share it."""
    row = _one(db, "SELECT key FROM store_identity ORDER BY rowid LIMIT 1")
    return str(row["key"]) if row else _new_identity(db)


def _new_identity(db: Database) -> str:
    """A new secret, should the migration's row have been deleted."""
    with transaction(db):
        if row := _one(db, "SELECT key FROM store_identity ORDER BY rowid LIMIT 1"):
            return str(row["key"])  # another process made it first
        key = secrets.token_hex(16)
        db.execute("INSERT INTO store_identity (key, created_at) VALUES (?, ?)",
                   [key, to_iso(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))])
        return key


def schema_version(db: Database) -> str:
    applied = MIGRATIONS.applied(db)
    return applied[-1].name if applied else "(empty)"


_OPEN: weakref.WeakSet[Database] = weakref.WeakSet()  # stores inside an outermost transaction()


@contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """One atomic unit of writes. Nested calls become savepoints of the outer one.

    All or nothing when SQLite fails too: a failed COMMIT is rolled back (a full disk may leave
    the transaction open), and once SQLite has rolled the transaction back itself (an I/O
    error may), a nested call raises instead of writing in a transaction of its own.
    """
    if db in _OPEN or db.conn.in_transaction:
        check_open(db)
        with db.atomic():
            yield db
        return
    _begin(db)
    _OPEN.add(db)
    try:
        yield db
        check_open(db)
        db.conn.execute("COMMIT")
    except BaseException:
        db.rollback()  # a no-op if the error already ended the transaction
        raise
    finally:
        _OPEN.discard(db)


def check_open(db: Database, cause: str | None = None) -> None:
    """Raise if SQLite rolled back the transaction the caller is in (after an error it caught:
    `cause`, when known)."""
    if db in _OPEN and not db.conn.in_transaction:
        after = f" ({cause})" if cause else ""
        raise StoreError(f"the store rolled the transaction back after an error{after}: none of it was written")


LOCK_RETRIES = 3  # busy timeouts waited for the write lock before giving up


def _begin(db: Database) -> None:
    """Take the write lock, waiting up to the busy timeout LOCK_RETRIES times: SQLite's busy
    handler is not a queue, so under several busy writers one may lose every race for a while.
    Nothing has been written yet, so trying again is safe."""
    for attempt in range(1, LOCK_RETRIES + 1):
        try:
            db.conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or attempt == LOCK_RETRIES:
                raise
            logger.warning("The store is busy (another process is writing); waiting again ({n}/{max})",
                           n=attempt, max=LOCK_RETRIES - 1)


# ── feeds ─────────────────────────────────────────────────────────────────────────────────


def sync_feeds(db: Database, feeds: Sequence[FeedConfig], now: dt.datetime) -> dict[str, int]:
    """Make the store's config feeds match `feeds`: add, update, and disable removed ones.

    A feed that moved (301/308) is found by the URL the config still gives (`config_url`),
    so the old address is not added again.
    """
    counts = {"added": 0, "updated": 0, "removed": 0}
    kept: set[int] = set()
    with transaction(db):
        for feed in feeds:
            row = _one(db, "SELECT * FROM feeds WHERE url = ? OR config_url = ? ORDER BY url = ? DESC", [feed.url] * 3) \
                or _row_at_address(db, feed.url)
            values = {
                "name": feed.name,
                "tags": json.dumps(list(feed.tags)),
                "interval_s": int(feed.interval.total_seconds()) if feed.interval else None,
            }
            if row is None:
                cursor = db.execute(
                    "INSERT INTO feeds (url, config_url, origin, created_at, name, tags, interval_s) "
                    "VALUES (?, ?, 'config', ?, ?, ?, ?)",
                    [feed.url, feed.url, to_iso(now), values["name"], values["tags"], values["interval_s"]],
                )
                kept.add(int(cursor.lastrowid or 0))
                counts["added"] += 1
                continue
            kept.add(row["id"])
            if row["origin"] != "config" or row["disabled_reason"] in REMOVED or _changed(row, values):
                db.table("feeds").update(row["id"], {**values, "origin": "config", "disabled_reason": _still_disabled(row)})
                counts["updated"] += 1
        for row in db.query("SELECT id, disabled_reason FROM feeds WHERE origin = 'config' "
                            "AND (disabled_reason IS NULL OR disabled_reason != ?)", [REMOVED_FROM_CONFIG]):
            if row["id"] not in kept:
                # A disabled one (by the reader, a 410) becomes the reader's as it is, to enable or remove.
                change = {"disabled_reason": REMOVED_FROM_CONFIG} if row["disabled_reason"] is None else {"origin": "cli"}
                db.table("feeds").update(row["id"], change)
                counts["removed"] += 1
    return counts


def feed_at_address(db: Database, url: str) -> Feed | None:
    """The stored feed at `url` (or at the address the config gives a feed that moved), however
    its scheme and host are written (HTTP://Host/feed#top for http://host/feed)."""
    row = _row_at_address(db, url)
    return _feed(row) if row else None


def _row_at_address(db: Database, url: str) -> dict[str, Any] | None:
    wanted = feed_address(url)
    return next((row for row in db.query("SELECT * FROM feeds ORDER BY id")
                 if wanted in (feed_address(row["url"]), feed_address(row["config_url"] or ""))), None)


def _still_disabled(row: dict[str, Any]) -> str | None:
    """Putting a feed (back) in the config enables it, unless it is disabled (by the reader, a 410)."""
    reason = row["disabled_reason"]
    return None if reason in REMOVED else reason


REMOVED_FROM_CONFIG = "removed from the config"


def _changed(row: dict[str, Any], values: dict[str, Any]) -> bool:
    return any(row[key] != value for key, value in values.items())


def _one(db: Database, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
    return next(iter(db.query(sql, params)), None)


def add_feed(db: Database, url: str, now: dt.datetime, *, name: str = "", tags: Sequence[str] = (),
             interval: dt.timedelta | None = None, origin: str = "cli", title: str = "") -> bool:
    """Add a feed by hand (CLI, OPML); False when that address is already known. A feed the
    reader removed comes back with its items and polling state. `title`: the feed's own, if it
    was read (shown until the first poll)."""
    settings = {"name": name, "tags": json.dumps(list(tags)), "origin": origin, "title": title or None,
                "interval_s": int(interval.total_seconds()) if interval else None}
    with transaction(db):
        row = _one(db, "SELECT id, name, disabled_reason FROM feeds WHERE url = ? OR config_url = ?", [url, url])
        if row and row["disabled_reason"] in REMOVED:  # back, kept here now
            given = {k: v for k, v in settings.items() if v not in ("", "[]", None)}  # else as it was
            if "name" not in given and name_taken(db, row["name"], row["id"]):
                given["name"] = ""  # another feed has its old name since: shown by its title
            db.table("feeds").update(row["id"], {**given, "disabled_reason": None, "next_poll_at": None})
            return True
        if row:
            return False
        db.table("feeds").insert({"url": url, **settings, "created_at": to_iso(now)})
    return True


def name_taken(db: Database, name: str, but: int | None = None) -> bool:
    """Whether a feed other than `but` (and not removed) goes by `name`: its name, or its title
    when it has none, as `feeds_matching` finds a feed by name. A name must find one feed."""
    return bool(name.strip()) and _one(
        db, "SELECT 1 FROM feeds WHERE id IS NOT ? AND (lower(name) = lower(?) OR (name = '' AND lower(title) = lower(?))) "
            "AND (disabled_reason IS NULL OR disabled_reason NOT IN (?, ?))", [but, name, name, *REMOVED]) is not None


REMOVED_BY_YOU = "removed by you"
DISABLED_BY_YOU = "by you"
REMOVED = (REMOVED_FROM_CONFIG, REMOVED_BY_YOU)  # hidden from listings; added or put in the config again, it is back
CHOSEN = (*REMOVED, DISABLED_BY_YOU)  # a feed that answers stays as the reader left it


def feeds_matching(db: Database, key: str) -> list[Feed]:
    """The feeds a user names: by address (as stored, as the config gives it, or as shown with
    its password masked), else by name or title (any case)."""
    every = list(db.query("SELECT * FROM feeds ORDER BY id"))
    rows = [row for row in every if key in (row["url"], row["config_url"])]
    rows = rows or [row for row in every if key == without_password(row["url"])]  # may be several logins
    if not rows:
        rows = list(db.query("SELECT * FROM feeds WHERE lower(name) = lower(?) OR (name = '' AND lower(title) = lower(?)) "
                             "ORDER BY id", [key, key]))
        present = [row for row in rows if row["disabled_reason"] not in REMOVED]
        rows = present or rows  # a removed feed's name passes to the feed that took it
    return [_feed(row) for row in rows]


def feed_item_count(db: Database, feed_id: int) -> int:
    row = _one(db, "SELECT count(*) AS n FROM items WHERE feed_id = ?", [feed_id])
    return int(row["n"]) if row else 0


def set_feed_settings(db: Database, feed_id: int, *, name: str | None = None, tags: Sequence[str] | None = None,
                      interval: dt.timedelta | None | bool = False) -> None:
    """Change what is given of a feed's name, tags and interval (None: the default; False: kept)."""
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = name
    if tags is not None:
        values["tags"] = json.dumps(list(tags))
    if interval is not False:
        values["interval_s"] = int(interval.total_seconds()) if isinstance(interval, dt.timedelta) else None
    if values:
        with transaction(db):
            db.table("feeds").update(feed_id, values)


def set_feed_disabled(db: Database, feed_id: int, reason: str | None) -> None:
    """Disable a feed for `reason` (None: enable it, polled at the next cycle)."""
    with transaction(db):
        update_feed(db, feed_id, disabled_reason=reason, next_poll_at=None)


def feeds_to_poll(db: Database, now: dt.datetime, *, force: bool = False, url: str | None = None) -> list[Feed]:
    """Feeds due now (all active ones with `force`); `url` picks one feed, even a disabled one."""
    if url is not None:
        rows = db.query("SELECT * FROM feeds WHERE url = ? OR config_url = ?", [url, url])
    elif force:
        rows = db.query("SELECT * FROM feeds WHERE disabled_reason IS NULL ORDER BY id")
    else:
        rows = db.query(
            "SELECT * FROM feeds WHERE disabled_reason IS NULL AND (next_poll_at IS NULL OR next_poll_at <= ?) "
            "ORDER BY next_poll_at IS NOT NULL, next_poll_at, id",
            [to_iso(now)],
        )
    return [_feed(row) for row in rows]


def feeds_by_url(db: Database) -> dict[str, Feed]:
    """Every stored feed under its address and the address the config gives (disabled ones too)."""
    found: dict[str, Feed] = {}
    for row in db.query("SELECT * FROM feeds ORDER BY id"):
        feed = _feed(row)
        for url in (row["url"], row["config_url"]):
            if url:
                found.setdefault(url, feed)
    return found


def _feed(row: dict[str, Any]) -> Feed:
    return Feed(
        id=row["id"],
        url=row["url"],
        name=row["name"],
        title=row["title"],
        origin=row["origin"],
        interval=dt.timedelta(seconds=row["interval_s"]) if row["interval_s"] else None,
        etag=row["etag"],
        last_modified=row["last_modified"],
        body_sha256=row["body_sha256"],
        error_count=row["error_count"],
        identity_policy=row["identity_policy"],
        public_origin=None if row["public_origin"] is None else bool(row["public_origin"]),
        disabled_reason=row["disabled_reason"],
        next_poll_at=_maybe_time(row["next_poll_at"]),
        boilerplate=row["boilerplate"],
    )


_FEED_STATE = {
    "url", "title", "site_url", "etag", "last_modified", "body_sha256", "next_poll_at", "last_polled_at",
    "last_success_at", "error_count", "last_error", "last_status", "disabled_reason", "identity_policy",
    "public_origin", "retry_after", "config_url", "boilerplate",
}


def update_feed(db: Database, feed_id: int, **state: Any) -> None:
    """Write a feed's polling state; datetimes are stored as ISO text.

    Plain SQL: this runs once a feed a cycle, and sqlite-utils' update() inspects the table
    and reads the row first (about a millisecond a feed).
    """
    unknown = set(state) - _FEED_STATE
    if unknown:
        raise ValueError(f"not a feed state column: {sorted(unknown)}")
    columns = ", ".join(f"{name} = ?" for name in state)
    values = [to_iso(v) if isinstance(v, dt.datetime) else v for v in state.values()]
    db.execute(f"UPDATE feeds SET {columns} WHERE id = ?", [*values, feed_id])


def url_taken(db: Database, url: str, feed_id: int) -> bool:
    return _one(db, "SELECT id FROM feeds WHERE url = ? AND id != ?", [url, feed_id]) is not None


def record_fetch(
    db: Database, feed_id: int, started_at: dt.datetime, *, kind: str, status: int | None = None,
    size: int = 0, ms: int = 0, new_items: int = 0, error: str | None = None,
) -> None:
    db.execute(
        "INSERT INTO fetches (feed_id, started_at, kind, status, bytes, ms, new_items, error) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [feed_id, to_iso(started_at), kind, status, size, ms, new_items, error],
    )


def prune_fetches(db: Database, before: dt.datetime) -> int:
    """Drop fetch log rows older than `before`; returns how many."""
    with transaction(db):
        return db.execute("DELETE FROM fetches WHERE started_at < ?", [to_iso(before)]).rowcount


def publication_times(db: Database, feed_id: int, since: dt.datetime) -> list[dt.datetime]:
    rows = db.execute(
        "SELECT published_at FROM items WHERE feed_id = ? AND published_at >= ?", [feed_id, to_iso(since)]
    ).fetchall()
    return [from_iso(r[0]) for r in rows]


# ── items ─────────────────────────────────────────────────────────────────────────────────


def save_items(
    db: Database, items: Sequence[Item], placements: Sequence[Placement] | None = None
) -> list[int]:
    """Insert items whose identity is not stored yet; return the new rows' ids (0: skipped).

    Ids are assigned here, under the write lock, so an item's cluster is set in the same
    statement (its own id, or the cluster of the item it copies). They always grow (never reuse
    a pruned id): the full-text index catches up with every id above its mark (index_pending).
    """
    ids: list[int] = []
    with transaction(db):
        next_id = _last_id(db) + 1
        for n, item in enumerate(items):
            place = placements[n] if placements else Placement()
            dup_of = place.dup_of if place.dup_of_batch is None else ids[place.dup_of_batch]
            cluster = _cluster_of(db, place, ids) or next_id
            cursor = db.execute(
                f"INSERT INTO items (id, cluster_id, dup_of, dup_kind, similarity, {_ITEM_COLUMNS}) "
                f"VALUES (?, ?, ?, ?, ?, {_ITEM_PLACEHOLDERS}) ON CONFLICT(identity) DO NOTHING",
                [next_id, cluster, dup_of or None, place.dup_kind, place.similarity, *_item_row(item)],
            )
            ids.append(next_id if cursor.rowcount else 0)
            next_id += 1 if cursor.rowcount else 0
        db.execute("UPDATE meta SET value = ? WHERE key = 'last_id'", [next_id - 1])
    return ids


def _last_id(db: Database) -> int:
    """The highest item id ever given: the counter, or a row someone added another way."""
    row = db.execute(
        "SELECT max(coalesce((SELECT max(id) FROM items), 0), (SELECT value FROM meta WHERE key = 'last_id'))"
    ).fetchone()
    return int(row[0])


FTS_CHUNK = 2000  # items indexed per transaction: another process never waits long for the write lock


def index_pending(db: Database) -> int:
    """Add the items stored since the last call to the full-text index, a chunk of ids per
    transaction (a backfill may leave 100,000 to index while the daemon wants to write)."""
    added = 0
    while True:
        with transaction(db):
            upto = int(db.execute("SELECT value FROM meta WHERE key = 'fts_upto'").fetchone()[0])
            newest = min(_last_id(db), upto + FTS_CHUNK)
            if newest <= upto:
                return added
            added += db.execute(
                "INSERT INTO items_fts(rowid, title, text) SELECT id, title, text FROM items "
                "WHERE id > ? AND id <= ? ORDER BY id", [upto, newest],
            ).rowcount
            db.execute("UPDATE meta SET value = ? WHERE key = 'fts_upto'", [newest])


def _cluster_of(db: Database, place: Placement, ids: list[int]) -> int | None:
    if place.cluster_id is not None:
        return place.cluster_id
    if place.dup_of_batch is not None and ids[place.dup_of_batch]:
        row = db.execute("SELECT cluster_id FROM items WHERE id = ?", [ids[place.dup_of_batch]]).fetchone()
        return int(row[0])
    return None


_ITEM_FIELDS = (
    "identity", "feed_id", "source", "guid", "url", "title", "text", "summary", "author",
    "publisher", "lang", "published_at", "first_seen_at", "content_sha256", "date_flag",
)
_PRINT_FIELDS = ("raw_sha256", "signature", "title_key", "words")
_NO_PRINT = (None, None, "", 0)  # an item stored without a fingerprint (filled in by the next init)
_ITEM_COLUMNS = ", ".join(_ITEM_FIELDS + _PRINT_FIELDS)
_ITEM_PLACEHOLDERS = ", ".join("?" for _ in _ITEM_FIELDS + _PRINT_FIELDS)


def _item_row(item: Item) -> list[Any]:
    values = [getattr(item, field) for field in _ITEM_FIELDS]
    values[_ITEM_FIELDS.index("published_at")] = to_iso(item.published_at)
    values[_ITEM_FIELDS.index("first_seen_at")] = to_iso(item.first_seen_at)
    marks = item.fingerprint
    return values + ([getattr(marks, f) for f in _PRINT_FIELDS] if marks else list(_NO_PRINT))


def known_for(db: Database, items: Sequence[Item]) -> tuple[dict[str, Stored], dict[str, tuple[int, int]], frozenset[str]]:
    """What the store holds for a batch: versions by identity, first items by content hash,
    and the identities and hashes that retention pruned."""
    identities = [i.identity for i in items]
    hashes = list({i.content_sha256 for i in items})
    versions = {
        row["identity"]: _stored(row)
        for row in _in_chunks(db, "SELECT * FROM items WHERE identity IN ({})", identities)
    }
    by_hash: dict[str, tuple[int, int]] = {}
    sql = "SELECT content_sha256, min(id) AS id FROM items WHERE content_sha256 IN ({}) GROUP BY content_sha256"
    for row in _in_chunks(db, sql, hashes):
        by_hash[row["content_sha256"]] = (row["id"], _cluster_id(db, row["id"]))
    tombstoned = frozenset(row["key"] for row in _in_chunks(db, "SELECT key FROM tombstones WHERE key IN ({})", identities + hashes))
    return versions, by_hash, tombstoned


def _cluster_id(db: Database, item_id: int) -> int:
    return int(db.execute("SELECT cluster_id FROM items WHERE id = ?", [item_id]).fetchone()[0])


def _in_chunks(db: Database, sql: str, values: Sequence[Any]) -> Iterator[dict[str, Any]]:
    """Run `sql` with its IN (…) filled by `values`, 500 at a time (SQLite's variable limit)."""
    for i in range(0, len(values), 500):
        chunk = values[i : i + 500]
        yield from db.query(sql.format(", ".join("?" for _ in chunk)), chunk)


def _stored(row: dict[str, Any]) -> Stored:
    return Stored(
        id=row["id"],
        identity=row["identity"],
        feed_id=row["feed_id"],
        cluster_id=row["cluster_id"],
        title=row["title"],
        text=row["text"],
        url=row["url"],
        published_at=from_iso(row["published_at"]),
        raw_sha256=row["raw_sha256"],
        revision=row["revision"],
        publisher=row.get("publisher") or "",
        source=row.get("source") or "",
        date_flag=row.get("date_flag") or "",
    )


def save_revision(db: Database, stored: Stored, new: Item, changes: Sequence[str], diff: str, now: dt.datetime) -> int:
    """Keep the stored version as a revision row and make `new` the item's current version."""
    with transaction(db):
        db.execute(
            "INSERT INTO item_revisions (item_id, revision, seen_at, title, text, url, published_at, "
            "content_sha256, changed, diff) SELECT id, revision, ?, title, text, url, published_at, "
            "content_sha256, ?, ? FROM items WHERE id = ?",
            [to_iso(now), json.dumps(list(changes)), diff, stored.id],
        )
        refresh_item(db, stored.id, new, now, revision=stored.revision + 1)
    return stored.revision + 1


def refresh_item(db: Database, item_id: int, new: Item, now: dt.datetime, *, revision: int | None = None) -> None:
    """Make `new` the item's current text (a revision, or a trivial change kept silently)."""
    marks = new.fingerprint
    values: dict[str, Any] = {
        "title": new.title, "text": new.text, "summary": new.summary, "url": new.url, "author": new.author,
        "published_at": to_iso(new.published_at), "content_sha256": new.content_sha256, "updated_at": to_iso(now),
    }
    if marks:
        values |= {f: getattr(marks, f) for f in _PRINT_FIELDS}
    if revision is not None:
        values["revision"] = revision
    columns = ", ".join(f"{k} = ?" for k in values)
    db.execute(f"UPDATE items SET {columns} WHERE id = ?", [*values.values(), item_id])


def item_text(db: Database, item_id: int) -> tuple[str, str, str] | None:
    """An item's title and text, with its feed's learned boilerplate (JSON)."""
    row = db.execute(
        "SELECT items.title, items.text, feeds.boilerplate FROM items LEFT JOIN feeds ON feeds.id = items.feed_id "
        "WHERE items.id = ?",
        [item_id],
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2] or "{}")


_ENTRY = "SELECT id, feed_id, cluster_id, published_at, signature, title_key, words, identity FROM items"


def index_entries(
    db: Database, since: dt.datetime, until: dt.datetime, feed_id: int | None = None
) -> Iterator[Indexed]:
    """Fingerprints of the items published in [since, until] (of one feed, when given), oldest
    first, to rebuild the index."""
    sql = f"{_ENTRY} WHERE published_at >= ? AND published_at <= ? AND signature IS NOT NULL"
    params: list[Any] = [to_iso(since), to_iso(until)]
    if feed_id is not None:
        sql += " AND feed_id = ?"
        params.append(feed_id)
    yield from map(_entry, db.execute(sql + " ORDER BY published_at, id", params))


def entries_after(db: Database, item_id: int) -> Iterator[Indexed]:
    """Fingerprints of the items stored after `item_id` (ids only grow), whatever their time."""
    yield from map(_entry, db.execute(f"{_ENTRY} WHERE id > ? AND signature IS NOT NULL ORDER BY id", [item_id]))


def _entry(row: Sequence[Any]) -> Indexed:
    return Indexed(row[0], index_source(row[1], row[7]), row[2], from_iso(row[3]), row[4], row[5], row[6])


def data_version(db: Database) -> int:
    """A number that changes when another connection commits to the store (never for this
    connection's own commits); reading it costs no page read."""
    return int(db.execute("PRAGMA data_version").fetchone()[0])


def write_marks(db: Database) -> tuple[int, int]:
    """(the highest item id, how often stored fingerprints were recomputed): with
    `entries_after`, what an in-memory index needs to catch up with other processes' writes."""
    row = db.execute("SELECT coalesce((SELECT max(id) FROM items), 0), "
                     "coalesce((SELECT value FROM meta WHERE key = 'reprints'), 0)").fetchone()
    return int(row[0]), int(row[1])


def count_reprint(db: Database) -> int:
    """Stored fingerprints were recomputed (other processes' indexes must reload): the new count."""
    db.execute("INSERT INTO meta (key, value) VALUES ('reprints', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1")
    return write_marks(db)[1]


def unprinted_items(db: Database, limit: int = 1000) -> list[dict[str, Any]]:
    """Items stored before fingerprints existed (made by an older version), to fill in."""
    return list(db.query("SELECT id, title, text, feed_id FROM items WHERE signature IS NULL LIMIT ?", [limit]))


def set_fingerprint(db: Database, item_id: int, content_sha256: str, marks: Fingerprint) -> None:
    db.execute(
        "UPDATE items SET content_sha256 = ?, raw_sha256 = ?, signature = ?, title_key = ?, words = ? "
        "WHERE id = ?",
        [content_sha256, *(getattr(marks, f) for f in _PRINT_FIELDS), item_id],
    )


def prune_items(db: Database, before: dt.datetime, now: dt.datetime) -> int:
    """Delete the clusters whose newest item was published before `before`, leaving tombstones
    (identities and content hashes) so those items are never ingested again."""
    with transaction(db):
        old = "SELECT cluster_id FROM items GROUP BY cluster_id HAVING max(published_at) < ?"
        db.execute(
            "INSERT OR IGNORE INTO tombstones (key, kind, pruned_at) "
            f"SELECT identity, 'identity', ? FROM items WHERE cluster_id IN ({old}) "
            f"UNION SELECT content_sha256, 'content', ? FROM items WHERE cluster_id IN ({old})",
            [to_iso(now), to_iso(before), to_iso(now), to_iso(before)],
        )
        db.execute("DELETE FROM item_revisions WHERE item_id IN (SELECT id FROM items WHERE cluster_id IN "
                   f"({old}))", [to_iso(before)])
        db.execute("DELETE FROM storyline_items WHERE item_id IN (SELECT id FROM items WHERE cluster_id IN "
                   f"({old}))", [to_iso(before)])
        db.execute(f"UPDATE items SET dup_of = NULL WHERE cluster_id IN ({old})", [to_iso(before)])
        pruned: int = db.execute(f"DELETE FROM items WHERE cluster_id IN ({old})", [to_iso(before)]).rowcount
        if pruned:
            count_reprint(db)  # another worker's dedupe window still holds them: it reloads from the store
        return pruned


def adopt_legacy_keys(db: Database, items: Sequence[Item], batch: set[str]) -> int:
    """Rows an older version stored for these items under keys it made otherwise take the
    items' keys, in place (same row, same id; `guid` as written): `items` are a batch's items
    no row or tombstone holds the key of, `batch` the keys of the whole batch. Returns how many
    rows were re-keyed or tombstones added.

    Versions before migration 0010 made a GUID without a scheme into a URL against the address
    the document was read from (legacy_guid_keys): for an item keyed by an XML feed's
    GUID, its key is looked for as that version made it, against the item's document and each
    address it read the feed at (legacy_guid_bases), and in a store that 0010 as first released
    re-keyed, as that made it too. A row found is the one the older version would have matched
    the entry to, so it is this entry's (the lowest id when several: the original its copies
    point to); a tombstone found refuses the item under its key too. A key that an item of the
    batch has as its own is not taken: that row is that item's. In a store no older version
    wrote, nothing is looked up.
    """
    mode = _one(db, "SELECT value FROM meta WHERE key = 'legacy_guid_keys'")
    if not mode or not mode["value"]:
        return 0
    bases: dict[str, list[str]] = {}
    wanted: dict[str, tuple[Item, list[str]]] = {}
    for item in items:
        scope = split_guid_identity(item.identity)
        if not item.guid or not item.guid_base or scope is None or item.identity in wanted:
            continue
        if scope[0] not in bases:
            bases[scope[0]] = [row["base"] for row in db.query(
                "SELECT base FROM legacy_guid_bases WHERE scope = ? ORDER BY base", [scope[0]])]
        keys = legacy_guid_keys(item.identity, item.guid, [item.guid_base, *bases[scope[0]]],
                                          first_0010=mode["value"] == LEGACY_FIRST_0010)
        if keys := [k for k in keys if k not in batch]:
            wanted[item.identity] = (item, keys)
    if not wanted:
        return 0
    every = sorted({k for _, keys in wanted.values() for k in keys})
    rows = {row["identity"]: int(row["id"]) for row in _in_chunks(db, "SELECT id, identity FROM items WHERE identity IN ({})", every)}
    stones = {row["key"]: row["pruned_at"] for row in _in_chunks(
        db, "SELECT key, pruned_at FROM tombstones WHERE kind = 'identity' AND key IN ({})", every)}
    taken: set[int] = set()
    changed = 0
    for identity, (item, keys) in wanted.items():
        if found := sorted(rows[k] for k in keys if k in rows and rows[k] not in taken):
            db.execute("UPDATE items SET identity = ?, guid = ? WHERE id = ?", [identity, item.guid, found[0]])
            taken.add(found[0])
            changed += 1
        elif pruned := next((stones[k] for k in keys if k in stones), None):
            db.execute("INSERT OR IGNORE INTO tombstones (key, kind, pruned_at) VALUES (?, 'identity', ?)",
                       [identity, pruned])
            changed += 1
    return changed


def known_identities(db: Database, identities: Sequence[str]) -> set[str]:
    """Which of these identities are stored already."""
    return {row["identity"] for row in _in_chunks(db, "SELECT identity FROM items WHERE identity IN ({})", identities)}


def known_feed_urls(db: Database, feed_id: int, urls: Sequence[str]) -> set[str]:
    """Which of these links the feed already has an item for (under any identity policy)."""
    sql = f"SELECT url FROM items WHERE feed_id = {int(feed_id)} AND url IN ({{}})"
    return {row["url"] for row in _in_chunks(db, sql, urls)}


def item_id_by_identity(db: Database, identity: str) -> int | None:
    row = _one(db, "SELECT id FROM items WHERE identity = ?", [identity])
    return None if row is None else int(row["id"])


def original_ids_by_url(db: Database, url: str) -> list[int]:
    """The stored stories (originals, not copies) with this link, oldest first."""
    return [int(row["id"]) for row in db.query("SELECT id FROM items WHERE url = ? AND dup_of IS NULL ORDER BY id", [url])]


def find_items(
    db: Database,
    *,
    since: dt.datetime | None = None,
    storyline: str | None = None,
    search: str | None = None,
    limit: int = 50,
    copies: bool = True,
) -> list[StoredItem]:
    """Items newest first (best match first when searching), with the storylines they belong to;
    without `copies`, only originals."""
    joins, where, params, order = _item_filter(db, since, storyline, search)
    if not copies:
        where += " AND items.dup_of IS NULL"
    sql = f"SELECT {_LISTED} FROM items {joins} WHERE {where} ORDER BY {order} LIMIT ?"
    return [_stored_item(row) for row in db.query(sql, [*params, limit])]


def count_copies(db: Database, *, since: dt.datetime | None = None, storyline: str | None = None,
                 search: str | None = None) -> int:
    """How many copies `find_items` leaves out without `copies` (the same filters)."""
    joins, where, params, _ = _item_filter(db, since, storyline, search)
    row = _one(db, f"SELECT count(*) AS n FROM items {joins} WHERE {where} AND items.dup_of IS NOT NULL", params)
    return int(row["n"]) if row else 0


def _item_filter(db: Database, since: dt.datetime | None, storyline: str | None,
                 search: str | None) -> tuple[str, str, list[Any], str]:
    """The joins, condition, parameters and order of an items listing."""
    where, params, joins = ["1"], [], ""
    order = "items.published_at DESC, items.id DESC"
    words, unspaced = _search_terms(search or "")
    if words:
        index_pending(db)  # every stored item is searchable
        joins = "JOIN items_fts ON items_fts.rowid = items.id"
        where.append("items_fts MATCH ?")
        params.append(fts_query(words))
        order = "items_fts.rank, " + order
    for term in unspaced:  # a scan, as the index reads "北朝鮮と中国" as one word
        where.append("instr(items.title || ' ' || items.text, ?) > 0")
        params.append(term)
    if since:
        where.append("items.published_at >= ?")
        params.append(to_iso(since))
    if storyline:
        where.append("items.id IN (SELECT item_id FROM storyline_items WHERE storyline_id = ?)")
        params.append(storyline)
    return joins, " AND ".join(where), params, order


def _publisher(items: str) -> str:
    """SQL: who published an item as listings show it: its feed's name, else its title (as they are
    now: a feed renamed or titled since is shown so), else the publisher stored with the item."""
    return (f"coalesce((SELECT coalesce(nullif(f.name, ''), nullif(f.title, '')) FROM feeds f WHERE f.id = {items}.feed_id), "
            f"{items}.publisher) AS publisher")


_LISTED = (
    f"items.id, items.identity, items.source, items.title, items.url, {_publisher('items')}, items.published_at, "
    "items.first_seen_at, items.cluster_id, items.revision, items.dup_of, items.dup_kind, "
    "(SELECT json_group_array(storyline_id) FROM storyline_items WHERE item_id = items.id) AS sl"
)


def item_detail(db: Database, item_id: int) -> ItemDetail | None:
    row = _one(db, f"SELECT {_LISTED}, items.text, items.summary, items.author, items.date_flag, items.similarity "
                   "FROM items WHERE items.id = ?", [item_id])
    if row is None:
        return None
    revisions = tuple(
        Revision(r["revision"], from_iso(r["seen_at"]), r["title"], tuple(json.loads(r["changed"])), r["diff"])
        for r in db.query("SELECT * FROM item_revisions WHERE item_id = ? ORDER BY revision", [item_id])
    )
    cluster = tuple(
        _stored_item(r)
        for r in db.query(f"SELECT {_LISTED} FROM items WHERE cluster_id = ? ORDER BY id", [row["cluster_id"]])
    )
    return ItemDetail(_stored_item(row), row["text"], row["summary"], row["author"], row["date_flag"],
                      row["similarity"], revisions, cluster)


def _stored_item(row: dict[str, Any]) -> StoredItem:
    return StoredItem(
        id=row["id"],
        identity=row["identity"],
        source=row["source"],
        title=row["title"],
        url=row["url"],
        publisher=row["publisher"],
        published_at=from_iso(row["published_at"]),
        first_seen_at=from_iso(row["first_seen_at"]),
        storylines=tuple(sorted(json.loads(row["sl"]))),
        cluster_id=row["cluster_id"],
        revisions=row["revision"] - 1,
        dup_of=row["dup_of"],
        dup_kind=row["dup_kind"],
    )


_FTS_TOKEN = re.compile(r'"([^"]*)"|(\S+)')


# Scripts written without spaces between words (Chinese, Japanese) or that join endings to
# words (Korean): the full-text index can't cut them into words, so they are found as substrings.
_UNSPACED = re.compile("[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def _search_terms(text: str) -> tuple[str, list[str]]:
    """A search split into what the full-text index finds (words) and what is found as a
    substring (terms in an unspaced script, see _UNSPACED)."""
    words, unspaced = [], []
    for phrase, word in _FTS_TOKEN.findall(text):
        term = phrase or word
        if _UNSPACED.search(term):
            unspaced.append(" ".join(term.split()))
        elif term.strip():
            words.append(f'"{term}"' if phrase else term)
    return " ".join(words), unspaced


def fts_query(text: str) -> str:
    """A user's search words as a safe FTS5 query: every word must match, "quoted" = phrase.

    Each term is quoted, so FTS syntax (AND, NEAR, column filters, *) in the input is read
    as plain words rather than failing or changing the query's meaning.
    """
    terms = []
    for phrase, word in _FTS_TOKEN.findall(text):
        words = re.findall(r"\w+", phrase or word)
        if words:
            terms.append('"' + " ".join(words) + '"')
    return " ".join(terms) if terms else '""'


# ── storylines ────────────────────────────────────────────────────────────────────────────


def sync_storylines(db: Database, storylines: Sequence[StorylineConfig], now: dt.datetime) -> None:
    """Make the store's config storylines match the config; removed ones become inactive."""
    wanted = {s.id for s in storylines}
    with transaction(db):
        for storyline in storylines:
            save_storyline(db, storyline, now, origin="config")
        db.execute(
            "UPDATE storylines SET active = 0, paused = 0 WHERE origin = 'config' AND (active = 1 OR paused = 1) "
            f"AND id NOT IN ({', '.join('?' for _ in wanted)})",
            sorted(wanted),
        )


def save_storyline(db: Database, storyline: StorylineConfig, now: dt.datetime, *, origin: str) -> bool:
    """Create or update a storyline's definition; True when something changed."""
    values = {
        "title": storyline.title,
        "description": storyline.description,
        "keywords": json.dumps(list(storyline.keywords)),
        "seeds": json.dumps(list(storyline.seeds)),
        "aliases": json.dumps([list(group) for group in storyline.aliases]),
        "exclude": json.dumps(list(storyline.exclude)),
        "threshold": storyline.threshold,
        "expires_after_s": int(storyline.expires_after.total_seconds()) if storyline.expires_after else None,
        "origin": origin,
        "active": 1,
    }
    row = _one(db, "SELECT * FROM storylines WHERE id = ?", [storyline.id])
    if row is not None and row["paused"]:
        values["active"] = 0  # paused by the reader: the config does not resume it
    if row is None:
        db.table("storylines").insert({"id": storyline.id, "created_at": to_iso(now), "updated_at": to_iso(now), **values})
        return True
    if not _changed(row, values):
        return False
    db.table("storylines").update(storyline.id, {**values, "updated_at": to_iso(now)})
    return True


def storyline_row(db: Database, storyline_id: str) -> dict[str, Any] | None:
    return _one(db, "SELECT * FROM storylines WHERE id = ?", [storyline_id])


def set_storyline_paused(db: Database, storyline_id: str, paused: bool, now: dt.datetime) -> None:
    """Pause a storyline (inactive, and kept so by config syncs) or resume it."""
    with transaction(db):
        db.execute("UPDATE storylines SET paused = ?, active = ?, updated_at = ? WHERE id = ?",
                   [int(paused), int(not paused), to_iso(now), storyline_id])


def remove_storyline(db: Database, storyline_id: str) -> int:
    """Forget a storyline: its definition, links and marks go, the items stay; a suggestion it
    was made from is open again. Returns how many follow-ups were unlinked."""
    with transaction(db):
        row = _one(db, "SELECT count(*) AS n FROM storyline_items WHERE storyline_id = ? AND decision = 'followup'",
                   [storyline_id])
        db.execute("DELETE FROM marks WHERE storyline_id = ?", [storyline_id])
        db.execute("DELETE FROM storyline_items WHERE storyline_id = ?", [storyline_id])
        db.execute("UPDATE suggestions SET status = 'open', storyline_id = NULL WHERE storyline_id = ?", [storyline_id])
        db.execute("DELETE FROM storylines WHERE id = ?", [storyline_id])
    return int(row["n"]) if row else 0


def dismiss_suggestion(db: Database, suggestion_id: int) -> bool:
    """Close an open suggestion for good; False if it was not open."""
    with transaction(db):
        cursor = db.execute("UPDATE suggestions SET status = 'dismissed' WHERE id = ? AND status = 'open'", [suggestion_id])
    return cursor.rowcount == 1


def storyline_exists(db: Database, storyline_id: str) -> bool:
    return _one(db, "SELECT id FROM storylines WHERE id = ?", [storyline_id]) is not None


def active_storylines(db: Database) -> list[StorylineDef]:
    """Every active storyline with its definition and its seed items' ids."""
    seeds: dict[str, list[int]] = {}
    for row in db.query("SELECT storyline_id, item_id FROM storyline_items WHERE decision = 'seed' ORDER BY item_id"):
        seeds.setdefault(row["storyline_id"], []).append(row["item_id"])
    return [
        StorylineDef(
            id=row["id"], title=row["title"], description=row["description"],
            keywords=tuple(json.loads(row["keywords"])),
            aliases=tuple(tuple(group) for group in json.loads(row["aliases"]) if len(group) >= 2),  # older stores took "="
            exclude=tuple(json.loads(row["exclude"])), threshold=row["threshold"],
            expires_after=dt.timedelta(seconds=row["expires_after_s"]) if row["expires_after_s"] else None,
            seed_ids=tuple(seeds.get(row["id"], ())), updated_at=from_iso(row["updated_at"]),
            profile_hash=row["profile_hash"], created_at=from_iso(row["created_at"]),
        )
        for row in db.query("SELECT * FROM storylines WHERE active = 1 ORDER BY id")
    ]


def items_by_id(db: Database, item_ids: Sequence[int]) -> dict[int, Stored]:
    return {row["id"]: _stored(row) for row in _in_chunks(db, "SELECT * FROM items WHERE id IN ({})", list(item_ids))}


def item_links(db: Database, item_id: int) -> list[dict[str, Any]]:
    """The item's recorded storyline links (seed, follow-up), with the storyline's title and
    whether it is active, by storyline id."""
    return list(db.query("""
        SELECT si.storyline_id, si.decision, si.score, si.threshold, si.decided_at, s.title, s.active
        FROM storyline_items si JOIN storylines s ON s.id = si.storyline_id
        WHERE si.item_id = ? ORDER BY si.storyline_id""", [item_id]))


def recent_originals(db: Database, since: dt.datetime, until: dt.datetime, limit: int, *,
                     inclusive: bool = True) -> list[Stored]:
    """The newest `limit` originals (not copies, not seed files) published in [since, until]
    ([since, until) unless `inclusive`), oldest first: what tracking replays."""
    sql = (f"SELECT * FROM items WHERE dup_of IS NULL AND published_at >= ? AND published_at {'<=' if inclusive else '<'} ? "
           "AND source != 'seeds' ORDER BY published_at DESC, id DESC LIMIT ?")
    return [_stored(row) for row in reversed(list(db.query(sql, [to_iso(since), to_iso(until), limit])))]


def originals_by_identity(db: Database, identities: Sequence[str]) -> dict[str, int]:
    """The stored originals (not copies, not seed files) among `identities`: identity → id."""
    sql = "SELECT identity, id FROM items WHERE identity IN ({}) AND dup_of IS NULL AND source != 'seeds'"
    return {row["identity"]: row["id"] for row in _in_chunks(db, sql, list(identities))}


def stored_identities(db: Database, identities: Sequence[str]) -> set[str]:
    """Those of `identities` the store holds an item of (an original, a copy or a seed)."""
    return {row["identity"] for row in _in_chunks(db, "SELECT identity FROM items WHERE identity IN ({})", list(identities))}


def originals_before(db: Database, source: str, before: dt.datetime, limit: int) -> list[Stored]:
    """The newest `limit` originals published before `before` of a names source ("feed:ID", or
    "backfill:KEY", "jsonl:KEY": a backfilled file that is no stored feed), oldest first."""
    kind, _, key = source.partition(":")
    args: list[object]
    if kind == "feed":
        where, args = "feed_id = ?", [int(key)]
    else:  # the identities "backfill:KEY:…" or "jsonl:KEY:…", a range of the unique index
        prefix = f"{source}:"
        where, args = "feed_id IS NULL AND identity >= ? AND identity < ?", [prefix, prefix + "\U0010ffff"]
    sql = (f"SELECT * FROM items WHERE {where} AND dup_of IS NULL AND published_at < ? "
           "ORDER BY published_at DESC, id DESC LIMIT ?")
    return [_stored(row) for row in reversed(list(db.query(sql, [*args, to_iso(before), limit])))]


def sources_by_last_item(db: Database, before: dt.datetime) -> list[str]:
    """The names sources (see storylines.names_source) with originals published before `before`,
    the one with the newest such first: feeds ("feed:ID") and backfilled files ("backfill:KEY",
    "jsonl:KEY")."""
    sql = """
        SELECT CASE WHEN feed_id IS NOT NULL THEN 'feed:' || feed_id
                    ELSE substr(identity, 1, instr(identity, ':') + instr(substr(identity, instr(identity, ':') + 1), ':') - 1)
                    END AS source
        FROM items WHERE dup_of IS NULL AND published_at < ?
                     AND (feed_id IS NOT NULL OR identity LIKE 'backfill:%:%' OR identity LIKE 'jsonl:%:%')
        GROUP BY source ORDER BY max(published_at) DESC, source"""
    return [row["source"] for row in db.query(sql, [to_iso(before)])]


def arrived_before(db: Database, item_id: int, since: dt.datetime, limit: int) -> list[Stored]:
    """The last `limit` originals of feeds first seen since `since` and stored before `item_id`,
    in the order they were stored: what a running worker tracked before that item."""
    sql = ("SELECT * FROM items WHERE id < ? AND dup_of IS NULL AND source = 'feed' AND first_seen_at >= ? "
           "ORDER BY id DESC LIMIT ?")
    return [_stored(row) for row in reversed(list(db.query(sql, [item_id, to_iso(since), limit])))]


def first_seen(db: Database, item_id: int) -> dt.datetime:
    row = _one(db, "SELECT first_seen_at FROM items WHERE id = ?", [item_id])
    if row is None:
        raise KeyError(item_id)
    return from_iso(row["first_seen_at"])


def storylines_version(db: Database) -> str:
    """Changes whenever a storyline is added, changed, (de)activated or re-seeded, or a reader
    marks an item."""
    row = _one(db, """SELECT (SELECT count(*) || '/' || ifnull(max(updated_at), '') || '/' || sum(active)
                              FROM storylines) AS defs,
                             (SELECT count(*) || '/' || ifnull(sum(item_id), 0) FROM storyline_items
                              WHERE decision = 'seed') AS seeds,
                             (SELECT value FROM meta WHERE key = 'marks_version') AS marks""")
    return f"{row['defs']}|{row['seeds']}|{row['marks']}" if row else ""


class Mark(NamedTuple):
    storyline_id: str
    item_id: int
    followup: bool
    marked_at: dt.datetime


def set_mark(db: Database, storyline_id: str, item_id: int, followup: bool | None, now: dt.datetime) -> str:
    """Record a reader's mark (None clears it) and link the item accordingly: "yes" links it
    (keeping the tracker's own link if it had one), "no" unlinks it, clearing returns it to the
    tracker's own decision as recorded before the mark. Returns what changed, in words."""
    key = [storyline_id, item_id]
    with transaction(db):
        link = _one(db, "SELECT * FROM storyline_items WHERE storyline_id = ? AND item_id = ?", key)
        mark = _one(db, "SELECT * FROM marks WHERE storyline_id = ? AND item_id = ?", key)
        # The tracker's own link, as it was before any mark: kept by the mark, else the link now.
        own = (json.loads(mark["displaced"]) if mark["displaced"] else None) if mark else (dict(link) if link else None)
        db.execute("DELETE FROM storyline_items WHERE storyline_id = ? AND item_id = ? AND decision = 'followup'", key)
        db.execute("DELETE FROM marks WHERE storyline_id = ? AND item_id = ?", key)
        if followup is None:
            if own is not None:
                db.table("storyline_items").insert(own)
        else:
            db.execute("INSERT INTO marks (storyline_id, item_id, followup, marked_at, displaced) VALUES (?, ?, ?, ?, ?)",
                       [*key, int(followup), to_iso(now), json.dumps(own, ensure_ascii=False) if own else None])
            if followup:
                row = own or {"storyline_id": storyline_id, "item_id": item_id, "decision": "followup",
                              "reasons": json.dumps({"marked": True}), "decided_at": to_iso(now)}
                db.table("storyline_items").insert(row)
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'marks_version'")
    return _mark_change(bool(mark["followup"]) if mark else None, followup, link is not None,
                        own is not None)


def _mark_change(before: bool | None, after: bool | None, linked: bool, tracker_linked: bool) -> str:
    """What a mark changed, for the one line `items mark` prints."""
    if before == after:
        return "unchanged: it was marked so already" if after is not None else "unchanged: it had no mark"
    now_linked = after if after is not None else tracker_linked
    link = "linked" if now_linked else "not linked"
    if now_linked == linked:
        return f"still {link}"
    return f"now {link}" + (" (the tracker's own decision)" if after is None else "")


def marks(db: Database, *, storyline_id: str | None = None, item_id: int | None = None) -> list[Mark]:
    """The reader's marks, oldest first (of one storyline, or of one item)."""
    sql = "SELECT * FROM marks WHERE (? IS NULL OR storyline_id = ?) AND (? IS NULL OR item_id = ?) " \
          "ORDER BY marked_at, item_id"
    return [Mark(r["storyline_id"], r["item_id"], bool(r["followup"]), from_iso(r["marked_at"]))
            for r in db.query(sql, [storyline_id, storyline_id, item_id, item_id])]


def set_profile_hashes(db: Database, hashes: dict[str, str]) -> None:
    with transaction(db):
        for storyline_id, value in hashes.items():
            db.execute("UPDATE storylines SET profile_hash = ? WHERE id = ?", [value, storyline_id])


def save_followups(db: Database, decisions: Sequence[FollowUp], now: dt.datetime) -> None:
    """Record follow-up decisions (a storyline's seeds are never overwritten, nor a reader's "no":
    a decision made on a tracker built before the mark was committed)."""
    with transaction(db):
        for d in decisions:
            db.execute(
                "INSERT INTO storyline_items (storyline_id, item_id, decision, score, threshold, raw_score, "
                "reasons, novelty, closest_item_id, decided_at) SELECT ?, ?, 'followup', ?, ?, ?, ?, ?, ?, ? "
                "WHERE NOT EXISTS (SELECT 1 FROM marks m WHERE m.storyline_id = ? AND m.item_id = ? AND m.followup = 0) "
                "ON CONFLICT (storyline_id, item_id) DO NOTHING",
                [d.storyline_id, d.item_id, d.score, d.threshold, d.raw_score, json.dumps(d.reasons, ensure_ascii=False),
                 json.dumps(list(d.novelty), ensure_ascii=False), d.closest_item_id, to_iso(now),
                 d.storyline_id, d.item_id],
            )


def storyline_timeline(db: Database, storyline_id: str) -> list[TimelineEntry]:
    """A storyline's seeds and follow-ups, oldest first, with why each belongs."""
    sql = """
        SELECT si.*, i.title, {publisher}, i.url, i.published_at, i.source, m.followup AS marked
        FROM storyline_items si JOIN items i ON i.id = si.item_id
        LEFT JOIN marks m ON m.storyline_id = si.storyline_id AND m.item_id = si.item_id
        WHERE si.storyline_id = ? ORDER BY i.published_at, i.id
    """.format(publisher=_publisher("i"))
    return [
        TimelineEntry(
            item_id=r["item_id"], decision=r["decision"], title=r["title"], publisher=r["publisher"],
            url=r["url"], published_at=from_iso(r["published_at"]), source=r["source"], score=r["score"],
            threshold=r["threshold"], reasons=json.loads(r["reasons"]), novelty=tuple(json.loads(r["novelty"])),
            closest_item_id=r["closest_item_id"], marked=None if r["marked"] is None else bool(r["marked"]),
        )
        for r in db.query(sql, [storyline_id])
    ]


def set_storyline_seeds(
    db: Database, storyline_id: str, item_ids: Sequence[int], now: dt.datetime
) -> None:
    """Make exactly `item_ids` the storyline's seeds (follow-up decisions are kept)."""
    with transaction(db):
        db.execute(
            "DELETE FROM storyline_items WHERE storyline_id = ? AND decision = 'seed' "
            f"AND item_id NOT IN ({', '.join('?' for _ in item_ids)})",
            [storyline_id, *item_ids],
        )
        for item_id in item_ids:
            db.execute(
                "INSERT INTO storyline_items (storyline_id, item_id, decision, decided_at) "
                "VALUES (?, ?, 'seed', ?) ON CONFLICT (storyline_id, item_id) "
                "DO UPDATE SET decision = 'seed'",
                [storyline_id, item_id, to_iso(now)],
            )


# ── status ────────────────────────────────────────────────────────────────────────────────


def status(db: Database, path: Path, now: dt.datetime) -> StoreStatus:
    """Everything `storywatch status` shows, read in one go (a digest left "sending" by a stopped
    sender is shown as what it is: "unconfirmed", or "pending" when it was not handed over)."""
    by_source = {r["source"]: r["n"] for r in db.query("SELECT source, count(*) AS n FROM items GROUP BY source")}
    last_poll = _one(db, "SELECT max(started_at) AS at FROM fetches")
    last_digest = _one(db, "SELECT * FROM digests ORDER BY created_at DESC LIMIT 1")
    if last_digest:  # one left "sending" by a stopped sender shown as it will be marked
        last_digest |= _settled(last_digest, now)
    return StoreStatus(
        path=path,
        items_by_source=by_source,
        feeds=tuple(feed_health(db)),
        storylines=tuple(storyline_summaries(db)),
        last_poll_at=_maybe_time(last_poll["at"] if last_poll else None),
        last_digest_at=_maybe_time(last_digest["created_at"] if last_digest else None),
        last_digest_status=last_digest["status"] if last_digest else None,
        last_digest_error=last_digest["error"] if last_digest else None,
        last_digest_resend_error=last_digest["resend_error"] if last_digest else None,
        last_digest_retry_at=_maybe_time(last_digest["next_attempt_at"] if last_digest else None),
        unconfirmed_digests=tuple(unconfirmed_digests(db, now)),
    )


def feed_health(db: Database, *, removed: bool = False) -> Iterator[FeedHealth]:
    """Every feed with its health (those the reader removed only with `removed`)."""
    sql = """
        SELECT feeds.*, (SELECT count(*) FROM items WHERE items.feed_id = feeds.id) AS n_items
        FROM feeds WHERE :removed OR disabled_reason IS NOT :gone
        ORDER BY disabled_reason IS NOT NULL, coalesce(nullif(name, ''), url)
    """
    for row in db.query(sql, {"removed": removed, "gone": REMOVED_BY_YOU}):
        yield FeedHealth(
            url=row["url"],
            name=row["name"] or row["title"] or "",
            items=row["n_items"],
            last_status=row["last_status"],
            last_error=row["last_error"],
            error_count=row["error_count"],
            last_polled_at=_maybe_time(row["last_polled_at"]),
            next_poll_at=_maybe_time(row["next_poll_at"]),
            disabled_reason=row["disabled_reason"],
            retry_after=_maybe_time(row["retry_after"]),
            last_success_at=_maybe_time(row["last_success_at"]),
            title=row["title"],
            tags=tuple(json.loads(row["tags"])),
            origin=row["origin"],
        )


def storyline_summaries(db: Database) -> Iterator[StorylineSummary]:
    sql = """
        SELECT s.id, s.title, s.active, s.paused,
               count(CASE WHEN si.decision = 'seed' THEN 1 END) AS seeds,
               count(CASE WHEN si.decision = 'followup' THEN 1 END) AS followups,
               max(CASE WHEN si.decision = 'followup' THEN i.published_at END) AS last_followup
        FROM storylines s
        LEFT JOIN storyline_items si ON si.storyline_id = s.id
        LEFT JOIN items i ON i.id = si.item_id
        GROUP BY s.id ORDER BY s.active DESC, s.id
    """
    for row in db.query(sql):
        yield StorylineSummary(
            id=row["id"],
            title=row["title"],
            active=bool(row["active"]),
            seeds=row["seeds"],
            followups=row["followups"],
            last_followup_at=_maybe_time(row["last_followup"]),
            paused=bool(row["paused"]),
        )


def _maybe_time(value: str | None) -> dt.datetime | None:
    return from_iso(value) if value else None


# ── digests ───────────────────────────────────────────────────────────────────────────────


def stored_since(db: Database, moment: dt.datetime) -> bool:
    """Whether an item was first seen at `moment`'s whole second or later."""
    return _one(db, "SELECT 1 AS hit FROM items WHERE first_seen_at >= ? LIMIT 1", [to_iso(moment)]) is not None


def last_digest(db: Database) -> dict[str, Any] | None:
    return _one(db, "SELECT * FROM digests ORDER BY period_end DESC, id DESC LIMIT 1")


def digest_row(db: Database, day: dt.date) -> dict[str, Any] | None:
    return _one(db, "SELECT * FROM digests WHERE day = ?", [day.isoformat()])


def record_digest(db: Database, day: dt.date, start: dt.datetime, end: dt.datetime, path: str,
                  now: dt.datetime, *, to_send: bool, snapshot: str | None = None) -> None:
    """The digest of `day` was written: its period, file and data (`snapshot`). `to_send`: it
    waits to be emailed ("pending"). Written again, only its file changes: the period, data and
    sending state stay."""
    with transaction(db):
        db.execute(
            "INSERT INTO digests (day, period_start, period_end, created_at, path, status, snapshot) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (day) DO UPDATE SET path = excluded.path, "
            "snapshot = coalesce(digests.snapshot, excluded.snapshot)",
            [day.isoformat(), to_iso(start), to_iso(end), to_iso(now), path, "pending" if to_send else "written",
             snapshot],
        )


SENT_OR_MAYBE = ("sent", "unconfirmed")
"""Digest states that only a resend (--resend) may send again."""


def claim_digest(db: Database, day: dt.date, now: dt.datetime, *, resend: bool) -> bool:
    """Mark the digest of `day` "sending" by this process, in one write transaction, unless it is
    sent or may have been (without `resend`) or another live process is sending it: then False.
    Two senders that race for one digest thus never both send it. A resend keeps the status it
    starts from (and its error) in `resend_of`: a failed resend returns to it (end_resend)."""
    with transaction(db):
        row = digest_row(db, day)
        if row is None or _sending_elsewhere(row, now) or (row["status"] == "sending" and row["sender_pid"] == os.getpid()):
            return False  # being sent (by this process too: a claim is not taken twice)
        was = row | _settled(row, now)  # one a stopped sender left "sending": as it will be marked
        if was["status"] in SENT_OR_MAYBE and not resend:
            return False
        resend_of = was["status"] if was["status"] in SENT_OR_MAYBE else None
        db.execute("UPDATE digests SET status = 'sending', attempts = attempts + 1, error = ?, next_attempt_at = NULL, "
                   "sender_pid = ?, sending_at = ?, send_phase = 'connecting', resend_of = ?, resend_error = ? "
                   "WHERE day = ?", [was["error"] if resend_of else None, os.getpid(), to_iso(now), resend_of,
                                     was.get("resend_error"), day.isoformat()])
        return True


def digest_state(db: Database, day: dt.date, now: dt.datetime) -> dict[str, Any] | None:
    """The digest row of `day`, one a stopped sender left "sending" as it will be marked."""
    row = digest_row(db, day)
    return row | _settled(row, now) if row else None


def mark_send_phase(db: Database, day: dt.date, phase: str) -> None:
    """The send of `day`'s digest reached `phase` ("data": the message is about to be handed
    over). Its own committed write, so that it outlives a killed sender: call it outside any
    transaction."""
    with transaction(db):
        db.execute("UPDATE digests SET send_phase = ? WHERE day = ? AND status = 'sending'", [phase, day.isoformat()])


SENDING_LEASE = dt.timedelta(hours=1)
"""A digest "sending" for longer than this was left by a stopped worker, even if a process of its
pid is alive (pids are reused); a send takes at most a few SMTP timeouts."""


def _sending_elsewhere(row: dict[str, Any], now: dt.datetime) -> bool:
    """Whether another process that is still running is sending this digest."""
    pid = row.get("sender_pid")
    if row["status"] != "sending" or pid is None or pid == os.getpid() or row.get("sending_at") is None:
        return False
    if now - from_iso(row["sending_at"]) > SENDING_LEASE:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def digest_sender(db: Database, day: dt.date, now: dt.datetime) -> int | None:
    """The pid of another live process sending the digest of `day`, if one is."""
    row = digest_row(db, day)
    return int(row["sender_pid"]) if row is not None and _sending_elsewhere(row, now) else None


def mark_digest(db: Database, day: dt.date, status: str, now: dt.datetime, *, error: str | None = None,
                recipients: Sequence[str] = (), retry_at: dt.datetime | None = None) -> None:
    """Sending outcome: "sent", or "failed" (with when to retry); "sending" is claim_digest's."""
    with transaction(db):
        values: dict[str, Any] = {"status": status, "error": error, "next_attempt_at": to_iso(retry_at) if retry_at else None,
                                  "send_phase": None, "resend_of": None}
        if status == "sent":
            values |= {"sent_at": to_iso(now), "recipients": json.dumps(list(recipients)), "resend_error": None}
        columns = ", ".join(f"{k} = ?" for k in values)
        db.execute(f"UPDATE digests SET {columns} WHERE day = ?", [*values.values(), day.isoformat()])


def end_resend(db: Database, day: dt.date, error: str) -> str:
    """A resend that did not succeed: the digest is what it was before (sent, or unconfirmed, with
    its error), plus the resend's `error`. Returns that status."""
    with transaction(db):
        row = digest_row(db, day)
        assert row is not None and row["resend_of"], "not a resend"
        db.execute("UPDATE digests SET status = resend_of, resend_error = ?, resend_of = NULL, send_phase = NULL "
                   "WHERE day = ?", [error, day.isoformat()])
        return str(row["resend_of"])


INTERRUPTED = ("the worker stopped after handing the message over, before the server confirmed it: it may have arrived; "
               "send again with --resend")
NOT_HANDED_OVER = "the worker stopped before the message was handed over to the SMTP server: it was not sent"
RESEND_INTERRUPTED = "the worker stopped while resending it: the copy may have arrived"
RESEND_NOT_HANDED_OVER = "the worker stopped while resending it, before the message was handed over: no copy was sent"


def _left_sending(row: dict[str, Any], now: dt.datetime) -> bool:
    """Whether a digest is "sending" with nobody sending it: its sender stopped mid-send."""
    return row["status"] == "sending" and not _sending_elsewhere(row, now)


def _settled(row: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    """The columns mark_interrupted_digests changes in a digest a stopped sender left "sending"
    (none for another): not handed over, it was not sent ("pending"); else it may have arrived
    ("unconfirmed"). A resend returns to what the digest was, with what became of the copy."""
    if not _left_sending(row, now):
        return {}
    handed = row.get("send_phase") != "connecting"  # no phase: a send begun before 0014
    if row.get("resend_of"):
        return {"status": row["resend_of"], "resend_error": RESEND_INTERRUPTED if handed else RESEND_NOT_HANDED_OVER}
    return {"status": "unconfirmed", "error": INTERRUPTED} if handed else {"status": "pending", "error": NOT_HANDED_OVER}


def mark_interrupted_digests(db: Database, now: dt.datetime) -> dict[dt.date, str]:
    """A digest left "sending" by a process that stopped mid-send (not one a live process is
    sending right now): "unconfirmed" if the message may have been handed over (it may have
    arrived), else "pending" (it was not sent: it is sent again); a resend's digest returns to
    what it was. Returns their new status by day."""
    with transaction(db):
        marked = {}
        for row in db.query("SELECT * FROM digests WHERE status = 'sending'"):
            if changes := _settled(row, now):
                changes |= {"send_phase": None, "resend_of": None}
                db.execute(f"UPDATE digests SET {', '.join(f'{k} = ?' for k in changes)} WHERE day = ?",
                           [*changes.values(), row["day"]])
                marked[dt.date.fromisoformat(row["day"])] = changes["status"]
        return marked


def unconfirmed_digests(db: Database, now: dt.datetime) -> list[dt.date]:
    """The days whose digest may or may not have been sent: "unconfirmed", or left "sending" by a
    stopped sender after it may have handed the message over, that no worker has marked yet. Only
    a resend settles them."""
    rows = db.query("SELECT * FROM digests WHERE status IN ('unconfirmed', 'sending') ORDER BY day")
    return [dt.date.fromisoformat(row["day"]) for row in rows if (row | _settled(row, now))["status"] == "unconfirmed"]


def digests_to_retry(db: Database, now: dt.datetime) -> list[dict[str, Any]]:
    """Digests waiting to be emailed (pending, or failed), whose retry time has come."""
    return list(db.query(
        "SELECT * FROM digests WHERE status IN ('pending', 'failed') AND (next_attempt_at IS NULL OR next_attempt_at <= ?) "
        "ORDER BY day", [to_iso(now)]))


def digest_stories(db: Database, start: dt.datetime, end: dt.datetime, *, include_backfill: bool) -> list[dict[str, Any]]:
    """Originals first seen in [start, end), newest first, with the publishers of their copies seen
    before `end` (a copy arriving later does not change a digest already written)."""
    backfill = "" if include_backfill else "AND i.source != 'backfill'"
    return list(db.query(f"""
        SELECT i.id, i.title, i.url, i.publisher, i.published_at, i.text, i.summary, i.source,
               (SELECT json_group_array(DISTINCT c.publisher) FROM items c
                WHERE c.cluster_id = i.cluster_id AND c.id != i.id AND c.publisher != i.publisher
                  AND c.first_seen_at < :end) AS also
        FROM items i
        WHERE i.dup_of IS NULL AND i.first_seen_at >= :start AND i.first_seen_at < :end {backfill}
        ORDER BY i.published_at DESC, i.id DESC""", {"start": to_iso(start), "end": to_iso(end)}))


_LINK_COLUMNS = ("decision", "score", "threshold", "raw_score", "reasons", "novelty", "closest_item_id", "decided_at")


def _links_as_of(where: str) -> str:
    """Storyline links as they stood at :until, as far as the store can tell (`where` filters
    both parts on storyline_id and item_id): those decided by then, and those a reader has since
    ruled out (a "no" mark keeps the link it removed). A kept digest does not need it (its data
    is kept with it); a digest of another period, or kept before 0018, does."""
    displaced = ", ".join(f"json_extract(displaced, '$.{c}') AS {c}" for c in _LINK_COLUMNS)
    return f"""
        SELECT storyline_id, item_id, {", ".join(_LINK_COLUMNS)} FROM storyline_items
        WHERE decided_at <= :until AND {where}
        UNION ALL
        SELECT * FROM (SELECT storyline_id, item_id, {displaced} FROM marks
                       WHERE followup = 0 AND marked_at > :until AND displaced IS NOT NULL)
        WHERE decided_at <= :until AND {where}"""


def storyline_decisions(db: Database, item_ids: Sequence[int], until: dt.datetime) -> list[dict[str, Any]]:
    """Every storyline decision on these items as it stood at `until` (the moment the digest is
    written), with the title of the item each is closest to (a later decision, such as a
    look-back, or a later mark, does not change a digest already written)."""
    links = _links_as_of("item_id IN (SELECT value FROM json_each(:ids))")
    return list(db.query(f"""
        SELECT si.*, (SELECT title FROM items WHERE id = si.closest_item_id) AS closest_title
        FROM ({links}) si""", {"ids": json.dumps(list(item_ids)), "until": to_iso(until)}))


def late_followups(db: Database, start: dt.datetime, end: dt.datetime, *, include_backfill: bool) -> list[dict[str, Any]]:
    """Follow-ups of active storylines decided in (start, end] for items no digest of [start, end)
    lists as new: first seen before `start`, or (unless `include_backfill`) loaded by backfill;
    not those the reader had marked by `end` (`items mark --yes`: no news to them), and as they
    stood at `end`. Newest publication first, with the item's title, link, publisher and publication time."""
    backfill = "" if include_backfill else "OR i.source = 'backfill'"
    return list(db.query(f"""
        SELECT si.storyline_id, i.id, i.title, i.url, i.publisher, i.published_at, '' AS text, '' AS summary,
               '[]' AS also
        FROM ({_links_as_of("decided_at > :start")}) si JOIN items i ON i.id = si.item_id
        JOIN storylines s ON s.id = si.storyline_id AND s.active = 1
        WHERE si.decision = 'followup' AND si.decided_at > :start
          AND (i.first_seen_at < :start {backfill})
          AND NOT EXISTS (SELECT 1 FROM marks m WHERE m.storyline_id = si.storyline_id AND m.item_id = si.item_id
                          AND m.marked_at <= :until)
        ORDER BY i.published_at DESC, i.id DESC""", {"start": to_iso(start), "until": to_iso(end)}))


def storyline_seed_stories(db: Database, storyline_id: str) -> list[dict[str, Any]]:
    return list(db.query("""
        SELECT i.id, i.title, i.url, i.publisher, i.published_at, i.text, i.summary, i.source, '[]' AS also
        FROM storyline_items si JOIN items i ON i.id = si.item_id
        WHERE si.storyline_id = ? AND si.decision = 'seed' ORDER BY i.published_at DESC, i.id DESC""", [storyline_id]))


def followup_times(db: Database, storyline_id: str, since: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    """When a storyline's follow-ups published since `since`, stored before `until` and decided by
    then, were published."""
    rows = db.execute(
        "SELECT i.published_at FROM storyline_items si JOIN items i ON i.id = si.item_id "
        "WHERE si.storyline_id = ? AND si.decision = 'followup' AND i.published_at >= ? "
        "AND i.first_seen_at < ? AND si.decided_at <= ?",
        [storyline_id, to_iso(since), to_iso(until), to_iso(until)]).fetchall()
    return [from_iso(r[0]) for r in rows]


def last_activity(db: Database, until: dt.datetime) -> dict[str, dt.datetime | None]:
    """Per active storyline: the publication time of its newest follow-up stored before `until` and
    decided by then (None: none yet)."""
    rows = db.query("""
        SELECT s.id, max(CASE WHEN si.decision = 'followup' AND i.first_seen_at < :until AND si.decided_at <= :until
                         THEN i.published_at END) AS last
        FROM storylines s LEFT JOIN storyline_items si ON si.storyline_id = s.id
        LEFT JOIN items i ON i.id = si.item_id WHERE s.active = 1 GROUP BY s.id""", {"until": to_iso(until)})
    return {r["id"]: _maybe_time(r["last"]) for r in rows}


def revisions_between(db: Database, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """The latest revision in [start, end) of each tracked item, with its current title and link."""
    return list(db.query("""
        SELECT r.item_id, r.changed, r.diff, i.title, i.url, i.publisher,
               (SELECT json_group_array(storyline_id) FROM storyline_items WHERE item_id = i.id) AS storylines
        FROM item_revisions r JOIN items i ON i.id = r.item_id
        WHERE r.seen_at >= ? AND r.seen_at < ? AND i.id IN (SELECT item_id FROM storyline_items)
          AND r.revision = (SELECT max(revision) FROM item_revisions WHERE item_id = r.item_id AND seen_at < ?)
        ORDER BY r.seen_at DESC""", [to_iso(start), to_iso(end), to_iso(end)]))


def save_suggestion(db: Database, title: str, terms: Sequence[str], item_ids: Sequence[int], sources: int,
                    first_at: dt.datetime, last_at: dt.datetime, now: dt.datetime,
                    span: dt.timedelta | None = None) -> int:
    """Record an emerging story. A group sharing half its items with a recorded suggestion is that
    suggestion, grown (updated while open), so a replay or a growing story never lists it twice;
    grown only as far as ``span`` (its items within so many days of each other), else recorded
    apart: a suggestion respects its day window however its groups were made."""
    wanted = set(item_ids)
    for row in db.query("SELECT id, item_ids, status, first_at, last_at FROM suggestions WHERE last_at >= ?",
                        [to_iso(first_at - dt.timedelta(days=30))]):
        known = set(json.loads(row["item_ids"]))
        if 2 * len(known & wanted) >= min(len(known), len(wanted)):
            start, end = min(from_iso(row["first_at"]), first_at), max(from_iso(row["last_at"]), last_at)
            if span is not None and end - start > span:
                continue
            if row["status"] == "open":
                db.table("suggestions").update(row["id"], {
                    "title": title, "terms": json.dumps(list(terms), ensure_ascii=False),
                    "item_ids": json.dumps(sorted(known | wanted)), "sources": sources,
                    "first_at": to_iso(start), "last_at": to_iso(end)})
            return int(row["id"])
    return int(db.table("suggestions").insert({
        "created_at": to_iso(now), "title": title, "terms": json.dumps(list(terms), ensure_ascii=False),
        "item_ids": json.dumps(sorted(wanted)), "sources": sources, "first_at": to_iso(first_at),
        "last_at": to_iso(last_at)}).last_pk or 0)


def suggestions(db: Database, *, include_closed: bool = False) -> list[dict[str, Any]]:
    where = "" if include_closed else "WHERE status = 'open'"
    return list(db.query(f"SELECT * FROM suggestions {where} ORDER BY last_at DESC, id DESC"))


def suggestion(db: Database, suggestion_id: int) -> dict[str, Any] | None:
    return _one(db, "SELECT * FROM suggestions WHERE id = ?", [suggestion_id])


def adopt_suggestion(db: Database, suggestion_id: int, storyline_id: str) -> bool:
    """Mark an open suggestion adopted by a storyline; False if it is not open (any more)."""
    cursor = db.execute("UPDATE suggestions SET status = 'adopted', storyline_id = ? WHERE id = ? AND status = 'open'",
                        [storyline_id, suggestion_id])
    return cursor.rowcount == 1


def open_suggestions(db: Database, until: dt.datetime) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM suggestions WHERE status = 'open' AND created_at < ? ORDER BY id",
                         [to_iso(until)]))


def feed_item_times(db: Database, since: dt.datetime, until: dt.datetime) -> dict[str, tuple[dt.datetime, int]]:
    """Per feed address: when its newest item stored before `until` was first seen, and how many of
    its items were first seen in [since, until)."""
    rows = db.query("""
        SELECT f.url, max(i.first_seen_at) AS newest, sum(i.first_seen_at >= :since) AS recent
        FROM items i JOIN feeds f ON f.id = i.feed_id WHERE i.first_seen_at < :until GROUP BY f.url""",
        {"since": to_iso(since), "until": to_iso(until)})
    return {r["url"]: (from_iso(r["newest"]), r["recent"]) for r in rows}


def fetch_history(db: Database, until: dt.datetime) -> dict[str, FetchHistory]:
    """Per feed address, from the fetch log before `until` (what the feed looked like at that moment)."""
    rows = db.query("""
        WITH ok AS (SELECT feed_id, max(started_at) AS at FROM fetches
                    WHERE error IS NULL AND started_at < :until GROUP BY feed_id),
             bad AS (SELECT f.feed_id, count(*) AS n, max(f.started_at) AS at FROM fetches f
                     LEFT JOIN ok ON ok.feed_id = f.feed_id
                     WHERE f.error IS NOT NULL AND f.started_at < :until AND f.started_at > coalesce(ok.at, '')
                     GROUP BY f.feed_id)
        SELECT feeds.url, ok.at AS ok_at, coalesce(bad.n, 0) AS failures,
               (SELECT error FROM fetches WHERE feed_id = feeds.id AND started_at = bad.at) AS last_error,
               (SELECT kind FROM fetches WHERE feed_id = feeds.id AND started_at = bad.at) AS last_kind
        FROM feeds LEFT JOIN ok ON ok.feed_id = feeds.id LEFT JOIN bad ON bad.feed_id = feeds.id""",
        {"until": to_iso(until)})
    return {r["url"]: FetchHistory(_maybe_time(r["ok_at"]), r["failures"], r["last_error"], r["last_kind"]) for r in rows}


# ── cycles, health and metrics ────────────────────────────────────────────────────────────


def record_cycle(db: Database, started_at: dt.datetime, finished_at: dt.datetime, seconds: float, *,
                 interval: float | None, feeds: int, new_items: int, followups: int, errors: int,
                 stopped: int = 0) -> None:
    """A polling cycle of the worker has ended (`interval`: seconds between its ticks; `stopped`:
    feeds a stop left undone, 0 for a cycle that finished whole)."""
    with transaction(db):
        db.execute(
            "INSERT INTO cycles (started_at, finished_at, seconds, interval_s, feeds, new_items, followups, errors, "
            "stopped) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [to_iso(started_at), to_iso(finished_at), seconds, interval, feeds, new_items, followups, errors, stopped],
        )


def prune_cycles(db: Database, before: dt.datetime) -> int:
    """Drop cycle log rows older than `before`, always keeping the last one and the last whole
    one; returns how many."""
    with transaction(db):
        return db.execute(
            "DELETE FROM cycles WHERE finished_at < ? AND id < (SELECT max(id) FROM cycles) "
            "AND id IS NOT (SELECT max(id) FROM cycles WHERE stopped = 0)", [to_iso(before)]
        ).rowcount


def first_cycle_at(db: Database) -> dt.datetime | None:
    """When the store's first poll cycle started (None: never polled)."""
    row = _one(db, "SELECT min(started_at) AS at FROM cycles")
    return from_iso(row["at"]) if row and row["at"] else None


def has_answered(db: Database) -> bool:
    """Whether a feed has answered a poll (a store with no feed yet has none to show)."""
    row = _one(db, "SELECT EXISTS (SELECT 1 FROM feeds WHERE last_success_at IS NOT NULL) "
                   "OR EXISTS (SELECT 1 FROM items WHERE source = 'feed') AS yes")
    return bool(row and row["yes"])


def last_cycle(db: Database, *, whole: bool = False) -> dict[str, Any] | None:
    """The last cycle logged (`whole`: the last one that was not interrupted), or None."""
    row = _one(db, f"SELECT * FROM cycles {'WHERE stopped = 0 ' if whole else ''}ORDER BY id DESC LIMIT 1")
    if row:
        row["started_at"], row["finished_at"] = from_iso(row["started_at"]), from_iso(row["finished_at"])
    return row


def fetch_kinds(db: Database, since: dt.datetime) -> dict[str, int]:
    """Polls since `since` by outcome kind ("new", "not_modified", "timeout", "http", …)."""
    rows = db.execute("SELECT kind, count(*) FROM fetches WHERE started_at >= ? GROUP BY kind", [to_iso(since)])
    return {kind: n for kind, n in rows.fetchall()}


def digest_counts(db: Database, now: dt.datetime) -> dict[str, int]:
    """Recorded digests by sending status ("written", "pending", "sent", "failed", …); one left
    "sending" by a stopped sender counts as the worker will mark it ("unconfirmed", or "pending"
    when it was not handed over)."""
    counts: dict[str, int] = {}
    for row in db.query("SELECT * FROM digests"):
        status = (row | _settled(row, now))["status"]
        counts[status] = counts.get(status, 0) + 1
    return counts


def items_by_source(db: Database) -> dict[str, int]:
    return {row["source"]: row["n"] for row in db.query("SELECT source, count(*) AS n FROM items GROUP BY source")}
