"""A backfill's run: the sources read by the parsing processes, then stored by one writer in time
order, in batches (dedupe, store, track), the parsing processes analysing the items for tracking
a little ahead of the writer, with its progress and a summary; a stop starts no new work."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger
from sqlite_utils import Database

from worker import parsing, pipeline, store, storylines
from worker.window import Window, writing
from worker.clock import utc_now
from worker.config import Settings
from worker.errors import StorywatchError
from worker.sources.fetch import Fetched, Fetcher, FetchRequest
from worker.sources.network import Network
from worker.models import Item
from worker.parallel import ProcessPool, default_processes
from worker.safetext import one_line, without_password
from worker.backfill.model import Options, Source, Spooled, Summary
from worker.backfill.spools import Key, Merged, ReadContext, merged_spools, read_file, read_identities, read_page


@dataclass(frozen=True, slots=True)
class Step:
    """Where a backfill is, for its progress line. Read: documents (a feed URL's pages each count,
    as in the summary) read and failed out of those known so far; store: items through the
    pipeline (new or already stored) out of those read. Each phase starts with a step at zero."""

    phase: str  # "read" or "store"
    done: int  # read: documents read or failed; store: items stored or found stored already
    total: int
    entries: int = 0  # read: entries read so far
    failed: int = 0  # read: documents that failed (and sources that could not be opened)
    already_stored: int = 0  # store: items found stored already

    @property
    def read(self) -> int:
        return self.done - self.failed


Progress = Callable[[Step], None]


def backfill(db: Database, settings: Settings, sources: Sequence[Source], options: Options,
             progress: Progress | None = None, *, stop: threading.Event | None = None,
             network: Network | None = None, unreadable: dict[str, str] | None = None) -> Summary:
    """Read every source (in parallel), then store their items in time order, in batches, until
    `stop` is set. `unreadable`: sources `expand` could not open, failed from the start (why);
    `network`: how names resolve and connections are made (tests replace it)."""
    started = time.monotonic()
    summary = Summary(sources_failed={without_password(k): v for k, v in (unreadable or {}).items()})
    report = progress or (lambda step: None)
    workers = options.workers or default_processes()
    stop = stop or threading.Event()
    store.give_up_waiting_when(db, stop)  # stopped while another process writes: not 3 × busy_timeout a batch
    _remove_stale_spools()
    with tempfile.TemporaryDirectory(prefix=f"{SPOOL_PREFIX}{os.getpid()}-") as spool_dir:
        ctx = ReadContext(spool_dir, utc_now(), settings.dedupe.clutter_patterns, options.since, options.until,
                       store.feeds_by_url(db))
        spools = _read_all(settings, sources, ctx, workers, options.max_pages, summary, report, stop, network)
        if not options.dry_run:
            _store_all(db, settings, spools, options, summary, report, stop, workers)
    summary.interrupted = stop.is_set()
    summary.seconds = time.monotonic() - started
    return summary


@dataclass
class _Reading:
    """The read phase's counts, as the summary will have them, updated from the reading threads."""

    report: Progress
    total: int  # documents known: the sources, and the pages of a feed URL as they are found
    failed: int = 0
    read: int = 0
    entries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def step(self) -> None:
        self.report(Step("read", self.read + self.failed, self.total, self.entries, self.failed))

    def done(self, document: Spooled, more: int = 0) -> None:
        """A document is done (read, failed or passed over after a stop); `more`: pages it
        links to, to read too."""
        with self.lock:
            self.total += more
            if document.stopped:
                return  # not read: the progress says so, as the summary does
            if document.error:
                self.failed += 1
            else:
                self.read += 1
            self.entries += document.entries
            self.step()


SPOOL_PREFIX = "storywatch-backfill-"  # then the pid of the backfill that spools there


