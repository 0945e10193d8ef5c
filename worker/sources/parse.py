"""Parse: bytes and headers → entries. feedparser for RSS/Atom/RDF, our own reader for JSON Feed.

feedparser is only ever given bytes (never a URL: it has no timeout of its own), with the
response's content type as `response_headers` so encodings resolve. It is not given the feed's
address: it would resolve entry GUIDs against it ("item-17" read at https://a.example/feeds/rss
became https://a.example/feeds/item-17), so a feed that moved would give every entry a new
identity. Entry GUIDs are kept as the feed writes them; relative links are made absolute here,
against the address the body came from. Each XML entry keeps that address (`guid_base`), so the
writer can find a row an older version stored under the GUID made into a URL (`legacy_guid`).
HTML is not sanitized here (`sanitize_html=False`): the digest sanitizes at output.

A feed that is malformed but still yields entries is accepted, with feedparser's complaint
kept as a warning; if it ends inside an entry (cut short), that entry is left out. No entries
and a parse failure is a ParseError; an HTML page is a NotAFeed error listing the feed URLs the
page advertises.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import re
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from worker.errors import NotAFeed, ParseError
from worker.localdates import parse_localized_date
from worker.safetext import one_line, url_text

JSON_FEED_VERSIONS = ("https://jsonfeed.org/version/1", "https://jsonfeed.org/version/1.1")
_JSON_TYPES = ("application/feed+json", "application/json")


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry as the feed gives it: HTML left as HTML, dates as aware UTC datetimes."""

    guid: str | None  # as the feed writes it: a bare GUID ("item-17") is never made a URL
    link: str | None  # absolute
    title: str
    content_html: str
    summary_html: str
    author: str = ""
    published: dt.datetime | None = None
    updated: dt.datetime | None = None
    tags: tuple[str, ...] = ()
    guid_base: str | None = None  # XML feeds: the address the older versions resolved the GUID against (legacy_guid)


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    format: str  # "rss20", "atom10", "rdf", "json1.1", …
    title: str
    site_url: str | None
    entries: tuple[Entry, ...]
    ttl: dt.timedelta | None = None  # RSS <ttl>: the publisher's minimum time between polls
    warning: str | None = None  # what was wrong with a feed we could still read
    language: str = ""
    self_url: str | None = None  # the feed's own address, as it gives it (rel="self", feed_url)
    next_url: str | None = None  # paged feeds: the next page (rel="next", next_url)
    prev_archive_url: str | None = None  # RFC 5005 archived feeds: the previous archive document
    left_out: int = 0  # entries read but left out: the last one, when the document ends inside it


def parse_feed(body: bytes, *, content_type: str = "", url: str = "") -> ParsedFeed:
    """Read a feed body of any supported format; raises ParseError or NotAFeed."""
    if not body.strip():
        raise ParseError("empty body: the server sent no feed")
    if _looks_like_json(body, content_type):
        return parse_json_feed(body, url)
    return _parse_xml_feed(body, content_type, url)


def _looks_like_json(body: bytes, content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media in _JSON_TYPES or body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


# ── RSS, Atom, RDF ───────────────────────────────────────────────────────────────────────────


def _parse_xml_feed(body: bytes, content_type: str, url: str) -> ParsedFeed:
    headers: dict[str, str] = {}  # no content-location (see above); a document's own xml:base still applies
    content_type = _trust_utf8(body, content_type)
    if content_type:
        headers["content-type"] = content_type
    import feedparser  # here, not above: the writer imports this module for its keys and never parses

    parsed = feedparser.parse(
        _repair_char_refs(body), response_headers=headers, sanitize_html=False, resolve_relative_uris=False
    )
    problem = _bozo_reason(parsed) if _is_parse_failure(parsed) else None
    readable = parsed.get("version") and problem is None
    if not parsed.entries and not readable:
        _raise_not_a_feed(body, content_type, url, problem)
    entries, left_out = parsed.entries, 0
    if problem and entries and _cut_short(body):  # a revision of a stored entry would lose its end
        entries, left_out = entries[:-1], 1
        problem = f"{problem}; {CUT_SHORT}"
    feed = parsed.feed
    return ParsedFeed(
        format=parsed.get("version") or "unknown",
        title=_text(feed.get("title")),
        site_url=_absolute(url, feed.get("link")),
        entries=tuple(_entry(e, url) for e in entries),
        ttl=_ttl(feed.get("ttl")),
        warning=problem,
        language=_text(feed.get("language")),
        self_url=_link(feed, "self", url),
        next_url=_link(feed, "next", url),
        prev_archive_url=_link(feed, "prev-archive", url),
        left_out=left_out,
    )


_CHAR_REF = re.compile(rb"&#([xX][0-9a-fA-F]+|[0-9]+);")
_REPLACEMENT_REF = b"&#xFFFD;"


def _repair_char_refs(body: bytes) -> bytes:
    """Character references to no character (a lone surrogate, past U+10FFFF) as U+FFFD.

    feedparser's fallback parser turns `&#xD800;` into a string it then fails to encode, and
    `&#x110000;` into a ValueError: one such reference in one entry would fail the whole feed.
    """
    wide = _wide_encoding(body)
    if wide:  # the byte pattern cannot see references spelt in two or four bytes a character
        try:
            narrow = body.decode(wide).encode("utf-8")
        except UnicodeError:
            return body  # feedparser reports the broken encoding
        return _CHAR_REF.sub(_repaired_ref, narrow).decode("utf-8").encode(wide)
    if b"&#" not in body:
        return body
    return _CHAR_REF.sub(_repaired_ref, body)


# how an XML document in UTF-16 or UTF-32 begins: a byte-order mark, or "<" spelt in that encoding
_WIDE_STARTS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
                (b"\xfe\xff", "utf-16"), (b"<\x00\x00\x00", "utf-32-le"), (b"\x00\x00\x00<", "utf-32-be"),
                (b"<\x00", "utf-16-le"), (b"\x00<", "utf-16-be"))


