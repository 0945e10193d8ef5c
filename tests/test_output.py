"""Output a person and a script can use, through the CLI on a real store and a loopback feed
server: tables fit the terminal ($COLUMNS, CJK characters two columns wide, long text cut with
"…"), feeds named by their name, else their title, else their host; --json, --csv and -o FILE
on the commands that print data; an unknown id is one line and exit status 1."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import stat
import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from tests.conftest import Cli, World
from tests.feedserver import Reply, rss
from worker import report, store
from worker.config import load_settings

CJK = "朝鮮日報ニュース速報"  # 10 characters, 20 columns
LONG = "Albi, Tarn and Aveyron valleys: the daily news, weather, markets and roads"
MARKETS = [(f"m{n}", f"Markets report {n}: prices at the covered market of Albi", f"<p>Prices at the market, report {n}.</p>")
           for n in range(3)]
KOREA = [("k0", "北朝鮮と中国の友好年について", "<p>北朝鮮と中国の友好年。</p>")]
BARE = [("x0", "An item of a feed without a title", "<p>No title on this feed.</p>")]


def served(world: World) -> Cli:
    """The config feed /a (named "feed /a" in the config); /b (a CJK title), /c (no title) and
    /d (a long title) added without a name; every feed polled once."""
    routes = {"/a": rss(MARKETS, title="Albi markets"), "/b": rss(KOREA, title=CJK), "/c": rss(BARE, title=""),
              "/d": rss([("d0", "Roads reopen", "<p>Roads.</p>")], title=LONG)}
    for path, body in routes.items():
        world.server.routes[path] = Reply(body=body)
    run = Cli(world.config)
    run("init")
    for path in ("/b", "/c", "/d"):
        run("feeds", "add", world.server.url(path), "--no-check")
    run("poll")
    return run


def columns(line: str) -> int:
    """Terminal columns, counted independently of worker.report: wide 2, combining 0."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def start_of(line: str, text: str) -> int:
    """The terminal column where `text` starts in `line`."""
    return columns(line[: line.index(text)])


def test_tables_fit_columns_and_cjk_names_stay_aligned(world: Callable[..., World], monkeypatch: pytest.MonkeyPatch) -> None:
    w = world("/a")
    run = served(w)
    run("storylines", "add", "markets", "--title", "Prices at the covered market of Albi, week by week, stall by stall",
        "--keyword", "covered market")
    whole = run("feeds", "list").stdout  # no terminal, no COLUMNS: whole lines, for pipes and files
    assert LONG in whole and "…" not in whole

    for width in (60, 80, 120):
        monkeypatch.setenv("COLUMNS", str(width))
        for command in (["status"], ["feeds", "list"], ["items"], ["storylines", "list"], ["poll", "--force"]):
            shown = run(*command).stdout
            too_wide = [line for line in shown.splitlines() if columns(line) > width]
            assert not too_wide, f"{command} at COLUMNS={width}: {too_wide}"

    monkeypatch.setenv("COLUMNS", "120")
    lines = run("feeds", "list").stdout.splitlines()
    assert lines[0].startswith("NAME ")
    assert any(line.startswith(CJK + "  ") for line in lines)  # the whole title, as room allows
    assert "Albi, Tarn and Aveyron" in "".join(lines) and LONG not in "".join(lines)  # cut …
    assert any("…" in line for line in lines)
    assert {start_of(line, "20") for line in lines[1:]} == {start_of(lines[0], "LAST POLL")}  # after a CJK name too
    assert len({start_of(line, "http://") for line in lines[1:]}) == 1  # the addresses too
    assert {start_of(line, "http://") for line in lines[1:]} == {start_of(lines[0], "URL")}
    for line in lines[1:]:
        assert " 1  " in line or " 3  " in line  # item counts are never cut
        assert line.count("UTC") == 2  # nor the dates of the last and next polls

    items = run("items").stdout.splitlines()
    titles = ("Markets report", "北朝鮮", "An item", "Roads reopen")
    starts = {start_of(line, next(t for t in titles if t in line)) for line in items[1:]}
    assert starts == {start_of(items[0], "TITLE")}  # after a CJK publisher as after any other

    monkeypatch.delenv("COLUMNS")  # again, whole: the `poll --force` runs above changed the poll times
    whole = run("feeds", "list").stdout
    monkeypatch.setenv("COLUMNS", "60")
    run("feeds", "list", "-o", str(w.config.parent / "feeds.txt"))
    assert (w.config.parent / "feeds.txt").read_text(encoding="utf-8") == whole  # a file gets whole lines
    assert LONG in run("feeds", "list", "--json").stdout  # JSON is never cut
    assert LONG in run("feeds", "list", "--csv").stdout  # nor CSV


