"""The settings, section by section: typed, frozen dataclasses with their defaults and checks."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.config.fields import (
    ALIAS_GROUP_RULE, DEFAULT_ADAPT, DEFAULT_CLUTTER, DEFAULT_THRESHOLD, LONGEST, between, check_lines,
    check_one_line, check_one_line_each, check_prose, check_regexes, check_slug, check_timezone, check_web_url,
    duration_between, one_of, setting,
)


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
        check=check_regexes,
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
    url: str = setting(help="The feed's address (RSS, Atom, RDF or JSON Feed).", check=check_web_url)
    name: str = setting("", "A short name shown in status and digests; empty: the feed's title.", check=check_one_line)
    interval: dt.timedelta | None = setting(
        None, "Time between polls of this feed; unset: [fetch] interval."
    )
    tags: tuple[str, ...] = setting((), "Free labels, e.g. [\"korea\", \"wire\"].", check=check_lines)


@dataclass(frozen=True, slots=True)
class StorylineConfig:
    id: str = setting(help="Stable identifier: lowercase letters, digits and '-'.", check=check_slug)
    title: str = setting(help="The storyline's name as shown in digests.", check=check_one_line)
    description: str = setting("", "What the story is about, in a sentence or two.", check=check_prose)
    seeds: tuple[str, ...] = setting(
        (),
        "Example articles that start the storyline: seed files (relative to the config "
        "file's folder) or URLs of items already in the store.",
    )
    keywords: tuple[str, ...] = setting(
        (), "Names and key phrases that mark the story, e.g. \"Friendship Year\".", check=check_lines
    )
    aliases: tuple[tuple[str, ...], ...] = setting(
        (),
        "Groups of names that mean the same, e.g. [[\"DPRK\", \"North Korea\", \"Pyongyang\"], "
        "[\"Pak Myong-ho\", \"Park Myung-ho\"]].",
        check=lambda groups: check_lines(groups) or next(
            (ALIAS_GROUP_RULE for g in groups if len([a for a in g if a.strip()]) < 2), None),
    )
    exclude: tuple[str, ...] = setting(
        (), "Words or phrases that rule an item out of the storyline, whatever its score.", check=check_lines
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
        "", "IANA time zone of `time`; empty: the machine's local zone.", check=check_timezone
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
    smtp_host: str = setting("", "SMTP server name.", check=check_one_line)
    smtp_port: int = setting(587, "SMTP server port.", check=between(1, 65535))
    security: str = setting(
        "starttls",
        "\"starttls\" (upgrade a plain connection), \"tls\" (implicit TLS) or \"none\".",
        check=one_of("starttls", "tls", "none"),
    )
    username: str = setting("", "SMTP login name; empty: no login.", check=check_one_line)
    password_env: str = setting(
        "STORYWATCH_SMTP_PASSWORD", "Environment variable holding the SMTP password."
    )
    password_file: Path | None = setting(
        None, "File holding the SMTP password (used when the variable is unset)."
    )
    from_addr: str = setting("", "Sender address.", key="from", check=check_one_line)
    to: tuple[str, ...] = setting((), "Recipient addresses.", check=check_one_line_each)
    subject_prefix: str = setting("[storywatch]", "Prefix of every digest's subject.", check=check_one_line)
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


def toml_key(f: dataclasses.Field[Any]) -> str:
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
                    f"{prefix}.{toml_key(f)}", default, f.metadata["help"], required, False
                )
            )
    return tuple(rows)


SETTINGS: tuple[SettingInfo, ...] = _settings_table()
