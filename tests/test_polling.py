"""Polling cycles end to end: a real HTTP server on 127.0.0.1, a real SQLite file, the real pipeline."""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from worker import cycle, pipeline, schedule, store
from worker.pipeline import FeedReport, Prepared, Runtime
from worker.store import find_items
from tests.conftest import NOW, Cli, World
from tests.feedserver import FeedServer, Reply, Seen, rss

ONE = rss([("g1", "First story", "<p>One</p>"), ("g2", "Second story", "<p>Two</p>")])
TWO = rss([("h1", "Other one", "<p>Uno</p>")], title="Other")


def test_a_cycle_stores_new_items_and_a_second_cycle_stores_nothing(world: Callable[..., World]) -> None:
    w = world("/one", "/two")
    w.server.routes["/one"] = lambda seen: Reply(304) if seen.headers.get("if-none-match") == '"1"' else Reply(body=ONE, headers={"ETag": '"1"'})
    w.server.routes["/two"] = Reply(body=TWO, headers={"Last-Modified": "Mon, 16 Dec 2024 08:00:00 GMT"})
    first = w.poll()
    assert first.new_items == 3 and first.count("new") == 2
    before = [(r["identity"], r["title"]) for r in w.items()]
    assert ("feed:1:guid:g1", "First story") in before

    second = w.poll(force=True)
    assert second.new_items == 0 and second.count("not_modified") == 2  # a 304 and the same body
    assert [(r["identity"], r["title"]) for r in w.items()] == before
    fetches = list(w.db.query("SELECT kind, status, new_items FROM fetches ORDER BY id"))
    assert [f["kind"] for f in fetches] == ["new", "new", "not_modified", "not_modified"]
    assert w.server.requests[-2].headers.get("if-none-match") == '"1"' or w.server.requests[-1].headers.get("if-none-match") == '"1"'