def test_a_feed_is_shown_by_its_name_else_its_title_else_its_host(world: Callable[..., World]) -> None:
    w = world("/a")
    w.server.routes["/a"] = Reply(body=rss(MARKETS, title="Albi markets"))
    w.server.routes["/b"] = Reply(body=rss(KOREA, title=CJK))
    w.server.routes["/c"] = Reply(body=rss(BARE, title=""))
    run = Cli(w.config)
    run("init")
    for path in ("/b", "/c"):
        run("feeds", "add", w.server.url(path), "--no-check")
    polled = run("poll").stdout  # the first poll names a feed by the title it just learned
    assert "feed /a" in polled and CJK in polled and "127.0.0.1" in polled and "http://" not in polled

    names = {line.split("  ")[0].strip() for line in run("feeds", "list").output.splitlines()[1:]}
    assert names == {"feed /a", CJK, "127.0.0.1"}
    status = run("status").output
    assert f"  {CJK}  " in status and "  127.0.0.1  " in status

    publishers = {item["title"]: item["publisher"] for item in json.loads(run("items", "--json").stdout)}
    assert publishers[KOREA[0][1]] == CJK and publishers[BARE[0][1]] == "127.0.0.1"
    run("feeds", "edit", w.server.url("/b"), "--name", "Korea daily")  # renamed since: shown as named now
    run("feeds", "edit", w.server.url("/c"), "--name", "Bare feed")
    listed = run("items").output
    assert "Korea daily" in listed and "Bare feed" in listed and CJK not in listed and "127.0.0.1" not in listed
    assert all(i["publisher"] in ("feed /a", "Korea daily", "Bare feed") for i in json.loads(run("items", "--json").stdout))

    run("storylines", "add", "korea", "--title", "Korea", "--seed", "https://news.example/k0")
    shown = run("storylines", "show", "korea", "--json").stdout
    assert json.loads(shown)["timeline"][0]["publisher"] == "Korea daily"

    w.server.routes["/d"] = Reply(body=rss(BARE, title=""))
    run("feeds", "add", w.server.url("/d"), "--no-check")
    run("feeds", "disable", w.server.url("/d"))
    digest = run("digest", "--since", "3000d", "--stdout", "--format", "text").output
    assert f"127.0.0.1 ({w.server.url('/d')}): disabled" in digest  # sources in trouble: the host, then the address


