"""Identity: the key each item is stored under, decided in `entry_identity` (its precedence is
written there) and enforced by the store's unique index; a GUID is keyed by the feed's id, never
its address. The keys older versions wrote are read back here too (legacy GUID keys)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

from worker.ingest.links import canonical_url
from worker.ingest.text import content_hash
from worker.sources import parse
from worker.sources.parse import Entry

# ── identity ─────────────────────────────────────────────────────────────────────────────────

POLICIES = ("guid", "url", "content")


def identity_policy(entries: Sequence[Entry], current: str) -> str:
    """How a feed's entries are told apart; it only ever falls back, never returns to GUIDs.

    GUIDs are trusted while every entry has one and no two entries share one; URLs while every
    entry has a link and no two share a canonical link; otherwise the content decides.
    """
    rank = POLICIES.index(current if current in POLICIES else "guid")
    if rank == 0 and not _distinct([e.guid for e in entries]):
        rank = 1
    if rank == 1 and not _distinct([canonical_url(e.link) for e in entries]):
        rank = 2
    return POLICIES[rank]


def _distinct(values: Sequence[str | None]) -> bool:
    if any(not v for v in values):
        return False
    return all(n == 1 for n in Counter(values).values())


def entry_identity(scope: str, entry: Entry, policy: str, title: str, text: str) -> str:
    """The key that makes an entry unique in the store, by the feed's identity policy:

    1. "guid":    the feed's own GUID for the entry, as the feed writes it (`guid_identity`);
    2. "url":     the canonical link, when the feed's GUIDs are missing or repeat;
    3. "content": a hash of the normalized title and text, when links do not tell entries apart.

    GUIDs are unique only within their feed, so the feed is part of the key: `scope` is
    "feed:ID", the store's id of the feed (it survives a change of address: a 301), or
    "backfill:KEY" for a history file that belongs to no stored feed. The feed's address is never
    part of it: a bare GUID ("item-17", not a URL) stays bare (parse never resolves it against
    the address it was read from), so a feed that moves keeps its entries' identities. Versions
    before migration 0010 did resolve it: the store finds such a row under `legacy_guid_keys`.
    """
    if policy == "guid" and entry.guid:
        return guid_identity(scope, entry.guid)
    url = canonical_url(entry.link)
    if policy in ("guid", "url") and url:
        return f"{scope}:url:{url}"
    return f"{scope}:content:{content_hash(title, text)}"


def guid_identity(scope: str, guid: str) -> str:
    """The key of an entry told apart by its GUID, within its feed's scope ("feed:ID")."""
    return f"{scope}:guid:{guid.strip()}"


_GUID_KEY = re.compile(r"((?:feed|backfill):[0-9a-f]+):guid:(.*)", re.S)


def split_guid_identity(identity: str) -> tuple[str, str] | None:
    """(scope, GUID) of a key made by `guid_identity`; None for any other key."""
    found = _GUID_KEY.fullmatch(identity)
    return (found.group(1), found.group(2)) if found else None


def legacy_guid_keys(identity: str, guid: str, bases: Sequence[str], *, first_0010: bool = False) -> list[str]:
    """The keys versions before migration 0010 may have stored an entry under, whose key is now
    `identity` (`guid_identity`: its GUID `guid` as written): the GUID as they read it from a
    document at each of `bases` (`parse.legacy_guid`: "posts/17" became a URL), in the same scope.
    `first_0010`: also what migration 0010 as first released made of each of those keys, which it
    took for resolved bare GUIDs (`first_0010_guid`). The key itself is never among them.

    Each is only a place to look: the store gives a row found under one the entry's key
    (store.adopt_legacy_keys), since the older version would have matched the entry to it.
    """
    found = split_guid_identity(identity)
    if found is None:
        return []
    scope = found[0]
    keys: list[str] = []
    for base in bases:
        old = parse.legacy_guid(guid.strip(), base)
        for made in (old, first_0010_guid(old) if first_0010 and old else None):
            key = guid_identity(scope, made) if made else None
            if key and key != identity and key not in keys:
                keys.append(key)
    return keys


def first_0010_guid(guid: str) -> str | None:
    """What migration 0010 as first released (commits 9820840 to 2f5423d) made of a key's GUID:
    a URL whose last segment (no slash, no query, not a fragment alone) lies in its folder became
    that segment, unless it was the item's own link ("https://a.example/feeds/12345" → "12345"),
    and a file: URL its last segment; None when it left the key alone. It guessed from the key
    alone, and took URLs feeds write for bare GUIDs an older version had resolved."""
    if guid.startswith("file:"):
        return _last_segment(guid)
    folder = guid_folder(guid)
    return unresolved_guid(guid, (folder,), None) if folder else None


def unresolved_guid(guid: str, addresses: Sequence[str], link: str | None) -> str | None:
    """The bare GUID that versions before migration 0010 may have stored as `guid`, a URL made by
    resolving it against the address the feed was read from; None when `guid` is not one.

    Such a URL is the GUID's own text, a single path segment, in the folder of one of the
    feed's `addresses`: where it is read now, where it was read before a move ("item-17" read at
    https://a.example/feeds/rss was https://a.example/feeds/item-17).
    A GUID the feed wrote as a URL into that same folder looks alike, so this is only ever a
    guess (migration 0013 finds the folders of a feed's earlier addresses with it). The URLs
    feeds write most are left out: the item's own page (its `link`, query and fragment aside: a
    permalink), and a page with a query (https://news.ycombinator.com/item?id=1 for a feed at
    …/rss). A `file:` GUID was resolved against a history file that backfill read (no feed writes
    file: GUIDs): its last segment.
    """
    if guid.startswith("file:"):
        return _last_segment(guid)
    for address in addresses:
        folder = urljoin(address, ".")
        rest = guid[len(folder):] if guid.startswith(folder) else ""
        if rest and "/" not in rest and "?" not in rest and rest[0] != "#" and urljoin(address, rest) == guid:
            return None if _same_page(guid, link) else rest
    return None


def _same_page(guid: str, link: str | None) -> bool:
    """Whether a URL GUID names the item's own link (its query and fragment aside)."""
    try:
        return bool(link) and urlsplit(canonical_url(guid) or "")[:3] == urlsplit(link or "")[:3]
    except ValueError:  # an unreadable link names no page
        return False


def guid_folder(guid: str) -> str | None:
    """The folder a web address lies in ("https://a.example/feeds/" for …/feeds/item-17); None
    for a GUID that is not one."""
    return urljoin(guid, ".") if guid.startswith(("http://", "https://")) else None


def _last_segment(url: str) -> str | None:
    """What follows the last slash of a URL's path, with its query and fragment."""
    parts = urlsplit(url)
    segment = parts.path.rsplit("/", 1)[-1]
    rest = segment + (f"?{parts.query}" if parts.query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    return rest or None