def test_feeds_that_answer_304_are_stored_a_few_transactions_at_a_time(world: Callable[..., World],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """304s complete a few at a time; each is cheap to store, a transaction is not. Quiet feeds
    wait (QUIET_LINGER) for others to share theirs. The linger is long here so that a busy
    machine's slow fetches still fall within it."""
    paths = [f"/f{n}" for n in range(40)]
    w = world(*paths)
    for n, path in enumerate(paths):
        w.server.routes[path] = (lambda n: lambda seen: Reply(304) if seen.headers.get("if-none-match") == f'"{n}"'
                                 else Reply(body=rss([(f"g{n}", f"Story {n}", f"<p>Body {n}.</p>")]),
                                            headers={"ETag": f'"{n}"'}))(n)
    assert w.poll().new_items == 40
    monkeypatch.setattr(cycle, "QUIET_LINGER", 2.0)
    statements: list[str] = []
    w.db.conn.set_trace_callback(statements.append)
    report = w.poll(force=True)
    w.db.conn.set_trace_callback(None)
    assert report.count("not_modified") == 40
    assert 1 <= statements.count("BEGIN IMMEDIATE") <= 3
    assert w.db.execute("SELECT count(*) FROM fetches WHERE kind = 'not_modified'").fetchone()[0] == 40

def test_a_stop_while_another_process_holds_the_store_ends_in_seconds_and_loses_nothing(
        world: Callable[..., World]) -> None:
    """The writer waits for the lock to store a feed when the stop comes: it gives up within
    STOPPING_LOCK_WAIT all told, not the store's 3 × 30 s for each feed in flight (then as long
    again to record the cycle), which outlasted systemd's stop timeout. The feeds are reported
    stopped and stored next time."""
    paths = [f"/f{n}" for n in range(8)]
    w = world(*paths, extra="max_connections = 8\nmax_per_host = 8")
    for n, path in enumerate(paths):
        w.server.routes[path] = Reply(body=rss([(f"g{n}", f"Story {n}", f"<p>Body {n}.</p>")]),
                                      headers={"ETag": f'"{n}"'})
    rt = w.rt
    other = sqlite3.connect(w.config.parent / "sw.db")
    other.execute("BEGIN IMMEDIATE")
    stopped_at: list[float] = []

    def stop_once_fetched() -> None:
        deadline = time.monotonic() + 60
        while len(set(w.server.paths())) < len(paths) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # fetched, parsed: the writer waits for the lock
        stopped_at.append(time.monotonic())
        rt.stop.set()

    stopper = threading.Thread(target=stop_once_fetched)
    stopper.start()
    try:
        report = schedule.run_once(rt)
        assert time.monotonic() - stopped_at[0] < 12  # 2 s a feed would be 16 s
    finally:
        stopper.join()
        other.rollback()
        other.close()
    assert report.stopped == len(paths) and report.new_items == 0
    assert w.db.execute("SELECT count(*) FROM items").fetchone()[0] == 0
    assert all(w.feed(path)["last_polled_at"] is None for path in paths)  # as they were: due, fetched whole again
    rt.close()
    w._rt = None
    assert w.poll().new_items == len(paths)
    assert all("if-none-match" not in r.headers for r in w.server.requests[-len(paths):])


def test_only_due_feeds_are_polled(world: Callable[..., World]) -> None:
    w = world("/one")
    w.server.routes["/one"] = Reply(body=ONE)
    w.poll()
    assert w.poll().reports == ()  # nothing is due a second later
    w.clock.advance(dt.timedelta(minutes=31))
    assert len(w.poll().reports) == 1
    assert w.feed("/one")["next_poll_at"] == "2026-11-23T13:01:00Z"  # 12:31 + the 30 minute interval
    # The tick that comes seconds before a feed is due polls it: its due time counts from its
    # fetch, seconds into the cycle before, and it was polled at every other tick.
    w.clock.advance(dt.timedelta(minutes=30) - dt.timedelta(seconds=10))
    assert len(w.poll().reports) == 1
    w.clock.advance(dt.timedelta(minutes=29))
    assert w.poll().reports == ()  # not a minute early


def test_no_cache_ignores_the_validators(world: Callable[..., World]) -> None:
    w = world("/one")
    w.server.routes["/one"] = Reply(body=ONE, headers={"ETag": '"1"'})
    w.poll()
    w.poll(force=True, no_cache=True)
    assert "if-none-match" not in w.server.requests[-1].headers
    w.poll(force=True)
    assert w.server.requests[-1].headers["if-none-match"] == '"1"'


def test_errors_back_off_exponentially_and_success_resets(world: Callable[..., World]) -> None:
    w = world("/flaky")
    w.server.routes["/flaky"] = Reply(500)
    for n in (1, 2, 3):
        report = w.poll(force=True)
        assert report.count("error") == 1
        feed = w.feed("/flaky")
        assert feed["error_count"] == n and feed["last_status"] == 500 and "HTTP 500" in str(feed["last_error"])
        wait = dt.datetime.fromisoformat(str(feed["next_poll_at"]).replace("Z", "+00:00")) - w.clock()
        expected = dt.timedelta(minutes=30) * 2**n
        assert expected * 0.89 <= wait <= expected * 1.11
    for _ in range(10):
        w.poll(force=True)
    wait = dt.datetime.fromisoformat(str(w.feed("/flaky")["next_poll_at"]).replace("Z", "+00:00")) - w.clock()
    assert wait <= dt.timedelta(hours=24) * 1.1  # capped, and still scheduled: never given up
    w.server.routes["/flaky"] = Reply(body=ONE)
    w.poll(force=True)
    feed = w.feed("/flaky")
    assert feed["error_count"] == 0 and feed["last_error"] is None and feed["last_status"] == 200


def test_feeds_queued_behind_their_host_do_not_time_out(tmp_path: Path) -> None:
    """Twenty feeds on one host that answers every request in 0.25 s, two at a time (max_per_host),
    with a 1.5 s deadline: the last pair waits at least 9 × 0.25 = 2.25 s for a slot, which used to
    count against its deadline ("timed out reading the response"). Each answer takes 0.25 s of
    the 1.5 s allowed once the slot is taken, a wide margin on a busy machine."""

    def slow(seen: Seen) -> Reply:
        time.sleep(0.25)
        name = seen.path.strip("/")
        return Reply(body=rss([(name, f"Story {name}", f"<p>Body of {name}</p>")], title=name))

    with FeedServer() as server:
        paths = [f"/f{n}" for n in range(20)]
        for path in paths:
            server.routes[path] = slow
        feeds = "".join(f'[[feeds]]\nurl = "{server.url(p)}"\n' for p in paths)
        config = tmp_path / "storywatch.toml"
        config.write_text(f'[storage]\npath = "sw.db"\n[fetch]\ntimeout = 1.5\nmax_per_host = 2\n'
                          f"max_connections = 32\nparse_processes = 1\n{feeds}", encoding="utf-8")
        w = World(server, config)
        try:
            report = w.poll()
            errors = [r["last_error"] for r in w.db.query("SELECT last_error FROM feeds WHERE last_error IS NOT NULL")]
            assert errors == [] and report.count("error") == 0
            assert report.new_items == 20 and len(server.requests) == 20
        finally:
            w.rt.close()


# Item bodies that once leaked hidden content into the stored text; each hides one marker word.
LEAKY = {
    "script": "<p>Kept script.</p><script>var leakedscript = '<p>x</p>';",
    "style": "<p>Kept style.</p><style>.leakedstyle { color: red }",
    "comment": "<p>Kept comment.</p><!-- leakedcomment <p>hidden</p>",
    "cdata": "<p>Kept cdata.</p><![CDATA[ leakedcdata ]]><script>//<![CDATA[\nleakedinner();\n//]]></script>",
    "hidden": "<p>Kept hidden.</p><noscript>leakednoscript</noscript><template>leakedtemplate</template><iframe>leakediframe",
}


def test_a_cycle_past_its_limit_defers_the_feeds_left_to_the_next(world: Callable[..., World]) -> None:
    """[fetch] cycle_limit: no feed starts after it; the feeds left are "deferred" (not failed,
    nothing written, still due) and the next cycle polls them."""
    import dataclasses

    paths = [f"/f{i}" for i in range(5)]
    w = world(*paths)

    def after_two_seconds(body: bytes) -> Callable[[], list[bytes]]:
        return lambda: (time.sleep(2), [body])[1]

    for i, path in enumerate(paths):
        w.server.routes[path] = Reply(body=after_two_seconds(rss([(str(i), f"Story {i}", "<p>x</p>")])))
    w.rt.settings = dataclasses.replace(w.rt.settings, fetch=dataclasses.replace(w.rt.settings.fetch, max_connections=1))
    # One thread: one feed runs, one waits for the thread; at the limit the waiting one is
    # deferred too (it ran past the limit, as did every feed queued: 32 by default).
    first = w.poll(limit=dt.timedelta(seconds=1))
    assert (first.count("new"), first.count("deferred"), first.failed, first.stopped) == (1, 4, 0, 0)
    assert "4 deferred (the cycle reached [fetch] cycle_limit" in first.summary()
    deferred = {r.feed.url for r in first.reports if r.outcome == "deferred"}
    second = w.poll()  # the same moment: only the deferred feeds are still due
    assert {r.feed.url for r in second.reports} == deferred and second.count("new") == 4
    assert len(w.items()) == 5


def test_hidden_markup_never_reaches_the_store_or_search(world: Callable[..., World]) -> None:
    """Each body is escaped into the RSS (no CDATA wrapper: the bodies hold "]]>"), parsed by
    feedparser, normalized and stored; text, summary and the full-text index hold none of it."""
    w = world("/leaky")
    items = "".join(f'<item><guid isPermaLink="false">{name}</guid><title>Leaky {name}</title>'
                    f"<description>{html.escape(body)}</description></item>" for name, body in LEAKY.items())
    w.server.routes["/leaky"] = Reply(body=f'<rss version="2.0"><channel><title>Leaky</title>{items}</channel></rss>'.encode())
    assert w.poll().new_items == len(LEAKY)
    stored = {str(r["guid"]): (r["text"], r["summary"]) for r in w.items()}
    assert stored == {name: (f"Kept {name}.", "") for name in LEAKY}
    markers = ["leakedscript", "leakedstyle", "leakedcomment", "leakedcdata", "leakedinner", "leakednoscript",
               "leakedtemplate", "leakediframe"]
    assert [m for m in markers if find_items(w.db, search=m)] == []
    assert len(find_items(w.db, search="Kept")) == len(LEAKY)  # the index holds the items themselves


def test_one_bad_feed_never_stops_the_others(world: Callable[..., World]) -> None:
    w = world("/empty", "/html", "/good", "/garbage")
    w.server.routes["/empty"] = Reply(body=b"")
    w.server.routes["/html"] = Reply(
        body=b'<!doctype html><html><head><link rel="alternate" type="application/rss+xml" href="/good"></head></html>',
        headers={"Content-Type": "text/html"},
    )
    w.server.routes["/good"] = Reply(body=ONE)
    w.server.routes["/garbage"] = Reply(body=b"{nope", headers={"Content-Type": "application/feed+json"})
    report = w.poll()
    assert report.count("error") == 3 and report.new_items == 2
    assert "empty body" in str(w.feed("/empty")["last_error"])
    assert f"not a feed: the address returned an HTML page; it advertises: {w.server.url('/good')}" == w.feed("/html")["last_error"]
    assert "invalid JSON" in str(w.feed("/garbage")["last_error"])


def test_json_feed_and_malformed_xml_with_entries_are_stored(world: Callable[..., World], log_records: list[dict[str, object]]) -> None:
    w = world("/json", "/broken")
    w.server.routes["/json"] = Reply(
        body=json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "J",
                         "items": [{"id": "j1", "url": "https://j.example/1", "title": "Json one", "content_text": "x"}]}).encode(),
        headers={"Content-Type": "application/feed+json"},
    )
    w.server.routes["/broken"] = Reply(body=(Path(__file__).parent / "feeds" / "malformed_with_entries.xml").read_bytes())
    report = w.poll()
    assert report.new_items == 3 and report.count("error") == 0
    assert any(r["level"] == "WARNING" and "malformed but readable" in str(r["message"]) for r in log_records)


