"""How a setting is declared (its help and its check) and the checks settings share: ranges, choices,
durations, web addresses, one-line text, time zones, patterns."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import field
from typing import Any
from urllib.parse import urlsplit

from worker.safetext import has_unsafe


# The tracker's own defaults (tracking.settings.TrackerConfig; a test keeps the two equal): settings sit
# below the tracker and do not import it.
DEFAULT_THRESHOLD, DEFAULT_ADAPT = 0.03, True

Check = Callable[[Any], str | None]  # returns what was expected when the value is bad


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    check: Check | None = None,
    key: str | None = None,
    secret: bool = False,
    from_toml: bool = True,
) -> Any:
    """A settings field: its default, its help line, and how to validate it."""
    meta = {"help": help, "check": check, "key": key, "secret": secret, "from_toml": from_toml}
    return field(default=default, metadata=meta, repr=not secret)  # a secret never shows in a repr


ALIAS_GROUP_RULE = "groups of 2 or more names each, e.g. [[\"DPRK\", \"North Korea\"]]"

LONGEST = dt.timedelta(days=100 * 365)  # a longer duration is a typo, and past what datetimes add


def between(low: float, high: float) -> Check:
    return lambda v: None if low <= v <= high else f"a value from {low} to {high}"


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else "one of " + ", ".join(repr(c) for c in choices)


def duration_between(low: dt.timedelta, high: dt.timedelta) -> Check:
    def check(v: dt.timedelta | None) -> str | None:
        if v is None or low <= v <= high:
            return None
        return f"a duration from {format_duration(low)} to {format_duration(high)}"

    return check


def check_web_url(v: str) -> str | None:
    if has_unsafe(v):
        return "an http:// or https:// URL without control or bidirectional characters"
    try:
        urlsplit(v).port  # raises on "http://[::1/feed", a port past 65535
    except ValueError:
        return "an http:// or https:// URL"
    if re.search(r"\s", v):  # a space is no part of an address; in a login it would slip past masking
        return "an http:// or https:// URL without spaces (write a space in it as %20)"
    return None if re.match(r"(?i)^https?://[^/\s]+", v) else "an http:// or https:// URL"


def check_one_line(v: str) -> str | None:
    """Header values: a line break would end the header (and start another one) in every mail sent;
    names and titles: an escape sequence would act on the terminal that lists them."""
    return "one line of text, without line breaks or control characters" if has_unsafe(v) else None


def check_prose(v: str) -> str | None:
    """A text of lines: line breaks and tabs, but no other control or bidirectional character."""
    return check_one_line(v.replace("\n", " ").replace("\t", " ").replace("\r", " "))


def check_lines(values: tuple[str, ...] | tuple[tuple[str, ...], ...]) -> str | None:
    """Each of a list's texts (or each name of its groups) one line (check_one_line)."""
    flat = [v for value in values for v in ((value,) if isinstance(value, str) else value)]
    return next((problem for v in flat if (problem := check_one_line(v))), None)


def check_one_line_each(v: tuple[str, ...]) -> str | None:
    return next((problem for item in v if (problem := check_one_line(item))), None)


def check_slug(v: str) -> str | None:
    return None if re.fullmatch(r"[a-z0-9][a-z0-9-]*", v) else "lowercase letters, digits and '-'"


def check_timezone(v: str) -> str | None:
    if not v:
        return None
    try:
        zoneinfo.ZoneInfo(v)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "an IANA time zone name such as 'Europe/Berlin' (or empty for the machine's zone)"
    return None


def check_regexes(patterns: tuple[str, ...]) -> str | None:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"regular expressions ({pattern!r}: {exc})"
    return None


# Lines that are page furniture: each must match a whole line, case-insensitively.
DEFAULT_CLUTTER = (
    r"advertisement",
    r"(continue |read )?(reading|more)( on .*)?\s*[.…:»>]*",
    r"(leave|post|add) a comment|\d* ?comments?",
    r"related( posts| articles| stories| coverage| news| content)?:?",
    r"(you (may|might) also like|recommended( for you)?|more from .{1,40}|most (read|popular))[.:]?",
    r"(share|share this|share this (article|story|post)|share on \w+( \w+)?|click to share.*|tweet|email|print)[.:!]?",
    r"(follow us on|like us on|join us on|sign up for|subscribe( to)?|get (our|the) .{0,40}newsletter).*",
    r"this site uses akismet to reduce spam\..*",
    r"(home|news) ?[»>›/|] .*",
    r"(#\w+\s*){3,}",
    r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2})?)?",
    r"(last )?(updated|modified|published|posted)( on| at)?:? .{0,60}",
    r"(photo|image|video|illustration)( credit)?:? \S.{0,80}",
)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> dt.timedelta | None:
    """"90s", "30m", "2h", "7d", or a whole number of seconds, up to a century; None when unreadable."""
    if isinstance(value, bool):
        return None
    seconds: float | None = None
    if isinstance(value, int) and value >= 0:
        seconds = value
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds is None or seconds > LONGEST.total_seconds():
        return None
    return dt.timedelta(seconds=seconds)


def format_duration(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
