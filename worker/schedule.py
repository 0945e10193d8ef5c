"""The daemon: APScheduler jobs that only call the pipeline; all state lives in the store.

A BackgroundScheduler runs a tick every `tick` seconds that polls the feeds whose
`next_poll_at` has passed (so a restart loses nothing), and the daily digest job. The main
thread waits on the stop event: SIGTERM or SIGINT sets it, in-flight fetches are cut short,
writes in flight finish, and the process exits 0. Job settings follow the measured facts:
coalesce, one instance at a time, and a misfire grace long enough that a late run still runs.

Under systemd (`Type=notify`, worker/notify.py) the daemon says READY=1 once the scheduler runs,
the polling job says WATCHDOG=1 before and after each cycle (a hung cycle stops the pings, and
systemd restarts the worker; with WatchdogSec= set, the tick is at most half of it), and the main
thread says STOPPING=1 on shutdown. Every cycle is logged in the store for `storywatch health`
(one cut short by the stop as interrupted), and `[monitoring] metrics_file` is rewritten after it.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
import zoneinfo
from collections.abc import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from loguru import logger

from worker import health, notify, store
from worker.cycle import CycleReport, poll_feeds
from worker.digest import daily
from worker.log import traceback_for
from worker.pipeline import Runtime

JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}
POLL_JOB, DIGEST_JOB = "poll", "digest"


def run_once(rt: Runtime) -> CycleReport:
    """One whole cycle in the foreground (`storywatch run --once`): the daemon's cycle, once."""
    return run_cycle(rt, interval=None)


def run_cycle(rt: Runtime, *, interval: float | None) -> CycleReport:
    """Everything one cycle gives a user, for the daemon's tick and `run --once` alike: poll the
    due feeds (logged for `storywatch health`), then the storylines' Atom feeds, the digest if
    due (and email retries), and the metrics file. These run even when polling failed (a poll
    failure is then raised: the daemon logs it, `run --once` reports it), but not after a stop
    (nothing new starts; the metrics file still says what the cycle did). A damaged store met by
    those jobs is logged by the daemon; `run --once` (no `interval`) raises it after them, so
    that it says in one line what to do."""
    damage: list[Exception] | None = [] if interval is None else None
    try:
        with rt.writer:
            return _poll_and_record(rt, interval=interval, limit=rt.settings.fetch.cycle_limit or None)
    finally:
        if rt.settings.digest.atom and not rt.stop.is_set():
            _guarded(rt, "Writing the Atom feeds", lambda: daily.write_atom_feeds(rt.db, rt.settings, rt.clock()), damage)
        # A digest whose time passed during a long cycle, and email retries, come due between
        # digest times: the check costs a few queries.
        if not rt.stop.is_set():
            _digest_job(rt, damage)
        _guarded(rt, "Writing the metrics file", lambda: _write_metrics(rt), damage)
        if damage:
            raise damage[0]


def run_daemon(rt: Runtime, *, tick: float = 60.0, on_ready: Callable[[], None] | None = None) -> None:
    """Poll on schedule until stopped; returns once the jobs in flight have finished."""
    tick = min(tick, notify.watchdog_interval() or tick)
    scheduler = BackgroundScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(2)},
        job_defaults=JOB_DEFAULTS,
        timezone=_zone(rt.settings.digest.timezone),
    )
    first_tick = dt.datetime.now(scheduler.timezone)  # poll at once, then every tick
    scheduler.add_job(_poll_job, "interval", seconds=tick, id=POLL_JOB, args=[rt, tick], next_run_time=first_tick)
    digest_at = rt.settings.digest.time
    scheduler.add_job(_digest_job, CronTrigger(hour=digest_at.hour, minute=digest_at.minute), id=DIGEST_JOB, args=[rt])
    scheduler.start()
    logger.info("Worker started: polling every {tick:g} s, digest at {at:%H:%M}", tick=tick, at=digest_at)
    notify.ready(f"polling every {tick:g} s")
    if watchdog := notify.watchdog_interval():
        notify.watchdog()
        threading.Thread(target=keep_alive, args=(rt, watchdog), name="watchdog", daemon=True).start()
    if on_ready:
        on_ready()
    rt.stop.wait()
    notify.stopping()
    scheduler.shutdown(wait=True)
    logger.info("Worker stopped")


def _poll_job(rt: Runtime, tick: float) -> None:
    if rt.stop.is_set():
        return
    rt.beats += 1
    try:
        run_cycle(rt, interval=tick)
    except Exception as exc:  # the next tick tries again: a failed cycle must not kill the daemon
        logger.opt(exception=traceback_for(exc)).error("Polling cycle failed: {error}", error=str(exc))
    rt.beats += 1


def keep_alive(rt: Runtime, every: float) -> None:
    """Ping systemd's watchdog every `every` seconds while the worker makes progress: a tick
    began or ended, or a feed of a long cycle finished. A worker stuck for a whole period (a
    hung cycle, a dead scheduler) stops pinging, and systemd restarts it. Runs until stopped."""
    seen = -1
    while not rt.stop.wait(every):
        if rt.beats != seen:
            notify.watchdog()
        seen = rt.beats


def _poll_and_record(rt: Runtime, *, interval: float | None, limit: dt.timedelta | None) -> CycleReport:
    """Poll the due feeds, then log the cycle, whole or interrupted (for `storywatch health`)."""
    report = poll_feeds(rt, limit=limit)
    health.record_cycle(rt.db, report, rt.clock(), interval=interval)
    notify.status(f"last cycle: {report.summary()}")
    return report


def _write_metrics(rt: Runtime) -> None:
    """`storywatch metrics` into [monitoring] metrics_file, when it is set."""
    if path := rt.settings.monitoring.metrics_file:
        health.write_metrics_file(path, health.render_metrics(health.collect_metrics(rt.db, rt.clock())))


def _digest_job(rt: Runtime, damage: list[Exception] | None = None) -> None:
    """Write (and send) the digest due now, and retry unsent ones whose time has come."""
    _guarded(rt, "Digest", lambda: daily.scheduled_digest(rt.db, rt.settings, _settled_now(rt), stop=rt.stop), damage)


def _settled_now(rt: Runtime) -> dt.datetime:
    """Now, once the current second holds no stored item: stored times have whole seconds and a
    digest covers [start, end), so a digest written in the second of a poll (the first digest,
    right after the first cycle) would leave that poll's items to the next day's digest."""
    now = rt.clock()
    if daily.due_digest(rt.db, rt.settings, now).to_write and store.stored_since(rt.db, now):
        time.sleep(1 - time.time() % 1)  # at most a second, once a day
        now = rt.clock()
    return now


def _guarded(rt: Runtime, what: str, job: Callable[[], object], damage: list[Exception] | None = None) -> None:
    """Run `job` holding the writer (the jobs share one connection); log its failure, which
    must not kill the daemon: the next tick tries again. Given `damage`, a damaged store is added
    to it instead, for the caller to raise (no retry mends it)."""
    try:
        with rt.writer:
            job()
    except Exception as exc:
        if damage is not None and isinstance(exc, sqlite3.DatabaseError) and store.is_damage(exc):
            damage.append(exc)
            return
        logger.opt(exception=traceback_for(exc)).error("{what} failed: {error}", what=what, error=str(exc))


def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    return zoneinfo.ZoneInfo(name) if name else None