def test_duplicate_guids_fall_back_to_links(world: Callable[..., World]) -> None:
    w = world("/dupes")
    w.server.routes["/dupes"] = Reply(body=(Path(__file__).parent / "feeds" / "duplicate_guids.xml").read_bytes())
    w.poll()
    assert [r["identity"] for r in w.items()] == [f"feed:1:url:https://dupes.example/{n}" for n in (1, 2, 3)]
    assert w.feed("/dupes")["identity_policy"] == "url"
    w.poll(force=True, no_cache=True)
    assert len(w.items()) == 3


def test_a_feed_whose_guids_turn_bad_does_not_duplicate_its_items(world: Callable[..., World]) -> None:
    w = world("/f")
    w.server.routes["/f"] = Reply(body=rss([("a", "A", "one"), ("b", "B", "two")]))
    w.poll()
    w.server.routes["/f"] = Reply(body=rss([("a", "A", "one"), ("", "B", "two"), ("c", "C", "three")]))  # b lost its GUID
    w.poll(force=True)
    assert sorted(r["title"] for r in w.items()) == ["A", "B", "C"]


def test_a_feed_of_entries_without_guids_under_one_link_keeps_each_new_entry(world: Callable[..., World]) -> None:
    """A release-notes feed: no GUIDs, every entry links to one page, so entries are told apart
    by their content; the link an earlier entry has is no sign that a new one was stored."""
    def releases(*numbers: int) -> bytes:
        items = "".join(f"<item><title>Release {n} of the widget</title><link>https://w.example/news.html</link>"
                        f"<description>Release {n} brings feature {n} and fixes bug {n}.</description>"
                        f"<pubDate>Mon, 0{n} Dec 2024 10:00:00 GMT</pubDate></item>" for n in numbers)
        return f'<?xml version="1.0"?><rss version="2.0"><channel><title>W</title>{items}</channel></rss>'.encode()

    w = world("/w")
    w.server.routes["/w"] = Reply(body=releases(2, 1))
    w.poll()
    assert w.feed("/w")["identity_policy"] == "content"
    w.server.routes["/w"] = Reply(body=releases(4, 3, 2, 1))
    report = w.poll(force=True, no_cache=True)
    assert report.new_items == 2
    assert sorted(r["title"] for r in w.items()) == [f"Release {n} of the widget" for n in (1, 2, 3, 4)]


