"""parse ─► normalize ─► fingerprint ─► analyse, for one feed body: the work of a parsing process.

Kept apart from pipeline.py, which imports the store, the fetcher and the tracker: a parsing
process imports this module alone (parallel.PRELOAD), not the writer's world (sqlite-utils,
httpx, click: 250 modules, about 7 MB a process, loaded afresh by every process it started).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from worker.ingest import dedupe, normalize
from worker.ingest.identity import identity_policy
from worker.ingest.text import html_to_text
from worker.models import Feed, Item, TextAnalysis
from worker.sources import parse
from worker.tracking import analysis


@dataclass(frozen=True, slots=True)
class Parsed:
    """A feed body parsed and normalized (in a parsing process): its entries as items."""

    title: str
    site_url: str | None
    ttl: dt.timedelta | None
    warning: str | None
    policy: str
    items: tuple[Item, ...]


def parse_entries(
    feed: Feed, body: bytes, content_type: str, url: str, now: dt.datetime, clutter: tuple[str, ...],
    bucket_key: bytes,
) -> Parsed:
    """parse ─► normalize (with fingerprints) for one feed body; runs in a parsing process
    (`bucket_key`: the store's, for the analyses: see analysis.bucket_features)."""
    parsed = parse.parse_feed(body, content_type=content_type, url=url)
    policy = identity_policy(parsed.entries, feed.identity_policy) if parsed.entries else feed.identity_policy
    publisher = feed.name or parsed.title or (urlsplit(feed.url).hostname or "")
    items = normalize_batch(feed, parsed.entries, policy=policy, publisher=publisher, now=now, clutter=clutter,
                            bucket_key=bucket_key)
    return Parsed(parsed.title, parsed.site_url, parsed.ttl, parsed.warning, policy, items)


def normalize_batch(
    feed: Feed, entries: Sequence[parse.Entry], *, policy: str, publisher: str, now: dt.datetime,
    clutter: tuple[str, ...], source: str = "feed", scope: str | None = None, analyse: bool = True,
    bucket_key: bytes = b"",
) -> tuple[Item, ...]:
    """A feed's entries as fingerprinted items, analysed for tracking unless not `analyse` (a
    backfill has them analysed later, in time order, while it stores: `analyses`).

    The feed's boilerplate model is first taught this batch (for these fingerprints only; the
    store learns from new items alone), so a feed's first fetch is already matched without the
    header and footer it puts around every item.
    """
    texts = [html_to_text(entry.content_html) for entry in entries]
    lines = dedupe.Boilerplate.from_json(feed.boilerplate).learn(texts).lines
    rules = clutter_rules(clutter)
    items = (normalize.normalize_entry(entry, feed_id=feed.id, policy=policy, publisher=publisher, now=now,
                                       clutter=rules, boilerplate=lines, text=text, source=source, scope=scope)
             for entry, text in zip(entries, texts))
    return tuple(analysed(item, bucket_key) for item in items) if analyse else tuple(items)


def analysed(item: Item, bucket_key: bytes) -> Item:
    """The item with its text analysed for storyline tracking (done where items are parsed, so
    that the one writer does not tokenize: see analysis.prepare)."""
    return dataclasses.replace(item, analysis=analysis.prepare(item.title, item.text, analysis.keyed(bucket_key)))


def analyses(texts: Sequence[tuple[str, str]], bucket_key: bytes) -> list[TextAnalysis]:
    """The analyses of (title, text) pairs, as `analysed` makes them (a task for a parsing process)."""
    return [analysis.prepare(title, text, analysis.keyed(bucket_key)) for title, text in texts]


@functools.lru_cache(maxsize=8)
def clutter_rules(patterns: tuple[str, ...]) -> dedupe.Clutter:
    return dedupe.Clutter.compile(patterns)