def _wide_encoding(body: bytes) -> str | None:
    return next((encoding for start, encoding in _WIDE_STARTS if body.startswith(start)), None)


def _repaired_ref(match: re.Match[bytes]) -> bytes:
    digits = match.group(1)
    code = int(digits[1:], 16) if digits[:1] in (b"x", b"X") else int(digits)
    return _REPLACEMENT_REF if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF else match.group(0)


_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([^\";\s]+)\"?", re.I)


def _trust_utf8(body: bytes, content_type: str) -> str:
    """The content type, without its charset when that charset is wrong for a UTF-8 body.

    Servers often declare a legacy charset (iso-8859-1) for feeds written in UTF-8, and the HTTP
    charset overrides the XML declaration: "Café" would be stored as "CafÃ©". A body that is valid
    UTF-8 and holds non-ASCII bytes is UTF-8 (legacy text is almost never valid UTF-8 by chance).
    """
    match = _CHARSET.search(content_type)
    if not match or match.group(1).lower().startswith("utf") or body.isascii():
        return content_type
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return content_type
    return _CHARSET.sub("", content_type)


def _link(feed: Any, rel: str, base: str) -> str | None:
    """The href of the feed's first <link rel=…> (Atom, or atom:link inside RSS), made absolute."""
    for link in feed.get("links", ()):
        if link.get("rel") == rel and link.get("href"):
            try:
                return urljoin(base, str(link["href"]))
            except ValueError:  # "http://[::1/x": kept as written, the fetch of it fails alone
                return str(link["href"])
    return None


CUT_SHORT = "the document ends inside its last entry (cut short?): that entry was left out"
_ENTRY_TAG = re.compile(rb"<(/?)(?:[A-Za-z_][\w.-]*:)?(?:item|entry)(?=[\s>/])", re.I)


def _cut_short(body: bytes) -> bool:
    """Whether an XML feed ends inside an entry (a download or copy cut short): its last <item>
    or <entry> is never closed, and feedparser's lenient parser returns it cut. UTF-16 and
    UTF-32 bodies are not checked."""
    if _wide_encoding(body):
        return False
    last = None
    for last in _ENTRY_TAG.finditer(body):
        pass
    if last is None or last.group(1):  # no entry, or the last tag is an end tag
        return False
    tag_end = body.find(b">", last.end())
    return tag_end >= 0 and body[tag_end - 1:tag_end] != b"/"  # a whole opening tag, not <item/>


def _is_parse_failure(parsed: Any) -> bool:
    import feedparser

    # feedparser flags these although the document parsed fine (a missing or wrong content type,
    # an encoding it had to guess): with a recognised version they are warnings, not failures.
    benign = (feedparser.NonXMLContentType, feedparser.CharacterEncodingOverride)
    return bool(parsed.get("bozo")) and not isinstance(parsed.get("bozo_exception"), benign)


def _bozo_reason(parsed: Any) -> str:
    exc = parsed.get("bozo_exception")
    return f"{type(exc).__name__}: {exc}" if exc else "malformed feed"


def _absolute(base: str, link: Any) -> str | None:
    """A link made absolute against the address the document came from (None: no link)."""
    if not link or not isinstance(link, str):
        return None
    try:
        return urljoin(base, link) if base else link
    except ValueError:  # an unreadable address ("http://[::1"): as feedparser did, no link
        return None


_SCHEME_SLASHES = re.compile("^([A-Za-z][A-Za-z0-9+-.]*://)(/*)(.*?)")


def legacy_guid(guid: str, base: str) -> str | None:
    """The GUID of an XML feed's entry as versions before migration 0010 read it from a document
    at `base`: feedparser, given that address, resolved an RSS <guid> and an Atom <id> against it
    ("posts/17" read at https://a.example/feeds/rss became https://a.example/feeds/posts/17, "#20"
    https://a.example/feeds/rss#20); a URL stays as it is. The join behaves as feedparser's did:
    the slashes after a scheme are collapsed, an unreadable URL is none (None).

    An RSS <guid isPermaLink="false"> was left as written: the same text, whether it was is not
    known from the entry, so a caller looks it up both ways, as written first.
    """
    guid = _SCHEME_SLASHES.sub(r"\1\3", guid)
    try:
        return urljoin(base, guid) or None
    except ValueError:
        return None


def _entry(e: Any, base: str) -> Entry:
    content = e.get("content") or []
    content_html = max((c.get("value", "") for c in content), key=len, default="")
    summary_html = e.get("summary", "") or ""
    return Entry(
        guid=e.get("id") or None,
        link=_absolute(base, e.get("link")),
        title=_text(e.get("title")),
        content_html=content_html or summary_html,
        summary_html=summary_html if content_html else "",
        author=_text(e.get("author")),
        published=_from_struct(_raw(e, "published_parsed") or _raw(e, "updated_parsed") or _raw(e, "created_parsed"))
        or _localized(e, "published") or _localized(e, "updated"),
        updated=_from_struct(_raw(e, "updated_parsed")) or _localized(e, "updated"),
        tags=tuple(one_line(t["term"]) for t in e.get("tags", []) if isinstance(t.get("term"), str) and t["term"].strip()),
        guid_base=base or None,
    )


def _raw(entry: Any, key: str) -> Any:
    """A field as feedparser stored it, bypassing its deprecated key aliases (and their warnings)."""
    return dict.get(entry, key)


def _localized(entry: Any, key: str) -> dt.datetime | None:
    """A date feedparser could not read, written in another language (see localdates)."""
    value = _raw(entry, key)
    if not isinstance(value, str) or _raw(entry, f"{key}_parsed"):
        return None
    try:
        return _plausible(parse_localized_date(value))
    except (OverflowError, ValueError):
        return None


def _from_struct(value: time.struct_time | None) -> dt.datetime | None:
    """feedparser's dates are UTC struct_times; out-of-range ones are dropped, not fatal."""
    if not value:
        return None
    try:
        return _plausible(dt.datetime.fromtimestamp(calendar.timegm(value), dt.timezone.utc))
    except (OverflowError, ValueError, OSError):
        return None


EARLIEST, LATEST = dt.datetime(1800, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2200, 1, 1, tzinfo=dt.timezone.utc)


def _plausible(when: dt.datetime | None) -> dt.datetime | None:
    """A date an article can have; year 1 or 9999 is a placeholder, read as no date (the item
    is dated when it was first seen), so that the windows around it stay within the calendar."""
    return when if when is not None and EARLIEST <= when < LATEST else None


def _ttl(value: Any) -> dt.timedelta | None:
    try:
        minutes = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return dt.timedelta(minutes=minutes) if 0 < minutes <= 7 * 24 * 60 else None


def _text(value: Any) -> str:
    """A feed's or an entry's label (title, author) as one safe line (see safetext)."""
    return one_line(value) if isinstance(value, str) else ""


# A page's first element, after an XML declaration, comments and a doctype: servers send bare
# "<HEAD><TITLE>Document Moved</TITLE>" pages as text/xml.
_HTML_START = re.compile(
    rb"(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*|<!doctype[^>]*>\s*)*<(?:!doctype\s+html|html|head|body|title|meta)\b",
    re.I | re.S)


def _raise_not_a_feed(body: bytes, content_type: str, url: str, problem: str | None) -> None:
    if "html" in content_type.lower() or _HTML_START.match(body[:4096]):
        links = advertised_feeds(body, url)
        listed = ("; it advertises: " + ", ".join(links)) if links else "; it advertises no feed"
        raise NotAFeed(f"not a feed: the address returned an HTML page{listed}", advertised=links)
    raise ParseError(f"not a feed: {problem or 'no RSS, Atom or RDF document found'}")


class _FeedLinks(HTMLParser):
    FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json", "application/rdf+xml", "application/json")

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): (v or "") for k, v in attrs}
        rels = values.get("rel", "").lower().split()
        if tag == "link" and "alternate" in rels and values.get("type", "").lower() in self.FEED_TYPES:
            if values.get("href"):
                self.hrefs.append(values["href"].strip())


