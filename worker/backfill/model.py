"""What a backfill is given and what it reports: its sources, options, spooled documents, summary."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from worker.models import Feed


BATCH = 500  # items per transaction: short enough for the daemon to write in between
CHUNK = 16  # items per pickled chunk of a spool file: the merge holds one chunk of every source (~250 KB)
IDENTITY_CHUNK = 500  # identities per pickled chunk of a spool's identity file: one store query each
MAX_FILE_BYTES = 256 * 1024 * 1024  # a source larger than this, decompressed, is refused
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")


@dataclass(frozen=True, slots=True)
class Source:
    kind: str  # "url", "file", "jsonl"
    location: str  # URL or path
    feed: Feed | None = None  # a stored feed the source belongs to (URL sources, --all)


@dataclass(frozen=True, slots=True)
class Options:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    track: bool = True
    dry_run: bool = False
    workers: int = 0  # 0: the number of cores
    max_pages: int = 100
    batch: int = BATCH  # items per transaction (tests stop a small backfill between batches)


@dataclass
class Spooled:
    """One document read by a parsing process: its items wait, sorted, in `path`."""

    label: str
    entries: int = 0
    items: int = 0
    path: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # bad lines, an empty feed
    next_urls: tuple[str, ...] = ()  # URL sources: archive and next pages to read too
    stopped: bool = False  # not read: the backfill was stopped first


@dataclass
class Summary:
    sources_read: int = 0
    entries: int = 0
    items_new: int = 0
    exact_copies: int = 0
    near_duplicates: int = 0
    already_stored: int = 0
    outside_period: int = 0
    revisions: int = 0
    followups: Counter[str] = field(default_factory=Counter)
    sources_failed: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    entries_by_source: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False  # a stop came before the end
    items_not_stored: int = 0  # items read but not stored because of the stop
    sources_not_read: list[str] = field(default_factory=list)  # documents the stop left unread

    def as_json(self) -> dict[str, Any]:
        return {"sources_read": self.sources_read, "entries": self.entries, "items_new": self.items_new,
                "exact_copies": self.exact_copies, "near_duplicates": self.near_duplicates,
                "already_stored": self.already_stored, "outside_period": self.outside_period,
                "revisions": self.revisions, "followups": dict(sorted(self.followups.items())),
                "sources_failed": self.sources_failed, "warnings": self.warnings,
                "seconds": round(self.seconds, 2), "entries_by_source": self.entries_by_source,
                "interrupted": self.interrupted, "items_not_stored": self.items_not_stored,
                "sources_not_read": self.sources_not_read}
