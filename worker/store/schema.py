"""The store's schema history: append new migrations, never edit an applied one (docs/schema.md)."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from worker.ingest.identity import guid_folder, split_guid_identity, unresolved_guid
from worker.clock import to_iso


PAGE_SIZE = 8192
MIGRATIONS = Migrations("storywatch")


_CORE_SCHEMA = """
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
"""The first schema (0001): feeds, their fetches, items and their revisions, storylines and the
items they hold, digests. Later migrations change it; docs/schema.md describes the result."""


@MIGRATIONS(name="0001_core_tables")
def _core_tables(db: Database) -> None:
    db.executescript(_CORE_SCHEMA)


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
    first_0010 = db.execute("SELECT value FROM meta WHERE key = ?", [_UNGUESSED_0010]).fetchone() is None
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


@MIGRATIONS(name="0019_unprinted_index")
def _unprinted_index(db: Database) -> None:
    # Items an older version stored without a fingerprint are looked for at every start: found
    # by this (empty) index, not by reading the whole items table.
    db.executescript("CREATE INDEX IF NOT EXISTS items_unprinted ON items(id) WHERE signature IS NULL;")


@MIGRATIONS(name="0020_fts_merges")
def _fts_merges(db: Database) -> None:
    # The full-text index writes fewer, larger segments and merges them eight at a time instead
    # of four, so each item's postings are rewritten fewer times as the store grows: an index of
    # 200k items built 2,000 at a time takes 17 s instead of 25, and searches take no longer.
    # A segment is what its 8 MiB hash table holds (1 MiB by default): a whole catching-up chunk.
    db.execute("INSERT INTO items_fts(items_fts, rank) VALUES ('automerge', 8)")
    db.execute("INSERT INTO items_fts(items_fts, rank) VALUES ('hashsize', ?)", [8 << 20])


@MIGRATIONS(name="0021_saved_tracker")
def _saved_tracker(db: Database) -> None:
    # The live tracker as its last process left it (worker.saved_tracker): the next one takes it
    # up instead of replaying the recent window. One row; `key` names the code and settings it
    # was made with, `upto` the newest item it accounts for, `since` the start of its window.
    db.executescript(
        """
        CREATE TABLE saved_tracker (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            key TEXT NOT NULL,
            upto INTEGER NOT NULL,
            since TEXT NOT NULL,
            saved_at TEXT NOT NULL,
            state BLOB NOT NULL
        );
        """
    )

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
