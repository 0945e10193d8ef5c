"""The pipeline: wires the stages together; holds no business logic of its own.

    initialize:   config ─► feeds synced, seed documents stored, storylines linked to seeds
    refresh_feed: fetch ─► parse ─► normalize ─► dedupe ─► store ─► track  (one transaction per feed)
    poll_feeds:   the due feeds, fetched by worker threads (prepare), stored by one writer (ingest)

Dedupe is split where the work is: fingerprints are computed with the parse (in a parsing
process); the judging against the store and the in-memory index, and the writing, happen in
the one writer.

The scheduler, `storywatch poll` and `storywatch run --once` all call `poll_feeds`. Errors are
caught in one place per feed (`prepare`/`ingest`): recorded on the feed, logged once, and the
run goes on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import functools
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from loguru import logger
from sqlite_utils import Database

from worker import polling, store, storylines
from worker.ingest import dedupe, normalize, seeds
from worker.ingest.identity import identity_policy
from worker.ingest.links import canonical_url
from worker.ingest.text import html_to_text
from worker.sources import parse
from worker.tracking import analysis
from worker.log import traceback_for
from worker.safetext import one_line, without_password
from worker.clock import utc_now
from worker.parallel import ProcessPool, default_processes
from worker.config import FetchSettings, Settings, StorylineConfig, is_file_seed, item_seed
from worker.errors import FeedGone, FetchError, ParseError, RateLimited, StorywatchError
from worker.sources.fetch import Fetched, Fetcher, FetchPolicy, FetchRequest, Network
from worker.models import Feed, Indexed, Item, Placement, plural

FETCH_LOG_DAYS = 30


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
        self._seen = _Seen(version, max([top, *(e.item_id for e in outside)]), reprints)
        if reprints != seen.reprints:
            self.forget()
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
    try:
        with store.transaction(db):
            if outermost:
                catch_up(window, tracking)
            yield
    except BaseException:
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


@dataclass
class Runtime:
    """What a running worker holds: the store, the settings, the fetcher, the parsing processes,
    a clock and a stop flag. Build it with `open_runtime`; `close` releases it."""

    db: Database
    settings: Settings
    fetcher: Fetcher
    parser: ProcessPool = field(default_factory=lambda: ProcessPool(1))
    clock: Callable[[], dt.datetime] = utc_now
    stop: threading.Event = field(default_factory=threading.Event)
    writer: threading.Lock = field(default_factory=threading.Lock)  # one job at a time on `db`
    beats: int = 0  # progress made (a tick began or ended, a feed finished): what the watchdog pings on
    _window: Window | None = None
    _tracking: storylines.Tracking | None = None

    @property
    def window(self) -> Window:
        if self._window is None:
            self._window = Window(self.db, self.settings, self.clock())
        return self._window

    @property
    def tracking(self) -> storylines.Tracking:
        if self._tracking is None:
            self._tracking = storylines.Tracking(self.settings.tracking)
        return self._tracking

    def close(self) -> None:
        self.fetcher.close()
        self.parser.close()


PARSE_TIMEOUT = 120.0  # seconds one feed may take to parse before its process is replaced


def open_runtime(
    db: Database,
    settings: Settings,
    *,
    network: Network | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
) -> Runtime:
    processes = settings.fetch.parse_processes or default_processes()
    return Runtime(
        db,
        settings,
        Fetcher(fetch_policy(settings.fetch), network),
        ProcessPool(processes, timeout=PARSE_TIMEOUT),
        clock,
    )


def fetch_policy(settings: FetchSettings) -> FetchPolicy:
    return FetchPolicy(
        connect_timeout=settings.connect_timeout,
        timeout=settings.timeout,
        max_body_bytes=int(settings.max_body_mib * 1024 * 1024),
        max_redirects=settings.max_redirects,
        max_per_host=settings.max_per_host,
        allow_private_redirects=settings.allow_private_redirects,
        **({"user_agent": settings.user_agent} if settings.user_agent else {}),
    )


# ── initialize ───────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class InitReport:
    feeds: dict[str, int]  # added / updated / removed
    seeds_read: int
    seeds_added: int
    storylines: dict[str, int]  # storyline id → seed items linked
    unresolved: tuple[str, ...]  # "storyline: URL" seeds not in the store yet


def initialize(db: Database, settings: Settings, now: dt.datetime) -> InitReport:
    """Bring the store in line with the config; running it again changes nothing.

    Seed documents go through the same dedupe and store path as feed items (source "seeds").
    """
    docs = seeds.read_seed_folder(settings.seeds.path) if settings.seeds.path else []
    window = Window(db, settings, now)
    with store.transaction(db):
        feeds = store.sync_feeds(db, settings.feeds, now)
        _fill_fingerprints(db, window.clutter)
        added = ingest_items(db, window, None, [normalize.seed_item(doc, now, window.clutter) for doc in docs], now)
        store.sync_storylines(db, settings.storylines, now)
        linked: dict[str, int] = {}
        unresolved: list[str] = []
        for storyline in settings.storylines:
            item_ids, missing = _seed_item_ids(db, window, storyline, now)
            store.set_storyline_seeds(db, storyline.id, item_ids, now)
            linked[storyline.id] = len(item_ids)
            unresolved += [f"{storyline.id}: {url}" for url in missing]
        store.index_pending(db)
    return InitReport(feeds, len(docs), added.new + added.copies, linked, tuple(unresolved))


def new_storyline(db: Database, settings: Settings, storyline: StorylineConfig, now: dt.datetime, *,
                  suggestion_id: int | None = None) -> tuple[int, int]:
    """`storylines add`: store the definition and its seed items (a suggestion's items, if it
    starts from one), then look back over the recent window. Returns (seeds, follow-ups found)."""
    if store.storyline_exists(db, storyline.id):
        raise StorywatchError(f"storyline {storyline.id!r} exists already",
                              hint="choose another ID; a config storyline is changed in the config")
    window = Window(db, settings, now)
    with store.transaction(db):
        item_ids, missing = _seed_item_ids(db, window, storyline, now)
        if missing:
            raise StorywatchError(f"seed not in the store: {', '.join(missing)}",
                                  hint="poll or backfill its feed first, or give the article as a text file")
        if suggestion_id is not None:
            found = store.suggestion(db, suggestion_id)
            assert found is not None
            item_ids += [i for i in json.loads(found["item_ids"]) if i not in item_ids]
            if not store.adopt_suggestion(db, suggestion_id, storyline.id):  # another command took it meanwhile
                raise StorywatchError(f"suggestion #{suggestion_id} is {found['status']} already")
        if not item_ids and not storyline.keywords:
            raise StorywatchError("a storyline needs seeds (--seed, --from-suggestion) or keywords (--keyword)")
        storylines.add_storyline(db, storyline, item_ids, now)
    replayed = storylines.build_tracker(db, settings.tracking, now)
    return len(item_ids), replayed.looked_back.get(storyline.id, 0)


def _fill_fingerprints(db: Database, clutter: dedupe.Clutter) -> None:
    """Items stored by a version without fingerprints get them (once; a no-op afterwards)."""
    filled = False
    while rows := store.unprinted_items(db):
        for row in rows:
            marks = dedupe.fingerprint(row["title"], row["text"], dedupe.match_text(row["text"], clutter))
            store.set_fingerprint(db, row["id"], marks.content_sha256, marks)
        filled = True
    if filled:
        store.count_reprint(db)  # a running worker's window never had these: it reloads


def _seed_item_ids(
    db: Database, window: Window, storyline: StorylineConfig, now: dt.datetime
) -> tuple[list[int], list[str]]:
    """The stored items a storyline's seeds name; seed files not stored yet are stored now."""
    item_ids: list[int] = []
    missing: list[str] = []
    for seed in storyline.seeds:
        if is_file_seed(seed):
            item_ids.append(_seed_file_item(db, window, Path(seed), storyline.id, now))
            continue
        found = _stored_seed(db, seed)
        if found is None:
            missing.append(seed)
        else:
            item_ids.append(found)
    return item_ids, missing


