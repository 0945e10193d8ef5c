"""When to poll a feed next: pure arithmetic over the feed's history and the server's hints.

- after a success: the feed's interval (its own, else [fetch] interval; or, in adaptive mode,
  one week divided by the entries it published in the last week), clamped to
  [min_interval, max_interval]; the feed's <ttl> and Cache-Control max-age are lower bounds
  (still capped at max_interval, so a stale hint never mutes a feed for long);
- after an error: exponential backoff min(interval · 2^n, max_interval) with ±10 % jitter,
  n being the number of consecutive errors: a feed is never given up on;
- when rate limited: not before the server's Retry-After (which fetch caps at 7 days).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass

WEEK = dt.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Cadence:
    interval: dt.timedelta  # the feed's normal interval before hints
    min_interval: dt.timedelta
    max_interval: dt.timedelta


def clamp(value: dt.timedelta, cadence: Cadence) -> dt.timedelta:
    return max(cadence.min_interval, min(value, cadence.max_interval))


def adaptive_interval(published: Sequence[dt.datetime], now: dt.datetime, cadence: Cadence) -> dt.timedelta:
    """One week divided by the entries published in the last week (none: the longest wait)."""
    recent = sum(1 for when in published if now - WEEK <= when <= now)
    if recent == 0:
        return cadence.max_interval
    return clamp(WEEK / recent, cadence)


def after_success(
    now: dt.datetime,
    cadence: Cadence,
    *,
    ttl: dt.timedelta | None = None,
    max_age: dt.timedelta | None = None,
) -> dt.datetime:
    wait = clamp(cadence.interval, cadence)
    for hint in (ttl, max_age):
        if hint is not None:
            wait = max(wait, min(hint, cadence.max_interval))
    return now + wait


def after_error(
    now: dt.datetime, cadence: Cadence, consecutive_errors: int, rng: random.Random | None = None
) -> dt.datetime:
    exponent = min(max(consecutive_errors, 1), 30)  # 2^30 intervals is far past any ceiling
    wait = min(clamp(cadence.interval, cadence) * (1 << exponent), cadence.max_interval)
    jitter: float = (rng or random.Random()).uniform(0.9, 1.1)
    return now + wait * jitter


def after_rate_limit(now: dt.datetime, cadence: Cadence, retry_after: dt.datetime) -> dt.datetime:
    return max(retry_after, now + cadence.min_interval)
