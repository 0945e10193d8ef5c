"""Feeds: the config's and the reader's, their polling state and fetch history."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from worker.clock import from_iso, to_iso
from worker.config import FeedConfig
from worker.safetext import without_password
from worker.models import Feed, FetchHistory, feed_address
from worker.store.connection import differs, maybe_time, one_row, transaction


def sync_feeds(db: Database, feeds: Sequence[FeedConfig], now: dt.datetime) -> dict[str, int]:
    """Make the store's config feeds match `feeds`: add, update, and disable removed ones.

    A feed that moved (301/308) is found by the URL the config still gives (`config_url`),
    so the old address is not added again.
    """
    counts = {"added": 0, "updated": 0, "removed": 0}
    kept: set[int] = set()
    with transaction(db):
        stored = _StoredFeeds(db)
        for feed in feeds:
            row = stored.find(feed.url)
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
                feed_id = int(cursor.lastrowid or 0)
                kept.add(feed_id)
                stored.added(feed_id, feed.url, values)
                counts["added"] += 1
                continue
            kept.add(row["id"])
            if row["origin"] != "config" or row["disabled_reason"] in REMOVED or differs(row, values):
                change = {**values, "origin": "config", "disabled_reason": _still_disabled(row)}
                db.table("feeds").update(row["id"], change)
                row.update(change)  # a later entry for the same feed (its old address) compares with this
                counts["updated"] += 1
        for row in db.query("SELECT id, disabled_reason FROM feeds WHERE origin = 'config' "
                            "AND (disabled_reason IS NULL OR disabled_reason != ?)", [REMOVED_FROM_CONFIG]):
            if row["id"] not in kept:
                # A disabled one (by the reader, a 410) becomes the reader's as it is, to enable or remove.
                change = {"disabled_reason": REMOVED_FROM_CONFIG} if row["disabled_reason"] is None else {"origin": "cli"}
                db.table("feeds").update(row["id"], change)
                counts["removed"] += 1
    return counts


class _StoredFeeds:
    """The stored feeds, read once, found as sync_feeds looks for a config feed: by its address,
    else by the address the config gave a feed that moved, else by the address however written."""

    def __init__(self, db: Database) -> None:
        self.rows = list(db.query("SELECT * FROM feeds ORDER BY id"))
        self.by_url = {row["url"]: row for row in self.rows}
        self.by_config_url: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            if row["config_url"]:
                self.by_config_url.setdefault(row["config_url"], row)
        self._by_address: dict[str, dict[str, Any]] | None = None  # made when first needed

    def find(self, url: str) -> dict[str, Any] | None:
        return self.by_url.get(url) or self.by_config_url.get(url) or self.at_address(url)

    def added(self, feed_id: int, url: str, values: Mapping[str, Any]) -> None:
        row = {"id": feed_id, "url": url, "config_url": url, "origin": "config", "disabled_reason": None, **values}
        self.rows.append(row)
        self.by_url.setdefault(url, row)
        self.by_config_url.setdefault(url, row)
        if self._by_address is not None:
            self._by_address.setdefault(feed_address(url), row)

    def at_address(self, url: str) -> dict[str, Any] | None:
        """The first feed (by id) whose address, or the config's address for it, is `url`'s."""
        if self._by_address is None:
            self._by_address = {}
            for row in self.rows:
                for address in (row["url"], row["config_url"]):
                    if address:
                        self._by_address.setdefault(feed_address(address), row)
        return self._by_address.get(feed_address(url))


def feed_at_address(db: Database, url: str) -> Feed | None:
    """The stored feed at `url` (or at the address the config gives a feed that moved), however
    its scheme and host are written (HTTP://Host/feed#top for http://host/feed)."""
    row = _StoredFeeds(db).at_address(url)
    return _feed(row) if row else None


def _still_disabled(row: dict[str, Any]) -> str | None:
    """Putting a feed (back) in the config enables it, unless it is disabled (by the reader, a 410)."""
    reason = row["disabled_reason"]
    return None if reason in REMOVED else reason


REMOVED_FROM_CONFIG = "removed from the config"


def add_feed(db: Database, url: str, now: dt.datetime, *, name: str = "", tags: Sequence[str] = (),
             interval: dt.timedelta | None = None, origin: str = "cli", title: str = "") -> bool:
    """Add a feed by hand (CLI, OPML); False when that address is already known. A feed the
    reader removed comes back with its items and polling state. `title`: the feed's own, if it
    was read (shown until the first poll)."""
    settings = {"name": name, "tags": json.dumps(list(tags)), "origin": origin, "title": title or None,
                "interval_s": int(interval.total_seconds()) if interval else None}
    with transaction(db):
        row = one_row(db, "SELECT id, name, disabled_reason FROM feeds WHERE url = ? OR config_url = ?", [url, url])
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
    return bool(name.strip()) and one_row(
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
    row = one_row(db, "SELECT count(*) AS n FROM items WHERE feed_id = ?", [feed_id])
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
        next_poll_at=maybe_time(row["next_poll_at"]),
        boilerplate=row["boilerplate"],
    )


_FEED_STATE = {
    "url", "title", "site_url", "etag", "last_modified", "body_sha256", "next_poll_at", "last_polled_at",
    "last_success_at", "error_count", "last_error", "last_status", "disabled_reason", "identity_policy",
    "public_origin", "retry_after", "config_url", "boilerplate",
}


def update_feed(db: Database, feed_id: int, **state: Any) -> None:
    """Write a feed's polling state; datetimes are stored as ISO text."""
    update_feeds(db, [(feed_id, state)])


def update_feeds(db: Database, states: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
    """Write feeds' polling states: (feed id, state) pairs, one statement for those that set the
    same columns (a cycle of 304s writes a thousand alike).

    Plain SQL: sqlite-utils' update() inspects the table and reads the row first (about a
    millisecond a feed).
    """
    alike: dict[tuple[str, ...], list[list[Any]]] = defaultdict(list)
    for feed_id, state in states:
        unknown = set(state) - _FEED_STATE
        if unknown:
            raise ValueError(f"not a feed state column: {sorted(unknown)}")
        values = [to_iso(v) if isinstance(v, dt.datetime) else v for v in state.values()]
        alike[tuple(state)].append([*values, feed_id])
    for columns, rows in alike.items():
        db.conn.executemany(f"UPDATE feeds SET {', '.join(f'{name} = ?' for name in columns)} WHERE id = ?", rows)


def url_taken(db: Database, url: str, feed_id: int) -> bool:
    return one_row(db, "SELECT id FROM feeds WHERE url = ? AND id != ?", [url, feed_id]) is not None


@dataclass(frozen=True, slots=True)
class Fetch:
    """One poll of a feed, as the fetch log keeps it (`status`, `health`, adaptive intervals)."""

    feed_id: int
    started_at: dt.datetime
    kind: str
    status: int | None = None
    size: int = 0
    ms: int = 0
    new_items: int = 0
    error: str | None = None


def record_fetch(
    db: Database, feed_id: int, started_at: dt.datetime, *, kind: str, status: int | None = None,
    size: int = 0, ms: int = 0, new_items: int = 0, error: str | None = None,
) -> None:
    record_fetches(db, [Fetch(feed_id, started_at, kind, status, size, ms, new_items, error)])


def record_fetches(db: Database, fetches: Sequence[Fetch]) -> None:
    db.conn.executemany(
        "INSERT INTO fetches (feed_id, started_at, kind, status, bytes, ms, new_items, error) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(f.feed_id, to_iso(f.started_at), f.kind, f.status, f.size, f.ms, f.new_items, f.error) for f in fetches],
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
    return {r["url"]: FetchHistory(maybe_time(r["ok_at"]), r["failures"], r["last_error"], r["last_kind"]) for r in rows}