def _stored_seed(db: Database, seed: str) -> int | None:
    """The stored item a seed names by ID or by link (None if none is stored yet); a link that
    several stories share (a site's news page for every entry) must be given by ID."""
    if (item_id := item_seed(seed)) is not None:
        return item_id if store.items_by_id(db, [item_id]) else None
    found = store.original_ids_by_url(db, canonical_url(seed) or seed)
    if len(found) > 1:
        shown = ", ".join(f"#{i}" for i in found[:5])
        raise StorywatchError(f"{len(found)} stored stories have the link {seed} ({shown})",
                              hint="give the one you mean by its ID, e.g. --seed #" + str(found[0]))
    return found[0] if found else None


def _seed_file_item(db: Database, window: Window, path: Path, storyline_id: str, now: dt.datetime) -> int:
    doc = seeds.read_storyline_seed(storyline_id, path)
    item: Item = normalize.seed_item(doc, now, window.clutter)
    known = store.item_id_by_identity(db, item.identity)
    if known is None:
        ingest_items(db, window, None, [item], now)
        known = store.item_id_by_identity(db, item.identity)
    assert known is not None
    return known


# ── one feed ─────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Parsed:
    """A feed body parsed and normalized (in a parsing process): its entries as items."""

    title: str
    site_url: str | None
    ttl: dt.timedelta | None
    warning: str | None
    policy: str
    items: tuple[Item, ...]


