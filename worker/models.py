"""The values passed between stages: frozen dataclasses, no behaviour beyond small helpers."""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from worker.safetext import without_password

SOURCES = ("feed", "seeds", "backfill")  # where an item came from


@dataclass(frozen=True, slots=True)
class TextAnalysis:
    """An item's analysis under the generic aliases, without spelling fixes, made by
    ``worker.tracking.analysis.prepare`` where the item is parsed (a parsing process), so the
    one writer does not tokenize. Packed into a few strings: cheap to send between processes,
    however many features it has. The tracker uses it unless a spelling fix or a storyline's own
    aliases read the text otherwise. A value the stages carry along: only the tracker reads it."""

    features: str
    """Feature names, one per line."""
    weights: bytes
    """Their weights, an array of doubles."""
    buckets: bytes
    """Their document-frequency buckets, an array of uint32."""
    names: tuple[tuple[str, str], ...]
    short: bool
    capitals: str
    starts: str
    recipe: str
    """The settings it was made with (``recipe``): a tracker configured otherwise ignores it."""
    title_terms: str = ""
    lead_terms: str = ""
    """The title's and the lead's features, one per line."""


@dataclass(frozen=True, slots=True)
class SeedDoc:
    """One seed document as described in seeds.toml (or derived from the file)."""

    path: Path
    title: str
    text: str
    publisher: str
    published: dt.date | None
    language: str


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What dedupe knows of an item's content, computed once where the item is parsed."""

    content_sha256: str  # exact-copy key: title + match text
    raw_sha256: str  # the item as stored (title + text): an unchanged re-send is skipped on this
    signature: bytes  # MinHash: of word 3-shingles, or of single words for short items
    title_key: str  # the headline, lower-cased, punctuation and spacing removed
    words: int  # words in the match text


def index_source(feed_id: int | None, identity: str) -> int | None:
    """Who published an item, as the dedupe index tells sources apart (copies within one source
    are never folded): its feed, or for a backfilled document that belongs to no stored feed a
    negative number made from its identity scope ("backfill:KEY"); None: unknown."""
    if feed_id is not None:
        return feed_id
    if identity.startswith("backfill:"):
        return -2 - zlib.crc32(identity.split(":", 2)[1].encode()) % 2**30
    return None


@dataclass(frozen=True, slots=True)
class Indexed:
    """An item as the index knows it (all of it comes from the store's columns)."""

    item_id: int
    feed_id: int | None
    cluster_id: int
    published: dt.datetime
    signature: bytes
    title_key: str
    words: int


@dataclass(frozen=True, slots=True)
class Item:
    """One article, normalized, ready to store. `identity` is unique in the store."""

    identity: str
    source: str
    title: str
    text: str
    published_at: dt.datetime
    first_seen_at: dt.datetime
    content_sha256: str
    url: str | None = None
    guid: str | None = None
    summary: str = ""
    author: str = ""
    publisher: str = ""
    lang: str = ""
    feed_id: int | None = None
    date_flag: str = ""  # "" (as published), "missing" (dated by first sight) or "future" (clamped)
    fingerprint: Fingerprint | None = None
    analysis: TextAnalysis | None = None
    """Its text as storyline tracking reads it, made where it was parsed (not stored)."""
    guid_base: str | None = None
    """Keyed by an XML feed's GUID: the address its document was read from, against which
    versions before migration 0010 resolved that GUID (not stored; see store.adopt_legacy_keys)."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a new item is stored: in a cluster of its own, or as a copy in another's cluster."""

    cluster_id: int | None = None  # None: its own new cluster
    dup_of: int | None = None  # the stored item it copies …
    dup_of_batch: int | None = None  # … or an item stored earlier in the same batch (its position)
    dup_kind: str | None = None  # "exact", "near" or "short"
    similarity: float | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    """An item's current version as the store has it: what a re-seen item is compared with."""

    id: int
    identity: str
    feed_id: int | None
    cluster_id: int
    title: str
    text: str
    url: str | None
    published_at: dt.datetime
    raw_sha256: str | None
    revision: int
    publisher: str = ""
    source: str = ""
    date_flag: str = ""  # "missing": dated by first sight (an undated seed file); "future": clamped


class _Shown:
    """How a feed is named in outputs."""

    __slots__ = ()
    url: str
    name: str
    title: str | None

    @property
    def display_name(self) -> str:
        """Its name, else its title, else its host (a file's path when it has none)."""
        return self.name or self.title or urlsplit(self.url).hostname or self.shown_url

    @property
    def shown_url(self) -> str:
        """The URL as outputs show it: a password in it masked (the store keeps it for requests)."""
        return without_password(self.url)