def test_no_guids_and_no_dates(world: Callable[..., World]) -> None:
    w = world("/bare")
    w.server.routes["/bare"] = Reply(body=(Path(__file__).parent / "feeds" / "no_guids_no_dates.xml").read_bytes())
    w.poll()
    items = w.items()
    assert len(items) == 3
    assert items[0]["identity"].startswith("feed:1:content:")  # one entry has no link: the content decides
    assert all(r["published_at"] == "2026-11-23T12:00:00Z" and r["date_flag"] == "missing" for r in items)
    w.poll(force=True, no_cache=True)
    assert len(w.items()) == 3


def test_permanent_redirect_rewrites_the_feed_and_config_sync_keeps_the_alias(world: Callable[..., World]) -> None:
    w = world("/old")
    w.server.routes["/old"] = Reply(301, headers={"Location": "/new"})
    w.server.routes["/new"] = Reply(body=ONE)
    w.poll()
    feed = w.feed("/old")
    assert feed["url"] == w.server.url("/new") and feed["config_url"] == w.server.url("/old")
    counts = store.sync_feeds(w.db, w.rt.settings.feeds, w.clock())  # the config still says /old
    assert counts == {"added": 0, "updated": 0, "removed": 0}
    assert w.db["feeds"].count == 1
    w.poll(force=True)
    assert w.server.paths()[-1] == "/new"  # the old address is not asked again