MAX_ADVERTISED = 10


def advertised_feeds(html: bytes, base_url: str) -> tuple[str, ...]:
    """Feed URLs an HTML page lists in <link rel="alternate" type="…">, made absolute."""
    finder = _FeedLinks()
    try:
        finder.feed(html[:512 * 1024].decode("utf-8", errors="replace"))
    except Exception:  # a broken page: whatever was found so far
        pass
    found = (_web_address(base_url, href) for href in finder.hrefs)
    return tuple(dict.fromkeys(u for u in found if u))[:MAX_ADVERTISED]  # a page may list a thousand


def _web_address(base_url: str, href: str) -> str | None:
    """`href` made absolute, if it is an http(s) address (not javascript: or data:), shown inert."""
    try:
        address = urljoin(base_url, href)
        parts = urlsplit(address)
    except ValueError:
        return None
    web = parts.scheme.lower() in ("http", "https") and parts.netloc
    return url_text(address).replace(" ", "%20") if web else None  # a space is no part of an address


# ── JSON Feed 1.0 / 1.1 ──────────────────────────────────────────────────────────────────────


def parse_json_feed(body: bytes, url: str = "") -> ParsedFeed:
    """A JSON Feed (https://jsonfeed.org/version/1.1) into the same entries as XML feeds."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParseError(f"not a feed: invalid JSON ({exc})") from None
    except RecursionError:
        raise ParseError("not a feed: invalid JSON (nested deeper than the reader allows)") from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(JSON_FEED_VERSIONS[0]):
        raise ParseError("not a feed: JSON without a JSON Feed version (https://jsonfeed.org/version/1…)")
    items = doc.get("items")
    if not isinstance(items, list):
        raise ParseError("not a feed: JSON Feed without an items list")
    base = _str(doc.get("feed_url")) or url
    version = "json1.1" if doc["version"].endswith("1.1") else "json1"
    return ParsedFeed(
        format=version,
        title=one_line(_str(doc.get("title"))),
        site_url=_str(doc.get("home_page_url")) or None,
        entries=tuple(_json_entry(item, base) for item in items if isinstance(item, dict)),
        language=_str(doc.get("language")),
        self_url=_str(doc.get("feed_url")) or None,
        next_url=_absolute(base, _str(doc.get("next_url"))),
    )


def _json_entry(item: dict[str, Any], base: str) -> Entry:
    link = _str(item.get("url")) or _str(item.get("external_url"))
    html = _str(item.get("content_html"))
    text = _str(item.get("content_text"))
    summary = _str(item.get("summary"))
    content = html or _escape_text(text) or _escape_text(summary)
    return Entry(
        guid=_str(item.get("id")) or None,
        link=_absolute(base, link),
        title=one_line(_str(item.get("title"))),
        content_html=content,
        summary_html=_escape_text(summary) if (html or text) else "",
        author=_json_author(item),
        published=_json_date(item.get("date_published")) or _json_date(item.get("date_modified")),
        updated=_json_date(item.get("date_modified")),
        tags=tuple(one_line(_str(t)) for t in item.get("tags", []) if isinstance(t, str)) if isinstance(item.get("tags"), list) else (),
    )


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _str(value: Any) -> str:
    """A JSON string as text. JSON may escape lone surrogates ("\\ud800"), which no store or
    output can encode: each becomes U+FFFD, so one such entry never fails its whole feed."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # JSON Feed ids are strings, but some feeds write numbers
    return _LONE_SURROGATE.sub("\ufffd", value.strip()) if isinstance(value, str) else ""


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _json_author(item: dict[str, Any]) -> str:
    authors = item.get("authors")
    if not isinstance(authors, list):
        authors = [item.get("author")]
    names = [one_line(_str(a.get("name"))) for a in authors if isinstance(a, dict)]
    return ", ".join(n for n in names if n)


_RFC3339_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def _json_date(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = _RFC3339_FRACTION.sub(r"\1", value.strip().replace("z", "Z"))
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return _plausible((parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc))
    except (ValueError, OverflowError):  # 9999-12-31T23:59-23:59 is past the last date there is, in UTC
        return None
