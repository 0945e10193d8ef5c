"""Suggested storylines: saved, dismissed, adopted."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from worker.clock import from_iso, to_iso
from worker.store.connection import one_row


@dataclass(frozen=True, slots=True)
class Suggested:
    """A recorded suggestion, as `storylines suggest` and the digest show it."""

    id: int
    created_at: dt.datetime
    title: str
    terms: tuple[str, ...]
    item_ids: tuple[int, ...]
    sources: int
    first_at: str  # as stored (ISO): the outputs print it, or its date, as written
    last_at: str  # as stored, like first_at
    status: str  # "open", "adopted" or "dismissed"
    storyline_id: str | None  # the storyline that adopted it


def _suggested(row: dict[str, Any]) -> Suggested:
    return Suggested(
        id=row["id"], created_at=from_iso(row["created_at"]), title=row["title"], terms=tuple(json.loads(row["terms"])),
        item_ids=tuple(json.loads(row["item_ids"])), sources=row["sources"], first_at=row["first_at"],
        last_at=row["last_at"], status=row["status"], storyline_id=row["storyline_id"])


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


def suggestions(db: Database, *, include_closed: bool = False) -> list[Suggested]:
    where = "" if include_closed else "WHERE status = 'open'"
    return [_suggested(row) for row in db.query(f"SELECT * FROM suggestions {where} ORDER BY last_at DESC, id DESC")]


def suggestion(db: Database, suggestion_id: int) -> Suggested | None:
    row = one_row(db, "SELECT * FROM suggestions WHERE id = ?", [suggestion_id])
    return _suggested(row) if row else None


def adopt_suggestion(db: Database, suggestion_id: int, storyline_id: str) -> bool:
    """Mark an open suggestion adopted by a storyline; False if it is not open (any more)."""
    cursor = db.execute("UPDATE suggestions SET status = 'adopted', storyline_id = ? WHERE id = ? AND status = 'open'",
                        [storyline_id, suggestion_id])
    return cursor.rowcount == 1


def open_suggestions(db: Database, until: dt.datetime) -> list[Suggested]:
    return [_suggested(row) for row in db.query(
        "SELECT * FROM suggestions WHERE status = 'open' AND created_at < ? ORDER BY id", [to_iso(until)])]
