"""Day-to-day changes from the command line, on a real store and a feed server on loopback:
feeds removed, disabled, enabled and edited; storylines paused, resumed, edited and removed;
suggestions dismissed; what the config declares is changed there."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

from sqlite_utils import Database

from tests.conftest import Cli, World
from tests.feedserver import Reply, rss
from worker import store
from worker.config import load_settings

BRIDGE = [("b0", "Tarn bridge closed for repairs", "<p>The Tarn bridge at Albi closed on Monday after cracks were found.</p>"),
          ("b1", "Ferry replaces the Tarn bridge", "<p>A ferry crosses the river while the Tarn bridge is shut, the town hall said.</p>"),
          ("b2", "Tarn bridge repairs to cost more", "<p>Engineers said repairs of the Tarn bridge will cost twice the estimate.</p>")]
MARKETS = [(f"m{n}", f"Markets report {n}", f"<p>Prices at the covered market of Albi, report number {n}.</p>")
           for n in range(3)]


def served(world: World) -> Cli:
    """The config feed /a (markets) and a feed added from the command line, /b (the bridge)."""
    world.server.routes["/a"] = Reply(body=rss(MARKETS, title="Albi markets"))
    world.server.routes["/b"] = Reply(body=rss(BRIDGE, title="Bridge news"))
    run = Cli(world.config)
    run("init")
    run("feeds", "add", world.server.url("/b"), "--name", "Bridge", "--tag", "albi")
    return run


def db_of(world: World) -> Database:
    return store.open_store(load_settings(world.config).storage.path)


def polled_paths(world: World, run: Cli) -> list[str]:
    world.server.requests.clear()
    run("poll", "--force")
    return sorted(world.server.paths())


def error(result: object) -> str:
    output = str(getattr(result, "output"))
    assert getattr(result, "exit_code") == 1 and output.count("\n") == 1, output
    return output


def test_a_removed_feed_is_not_polled_or_listed_and_its_items_stay(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    assert polled_paths(w, run) == ["/a", "/b"]
    asked = run("feeds", "remove", "Bridge", ok=False)  # no answer to the question: nothing is done
    assert asked.exit_code == 1 and "Remove " + w.server.url("/b") + "? Its 3 items stay." in asked.output
    assert polled_paths(w, run) == ["/a", "/b"]

    assert "its items stay" in run("feeds", "remove", w.server.url("/b"), "--yes").output
    assert polled_paths(w, run) == ["/a"]
    assert "Bridge" not in run("feeds", "list").output
    found = json.loads(run("items", "--search", "Tarn bridge", "--json").output)
    assert len(found) == 3 and {i["publisher"] for i in found} == {"Bridge"}  # under the removed feed's name
    assert "was removed" in error(run("poll", "--feed", w.server.url("/b"), ok=False))
    assert "removed already" in error(run("feeds", "remove", w.server.url("/b"), "--yes", ok=False))

    assert "Added" in run("feeds", "add", w.server.url("/b")).output  # back, with its items: none twice
    assert polled_paths(w, run) == ["/a", "/b"]
    assert db_of(w).execute("SELECT count(*) FROM items").fetchone()[0] == 6


def test_a_feed_of_the_config_is_removed_and_edited_in_the_config(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    for args in (["feeds", "remove", "feed /a", "--yes"], ["feeds", "edit", w.server.url("/a"), "--name", "x"]):
        line = error(run(*args, ok=False))
        assert f"is declared in {w.config}" in line and "[[feeds]]" in line


def test_a_disabled_feed_stays_disabled_across_restarts_until_enabled(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    assert "Disabled" in run("feeds", "disable", "feed /a").output
    assert "disabled already" in run("feeds", "disable", "feed /a").output
    run("init")  # the config is read again, as at a restart
    assert polled_paths(w, run) == ["/b"]
    listed = {f["name"]: f for f in json.loads(run("feeds", "list", "--json").output)}
    assert listed["feed /a"]["disabled_reason"] == store.DISABLED_BY_YOU
    assert "Enabled" in run("feeds", "enable", "feed /a").output
    assert polled_paths(w, run) == ["/a", "/b"]
    assert "enabled already" in run("feeds", "enable", "feed /a").output


def test_a_feed_added_here_is_edited_here(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    run("feeds", "edit", "Bridge", "--name", "Tarn bridge news", "--tag", "bridges", "--tag", "tarn", "--interval", "2h")
    feed = {f["name"]: f for f in json.loads(run("feeds", "list", "--json").output)}["Tarn bridge news"]
    assert feed["tags"] == ["bridges", "tarn"]
    assert db_of(w).execute("SELECT interval_s FROM feeds WHERE name = 'Tarn bridge news'").fetchone()[0] == 7200
    run("feeds", "edit", "Tarn bridge news", "--no-tags", "--interval", "default")
    row = db_of(w).execute("SELECT tags, interval_s FROM feeds WHERE name = 'Tarn bridge news'").fetchone()
    assert row == ("[]", None)
    assert run("feeds", "edit", "Tarn bridge news", ok=False).exit_code == 2  # nothing to change
    assert run("feeds", "edit", "Tarn bridge news", "--interval", "soon", ok=False).exit_code == 2
    assert "no feed 'nope'" in error(run("feeds", "disable", "nope", ok=False))


def test_storylines_paused_resumed_edited_and_removed(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    run("storylines", "add", "bridge", "--title", "Tarn bridge", "--keyword", "Tarn bridge")
    run("poll", "--force")
    assert len(json.loads(run("items", "--storyline", "bridge", "--json").output)) == 3

    assert "Paused bridge." in run("storylines", "pause", "bridge").output
    assert "bridge (paused)" in run("storylines", "list").output
    w.server.routes["/b"] = Reply(body=rss([*BRIDGE, ("b9", "Tarn bridge reopens", "<p>The Tarn bridge at Albi reopens.</p>")]))
    run("poll", "--force")
    assert "Tarn bridge reopens" not in run("items", "--storyline", "bridge").output  # paused: not decided
    run("storylines", "resume", "bridge")
    assert "bridge (paused)" not in run("storylines", "list").output
    w.server.routes["/b"] = Reply(body=rss([*BRIDGE, ("b10", "Tarn bridge reopens to traffic",
                                                      "<p>Cars cross the Tarn bridge at Albi again.</p>")]))
    run("poll", "--force")
    assert "Tarn bridge reopens to traffic" in run("items", "--storyline", "bridge").output  # tracked again

    changed = run("storylines", "edit", "bridge", "--title", "The Tarn bridge", "--threshold", "0.2").output
    assert "Changed title, threshold of bridge." in changed
    row = db_of(w).execute("SELECT title, threshold, keywords FROM storylines WHERE id = 'bridge'").fetchone()
    assert row == ("The Tarn bridge", 0.2, '["Tarn bridge"]')
    assert run("storylines", "edit", "bridge", "--threshold", "eleven", ok=False).exit_code == 2
    assert "bridge is unchanged." in run("storylines", "edit", "bridge", "--title", "The Tarn bridge").output

    assert run("storylines", "remove", "bridge", ok=False).exit_code == 1  # not confirmed
    assert "4 follow-ups unlinked" in run("storylines", "remove", "bridge", "--yes").output
    assert "no storyline 'bridge'" in error(run("items", "--storyline", "bridge", ok=False))
    assert db_of(w).execute("SELECT count(*) FROM items").fetchone()[0] == 8


def test_a_config_storyline_is_paused_here_and_edited_in_the_config(
        world: Callable[..., World], seeded_config: Path) -> None:
    run = Cli(seeded_config)
    run("init")
    for args in (["storylines", "remove", "friendship-year", "--yes"], ["storylines", "edit", "friendship-year", "--title", "x"]):
        line = error(run(*args, ok=False))
        assert f"is declared in {seeded_config}" in line and "[[storylines]]" in line
    run("storylines", "pause", "friendship-year")
    run("init")  # the config declares it active: a pause still holds
    assert "friendship-year (paused)" in run("storylines", "list").output
    run("storylines", "resume", "friendship-year")
    assert "(paused)" not in run("storylines", "list").output
    assert "no storyline 'nope'" in error(run("storylines", "pause", "nope", ok=False))


def test_a_dismissed_suggestion_is_not_listed_again(seeded_config: Path) -> None:
    run = Cli(seeded_config)
    run("init")
    db = store.open_store(load_settings(seeded_config).storage.path)
    ids = [row[0] for row in db.execute("SELECT id FROM items ORDER BY id LIMIT 3")]
    now = dt.datetime(2024, 12, 1, tzinfo=dt.timezone.utc)
    with store.transaction(db):
        number = store.save_suggestion(db, "Volcano erupts", ["volcano"], ids, 2, now, now, now)
    assert "Volcano erupts" in run("storylines", "suggest").output
    assert f"Dismissed suggestion #{number}: Volcano erupts" in run("storylines", "suggest", "--dismiss", str(number)).output
    assert "Volcano erupts" not in run("storylines", "suggest").output
    assert "is dismissed already" in run("storylines", "suggest", "--dismiss", str(number)).output  # as disable twice
    said = json.loads(run("storylines", "suggest", "--dismiss", str(number), "--json").output)
    assert said == {"id": number, "title": "Volcano erupts", "status": "dismissed", "changed": False}
    assert f"no suggestion #{number + 1}" in error(run("storylines", "suggest", "--dismiss", str(number + 1), ok=False))
    line = error(run("storylines", "add", "volcano", "--from-suggestion", str(number), ok=False))
    assert f"suggestion #{number} is dismissed already" in line

    with store.transaction(db):
        rest = [row[0] for row in db.execute("SELECT id FROM items ORDER BY id LIMIT 3 OFFSET 2")]
        other = store.save_suggestion(db, "Glacier melts", ["glacier"], rest, 2, now, now, now)
    run("storylines", "add", "glacier", "--from-suggestion", str(other))
    line = error(run("storylines", "add", "glacier2", "--from-suggestion", str(other), ok=False))
    assert f"suggestion #{other} is adopted by storyline glacier already" in line
    assert "adopted by storyline glacier" in error(run("storylines", "suggest", "--dismiss", str(other), ok=False))


def test_feeds_add_checks_the_address_once(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    dead = "http://127.0.0.1:9/feed"  # nothing listens there
    line = error(run("feeds", "add", dead, ok=False))
    assert "127.0.0.1:9" in line and "--no-check" in line
    assert "Added" in run("feeds", "add", dead, "--no-check").output

    w.server.routes["/page"] = Reply(body=b'<!doctype html><html><head><link rel="alternate" '
                                          b'type="application/rss+xml" href="/b"></head><body>News</body></html>',
                                     headers={"Content-Type": "text/html"})
    line = error(run("feeds", "add", w.server.url("/page"), ok=False))
    assert f"is a web page; it advertises {w.server.url('/b')}" in line and f"feeds add {w.server.url('/b')}" in line
    w.server.routes["/missing"] = Reply(404, b"not found")
    assert "404" in error(run("feeds", "add", w.server.url("/missing"), ok=False))

    w.server.routes["/c"] = Reply(body=rss(MARKETS[:2], title="Albi market prices"))
    assert "Albi market prices, 2 entries" in run("feeds", "add", w.server.url("/c")).output
    shouted = w.server.url("/c").replace("http://127.0.0.1", "HTTP://127.0.0.1")
    assert f"Already known: {w.server.url('/c')}" in run("feeds", "add", shouted).output
    urls = [f["url"] for f in json.loads(run("feeds", "list", "--json").output)]
    assert sorted(urls) == sorted([w.server.url("/a"), w.server.url("/b"), w.server.url("/c"), dead])


def test_listings_show_copies_as_copies(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    w.server.routes["/a"] = Reply(body=rss([*MARKETS, ("again", BRIDGE[0][1], BRIDGE[0][2])]))  # /b's story, again
    run("poll", "--force")
    original = db_of(w).execute("SELECT id FROM items WHERE dup_of IS NULL AND title = ?", [BRIDGE[0][1]]).fetchone()[0]
    listed = run("items", "--search", "cracks").output
    assert listed.count(BRIDGE[0][1]) == 1 and "1 copy of stored stories not listed (--copies lists them)." in listed
    both = run("items", "--search", "cracks", "--copies").output
    assert both.count(BRIDGE[0][1]) == 2 and f"(= copy of #{original})" in both
    assert len(json.loads(run("items", "--search", "cracks", "--json").output)) == 1
    assert [i["copy_of"] for i in json.loads(run("items", "--search", "cracks", "--json", "--copies").output)].count(original) == 1


def test_a_feed_taken_out_of_the_config_is_the_readers_to_keep_or_remove(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    w.config.write_text(w.config.read_text().split("[[feeds]]")[0])  # /a taken out of the config
    run("init")
    assert "put its [[feeds]] entry back, or keep it here" in error(run("feeds", "enable", "feed /a", ok=False))
    assert "Added" in run("feeds", "add", w.server.url("/a")).output  # kept here now
    assert polled_paths(w, run) == ["/a", "/b"]
    assert "Removed" in run("feeds", "remove", "feed /a", "--yes").output


def test_a_storyline_taken_out_of_the_config_is_the_readers_to_remove(seeded_config: Path) -> None:
    config = Cli(seeded_config)
    config("init")
    config("storylines", "pause", "north-korea-russia")
    text = seeded_config.read_text()
    seeded_config.write_text(text[:text.index('id = "north-korea-russia"')].rsplit("[[storylines]]", 1)[0])
    config("init")
    assert "(inactive)" in config("storylines", "list").output  # out of the config: no longer paused either
    assert "Removed storyline north-korea-russia" in config("storylines", "remove", "north-korea-russia", "--yes").output


def test_a_feed_is_found_whatever_the_case_of_its_scheme_and_host_and_its_fragment(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    shouted = w.server.url("/b").replace("http://", "HTTP://")
    assert "Disabled" in run("feeds", "disable", shouted).output
    assert run("poll", "--feed", shouted).exit_code == 0  # a disabled feed is polled when named
    assert "Already known" in run("feeds", "add", w.server.url("/b") + "#latest").output


def test_a_seed_is_given_by_its_id_and_a_link_shared_by_stories_is_refused(world: Callable[..., World]) -> None:
    w = world("/a")
    shared = [(f"n{n}", f"Release {n} of the tool", f"<p>Version {n} of the tool came out with {n} fixes.</p>")
              for n in range(3)]
    w.server.routes["/a"] = Reply(body=rss(shared).replace(b"https://news.example/n1", b"https://news.example/news")
                                  .replace(b"https://news.example/n2", b"https://news.example/news"))
    run = Cli(w.config)
    run("poll")
    ids = {i["title"]: i["id"] for i in json.loads(run("items", "--json").output)}
    line = error(run("storylines", "add", "tool", "--title", "Tool", "--seed", "https://news.example/news", ok=False))
    assert "2 stored stories have the link https://news.example/news" in line and "--seed #" in line
    added = run("storylines", "add", "tool", "--title", "Tool", "--seed", f"#{ids['Release 2 of the tool']}").output
    assert "with 1 seed" in added
    timeline = json.loads(run("storylines", "show", "tool", "--json").output)["timeline"]
    assert [e["item_id"] for e in timeline if e["decision"] == "seed"] == [ids["Release 2 of the tool"]]
    assert "seed not in the store: #99999" in error(run("storylines", "add", "t2", "--title", "T", "--seed", "#99999", ok=False))


def test_a_disabled_feed_polled_by_name_stays_disabled(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    run("feeds", "disable", "Bridge")
    assert run("poll", "--feed", w.server.url("/b")).exit_code == 0  # answered: polled once, as asked
    listed = {f["name"]: f for f in json.loads(run("feeds", "list", "--json").output)}
    assert listed["Bridge"]["disabled_reason"] == store.DISABLED_BY_YOU
    assert polled_paths(w, run) == ["/a"]


def test_a_removed_feeds_name_passes_to_the_feed_that_takes_it(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    run("feeds", "remove", "Bridge", "--yes")
    assert "is removed" in error(run("feeds", "edit", w.server.url("/b"), "--tag", "x", ok=False))
    w.server.routes["/c"] = Reply(body=rss(BRIDGE[:1], title="Other bridge news"))
    run("feeds", "add", w.server.url("/c"), "--name", "Bridge")
    run("feeds", "edit", "Bridge", "--interval", "3h")  # the feed that has the name now, not the removed one
    rows = db_of(w).execute("SELECT url, interval_s FROM feeds WHERE name = 'Bridge' ORDER BY id").fetchall()
    assert rows == [(w.server.url("/b"), None), (w.server.url("/c"), 10800)]


def test_definitions_a_storyline_cannot_use_are_refused(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    for given in (["--alias", "="], ["--alias", "DPRK"], ["--alias", " = North Korea"], ["--keyword", ""],
                  ["--exclude", "  "], ["--title", "Bridge\nSubject: forged"], ["--title", "Bridge\x1b[2J"]):
        refused = run("storylines", "add", "bridge", "--title", "Tarn bridge", *given, ok=False)
        assert refused.exit_code == 2 and "Invalid value" in refused.output, given
    run("storylines", "add", "bridge", "--title", "Tarn bridge", "--keyword", "Tarn bridge")
    assert run("storylines", "edit", "bridge", "--alias", "=", ok=False).exit_code == 2
    assert run("feeds", "edit", "Bridge", "--name", "a\tb", ok=False).exit_code == 2

    db = db_of(w)  # a store written before the check: an empty group is skipped, the cycle runs
    with store.transaction(db):
        db.execute("UPDATE storylines SET aliases = '[[], [\"Tarn\"], [\"Albi\", \"Albi town\"]]' WHERE id = 'bridge'")
    assert run("poll", "--force").exit_code == 0
    assert len(json.loads(run("items", "--storyline", "bridge", "--json").output)) == 3

    w.config.write_text(w.config.read_text() + '\n[[storylines]]\nid = "x"\ntitle = "X"\naliases = [["DPRK"]]\n')
    checked = run("config", "check", ok=False)
    assert checked.exit_code != 0 and "groups of 2 or more names" in checked.output


def test_advertised_feeds_are_web_addresses_shown_inert_and_without_passwords(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    links = ['<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">',
             '<link rel="alternate" type="application/rss+xml" href="/feed\x1b[2J">',
             '<link rel="alternate" type="application/rss+xml" href="https://reader:s3cret@news.example/private">',
             *(f'<link rel="alternate" type="application/rss+xml" href="/f{n}">' for n in range(200))]
    w.server.routes["/page"] = Reply(body=f"<html><head>{''.join(links)}</head></html>".encode(),
                                     headers={"Content-Type": "text/html"})
    line = error(run("feeds", "add", w.server.url("/page"), ok=False))
    assert "javascript" not in line and "\x1b" not in line and "s3cret" not in line
    assert w.server.url("/feed%1B[2J") in line and "reader:****@news.example/private" in line
    assert line.count(", ") == 9  # ten offered, not two hundred

    w.server.routes["/secret"] = Reply(401, b"who are you?")
    line = error(run("feeds", "add", w.server.url("/secret").replace("http://", "http://me:hunter2@"), ok=False))
    assert "hunter2" not in line and "401" in line


def test_a_feed_in_and_out_of_the_config_is_never_stuck(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    declared = w.config.read_text()
    w.config.write_text(declared.split("[[feeds]]")[0])  # out of the config, removed here too, then back
    run("init")
    run("feeds", "remove", "feed /a", "--yes")
    w.config.write_text(declared)
    run("init")
    assert polled_paths(w, run) == ["/a", "/b"]  # the config has it: polled again

    run("feeds", "disable", "feed /a")  # disabled, then taken out of the config: the reader's, as it is
    w.config.write_text(declared.split("[[feeds]]")[0])
    run("init")
    assert polled_paths(w, run) == ["/b"]
    assert "Removed" in run("feeds", "remove", "feed /a", "--yes").output


def test_feeds_add_keeps_the_title_it_read_and_knows_a_feed_it_is_redirected_to(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    w.server.routes["/c"] = Reply(body=rss(MARKETS[:1], title="Albi market prices"))
    run("feeds", "add", w.server.url("/c"))
    listed = {f["url"]: f for f in json.loads(run("feeds", "list", "--json").output)}
    assert listed[w.server.url("/c")]["title"] == "Albi market prices"  # before its first poll
    assert "Albi market prices" in run("feeds", "list").output
    assert run("poll", "--feed", "Albi market prices").exit_code == 0  # a feed is named as listings show it

    w.server.routes["/old-bridge"] = Reply(301, headers={"Location": w.server.url("/b")})
    said = run("feeds", "add", w.server.url("/old-bridge")).output
    assert f"Already known: {w.server.url('/b')} ({w.server.url('/old-bridge')} redirects there)" in said
    assert len(json.loads(run("feeds", "list", "--json").output)) == 3


def test_a_feed_name_finds_one_feed_and_an_import_brings_a_removed_feed_back(world: Callable[..., World],
                                                                            tmp_path: Path) -> None:
    w = world("/a")
    run = served(w)
    w.server.routes["/c"] = Reply(body=rss(MARKETS[:1], title="Albi market prices"))
    assert "is named 'bridge' already" in error(run("feeds", "add", w.server.url("/c"), "--name", "bridge", ok=False))
    run("feeds", "add", w.server.url("/c"), "--name", "Prices")
    assert "is named 'Bridge' already" in error(run("feeds", "edit", "Prices", "--name", "Bridge", ok=False))
    run("feeds", "edit", "Bridge", "--name", "Bridge")  # its own name is no conflict

    exported = tmp_path / "feeds.opml"
    run("feeds", "export", "-o", str(exported))
    run("feeds", "remove", "Bridge", "--yes")
    assert "1 feed added, 2 already known" in run("feeds", "import", str(exported)).output  # Bridge is back
    assert polled_paths(w, run) == ["/a", "/b", "/c"]


def test_a_config_address_written_otherwise_is_the_same_feed(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    shouted = w.server.url("/b").replace("http://", "HTTP://") + "#latest"
    w.config.write_text(w.config.read_text() + f'\n[[feeds]]\nurl = "{shouted}"\nname = "Bridge"\n')
    run("init")
    assert polled_paths(w, run) == ["/a", "/b"]  # one feed, not two
    assert len(json.loads(run("feeds", "list", "--json").output)) == 2
    assert "is declared in" in error(run("feeds", "remove", "Bridge", "--yes", ok=False))  # the config's now


def test_a_feed_brought_back_gives_up_a_name_taken_since(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    run("feeds", "remove", "Bridge", "--yes")
    w.server.routes["/c"] = Reply(body=rss(MARKETS[:1], title="Other bridge news"))
    run("feeds", "add", w.server.url("/c"), "--name", "Bridge")
    run("feeds", "add", w.server.url("/b"))  # back, shown by its title: one feed is named Bridge
    assert run("poll", "--feed", "Bridge").exit_code == 0
    names = {f["url"]: f["name"] for f in json.loads(run("feeds", "list", "--json").output)}
    assert names[w.server.url("/c")] == "Bridge" and names[w.server.url("/b")] != "Bridge"
