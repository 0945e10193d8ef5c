"""Parsing: every fixture in tests/feeds/ says what it tests and what to expect.

XML and HTML fixtures carry a comment with `Description:` and `Expect:` lines (a Python
expression over `feed`) or a `Raises:` line; JSON fixtures carry the same under "_test".
Drop a file in the folder to add a case.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import feedparser
import pytest

from worker import errors
from worker.sources.parse import advertised_feeds, legacy_guid, parse_feed
from tests.legacy_guids import feed as legacy_feed

FIXTURES = Path(__file__).parent / "feeds"


def expectations(path: Path) -> tuple[list[str], str | None]:
    if path.suffix == ".json":
        test = json.loads(path.read_text(encoding="utf-8"))["_test"]
        expect = test.get("expect", [])
        return ([expect] if isinstance(expect, str) else expect), test.get("raises")
    text = path.read_bytes().decode("utf-8", errors="replace")  # the comment is UTF-8 in every fixture
    raises = re.search(r"^Raises: (.+)$", text, re.M)
    return re.findall(r"^Expect: (.+)$", text, re.M), raises.group(1) if raises else None


@pytest.mark.parametrize("path", sorted(FIXTURES.iterdir()), ids=lambda p: p.name)
def test_fixture(path: Path) -> None:
    expect, raises = expectations(path)
    assert expect or raises, f"{path.name} states no expectation"
    url = "https://site.example/page" if path.suffix == ".html" else ""
    if raises:
        name, message = raises.split(": ", 1)
        with pytest.raises(getattr(errors, name)) as err:
            parse_feed(path.read_bytes(), url=url)
        assert str(err.value) == message or str(err.value).startswith(message)
        return
    feed = parse_feed(path.read_bytes(), url=url)
    for line in expect:
        assert eval(line, {"dt": dt, "feed": feed}), f"{path.name}: {line}"


def _rss(items: str, end: str = "</channel></rss>") -> bytes:
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}{end}'.encode()


def test_a_document_cut_short_inside_an_entry_leaves_that_entry_out() -> None:
    whole = "".join(f"<item><guid>g{n}</guid><title>T{n}</title><description>{'word ' * 50}end{n}</description></item>"
                    for n in range(3))
    complete = parse_feed(_rss(whole))
    assert [e.guid for e in complete.entries] == ["g0", "g1", "g2"] and complete.warning is None
    cut = _rss(whole, end="")[:-40]  # a download stopped inside the last description
    feed = parse_feed(cut)
    assert [e.guid for e in feed.entries] == ["g0", "g1"] and feed.left_out == 1
    assert feed.warning is not None and feed.warning.endswith("the document ends inside its last entry (cut short?): "
                                                              "that entry was left out")
    # Cut after its last entry, or missing only its closing tags, it keeps every entry.
    for ended in (_rss(whole, end=""), _rss(whole, end="</channel>"), _rss(whole + "<item><guid>g3</guid></item>")):
        assert len(parse_feed(ended).entries) >= 3 and parse_feed(ended).left_out == 0
    assert parse_feed(_rss(whole + '<item rdf:about="x"/>', end="")).left_out == 0  # closed by itself


def test_an_empty_body_is_a_parse_error() -> None:
    with pytest.raises(errors.ParseError, match="empty body"):
        parse_feed(b"  \n")


def test_json_garbage_with_a_feed_content_type_is_a_parse_error() -> None:
    with pytest.raises(errors.ParseError, match="invalid JSON"):
        parse_feed(b"{not json at all", content_type="application/feed+json")


def test_plain_text_is_not_a_feed() -> None:
    with pytest.raises(errors.ParseError, match="not a feed"):
        parse_feed(b"hello, this is not xml", content_type="text/plain")


def test_html_served_as_xml_is_still_recognised() -> None:
    page = b"<html><head><link rel='alternate' type='application/rss+xml' href='feed.xml'></head></html>"
    with pytest.raises(errors.NotAFeed) as err:
        parse_feed(page, content_type="application/xml", url="https://a.example/dir/")
    assert err.value.advertised == ("https://a.example/dir/feed.xml",)


@pytest.mark.parametrize("page", [
    b"<HEAD><TITLE>Document Moved</TITLE></HEAD><BODY><H1>Object Moved</H1>This document may be found "
    b'<a HREF="https://a.example/new.xml">here</a></BODY>',
    b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- served by x -->\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN">'
    b'<html xmlns="http://www.w3.org/1999/xhtml"><body>Moved</body></html>',
    b"  <title>Moved</title>",
])
def test_an_html_page_served_as_xml_is_called_an_html_page(page: bytes) -> None:
    with pytest.raises(errors.NotAFeed, match="HTML page"):
        parse_feed(page, content_type="text/xml", url="https://a.example/")


def test_advertised_feeds_ignore_other_links() -> None:
    page = b'<link rel="alternate" hreflang="fr" href="/fr/"><link rel="ALTERNATE" type="application/atom+xml" href="a.xml">'
    assert advertised_feeds(page, "https://b.example/") == ("https://b.example/a.xml",)


def test_the_response_content_type_charset_is_used() -> None:
    body = "<?xml version='1.0'?><rss version='2.0'><channel><title>t</title><item><title>Ça va</title></item></channel></rss>"
    feed = parse_feed(body.encode("cp1252"), content_type="application/rss+xml; charset=windows-1252")
    assert feed.entries[0].title == "Ça va"


def test_guids_are_kept_as_written_and_links_made_absolute() -> None:
    """feedparser resolves an RSS <guid> (unless isPermaLink="false") and an Atom <id> against the
    document's address; a bare GUID must stay bare, or a feed that moves changes every identity."""
    rss = (b'<rss version="2.0"><channel><title>t</title><link>/home</link>'
           b"<item><guid>item-17</guid><title>a</title><link>../a/17</link></item>"
           b"<item><guid>17</guid><title>b</title></item>"  # no link: the GUID is taken for one
           b"<item><guid>https://b.example/x</guid><title>c</title></item></channel></rss>")
    feed = parse_feed(rss, url="https://a.example/feeds/rss.xml")
    assert [e.guid for e in feed.entries] == ["item-17", "17", "https://b.example/x"]
    assert [e.link for e in feed.entries] == ["https://a.example/a/17", "https://a.example/feeds/17", "https://b.example/x"]
    assert feed.site_url == "https://a.example/home"
    atom = (b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>f</id>'
            b'<entry><id>item-18</id><title>a</title><link href="18.html"/></entry></feed>')
    entry = parse_feed(atom, url="https://a.example/feeds/atom.xml").entries[0]
    assert (entry.guid, entry.link) == ("item-18", "https://a.example/feeds/18.html")