def parse_entries(
    feed: Feed, body: bytes, content_type: str, url: str, now: dt.datetime, clutter: tuple[str, ...]
) -> Parsed:
    """parse ─► normalize (with fingerprints) for one feed body; runs in a parsing process."""
    parsed = parse.parse_feed(body, content_type=content_type, url=url)
    policy = identity_policy(parsed.entries, feed.identity_policy) if parsed.entries else feed.identity_policy
    publisher = feed.name or parsed.title or (urlsplit(feed.url).hostname or "")
    items = normalize_batch(feed, parsed.entries, policy=policy, publisher=publisher, now=now, clutter=clutter)
    return Parsed(parsed.title, parsed.site_url, parsed.ttl, parsed.warning, policy, items)


def normalize_batch(
    feed: Feed, entries: Sequence[parse.Entry], *, policy: str, publisher: str, now: dt.datetime,
    clutter: tuple[str, ...], source: str = "feed", scope: str | None = None,
) -> tuple[Item, ...]:
    """A feed's entries as fingerprinted items.

    The feed's boilerplate model is first taught this batch (for these fingerprints only; the
    store learns from new items alone), so a feed's first fetch is already matched without the
    header and footer it puts around every item.
    """
    texts = [html_to_text(entry.content_html) for entry in entries]
    lines = dedupe.Boilerplate.from_json(feed.boilerplate).learn(texts).lines
    rules = clutter_rules(clutter)
    return tuple(
        analysed(normalize.normalize_entry(entry, feed_id=feed.id, policy=policy, publisher=publisher, now=now,
                                           clutter=rules, boilerplate=lines, text=text, source=source, scope=scope))
        for entry, text in zip(entries, texts)
    )


def analysed(item: Item) -> Item:
    """The item with its text analysed for storyline tracking (done where items are parsed, so
    that the one writer does not tokenize: see analysis.prepare)."""
    return dataclasses.replace(item, analysis=analysis.prepare(item.title, item.text))