def test_json_on_status_poll_health_suggest_and_config_check(world: Callable[..., World]) -> None:
    w = world("/a")
    Cli(w.config)("init")
    unhealthy = Cli(w.config)("health", "--json", ok=False)  # no cycle yet: the same exit status as without --json
    assert unhealthy.exit_code == 1 and json.loads(unhealthy.stdout)["ok"] is False
    run = served(w)
    status = json.loads(run("status", "--json").stdout)
    assert status["items"] == 6 and status["items_by_source"] == {"feed": 6}
    assert {f["title"] for f in status["feeds"]} == {"Albi markets", CJK, None, LONG}
    assert status["last_digest"]["at"] is None and status["unconfirmed_digests"] == [] and status["storylines"] == []

    w.server.routes["/c"] = Reply(500, b"down")
    poll = run("poll", "--force", "--json", ok=False)
    assert poll.exit_code == 3  # the exit status is the same with --json
    polled = json.loads(poll.stdout)
    assert polled["failed"] == 1 and polled["outcomes"]["not_modified"] == 3 and polled["outcomes"]["error"] == 1
    failed = [f for f in polled["polled"] if f["outcome"] == "error"]
    assert failed[0]["url"] == w.server.url("/c") and failed[0]["name"] == "127.0.0.1" and "500" in failed[0]["error"]

    health = json.loads(run("health", "--json").stdout)  # `poll --force` is logged as a cycle: healthy
    assert health["ok"] is True and health["lines"][0].startswith("healthy: ")

    db = store.open_store(load_settings(w.config).storage.path)
    ids = [row[0] for row in db.execute("SELECT id FROM items ORDER BY id LIMIT 3")]
    now = dt.datetime(2024, 12, 16, tzinfo=dt.timezone.utc)
    with store.transaction(db):
        number = store.save_suggestion(db, "Markets move", ["market", "prices"], ids, 2, now, now, now)
    [suggested] = json.loads(run("storylines", "suggest", "--json").stdout)
    assert suggested == {"id": number, "title": "Markets move", "status": "open", "storyline_id": None, "items": 3,
                         "sources": 2, "first_at": "2024-12-16T00:00:00Z", "last_at": "2024-12-16T00:00:00Z",
                         "terms": ["market", "prices"], "item_ids": ids}

    checked = run("config", "check", "--json")
    settings = json.loads(checked.stdout)
    assert settings["config"] == str(w.config)
    values = settings["settings"]
    assert values["storage.path"].endswith("/sw.db") and values["fetch.timeout"] == 3.0 and values["fetch.interval"] == "30m"
    assert values["feeds[0].url"] == w.server.url("/a") and values["feeds[0].tags"] == []
    assert values["digest.time"] == "07:00" and values["email.password"] is None and values["seeds.path"] is None
    text = run("config", "check").stdout.splitlines()
    assert len(text) == len(values)  # the same settings as the text listing


def csv_rows(result: Result) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(result.stdout))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def test_csv_listings_parse_back_with_the_json_keys(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    run("storylines", "add", "markets", "--title", "Markets", "--keyword", "covered market", "--seed",
        "https://news.example/m0")
    db = store.open_store(load_settings(w.config).storage.path)
    now = dt.datetime(2024, 12, 16, tzinfo=dt.timezone.utc)
    with store.transaction(db):
        store.save_suggestion(db, "Korea, quoted \"and\", with commas", ["北朝鮮"], [1, 2, 3], 2, now, now, now)

    listings = [(["items"], None), (["feeds", "list"], None), (["storylines", "list"], None),
                (["storylines", "show", "markets"], "timeline"), (["storylines", "suggest"], None)]
    for command, key in listings:
        as_json = json.loads(run(*command, "--json").stdout)
        objects = as_json[key] if key else as_json
        header, rows = csv_rows(run(*command, "--csv"))
        assert objects and header == list(objects[0]), command  # the JSON keys, in order
        assert len(rows) == len(objects), command
        for obj, row in zip(objects, rows):
            for name, value in obj.items():
                expected = "" if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":")) \
                    if isinstance(value, (bool, list, dict)) else str(value)
                assert row[name] == expected, (command, name)

    header, rows = csv_rows(run("items", "--csv", "--search", "nothing-matches-this"))
    assert header == list(report.ITEM_COLUMNS) and rows == []  # the header row even for no rows
    assert run("items", "--json", "--csv", ok=False).exit_code == 2  # one format at a time


def steady(shown: str) -> str:
    """Output without its relative times ("finished 0s ago", "in 29 min"): two runs a second apart
    may tell them differently."""
    return re.sub(r"\b(\d+\s?[a-z]* ago|in \d+\s?[a-z]+)\b", "(a time)", shown)