def _remove_stale_spools() -> None:
    """Remove the spool folders of backfills that died without cleaning up (SIGKILL, a power
    cut): they held a copy of everything read (137 MB left behind in $TMPDIR in one case)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}*"):
        pid = folder.name[len(SPOOL_PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or not folder.is_dir() or folder.stat().st_uid != os.geteuid():
                continue
            os.kill(int(pid), 0)  # raises if no such process
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            logger.info("Removed the spool of a backfill that did not finish: {folder}", folder=str(folder))
        except OSError:  # alive under another user, or gone meanwhile
            continue


def _read_all(settings: Settings, sources: Sequence[Source], ctx: ReadContext, workers: int, max_pages: int,
              summary: Summary, report: Progress, stop: threading.Event, network: Network | None) -> list[Spooled]:
    pool = ProcessPool(workers, timeout=pipeline.PARSE_TIMEOUT)  # closed after reading: the store phase starts its own
    fetcher = Fetcher(pipeline.fetch_policy(settings.fetch), network) if any(s.kind == "url" for s in sources) else None
    if fetcher:
        fetcher.abort = stop  # a stop cuts the fetches in flight short
    done: list[Spooled] = []
    failed_first = len(summary.sources_failed)  # sources that could not even be opened
    reading = _Reading(report, len(sources) + failed_first, failed=failed_first)
    reading.step()  # the phase starts at zero read

    def read(source: Source) -> None:
        if stop.is_set():
            spooled = [Spooled(source.location, stopped=True)]
            reading.done(spooled[0])
        elif source.kind == "url":
            spooled = _read_url(source, pool, fetcher, ctx, max_pages, stop, reading.done)
        else:
            spooled = [_run(pool, read_file, source.location, source.kind, ctx)]
            reading.done(spooled[0])
        with reading.lock:
            done.extend(spooled)

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as threads:
            list(threads.map(read, sources))
    finally:
        pool.close()
        if fetcher:
            fetcher.close()
    for spooled in done:
        _account(spooled, summary)
    return [s for s in done if s.path and s.items]


def _run(pool: ProcessPool, task: Callable[..., Spooled], *args: Any) -> Spooled:
    try:
        return pool.run(task, *args)
    except StorywatchError as exc:  # the parsing process died or timed out on this document
        return Spooled(str(args[0]), error=exc.message)
    except Exception as exc:  # a bug met on one document fails that document, never the run
        logger.opt(exception=exc).error("Unexpected error reading {source}", source=without_password(str(args[0])))
        return Spooled(str(args[0]), error=f"internal error: {type(exc).__name__}: {exc}")


def _fetch_page(fetcher: Fetcher, url: str, was_public: bool | None, stop: threading.Event) -> Fetched | Spooled:
    """One page of a feed's history, or what stands for it when it could not be read: a fetch cut
    short by the stop was not read (not failed); one bad page fails itself, never the backfill."""
    try:
        return fetcher.fetch(FetchRequest(url, was_public=was_public))
    except StorywatchError as exc:
        return Spooled(url, stopped=True) if stop.is_set() else Spooled(url, error=exc.message)
    except Exception as exc:
        logger.opt(exception=exc).error("Unexpected error fetching {url}", url=without_password(url))
        return Spooled(url, error=f"internal error: {type(exc).__name__}: {exc}")


def _read_url(source: Source, pool: ProcessPool, fetcher: Fetcher | None, ctx: ReadContext, max_pages: int,
              stop: threading.Event, done: Callable[[Spooled, int], None]) -> list[Spooled]:
    """A feed URL and the archive or next pages it links to, up to `max_pages` documents; `done`
    hears of each document and of how many more pages it adds to read.

    The pages a feed links to are fetched under the feed's guard: once the feed is known to be
    on a public address (from its last poll, or from this first fetch), no page it names may be
    on a loopback, private or link-local one (its links are the publisher's words, as redirects are).
    """
    assert fetcher is not None
    pages: list[Spooled] = []
    todo, seen = [source.location], {source.location}
    was_public = source.feed.public_origin if source.feed else None
    while todo and len(pages) < max_pages:
        url = todo.pop(0)
        if stop.is_set():  # the pages after this one are not known yet
            pages.append(Spooled(url, stopped=True))
            done(pages[-1], 0)
            break
        fetched = _fetch_page(fetcher, url, was_public, stop)
        if isinstance(fetched, Spooled):  # not read: failed, or cut short by the stop
            pages.append(fetched)
            done(fetched, 0)
            continue
        was_public = was_public or fetched.origin_public
        page = _run(pool, read_page, fetched.final_url, fetched.body, fetched.content_type, source.feed, ctx)
        page.label = url
        if pages and not page.entries:
            page.warnings = []  # an empty archive page after others is no news
        pages.append(page)
        known = len(pages) + len(todo)  # counted in the progress so far, this page included
        found = [u for u in dict.fromkeys(page.next_urls) if u not in seen]
        seen.update(found)
        todo += found
        done(page, min(len(pages) + len(todo), max_pages) - min(known, max_pages))
    return pages


def _account(spooled: Spooled, summary: Summary) -> None:
    """Add a document's counts to the summary, which names it without a password in its URL."""
    label = without_password(spooled.label)
    if spooled.stopped:
        summary.sources_not_read.append(label)
        return
    if spooled.error:
        summary.sources_failed[label] = without_password(one_line(spooled.error))
    else:
        summary.sources_read += 1
    summary.entries += spooled.entries
    summary.entries_by_source[label] = spooled.entries
    summary.outside_period += max(spooled.entries - spooled.items - len(spooled.warnings), 0)
    summary.warnings += [without_password(f"{label}: {e}") for e in spooled.warnings]


def _store_all(db: Database, settings: Settings, spools: Sequence[Spooled], options: Options, summary: Summary,
               report: Progress, stop: threading.Event, workers: int) -> None:
    """Merge the spools in time order and store them batch by batch, tracked as in polling,
    until `stop` is set (the batch in flight is stored whole, or not at all if another process
    holds the store then)."""
    total = sum(s.items for s in spools)
    now = utc_now()
    window = Window(db, settings, now)
    tracking = storylines.Tracking(settings.tracking) if options.track else None
    history = _InOrder(_last_unstored(db, spools)) if options.track else None
    stored = 0
    report(Step("store", 0, total))  # the phase starts at zero, its clock too
    with contextlib.ExitStack() as closing:
        items: Iterator[Merged] = merged_spools(spools)
        if history is not None and history.until is not None:  # something to track: analysed on the way
            analysing = _Analysing.started(workers, storylines.bucket_key(db))
            closing.callback(analysing.pool.close)
            items = closing.enter_context(contextlib.closing(analysing.ahead(items, history.until)))
        for batch in _batches(items, options.batch):
            if stop.is_set():
                break
            try:
                if tracking is not None:  # built from the history before the first item, outside any write transaction
                    tracking.loading(db, batch[0].published)
                stored += _store_batch(db, window, tracking, history, batch, now, summary)
            except Exception as exc:
                if store.busy_at_stop(db, exc):
                    break  # the batch is not stored (all or nothing): the next run stores it
                raise
            if stored % (options.batch * 20) == 0:
                store.index_pending(db)  # searchable as it goes, in short transactions
            report(Step("store", stored, total, already_stored=summary.already_stored))  # after: a rate counts it
    with store.unless_busy_at_stop(db, "indexing the new items for search"):
        store.index_pending(db)
    summary.items_not_stored = total - stored


def _batches(items: Iterator[Merged], size: int) -> Iterator[list[Merged]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


ANALYSED_AHEAD = 500  # items a parsing process analyses in one task (~0.35 s); two tasks a process ahead


@dataclass(frozen=True)
class _Analysing:
    """The store phase's items analysed for tracking by the parsing processes, ahead of the writer:
    the text analysis (about 0.7 ms an item) runs on the cores the writer leaves free, where a
    read phase doing it too kept one core idle through the whole store phase.

    Up to two tasks of ANALYSED_AHEAD items a process are ahead, about 14 KB an item (~14 MB
    with one process). Less lookahead was slower (20k items: store phase 29 s with 400 items
    ahead, 20 s with 2,000): the writer pauses for a second at times (full-text indexing) and
    the processes must keep working through those pauses."""

    pool: ProcessPool
    processes: int
    bucket_key: bytes
    """The store's (storylines.bucket_key): the tracker's analyses are made with it."""

    @classmethod
    def started(cls, workers: int, bucket_key: bytes) -> _Analysing:
        """One process fewer than the read phase's, and at least one apart from this process: the
        writer keeps a core busy, and the text analysis takes less time an item than storing does
        (0.7 ms against about 1). With `workers` 1, analysed in this process, as it was read."""
        processes = max(1, workers - 1)
        return cls(ProcessPool(processes, timeout=pipeline.PARSE_TIMEOUT, apart=workers > 1), processes, bucket_key)

    def ahead(self, items: Iterator[Merged], until: Key) -> Generator[Merged, None, None]:
        """`items`, in order, those up to `until` (the last one tracked) analysed. Closing it
        waits for the analyses in flight."""
        in_flight = 2 * self.processes
        with ThreadPoolExecutor(max_workers=self.processes) as threads:
            pending: deque[Future[list[Merged]]] = deque()
            try:
                while chunk := list(itertools.islice(items, ANALYSED_AHEAD)):
                    pending.append(threads.submit(self._analysed, chunk, until))
                    if len(pending) >= in_flight:
                        yield from pending.popleft().result()
                while pending:
                    yield from pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()

    def _analysed(self, chunk: list[Merged], until: Key) -> list[Merged]:
        """The items with their analyses (those up to `until`), or as they were if it failed."""
        wanted = [k for k, m in enumerate(chunk) if m.key <= until]
        if not wanted:
            return chunk
        try:
            found = self.pool.run(parsing.analyses, [(chunk[k].item.title, chunk[k].item.text) for k in wanted],
                                  self.bucket_key)
        except StorywatchError as exc:  # the process died or timed out: the tracker analyses them itself
            logger.warning("Analysing {n} items in a parsing process failed ({why}); the writer analyses them",
                           n=len(wanted), why=exc.message)
            return chunk
        except Exception as exc:  # a bug met on some text costs this speed-up, never the backfill
            logger.opt(exception=exc).error("Unexpected error analysing {n} items; the writer analyses them",
                                            n=len(wanted))
            return chunk
        done = list(chunk)
        for k, analysis in zip(wanted, found):
            done[k] = chunk[k]._replace(item=dataclasses.replace(chunk[k].item, analysis=analysis))
        return done


def _last_unstored(db: Database, spools: Sequence[Spooled]) -> Key | None:
    """Where in the merged stream the last item the store does not hold yet is (None: it holds
    them all). Past it every item is stored already, so nothing is left to decide: replaying
    those would cost a run again over finished history its whole tracking time for nothing."""
    last: Key | None = None
    for rank, spooled in enumerate(spools):  # ranked as the merge ranks them
        if not spooled.path:
            continue
        n = 0
        for chunk in read_identities(spooled.path):
            held = store.stored_identities(db, [identity for identity, _ in chunk])
            for identity, published in chunk:
                if identity not in held and (last is None or (published, rank, n) > last):
                    last = (published, rank, n)
                n += 1
    return last


@dataclass
class _InOrder:
    """What the tracker is given of each batch, so that a backfill run again after an
    interruption tracks exactly as one run would have: the new originals, and the originals
    stored before (by the interrupted run) replayed where they stand in time, each item once.
    Replaying stops at `until`, the last item not stored before: nothing after it is decided."""

    until: Key | None
    seen: set[int] = field(default_factory=set)  # items given the tracker in this run (an identity recurs: revisions)

    def arrivals(self, db: Database, batch: Sequence[Merged], new: Sequence[tuple[int, Item]]) -> list[storylines.Arrival]:
        fresh = {item.identity: item_id for item_id, item in new}
        earlier = [m.item.identity for m in batch
                   if m.item.identity not in fresh and self.until is not None and m.key <= self.until]
        stored = store.originals_by_identity(db, earlier) if earlier else {}
        arrivals = []
        for m in batch:  # time order; an identity's first place is where it was tracked
            identity = m.item.identity
            item_id = fresh.get(identity) or stored.get(identity)
            if item_id is None or item_id in self.seen:
                continue
            self.seen.add(item_id)
            arrivals.append(storylines.Arrival(item_id, m.item, replayed=identity not in fresh))
        return arrivals


def _store_batch(db: Database, window: Window, tracking: storylines.Tracking | None,
                 history: _InOrder | None, batch: list[Merged], now: dt.datetime, summary: Summary) -> int:
    def track(result: pipeline.Ingested) -> dict[str, int]:
        assert tracking is not None and history is not None
        return tracking.track_history(db, history.arrivals(db, batch, result.originals), now)

    with writing(db, window, tracking):
        result = pipeline.ingest_items(db, window, None, [m.item for m in batch], now, track if tracking else None)
    summary.followups.update(result.followups)
    summary.items_new += result.new
    summary.exact_copies += result.exact
    summary.near_duplicates += result.near
    summary.revisions += result.revisions
    summary.already_stored += len(batch) - result.new - result.copies - result.revisions
    return len(batch)
