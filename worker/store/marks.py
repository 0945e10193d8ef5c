"""The reader's marks on follow-ups: confirmed, rejected, missed."""

from __future__ import annotations

import datetime as dt
import json
from typing import NamedTuple

from sqlite_utils import Database

from worker.clock import from_iso, to_iso
from worker.store.connection import one_row, transaction


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
        link = one_row(db, "SELECT * FROM storyline_items WHERE storyline_id = ? AND item_id = ?", key)
        mark = one_row(db, "SELECT * FROM marks WHERE storyline_id = ? AND item_id = ?", key)
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
                db.table("storyline_items").insert(own or _marked_link(storyline_id, item_id, to_iso(now)))
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'marks_version'")
    return _mark_change(bool(mark["followup"]) if mark else None, followup, link is not None,
                        own is not None)


MARKED = {"marked": True}  # the reasons of a link a reader's "yes" made (no tracker decided it)


def _marked_link(storyline_id: str, item_id: int, when: str) -> dict[str, object]:
    """The link a reader's "yes" makes where the tracker made none."""
    return {"storyline_id": storyline_id, "item_id": item_id, "decision": "followup",
            "reasons": json.dumps(MARKED), "decided_at": when}


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


def settle_marks(db: Database, item_id: int) -> None:
    """The item's marks decide its links again, as set_mark does, after a join brought it the
    marks and links of several items (join_clusters): a "no" removes its follow-up link (kept
    as the mark's displaced link, to restore when the mark is cleared, if it keeps none yet), a
    "yes" makes sure of one; the displaced links name this item. A link a "yes" made (another
    item's, handed over) is no tracker's decision: a "no" drops it without keeping it."""
    for mark in list(db.query("SELECT * FROM marks WHERE item_id = ?", [item_id])):
        key = [mark["storyline_id"], item_id]
        link = one_row(db, "SELECT * FROM storyline_items WHERE storyline_id = ? AND item_id = ?", key)
        if not mark["followup"] and link and link["decision"] == "followup":
            if mark["displaced"] is None and json.loads(link["reasons"] or "{}") != MARKED:
                db.execute("UPDATE marks SET displaced = ? WHERE storyline_id = ? AND item_id = ?",
                           [json.dumps(link, ensure_ascii=False), *key])
            db.execute("DELETE FROM storyline_items WHERE storyline_id = ? AND item_id = ?", key)
        elif mark["followup"] and link is None:
            db.table("storyline_items").insert(_marked_link(mark["storyline_id"], item_id, mark["marked_at"]))
    db.execute("UPDATE marks SET displaced = json_set(displaced, '$.item_id', ?) "
               "WHERE item_id = ? AND displaced IS NOT NULL", [item_id, item_id])
