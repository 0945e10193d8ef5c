"""What the commands show, read from the store: listings and pages as the CLI prints them, and the
error a user meets when what they name is not there. The commands hold no queries of their own."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from worker import store
from worker.digest import atom
from worker.errors import StorywatchError
from worker.models import FeedHealth, ItemDetail, StoredItem, StoreStatus, StorylineSummary, TimelineEntry


def feeds(db: Database) -> list[FeedHealth]:
    """Every feed with its health (the removed ones apart)."""
    return list(store.feed_health(db))


def feed_item_count(db: Database, feed_id: int) -> int:
    return store.feed_item_count(db, feed_id)


@dataclass(frozen=True)
class Listing:
    """A page of items, newest first (best match first with a search)."""

    items: list[StoredItem]
    more: bool
    """More items match than `limit`."""
    hidden: int
    """Copies of the listed stories left out (counted only when asked)."""


def items(db: Database, *, since: dt.datetime | None, storyline: str | None, search: str | None, limit: int,
          copies: bool, count_hidden: bool) -> Listing:
    found = store.find_items(db, since=since, storyline=storyline, search=search, limit=limit + 1, copies=copies)
    hidden = store.count_copies(db, since=since, storyline=storyline, search=search) \
        if count_hidden and not copies else 0
    return Listing(found[:limit], len(found) > limit, hidden)


def item(db: Database, item_id: int) -> ItemDetail:
    detail = store.item_detail(db, item_id)
    if detail is None:
        raise StorywatchError(f"no item with id {item_id} (see storywatch items)")
    return detail


def storylines(db: Database) -> list[StorylineSummary]:
    return list(store.storyline_summaries(db))


@dataclass(frozen=True)
class StorylinePage:
    """A storyline's page: its summary, its timeline and the items the reader marked "not this"."""

    summary: StorylineSummary
    entries: list[TimelineEntry]
    rejected: list[tuple[int, dt.datetime, str]]
    """(id, published, title), oldest first."""


def storyline_page(db: Database, storyline_id: str) -> StorylinePage:
    summary = next((s for s in store.storyline_summaries(db) if s.id == storyline_id), None)
    if summary is None:
        raise StorywatchError(f"no storyline {storyline_id!r} (see storywatch storylines list)")
    entries = store.storyline_timeline(db, storyline_id)
    rejected = [m.item_id for m in store.marks(db, storyline_id=storyline_id) if not m.followup]
    items_of = store.items_by_id(db, rejected)
    listed = sorted(((i, items_of[i].published_at, items_of[i].title) for i in rejected if i in items_of),
                    key=lambda entry: (entry[1], entry[0]))
    return StorylinePage(summary, entries, listed)


def suggestions(db: Database, *, include_closed: bool) -> list[store.Suggested]:
    return store.suggestions(db, include_closed=include_closed)


def schema(db: Database) -> str:
    """The store's schema: its last migration."""
    return store.schema_version(db)


def status(db: Database, path: Path, now: dt.datetime) -> StoreStatus:
    return store.status(db, path, now)


def storyline_atom(db: Database, storyline_id: str, now: dt.datetime) -> str:
    """An active storyline's timeline (seeds and follow-ups) as an Atom feed."""
    found = [s for s in store.active_storylines(db) if s.id == storyline_id]
    if not found:
        raise StorywatchError(f"no active storyline {storyline_id!r} (see storywatch status)")
    return atom.storyline_feed(found[0], store.storyline_timeline(db, storyline_id), now)