@functools.lru_cache(maxsize=8)
def clutter_rules(patterns: tuple[str, ...]) -> dedupe.Clutter:
    return dedupe.Clutter.compile(patterns)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A feed fetched, parsed and normalized, ready for the writer."""

    feed: Feed
    started_at: dt.datetime
    fetched: Fetched | None = None
    parsed: Parsed | None = None
    error: StorywatchError | None = None

    @property
    def items(self) -> tuple[Item, ...]:
        return self.parsed.items if self.parsed else ()

    @property
    def policy(self) -> str:
        return self.parsed.policy if self.parsed else self.feed.identity_policy


@dataclass(frozen=True, slots=True)
class Stored:
    """What a batch of items did to the store."""

    new: int = 0  # originals: stories not stored before
    copies: int = 0  # exact or near copies of stored stories (same cluster)
    revisions: int = 0  # edits of stored items, kept with a diff
    originals: tuple[tuple[int, Item], ...] = ()  # the new stories as stored: (id, item)
    exact: int = 0  # of the copies: identical text
    near: int = 0  # of the copies: near-duplicates (and short items with the same headline)


@dataclass(frozen=True, slots=True)
class FeedReport:
    feed: Feed
    outcome: str  # "new", "not_modified" (done); "error", "rate_limited", "gone" (failed); "stopped", "deferred"
    new_items: int = 0
    error: str | None = None
    copies: int = 0
    revisions: int = 0
    followups: int = 0


STOPPING = "stopped: the worker is shutting down"


def prepare(rt: Runtime, feed: Feed, *, no_cache: bool = False) -> Prepared:
    """fetch (this thread) → parse → normalize (a parsing process) for one feed.

    Never raises: a failure is kept as `error` for the writer to record on the feed.
    """
    started = rt.clock()
    if rt.stop.is_set():  # queued before the stop: not started at all
        return Prepared(feed, started, error=FetchError(STOPPING, url=feed.url, kind="timeout"))
    try:
        fetched = rt.fetcher.fetch(_request(feed, no_cache))
        if fetched.not_modified:
            return Prepared(feed, started, fetched)
        parsed = rt.parser.run(parse_entries, feed, fetched.body, fetched.content_type, fetched.final_url,
                               rt.clock(), rt.settings.dedupe.clutter_patterns)
        if parsed.warning:
            logger.warning("Feed is malformed but readable: {url}: {reason}", url=feed.url, reason=parsed.warning)
        return Prepared(feed, started, fetched, parsed)
    except StorywatchError as exc:
        return Prepared(feed, started, error=exc)
    except Exception as exc:  # a bug must not stop the other feeds; it is logged with its traceback
        logger.opt(exception=traceback_for(exc)).error("Unexpected error preparing {url}", url=feed.url)
        return Prepared(feed, started, error=StorywatchError(f"internal error: {type(exc).__name__}: {exc}"))


def _request(feed: Feed, no_cache: bool) -> FetchRequest:
    if no_cache:
        return FetchRequest(feed.url, was_public=feed.public_origin)
    return FetchRequest(feed.url, feed.etag, feed.last_modified, feed.body_sha256, feed.public_origin)


def ingest(rt: Runtime, prepared: Prepared) -> FeedReport:
    """Store one prepared feed and its new state in one transaction (the only writer)."""
    try:
        with writing(rt.db, rt.window, rt.tracking):
            return _store_prepared(rt, prepared)
    except StorywatchError as exc:
        return _record_failure(rt, prepared, exc)
    except Exception as exc:  # the feed's writes were rolled back; the error goes on the feed
        bug = traceback_for(exc)
        logger.opt(exception=bug).error("{what} {url}: {error}", what="Unexpected error storing" if bug else "Cannot store",
                                        url=prepared.feed.url, error=str(exc))
        return _record_failure(rt, prepared, StorywatchError(f"{'internal' if bug else 'store'} error: {type(exc).__name__}: {exc}"))


def refresh_feed(rt: Runtime, feed: Feed, *, no_cache: bool = False) -> FeedReport:
    """Poll one feed now, start to finish."""
    return ingest(rt, prepare(rt, feed, no_cache=no_cache))


def _store_prepared(rt: Runtime, p: Prepared) -> FeedReport:
    now = rt.clock()
    if p.error is not None:
        return _failed(rt, p, p.error, now)
    assert p.fetched is not None
    result = ingest_items(rt.db, rt.window, p.feed, _unseen_by_link(rt.db, p), now) if p.items else Stored()
    followups = rt.tracking.track(rt.db, result.originals, now)
    store.update_feed(rt.db, p.feed.id, **_success_state(rt, p, now))
    outcome = "not_modified" if p.fetched.not_modified else "new"
    store.record_fetch(rt.db, p.feed.id, p.started_at, kind=outcome, status=p.fetched.status,
                       size=len(p.fetched.body), ms=p.fetched.elapsed_ms, new_items=result.new + result.copies)
    if p.fetched.not_modified:
        logger.debug("Feed not modified: {url}", url=p.feed.url)
    else:
        logger.debug("Feed polled: {url}: {entries} entries, {new} new, {copies} copies, {revisions} revised",
                     url=p.feed.url, entries=len(p.items), new=result.new, copies=result.copies,
                     revisions=result.revisions)
    feed = dataclasses.replace(p.feed, title=p.parsed.title or p.feed.title) if p.parsed else p.feed  # as named now
    return FeedReport(feed, outcome, result.new, copies=result.copies, revisions=result.revisions,
                      followups=sum(followups.values()))


def _unseen_by_link(db: Database, p: Prepared) -> list[Item]:
    """The batch without entries stored under the feed's earlier identity policy (matched by link)."""
    if p.policy == "guid":
        return list(p.items)
    known = store.known_identities(db, [i.identity for i in p.items])
    stored_links = store.known_feed_urls(db, p.feed.id, [i.url for i in p.items if i.url and i.identity not in known])
    return [i for i in p.items if i.identity in known or i.url not in stored_links]


