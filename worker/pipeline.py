"""One feed through the stages: fetch ─► parse ─► normalize ─► dedupe ─► store ─► track.

    prepare:      fetch and parse (worker threads, parsing processes): no store writes
    ingest:       dedupe, store and track what was prepared, in one transaction (the one writer)
    refresh_feed: both, for one feed

Dedupe is split where the work is: fingerprints are computed with the parse (in a parsing
process); the judging against the store and the in-memory index (window.Window), and the
writing, happen in the one writer. Errors are caught in one place per feed (`prepare`/`ingest`):
recorded on the feed, logged once, and the run goes on. A cycle over many feeds is cycle.py;
starting from the config, startup.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from loguru import logger
from sqlite_utils import Database

from worker import clusters, polling, store, storylines
from worker.ingest import dedupe, feedstate
from worker.log import traceback_for
from worker.clock import utc_now
from worker.parallel import ProcessPool, default_processes
from worker.config import FetchSettings, Settings
from worker.errors import FetchError, StorywatchError
from worker.sources.fetch import Fetched, Fetcher, FetchPolicy, FetchRequest
from worker.sources.network import Network
from worker.models import Feed, Fingerprint, Item, Placement
from worker.parsing import Parsed, parse_entries
from worker.window import Window, writing


FETCH_LOG_DAYS = 30

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
    bucket_key: bytes = b""  # the store's key of document-frequency buckets (storylines.bucket_key)
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

    def __post_init__(self) -> None:
        store.give_up_waiting_when(self.db, self.stop)  # a stopping worker does not wait long for another writer

    def close(self) -> None:
        """Release the fetcher and the parsing processes; the tracker is saved for the next process."""
        if self._tracking is not None:
            self._tracking.save(self.db, self.clock())
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
        bucket_key=storylines.bucket_key(db),
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

    @property
    def quiet(self) -> bool:
        """Fetched, and nothing to read in it: a 304, or a feed without entries (and not moved:
        a new address must be checked against the other feeds' one at a time)."""
        return self.error is None and not self.items and not (self.fetched and self.fetched.moved_to)


@dataclass(frozen=True, slots=True)
class Ingested:
    """What a batch of items did to the store, and the follow-ups its new stories were found to be."""

    new: int = 0  # originals: stories not stored before
    copies: int = 0  # exact or near copies of stored stories (same cluster)
    revisions: int = 0  # edits of stored items, kept with a diff
    originals: tuple[tuple[int, Item], ...] = ()  # the new stories as stored: (id, item)
    exact: int = 0  # of the copies: identical text
    near: int = 0  # of the copies: near-duplicates (and short items with the same headline)
    followups: dict[str, int] = field(default_factory=dict)  # storyline id → follow-ups recorded


Track = Callable[[Ingested], dict[str, int]]  # a batch's new stories decided: the follow-ups recorded per storyline


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


def prepare(rt: Runtime, feed: Feed, *, no_cache: bool = False, ahead: threading.Semaphore | None = None) -> Prepared:
    """fetch (this thread) → parse → normalize (a parsing process) for one feed.

    Never raises: a failure is kept as `error` for the writer to record on the feed.
    ``ahead``: taken before parsing and kept by a feed that comes back parsed, until the writer
    has stored it; so parsed feeds (a megabyte or so each) wait for the writer in bounded number.
    """
    started = rt.clock()
    if rt.stop.is_set():  # queued before the stop: not started at all
        return Prepared(feed, started, error=FetchError(STOPPING, url=feed.url, kind="timeout"))
    held = None  # the permit this feed holds, given back here unless it leaves parsed
    try:
        fetched = rt.fetcher.fetch(_request(feed, no_cache))
        if fetched.not_modified:
            return Prepared(feed, started, fetched)
        if ahead is not None:
            ahead.acquire()
            held = ahead
        parsed = rt.parser.run(parse_entries, feed, fetched.body, fetched.content_type, fetched.final_url,
                               rt.clock(), rt.settings.dedupe.clutter_patterns, rt.bucket_key)
        if parsed.warning:
            logger.warning("Feed is malformed but readable: {url}: {reason}", url=feed.url, reason=parsed.warning)
        prepared, held = Prepared(feed, started, fetched, parsed), None  # the writer gives it back once stored
        return prepared
    except StorywatchError as exc:
        return Prepared(feed, started, error=exc)
    except Exception as exc:  # a bug must not stop the other feeds; it is logged with its traceback
        logger.opt(exception=traceback_for(exc)).error("Unexpected error preparing {url}", url=feed.url)
        return Prepared(feed, started, error=StorywatchError(f"internal error: {type(exc).__name__}: {exc}"))
    finally:
        if held is not None:
            held.release()


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


def ingest_quiet(rt: Runtime, prepared: Sequence[Prepared]) -> list[FeedReport]:
    """Store feeds that brought nothing new to read (304s, empty feeds) together: their states
    and fetch lines in a statement or two, not four statements a feed. All or nothing, as one
    feed is; should that fail, each feed is stored alone."""
    try:
        with store.transaction(rt.db):  # a savepoint: quiet feeds change neither the window nor the tracker
            return _save_success(rt, [(p, Ingested()) for p in prepared], rt.clock())
    except Exception as exc:
        store.check_open(rt.db, f"{type(exc).__name__}: {exc}")  # SQLite dropped the transaction: none alone can be
        logger.debug("Storing {n} quiet feeds together failed ({error}); storing each alone", n=len(prepared), error=exc)
        return [ingest(rt, p) for p in prepared]


def _store_prepared(rt: Runtime, p: Prepared) -> FeedReport:
    now = rt.clock()
    if p.error is not None:
        return _failed(rt, p, p.error, now)
    result = Ingested()
    if p.items:
        result = ingest_items(rt.db, rt.window, p.feed, _unseen_by_link(rt.db, p), now,
                              lambda batch: rt.tracking.track(rt.db, batch.originals, now))
    return _save_success(rt, [(p, result)], now)[0]


def _save_success(rt: Runtime, polled: Sequence[tuple[Prepared, Ingested]], now: dt.datetime) -> list[FeedReport]:
    """Feeds polled with success: their new states, their fetch log lines, and their reports."""
    store.update_feeds(rt.db, [(p.feed.id, _success_state(rt, p, now)) for p, _ in polled])
    store.record_fetches(rt.db, [_fetch_line(p, result) for p, result in polled])
    return [_success_report(p, result) for p, result in polled]


def _fetch_line(p: Prepared, result: Ingested) -> store.Fetch:
    assert p.fetched is not None
    return store.Fetch(p.feed.id, p.started_at, _outcome(p), p.fetched.status, len(p.fetched.body),
                       p.fetched.elapsed_ms, result.new + result.copies)


def _outcome(p: Prepared) -> str:
    return "not_modified" if p.fetched is not None and p.fetched.not_modified else "new"


def _success_report(p: Prepared, result: Ingested) -> FeedReport:
    assert p.fetched is not None
    if p.fetched.not_modified:
        logger.debug("Feed not modified: {url}", url=p.feed.url)
    else:
        logger.debug("Feed polled: {url}: {entries} entries, {new} new, {copies} copies, {revisions} revised",
                     url=p.feed.url, entries=len(p.items), new=result.new, copies=result.copies,
                     revisions=result.revisions)
    feed = dataclasses.replace(p.feed, title=p.parsed.title or p.feed.title) if p.parsed else p.feed  # as named now
    return FeedReport(feed, _outcome(p), result.new, copies=result.copies, revisions=result.revisions,
                      followups=sum(result.followups.values()))


def _unseen_by_link(db: Database, p: Prepared) -> list[Item]:
    """The batch without entries stored under the feed's earlier identity policy, matched by
    link: only where one entry of the batch has that link, and the item stored with it is keyed
    by the earlier policy (a link the feed gives several entries tells none of them apart)."""
    if p.policy == "guid":
        return list(p.items)
    known = store.known_identities(db, [i.identity for i in p.items])
    links = Counter(i.url for i in p.items if i.url)
    unknown = [i.url for i in p.items if i.url and i.identity not in known and links[i.url] == 1]
    stored_links = store.known_feed_urls(db, p.feed.id, unknown, p.policy)
    return [i for i in p.items if i.identity in known or i.url not in stored_links]


def ingest_items(db: Database, window: Window, feed: Feed | None, items: Sequence[Item], now: dt.datetime,
                 track: Track | None = None) -> Ingested:
    """dedupe ─► store ─► track for one source's batch: originals, copies, revisions, then the
    new stories decided by `track` (None: not tracked, as seed documents are not). The only
    path by which items are written, whoever brings them: a poll, a backfill, the seeds."""
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
    placed_in: list[int] = []  # each added item's cluster
    for k, (n, item_id) in enumerate(zip(added, ids)):
        copy_of = placements[k].dup_of_batch
        placed_in.append(placements[k].cluster_id or (placed_in[copy_of] if copy_of is not None else item_id))
        if item_id:
            index.add(dedupe.indexed(verdicts[n].item, item_id, placed_in[-1]))
    window.took(ids)
    revisions = _apply_edits(db, verdicts, now)
    joined = clusters.join(db, window, index, verdicts, {n: ids[k] for k, n in enumerate(added)})
    for verdict in verdicts:  # an edited item is matched by its new text from now on, as the store has it
        if verdict.kind in ("revision", "edit") and verdict.stored and verdict.item.fingerprint:
            cluster = joined.get(verdict.stored.cluster_id, verdict.stored.cluster_id)
            index.replace(dedupe.indexed(verdict.item, verdict.stored.id, cluster))
    stored = [(verdicts[n], item_id) for n, item_id in zip(added, ids) if item_id]
    originals = clusters.new_stories(db, stored, set(joined))
    if feed is not None and stored:
        _learn_boilerplate(db, window, feed, model, [v.item.text for v, _ in stored])
    exact = sum(1 for v, _ in stored if v.kind == "exact")
    result = Ingested(len(originals), len(stored) - len(originals), revisions, originals, exact,
                      len(stored) - len(originals) - exact)
    return dataclasses.replace(result, followups=track(result)) if track else result


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
            marks = _reprint(db, entry.item_id, found[0], found[1], window.clutter, learned.lines)
            window.index.replace(dataclasses.replace(entry, signature=marks.signature, title_key=marks.title_key,
                                                     words=marks.words))
        if entries:
            window.reprinted()


def fill_fingerprints(db: Database, clutter: dedupe.Clutter) -> None:
    """Items stored by a version without fingerprints get them (once; a no-op afterwards)."""
    filled = False
    while rows := store.unprinted_items(db):
        for row in rows:
            _reprint(db, row["id"], row["title"], row["text"], clutter)
        filled = True
    if filled:
        store.count_reprint(db)  # a running worker's window never had these: it reloads


def _reprint(db: Database, item_id: int, title: str, text: str, clutter: dedupe.Clutter,
             boilerplate: frozenset[str] = frozenset()) -> Fingerprint:
    """A stored item's fingerprint made again from its text, and stored."""
    marks = dedupe.fingerprint(title, text, dedupe.match_text(text, clutter, boilerplate))
    store.set_fingerprint(db, item_id, marks.content_sha256, marks)
    return marks


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
    feed = p.feed
    state = feedstate.after_success(feed, p.fetched, p.parsed, p.policy, _cadence(rt, feed, now), now,
                                    keeps_disabled=feed.disabled_reason in store.CHOSEN)
    if p.policy != feed.identity_policy:
        logger.warning("Feed's {old} identities are unreliable, using {new} from now on: {url}",
                       old=feed.identity_policy, new=p.policy, url=feed.url)
    state.update(_moved(rt.db, feed, p.fetched))
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
    if isinstance(error, FetchError) and error.kind == "timeout" and rt.stop.is_set():
        return FeedReport(feed, "stopped")  # cut short by shutdown: not the feed's fault
    failure = feedstate.after_failure(feed, error, lambda: _cadence(rt, feed, now), now)
    if failure.outcome == "rate_limited":
        logger.info("Feed rate limited: {url}: {error}", url=feed.url, error=failure.said)
    elif failure.outcome == "gone":
        logger.warning("Feed disabled, the publisher removed it: {url}", url=feed.url)
    else:
        logger.warning("Feed failed ({n} in a row): {url}: {error}", n=failure.state["error_count"], url=feed.url,
                       error=failure.message)
    store.update_feed(rt.db, feed.id, **failure.state)
    store.record_fetch(rt.db, feed.id, p.started_at, kind=failure.kind, status=failure.status, error=failure.message)
    return FeedReport(feed, failure.outcome, error=failure.message)


def _record_failure(rt: Runtime, prepared: Prepared, error: StorywatchError) -> FeedReport:
    """Storing failed and was rolled back: keep the error on the feed (best effort)."""
    try:
        with store.transaction(rt.db):
            return _failed(rt, prepared, error, rt.clock())
    except Exception as exc:  # the store itself is failing (disk full?): nothing more to do here
        logger.error("Cannot record the failure of {url}: {error}", url=prepared.feed.url, error=str(exc))
        return FeedReport(prepared.feed, "error", error=str(error))