def test_output_file_holds_what_stdout_would_show(world: Callable[..., World], tmp_path: Path) -> None:
    w = world("/a")
    run = served(w)
    run("storylines", "add", "markets", "--title", "Markets", "--seed", "https://news.example/m0")
    commands = [["status"], ["status", "--json"], ["health", "--json"], ["items"], ["items", "--csv"],
                ["items", "--json"], ["items", "show", "1"], ["feeds", "list", "--csv"], ["storylines", "list"],
                ["storylines", "show", "markets", "--csv"], ["storylines", "suggest", "--json"],
                ["config", "check", "--json"]]
    folder = tmp_path / "out"
    folder.mkdir()
    for n, command in enumerate(commands):
        printed = run(*command, ok=False).stdout
        target = folder / f"{n}.txt"
        written = run(*command, "-o", str(target), ok=False)
        assert written.stdout == "", command
        assert steady(target.read_text(encoding="utf-8")) == steady(printed), command
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.txt" for n in range(len(commands)))  # no temp file left

    target = folder / "0.txt"
    polled = run("poll", "--force", "--json", "-o", str(target))
    assert polled.stdout == "" and json.loads(target.read_text())["outcomes"]["not_modified"] == 4  # replaced whole
    exported = folder / "feeds.opml"
    run("feeds", "export", "-o", str(exported))
    assert exported.read_text().startswith("<?xml") and sorted(p.name for p in folder.iterdir())[-1] == "feeds.opml"
    (tmp_path / "a-file").touch()
    blocked = run("items", "-o", str(tmp_path / "a-file" / "x.txt"), ok=False)  # its folder is a file
    assert blocked.exit_code == 1 and blocked.output.count("\n") == 1 and "cannot write" in blocked.output
    missing = run("items", "-o", str(tmp_path / "no-such-folder" / "x.txt"), ok=False)  # as a shell's > does
    assert missing.exit_code == 1 and "No such file or directory" in missing.output
    assert not (tmp_path / "no-such-folder").exists()
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    looped = run("items", "-o", str(tmp_path / "loop1"), ok=False)
    assert looped.exit_code == 1 and "loops" in looped.output


@pytest.mark.parametrize("command, says", [
    (["items", "show", "999"], "no item with id 999"),
    (["items", "show", "999", "--json"], "no item with id 999"),
    (["items", "mark", "999", "--storyline", "markets", "--yes"], "no item with id 999"),
    (["items", "mark", "1", "--storyline", "nope", "--no"], "no storyline 'nope'"),
    (["items", "--storyline", "nope", "--csv"], "no storyline 'nope'"),
    (["storylines", "show", "nope"], "no storyline 'nope'"),
    (["storylines", "show", "nope", "--csv"], "no storyline 'nope'"),
    (["storylines", "pause", "nope"], "no storyline 'nope'"),
    (["storylines", "edit", "nope", "--title", "x"], "no storyline 'nope'"),
    (["storylines", "remove", "nope", "--yes"], "no storyline 'nope'"),
    (["storylines", "suggest", "--dismiss", "999"], "no suggestion #999"),
    (["storylines", "add", "x", "--from-suggestion", "999"], "no suggestion #999"),
    (["export", "atom", "--storyline", "nope"], "storyline 'nope'"),
    (["feeds", "disable", "nope"], "no feed 'nope'"),
    (["poll", "--feed", "http://127.0.0.1:9/nope", "--json"], "no feed 'http://127.0.0.1:9/nope'"),
])
def test_an_unknown_id_is_one_line_and_exit_status_1(seeded_config: Path, command: list[str], says: str) -> None:
    run = Cli(seeded_config)
    run("init")
    run("storylines", "add", "markets", "--title", "Markets", "--keyword", "market")
    result = run(*command, ok=False)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr


def test_cells_and_cut_count_terminal_columns() -> None:
    assert report.cells("abc") == 3 and report.cells(CJK) == 20 and report.cells("e\u0301") == 1
    assert report.cut(CJK, 7) == "朝鮮日…" and report.cells(report.cut(CJK, 8)) == 7  # a wide character is not split
    assert report.cut("e\u0301te\u0301", 4) == "e\u0301te\u0301" and report.cut("abcdef", 4) == "abc…"
    assert report.table(["A", "B"], [[CJK, "x"], ["b", "y"]], indent="").splitlines()[1:] == [CJK + "  x", "b" + " " * 21 + "y"]


def test_init_prints_json_and_eval_writes_to_a_file(seeded_config: Path, tmp_path: Path) -> None:
    run = Cli(seeded_config)
    first = json.loads(run("init", "--json").output)
    assert first["schema"].startswith("00") and first["seeds"] == {"read": 5, "new": 5}
    assert first["storylines"] == {"friendship-year": 3, "high-level-exchanges": 5, "north-korea-russia": 2}
    assert json.loads(run("init", "--json").output)["seeds"] == {"read": 5, "new": 0}
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({"id": f"d{n}", "story_id": "s" if n % 2 else "t",
                                            "published": f"2024-01-{n + 1:02d}T00:00:00Z", "title": f"Item {n}",
                                            "text": f"Story {'s' if n % 2 else 't'} news number {n}."}) + "\n"
                                for n in range(12)), encoding="utf-8")
    printed = run("eval", "tracking", str(labelled), "--nt", "2", "--json").output
    run("eval", "tracking", str(labelled), "--nt", "2", "--json", "-o", str(tmp_path / "eval.json"))
    assert (tmp_path / "eval.json").read_text(encoding="utf-8") == printed


