"""What the tracker and the dedupe window read back: stored originals by time and identity."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlite_utils import Database

from worker.clock import from_iso, to_iso
from worker.models import Stored
from worker.store.connection import one_row, rows_in_chunks
from worker.store.items import stored_row


def items_by_id(db: Database, item_ids: Sequence[int]) -> dict[int, Stored]:
    return {row["id"]: stored_row(row) for row in rows_in_chunks(db, "SELECT * FROM items WHERE id IN ({})", list(item_ids))}


@dataclass(frozen=True, slots=True)
class ItemLink:
    """An item's recorded link to a storyline, with the storyline's title and state."""

    storyline_id: str
    decision: str  # "seed" or "followup"
    score: float | None
    threshold: float | None
    decided_at: dt.datetime
    title: str  # the storyline's
    active: bool  # the storyline's


def item_links(db: Database, item_id: int) -> list[ItemLink]:
    """The item's recorded storyline links (seed, follow-up), by storyline id."""
    rows = db.query("""
        SELECT si.storyline_id, si.decision, si.score, si.threshold, si.decided_at, s.title, s.active
        FROM storyline_items si JOIN storylines s ON s.id = si.storyline_id
        WHERE si.item_id = ? ORDER BY si.storyline_id""", [item_id])
    return [ItemLink(row["storyline_id"], row["decision"], row["score"], row["threshold"], from_iso(row["decided_at"]),
                     row["title"], bool(row["active"])) for row in rows]


def recent_originals(db: Database, since: dt.datetime, until: dt.datetime, limit: int, *,
                     inclusive: bool = True) -> list[Stored]:
    """The newest `limit` originals (not copies, not seed files) published in [since, until]
    ([since, until) unless `inclusive`), oldest first: what tracking replays."""
    sql = (f"SELECT * FROM items WHERE dup_of IS NULL AND published_at >= ? AND published_at {'<=' if inclusive else '<'} ? "
           "AND source != 'seeds' ORDER BY published_at DESC, id DESC LIMIT ?")
    return [stored_row(row) for row in reversed(list(db.query(sql, [to_iso(since), to_iso(until), limit])))]


def originals_by_identity(db: Database, identities: Sequence[str]) -> dict[str, int]:
    """The stored originals (not copies, not seed files) among `identities`: identity → id."""
    sql = "SELECT identity, id FROM items WHERE identity IN ({}) AND dup_of IS NULL AND source != 'seeds'"
    return {row["identity"]: row["id"] for row in rows_in_chunks(db, sql, list(identities))}


def stored_identities(db: Database, identities: Sequence[str]) -> set[str]:
    """Those of `identities` the store holds an item of (an original, a copy or a seed)."""
    return {row["identity"] for row in rows_in_chunks(db, "SELECT identity FROM items WHERE identity IN ({})", list(identities))}


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
    return [stored_row(row) for row in reversed(list(db.query(sql, [*args, to_iso(before), limit])))]


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
    return [stored_row(row) for row in reversed(list(db.query(sql, [item_id, to_iso(since), limit])))]


def first_seen(db: Database, item_id: int) -> dt.datetime:
    row = one_row(db, "SELECT first_seen_at FROM items WHERE id = ?", [item_id])
    if row is None:
        raise KeyError(item_id)
    return from_iso(row["first_seen_at"])


def storylines_version(db: Database) -> str:
    """Changes whenever a storyline is added, changed, (de)activated, paused or re-seeded, a seed's
    text is revised, or a reader marks an item: made of what the tracker is built from, not of
    times (two edits within one second are two versions)."""
    definitions = db.execute(
        "SELECT id, title, description, keywords, seeds, aliases, exclude, threshold, expires_after_s, origin, active, "
        "paused FROM storylines ORDER BY id").fetchall()
    seeds = db.execute(
        "SELECT si.storyline_id, si.item_id, i.raw_sha256 FROM storyline_items si JOIN items i ON i.id = si.item_id "
        "WHERE si.decision = 'seed' ORDER BY si.storyline_id, si.item_id").fetchall()  # raw: every character of the text
    marks = db.execute("SELECT (SELECT value FROM meta WHERE key = 'marks_version'), count(*), total(item_id), "
                       "total(followup) FROM marks").fetchall()  # a storyline removed takes its marks along
    made_of = json.dumps([definitions, seeds, marks], separators=(",", ":"))
    return hashlib.sha256(made_of.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class SavedTracker:
    key: str
    upto: int
    since: dt.datetime
    state: bytes


def save_tracker(db: Database, saved: SavedTracker, now: dt.datetime) -> None:
    db.execute("INSERT OR REPLACE INTO saved_tracker (id, key, upto, since, saved_at, state) VALUES (1, ?, ?, ?, ?, ?)",
               [saved.key, saved.upto, to_iso(saved.since), to_iso(now), saved.state])


def saved_tracker(db: Database) -> SavedTracker | None:
    row = one_row(db, "SELECT key, upto, since, state FROM saved_tracker WHERE id = 1")
    return SavedTracker(row["key"], row["upto"], from_iso(row["since"]), row["state"]) if row else None


def originals_after(db: Database, upto: int, since: dt.datetime, leaving_out: Sequence[int] = ()) -> bool:
    """Whether an original (no copy of another) newer than `upto`, published from `since` on, is
    stored, other than `leaving_out`: what a tracker rebuilt now would learn from."""
    for row in db.query("SELECT id FROM items WHERE id > ? AND dup_of IS NULL AND published_at >= ?",
                        [upto, to_iso(since)]):
        if row["id"] not in leaving_out:
            return True
    return False
