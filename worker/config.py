"""Settings: a TOML file read into typed, frozen, validated dataclasses.

Every setting is a field of one of the section classes below; the field's metadata holds its
help text, and `SETTINGS` lists them all (the README test checks each is documented). Reading
a file (`load_settings`) rejects unknown keys (suggesting the nearest), wrong types and bad
values with a message naming the file, the key and what was expected; invalid TOML reports its
line. Relative paths resolve against the config file's folder. Secrets (the SMTP password) come
from an environment variable or a file the config names, never from the TOML itself.

The config file is chosen by `--config`, else `$STORYWATCH_CONFIG`, else
`./config/storywatch.toml` (`config_path`). The shipped default (`worker/default.toml`, every
setting with its comment) is written there by `storywatch config init`: that copy is the user's,
and nothing else (tests included) reads or writes it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import json
import math
import os
import re
import stat
import tomllib
import types
import typing
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from worker.safetext import address_without_password, has_unsafe, without_password
from worker.errors import ConfigError
from worker.models import feed_address

# The tracker's own defaults (tracking.settings.TrackerConfig; a test keeps the two equal): settings sit
# below the tracker and do not import it.
DEFAULT_THRESHOLD, DEFAULT_ADAPT = 0.03, True

CONFIG_ENV = "STORYWATCH_CONFIG"
DEFAULT_CONFIG = Path("config/storywatch.toml")


DEFAULT_TEMPLATE = Path(__file__).with_name("default.toml")
"""The shipped default; its relative paths hold from any folder beside `seeds/`, as config/ is."""


def default_config_text() -> str:
    return DEFAULT_TEMPLATE.read_text(encoding="utf-8")


SHIPPED_FOLDER = DEFAULT_TEMPLATE.parent.parent / "config"
"""The folder the shipped default's relative paths are written for (beside seeds/)."""
_TEMPLATE_PATH = re.compile(r'"(\.\./[^"]*)"')


