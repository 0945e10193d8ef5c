"""Items: saving, clusters of copies, revisions, the full-text index, legacy keys."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlite_utils import Database

from worker.ingest.identity import legacy_guid_keys, split_guid_identity
from worker.clock import from_iso, to_iso
from worker.models import Fingerprint, Indexed, Item, Placement, Stored, index_source
from worker.store.connection import one_row, rows_in_chunks, transaction
from worker.store.marks import settle_marks
from worker.store.schema import LEGACY_FIRST_0010


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
    """A copy's cluster: that of the item it copies, as the store has it now (an index's may
    be older: clusters join, see join_clusters)."""
    copied = place.dup_of if place.dup_of_batch is None else ids[place.dup_of_batch]
    if not copied:
        return None
    row = db.execute("SELECT cluster_id FROM items WHERE id = ?", [copied]).fetchone()
    return int(row[0]) if row else place.cluster_id


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
        row["identity"]: stored_row(row)
        for row in rows_in_chunks(db, "SELECT * FROM items WHERE identity IN ({})", identities)
    }
    by_hash: dict[str, tuple[int, int]] = {}
    sql = "SELECT content_sha256, min(id) AS id FROM items WHERE content_sha256 IN ({}) GROUP BY content_sha256"
    for row in rows_in_chunks(db, sql, hashes):
        by_hash[row["content_sha256"]] = (row["id"], _cluster_id(db, row["id"]))
    tombstoned = frozenset(row["key"] for row in rows_in_chunks(db, "SELECT key FROM tombstones WHERE key IN ({})", identities + hashes))
    return versions, by_hash, tombstoned


def _cluster_id(db: Database, item_id: int) -> int:
    return int(db.execute("SELECT cluster_id FROM items WHERE id = ?", [item_id]).fetchone()[0])


def stored_row(row: dict[str, Any]) -> Stored:
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
    (identities and content hashes) so those items are never ingested again. A storyline's seed
    is no news that ages: its cluster is kept (the seeds of 2019-2024 define the storylines)."""
    with transaction(db):
        old = ("SELECT cluster_id FROM items GROUP BY cluster_id HAVING max(published_at) < ? AND cluster_id NOT IN "
               "(SELECT i.cluster_id FROM storyline_items si JOIN items i ON i.id = si.item_id WHERE si.decision = 'seed')")
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


def lift_tombstones(db: Database, keys: Sequence[str]) -> list[tuple[str, str, str]]:
    """Let items that retention pruned be stored again (a seed file linked to a storyline again);
    returns the tombstones lifted (key, kind, pruned_at), for `put_back_tombstones`."""
    with transaction(db):
        lifted = [(row["key"], row["kind"], row["pruned_at"])
                  for row in rows_in_chunks(db, "SELECT key, kind, pruned_at FROM tombstones WHERE key IN ({})", keys)]
        for key, _, _ in lifted:
            db.execute("DELETE FROM tombstones WHERE key = ?", [key])
        return lifted


def put_back_tombstones(db: Database, tombstones: Sequence[tuple[str, str, str]]) -> None:
    with transaction(db):
        for row in tombstones:
            db.execute("INSERT OR IGNORE INTO tombstones (key, kind, pruned_at) VALUES (?, ?, ?)", row)