def ingest_items(db: Database, window: Window, feed: Feed | None, items: Sequence[Item], now: dt.datetime) -> Stored:
    """dedupe ─► store for one source's batch: originals, copies, revisions (the writer's job)."""
    index = window.index_for(items)
    model = dedupe.Boilerplate.from_json(feed.boilerplate if feed else None)
    known = dedupe.Known(*store.known_for(db, items))
    unknown = [i for i in items if i.identity not in known.versions and i.identity not in known.tombstoned]
    if unknown and store.adopt_legacy_keys(db, unknown, {i.identity for i in items}):
        known = dedupe.Known(*store.known_for(db, items))  # rows an older version keyed otherwise: theirs now
    verdicts = dedupe.classify(items, known, index, window.clutter, model.lines, window.stored_text)
    added = [n for n, v in enumerate(verdicts) if v.kind in ("new", "exact", "near", "short")]
    position = {n: k for k, n in enumerate(added)}  # a verdict's place among the added items
    placements = [_placement(verdicts[n], position) for n in added]
    ids = store.save_items(db, [verdicts[n].item for n in added], placements)
    clusters: list[int] = []
    for k, (n, item_id) in enumerate(zip(added, ids)):
        copy_of = placements[k].dup_of_batch
        clusters.append(placements[k].cluster_id or (clusters[copy_of] if copy_of is not None else item_id))
        if item_id:
            index.add(dedupe.indexed(verdicts[n].item, item_id, clusters[-1]))
    window.took(ids)
    revisions = _apply_edits(db, verdicts, now)
    for verdict in verdicts:  # an edited item is matched by its new text from now on, as the store has it
        if verdict.kind in ("revision", "edit") and verdict.stored and verdict.item.fingerprint:
            index.replace(dedupe.indexed(verdict.item, verdict.stored.id, verdict.stored.cluster_id))
    stored = [(verdicts[n], item_id) for n, item_id in zip(added, ids) if item_id]
    originals = tuple((item_id, v.item) for v, item_id in stored if v.kind == "new")
    if feed is not None and stored:
        _learn_boilerplate(db, window, feed, model, [v.item.text for v, _ in stored])
    exact = sum(1 for v, _ in stored if v.kind == "exact")
    return Stored(len(originals), len(stored) - len(originals), revisions, originals, exact,
                  len(stored) - len(originals) - exact)


def _learn_boilerplate(db: Database, window: Window, feed: Feed, model: dedupe.Boilerplate, texts: list[str]) -> None:
    """Teach the feed's model its new items (never re-seen ones: a line re-sent every poll is not
    boilerplate). When that changes which lines count, the feed's recent items are fingerprinted
    again, so hashes and signatures always agree with the model (a feed's first items were
    fingerprinted before its header and footer were known)."""
    learned = model.learn(texts)
    store.update_feed(db, feed.id, boilerplate=learned.to_json())
    if learned.lines != model.lines and window.anchor is not None:
        entries = list(store.index_entries(db, window.anchor - window.span, window.anchor + window.span, feed.id))
        for entry in entries:  # read first: the loop rewrites the rows it read
            found = store.item_text(db, entry.item_id)
            if found is None:
                continue
            title, text, _ = found
            marks = dedupe.fingerprint(title, text, dedupe.match_text(text, window.clutter, learned.lines))
            store.set_fingerprint(db, entry.item_id, marks.content_sha256, marks)
            window.index.replace(dataclasses.replace(entry, signature=marks.signature, title_key=marks.title_key,
                                                     words=marks.words))
        if entries:
            window.reprinted()


def _placement(verdict: dedupe.Verdict, position: dict[int, int]) -> Placement:
    if verdict.kind == "new":
        return Placement()
    if verdict.batch_copy_of is not None:  # a copy of an earlier item of the same batch
        similarity = verdict.match.similarity if verdict.match else 1.0
        return Placement(None, None, position[verdict.batch_copy_of], verdict.kind, similarity)
    assert verdict.match is not None
    return Placement(verdict.match.cluster_id, verdict.match.item_id, None, verdict.kind, verdict.match.similarity)


def _apply_edits(db: Database, verdicts: Sequence[dedupe.Verdict], now: dt.datetime) -> int:
    """Revisions are kept with their diff; trivial edits refresh the stored text silently."""
    revisions = 0
    for verdict in verdicts:
        if verdict.kind == "revision" and verdict.stored:
            store.save_revision(db, verdict.stored, verdict.item, verdict.changes, verdict.diff, now)
            revisions += 1
        elif verdict.kind == "edit" and verdict.stored:
            store.refresh_item(db, verdict.stored.id, verdict.item, now)
    return revisions


