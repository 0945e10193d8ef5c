"""A feed whose GUIDs take every form an older version keyed by its address (or did not).

Before migration 0010, feedparser was given the address a feed was read from and resolved an
RSS <guid> (unless isPermaLink="false") or an Atom <id> against it: "posts/17" read at
{server}/feeds/news.xml was keyed feed:1:guid:{server}/feeds/posts/17, while a GUID the feed
writes as a URL was kept. tests/data/legacy-guids-*.sql hold the stores that version wrote from
this feed; tests/test_legacy_guids.py upgrades them and polls the feed again.

No import of `worker`: tests/data/make_legacy_guids.py loads this file by path to make those
stores with the older version (see there).
"""

from __future__ import annotations

from collections.abc import Iterable

NEWS = "/feeds/news.xml"  # where the feed is read
MOVED = "/v2/news.rss"  # where it moves (a 301): another folder, so a GUID resolved there differs

# name → (GUID as the feed writes it, link, title, publication date). "{server}" is the feed
# server's address ("{https}": the same address with https). "pruned" is dated 2020: the older
# version pruned it (retention 365 days), leaving its tombstones.
FORMS: dict[str, tuple[str, str, str, str]] = {
    # URLs the feed writes itself, in its own folder, that are not the item's link as written
    "short-link": ("{server}/feeds/12345", "{server}/news/2026/delegation-arrives",
                   "Delegation arrives in Pyongyang for talks", "Fri, 20 Nov 2026 08:00:00 GMT"),
    "trailing-slash": ("{server}/feeds/story-b", "{server}/feeds/story-b/",
                       "Trade fair opens in Dandong with record exhibitors", "Fri, 20 Nov 2026 09:00:00 GMT"),
    "http-https": ("{server}/feeds/story-c", "{https}/feeds/story-c",
                   "Rail link timetable published for the spring", "Fri, 20 Nov 2026 10:00:00 GMT"),
    # relative GUIDs: the older version made URLs of them against the feed's address
    "relative-path": ("posts/17", "https://news.example/ministers",
                      "Ministers sign a cultural exchange plan", "Fri, 20 Nov 2026 11:00:00 GMT"),
    "root-relative": ("/posts/18", "https://news.example/ceremony",
                      "Friendship Year closing ceremony date set", "Sat, 21 Nov 2026 08:00:00 GMT"),
    "query": ("item?id=19", "https://news.example/bridge",
              "New bridge over the Yalu opens to freight", "Sat, 21 Nov 2026 09:00:00 GMT"),
    "fragment": ("#20", "https://news.example/airline",
                 "Airline resumes flights between the two capitals", "Sat, 21 Nov 2026 10:00:00 GMT"),
    "dot-dot": ("../21", "https://news.example/students",
                "Exchange students return to Beijing universities", "Sat, 21 Nov 2026 11:00:00 GMT"),
    "bare": ("abc-123", "https://news.example/fisheries",
             "Fisheries talks end without an agreement", "Sun, 22 Nov 2026 08:00:00 GMT"),
    # never resolved: a URN, and a GUID the feed says is no permalink
    "urn": ("urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", "https://news.example/tourism",
            "Tourism agency plans group tours for the summer", "Sun, 22 Nov 2026 09:00:00 GMT"),
    "not-a-permalink": ("posts/22", "https://news.example/orchestra",
                        "Orchestra tours three cities in the north", "Sun, 22 Nov 2026 10:00:00 GMT"),
    # gone from the store (pruned), its tombstones kept
    "pruned": ("posts/16", "https://news.example/crossing",
               "Border crossing reopens after four years", "Mon, 06 Jan 2020 08:00:00 GMT"),
}


def feed(server: str, names: Iterable[str] = FORMS, *, edited: Iterable[str] = ()) -> bytes:
    """The feed, RSS 2.0, with its entries `names`; the GUIDs without isPermaLink (so feedparser
    resolved them), but "not-a-permalink". An `edited` entry's text gained a sentence."""
    https = server.replace("http://", "https://", 1)
    changed = set(edited)
    items = []
    for name in names:
        guid, link, title, date = (v.replace("{server}", server).replace("{https}", https) for v in FORMS[name])
        text = f"<p>{title}. The news desk reports the story in full, with what each side said about it.</p>"
        text += "<p>Officials confirmed the report on Monday.</p>" if name in changed else ""
        permalink = ' isPermaLink="false"' if name == "not-a-permalink" else ""
        items.append(f"<item><title>{title}</title><link>{link}</link><guid{permalink}>{guid}</guid>"
                     f"<description><![CDATA[{text}]]></description><pubDate>{date}</pubDate></item>")
    return ('<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>News</title>'
            f"<link>https://news.example/</link>{''.join(items)}</channel></rss>").encode()