def test_gone_disables_the_feed_with_a_reason(world: Callable[..., World], seeded_config: Path) -> None:
    w = world("/gone")
    w.server.routes["/gone"] = Reply(410)
    assert w.poll().count("gone") == 1
    feed = w.feed("/gone")
    assert str(feed["disabled_reason"]).startswith("gone: HTTP 410") and feed["next_poll_at"] is None
    assert w.poll(force=True).reports == ()  # not polled any more
    status = Cli(w.config)("status").output
    assert "disabled: gone: HTTP 410" in status
    w.server.routes["/gone"] = Reply(body=ONE)  # back: polling it by hand re-enables it
    w.poll(feed_url=w.server.url("/gone"))
    assert w.feed("/gone")["disabled_reason"] is None


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limits_wait_without_counting_as_errors(world: Callable[..., World], status: int) -> None:
    w = world("/busy")
    w.server.routes["/busy"] = Reply(status, headers={"Retry-After": "7200"})
    assert w.poll().count("rate_limited") == 1
    feed = w.feed("/busy")
    assert feed["error_count"] == 0 and feed["last_status"] == status
    assert str(feed["next_poll_at"]) >= "2026-11-23T14:00:00Z"
    assert "rate limited until" in Cli(w.config)("feeds", "list").output


def test_ttl_and_max_age_are_lower_bounds(world: Callable[..., World]) -> None:
    w = world("/ttl", "/cache")
    w.server.routes["/ttl"] = Reply(body=rss([("t", "T", "x")], extra="<ttl>180</ttl>"))
    w.server.routes["/cache"] = Reply(body=ONE, headers={"Cache-Control": "public, max-age=7200"})
    w.poll()
    assert w.feed("/ttl")["next_poll_at"] == "2026-11-23T15:00:00Z"
    assert w.feed("/cache")["next_poll_at"] == "2026-11-23T14:00:00Z"


def test_an_empty_feed_after_items_deletes_nothing(world: Callable[..., World]) -> None:
    w = world("/f")
    w.server.routes["/f"] = Reply(body=ONE)
    w.poll()
    w.server.routes["/f"] = Reply(body=(Path(__file__).parent / "feeds" / "empty_channel.xml").read_bytes())
    report = w.poll(force=True)
    assert report.count("new") == 1 and report.new_items == 0
    assert len(w.items()) == 2


def test_a_feed_listing_one_entry_twice_stores_it_once(world: Callable[..., World]) -> None:
    w = world("/twice")
    w.server.routes["/twice"] = Reply(body=rss([("", "Same", "same body"), ("", "Same", "same body")]))
    w.poll()
    assert len(w.items()) == 1


def test_adaptive_intervals_follow_the_publishing_rate(world: Callable[..., World]) -> None:
    w = world("/busy", "/quiet", extra="adaptive = true")
    recent = "".join(
        f"<item><guid>b{n}</guid><title>T{n}</title><pubDate>{(NOW - dt.timedelta(hours=n)).strftime('%a, %d %b %Y %H:%M:%S GMT')}</pubDate></item>"
        for n in range(1, 85)
    )
    w.server.routes["/busy"] = Reply(body=f'<rss version="2.0"><channel><title>B</title>{recent}</channel></rss>'.encode())
    w.server.routes["/quiet"] = Reply(body=rss([("q", "Old", "x")]))  # dated 2024: nothing this week
    w.poll()
    assert w.feed("/busy")["next_poll_at"] == "2026-11-23T14:00:00Z"  # 7 days / 84 entries = 2 h
    assert w.feed("/quiet")["next_poll_at"] == "2026-11-24T12:00:00Z"  # none: the longest wait


def test_feeds_list_json_and_cli_commands(world: Callable[..., World], tmp_path: Path) -> None:
    w = world("/one")
    w.server.routes["/one"] = Reply(body=ONE)
    cli = Cli(w.config)
    out = cli("poll").output
    assert "new      2    feed /one" in out and "1 feed polled" in out
    listed = json.loads(cli("feeds", "list", "--json").output)
    assert listed[0]["url"] == w.server.url("/one") and listed[0]["items"] == 2
    assert {"url", "name", "items", "last_status", "last_error", "error_count", "next_poll_at", "disabled_reason"} <= set(listed[0])

    assert "Added" in cli("feeds", "add", "https://extra.example/rss", "--name", "Extra", "--tag", "x", "--no-check").output
    assert "Already known" in cli("feeds", "add", "https://extra.example/rss").output
    assert cli("feeds", "add", "ftp://x", ok=False).exit_code == 2

    exported = cli("feeds", "export").output
    assert 'xmlUrl="https://extra.example/rss"' in exported and 'category="x"' in exported
    opml_file = tmp_path / "subs.opml"
    opml_file.write_text(
        '<?xml version="1.0"?><opml version="2.0"><head/><body><outline text="Korea">'
        '<outline text="Yonhap" xmlUrl="https://en.yna.co.kr/RSS/nk.xml"/>'
        '<outline text="Dup" xmlUrl="https://extra.example/rss"/></outline></body></opml>'
    )
    assert "1 feed added, 1 already known" in cli("feeds", "import", str(opml_file)).output
    yonhap = [f for f in json.loads(cli("feeds", "list", "--json").output) if "yna" in f["url"]][0]
    assert yonhap["tags"] == ["Korea"] and yonhap["origin"] == "opml"
    assert cli("poll", "--feed", "https://nowhere.example/", ok=False).exit_code == 1


