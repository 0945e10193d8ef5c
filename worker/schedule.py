"""The daemon: APScheduler jobs that only call the pipeline; all state lives in the store.

A BackgroundScheduler runs a tick every `tick` seconds that polls the feeds whose
`next_poll_at` has passed (so a restart loses nothing), and the daily digest job. The main
thread waits on the stop event: SIGTERM or SIGINT sets it, in-flight fetches are cut short,
writes in flight finish, and the process exits 0. Job settings follow the measured facts:
coalesce, one instance at a time, and a misfire grace long enough that a late run still runs.
"""

from __future__ import annotations

import datetime as dt
import signal
import zoneinfo
from collections.abc import Callable
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from loguru import logger

from worker import pipeline
from worker.pipeline import Runtime

JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}
POLL_JOB, DIGEST_JOB = "poll", "digest"


def handle_stop_signals(rt: Runtime) -> None:
    """SIGTERM/SIGINT: stop starting work and cut in-flight fetches short (main thread only)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        logger.info("Stopping on {signal}: finishing the writes in flight", signal=signal.Signals(signum).name)
        rt.stop.set()
        rt.fetcher.abort.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def run_once(rt: Runtime) -> pipeline.CycleReport:
    """One whole cycle in the foreground (`storywatch run --once`)."""
    return pipeline.poll_feeds(rt)


def run_daemon(rt: Runtime, *, tick: float = 60.0, on_ready: Callable[[], None] | None = None) -> None:
    """Poll on schedule until stopped; returns once the jobs in flight have finished."""
    scheduler = BackgroundScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(2)},
        job_defaults=JOB_DEFAULTS,
        timezone=_zone(rt.settings.digest.timezone),
    )
    first_tick = dt.datetime.now(scheduler.timezone)  # poll at once, then every tick
    scheduler.add_job(_poll_job, "interval", seconds=tick, id=POLL_JOB, args=[rt], next_run_time=first_tick)
    digest_at = rt.settings.digest.time
    scheduler.add_job(_digest_job, CronTrigger(hour=digest_at.hour, minute=digest_at.minute), id=DIGEST_JOB, args=[rt])
    scheduler.start()
    logger.info("Worker started: polling every {tick:g} s, digest at {at:%H:%M}", tick=tick, at=digest_at)
    if on_ready:
        on_ready()
    rt.stop.wait()
    scheduler.shutdown(wait=True)
    logger.info("Worker stopped")


def _poll_job(rt: Runtime) -> None:
    if rt.stop.is_set():
        return
    try:
        pipeline.poll_feeds(rt)
    except Exception as exc:  # the next tick tries again; the error must not kill the daemon
        logger.opt(exception=exc).error("Polling cycle failed: {error}", error=str(exc))


def _digest_job(rt: Runtime) -> None:
    logger.debug("Digest time: digests are not built yet")


def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    return zoneinfo.ZoneInfo(name) if name else None