@dataclass(frozen=True, slots=True)
class Feed(_Shown):
    """A feed as the store knows it: where it is, what it sent last, when to poll it again."""

    id: int
    url: str
    name: str = ""
    title: str | None = None
    origin: str = "config"
    interval: dt.timedelta | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_sha256: str | None = None
    error_count: int = 0
    identity_policy: str = "guid"
    public_origin: bool | None = None
    disabled_reason: str | None = None
    next_poll_at: dt.datetime | None = None
    boilerplate: str = "{}"  # the feed's learned header and footer lines (dedupe.Boilerplate, JSON)


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item as read back from the store, with what the store knows about it."""

    id: int
    identity: str
    source: str
    title: str
    url: str | None
    publisher: str
    published_at: dt.datetime
    first_seen_at: dt.datetime
    storylines: tuple[str, ...]
    cluster_id: int = 0
    revisions: int = 0  # edits kept (the item's revision number − 1)
    dup_of: int | None = None
    dup_kind: str | None = None


@dataclass(frozen=True, slots=True)
class Revision:
    revision: int  # the version this row keeps (1 = as first seen)
    seen_at: dt.datetime  # when the version after it replaced it
    title: str
    changed: tuple[str, ...]
    diff: str


@dataclass(frozen=True, slots=True)
class ItemDetail:
    """One item with its text, its earlier versions and the other members of its cluster."""

    item: StoredItem
    text: str
    summary: str
    author: str
    date_flag: str
    similarity: float | None
    revisions: tuple[Revision, ...]
    cluster: tuple[StoredItem, ...]  # every item of the cluster, this one included, oldest first


@dataclass(frozen=True, slots=True)
class FeedHealth(_Shown):
    url: str
    name: str
    items: int
    last_status: int | None
    last_error: str | None
    error_count: int
    last_polled_at: dt.datetime | None
    next_poll_at: dt.datetime | None
    disabled_reason: str | None
    retry_after: dt.datetime | None = None
    last_success_at: dt.datetime | None = None
    title: str | None = None
    tags: tuple[str, ...] = ()
    origin: str = "config"


@dataclass(frozen=True, slots=True)
class StorylineSummary:
    id: str
    title: str
    active: bool
    seeds: int
    followups: int
    last_followup_at: dt.datetime | None
    paused: bool = False

    @property
    def state(self) -> str:
        """"" when tracked, else why not: "paused" (`storylines pause`) or "inactive"."""
        return "" if self.active else "paused" if self.paused else "inactive"


@dataclass(frozen=True, slots=True)
class StorylineDef:
    """A storyline as stored: its definition and the ids of its seed items."""

    id: str
    title: str
    description: str
    keywords: tuple[str, ...]
    aliases: tuple[tuple[str, ...], ...]
    exclude: tuple[str, ...]
    threshold: float | None
    expires_after: dt.timedelta | None
    seed_ids: tuple[int, ...]
    updated_at: dt.datetime
    profile_hash: str = ""  # the definition the storyline's look-back was last made for
    created_at: dt.datetime | None = None  # when it was added to the store: tracked since then


def reason_strings(value: object) -> list[str]:
    """The words of a stored reasons list: ["a", …] or [["a", weight], …] both give ["a", …]."""
    if not isinstance(value, (list, tuple)):
        return []
    return [str(v[0] if isinstance(v, (list, tuple)) and v else v) for v in value]


def term_words(value: object) -> list[str]:
    """The shared terms of stored reasons as words to show: ``[[token, weight, word], …]`` gives
    the words as written in the item ("" where it has none: left out). Reasons stored before
    words were kept (``[[token, weight]]``) give their tokens, alias groups spaced ("north_korea"
    -> "north korea")."""
    if not isinstance(value, (list, tuple)):
        return []
    words = [str(v[2]) if len(v) > 2 else str(v[0]).replace("_", " ")
             for v in value if isinstance(v, (list, tuple)) and v]
    return [w for w in words if w]


def marked_like(value: object) -> str:
    """A decision made by a reader's mark (Reasons.like_marked, stored as a list), in words."""
    if not (isinstance(value, list | tuple) and len(value) == 3):
        return ""
    item_id, followup, similarity = value
    kind = "a follow-up" if followup else "not a follow-up"
    return f"like #{item_id}, which you marked {kind} (similarity {similarity})"


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A tracking decision to record: an item continues a storyline, and why."""

    storyline_id: str
    item_id: int
    score: float
    threshold: float
    raw_score: float
    reasons: dict[str, object]  # top_terms, names, closest_similarity, …
    novelty: tuple[str, ...]
    closest_item_id: int | None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One item of a storyline's timeline: a seed or a follow-up."""

    item_id: int
    decision: str
    title: str
    publisher: str
    url: str | None
    published_at: dt.datetime
    source: str
    score: float | None
    threshold: float | None
    reasons: dict[str, object]
    novelty: tuple[str, ...]
    closest_item_id: int | None
    marked: bool | None = None
    """The reader's mark of the item for this storyline (`items mark`), if any."""


@dataclass(frozen=True, slots=True)
class StoreStatus:
    path: Path
    items_by_source: dict[str, int]
    feeds: tuple[FeedHealth, ...]
    storylines: tuple[StorylineSummary, ...]
    last_poll_at: dt.datetime | None
    last_digest_at: dt.datetime | None
    last_digest_status: str | None
    last_digest_error: str | None = None
    last_digest_resend_error: str | None = None  # why its last resend failed (it stays sent or unconfirmed)
    last_digest_retry_at: dt.datetime | None = None
    unconfirmed_digests: tuple[dt.date, ...] = ()  # days whose digest may or may not have been sent

    @property
    def items(self) -> int:
        return sum(self.items_by_source.values())


@dataclass(frozen=True, slots=True)
class FetchHistory:
    """A feed's polls before some moment: the last success, and the failures in a row since."""

    last_success: dt.datetime | None
    failures: int
    last_error: str | None
    last_kind: str | None


UNTITLED = "(untitled)"
"""The title of an item that has none (it is not read as words: no evidence, no shared term)."""


def plural(n: int, word: str, words: str | None = None) -> str:
    """"1 feed", "2 feeds" ("1 entry", "2 entries" with `words`): a count as a reader says it."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"


def feed_address(url: str) -> str:
    """A feed's address as stored: scheme and host in lower case (they are case-blind) and no
    fragment (never sent to the server), so that HTTP://Example.ORG/feed#top finds
    http://example.org/feed; path and query as given."""
    parts = urlsplit(url.strip())
    host = parts.netloc.rpartition("@")
    netloc = host[0] + host[1] + host[2].lower()
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))
