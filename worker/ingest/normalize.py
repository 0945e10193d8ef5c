"""Normalize: turn what a source says about an article into an Item ready to store.

- text (`ingest.text`), links (`ingest.links`), identity (`ingest.identity`);
- dates: UTC; a missing date is taken from first sight, a date more than a day in the future
  is clamped to now; either is flagged (`date_flag`);
- fingerprint: hashes and MinHash of the item's match text (dedupe.match_text: clutter and the
  feed's own header and footer lines left out); what is stored is the text as published.
"""

from __future__ import annotations

import datetime as dt

from worker.clock import start_of_day
from worker.ingest.dedupe import Clutter, fingerprint, match_text
from worker.ingest.identity import entry_identity
from worker.ingest.links import canonical_url
from worker.ingest.text import clean_text, clean_title, html_to_text
from worker.models import UNTITLED, Item, SeedDoc
from worker.safetext import one_line
from worker.sources.parse import Entry

# ── dates ────────────────────────────────────────────────────────────────────────────────────

FUTURE_TOLERANCE = dt.timedelta(days=1)


def publication_time(entry: Entry, now: dt.datetime) -> tuple[dt.datetime, str]:
    """The entry's UTC publication time and a flag: '' (as given), 'missing' or 'future'."""
    given = entry.published or entry.updated
    if given is None:
        return now, "missing"
    if given > now + FUTURE_TOLERANCE:
        return now, "future"
    return given, ""


def normalize_entry(
    entry: Entry,
    *,
    feed_id: int,
    policy: str,
    publisher: str,
    now: dt.datetime,
    clutter: Clutter,
    boilerplate: frozenset[str] = frozenset(),
    source: str = "feed",
    text: str | None = None,
    scope: str | None = None,
) -> Item:
    """A parsed entry as an Item of the given feed, fingerprinted for dedupe.

    `text`: the entry's content as plain text, when the caller has converted it already.
    `scope`: the identity scope when the entry belongs to no stored feed (feed_id 0, backfill).
    """
    title = clean_title(entry.title) or UNTITLED
    text = html_to_text(entry.content_html) if text is None else text
    published, flag = publication_time(entry, now)
    marks = fingerprint(title, text, match_text(text, clutter, boilerplate))
    return Item(
        identity=entry_identity(scope or f"feed:{feed_id}", entry, policy, title, text),
        source=source,
        title=title,
        text=text,
        summary=html_to_text(entry.summary_html),
        url=canonical_url(entry.link),
        guid=entry.guid,
        author=html_to_text(entry.author),
        published_at=published,
        first_seen_at=now,
        content_sha256=marks.content_sha256,
        publisher=publisher,
        feed_id=feed_id or None,
        date_flag=flag,
        fingerprint=marks,
        guid_base=entry.guid_base if policy == "guid" and entry.guid else None,
    )


# ── seeds ────────────────────────────────────────────────────────────────────────────────────


def seed_identity(doc: SeedDoc) -> str:
    """A seed is identified by its file name, so editing the file revises the same item."""
    return f"seed:{doc.path.name}"


def seed_item(doc: SeedDoc, now: dt.datetime, clutter: Clutter) -> Item:
    """A seed document as an item (source "seeds"); an undated seed is dated by first sight."""
    title = clean_text(doc.title)
    body = clean_text(doc.text)
    first_line, _, rest = body.partition("\n")
    if first_line.strip() == title:  # the file repeats its headline as the first line
        body = rest.strip()
    marks = fingerprint(title, body, match_text(body, clutter))
    return Item(
        identity=seed_identity(doc),
        source="seeds",
        title=title,
        text=body,
        published_at=start_of_day(doc.published) if doc.published else now,
        first_seen_at=now,
        content_sha256=marks.content_sha256,
        publisher=one_line(doc.publisher),  # seeds.toml is text from outside too
        lang=doc.language,
        date_flag="" if doc.published else "missing",
        fingerprint=marks,
    )


# ── records (JSON Lines, tests) ──────────────────────────────────────────────────────────────


def record_item(
    *,
    identity: str,
    title: str,
    text: str,
    published: dt.datetime,
    now: dt.datetime,
    clutter: Clutter,
    url: str | None = None,
    publisher: str = "",
    source: str = "feed",
) -> Item:
    """An item given as plain fields (a JSON Lines record), cleaned and fingerprinted like an entry."""
    title, text = one_line(clean_text(title)) or UNTITLED, clean_text(text)
    marks = fingerprint(title, text, match_text(text, clutter))
    return Item(
        identity=identity,
        source=source,
        title=title,
        text=text,
        url=canonical_url(url),
        published_at=published,
        first_seen_at=now,
        content_sha256=marks.content_sha256,
        publisher=publisher,
        fingerprint=marks,
    )