def write_default_config(path: Path, *, force: bool = False) -> None:
    """`storywatch config init`: the default config written where the user will edit it."""
    if path.exists() and not force:
        raise ConfigError(f"config file exists already: {path}", hint="edit it, or add --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(default_config_for(path.parent), encoding="utf-8")


def default_config_for(folder: Path) -> str:
    """The shipped default for a config file in `folder`. In the project's config/ folder, as
    shipped. Elsewhere the seeds are still the shipped ones (named by absolute path), and what
    the worker writes (the store, the digests) goes beside the new file, not into the project."""
    if folder.resolve() == SHIPPED_FOLDER.resolve():
        return default_config_text()

    def moved(match: re.Match[str]) -> str:
        relative = match.group(1)
        if relative == "../seeds" or relative.startswith("../seeds/"):
            return json.dumps(os.path.normpath(SHIPPED_FOLDER.resolve() / relative))
        return json.dumps(relative.removeprefix("../"))

    return _TEMPLATE_PATH.sub(moved, default_config_text())

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


def _web_url(v: str) -> str | None:
    if has_unsafe(v):
        return "an http:// or https:// URL without control or bidirectional characters"
    try:
        urlsplit(v).port  # raises on "http://[::1/feed", a port past 65535
    except ValueError:
        return "an http:// or https:// URL"
    if re.search(r"\s", v):  # a space is no part of an address; in a login it would slip past masking
        return "an http:// or https:// URL without spaces (write a space in it as %20)"
    return None if re.match(r"(?i)^https?://[^/\s]+", v) else "an http:// or https:// URL"


def _one_line(v: str) -> str | None:
    """Header values: a line break would end the header (and start another one) in every mail sent;
    names and titles: an escape sequence would act on the terminal that lists them."""
    return "one line of text, without line breaks or control characters" if has_unsafe(v) else None


def _prose(v: str) -> str | None:
    """A text of lines: line breaks and tabs, but no other control or bidirectional character."""
    return _one_line(v.replace("\n", " ").replace("\t", " ").replace("\r", " "))


def _lines(values: tuple[str, ...] | tuple[tuple[str, ...], ...]) -> str | None:
    """Each of a list's texts (or each name of its groups) one line (_one_line)."""
    flat = [v for value in values for v in ((value,) if isinstance(value, str) else value)]
    return next((problem for v in flat if (problem := _one_line(v))), None)


def _one_line_each(v: tuple[str, ...]) -> str | None:
    return next((problem for item in v if (problem := _one_line(item))), None)


def _slug(v: str) -> str | None:
    return None if re.fullmatch(r"[a-z0-9][a-z0-9-]*", v) else "lowercase letters, digits and '-'"


def _timezone(v: str) -> str | None:
    if not v:
        return None
    try:
        zoneinfo.ZoneInfo(v)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "an IANA time zone name such as 'Europe/Berlin' (or empty for the machine's zone)"
    return None


def _regexes(patterns: tuple[str, ...]) -> str | None:
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



# ── sections ──────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class StorageSettings:
    path: Path = setting(
        Path("storywatch.db"), "SQLite database file; created with its folder on first use."
    )
    busy_timeout: float = setting(
        30.0,
        "Seconds a process waits for another process's write to finish before failing.",
        check=between(1, 86400),
    )
    retention_days: int = setting(
        0,
        "Items older than this many days are pruned (their identity and hash are kept so they "
        "never come back); 0 keeps everything.",
        check=between(0, LONGEST.days),
    )


@dataclass(frozen=True, slots=True)
class SeedsSettings:
    path: Path | None = setting(
        None,
        "Folder of seed documents (plain text, described by its seeds.toml). "
        "Unset: no seed documents are loaded.",
    )


@dataclass(frozen=True, slots=True)
class FetchSettings:
    interval: dt.timedelta = setting(
        dt.timedelta(minutes=30), "Default time between two polls of a feed."
    )
    min_interval: dt.timedelta = setting(
        dt.timedelta(minutes=5), "No feed is polled more often than this."
    )
    max_interval: dt.timedelta = setting(
        dt.timedelta(hours=24), "No feed waits longer than this between polls, errors included."
    )
    connect_timeout: float = setting(
        10.0, "Seconds allowed to open a connection.", check=between(1, 120)
    )
    timeout: float = setting(
        30.0,
        "Seconds allowed for a whole response, however slowly the server sends it.",
        check=between(1, 600),
    )
    max_body_mib: float = setting(
        15.0, "Largest feed body accepted, in MiB, counted after decompression.", check=between(0.01, 4096)
    )
    cycle_limit: dt.timedelta = setting(
        dt.timedelta(minutes=20),
        "A polling cycle of the worker (`run`, `run --once`) starts no feed after this long; the "
        "feeds left stay due and are polled first in the next cycle. Keep it well under the "
        "service's WatchdogSec; 0: no limit.",
        check=duration_between(dt.timedelta(0), dt.timedelta(days=1)),
    )
    max_connections: int = setting(16, "Feeds fetched at once, in all.", check=between(1, 256))
    max_per_host: int = setting(2, "Feeds fetched at once from one host.", check=between(1, 64))
    max_redirects: int = setting(5, "Redirect hops followed before giving up.", check=between(0, 20))
    allow_private_redirects: bool = setting(
        False,
        "Allow a redirect or DNS answer to move a feed onto a loopback, private, link-local, "
        "CGNAT or multicast address (feeds configured on such addresses are always allowed).",
    )
    user_agent: str = setting(
        "", "User-Agent header; empty: 'storywatch/VERSION (+project URL)'."
    )
    adaptive: bool = setting(
        False, "Set each feed's interval from how often it published in the last week."
    )
    parse_processes: int = setting(
        0,
        "Processes that parse feeds in parallel; 0: one per CPU core; 1: no extra processes.",
        check=between(0, 64),
    )


@dataclass(frozen=True, slots=True)
class DedupeSettings:
    window: dt.timedelta = setting(
        dt.timedelta(days=30),
        "Copies are looked for among items published this close in time to each other.",
    )
    similarity: float = setting(
        0.5,
        "Estimated Jaccard similarity of two texts' word 3-shingles from which one is a copy "
        "of the other (texts of 50 words or more; shorter ones follow the short-item rule).",
        check=between(0.2, 1.0),
    )
    clutter_patterns: tuple[str, ...] = setting(
        DEFAULT_CLUTTER,
        "Regular expressions for whole lines of page furniture (\"Advertisement\", share prompts…); "
        "left out of the text used for matching, never out of what is stored.",
        check=_regexes,
    )


@dataclass(frozen=True, slots=True)
class TrackingSettings:
    threshold: float = setting(
        DEFAULT_THRESHOLD,
        "Decision threshold of every storyline, on its background-normalised score (see "
        "`storywatch eval tracking`); lower finds more follow-ups and more false ones.",
        check=between(-10, 10),
    )
    adapt: bool = setting(
        DEFAULT_ADAPT,
        "Confident follow-ups join their storyline's profile (guarded against drift), so it "
        "follows the story as it develops.",
    )
    window: dt.timedelta = setting(
        dt.timedelta(days=14),
        "Recent items the tracker learns word statistics from at start (and a new or changed "
        "storyline looks back over for follow-ups).",
    )
    suggest_days: int = setting(
        3,
        "Items matching no storyline that share significant terms within this many days (3 or "
        "more items from 2 or more sources) become a suggested storyline.",
        check=between(1, 30),
    )


@dataclass(frozen=True, slots=True)
class FeedConfig:
    url: str = setting(help="The feed's address (RSS, Atom, RDF or JSON Feed).", check=_web_url)
    name: str = setting("", "A short name shown in status and digests; empty: the feed's title.", check=_one_line)
    interval: dt.timedelta | None = setting(
        None, "Time between polls of this feed; unset: [fetch] interval."
    )
    tags: tuple[str, ...] = setting((), "Free labels, e.g. [\"korea\", \"wire\"].", check=_lines)


@dataclass(frozen=True, slots=True)
class StorylineConfig:
    id: str = setting(help="Stable identifier: lowercase letters, digits and '-'.", check=_slug)
    title: str = setting(help="The storyline's name as shown in digests.", check=_one_line)
    description: str = setting("", "What the story is about, in a sentence or two.", check=_prose)
    seeds: tuple[str, ...] = setting(
        (),
        "Example articles that start the storyline: seed files (relative to the config "
        "file's folder) or URLs of items already in the store.",
    )
    keywords: tuple[str, ...] = setting(
        (), "Names and key phrases that mark the story, e.g. \"Friendship Year\".", check=_lines
    )
    aliases: tuple[tuple[str, ...], ...] = setting(
        (),
        "Groups of names that mean the same, e.g. [[\"DPRK\", \"North Korea\", \"Pyongyang\"], "
        "[\"Pak Myong-ho\", \"Park Myung-ho\"]].",
        check=lambda groups: _lines(groups) or next(
            (ALIAS_GROUP_RULE for g in groups if len([a for a in g if a.strip()]) < 2), None),
    )
    exclude: tuple[str, ...] = setting(
        (), "Words or phrases that rule an item out of the storyline, whatever its score.", check=_lines
    )
    threshold: float | None = setting(
        None,
        "This storyline's decision threshold on the tracking score; unset: [tracking] threshold.",
        check=lambda v: None if v is None or -10 <= v <= 10 else "a value from -10 to 10",
    )
    expires_after: dt.timedelta | None = setting(
        None, "Stop tracking once the storyline has had no follow-up for this long; unset: never."
    )


@dataclass(frozen=True, slots=True)
class DigestSettings:
    time: dt.time = setting(dt.time(7, 0), "Local time of the daily digest, \"HH:MM\".")
    timezone: str = setting(
        "", "IANA time zone of `time`; empty: the machine's local zone.", check=_timezone
    )
    output_dir: Path = setting(Path("digests"), "Folder the digest files are written to.")
    html: bool = setting(False, "Also write each digest as HTML (YYYY-MM-DD.html) beside the Markdown.")
    quiet_days: int = setting(
        7, "A storyline with no follow-up for this many days is listed as quiet.", check=between(1, 3650)
    )
    other_items: int = setting(
        30, "At most this many items outside the storylines are listed.", check=between(0, 10_000)
    )
    silent_days: int = setting(
        7, "A feed with no new item for this many days is listed as silent.", check=between(1, 3650)
    )
    atom: bool = setting(
        False, "After each cycle, write an Atom feed for each storyline (STORYLINE.atom) beside the digests."
    )


@dataclass(frozen=True, slots=True)
class EmailSettings:
    enabled: bool = setting(False, "Send each digest by email.")
    smtp_host: str = setting("", "SMTP server name.", check=_one_line)
    smtp_port: int = setting(587, "SMTP server port.", check=between(1, 65535))
    security: str = setting(
        "starttls",
        "\"starttls\" (upgrade a plain connection), \"tls\" (implicit TLS) or \"none\".",
        check=one_of("starttls", "tls", "none"),
    )
    username: str = setting("", "SMTP login name; empty: no login.", check=_one_line)
    password_env: str = setting(
        "STORYWATCH_SMTP_PASSWORD", "Environment variable holding the SMTP password."
    )
    password_file: Path | None = setting(
        None, "File holding the SMTP password (used when the variable is unset)."
    )
    from_addr: str = setting("", "Sender address.", key="from", check=_one_line)
    to: tuple[str, ...] = setting((), "Recipient addresses.", check=_one_line_each)
    subject_prefix: str = setting("[storywatch]", "Prefix of every digest's subject.", check=_one_line)
    timeout: float = setting(
        30.0, "Seconds allowed for each exchange with the SMTP server; a whole send, 4 times this.",
        check=between(1, 600),
    )
    ca_file: Path | None = setting(
        None, "CA certificates to trust for the SMTP server (a private CA); unset: the system's."
    )
    password: str | None = setting(
        None, "Resolved from password_env or password_file.", secret=True, from_toml=False
    )


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = setting(
        "INFO", "Lowest level logged.", check=one_of("DEBUG", "INFO", "WARNING", "ERROR")
    )
    json: bool = setting(False, "Log one JSON object per line (also: --log-json).")


@dataclass(frozen=True, slots=True)
class MonitoringSettings:
    metrics_file: Path | None = setting(
        None,
        "After each cycle, write `storywatch metrics` to this file (atomically, readable by all), "
        "e.g. for node_exporter's textfile collector; unset: not written.",
    )


@dataclass(frozen=True, slots=True)
class Settings:
    storage: StorageSettings = field(default_factory=StorageSettings)
    seeds: SeedsSettings = field(default_factory=SeedsSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    dedupe: DedupeSettings = field(default_factory=DedupeSettings)
    feeds: tuple[FeedConfig, ...] = ()
    storylines: tuple[StorylineConfig, ...] = ()
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    email: EmailSettings = field(default_factory=EmailSettings)
    log: LogSettings = field(default_factory=LogSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    source: Path | None = None  # the file these settings were read from


SECTIONS: dict[str, type] = {
    "storage": StorageSettings,
    "seeds": SeedsSettings,
    "fetch": FetchSettings,
    "dedupe": DedupeSettings,
    "feeds": FeedConfig,
    "storylines": StorylineConfig,
    "tracking": TrackingSettings,
    "digest": DigestSettings,
    "email": EmailSettings,
    "log": LogSettings,
    "monitoring": MonitoringSettings,
}
ARRAY_SECTIONS = {"feeds", "storylines"}  # [[feeds]], [[storylines]]


@dataclass(frozen=True, slots=True)
class SettingInfo:
    """One row of the settings table: what the README documents."""

    key: str  # "fetch.timeout", "feeds[].url"
    default: Any
    help: str
    required: bool
    secret: bool


def _toml_key(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("key") or f.name)


def _settings_table() -> tuple[SettingInfo, ...]:
    rows = []
    for section, cls in SECTIONS.items():
        prefix = f"{section}[]" if section in ARRAY_SECTIONS else section
        for f in dataclasses.fields(cls):
            if not f.metadata.get("from_toml", True):
                continue
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            default = None if required else f.default
            rows.append(
                SettingInfo(
                    f"{prefix}.{_toml_key(f)}", default, f.metadata["help"], required, False
                )
            )
    return tuple(rows)


SETTINGS: tuple[SettingInfo, ...] = _settings_table()


# ── reading values ────────────────────────────────────────────────────────────────────────

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


class _Reader:
    """Converts raw TOML values to field types, raising ConfigError with file and key."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.base = source.parent

    def fail(self, key: str, expected: str, got: object) -> ConfigError:
        shown = repr(address_without_password(got) if isinstance(got, str) else got) \
            if not isinstance(got, (dict, list)) else type(got).__name__
        return ConfigError(f"{self.source}: {key}: expected {expected}, got {shown}")

    def build(self, cls: type, table: Mapping[str, Any], where: str) -> Any:
        fields = {_toml_key(f): f for f in dataclasses.fields(cls)}
        for key in table:
            if key not in fields:
                raise self._unknown(f"{where}.{key}" if where else key, key, list(fields))
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for key, f in fields.items():
            full = f"{where}.{key}" if where else key
            if key in table and not f.metadata.get("from_toml", True):
                raise ConfigError(
                    f"{self.source}: {full}: secrets are never read from the config file",
                    hint="name an environment variable with password_env or a file with password_file",
                )
            if key not in table:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ConfigError(f"{self.source}: {full}: this key is required")
                if isinstance(f.default, Path):  # defaults resolve like written paths
                    values[f.name] = resolve_path(self.base, str(f.default))
                continue
            values[f.name] = self.convert(hints[f.name], table[key], full)
            check = f.metadata.get("check")
            if check and (expected := check(values[f.name])):
                raise self.fail(full, expected, table[key])
        return cls(**values)

    def _unknown(self, full: str, key: str, known: list[str]) -> ConfigError:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "known keys: " + ", ".join(sorted(known))
        return ConfigError(f"{self.source}: {full}: unknown key", hint=hint)

    def convert(self, hint: Any, value: Any, key: str) -> Any:
        origin = typing.get_origin(hint)
        if origin in (types.UnionType, typing.Union):
            (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
            return self.convert(inner, value, key)
        if origin is tuple:
            return self._tuple(typing.get_args(hint)[0], value, key)
        reader = self._SCALARS.get(hint)
        if reader is None:  # pragma: no cover - a programming error in a section class
            raise TypeError(f"no reader for {hint!r}")
        return reader(self, value, key)

    def _tuple(self, item: Any, value: Any, key: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise self.fail(key, "a list", value)
        return tuple(self.convert(item, v, f"{key}[{i}]") for i, v in enumerate(value))

    def _str(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, "a string", value)
        return value

    def _int(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, "a whole number", value)
        return value

    def _float(self, value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(key, "a number", value)  # TOML has inf and nan
        return float(value)

    def _bool(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def _path(self, value: Any, key: str) -> Path:
        text = self._str(value, key)
        if not text.strip() or "\0" in text:
            raise self.fail(key, "a path", value)
        return resolve_path(self.base, text)

    def _duration(self, value: Any, key: str) -> dt.timedelta:
        parsed = parse_duration(value)
        if parsed is None:
            raise self.fail(key, 'a duration such as "90s", "30m", "2h" or "7d" (at most a century)', value)
        return parsed

    def _time(self, value: Any, key: str) -> dt.time:
        if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value):
            hours, minutes = (int(p) for p in value.split(":"))
            if hours < 24 and minutes < 60:
                return dt.time(hours, minutes)
        raise self.fail(key, 'a time of day "HH:MM"', value)

    def section(self, cls: type, value: Any, key: str) -> Any:
        if not isinstance(value, dict):
            raise self.fail(key, f"a table [{key}]", value)
        return self.build(cls, value, key)

    _SCALARS: dict[Any, Callable[..., Any]] = {
        str: _str,
        int: _int,
        float: _float,
        bool: _bool,
        Path: _path,
        dt.timedelta: _duration,
        dt.time: _time,
    }


def resolve_path(base: Path, text: str) -> Path:
    """`text` as a path, relative ones taken from `base` ("config/../var" shown as "var")."""
    path = Path(text).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Which config file to read: --config, else $STORYWATCH_CONFIG, else the default."""
    chosen = explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
    return Path(chosen)


def load_settings(path: Path) -> Settings:
    """Read, validate and resolve the config file at `path`."""
    raw = _read_toml(path)
    reader = _Reader(path)
    sections: dict[str, Any] = {name: reader.section(cls, {}, name)
                                for name, cls in SECTIONS.items() if name not in ARRAY_SECTIONS}
    for name, value in raw.items():
        if name not in SECTIONS:
            raise reader._unknown(name, name, list(SECTIONS))
        if name in ARRAY_SECTIONS:
            sections[name] = _read_array(reader, name, value)
        else:
            sections[name] = reader.section(SECTIONS[name], value, name)
    settings = Settings(**sections, source=path)
    _validate(settings, path)
    settings = _resolve_seed_paths(settings, path.parent)
    return _resolve_secrets(settings, path)


def is_web_url(value: str) -> bool:
    return _web_url(value) is None


_ITEM_SEED = re.compile(r"#(\d{1,18})")


def item_seed(seed: str) -> int | None:
    """The stored item a seed names by its ID ("#42", as listings show it), if it does."""
    found = _ITEM_SEED.fullmatch(seed.strip())
    return int(found.group(1)) if found else None


def is_file_seed(seed: str) -> bool:
    """A seed that is a text file (not a stored item's URL or ID)."""
    return not is_web_url(seed) and item_seed(seed) is None


def _resolve_seed_paths(settings: Settings, base: Path) -> Settings:
    """Storyline seeds that are not URLs are paths, relative to the config file's folder."""

    def resolve(seed: str) -> str:
        return str(resolve_path(base, seed)) if is_file_seed(seed) else seed

    storylines = tuple(
        dataclasses.replace(s, seeds=tuple(resolve(seed) for seed in s.seeds))
        for s in settings.storylines
    )
    return dataclasses.replace(settings, storylines=storylines)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found: {path}",
            hint=f"`storywatch config init` writes the default there; or pass --config PATH or set ${CONFIG_ENV}",
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a folder, not a file: {path}") from None
    except PermissionError:
        raise ConfigError(f"config file is not readable: {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: invalid TOML: the file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _read_array(reader: _Reader, name: str, value: Any) -> tuple[Any, ...]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise reader.fail(name, f"a list of tables [[{name}]]", value)
    return tuple(reader.build(SECTIONS[name], v, f"{name}[{i}]") for i, v in enumerate(value))


def _validate(settings: Settings, path: Path) -> None:
    """Rules that span several keys."""
    fetch = settings.fetch
    if not fetch.min_interval <= fetch.interval <= fetch.max_interval:
        raise ConfigError(
            f"{path}: fetch.interval: expected a duration between fetch.min_interval "
            f"({format_duration(fetch.min_interval)}) and fetch.max_interval "
            f"({format_duration(fetch.max_interval)}), got {format_duration(fetch.interval)}"
        )
    _unique(path, "feeds", [f.url for f in settings.feeds], "url", feed_address)  # HTTP://Host/x is http://host/x
    _unique(path, "storylines", [s.id for s in settings.storylines], "id")
    for i, feed in enumerate(settings.feeds):
        if feed.interval is not None and not fetch.min_interval <= feed.interval <= fetch.max_interval:
            raise ConfigError(
                f"{path}: feeds[{i}].interval: expected a duration from "
                f"{format_duration(fetch.min_interval)} to {format_duration(fetch.max_interval)}, "
                f"got {format_duration(feed.interval)}"
            )
    email = settings.email
    if email.enabled:
        for key, value in (("smtp_host", email.smtp_host), ("from", email.from_addr)):
            if not value:
                raise ConfigError(f"{path}: email.{key}: required when email.enabled = true")
        if not email.to:
            raise ConfigError(f"{path}: email.to: required when email.enabled = true")


def _unique(path: Path, section: str, values: list[str], key: str, same: Callable[[str], str] = str) -> None:
    """Each value once (`same`: the form in which two values are the same)."""
    seen: set[str] = set()
    for i, value in enumerate(values):
        if same(value) in seen:
            raise ConfigError(f"{path}: {section}[{i}].{key}: {without_password(repr(value))} appears twice")
        seen.add(same(value))


def _resolve_secrets(settings: Settings, path: Path) -> Settings:
    """Fill email.password from its variable or file; required only when a login is needed."""
    email = settings.email
    if not (email.enabled and email.username):
        return settings
    password = os.environ.get(email.password_env) if email.password_env else None
    if password is None and email.password_file is not None:
        try:
            password = email.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{path}: email.password_file: cannot read {email.password_file}: {exc.strerror}"
            ) from None
    if not password:
        where = f"environment variable {email.password_env}"
        if email.password_file is not None:
            where += f" or file {email.password_file}"
        raise ConfigError(
            f"{path}: missing secret: the SMTP password is not set ({where} is empty or unset)",
            hint=f"export {email.password_env}=... or set email.password_file",
        )
    return dataclasses.replace(settings, email=dataclasses.replace(email, password=password))


def exposed_secrets(settings: Settings) -> list[str]:
    """Warnings for secrets that other users of the machine can read: a world-readable password
    file, or a world-readable config file holding a feed address with a password in it."""
    warnings = []
    password_file = settings.email.password_file
    if password_file is not None and _world_readable(password_file):
        warnings.append(f"{password_file} holds the SMTP password and is readable by every user: chmod o-r it")
    if settings.source is not None and _world_readable(settings.source):
        if any(urlsplit(feed.url).password for feed in settings.feeds):
            warnings.append(f"{settings.source} holds a feed password and is readable by every user: chmod o-r it")
    return warnings


def _world_readable(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & stat.S_IROTH)
    except OSError:
        return False


# ── showing settings ──────────────────────────────────────────────────────────────────────

MASK = "********"


def effective_settings(settings: Settings) -> list[tuple[str, str]]:
    """Every setting with its effective value as text, secrets masked (for `config check`)."""
    rows: list[tuple[str, str]] = []
    for name in SECTIONS:
        value = getattr(settings, name)
        if name in ARRAY_SECTIONS:
            for i, entry in enumerate(value):
                rows.extend(_section_rows(f"{name}[{i}]", entry))
        else:
            rows.extend(_section_rows(name, value))
    return rows


def _section_rows(prefix: str, section: Any) -> list[tuple[str, str]]:
    rows = []
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if f.metadata.get("secret"):
            shown = MASK if value else "(not set)"
        else:
            shown = without_password(format_value(value))  # a feed URL with a login
        rows.append((f"{prefix}.{_toml_key(f)}", shown))
    return rows


def effective_values(settings: Settings) -> dict[str, Any]:
    """Every setting with its effective value as JSON has it (durations and times as written in
    the config, unset ones null), secrets masked (for `config check --json`)."""
    values: dict[str, Any] = {}
    for name in SECTIONS:
        value = getattr(settings, name)
        for prefix, section in ([(f"{name}[{i}]", e) for i, e in enumerate(value)] if name in ARRAY_SECTIONS
                                else [(name, value)]):
            for f in dataclasses.fields(section):
                field_value = getattr(section, f.name)
                shown = (MASK if field_value else None) if f.metadata.get("secret") else _json_value(field_value)
                values[f"{prefix}.{_toml_key(f)}"] = shown
    return values


def _json_value(value: Any) -> Any:
    if isinstance(value, (dt.timedelta, dt.time)):
        return format_value(value).strip('"')
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, (str, Path)):
        return without_password(str(value))
    return value


def format_value(value: Any) -> str:
    """A setting's value as it would be written in TOML."""
    if isinstance(value, dt.timedelta):
        return f'"{format_duration(value)}"'
    if isinstance(value, dt.time):
        return f'"{value:%H:%M}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, Path)):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if value is None:
        return "(unset)"
    return str(value)