def test_terminal_escapes_and_bidi_controls_from_a_feed_reach_no_output(world: Callable[..., World]) -> None:
    """A channel title with ESC sequences (set the terminal's title, clear its screen) and
    U+202E, an author and an item title with them, and a server's error message quoting them:
    status, feeds list, items and the digest show them as plain spaces."""
    import re as regex

    w = world("/evil", "/moved")
    channel = "Pub&#x1b;]0;PWNED&#x7;&#x1b;[2J&#x202e;lanruoJ"
    w.server.routes["/evil"] = Reply(body=rss(
        [("1", "Headline &#x1b;[31mred&#x1b;[0m &#x202e;desrever", "<p>Body</p>")], title=channel,
        extra="<managingEditor>Ed&#x1b;[2J</managingEditor>"))
    w.server.routes["/moved"] = Reply(302, headers={"Location": "gopher\x1b]0;PWNED\x07://x.example/"})
    w.poll()
    cli = Cli(w.config)
    outputs = [cli(*args, ok=False).output for args in (["status"], ["feeds", "list"], ["feeds", "list", "--json"],
                                                        ["items"], ["digest", "--stdout"])]
    outputs.append(json.dumps([dict(r) for r in w.db.query("SELECT title, last_error FROM feeds")]))
    unsafe = regex.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]|\\\\u001b|\\\\u202e")
    for output in outputs:
        assert not unsafe.search(output), output
    assert "Pub ]0;PWNED [2J lanruoJ" in outputs[-1]  # the stored title, as feeds without a name show it
    assert any("Headline [31mred [0m desrever" in output for output in outputs)


def test_a_password_in_a_feed_url_is_used_and_never_shown(tmp_path: Path, log_records: list[dict[str, object]]) -> None:
    """url = "http://reader:PASSWORD@host/feed": the request logs in (Authorization header), and
    logs, status, feeds list (and --json), config check and the digest's Sources show reader:****."""
    import base64

    with FeedServer() as server:
        server.routes["/feed"] = Reply(body=rss([("1", "One", "<p>x</p>")]))
        server.routes["/broken"] = Reply(500)
        config = tmp_path / "storywatch.toml"
        good, bad = (server.url(p).replace("http://", "http://reader:S3cretPW@") for p in ("/feed", "/broken"))
        config.write_text(f'[storage]\npath = "sw.db"\n[fetch]\nparse_processes = 1\n'
                          f'[[feeds]]\nurl = "{good}"\n[[feeds]]\nurl = "{bad}"\n')
        cli = Cli(config)
        outputs = [cli("poll", ok=False).output]
        sent = [seen.headers.get("authorization", "") for seen in server.requests]
        added = cli("feeds", "add", server.url("/feed").replace("http://", "http://other:An0therPW@").replace("/feed", "/feed2"), "--no-check")
        assert "other:****@" in added.output and "An0therPW" not in added.output
        again = cli("poll", "--feed", good.replace("S3cretPW", "****"), ok=False)  # as feeds list shows it
        assert again.exit_code == 0 and "S3cretPW" not in again.output, again.output
    assert f"Basic {base64.b64encode(b'reader:S3cretPW').decode()}" in sent
    outputs += [cli(*args, ok=False).output for args in (["status"], ["feeds", "list"], ["feeds", "list", "--json"],
                                                         ["config", "check"], ["digest", "--stdout"], ["health"])]
    outputs += [json.dumps(record, default=str) for record in log_records]
    assert all("S3cretPW" not in output for output in outputs), [o for o in outputs if "S3cretPW" in o]
    assert any("reader:****@127.0.0.1" in output for output in outputs[1:4])


