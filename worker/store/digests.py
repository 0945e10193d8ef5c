"""Digests: what each one covers, kept digests and their delivery (at most once)."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from worker.clock import from_iso, to_iso
from worker.store.connection import maybe_time, one_row, transaction


def stored_since(db: Database, moment: dt.datetime) -> bool:
    """Whether an item was first seen at `moment`'s whole second or later."""
    return one_row(db, "SELECT 1 AS hit FROM items WHERE first_seen_at >= ? LIMIT 1", [to_iso(moment)]) is not None


def last_digest(db: Database) -> dict[str, Any] | None:
    return one_row(db, "SELECT * FROM digests ORDER BY period_end DESC, id DESC LIMIT 1")


def digest_row(db: Database, day: dt.date) -> dict[str, Any] | None:
    return one_row(db, "SELECT * FROM digests WHERE day = ?", [day.isoformat()])


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
        was = row | settled_columns(row, now)  # one a stopped sender left "sending": as it will be marked
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
    return row | settled_columns(row, now) if row else None


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


def settled_columns(row: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
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
            if changes := settled_columns(row, now):
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
    return [dt.date.fromisoformat(row["day"]) for row in rows if (row | settled_columns(row, now))["status"] == "unconfirmed"]


def digests_to_retry(db: Database, now: dt.datetime) -> list[dict[str, Any]]:
    """Digests waiting to be emailed (pending, or failed), whose retry time has come."""
    return list(db.query(
        "SELECT * FROM digests WHERE status IN ('pending', 'failed') AND (next_attempt_at IS NULL OR next_attempt_at <= ?) "
        "ORDER BY day", [to_iso(now)]))


@dataclass(frozen=True, slots=True)
class StoryRow:
    """A stored original as a digest lists it."""

    id: int
    title: str
    url: str | None
    publisher: str
    published_at: dt.datetime
    text: str  # "" for a follow-up found later (its lead is not shown)
    summary: str
    source: str  # "feed", "seeds" or "backfill"
    also: tuple[str, ...]  # the other publishers of its copies


def _story_row(row: dict[str, Any]) -> StoryRow:
    return StoryRow(id=row["id"], title=row["title"], url=row["url"], publisher=row["publisher"],
                    published_at=from_iso(row["published_at"]), text=row["text"], summary=row["summary"],
                    source=row["source"], also=tuple(a for a in json.loads(row["also"] or "[]") if a))


def digest_stories(db: Database, start: dt.datetime, end: dt.datetime, *, include_backfill: bool) -> list[StoryRow]:
    """The stories news in [start, end) (_news_clusters), each by the item that represents its
    cluster, newest first, with the publishers of their copies seen before `end` (a copy
    arriving later does not change a digest already written)."""
    return [_story_row(row) for row in db.query(f"""
        SELECT i.id, i.title, i.url, i.publisher, i.published_at, i.text, i.summary, i.source,
               (SELECT json_group_array(DISTINCT c.publisher) FROM items c
                WHERE c.cluster_id = i.cluster_id AND c.id != i.id AND c.publisher != i.publisher
                  AND c.first_seen_at < :end) AS also
        FROM ({_news_clusters(include_backfill)}) n JOIN items i ON i.id = n.cluster_id
        ORDER BY i.published_at DESC, i.id DESC""", {"start": to_iso(start), "end": to_iso(end)})]


def _news_clusters(include_backfill: bool) -> str:
    """SQL: the clusters whose story is news in [:start, :end), by their ids (their
    representatives'), in one pass over the items seen in the period and their clusters: the
    cluster's first item was seen then, and (unless `include_backfill`: history is no news) a
    feed's item of it too. So a story is news once, whichever of its items represents it later
    (store.join_clusters), and a backfilled copy that takes a live story over does not hide it."""
    live = "" if include_backfill else (
        "AND sum(source != 'backfill' AND first_seen_at >= :start AND first_seen_at < :end) > 0")
    return f"""
        SELECT cluster_id FROM items
        WHERE cluster_id IN (SELECT cluster_id FROM items WHERE first_seen_at >= :start AND first_seen_at < :end)
        GROUP BY cluster_id HAVING min(first_seen_at) >= :start {live}"""


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


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """A storyline's recorded decision on an item (see storyline_decisions)."""

    storyline_id: str
    item_id: int
    decision: str  # "seed" or "followup"
    score: float | None
    threshold: float | None
    raw_score: float | None
    reasons: dict[str, object] | None
    novelty: tuple[str, ...]  # what is new in the item
    closest_item_id: int | None
    decided_at: dt.datetime
    closest_title: str | None


def _decision_row(row: dict[str, Any]) -> DecisionRow:
    return DecisionRow(
        storyline_id=row["storyline_id"], item_id=row["item_id"], decision=row["decision"], score=row["score"],
        threshold=row["threshold"], raw_score=row["raw_score"],
        reasons=json.loads(row["reasons"]) if row["reasons"] else None,
        novelty=tuple(json.loads(row["novelty"])) if row["novelty"] else (), closest_item_id=row["closest_item_id"],
        decided_at=from_iso(row["decided_at"]), closest_title=row["closest_title"])


def storyline_decisions(db: Database, item_ids: Sequence[int], until: dt.datetime) -> list[DecisionRow]:
    """Every storyline decision on these items as it stood at `until` (the moment the digest is
    written), with the title of the item each is closest to (a later decision, such as a
    look-back, or a later mark, does not change a digest already written)."""
    links = _links_as_of("item_id IN (SELECT value FROM json_each(:ids))")
    return [_decision_row(row) for row in db.query(f"""
        SELECT si.*, (SELECT title FROM items WHERE id = si.closest_item_id) AS closest_title
        FROM ({links}) si""", {"ids": json.dumps(list(item_ids)), "until": to_iso(until)})]


def late_followups(db: Database, start: dt.datetime, end: dt.datetime, *,
                   include_backfill: bool) -> list[tuple[str, StoryRow]]:
    """Follow-ups of active storylines decided in (start, end] for items no digest of [start, end)
    lists as new (their story is not news in it: _news_clusters); not those the reader had
    marked by `end` (`items mark --yes`: no news to them), and as they stood at `end`. Newest
    publication first: (storyline id, the item without its text)."""
    rows = db.query(f"""
        SELECT si.storyline_id, i.id, i.title, i.url, i.publisher, i.published_at, '' AS text, '' AS summary,
               i.source, '[]' AS also
        FROM ({_links_as_of("decided_at > :start")}) si JOIN items i ON i.id = si.item_id
        JOIN storylines s ON s.id = si.storyline_id AND s.active = 1
        WHERE si.decision = 'followup' AND si.decided_at > :start
          AND i.cluster_id NOT IN ({_news_clusters(include_backfill)})
          AND NOT EXISTS (SELECT 1 FROM marks m WHERE m.storyline_id = si.storyline_id AND m.item_id = si.item_id
                          AND m.marked_at <= :until)
        ORDER BY i.published_at DESC, i.id DESC""", {"start": to_iso(start), "end": to_iso(end), "until": to_iso(end)})
    return [(row["storyline_id"], _story_row(row)) for row in rows]


def storyline_seed_stories(db: Database, storyline_id: str) -> list[StoryRow]:
    return [_story_row(row) for row in db.query("""
        SELECT i.id, i.title, i.url, i.publisher, i.published_at, i.text, i.summary, i.source, '[]' AS also
        FROM storyline_items si JOIN items i ON i.id = si.item_id
        WHERE si.storyline_id = ? AND si.decision = 'seed' ORDER BY i.published_at DESC, i.id DESC""", [storyline_id])]


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
    return {r["id"]: maybe_time(r["last"]) for r in rows}


@dataclass(frozen=True, slots=True)
class RevisionRow:
    """An item's latest revision in a period, with the item's current title and link."""

    item_id: int
    changed: tuple[str, ...]  # what changed: "title", "text", ...
    diff: str
    title: str
    url: str | None
    publisher: str
    storylines: tuple[str, ...]  # the ids of the storylines it is linked to


def revisions_between(db: Database, start: dt.datetime, end: dt.datetime) -> list[RevisionRow]:
    """The latest revision in [start, end) of each tracked item, with its current title and link."""
    rows = db.query("""
        SELECT r.item_id, r.changed, r.diff, i.title, i.url, i.publisher,
               (SELECT json_group_array(storyline_id) FROM storyline_items WHERE item_id = i.id) AS storylines
        FROM item_revisions r JOIN items i ON i.id = r.item_id
        WHERE r.seen_at >= ? AND r.seen_at < ? AND i.id IN (SELECT item_id FROM storyline_items)
          AND r.revision = (SELECT max(revision) FROM item_revisions WHERE item_id = r.item_id AND seen_at < ?)
        ORDER BY r.seen_at DESC""", [to_iso(start), to_iso(end), to_iso(end)])
    return [RevisionRow(row["item_id"], tuple(json.loads(row["changed"])), row["diff"], row["title"], row["url"],
                        row["publisher"], tuple(json.loads(row["storylines"]))) for row in rows]