def _success_state(rt: Runtime, p: Prepared, now: dt.datetime) -> dict[str, object]:
    assert p.fetched is not None
    fetched, feed = p.fetched, p.feed
    state: dict[str, object] = {
        "etag": fetched.etag, "last_modified": fetched.last_modified, "body_sha256": fetched.body_sha256,
        "last_polled_at": now, "last_success_at": now, "last_status": fetched.status,
        "error_count": 0, "last_error": None, "retry_after": None, "identity_policy": p.policy,
        "next_poll_at": polling.after_success(
            now, _cadence(rt, feed, now), ttl=p.parsed.ttl if p.parsed else None, max_age=fetched.max_age
        ),
    }
    if feed.disabled_reason and feed.disabled_reason not in store.CHOSEN:
        state["disabled_reason"] = None  # a gone feed that answers again (poll --feed) is back
    if fetched.origin_public is not None:
        state["public_origin"] = int(fetched.origin_public)
    if p.parsed is not None:
        state["title"] = p.parsed.title or feed.title
        state["site_url"] = p.parsed.site_url
    if p.policy != feed.identity_policy:
        logger.warning("Feed's {old} identities are unreliable, using {new} from now on: {url}",
                       old=feed.identity_policy, new=p.policy, url=feed.url)
    state.update(_moved(rt.db, feed, fetched))
    return state


def _moved(db: Database, feed: Feed, fetched: Fetched) -> dict[str, object]:
    """A permanent redirect: poll the new address from now on; the config's address stays an alias."""
    if not fetched.moved_to:
        return {}
    if store.url_taken(db, fetched.moved_to, feed.id):
        logger.warning("Feed moved to an address another feed already has: {url} → {new}",
                       url=feed.url, new=fetched.moved_to)
        return {}
    logger.info("Feed moved permanently: {url} → {new}", url=feed.url, new=fetched.moved_to)
    return {"url": fetched.moved_to}


def _cadence(rt: Runtime, feed: Feed, now: dt.datetime) -> polling.Cadence:
    fetch = rt.settings.fetch
    cadence = polling.Cadence(feed.interval or fetch.interval, fetch.min_interval, fetch.max_interval)
    if not fetch.adaptive or feed.interval is not None:
        return cadence
    published = store.publication_times(rt.db, feed.id, now - polling.WEEK)
    return polling.Cadence(polling.adaptive_interval(published, now, cadence), fetch.min_interval, fetch.max_interval)


def _failed(rt: Runtime, p: Prepared, error: StorywatchError, now: dt.datetime) -> FeedReport:
    feed = p.feed
    status = error.status if isinstance(error, FetchError) else None
    kind = error.kind if isinstance(error, FetchError) else ("parse" if isinstance(error, ParseError) else "internal")
    if kind == "timeout" and rt.stop.is_set():  # cut short by shutdown: not the feed's fault
        return FeedReport(feed, "stopped")
    state: dict[str, object] = {"last_polled_at": now, "last_status": status}
    # A server's words, shown on terminals; the feed's URL in them may hold its password.
    said, message = without_password(one_line(error.message)), without_password(one_line(str(error)))
    if isinstance(error, RateLimited):
        outcome = "rate_limited"
        state |= {"retry_after": error.retry_after,
                  "next_poll_at": polling.after_rate_limit(now, _cadence(rt, feed, now), error.retry_after)}
        logger.info("Feed rate limited: {url}: {error}", url=feed.url, error=said)
    elif isinstance(error, FeedGone):
        outcome = "gone"
        state |= {"disabled_reason": f"gone: {said} ({now:%Y-%m-%d})", "next_poll_at": None, "last_error": said}
        logger.warning("Feed disabled, the publisher removed it: {url}", url=feed.url)
    else:
        outcome = "error"
        errors = feed.error_count + 1
        state |= {"error_count": errors, "last_error": message,
                  "next_poll_at": polling.after_error(now, _cadence(rt, feed, now), errors)}
        logger.warning("Feed failed ({n} in a row): {url}: {error}", n=errors, url=feed.url, error=message)
    store.update_feed(rt.db, feed.id, **state)
    store.record_fetch(rt.db, feed.id, p.started_at, kind=kind, status=status, error=message)
    return FeedReport(feed, outcome, error=message)