def test_a_password_is_masked_in_errors_backfill_and_whatever_it_holds(tmp_path: Path) -> None:
    """Errors that quote the feed's address (a redirect loop, the feeds an HTML page advertises),
    backfill's summary, and a password holding '@' (masked to the authority's last '@')."""
    from worker.safetext import without_password

    assert without_password("http://reader:p@ss@host/x and https://a:b@c/") == "http://reader:****@host/x and https://a:****@c/"
    with FeedServer() as server:
        server.routes["/loop"] = Reply(302, headers={"Location": "/loop"})
        server.routes["/page"] = Reply(body=b'<html><head><link rel="alternate" type="application/rss+xml" href="feed.xml">'
                                            b"</head></html>", headers={"Content-Type": "text/html"})
        config = tmp_path / "storywatch.toml"
        loop, page = (server.url(p).replace("http://", "http://reader:S3cret@PW@") for p in ("/loop", "/page"))
        config.write_text(f'[storage]\npath = "sw.db"\n[fetch]\nparse_processes = 1\n'
                          f'[[feeds]]\nurl = "{loop}"\n[[feeds]]\nurl = "{page}"\n')
        cli = Cli(config)
        outputs = [cli("poll", ok=False).output, cli("status", ok=False).output, cli("feeds", "list", "--json").output,
                   cli("config", "check").output, cli("backfill", loop, page, "--json", ok=False).output]
    assert "redirect loop" in outputs[0] and "advertises" in outputs[0]
    assert all("S3cret" not in output and "@PW@" not in output for output in outputs), outputs


