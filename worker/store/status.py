"""Status, health and metrics: what the store says about itself, its feeds and cycles."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from worker.clock import from_iso, to_iso
from worker.models import FeedHealth, StoreStatus, StorylineSummary
from worker.store.connection import maybe_time, one_row, transaction
from worker.store.digests import settled_columns, unconfirmed_digests
from worker.store.feeds import REMOVED_BY_YOU


def status(db: Database, path: Path, now: dt.datetime) -> StoreStatus:
    """Everything `storywatch status` shows, read in one go (a digest left "sending" by a stopped
    sender is shown as what it is: "unconfirmed", or "pending" when it was not handed over)."""
    by_source = {r["source"]: r["n"] for r in db.query("SELECT source, count(*) AS n FROM items GROUP BY source")}
    last_poll = one_row(db, "SELECT max(started_at) AS at FROM fetches")
    last_digest = one_row(db, "SELECT * FROM digests ORDER BY created_at DESC LIMIT 1")
    if last_digest:  # one left "sending" by a stopped sender shown as it will be marked
        last_digest |= settled_columns(last_digest, now)
    return StoreStatus(
        path=path,
        items_by_source=by_source,
        feeds=tuple(feed_health(db)),
        storylines=tuple(storyline_summaries(db)),
        last_poll_at=maybe_time(last_poll["at"] if last_poll else None),
        last_digest_at=maybe_time(last_digest["created_at"] if last_digest else None),
        last_digest_status=last_digest["status"] if last_digest else None,
        last_digest_error=last_digest["error"] if last_digest else None,
        last_digest_resend_error=last_digest["resend_error"] if last_digest else None,
        last_digest_retry_at=maybe_time(last_digest["next_attempt_at"] if last_digest else None),
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
            last_polled_at=maybe_time(row["last_polled_at"]),
            next_poll_at=maybe_time(row["next_poll_at"]),
            disabled_reason=row["disabled_reason"],
            retry_after=maybe_time(row["retry_after"]),
            last_success_at=maybe_time(row["last_success_at"]),
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
            last_followup_at=maybe_time(row["last_followup"]),
            paused=bool(row["paused"]),
        )


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
    row = one_row(db, "SELECT min(started_at) AS at FROM cycles")
    return from_iso(row["at"]) if row and row["at"] else None


def has_answered(db: Database) -> bool:
    """Whether a feed has answered a poll (a store with no feed yet has none to show)."""
    row = one_row(db, "SELECT EXISTS (SELECT 1 FROM feeds WHERE last_success_at IS NOT NULL) "
                   "OR EXISTS (SELECT 1 FROM items WHERE source = 'feed') AS yes")
    return bool(row and row["yes"])


def last_cycle(db: Database, *, whole: bool = False) -> dict[str, Any] | None:
    """The last cycle logged (`whole`: the last one that was not interrupted), or None."""
    row = one_row(db, f"SELECT * FROM cycles {'WHERE stopped = 0 ' if whole else ''}ORDER BY id DESC LIMIT 1")
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
        status = (row | settled_columns(row, now))["status"]
        counts[status] = counts.get(status, 0) + 1
    return counts


def items_by_source(db: Database) -> dict[str, int]:
    return {row["source"]: row["n"] for row in db.query("SELECT source, count(*) AS n FROM items GROUP BY source")}
