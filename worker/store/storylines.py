"""Storylines: the config's and the reader's, their follow-ups and timelines."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlite_utils import Database

from worker.clock import from_iso, to_iso
from worker.config import StorylineConfig
from worker.models import FollowUp, StorylineDef, TimelineEntry
from worker.store.connection import differs, one_row, transaction
from worker.store.search import publisher_sql


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
    row = one_row(db, "SELECT * FROM storylines WHERE id = ?", [storyline.id])
    if row is not None and row["paused"]:
        values["active"] = 0  # paused by the reader: the config does not resume it
    if row is None:
        db.table("storylines").insert({"id": storyline.id, "created_at": to_iso(now), "updated_at": to_iso(now), **values})
        return True
    if not differs(row, values):
        return False
    db.table("storylines").update(storyline.id, {**values, "updated_at": to_iso(now)})
    return True


@dataclass(frozen=True, slots=True)
class StoredStoryline:
    """A stored storyline, active or not: its definition as saved (as the config would give it;
    its aliases as saved: active_storylines drops groups of fewer than 2) and its state."""

    definition: StorylineConfig
    origin: str  # "config" or "cli"
    active: bool
    paused: bool  # by the reader: config syncs keep it inactive
    created_at: dt.datetime
    updated_at: dt.datetime


def storyline_row(db: Database, storyline_id: str) -> StoredStoryline | None:
    row = one_row(db, "SELECT * FROM storylines WHERE id = ?", [storyline_id])
    if row is None:
        return None
    definition = StorylineConfig(
        id=row["id"], title=row["title"], description=row["description"], seeds=tuple(json.loads(row["seeds"])),
        keywords=tuple(json.loads(row["keywords"])),
        aliases=tuple(tuple(group) for group in json.loads(row["aliases"])),
        exclude=tuple(json.loads(row["exclude"])), threshold=row["threshold"],
        expires_after=dt.timedelta(seconds=row["expires_after_s"]) if row["expires_after_s"] else None)
    return StoredStoryline(definition, origin=row["origin"], active=bool(row["active"]), paused=bool(row["paused"]),
                           created_at=from_iso(row["created_at"]), updated_at=from_iso(row["updated_at"]))


def set_storyline_paused(db: Database, storyline_id: str, paused: bool, now: dt.datetime) -> None:
    """Pause a storyline (inactive, and kept so by config syncs) or resume it."""
    with transaction(db):
        db.execute("UPDATE storylines SET paused = ?, active = ?, updated_at = ? WHERE id = ?",
                   [int(paused), int(not paused), to_iso(now), storyline_id])


def remove_storyline(db: Database, storyline_id: str) -> int:
    """Forget a storyline: its definition, links and marks go, the items stay; a suggestion it
    was made from is open again. Returns how many follow-ups were unlinked."""
    with transaction(db):
        row = one_row(db, "SELECT count(*) AS n FROM storyline_items WHERE storyline_id = ? AND decision = 'followup'",
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
    return one_row(db, "SELECT id FROM storylines WHERE id = ?", [storyline_id]) is not None


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
    """.format(publisher=publisher_sql("i"))
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