def test_output_to_a_symlink_or_a_fifo_writes_through_it(world: Callable[..., World], tmp_path: Path) -> None:
    w = world("/a")
    run = served(w)
    printed = run("items", "--csv").stdout
    target, link = tmp_path / "items.csv", tmp_path / "latest.csv"
    target.write_text("old")
    link.symlink_to(target)
    run("items", "--csv", "-o", str(link))
    assert link.is_symlink() and target.read_text(encoding="utf-8") == printed  # the link stays a link
    target.chmod(0o600)
    run("feeds", "export", "-o", str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # a replaced file keeps its permissions
    long_name = tmp_path / ("n" * 250)
    run("items", "-o", str(long_name))  # the temporary file beside it fits the name limit too
    assert long_name.read_text(encoding="utf-8") == run("items").stdout
    wide_name = tmp_path / ("文" * 83 + ".csv")  # 253 bytes: a valid name, its temporary one too
    run("items", "-o", str(wide_name))
    assert wide_name.read_text(encoding="utf-8") == run("items").stdout
    wide_name.chmod(0o4750)
    run("items", "-o", str(wide_name))
    assert stat.S_IMODE(wide_name.stat().st_mode) == 0o750  # permissions kept, not the setuid bit
    too_long = run("items", "-o", str(tmp_path / ("n" * 300)), ok=False)
    assert too_long.exit_code == 1 and "cannot write" in too_long.output

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text(encoding="utf-8")))
    reader.start()
    run("items", "--csv", "-o", str(fifo))
    reader.join(timeout=30)
    assert received == [printed] and stat.S_ISFIFO(fifo.stat().st_mode)  # read by the other end, still a FIFO