def _legacy_candidates(db: Database, items: Sequence[Item], batch: set[str], *, first_0010: bool
                       ) -> dict[str, tuple[Item, list[str]]]:
    """By identity, the items keyed by a feed's GUID and the keys an older version may have made
    of them (not a key of the batch: that is another item's)."""
    bases: dict[str, list[str]] = {}
    wanted: dict[str, tuple[Item, list[str]]] = {}
    for item in items:
        scope = split_guid_identity(item.identity)
        if not item.guid or not item.guid_base or scope is None or item.identity in wanted:
            continue
        if scope[0] not in bases:
            bases[scope[0]] = [row["base"] for row in db.query(
                "SELECT base FROM legacy_guid_bases WHERE scope = ? ORDER BY base", [scope[0]])]
        keys = legacy_guid_keys(item.identity, item.guid, [item.guid_base, *bases[scope[0]]], first_0010=first_0010)
        if keys := [k for k in keys if k not in batch]:
            wanted[item.identity] = (item, keys)
    return wanted


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
    mode = one_row(db, "SELECT value FROM meta WHERE key = 'legacy_guid_keys'")
    if not mode or not mode["value"]:
        return 0
    wanted = _legacy_candidates(db, items, batch, first_0010=mode["value"] == LEGACY_FIRST_0010)
    if not wanted:
        return 0
    every = sorted({k for _, keys in wanted.values() for k in keys})
    rows = {row["identity"]: int(row["id"]) for row in rows_in_chunks(db, "SELECT id, identity FROM items WHERE identity IN ({})", every)}
    stones = {row["key"]: row["pruned_at"] for row in rows_in_chunks(
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
    return {row["identity"] for row in rows_in_chunks(db, "SELECT identity FROM items WHERE identity IN ({})", identities)}


def known_feed_urls(db: Database, feed_id: int, urls: Sequence[str], policy: str) -> set[str]:
    """Which of these links the feed already has an item for, stored under another identity
    policy than ``policy`` (an earlier one: its key is not of the ``policy`` kind)."""
    assert policy in ("guid", "url", "content"), policy
    sql = (f"SELECT url FROM items WHERE feed_id = {int(feed_id)} AND identity NOT LIKE 'feed:{int(feed_id)}:{policy}:%'"
           f" AND url IN ({{}})")
    return {row["url"] for row in rows_in_chunks(db, sql, urls)}


def item_id_by_identity(db: Database, identity: str) -> int | None:
    row = one_row(db, "SELECT id FROM items WHERE identity = ?", [identity])
    return None if row is None else int(row["id"])


def story_ids_by_url(db: Database, url: str) -> list[int]:
    """The stored stories with an item at this link, each by the item that represents it (its
    cluster's id: a copy's link names its story too), oldest first."""
    return [int(row[0]) for row in db.execute("SELECT DISTINCT cluster_id FROM items WHERE url = ? ORDER BY cluster_id", [url])]


def join_clusters(db: Database, item_ids: Sequence[int], kind: str = "near",
                  similarity: float | None = None) -> dict[int, int]:
    """Make the clusters of these items one, and settle who represents it; return each cluster
    id that changed → the joined cluster's id.

    The representative (the item tracked and digested; the cluster is named by its id) is a
    seed document if the cluster has one (the reader's own corpus), else its earliest published
    item, then the most complete (most words), then the first stored: the same whatever order
    the items arrived in (an article listed under several links at once keeps its first).
    A representative that steps down becomes a copy of the new one (of `kind`, with `similarity`:
    the match that joined them) and hands it its storyline links and the reader's marks (see
    _hand_over)."""
    clusters = sorted({cluster for (cluster,) in db.execute(
        f"SELECT cluster_id FROM items WHERE id IN ({', '.join('?' for _ in item_ids)})", list(item_ids))})
    if not clusters:
        return {}
    # Each cluster's representative is the best of its items already: only they and these compete.
    candidates = sorted({*clusters, *item_ids})
    representative = int(db.execute(
        f"SELECT id FROM items WHERE id IN ({', '.join('?' for _ in candidates)}) "
        "ORDER BY source = 'seeds' DESC, published_at, words DESC, id LIMIT 1", candidates).fetchone()[0])
    if clusters == [representative]:
        return {}
    marks = ", ".join("?" for _ in clusters)
    db.execute(f"UPDATE items SET cluster_id = ? WHERE cluster_id IN ({marks})", [representative, *clusters])
    db.execute("UPDATE items SET dup_of = NULL, dup_kind = NULL, similarity = NULL WHERE id = ?", [representative])
    for former in (c for c in clusters if c != representative):
        db.execute("UPDATE items SET dup_of = ?, dup_kind = ?, similarity = ? WHERE id = ?",
                   [representative, kind, similarity, former])
        _hand_over(db, former, representative)
    return {c: representative for c in clusters if c != representative}


def _hand_over(db: Database, former: int, representative: int) -> None:
    """A former representative's storyline links and marks go to the new one: where both have
    one for a storyline, a seed link wins, else the earlier decided (the one a digest showed);
    the later mark wins (the reader's last word), and the marks decide the links (settle_marks)."""
    db.execute("""
        DELETE FROM storyline_items AS n WHERE n.item_id = :new AND EXISTS (
            SELECT 1 FROM storyline_items o WHERE o.item_id = :old AND o.storyline_id = n.storyline_id
              AND (o.decision = 'seed' AND n.decision != 'seed'
                   OR o.decision = n.decision AND o.decided_at < n.decided_at))""",
               {"old": former, "new": representative})
    db.execute("UPDATE OR IGNORE storyline_items SET item_id = ? WHERE item_id = ?", [representative, former])
    db.execute("DELETE FROM storyline_items WHERE item_id = ?", [former])
    if _hand_over_marks(db, former, representative):
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'marks_version'")
    settle_marks(db, representative)


def _hand_over_marks(db: Database, former: int, representative: int) -> bool:
    """The former representative's marks go to the new one: of two for a storyline the later
    wins, keeping the tracker's own link that either kept (to restore when it is cleared)."""
    moved = False
    for old in list(db.query("SELECT * FROM marks WHERE item_id = ?", [former])):
        key = [old["storyline_id"], representative]
        new = one_row(db, "SELECT * FROM marks WHERE storyline_id = ? AND item_id = ?", key)
        winner, loser = (old, new) if new is None or old["marked_at"] > new["marked_at"] else (new, old)
        displaced = winner["displaced"] or (loser["displaced"] if loser else None)
        db.execute("DELETE FROM marks WHERE storyline_id = ? AND item_id IN (?, ?)", [*key, former])
        db.execute("INSERT INTO marks (storyline_id, item_id, followup, marked_at, displaced) VALUES (?, ?, ?, ?, ?)",
                   [*key, winner["followup"], winner["marked_at"], displaced])
        moved = True
    return moved


def cluster_size(db: Database, item_id: int) -> int:
    """How many items are in the item's cluster (itself included)."""
    return int(db.execute("SELECT count(*) FROM items WHERE cluster_id = (SELECT cluster_id FROM items WHERE id = ?)",
                          [item_id]).fetchone()[0])


def clusters_begun(db: Database, item_ids: Sequence[int]) -> list[int]:
    """The clusters of these items that no item stored before the first of them is in: the
    stories they brought (ids only grow). Each by its id, its representative's."""
    if not item_ids:
        return []
    rows = db.execute("""
        SELECT cluster_id FROM items WHERE cluster_id IN (
            SELECT cluster_id FROM items WHERE id IN (SELECT value FROM json_each(?)))
        GROUP BY cluster_id HAVING min(id) >= ?""", [json.dumps(list(item_ids)), min(item_ids)])
    return [int(row[0]) for row in rows]
