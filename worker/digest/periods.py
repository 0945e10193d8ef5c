"""A digest's period: local days in the digest's time zone, chained from one digest to the next."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from worker.digest.model import Period


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def zone_of(name: str) -> ZoneInfo:
    """The configured zone, or the machine's (the TZ variable or /etc/localtime)."""
    if name:
        return ZoneInfo(name)
    try:
        from tzlocal import get_localzone_name  # installed with APScheduler

        return ZoneInfo(get_localzone_name() or "UTC")
    except Exception:
        return ZoneInfo("UTC")


def day_period(day: dt.date, at: dt.time, zone: ZoneInfo) -> Period:
    """The digest of `day`: from the previous day's digest time to this day's, local time.

    Built from local wall-clock times through zoneinfo, so a day around a DST change is 23 or
    25 hours long and still ends exactly at the digest time.
    """
    end = dt.datetime.combine(day, at, tzinfo=zone)
    start = dt.datetime.combine(day - dt.timedelta(days=1), at, tzinfo=zone)
    return Period(start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc), day, zone.key)


def next_period(last_end: dt.datetime | None, now: dt.datetime, zone: ZoneInfo) -> Period:
    """The period a scheduled digest covers: since the last digest (the beginning, for the first)."""
    return Period(last_end or EPOCH, now, now.astimezone(zone).date(), zone.key)