def test_legacy_guid_is_the_guid_as_feedparser_read_it_given_the_address() -> None:
    """What versions before migration 0010 keyed (feedparser given the document's address as
    content-location) is legacy_guid of the GUID as written, for every form of GUID; a GUID the
    feed says is no permalink was kept as written, which the store looks up first (its key)."""
    url = "http://127.0.0.1:8999/feeds/news.xml"
    atom = (b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="/blog/"><title>t</title><id>f</id>'
            b"<entry><id>../2</id><title>b</title></entry><entry><id>#3</id><title>c</title></entry>"
            b"<entry><id>  spaced  </id><title>d</title></entry><entry><id>http:///x/y</id><title>e</title></entry>"
            b"</feed>")
    for body in (legacy_feed("http://127.0.0.1:8999"), atom):
        then = feedparser.parse(body, response_headers={"content-location": url}, sanitize_html=False,
                                resolve_relative_uris=False)
        now = parse_feed(body, url=url).entries
        assert len(then.entries) == len(now) > 3
        for old, entry in zip(then.entries, now):
            assert entry.guid and entry.guid_base == url
            assert old.id == (entry.guid if "posts/22" == entry.guid else legacy_guid(entry.guid, url))
    assert parse_feed(b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "17"}]}',
                      url=url).entries[0].guid_base is None  # JSON Feed ids were never resolved


@pytest.mark.parametrize(("written", "utc"), [
    ("Sáb, 05 Dez 2026 10:00:00 -0300", "2026-12-05T13:00:00+00:00"),  # Portuguese
    ("sáb., 05 dic. 2026 10:00:00 +0100", "2026-12-05T09:00:00+00:00"),  # Spanish
    ("jeu., 03 févr. 2022 08:30:00 +0100", "2022-02-03T07:30:00+00:00"),  # French
    ("Mo, 14 Mär 2022 23:15:00 +0200", "2022-03-14T21:15:00+00:00"),  # German
    ("5 de março de 2024 às 09h30", "2024-03-05T09:30:00+00:00"),  # Portuguese prose, no zone: UTC
    ("lun, 07 ott 2024 12:00:00 GMT", "2024-10-07T12:00:00+00:00"),  # Italian
])
def test_dates_written_in_other_languages_are_read(written: str, utc: str) -> None:
    body = (f"<rss version='2.0'><channel><title>t</title><item><guid>1</guid><title>x</title>"
            f"<pubDate>{written}</pubDate></item></channel></rss>").encode()
    [entry] = parse_feed(body, content_type="application/rss+xml").entries
    assert entry.published is not None and entry.published.isoformat() == utc


@pytest.mark.parametrize("written", ["31 Fev 2024 10:00", "05 Foo 2024 10:00", "no date", "05 Dez 2026 10:00 +9999"])
def test_a_foreign_date_that_is_no_date_leaves_the_item_undated(written: str) -> None:
    body = (f"<rss version='2.0'><channel><title>t</title><item><guid>1</guid><title>x</title>"
            f"<pubDate>{written}</pubDate></item></channel></rss>").encode()
    [entry] = parse_feed(body, content_type="application/rss+xml").entries
    assert entry.published is None
