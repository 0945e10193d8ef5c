"""Time in one convention: aware UTC datetimes in code, ISO 8601 'Z' strings in the store.

Stages never read the clock themselves; callers pass `now` in, so tests can fix it.
"""

from __future__ import annotations

import datetime as dt

UTC = dt.timezone.utc


def utc_now() -> dt.datetime:
    return dt.datetime.now(UTC).replace(microsecond=0)


def to_iso(value: dt.datetime) -> str:
    """'2024-01-27T14:49:00Z': sorts as text, which the store relies on."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: pass an aware UTC datetime")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def start_of_day(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
