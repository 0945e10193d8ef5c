"""Health and metrics: what a monitor reads about the worker, from the store alone.

Each polling cycle of the worker leaves a row in the store's cycle log (`record_cycle`).
`check_health` is healthy when the store is readable, the last whole cycle (one not
interrupted by a stop) finished within three intervals (an interval: the time between the
worker's ticks, or that cycle's duration when that was longer), and no digest is unconfirmed
(its sender stopped mid-send: only a person can decide to send it again, so a monitor must see
it). `render_metrics` writes the Prometheus text exposition format (version 0.0.4): `# HELP` and
`# TYPE` before each family, then one `name{label="value"} number` line a sample.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from worker import __version__, store
from worker.digest import deliver
from worker.config import format_duration
from worker.errors import StorywatchError
from worker.models import FeedHealth, plural
from worker.report import unconfirmed_reason
from worker.cycle import CycleReport

CYCLE_LOG_DAYS = 30  # like the fetch log
TICK = 60.0  # seconds between the worker's polling ticks
INTERVALS = 3  # healthy while the last cycle finished within this many intervals
INTEGRITY_SECONDS = 10.0  # health's quick check of the store's pages stops here (a store of GBs)
FETCH_WINDOW = dt.timedelta(hours=24)  # fetch errors are counted over this window

FEED_STATES = ("ok", "failing", "rate_limited", "disabled", "not_polled")
ITEM_SOURCES = ("feed", "seeds", "backfill")
OK_FETCHES = {"new", "not_modified", "ok", "stopped"}
ERROR_KINDS = ("dns", "connect", "tls", "timeout", "protocol", "http", "redirect", "scheme", "too_large",
               "encoding", "blocked", "parse", "internal", "rate_limited", "gone")
DIGEST_STATES = ("written", "pending", "sending", "sent", "failed", "unconfirmed")


# ── the cycle log ───────────────────────────────────────────────────────────────────────────


def record_cycle(db: Database, report: CycleReport, finished_at: dt.datetime, *, interval: float | None) -> None:
    """Log a cycle, whole or interrupted (`interval`: seconds between ticks; None for a one-off run).
    Not when stopping while another process holds the store (store.unless_busy_at_stop)."""
    with store.unless_busy_at_stop(db, "recording the cycle"):
        store.record_cycle(db, report.started_at, finished_at, report.seconds, interval=interval,
                           feeds=len(report.reports), new_items=report.new_items, followups=report.followups,
                           errors=report.count("error"), stopped=report.left)
        store.prune_cycles(db, finished_at - dt.timedelta(days=CYCLE_LOG_DAYS))


# ── health ──────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Health:
    polling: bool  # the store is readable and the last cycle recent
    reason: str  # one line about that
    unconfirmed: tuple[str, ...] = ()  # one line an unconfirmed digest: what happened, what to run

    @property
    def ok(self) -> bool:
        return self.polling and not self.unconfirmed

    def as_json(self) -> dict[str, Any]:
        """`health --json`: ok, then the polling verdict and each unconfirmed digest apart."""
        return {"ok": self.ok, "polling": self.polling, "reason": self.reason,
                "unconfirmed_digests": list(self.unconfirmed), "lines": str(self).splitlines()}

    def __str__(self) -> str:
        """Each problem on a line of its own starting "unhealthy: "; else one "healthy: " line."""
        problems = [f"unhealthy: the digest of {note}" for note in self.unconfirmed]
        if not self.polling:
            return "\n".join([*problems, f"unhealthy: {self.reason}"])
        return "\n".join([*problems, self.reason]) if problems else f"healthy: {self.reason}"


def check_health(path: Path, now: dt.datetime, *, max_age: dt.timedelta | None = None,
                 busy_timeout: float = 30.0, config: Path | None = None) -> Health:
    """Is the store at `path` readable, did the last whole cycle finish recently enough, and is
    every digest's sending settled? (`config`: the --config to name in the command to run.)

    An interrupted cycle (stopped before every feed was polled) is never taken for a finished
    one: health is judged on the last whole cycle, and a later interrupted one is named."""
    if not path.exists() and not path.is_symlink():  # a link to nothing is met on opening, with why
        return Health(False, f"no store at {path} (has the worker ever run?)")
    try:
        db = store.open_store(path, busy_timeout=busy_timeout)
        try:
            if problem := store.integrity_problem(db, INTEGRITY_SECONDS):
                raise store.store_failure(path, sqlite3.DatabaseError(f"database disk image is malformed: {problem}"))
            last, whole = store.last_cycle(db), store.last_cycle(db, whole=True)
            unconfirmed = store.unconfirmed_digests(db, now)
        finally:
            db.close()
    except (StorywatchError, sqlite3.Error) as exc:
        return Health(False, f"the store cannot be used: {exc}")
    notes = tuple(f"{day:%Y-%m-%d} is unconfirmed: {unconfirmed_reason(day, config)}" for day in unconfirmed)
    if last is None:
        return Health(False, "no polling cycle recorded yet (is `storywatch run` running?)", notes)
    if whole is None:
        return Health(False, f"no polling cycle has finished whole yet: the last one {_interrupted(last, now)}", notes)
    return _judge(whole, last if last["stopped"] else None, now, max_age, notes)


def _judge(cycle: dict[str, Any], interrupted: dict[str, Any] | None, now: dt.datetime,
           max_age: dt.timedelta | None, unconfirmed: tuple[str, ...]) -> Health:
    """Healthy when the whole `cycle` finished within the limit; a later `interrupted` one is named."""
    age = now - cycle["finished_at"]
    limit = max_age or dt.timedelta(seconds=INTERVALS * max(cycle["interval_s"] or TICK, cycle["seconds"]))
    which = "the last whole polling cycle" if interrupted else "the last polling cycle"
    after = f"; the one after it {_interrupted(interrupted, now)}" if interrupted else ""
    if age > limit:
        return Health(False, f"{which} finished {_ago(age)} ago, more than {_ago(limit)} "
                             f"({cycle['finished_at']:%Y-%m-%d %H:%M:%S} UTC){after}", unconfirmed)
    return Health(True, f"{which} finished {_ago(age)} ago in {cycle['seconds']:.1f} s: "
                        f"{plural(cycle['feeds'], 'feed')}, {plural(cycle['new_items'], 'new item')}, {cycle['errors']} failed{after}",
                  unconfirmed)


def _interrupted(cycle: dict[str, Any], now: dt.datetime) -> str:
    polled = cycle["feeds"] - cycle["stopped"]
    return (f"was interrupted {_ago(now - cycle['finished_at'])} ago ({polled} of {plural(cycle['feeds'], 'feed')} polled, "
            f"{cycle['stopped']} stopped or deferred)")


def _ago(age: dt.timedelta) -> str:
    """An age in its largest whole unit ("4m", not "241s": a reading, not a measurement)."""
    seconds = max(0, round(age.total_seconds()))
    for size in (86400, 3600, 60):
        if seconds >= size:
            return format_duration(dt.timedelta(seconds=seconds - seconds % size))
    return format_duration(dt.timedelta(seconds=seconds))


# ── metrics ─────────────────────────────────────────────────────────────────────────────────

Labels = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family: its name, type, help line and samples."""

    name: str
    kind: str  # "gauge" or "counter"
    help: str
    samples: Sequence[tuple[Labels, float]] = field(default_factory=tuple)