def test_csv_cells_a_spreadsheet_would_run_are_shown_as_text(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    run("feeds", "edit", w.server.url("/b"), "--name", "=HYPERLINK(\"https://evil.example\")")
    rows = {row["url"]: row for row in csv_rows(run("feeds", "list", "--csv"))[1]}
    assert rows[w.server.url("/b")]["name"] == "'=HYPERLINK(\"https://evil.example\")"
    as_json = {f["url"]: f for f in json.loads(run("feeds", "list", "--json").stdout)}
    assert as_json[w.server.url("/b")]["name"].startswith("=")  # JSON as it is
    assert report.csv_text([{"a": "-2", "b": -2, "c": "@x", "d": "+1"}], ["a", "b", "c", "d"]) == "a,b,c,d\n'-2,-2,'@x,'+1\n"


def test_search_finds_words_of_scripts_written_without_spaces(world: Callable[..., World]) -> None:
    w = world("/a")
    w.server.routes["/k"] = Reply(body=rss([("h0", "북한은 중국과 우호의 해를 맞았다", "<p>평양에서 행사가 열렸다.</p>")]))
    run = served(w)
    run("feeds", "add", w.server.url("/k"), "--no-check")
    run("poll")
    for query, title in [("北朝鮮", KOREA[0][1]), ("友好年", KOREA[0][1]), ("북한", "북한은 중국과"), ("평양", "북한은 중국과"),
                         ("北朝鮮 中国", KOREA[0][1])]:
        found = [i["title"] for i in json.loads(run("items", "--search", query, "--json").stdout)]
        assert len(found) == 1 and found[0].startswith(title), query
    assert json.loads(run("items", "--search", "北朝鮮 market", "--json").stdout) == []  # every term must match
    assert len(json.loads(run("items", "--search", "market", "--json").stdout)) == 3


def test_a_narrow_terminal_leaves_columns_out_rather_than_cutting_names_to_nothing(
        world: Callable[..., World], monkeypatch: pytest.MonkeyPatch) -> None:
    w = world("/a")
    run = served(w)
    run("storylines", "add", "markets", "--title", "Prices at the covered market of Albi", "--keyword", "covered market")
    monkeypatch.setenv("COLUMNS", "50")
    for command in (["status"], ["feeds", "list"], ["items"], ["storylines", "list"]):
        lines = run(*command).stdout.splitlines()
        assert all(columns(line) <= 50 for line in lines), (command, [line for line in lines if columns(line) > 50])
    listed = run("feeds", "list").stdout.splitlines()
    assert listed[0].split() == ["NAME", "ITEMS", "LAST", "POLL", "STATE"]  # next poll and address left out
    assert any(line.startswith("feed /a ") for line in listed) and any(line.startswith("Albi, T") for line in listed)
    monkeypatch.setenv("COLUMNS", "200")
    assert "NEXT POLL" in run("feeds", "list").stdout  # all of them where there is room


def test_a_listing_cut_by_its_limit_says_so(world: Callable[..., World]) -> None:
    w = world("/a")
    run = served(w)
    table = run("items", "--limit", "2").stdout.splitlines()
    assert len(table) == 4 and table[-1] == "Only the first 2 items are listed: --limit N lists more."
    cut = run("items", "--limit", "2", "--json")
    assert len(json.loads(cut.stdout)) == 2 and "only the first 2 items" in cut.stderr  # the data stays parseable
    whole = run("items", "--limit", "6", "--json")
    assert len(json.loads(whole.stdout)) == 6 and whole.stderr == ""
    assert "Only the first" not in run("items").stdout
    for nothing in (" ", '""', '" "', "!!"):
        assert run("items", "--search", nothing, ok=False).exit_code == 2, nothing


def test_odd_input_is_one_clear_error(world: Callable[..., World], tmp_path: Path) -> None:
    w = world("/a")
    run = served(w)
    fifo = tmp_path / "seed-pipe"
    os.mkfifo(fifo)
    assert "not a regular file" in run("storylines", "add", "x", "--title", "X", "--seed", str(fifo), ok=False).output
    deep = tmp_path / "deep.opml"
    deep.write_text('<opml version="2.0"><body>' + '<outline text="f">' * 5000 + '</outline>' * 5000 + "</body></opml>")
    assert "nested deeper" in run("feeds", "import", str(deep), ok=False).output
    assert run("items", "--search", " ".join(["lava"] * 65), ok=False).exit_code == 2
    for since in ("9999-12-31T23:59:59-23:59", "0001-01-01", "99999999d"):
        assert run("items", "--since", since, ok=False).exit_code == 2, since
    assert run("digest", "--date", "0001-01-01", ok=False).exit_code == 2
    assert report.csv_text([{"a": "\ufeff=1+1"}], ["a"]) == "a\n'\ufeff=1+1\n"


def test_the_poll_table_tells_unnamed_feeds_on_one_host_apart() -> None:
    """A feed that never answered has no title: the poll table names it by its host and the last
    part of its path (any password masked, no query), not by its host alone, which several feeds
    may share; a narrow table keeps the part that tells them apart."""
    from worker.cycle import CycleReport
    from worker.models import Feed
    from worker.pipeline import FeedReport

    feeds = [Feed(1, "http://127.0.0.1:8765/a.xml"), Feed(2, "https://user:secret@127.0.0.1:8765/b.xml"),
             Feed(3, "http://127.0.0.1:8765/c.xml", name="Named"), Feed(4, "http://127.0.0.1:8765/d.xml", title="Titled"),
             Feed(5, "http://127.0.0.1:9/feeds/world/asia/korea/feed-a.xml?token=abc"),
             Feed(6, "http://127.0.0.1:9/feeds/world/asia/korea/feed-b.xml/")]
    cycle = CycleReport(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), 1.0,
                        tuple(FeedReport(feed, "error", error="refused") for feed in feeds))
    lines = report.render_cycle(cycle, width=80).splitlines()[1:7]
    assert [line.split()[2] for line in lines] == [
        "127.0.0.1:8765/a.xml", "user:****@127.0.0.1:8765/b.xml", "Named", "Titled",
        "127.0.0.1:9/…/feed-a.xml", "127.0.0.1:9/…/feed-b.xml"]  # the part that differs, no token