def _record_failure(rt: Runtime, prepared: Prepared, error: StorywatchError) -> FeedReport:
    """Storing failed and was rolled back: keep the error on the feed (best effort)."""
    try:
        with store.transaction(rt.db):
            return _failed(rt, prepared, error, rt.clock())
    except Exception as exc:  # the store itself is failing (disk full?): nothing more to do here
        logger.error("Cannot record the failure of {url}: {error}", url=prepared.feed.url, error=str(exc))
        return FeedReport(prepared.feed, "error", error=str(error))


# ── a polling cycle ──────────────────────────────────────────────────────────────────────────


DONE = ("new", "not_modified")  # outcomes of a feed polled as asked
LEFT = ("stopped", "deferred")  # not polled (nothing of theirs written): neither done nor failed


@dataclass(frozen=True, slots=True)
class CycleReport:
    """Every feed asked for, with its outcome. Feeds a stop left undone (not started, or cut
    short) are "stopped", those the cycle limit left unstarted "deferred": nothing of theirs was
    written, so they are simply polled next time (first, as they are overdue)."""

    started_at: dt.datetime
    seconds: float
    reports: tuple[FeedReport, ...]

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.reports if r.outcome == outcome)

    @property
    def new_items(self) -> int:
        return sum(r.new_items for r in self.reports)

    @property
    def followups(self) -> int:
        return sum(r.followups for r in self.reports)

    @property
    def stopped(self) -> int:
        return self.count("stopped")

    @property
    def left(self) -> int:
        """Feeds asked for and not polled: stopped or deferred."""
        return self.stopped + self.count("deferred")

    @property
    def interrupted(self) -> bool:
        """Stopped, or cut by the cycle limit, before every feed asked for was polled."""
        return self.left > 0

    @property
    def failed(self) -> int:
        """Feeds asked for that were polled without success: errors, rate limits, gone feeds."""
        return sum(1 for r in self.reports if r.outcome not in DONE + LEFT)

    def summary(self) -> str:
        return ("Interrupted: " if self.stopped else "Cut short: " if self.interrupted else "") + self.counts()

    def counts(self) -> str:
        polled = len(self.reports) - self.left
        head = f"{plural(polled, 'feed')} polled in {self.seconds:.1f} s"
        if self.interrupted:
            head = f"{polled} of {plural(len(self.reports), 'feed')} polled in {self.seconds:.1f} s"
        if self.stopped:
            head += f", {self.stopped} stopped (polled next time)"
        if deferred := self.count("deferred"):
            head += f", {deferred} deferred (the cycle reached [fetch] cycle_limit; polled first next time)"
        return (
            f"{head}: {plural(self.new_items, 'new item')}, {plural(self.followups, 'follow-up')}, "
            f"{self.count('not_modified')} not modified, {self.count('error')} failed, "
            f"{self.count('rate_limited')} rate limited, {self.count('gone')} gone"
        )


# A feed due within this much of a cycle's start is polled in it: its next poll time counts
# from its fetch, seconds into the cycle before, so with `interval` equal to the worker's tick it
# fell due just after the next tick and was polled every other tick.
DUE_SLACK = dt.timedelta(seconds=15)


def poll_feeds(
    rt: Runtime, *, force: bool = False, feed_url: str | None = None, no_cache: bool = False,
    limit: dt.timedelta | None = None,
) -> CycleReport:
    """Poll the due feeds (all with `force`, one with `feed_url`): fetch in parallel, store in
    order. After `limit`, no feed starts: the ones left are "deferred" (still due, so the next
    cycle polls them first)."""
    started_at, clock_start = rt.clock(), time.monotonic()
    feeds = _interleave_hosts(store.feeds_to_poll(rt.db, started_at + DUE_SLACK, force=force, url=feed_url))
    if feeds:
        catch_up(rt.window, rt.tracking)  # what other processes stored since the last cycle
        rt.tracking.refresh()
        rt.tracking.current(rt.db, started_at)  # (re)built here, not inside a feed's write transaction
    reports = list(_poll(rt, feeds, no_cache, clock_start + limit.total_seconds() if limit else math.inf))
    store.index_pending(rt.db)
    if not rt.stop.is_set():  # housekeeping waits for the next cycle after a stop
        store.prune_fetches(rt.db, started_at - dt.timedelta(days=FETCH_LOG_DAYS))
        prune_items(rt, started_at)
    report = CycleReport(started_at, time.monotonic() - clock_start, tuple(reports))
    if feeds:
        logger.info("Cycle {how}: {summary}", how="interrupted" if report.interrupted else "finished",
                    summary=report.counts(), feeds=len(feeds), new_items=report.new_items,
                    failed=report.count("error"), stopped=report.stopped)
    return report


