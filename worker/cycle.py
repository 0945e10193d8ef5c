"""A polling cycle: the due feeds, fetched and parsed by worker threads and processes (prepare),
stored one feed at a time by one writer (ingest), in groups of small feeds. The scheduler,
`storywatch poll` and `storywatch run --once` all call `poll_feeds`."""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import functools
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from urllib.parse import urlsplit

from loguru import logger

from worker import store
from worker.log import traceback_for
from worker.models import Feed, plural
from worker.pipeline import FETCH_LOG_DAYS, FeedReport, Prepared, Runtime, ingest, ingest_quiet, prepare
from worker.window import catch_up, writing


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
        rt.tracking.refresh()  # a stale tracker goes: rebuilt when a feed brings items (_ingest_group)
    reports = list(_poll(rt, feeds, no_cache, clock_start + limit.total_seconds() if limit else math.inf))
    with store.unless_busy_at_stop(rt.db, "indexing the new items for search"):
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
    share_malloc_arenas()
    queue = iter(feeds)
    in_flight = rt.settings.fetch.max_connections * 2
    ahead = threading.Semaphore(parsed_ahead(rt.parser.processes))
    with ThreadPoolExecutor(rt.settings.fetch.max_connections, thread_name_prefix="fetch") as pool:
        running: set[Future[Prepared]] = set()
        feeds_of: dict[Future[Prepared], Feed] = {}

        def top_up() -> None:
            while not rt.stop.is_set() and time.monotonic() < deadline and len(running) < in_flight:
                feed = next(queue, None)
                if feed is None:
                    return
                future = pool.submit(prepare, rt, feed, no_cache=no_cache, ahead=ahead)
                feeds_of[future] = feed
                running.add(future)

        def gather_quiet(completed: list[Prepared]) -> None:
            """While only quiet feeds (304s) have completed, wait up to QUIET_LINGER for more
            to share their transaction: a 304 costs far less to store than a transaction."""
            until = min(time.monotonic() + QUIET_LINGER, deadline)
            while running and completed and all(p.quiet for p in completed) and not rt.stop.is_set():
                top_up()
                left = until - time.monotonic()
                if left <= 0:
                    return
                more, _ = wait(running, timeout=left, return_when=FIRST_COMPLETED)
                running.difference_update(more)
                completed += _results(more, feeds_of)

        try:
            top_up()
            while running:
                done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                running -= done
                if done:
                    rt.beats += 1
                completed = _results(done, feeds_of)
                gather_quiet(completed)
                yield from _store_completed(rt, completed, ahead)
                if time.monotonic() >= deadline:  # the feeds queued for a thread and not started yet wait too
                    unstarted = [future for future in running if future.cancel()]
                    running -= set(unstarted)
                    yield from (FeedReport(feeds_of[future], "deferred") for future in unstarted)
                top_up()
        finally:  # the writer has gone (an error, a closed generator): no fetch thread may wait for it
            for _ in range(in_flight):
                ahead.release()
    left = "stopped" if rt.stop.is_set() else "deferred"
    yield from (FeedReport(feed, left) for feed in queue)  # left in the queue by a stop or the deadline


# How long quiet feeds wait for others to share a transaction. A one-shot poll of 1,000 feeds
# that answer 304 spent most of its time in hundreds of transactions of a few feeds each.
QUIET_LINGER = 0.05


def _store_completed(rt: Runtime, prepared: list[Prepared], ahead: threading.Semaphore) -> list[FeedReport]:
    """Store the feeds completed together; then let go of their items (`prepared` is emptied),
    give back the permits of those that came parsed, and hand the freed memory back."""
    reports = _ingest_together(rt, prepared)
    freed = sum(p.parsed is not None for p in prepared)
    prepared.clear()  # the stored feeds' items go before their permits come back
    for _ in range(freed):
        ahead.release()
    if freed:
        release_free_memory()
    return reports


def _results(done: set[Future[Prepared]], feeds_of: dict[Future[Prepared], Feed]) -> list[Prepared]:
    """The completed feeds, their futures let go of: a future holds its feed's body and items,
    which must be freed once stored (before its permit is given back)."""
    results = []
    for future in done:
        del feeds_of[future]
        results.append(future.result())
    done.clear()
    return results


def parsed_ahead(processes: int) -> int:
    """How many parsed feeds may wait for the writer: two per parsing process, so each has its
    next feed ready while the writer stores. More only held memory (a cold 1,000-feed cycle kept
    30 parsed feeds, 45 MiB, waiting) and never made a cycle faster: the writer sets the pace."""
    return 2 * max(1, processes)


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
    if store.gave_up_at_stop(rt.db):  # stopping, the store held by another process: nothing more is tried
        return [FeedReport(p.feed, "stopped") for p in group]
    try:
        if any(p.items for p in group):  # built only when items came (a cycle of 304s needs none), and
            rt.tracking.current(rt.db, rt.clock())  # outside the write transaction: it takes seconds
        with writing(rt.db, rt.window, rt.tracking):
            quiet = [n for n, p in enumerate(group) if p.quiet]  # 304s: stored together, in a statement or two
            reports = dict(zip(quiet, ingest_quiet(rt, [group[n] for n in quiet]))) if quiet else {}
            for n, p in enumerate(group):
                if not p.quiet:
                    reports[n] = report = ingest(rt, p)
                    store.check_open(rt.db, report.error)  # the next feed must not write outside the group's transaction
        return [reports[n] for n in range(len(group))]
    except Exception as exc:
        if store.busy_at_stop(rt.db, exc):  # another process held the store: fetched again next time
            logger.warning("Stopping: {n} feeds not stored, another process holds the store", n=len(group))
            return [FeedReport(p.feed, "stopped") for p in group]
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


@functools.cache
def share_malloc_arenas(arenas: int = 2) -> None:
    """At most `arenas` malloc arenas in this process (glibc's M_ARENA_MAX; elsewhere a no-op).

    glibc gives threads that allocate at once arenas of their own, up to eight a core, and
    memory freed into one arena serves only that arena. The fetch threads receive the bodies
    and the parsed items; the writer frees them: each fetch thread's arena kept its share of a
    cold cycle's peak. Two arenas, as MALLOC_ARENA_MAX=2 would set: a cold cycle of 1,000 feeds
    × 50 entries peaked at 386 MiB PSS instead of 412."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        _libc().mallopt(_M_ARENA_MAX, arenas)


_M_ARENA_MAX = -8  # from glibc's malloc.h
_TRIM_EVERY_S = 0.25  # a trim takes ~2 ms: after every stored batch, 1.8 % of a cold cycle; this, 0.6 %
_trimmed_at = 0.0


def release_free_memory() -> None:
    """Hand the free pages inside malloc's heap back to the system (glibc's malloc_trim; elsewhere
    a no-op), at most every quarter second. A stored batch frees its parsed items, but glibc
    returns only the top of its heap, and the items of a batch lie among longer-lived objects: a
    cold cycle of 1,000 feeds × 50 entries peaked at 208 MiB in the writer's process with this,
    226 without (219 once a second, 207 after every batch)."""
    global _trimmed_at
    if time.monotonic() - _trimmed_at < _TRIM_EVERY_S:
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        _libc().malloc_trim(0)
    _trimmed_at = time.monotonic()


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)


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
