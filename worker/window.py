"""The dedupe window of the one writer: the index of the items published around the ones being
stored, fed from the store and kept in step with it (other processes' writes, rollbacks)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlite_utils import Database

from worker import store, storylines
from worker.ingest import dedupe
from worker.config import Settings
from worker.models import Indexed, Item


@dataclass
class _Seen:
    """How far a window has taken in the store."""

    version: int  # the store's data_version: it changes when another connection commits
    top: int  # the highest item id taken in
    reprints: int  # the store's count of fingerprint recomputations


class Window:
    """The dedupe index over the items published around the ones being stored.

    It follows the newest publication time it has seen (the anchor): as the anchor moves
    forward, newer items are loaded from the store and older ones forgotten, so memory stays
    bounded. Items published long before the anchor (an old entry in a live feed) are
    compared with an index built for their own time, loaded from the store.

    Other processes write to the store too (a backfill, `storywatch poll` beside the daemon):
    `catch_up`, first thing in each write transaction, takes in what they stored since.
    """

    def __init__(self, db: Database, settings: Settings, now: dt.datetime) -> None:
        self.db = db
        self.span = settings.dedupe.window
        self.threshold = settings.dedupe.similarity
        self.clutter = dedupe.Clutter.compile(settings.dedupe.clutter_patterns)
        self.index = dedupe.Index(self.span, self.threshold)
        self.anchor: dt.datetime | None = None
        self._forgotten_at: dt.datetime | None = None  # the anchor at the last clean-up
        self._seen: _Seen | None = None  # None: nothing taken in yet

    def index_for(self, items: Sequence[Item]) -> dedupe.Index:
        """The index to judge this batch with (every item of a feed's batch uses the same one)."""
        if not items:
            return self.index
        newest, oldest = max(i.published_at for i in items), min(i.published_at for i in items)
        if self.anchor is None or newest > self.anchor:
            self._advance(newest)
        assert self.anchor is not None
        if oldest >= self.anchor - self.span:
            return self.index
        return self._load(dedupe.Index(self.span, self.threshold), oldest - self.span, newest + self.span)

    def _advance(self, anchor: dt.datetime) -> None:
        if self._seen is None:  # before loading: what is stored after the mark is taken in later
            self._seen = self._mark()
        start = anchor - self.span
        loaded_until = self.anchor + self.span if self.anchor else None
        if loaded_until is None or loaded_until < start:
            self.index = dedupe.Index(self.span, self.threshold)
            self._load(self.index, start, anchor + self.span)
        else:
            self._load(self.index, loaded_until, anchor + self.span)
            if self._forgotten_at is None or anchor - self._forgotten_at >= self.span / 30:
                self.index.forget_before(start - self.span)  # a scan of the index: not every batch
                self._forgotten_at = anchor
        self.anchor = anchor

    def stored_text(self, item_id: int) -> tuple[str, str] | None:
        """A stored item's (title, match text): its text without clutter and its feed's boilerplate."""
        found = store.item_text(self.db, item_id)
        if found is None:
            return None
        title, text, boilerplate = found
        return title, dedupe.match_text(text, self.clutter, dedupe.Boilerplate.from_json(boilerplate).lines)

    def _load(self, index: dedupe.Index, since: dt.datetime, until: dt.datetime) -> dedupe.Index:
        index.extend(store.index_entries(self.db, since, until))
        return index

    def forget(self) -> None:
        """Drop everything loaded or added: the next batch reloads the index from the store."""
        self.index = dedupe.Index(self.span, self.threshold)
        self.anchor = self._forgotten_at = self._seen = None

    def catch_up(self) -> list[Indexed]:
        """Take in the items other connections stored since the last look, whatever their time
        (those published in the loaded range join the index; fingerprints recomputed elsewhere
        make it reload) and return them. One PRAGMA when no other connection committed.

        Call it outside any transaction or first in a write transaction: then every item stored
        since the last look is another's, and this process's own are counted by `took`.
        """
        seen = self._seen
        if seen is None:
            self._seen = self._mark()
            return []
        version = store.data_version(self.db)
        if version == seen.version:
            return []
        top, reprints = store.write_marks(self.db)
        outside = list(store.entries_after(self.db, seen.top))
        mark = self._seen = _Seen(version, max([top, *(e.item_id for e in outside)]), reprints)
        if reprints != seen.reprints:
            self.forget()
            self._seen = mark  # only the index reloads: what was taken in stays so, and what comes next is returned
        elif self.anchor is not None:
            self.index.extend(e for e in outside if abs(e.published - self.anchor) <= self.span)
        return outside

    def took(self, item_ids: Sequence[int]) -> None:
        """This process stored these items (in a write transaction that caught up first)."""
        if self._seen is not None:
            self._seen.top = max([self._seen.top, *item_ids])

    def reprinted(self) -> None:
        """This process recomputed stored fingerprints: other processes' windows must reload."""
        count = store.count_reprint(self.db)
        if self._seen is not None:
            self._seen.reprints = count

    def _mark(self) -> _Seen:
        return _Seen(store.data_version(self.db), *store.write_marks(self.db))


@contextmanager
def writing(db: Database, window: Window, tracking: storylines.Tracking | None) -> Iterator[None]:
    """A write transaction whose in-memory side effects follow the store.

    The dedupe window and the tracker learn items as they are stored, before the commit. If
    the transaction (or this savepoint of it) rolls back, what they learnt is dropped and they
    are rebuilt from the store on next use: otherwise the next feed would be judged against
    items the store does not have (a rowid reused by another feed's article, stored as a copy
    of itself; a tracker adapted to a follow-up that was never recorded). A COMMIT that fails
    is a rollback too.

    First, holding the write lock, they catch up with what other processes stored.
    """
    outermost = not db.conn.in_transaction
    began = False  # a transaction that could not begin (the store busy) learnt nothing: nothing to drop
    try:
        with store.transaction(db):
            began = True
            if outermost:
                catch_up(window, tracking)
            yield
    except BaseException:
        if began:
            window.forget()
            if tracking is not None:
                tracking.forget()
        raise


def catch_up(window: Window, tracking: storylines.Tracking | None) -> None:
    """Items other processes stored join the window; the tracker is rebuilt at the next cycle
    if they include originals it learns from (not mid-cycle: a rebuild takes seconds)."""
    outside = window.catch_up()
    if tracking is not None:
        tracking.saw(outside)
