"""Normalize: turn what a source says about an article into an Item ready to store.

- text: HTML → plain text through a real HTML parser (what a browser would not show, such as
  scripts, styles and comments, dropped even when left unclosed; entities decoded; block tags
  become line breaks, inline tags never glue or split words), Unicode NFKC, whitespace collapsed;
- links: a canonical URL (lowercase scheme and host, default port and fragment dropped,
  tracking parameters removed, query parameters sorted);
- dates: UTC; a missing date is taken from first sight, a date more than a day in the future
  is clamped to now; either is flagged (`date_flag`);
- identity: decided in `entry_identity` (its precedence is written there) and enforced by
  the store's unique index; a GUID is keyed by the feed's id, never its address;
- fingerprint: hashes and MinHash of the item's match text (dedupe.match_text: clutter and the
  feed's own header and footer lines left out); what is stored is the text as published.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

import nh3

from worker.dedupe import Clutter, fingerprint, match_text
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from worker.clock import start_of_day
from worker.models import Item, SeedDoc
from worker import parse
from worker.parse import Entry

# ── text ─────────────────────────────────────────────────────────────────────────────────────

_BLANK_LINES = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# What each structural tag becomes in plain text; every other tag vanishes, keeping its text.
_PARAGRAPH_TAGS = (  # separated by a blank line
    "p", "div", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "pre", "section",
    "article", "header", "footer", "aside", "nav", "hr", "figure", "figcaption", "dl", "main", "address",
    "details", "summary", "center", "form", "fieldset", "legend", "hgroup", "listing", "xmp", "menu", "dir",
    "dialog", "search", "option",
)
_LINE_TAGS = ("br", "li", "tr", "dt", "dd")  # start a new line
_CELL_TAGS = ("td", "th")  # a space between cells
# Inline tags the parser keeps only when the item may hide some content with the `hidden`
# attribute, so that it is seen on them; they vanish like the rest.
_INLINE_TAGS = (
    "a", "abbr", "b", "bdi", "bdo", "big", "button", "caption", "cite", "code", "data", "del", "dfn", "em",
    "font", "i", "ins", "kbd", "label", "mark", "meter", "nobr", "optgroup", "output", "progress",
    "q", "rb", "rp", "rt", "rtc", "ruby", "s", "samp", "select", "small", "span", "strike", "strong", "sub",
    "sup", "tbody", "textarea", "tfoot", "thead", "time", "tt", "u", "var",
)
# Elements whose content a reader never sees, dropped with everything inside them, closed or not;
# among them what a browser shows only when it cannot play or draw the element (the fallback of
# <video>, <audio>, <canvas>), a <datalist>'s suggestions and MathML's annotations (a formula's TeX).
# <object>'s fallback stays: browsers show it for the plugins they no longer run.
_HIDDEN_TAGS = (
    "script", "style", "noscript", "template", "iframe", "svg", "head", "title", "noembed", "noframes",
    "video", "audio", "canvas", "datalist", "annotation", "annotation-xml",
)


def _mark_hidden(element: str, attribute: str, value: str) -> str | None:
    """The attributes the parser keeps (`hidden`, a <dialog>'s `open`) as bare marks for
    `_drop_hidden`; hidden="until-found" is content a reader can reveal, so it is kept as text."""
    return None if attribute == "hidden" and value.lower() == "until-found" else ""


# The parsing is html5ever's (through nh3), as a browser parses: an unclosed <script>, <style> or
# comment runs to the end, "</" inside a script is script, entities are decoded once. Its output
# keeps only the tags above, bare, and escapes every "<" of the text (but inside <xmp>, see _XMP), so
# the patterns below read the parser's output, never the feed's markup. <math> is kept so that its
# text is (MathML's own tags vanish inside it: "E=mc2"); without it the parser drops MathML whole.
_STRUCTURE = nh3.Cleaner(
    tags=set(_PARAGRAPH_TAGS + _LINE_TAGS + _CELL_TAGS + ("math",)),
    clean_content_tags=set(_HIDDEN_TAGS),
    attributes={"*": set()},  # none: by default ammonia keeps "lang" and "title" on every tag
    strip_comments=True,
    link_rel=None,
)
# The same, keeping more tags and marks of what they hide (` hidden=""`, ` open=""`) for
# `_drop_hidden`: for an item that may use them, as the rest need not pay for its longer output.
_MARKED = nh3.Cleaner(
    tags=set(_PARAGRAPH_TAGS + _LINE_TAGS + _CELL_TAGS + ("math",) + _INLINE_TAGS),
    clean_content_tags=set(_HIDDEN_TAGS),
    attributes={"*": {"hidden"}, "dialog": {"open"}},
    attribute_filter=_mark_hidden,
    strip_comments=True,
    link_rel=None,
)
# Whether an item may use them: a quick look, two scans at the speed of str.find (a case-insensitive
# search costs as much as the parse). Both are HTML5's, written in lower case; "HIDDEN" goes unseen.
_MAY_HIDE = ("idden", "ialog")
_PARAGRAPH = re.compile(f"</?(?:{'|'.join(_PARAGRAPH_TAGS)})>")
_LINE = re.compile(f"<(?:{'|'.join(_LINE_TAGS)})>")
_CELL = re.compile(f"</?(?:{'|'.join(_CELL_TAGS)})>")
_TAG = re.compile(r"</?[a-z0-9]+>")  # the rest: closing tags of _LINE_TAGS, <math>, inline tags
_XMP = re.compile(r"<xmp>(.*?)</xmp>", re.S)  # its text comes out as the feed wrote it, unescaped
_OUTPUT_TAG = re.compile(r"<(/?)([a-z0-9-]+)([^>]*)>")

def clean_text(text: str) -> str:
    """NFKC, control characters removed, spaces collapsed within lines, at most one blank line.

    str.split() rather than a regex collapses the spaces: this runs on every item, and a regex
    over 2 KB of text cost 56 µs where split and join cost 9.
    """
    text = unicodedata.normalize("NFKC", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = "\n".join(" ".join(line.split()) for line in text.split("\n"))
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment, as a browser shows it: block elements become line breaks,
    inline ones vanish; scripts, styles, comments and other hidden content never appear.

    A CDATA section in HTML is a comment up to its first ">" (as in browsers), so one holding
    no ">" vanishes whole and one wrapping an article keeps the article's text.
    """
    if "<" not in markup and "&" not in markup:
        return clean_text(markup)
    marked = _MAY_HIDE[0] in markup or _MAY_HIDE[1] in markup
    text = (_MARKED if marked else _STRUCTURE).clean(markup)
    if "<xmp>" in text:
        text = _XMP.sub(lambda m: f"<xmp>{html.escape(m.group(1), quote=False)}</xmp>", text)
    if marked:
        text = _drop_hidden(text)
    text = _PARAGRAPH.sub("\n\n", text)
    text = _LINE.sub("\n", text)
    text = _CELL.sub(" ", text)
    text = _TAG.sub("", text)
    return clean_text(html.unescape(text))


def _drop_hidden(text: str) -> str:
    """_MARKED's output without the elements marked hidden and the closed <dialog>s, each with all it
    holds, and without the marks; its tags are balanced (only <br> and <hr> are void), so a count of
    the depth finds where each ends."""
    if 'hidden=""' not in text and "<dialog" not in text:
        return text
    pieces: list[str] = []
    depth, hidden_at, done = 0, -1, 0
    for found in _OUTPUT_TAG.finditer(text):
        closing, name, marks = found.groups()
        if name in ("br", "hr"):
            continue
        if closing:
            depth -= 1
            if depth == hidden_at:
                hidden_at, done = -1, found.end()
        else:
            if hidden_at < 0 and ("hidden" in marks or (name == "dialog" and "open" not in marks)):
                pieces.append(text[done:found.start()])
                hidden_at = depth
            depth += 1
    pieces.append(text[done:] if hidden_at < 0 else "")
    return "".join(pieces).replace(' open=""', "")


MAX_TITLE = 1000  # characters: a longer headline is a hostile or broken feed, cut with "…"


def clean_title(markup: str) -> str:
    """A headline as plain text, at most MAX_TITLE characters."""
    title = html_to_text(markup)
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1].rstrip() + "…"


def content_hash(title: str, text: str) -> str:
    """sha256 of a title and body as `clean_text` leaves them, insensitive to whitespace."""
    words = " ".join(title.split()) + "\n" + " ".join(text.split())
    return hashlib.sha256(words.encode("utf-8")).hexdigest()


# ── links ────────────────────────────────────────────────────────────────────────────────────

TRACKING_PARAMS = {
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid",
    "mc_cid", "mc_eid", "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id",
    "ocid", "cmpid", "at_medium", "at_campaign", "at_custom1", "at_custom2", "at_custom3", "at_custom4",
}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_tracking_param(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith("utm_") or lowered in TRACKING_PARAMS


def canonical_url(url: str | None) -> str | None:
    """One spelling of a link: the same article's links compare equal once canonical."""
    if not url or not url.strip():
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme or not host:
        return url.strip()
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_tracking_param(k)))
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


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
    title = clean_title(entry.title) or "(untitled)"
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
        publisher=doc.publisher,
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
    title, text = clean_text(title) or "(untitled)", clean_text(text)
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