def test_absurd_freshness_and_placeholder_dates_do_not_block_a_feed(world: Callable[..., World]) -> None:
    w = world("/cache", "/json", "/rss")
    w.server.routes["/cache"] = Reply(body=ONE, headers={"Cache-Control": "max-age=99999999999999999999"})
    items = [{"id": f"j{n}", "title": f"Dated {when}", "content_text": f"Story {n}.", "date_published": when}
             for n, when in enumerate(["9999-12-31T23:59:59Z", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00Z",
                                       "2024-01-05T10:00:00Z"])]
    w.server.routes["/json"] = Reply(body=json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "J",
                                                      "items": items}).encode(),
                                     headers={"Content-Type": "application/feed+json"})
    w.server.routes["/rss"] = Reply(body=rss([("r0", "Far", "<p>Far away.</p>")], date="Fri, 31 Dec 9999 23:59:59 -2359"))
    w.poll()
    assert w.feed("/cache")["error_count"] == 0 and w.feed("/json")["error_count"] == 0 and w.feed("/rss")["error_count"] == 0
    stored = {row["title"]: row["published_at"] for row in w.items()}
    assert len(stored) == 2 + 4 + 1
    assert stored["Dated 2024-01-05T10:00:00Z"] == "2024-01-05T10:00:00Z"
    assert all(stored[f"Dated {when}"] == stored["Far"] for when in ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"))
    assert w.feed("/cache")["next_poll_at"] < "2027"  # fresh for a year at most: polled again within the cap


def test_an_empty_feed_name_or_an_output_without_its_folder_is_refused_before_polling(
    world: Callable[..., World], tmp_path: Path
) -> None:
    """`poll --feed ""` names no feed (it is not "every due feed", nor a whole cycle for `health`),
    and `-o` into a folder that does not exist is refused before any feed is polled."""
    w = world("/one")
    w.server.routes["/one"] = Reply(body=ONE)
    cli = Cli(w.config)
    empty = cli("poll", "--feed", "", ok=False)
    assert empty.exit_code == 1 and "no feed" in empty.output, empty.output
    missing = cli("poll", "-o", str(tmp_path / "nowhere" / "out.txt"), ok=False)
    assert missing.exit_code == 1 and "No such file or directory" in missing.output, missing.output
    assert w.server.requests == []
    assert w.db.execute("SELECT count(*) FROM fetches").fetchone()[0] == 0
    assert w.db.execute("SELECT count(*) FROM cycles").fetchone()[0] == 0


def test_parsed_feeds_wait_for_a_slow_writer_in_bounded_number(world: Callable[..., World],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Fetching and parsing run ahead of the writer by a few feeds only (cycle.parsed_ahead): a
    parsed feed holds its items (a megabyte or so) until it is stored."""
    paths = [f"/f{n}" for n in range(12)]
    w = world(*paths)
    for n, path in enumerate(paths):
        w.server.routes[path] = Reply(body=rss([(f"g{n}-{k}", f"Story {n} {k}", f"<p>Body {n} {k} of feed {n}.</p>")
                                                for k in range(3)]))
    lock = threading.Lock()
    waiting, most = [0], [0]
    parse = pipeline.parse_entries

    def counted(*args: Any) -> Any:
        parsed = parse(*args)
        with lock:
            waiting[0] += 1
            most[0] = max(most[0], waiting[0])
        return parsed

    store_together = cycle._ingest_together

    def slow_writer(rt: Runtime, prepared: Sequence[Prepared]) -> list[FeedReport]:
        time.sleep(0.05)  # the fetch threads would meanwhile parse every feed, unbounded
        reports = store_together(rt, prepared)
        with lock:
            waiting[0] -= sum(p.parsed is not None for p in prepared)
        return reports

    monkeypatch.setattr(pipeline, "parse_entries", counted)
    monkeypatch.setattr(cycle, "_ingest_together", slow_writer)
    report = w.poll()
    assert report.new_items == 36 and waiting[0] == 0
    assert w.rt.parser.processes == 1 and 1 <= most[0] <= 2  # two a parsing process (cycle.parsed_ahead)


def test_a_cycle_whose_writer_stops_early_leaves_no_fetch_thread_waiting(world: Callable[..., World]) -> None:
    """The writer gone (an error, a closed generator) while feeds wait to be parsed: the cycle's
    threads still end, so the cycle returns instead of hanging."""
    paths = [f"/f{n}" for n in range(10)]
    w = world(*paths)
    for n, path in enumerate(paths):
        w.server.routes[path] = Reply(body=rss([(f"g{n}", f"Story {n}", f"<p>Body of story {n}.</p>")]))
    feeds = store.feeds_to_poll(w.db, w.clock(), force=True)
    polling = cycle._poll(w.rt, feeds, False, math.inf)
    first = next(polling)
    closing = threading.Thread(target=polling.close, daemon=True)  # the pool is shut down and waited for here
    closing.start()
    closing.join(60)  # a regression fails here instead of hanging the suite
    assert not closing.is_alive(), "a fetch thread waits on the writer that has gone"
    assert first.outcome == "new"


def test_a_feed_that_fails_after_its_parse_gives_its_permit_back(world: Callable[..., World]) -> None:
    """Whatever fails between a feed's parse and its return to the writer (here a log sink that
    raises on the feed's warning) hands its parsed-ahead permit back: more such feeds than permits
    must not leave the rest of the cycle waiting for one."""
    paths = [f"/m{n}" for n in range(4)]
    w = world(*paths)  # one parsing process: two permits
    body = (Path(__file__).parent / "feeds" / "malformed_with_entries.xml").read_bytes()
    for path in paths:
        w.server.routes[path] = Reply(body=body)

    def failing_sink(message: Any) -> None:
        if "malformed but readable" in message.record["message"]:
            raise RuntimeError("the log sink failed")

    sink = logger.add(failing_sink, level="WARNING", catch=False)
    try:
        reports: list[FeedReport] = []
        polling = cycle._poll(w.rt, store.feeds_to_poll(w.db, w.clock(), force=True), False, math.inf)
        worker = threading.Thread(target=lambda: reports.extend(polling), daemon=True)
        worker.start()
        worker.join(60)
    finally:
        logger.remove(sink)
    assert not worker.is_alive(), "the cycle waits for a permit that was never given back"
    assert [r.outcome for r in reports] == ["error"] * 4


class _Libc:
    """Stands in for glibc: counts trims."""

    def __init__(self) -> None:
        self.trims = 0

    def malloc_trim(self, pad: int) -> int:
        self.trims += 1
        return 1


def test_freed_memory_is_handed_back_at_most_every_quarter_second(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = _Libc()
    monkeypatch.setattr(cycle, "_libc", lambda: libc)
    monkeypatch.setattr(cycle, "_trimmed_at", time.monotonic() - 1.0)
    for _ in range(50):  # a burst of stored batches
        cycle.release_free_memory()
    assert libc.trims == 1
    monkeypatch.setattr(cycle, "_trimmed_at", time.monotonic() - 0.3)
    cycle.release_free_memory()
    assert libc.trims == 2


def test_handing_back_memory_is_a_no_op_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    class NotGlibc:  # musl, macOS: no malloc_trim
        pass

    monkeypatch.setattr(cycle, "_libc", lambda: NotGlibc())
    monkeypatch.setattr(cycle, "_trimmed_at", time.monotonic() - 1.0)
    cycle.release_free_memory()  # no error
    cycle.share_malloc_arenas.__wrapped__()  # not the cached call: it ran with the real libc, once