def collect_metrics(db: Database, now: dt.datetime) -> list[Family]:
    """Every metric, read from the store now."""
    feeds = [_feed_state(f, now) for f in store.feed_health(db)]
    items = store.items_by_source(db)
    cycle, whole = store.last_cycle(db), store.last_cycle(db, whole=True)
    fetches = store.fetch_kinds(db, now - FETCH_WINDOW)
    errors = {kind: n for kind, n in fetches.items() if kind not in OK_FETCHES}
    families = [
        Family("storywatch_info", "gauge", "Always 1; the version as a label.", [({"version": __version__}, 1)]),
        Family("storywatch_feeds", "gauge", "Feeds in the store, by state.",
               _by("state", _count(feeds), FEED_STATES)),
        Family("storywatch_items", "gauge", "Items in the store, by source.", _by("source", items, ITEM_SOURCES)),
        Family("storywatch_storyline_followups", "gauge", "Follow-ups recorded, per storyline.",
               [({"storyline": s.id}, s.followups) for s in store.storyline_summaries(db)]),
        Family("storywatch_fetch_errors", "gauge", "Failed polls in the last 24 hours, by kind of error.",
               _by("kind", errors, ERROR_KINDS)),
        Family("storywatch_fetches", "gauge", "Polls in the last 24 hours.", [({}, sum(fetches.values()))]),
        Family("storywatch_digests", "gauge", "Digests recorded, by sending state (sent, failed, unconfirmed, …).",
               _by("status", store.digest_counts(db, now), DIGEST_STATES)),
    ]
    if cycle is not None:
        families += _cycle_families(cycle)
    if whole is not None:
        families.append(Family("storywatch_last_whole_cycle_timestamp_seconds", "gauge",
                               "When the last polling cycle that was not interrupted finished, in seconds since "
                               "the epoch.", [({}, round(whole["finished_at"].timestamp(), 3))]))
    return families