def _poll(rt: Runtime, feeds: Sequence[Feed], no_cache: bool, deadline: float) -> Iterator[FeedReport]:
    """Worker threads prepare feeds; this thread stores them as they complete. After a stop, no
    feed starts; the ones left are reported "stopped". After the `deadline` (monotonic), the
    ones left are "deferred"."""
    if not feeds:
        return
    queue = iter(feeds)
    with ThreadPoolExecutor(rt.settings.fetch.max_connections, thread_name_prefix="fetch") as pool:
        running: set[Future[Prepared]] = set()
        feeds_of: dict[Future[Prepared], Feed] = {}

        def top_up() -> None:
            while (not rt.stop.is_set() and time.monotonic() < deadline
                   and len(running) < rt.settings.fetch.max_connections * 2):
                feed = next(queue, None)
                if feed is None:
                    return
                future = pool.submit(prepare, rt, feed, no_cache=no_cache)
                feeds_of[future] = feed
                running.add(future)

        top_up()
        while running:
            done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            running -= done
            if done:
                rt.beats += 1
            yield from _ingest_together(rt, [future.result() for future in done])
            if time.monotonic() >= deadline:  # the feeds queued for a thread and not started yet wait too
                unstarted = [future for future in running if future.cancel()]
                running -= set(unstarted)
                yield from (FeedReport(feeds_of[future], "deferred") for future in unstarted)
            top_up()
    left = "stopped" if rt.stop.is_set() else "deferred"
    yield from (FeedReport(feed, left) for feed in queue)  # left in the queue by a stop or the deadline


def _ingest_together(rt: Runtime, prepared: Sequence[Prepared]) -> list[FeedReport]:
    """Store the feeds that completed together in one transaction, each feed in a savepoint.

    Each feed's writes stay all-or-nothing; committing once for several feeds saves rewriting
    the same hot pages (indexes, full-text segments) once a feed. A crash loses at most this
    batch, feed state included, so those feeds are simply fetched again.
    """
    return [report for group in _groups(prepared) for report in _ingest_group(rt, group)]


def _ingest_group(rt: Runtime, group: Sequence[Prepared]) -> list[FeedReport]:
    """One transaction for the group. If it cannot commit (a full disk), or SQLite rolled it
    back after an error, nothing of the group is stored: each feed is reported failed once,
    its state untouched (not the feed's fault), so it is polled again next cycle. Retrying
    each feed alone would mostly meet the same store error again."""
    try:
        with writing(rt.db, rt.window, rt.tracking):
            reports = []
            for p in group:
                reports.append(report := ingest(rt, p))
                store.check_open(rt.db, report.error)  # the next feed must not write outside the group's transaction
        return reports
    except Exception as exc:
        logger.opt(exception=traceback_for(exc)).error("Cannot store {n} feeds: {error}", n=len(group), error=str(exc))
        return [FeedReport(p.feed, "error", error=f"not stored: {exc}") for p in group]


GROUP_ITEMS = 1000  # entries per grouped transaction: other processes get the write lock often


def _groups(prepared: Sequence[Prepared]) -> Iterator[list[Prepared]]:
    group: list[Prepared] = []
    size = 0
    for p in prepared:
        if group and size + len(p.items) > GROUP_ITEMS:
            yield group
            group, size = [], 0
        group.append(p)
        size += len(p.items)
    if group:
        yield group


def prune_items(rt: Runtime, now: dt.datetime) -> int:
    """Retention: clusters older than `retention_days` go, leaving tombstones (0: keep all)."""
    days = rt.settings.storage.retention_days
    if not days:
        return 0
    cutoff = now - dt.timedelta(days=days)
    pruned = store.prune_items(rt.db, cutoff, now)
    if pruned:
        rt.window.index.forget_before(cutoff)
        logger.info("Pruned {n} items published before {cutoff:%Y-%m-%d}", n=pruned, cutoff=cutoff)
    return pruned


def _interleave_hosts(feeds: Sequence[Feed]) -> list[Feed]:
    """Round-robin over hosts, so the per-host limit does not leave fetch threads waiting."""
    by_host: dict[str, list[Feed]] = defaultdict(list)
    for feed in feeds:
        by_host[urlsplit(feed.url).hostname or ""].append(feed)
    queues = list(by_host.values())
    ordered: list[Feed] = []
    while queues:
        ordered += [q.pop(0) for q in queues]
        queues = [q for q in queues if q]
    return ordered