def _cycle_families(cycle: dict[str, Any]) -> list[Family]:
    """The last polling cycle's metrics."""
    return [
        Family("storywatch_last_cycle_duration_seconds", "gauge", "Duration of the last polling cycle.",
               [({}, round(cycle["seconds"], 3))]),
        Family("storywatch_last_cycle_timestamp_seconds", "gauge",
               "When the last polling cycle finished, in seconds since the epoch.",
               [({}, round(cycle["finished_at"].timestamp(), 3))]),
        Family("storywatch_last_cycle_feeds", "gauge", "Feeds the last cycle was to poll.", [({}, cycle["feeds"])]),
        Family("storywatch_last_cycle_new_items", "gauge", "New items stored by the last cycle.",
               [({}, cycle["new_items"])]),
        Family("storywatch_last_cycle_errors", "gauge", "Feeds that failed in the last cycle.",
               [({}, cycle["errors"])]),
        Family("storywatch_last_cycle_stopped", "gauge",
               "Feeds the last cycle left undone: the worker was stopped, or the cycle limit reached (0: it finished whole).",
               [({}, cycle["stopped"])]),
    ]


def _feed_state(feed: FeedHealth, now: dt.datetime) -> str:
    if feed.disabled_reason:
        return "disabled"
    if feed.retry_after and feed.retry_after > now:
        return "rate_limited"
    if feed.error_count:
        return "failing"
    return "not_polled" if feed.last_polled_at is None else "ok"


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _by(label: str, counts: Mapping[str, int], known: Sequence[str]) -> list[tuple[Labels, float]]:
    """One sample a value, the known ones always present (0 rather than absent), in order."""
    keys = list(known) + sorted(set(counts) - set(known))
    return [({label: key}, counts.get(key, 0)) for key in keys]


def render_metrics(families: Sequence[Family]) -> str:
    """The Prometheus text exposition format, one family after another."""
    lines = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape(family.help, quote=False)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            shown = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{family.name}{{{shown}}} {_number(value)}" if shown else f"{family.name} {_number(value)}")
    return "\n".join(lines) + "\n"


def _escape(text: str, *, quote: bool = True) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def write_metrics_file(path: Path, text: str) -> None:
    """Replace `path` atomically, readable by all (node_exporter runs as another user)."""
    deliver.write_atomically(path, text)
    os.chmod(path, 0o644)
