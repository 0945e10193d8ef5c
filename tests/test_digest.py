"""The daily digest: golden files for a fixed store and clock, determinism, atomic files, the
empty day, periods across DST changes, hostile feed text, backfill, and the Atom export.

Everything runs on a real SQLite file built through worker.store (tests/digeststore.py).
`UPDATE_GOLDEN=1 pytest tests/test_digest.py` rewrites the files under tests/golden/.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import feedparser
import pytest
from markdown_it import MarkdownIt

from worker import digest, store
from worker.digest import daily
from worker.config import StorylineConfig, load_settings
from worker.models import FollowUp, Placement
from tests.conftest import Cli
from tests.digeststore import (
    DAY, END, START, UTC, WIRE, Built, at, build, followup, item, save, write_config,
)

GOLDEN = Path(__file__).resolve().parent / "golden"
BERLIN = ZoneInfo("Europe/Berlin")


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 to write it"
    assert text == path.read_bytes().decode("utf-8"), f"{name} differs from the golden file (UPDATE_GOLDEN=1 rewrites it)"


@pytest.fixture
def world(tmp_path: Path) -> Built:
    return build(tmp_path)


# ── golden files ──────────────────────────────────────────────────────────────────────────


def test_the_digest_of_a_fixed_day_matches_the_golden_files(world: Built, tmp_path: Path) -> None:
    outcome = daily.write_digest(world.db, world.settings, world.period)
    md, html = outcome.files
    assert (md.name, html.name) == ("2026-11-23.md", "2026-11-23.html")
    config = str(world.config.resolve())  # the commands it suggests name the config, wherever the test runs
    check_golden("digest.md", md.read_text(encoding="utf-8").replace(config, "/etc/storywatch/storywatch.toml"))
    check_golden("digest.html", html.read_text(encoding="utf-8").replace(config, "/etc/storywatch/storywatch.toml"))
    check_golden("digest.txt", digest.render_text(outcome.data).replace(config, "/etc/storywatch/storywatch.toml"))


def test_the_golden_digest_counts_what_the_store_holds(world: Built) -> None:
    data = daily.collect(world.db, world.settings, world.period)
    assert (data.new_items, data.followups, data.moved) == (8, 3, 2)
    assert [s.id for s in data.storylines] == ["friendship-year", "russia-turn"]
    assert [s.item_id for s in data.storylines[0].stories] == [world.ids["closing"], world.ids["delegation"]]
    assert data.storylines[0].stories[0].also == ("Pyongyang Times",)
    assert [u.item_id for u in data.updated] == [world.ids["fy-old-3"]]
    assert [(q.id, q.days) for q in data.quiet] == [("high-level", 13)]  # hl-late, found later, was published before
    assert [(g.id, [s.item_id for s in g.stories]) for g in data.found_later] == [("high-level", [world.ids["hl-late"]])]
    assert data.late_followups == 1
    assert [s.item_id for s in data.other] == [world.ids[f"other-{n}"] for n in (4, 3, 2)] and data.other_total == 5
    assert [(s.name, s.state.split(":")[0]) for s in data.sources] == [
        ("Border Monitor", "failing (3 in a row)"), ("Daily NK Brief", "silent"), ("Old Bulletin", "disabled")]
    assert digest.subject(data, "[storywatch]") == (
        "[storywatch] 2026-11-23: 3 follow-ups in 2 storylines, 1 found later, 8 new items")


def test_a_follow_up_decided_in_the_second_the_digest_is_written_is_in_it(world: Built) -> None:
    edge = save(world.db, item("edge", "Sun Weidong back in Pyongyang", "The vice minister returned." * 4,
                               published="2026-11-23 05:55", seen="2026-11-23 05:59", feed=1, publisher="Korea Wire"))
    followup(world.db, "high-level", edge, score=0.4, names=["Sun Weidong"], terms=["vice minister"],
             decided="2026-11-23 06:00")
    data = daily.collect(world.db, world.settings, world.period)
    assert [s.id for s in data.storylines] == ["friendship-year", "high-level", "russia-turn"]
    assert data.quiet == () and edge not in {s.item_id for s in data.other}


def test_a_follow_up_decided_after_its_items_digest_is_found_later_in_the_next_one(world: Built) -> None:
    """Tracking that decides after the digest of the item's day was written (here other-4, first
    seen in the period): the next digest lists it under Found later, the day's does not change."""
    before = digest.render_markdown(daily.collect(world.db, world.settings, world.period))
    followup(world.db, "russia-turn", world.ids["other-4"], score=0.3, names=["Kim Jong Un"], terms=["harvest"],
             decided="2026-11-23 06:01")
    assert digest.render_markdown(daily.collect(world.db, world.settings, world.period)) == before
    next_day = daily.collect(world.db, world.settings,
                             digest.day_period(DAY + dt.timedelta(days=1), world.settings.digest.time, BERLIN))
    assert [(g.id, [s.item_id for s in g.stories]) for g in next_day.found_later] == [("russia-turn", [world.ids["other-4"]])]
    assert next_day.storylines == () and not next_day.empty
    assert digest.subject(next_day, "[sw]") == "[sw] 2026-11-24: 0 follow-ups in 0 storylines, 1 found later, 0 new items"


def test_a_late_follow_up_belongs_to_the_digest_whose_period_ends_at_or_after_its_decision(world: Built) -> None:
    """Periods chain: a decision made exactly at a digest's end is in that digest, not the next."""
    followup(world.db, "russia-turn", world.ids["hl-old"], score=0.3, names=["x"], terms=["y"], decided="2026-11-22 06:00")
    followup(world.db, "russia-turn", world.ids["fy-old-0"], score=0.3, names=["x"], terms=["y"], decided="2026-11-23 06:00")
    day = daily.collect(world.db, world.settings, world.period)
    next_day = daily.collect(world.db, world.settings,
                             digest.day_period(DAY + dt.timedelta(days=1), world.settings.digest.time, BERLIN))
    late = {g.id: [s.item_id for s in g.stories] for g in day.found_later}
    assert late == {"high-level": [world.ids["hl-late"]], "russia-turn": [world.ids["fy-old-0"]]}
    assert next_day.found_later == ()


def test_the_first_digest_shows_the_story_so_far(world: Built) -> None:
    period = digest.Period(digest.EPOCH, END, DAY, "Europe/Berlin")
    md = digest.render_markdown(daily.collect(world.db, world.settings, period, initial=True))
    assert md.splitlines()[2].startswith("Everything stored up to 2026-11-23 07:00 (Europe/Berlin): **")
    section = md.split("## China–North Korea high-level exchanges\n", 1)[1].split("\n## ", 1)[0]
    assert section.startswith("\nThe story so far: 1 article this storyline starts from and 2 follow-ups.\n")  # seed; hl-old, hl-late
    assert "### [Zhao Leji visits Pyongyang](https://xinhua.example/seed-2)\n\nXinhua, 2024-04-12 02:00 · seed\n" in section


# ── determinism and files ─────────────────────────────────────────────────────────────────


def test_regenerating_a_period_gives_the_same_bytes_and_leaves_no_temporary_file(world: Built, tmp_path: Path) -> None:
    first = daily.write_digest(world.db, world.settings, world.period)
    before = [f.read_bytes() for f in first.files]
    reopened = store.open_store(world.settings.storage.path)  # another connection, as a later run would
    again = daily.write_digest(reopened, world.settings, world.period)
    assert again.files == first.files and [f.read_bytes() for f in again.files] == before
    assert sorted(p.name for p in first.files[0].parent.iterdir()) == ["2026-11-23.html", "2026-11-23.md"]
    # What arrives after the period does not change it: a new story, a follow-up in a storyline
    # (the activity line), another copy of a story, a late decision (a look-back) on an item of the period.
    late = save(world.db, item("late", "A late story", "It arrived after the digest time." * 3,
                               published="2026-11-23 06:30", feed=1, publisher="Korea Wire"))
    followup(world.db, "friendship-year", late, score=0.5, names=["Friendship Year"], terms=["late"],
             decided="2026-11-23 06:31")
    save(world.db, item("closing-late-copy", "Friendship Year closes", "A copy seen the next morning." * 5,
                        published="2026-11-23 06:40", publisher="Late Gazette"),
         Placement(dup_of=world.ids["closing"], dup_kind="near", cluster_id=world.ids["closing"]))
    followup(world.db, "high-level", world.ids["other-4"], score=0.3, names=["x"], terms=["y"],
             decided="2026-11-24 08:00")
    daily.write_digest(world.db, world.settings, world.period)
    assert [f.read_bytes() for f in first.files] == before
    # The next day's digest shows them.
    next_day = daily.collect(world.db, world.settings,
                             digest.day_period(DAY + dt.timedelta(days=1), world.settings.digest.time, BERLIN))
    assert [s.item_id for s in next_day.storylines[0].stories] == [late]


def test_a_recorded_digest_is_regenerated_as_it_was_by_the_cli(world: Built) -> None:
    outcome = daily.scheduled_digest(world.db, world.settings, END + dt.timedelta(minutes=2))
    assert outcome is not None and outcome.data.period.start == START
    recorded = outcome.files[0].read_bytes()
    row = store.digest_row(world.db, DAY)
    assert row is not None and (row["period_start"], row["period_end"], row["status"]) == (
        "2026-11-22T06:00:00Z", "2026-11-23T06:02:00Z", "written")
    outcome.files[0].unlink()
    result = Cli(world.config)("digest", "--date", "2026-11-23")
    assert f"Wrote {outcome.files[0]}, {outcome.files[1]}: 2026-11-23: 3 follow-ups in 2 storylines, 1 found later, 8 new items\n" \
        in result.output
    assert outcome.files[0].read_bytes() == recorded
    printed = Cli(world.config)("digest", "--date", "2026-11-23", "--stdout").output
    assert printed.encode() == recorded


def test_a_kept_digest_is_the_same_digest_whatever_changes_in_the_store_after(world: Built) -> None:
    """Written, it is the day's digest: storylines added, paused or edited, marks, suggestions
    dismissed and feeds that fail later change neither the file written again nor the email."""
    outcome = daily.scheduled_digest(world.db, world.settings, END + dt.timedelta(minutes=2))
    assert outcome is not None
    written, subject = outcome.files[0].read_bytes(), digest.subject(outcome.data, "[sw]")
    email = daily.digest_message(world.settings, outcome.data, END).get_body(("plain",))
    run = Cli(world.config)
    run("storylines", "add", "border", "--title", "Border trade", "--keyword", "Dandong")
    run("storylines", "pause", "friendship-year")
    followup = next(s.item_id for m in outcome.data.storylines for s in m.stories if s.decision == "followup")
    storyline = next(m.id for m in outcome.data.storylines if any(s.item_id == followup for s in m.stories))
    if storyline != "friendship-year":
        run("items", "mark", str(followup), "--storyline", storyline, "--no")
    for suggestion in outcome.data.suggestions:
        run("storylines", "suggest", "--dismiss", str(suggestion.id))
    store.update_feed(world.db, world.db.execute("SELECT min(id) FROM feeds").fetchone()[0], error_count=9,
                      last_error="cannot connect")
    world.db.conn.commit()

    assert run("digest", "--date", DAY.isoformat(), "--stdout").output.encode() == written
    again = daily.collect(world.db, world.settings, outcome.data.period)
    assert again == outcome.data and digest.subject(again, "[sw]") == subject
    assert daily.digest_message(world.settings, again, END).get_body(("plain",)).get_content() == email.get_content()


def test_the_cli_calls_only_an_unrecorded_digest_a_preview(tmp_path: Path) -> None:
    hours = 12 - dt.datetime.now(UTC).hour  # a zone where it is about noon: no midnight between the runs
    zone = f"Etc/GMT{-hours:+d}" if hours else "Etc/GMT"
    config = tmp_path / "storywatch.toml"
    config.write_text(f'[storage]\npath = "sw.db"\n[digest]\ntime = "23:59"\ntimezone = "{zone}"\n'
                      'output_dir = "digests"\n', encoding="utf-8")
    unpolled = Cli(config)("digest").output
    assert ("(a preview: no feed has answered yet; the first digest is kept after the first poll that one answers, "
            "or at 23:59)") in unpolled
    assert "Nothing sent: no feed has answered yet" in Cli(config)("digest", "--send").output  # exit 0
    assert "is still to come" in Cli(config)("digest", "--date", "2999-01-01", ok=False).output
    Cli(config)("feeds", "add", "http://127.0.0.1:9/feed", "--no-check")  # nothing listens there
    assert Cli(config)("poll", ok=False).exit_code == 3  # a cycle in which every feed failed
    assert "no feed has answered yet" in Cli(config)("digest").output  # still the seeds only: not kept
    Cli(config)("feeds", "remove", "http://127.0.0.1:9/feed", "--yes")
    assert Cli(config)("poll").exit_code == 0  # a cycle of no feed: feeds are still to be added
    assert "no feed has answered yet" in Cli(config)("digest").output
    config.write_text(config.read_text().replace("23:59", "00:00"))  # past today's digest time, but the first
    assert "no feed has answered yet" in Cli(config)("digest").output  # poll came after it: wait for tomorrow's
    # A digest time has passed since the first poll: the first digest holds the seeds, and says which feeds fail.
    polled = store.open_store(tmp_path / "sw.db")
    polled.execute("UPDATE cycles SET started_at = '2000-01-01T00:00:00Z'")
    polled.conn.commit()
    first = Cli(config)("digest").output
    assert "preview" not in first  # the first digest, recorded
    again = Cli(config)("digest").output
    assert again.endswith("(today's digest, as it was written)\n") and "preview" not in again
    day_file = next((tmp_path / "digests").iterdir())
    kept = day_file.read_bytes()
    Cli(config)("digest", "--since", "2d", "--format", "html")  # a period has its own files
    files = sorted(p.name for p in (tmp_path / "digests").iterdir())
    assert files == [f"{p}_to_{day_file.stem}.{ext}" for p in [files[0].split("_")[0]] for ext in ("html", "md")] + [
        day_file.name]
    assert day_file.read_bytes() == kept
    Cli(config)("digest", "--include-backfill")  # another digest: its own file, not kept
    assert day_file.read_bytes() == kept and (day_file.parent / f"{day_file.stem}-with-backfill.md").exists()
    assert Cli(config)("digest", "--send", "--include-backfill", ok=False).exit_code == 2
    config.write_text(config.read_text().replace("00:00", "23:59"))
    db = store.open_store(tmp_path / "sw.db")
    db.execute("UPDATE digests SET day = '2000-01-01'")  # an older digest only: today's is not due before 23:59
    db.conn.commit()
    assert "(a preview: today's digest is due at 23:59)" in Cli(config)("digest").output


def test_an_empty_period_gives_a_short_digest_that_says_so(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path))
    db = store.open_store(settings.storage.path)
    store.record_digest(db, DAY - dt.timedelta(days=1), START - dt.timedelta(days=1), START, "x.md", START,
                        to_send=False)
    store.record_cycle(db, START, START, 0.0, interval=None, feeds=0, new_items=0, followups=0, errors=0)
    outcome = daily.scheduled_digest(db, settings, END)
    assert outcome is not None
    md, html = outcome.files
    assert md.read_text(encoding="utf-8") == (
        "# Digest for Monday 23 November 2026\n\n"
        "2026-11-22 07:00 to 2026-11-23 07:00 (Europe/Berlin): **0 new items**, **0 follow-ups**, "
        "**0 storylines moved**.\n\n"
        "Nothing new in this period: no new items, no follow-ups, no edits.\n")
    assert "<p>Nothing new in this period: no new items, no follow-ups, no edits.</p>" in html.read_text(encoding="utf-8")
    assert digest.subject(outcome.data, "[storywatch]") == "[storywatch] 2026-11-23: nothing new"
    assert store.digest_row(db, DAY) is not None


def test_a_day_with_nothing_new_still_lists_suggestions_quiet_storylines_and_sources(world: Built) -> None:
    next_day = digest.day_period(DAY + dt.timedelta(days=1), world.settings.digest.time, BERLIN)
    data = daily.collect(world.db, world.settings, next_day)
    assert data.empty and digest.subject(data, "[sw]") == "[sw] 2026-11-24: nothing new"
    md = digest.render_markdown(data)
    assert [line for line in md.splitlines() if line.startswith("#")] == [
        "# Digest for Tuesday 24 November 2026", "## Suggested storylines", "## Quiet", "## Sources"]
    assert "\n\nNothing new in this period: no new items, no follow-ups, no edits.\n\n## Suggested" in md
    assert "- China–North Korea high-level exchanges: no follow-up for 14 days" in md


# ── periods: DST ──────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("day", "start", "end", "hours"), [
    (dt.date(2024, 3, 30), "2024-03-29 06:00", "2024-03-30 06:00", 24),
    (dt.date(2024, 3, 31), "2024-03-30 06:00", "2024-03-31 05:00", 23),  # clocks go forward at 02:00
    (dt.date(2024, 4, 1), "2024-03-31 05:00", "2024-04-01 05:00", 24),
    (dt.date(2024, 10, 27), "2024-10-26 05:00", "2024-10-27 06:00", 25),  # clocks go back at 03:00
    (dt.date(2024, 10, 28), "2024-10-27 06:00", "2024-10-28 06:00", 24),
])
def test_day_periods_around_dst_changes(day: dt.date, start: str, end: str, hours: int) -> None:
    period = digest.day_period(day, dt.time(7, 0), BERLIN)
    assert (period.start, period.end, period.day, period.zone) == (at(start), at(end), day, "Europe/Berlin")
    assert period.end - period.start == dt.timedelta(hours=hours)
    assert period.end.astimezone(BERLIN).time() == dt.time(7, 0)


def test_consecutive_day_periods_neither_gap_nor_overlap_across_a_year() -> None:
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=n) for n in range(366)]
    periods = [digest.day_period(d, dt.time(7, 0), BERLIN) for d in days]
    assert all(a.end == b.start for a, b in zip(periods, periods[1:]))
    lengths = sorted({(p.end - p.start).total_seconds() / 3600 for p in periods})
    assert lengths == [23.0, 24.0, 25.0]
    assert [p.day for p in periods if p.end - p.start != dt.timedelta(days=1)] == [dt.date(2024, 3, 31),
                                                                                   dt.date(2024, 10, 27)]


def test_a_digest_time_in_the_spring_gap_or_the_autumn_repeat_still_chains() -> None:
    """02:30 does not exist on 2024-03-31 in Berlin and happens twice on 2024-10-27: zoneinfo reads
    it with the offset before the change (fold 0), and the periods still meet end to start."""
    spring = [digest.day_period(dt.date(2024, 3, 30) + dt.timedelta(days=n), dt.time(2, 30), BERLIN) for n in range(3)]
    assert [p.end for p in spring] == [at("2024-03-30 01:30"), at("2024-03-31 01:30"), at("2024-04-01 00:30")]
    autumn = [digest.day_period(dt.date(2024, 10, 26) + dt.timedelta(days=n), dt.time(2, 30), BERLIN) for n in range(3)]
    assert [p.end for p in autumn] == [at("2024-10-26 00:30"), at("2024-10-27 00:30"), at("2024-10-28 01:30")]
    for periods in (spring, autumn):
        assert all(a.end == b.start for a, b in zip(periods, periods[1:]))


def test_next_period_runs_from_the_last_digest_to_now() -> None:
    now = at("2024-03-31 05:00")
    assert digest.next_period(at("2024-03-30 06:00"), now, BERLIN) == digest.Period(
        at("2024-03-30 06:00"), now, dt.date(2024, 3, 31), "Europe/Berlin")
    assert digest.next_period(None, now, BERLIN).start == digest.EPOCH
    # Just after midnight local time (still the previous day in UTC) the digest is the local day's.
    assert digest.next_period(now, at("2024-10-26 22:30"), BERLIN).day == dt.date(2024, 10, 27)


@pytest.mark.parametrize(("first_day", "change_day", "hours"), [
    (dt.date(2024, 3, 28), dt.date(2024, 3, 31), 23),
    (dt.date(2024, 10, 24), dt.date(2024, 10, 27), 25),
])
def test_the_scheduled_digest_across_a_dst_change(tmp_path: Path, first_day: dt.date, change_day: dt.date,
                                                   hours: int) -> None:
    """The worker runs at 07:00 local time every day: each digest starts where the previous one
    ended, the day of the change is 23 or 25 hours long, and every item is in exactly one digest."""
    settings = load_settings(write_config(tmp_path, other_items=1000))
    db = store.open_store(settings.storage.path)
    store.add_feed(db, WIRE, at("2024-01-01 00:00"), name="Korea Wire")
    first_seen = [at(f"{first_day:%Y-%m-%d} 00:30") + dt.timedelta(minutes=30 * n) for n in range(6 * 48)]
    for n, when in enumerate(first_seen):
        save(db, item(f"h{n}", f"Story {n}", f"Text of story {n} with enough words to be a story." * 2,
                      published=when.strftime("%Y-%m-%d %H:%M"), feed=1, publisher="Korea Wire"))
    shown: list[int] = []
    for n in range(5):
        day = first_day + dt.timedelta(days=n)
        digest_time = dt.datetime.combine(day, dt.time(7, 0), tzinfo=BERLIN).astimezone(UTC)
        before = daily.due_digest(db, settings, digest_time - dt.timedelta(minutes=1))
        assert before.preview == (n > 0) and not before.recorded  # the first digest is due at once
        outcome = daily.scheduled_digest(db, settings, digest_time)
        assert outcome is not None and outcome.data.period.day == day
        assert daily.scheduled_digest(db, settings, digest_time + dt.timedelta(minutes=1)) is None  # once a day
        shown += [s.item_id for s in outcome.data.other]
    rows = list(db.query("SELECT day, period_start, period_end FROM digests ORDER BY day"))
    assert [r["day"] for r in rows] == [f"{first_day + dt.timedelta(days=n)}" for n in range(5)]
    assert all(a["period_end"] == b["period_start"] for a, b in zip(rows, rows[1:]))
    lengths = {r["day"]: (dt.datetime.fromisoformat(r["period_end"]) - dt.datetime.fromisoformat(r["period_start"]))
               for r in rows[1:]}
    assert lengths == {f"{d}": dt.timedelta(hours=hours if d == change_day else 24)
                       for d in (first_day + dt.timedelta(days=n) for n in range(1, 5))}
    last_end = dt.datetime.fromisoformat(rows[-1]["period_end"])
    expected = [n + 1 for n, when in enumerate(first_seen) if when < last_end]
    assert sorted(shown) == expected  # no item missed, none shown twice


def test_due_digest_uses_the_local_digest_time_on_both_sides_of_a_change(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path))
    db = store.open_store(settings.storage.path)
    store.record_digest(db, dt.date(2024, 3, 30), at("2024-03-29 06:00"), at("2024-03-30 06:00"), "x", START,
                        to_send=False)
    assert daily.due_digest(db, settings, at("2024-03-31 04:59")).preview  # 06:59 summer time
    due = daily.due_digest(db, settings, at("2024-03-31 05:00"))  # 07:00 summer time
    assert not due.preview and due.period.start == at("2024-03-30 06:00") and due.period.day == dt.date(2024, 3, 31)
    store.record_digest(db, dt.date(2024, 10, 26), at("2024-10-25 05:00"), at("2024-10-26 05:00"), "x", START,
                        to_send=False)
    assert daily.due_digest(db, settings, at("2024-10-27 05:30")).preview  # 06:30 winter time
    assert not daily.due_digest(db, settings, at("2024-10-27 06:00")).preview


# ── hostile text from feeds ───────────────────────────────────────────────────────────────

EVIL_TITLE = "# Breaking: <script>alert(1)</script> [win](http://evil.example) ![](http://t.example/p.gif)"
EVIL_TEXT = ("<img src=x onerror=alert(1)> <iframe src=http://evil.example></iframe> <style>body{display:none}</style> "
             "Click [here](javascript:alert(1)) or ![pixel](http://track.example/p.gif?u=1) *now* `rm -rf` "
             "<a href=\"http://evil.example\" onclick=\"steal()\">prize</a> & more.")
HOSTILE_URLS = {
    "js": "javascript:alert(1)",
    "js-case": " JaVaScRiPt:alert(document.cookie)",
    "js-newline": "java\nscript:alert(1)",
    "data": "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript": "vbscript:msgbox(1)",
    "relative": "//evil.example/x",
    "mailto": "mailto:someone@example.org",
    "quotes": 'http://ok.example/a b)(c"d<e onerror=x>',
    "fine": "https://ok.example/story?id=1&ref=feed",
}


class Tags(HTMLParser):
    """Every element and attribute of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def hostile_world(tmp_path: Path) -> Built:
    built = build(tmp_path)
    db = built.db
    store.add_feed(db, "https://evil.example/feed", at("2026-08-01 00:00"),
                   name="<b onclick=alert(1)>Evil</b> **Press**")
    evil_feed = next(db.query("SELECT id FROM feeds WHERE url = 'https://evil.example/feed'"))["id"]
    store.record_fetch(db, evil_feed, at("2026-11-21 06:00"), kind="ok", status=200)
    store.record_fetch(db, evil_feed, at("2026-11-22 12:00"), kind="error",
                       error="not a feed: <script>alert('err')</script> [x](javascript:alert(1))")
    db.conn.commit()
    publisher = "<img src=x onerror=alert(1)> [Evil](http://evil.example)"
    built.ids["evil"] = save(db, item("evil", EVIL_TITLE, EVIL_TEXT, published="2026-11-22 21:00", feed=evil_feed,
                                      publisher=publisher, url="javascript:alert(1)"))
    save(db, item("evil-copy", "copy", EVIL_TEXT, published="2026-11-22 21:30", feed=1,
                  publisher="<script>also()</script>"), Placement(dup_of=built.ids["evil"], dup_kind="near",
                                                                   cluster_id=built.ids["evil"]))
    store.save_followups(db, [FollowUp("russia-turn", built.ids["evil"], 0.5, 0.25, 0.5, {
        "names": ["<script>n()</script>", "[n](javascript:x)"], "top_terms": [["<iframe src=x>", 0.2]]},
        ("<img src=y onerror=z>", "![p](http://t.example/q.gif)"), built.ids["seed-3"])], at("2026-11-22 21:05"))
    for n, (key, url) in enumerate(HOSTILE_URLS.items()):
        save(db, item(f"url-{key}", f"Link test {key} <svg onload=alert({n})>", f"Text {n}." + " filler" * 30,
                      published=f"2026-11-22 {7 + n:02d}:30", feed=evil_feed, publisher="Evil Press", url=url))
    store.save_suggestion(db, "<script>s()</script> ## Take over", ["[t](javascript:t)", "<b>bold</b>"],
                          [built.ids["evil"]], 1,
                          at("2026-11-22 00:00"), at("2026-11-22 00:00"), at("2026-11-22 19:00"))
    return built


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[str, str, str]:
    built = hostile_world(tmp_path)
    settings = load_settings(write_config(tmp_path, other_items=30))
    data = daily.collect(built.db, settings, built.period)
    return digest.render_markdown(data), digest.render_html(data), digest.render_text(data)


def test_hostile_markdown_is_escaped_literally(hostile: tuple[str, str, str]) -> None:
    md = hostile[0]
    assert ("### \\# Breaking: \\<script\\>alert(1)\\</script\\> \\[win\\](http://evil.example) "
            "!\\[\\](http://t.example/p.gif)\n") in md  # no link: its URL is javascript:
    assert ("\\<img src=x onerror=alert(1)\\> \\[Evil\\](http://evil.example), 2026-11-22 22:00\n") in md
    assert ("Why: mentions “\\<script\\>n()\\</script\\>”, “\\[n\\](javascript:x)”; shares “\\<iframe src=x\\>”; "
            "closest to “Putin and Kim sign a partnership treaty”; score 0.50, threshold 0.25.") in md
    assert "New in this story: \\<img src=y onerror=z\\>, !\\[p\\](http://t.example/q.gif)." in md
    assert "Also published by 1 source: \\<script\\>also()\\</script\\>." in md
    assert "- **\\<script\\>s()\\</script\\> ## Take over**: 1 item from 1 source, about “\\[t\\](javascript:t)”" in md
    assert ("- \\<b onclick=alert(1)\\>Evil\\</b\\> \\*\\*Press\\*\\* (https://evil.example/feed): failing (1 in a row): "
            "not a feed: \\<script\\>alert('err')\\</script\\> \\[x\\](javascript:alert(1))") in md
    # Even a viewer that passes raw HTML through finds no tag, image or link of the feed's making.
    rendered = MarkdownIt("commonmark", {"html": True}).render(md)
    parser = Tags()
    parser.feed(rendered)
    assert {tag for tag, _ in parser.tags} <= {"h1", "h2", "h3", "p", "ul", "li", "a", "strong", "code", "blockquote"}
    hrefs = [attrs["href"] or "" for tag, attrs in parser.tags if tag == "a"]
    assert all(re.match(r"https?://[a-z]+\.example/", h) for h in hrefs), hrefs
    assert not any("evil.example" in h or "track.example" in h or "t.example" in h for h in hrefs)


def test_only_http_links_survive_and_are_encoded(hostile: tuple[str, str, str]) -> None:
    md = hostile[0]
    links = {key: line for key in HOSTILE_URLS for line in md.splitlines() if f"Link test {key} " in line}
    assert len(links) == len(HOSTILE_URLS)
    for key in ("js", "js-case", "js-newline", "data", "vbscript", "relative", "mailto"):
        assert links[key].startswith(f"- Link test {key} \\<svg onload=alert(") and "](" not in links[key], links[key]
    assert links["quotes"].startswith(
        "- [Link test quotes \\<svg onload=alert(7)\\>](http://ok.example/a%20b%29%28c%22d%3Ce%20onerror=x%3E) (")
    assert links["fine"].startswith("- [Link test fine \\<svg onload=alert(8)\\>](https://ok.example/story?id=1&ref=feed) (")


def test_hostile_html_has_no_active_content(hostile: tuple[str, str, str]) -> None:
    html = hostile[1]
    parser = Tags()
    parser.feed(html)
    tags = {tag for tag, _ in parser.tags}
    assert tags <= {"html", "head", "meta", "title", "body", "h1", "h2", "h3", "p", "ul", "li", "a", "strong", "code",
                    "blockquote", "table", "tr", "td", "div"}, tags
    assert not tags & {"script", "style", "iframe", "img", "svg", "object", "embed", "form", "link", "base"}
    for tag, attrs in parser.tags:
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        assert "url(" not in (attrs.get("style") or "") and "expression" not in (attrs.get("style") or "")
    hrefs = [attrs["href"] or "" for tag, attrs in parser.tags if tag == "a"]
    # 3 follow-ups (the hostile one's javascript: URL makes no link), 1 found later, 1 edit, 5 other items + 2 hostile ones
    assert all(h.startswith(("http://", "https://")) for h in hrefs) and len(hrefs) == 3 + 1 + 1 + 5 + 2
    assert "https://ok.example/story?id=1&amp;ref=feed" in html
    assert all(attrs.get("rel") == "noopener noreferrer nofollow" for tag, attrs in parser.tags if tag == "a")
    lowered = html.lower()
    for needle in ("<script", "<style", "<iframe", "<img", "<svg", "javascript:alert(1)\"", "href=\"data:",
                   "href=\"javascript:", "href=\"vbscript:", "href=\"mailto:", "href=\"//"):
        assert needle not in lowered, needle
    # What the reader sees: the hostile text, as text.
    assert ("<h3># Breaking: &lt;script&gt;alert(1)&lt;/script&gt; [win](http://evil.example) "
            "![](http://t.example/p.gif)</h3>") in html


def test_hostile_plain_text_shows_the_text_as_it_was(hostile: tuple[str, str, str]) -> None:
    text = hostile[2]
    assert f"\n{EVIL_TITLE}\n" in text  # the heading marks go, the title's own "#" stays
    assert "Link test fine <svg onload=alert(8)> <https://ok.example/story?id=1&ref=feed> (Evil Press, " in text
    assert "\n- Link test js <svg onload=alert(0)> (Evil Press, 2026-11-22 08:30)\n" in text
    assert "Also published by 1 source: <script>also()</script>." in text
    assert "\\" not in text  # no Markdown escape left behind


def test_escape_and_safe_url_units() -> None:
    assert digest.escape("2024. A year") == "2024\\. A year"  # an ordered list marker, shown as typed
    assert digest.escape("1) first") == "1\\) first"
    assert digest.escape("- item\n\n  + more") == "\\- item + more"  # one line: no blocks from newlines
    assert digest.escape("> quote") == "\\> quote" and digest.escape("=== x") == "\\=== x"
    assert digest.escape("a_b*c`d\\e[f]g<h>&i") == "a\\_b\\*c\\`d\\\\e\\[f\\]g\\<h\\>\\&i"
    assert digest.safe_url("HTTPS://Example.org/a b") == "HTTPS://Example.org/a%20b"
    assert [digest.safe_url(u) for u in ("http:/x", "http://", "", None, "ftp://example.org/f", "http://[::1")] == [
        None, None, None, None, None, None]
    assert digest.sparkline([0, 1, 20, 10]) == "▁▂█▅"  # one follow-up in a busy month still shows
    assert digest.sparkline([0, 0]) == "▁▁" and digest.sparkline([]) == ""


def test_the_lead_is_one_or_two_sentences() -> None:
    assert digest.lead("Mr. Kim met U.S. envoys. They talked. A third.") == "Mr. Kim met U.S. envoys. They talked."
    long = "First sentence " + "word " * 40 + "ends. Second sentence " + "word " * 40 + "ends."
    assert digest.lead(long) == " ".join(long.split()).split(". Second")[0] + "."
    assert digest.lead("word " * 100).endswith("…") and len(digest.lead("word " * 100)) <= digest.LEAD_CHARS


# ── backfill ──────────────────────────────────────────────────────────────────────────────


def test_backfill_items_are_left_out_unless_asked_for(world: Built) -> None:
    plain = daily.collect(world.db, world.settings, world.period)
    with_backfill = daily.collect(world.db, world.settings, world.period, include_backfill=True)
    assert world.ids["backfill"] not in {s.item_id for s in plain.other} and plain.new_items == 8
    assert with_backfill.new_items == 9 and with_backfill.other_total == 6
    assert "Archive: the 2019 summit" not in digest.render_markdown(plain)
    # The CLI flag: published in 2019, so it comes last among the other items, beyond the cap of 3.
    run = Cli(world.config)
    without = run("digest", "--date", "2026-11-23", "--stdout").output
    included = run("digest", "--date", "2026-11-23", "--stdout", "--include-backfill").output
    assert "**8 new items**" in without and "**9 new items**" in included
    assert "## Other new items (6)" in included and "- … and 3 more" in included
    big = load_settings(write_config(world.config.parent, other_items=10))
    md = digest.render_markdown(daily.collect(world.db, big, world.period, include_backfill=True))
    assert md.split("\n## Sources")[0].rstrip().endswith(
        "- [Archive: the 2019 summit in Pyongyang](https://koreawire.example/backfill) (Korea Wire, 2019-06-20 10:00)")


def test_a_backfilled_follow_up_is_found_later_unless_backfill_is_included(world: Built) -> None:
    followup(world.db, "friendship-year", world.ids["backfill"], score=0.5, names=["Friendship Year"], terms=["summit"])
    plain = daily.collect(world.db, world.settings, world.period)
    assert world.ids["backfill"] not in {s.item_id for section in plain.storylines for s in section.stories}
    assert [(g.id, [s.item_id for s in g.stories]) for g in plain.found_later] == [
        ("friendship-year", [world.ids["backfill"]]), ("high-level", [world.ids["hl-late"]])]
    assert "- [Archive: the 2019 summit in Pyongyang](https://koreawire.example/backfill) (Korea Wire), " \
        "published 2019-06-20 10:00" in digest.render_markdown(plain)
    included = daily.collect(world.db, world.settings, world.period, include_backfill=True)
    assert [s.item_id for s in included.storylines[0].stories][-1] == world.ids["backfill"]
    assert included.followups == 4 and [g.id for g in included.found_later] == ["high-level"]


# ── Atom export ───────────────────────────────────────────────────────────────────────────


def test_export_atom_is_the_storyline_timeline(world: Built, tmp_path: Path) -> None:
    out = tmp_path / "fy.atom"
    result = Cli(world.config)("export", "atom", "--storyline", "friendship-year", "-o", str(out))
    assert result.output == f"Wrote {out}\n"
    feed = feedparser.parse(out.read_bytes())
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "atom10" and feed.feed.title == "China–DPRK Friendship Year"
    assert feed.feed.subtitle == "The 75th anniversary of diplomatic ties, celebrated in 2024."
    assert feed.feed.id == "tag:storywatch,2026:storyline/friendship-year"
    assert feed.feed.updated == "2026-11-22T14:30:00Z"  # its newest entry
    titles = [e.title for e in feed.entries]
    assert titles == [
        "Closing ceremony of the China-DPRK Friendship Year held in Pyongyang",
        "Chinese art troupe arrives for Friendship Year finale",
        "Friendship Year exhibition opens in Dandong",  # its current title
        "Friendship Year exhibition opens, part 3",
        "Friendship Year exhibition opens, part 2",
        "Friendship Year exhibition opens, part 1",
        "China and North Korea open the Friendship Year",
    ]
    closing, seed = feed.entries[0], feed.entries[-1]
    assert closing.id == f"tag:storywatch,2026:item/{world.ids['closing']}"
    assert closing.link == "https://koreawire.example/closing" and closing.author == "Korea Wire"
    assert closing.published == "2026-11-22T14:30:00Z"
    assert closing.summary == ("Why: mentions “Friendship Year”, “Choe Ryong Hae”; shares “closing ceremony”, "
                               "“ambassador”, “pyongyang”, “success”; score 0.61, threshold 0.25. "
                               "New in this story: Choe Ryong Hae, Wang Yajun.")
    assert seed.summary == "Seed of the storyline." and seed.author == "South China Morning Post"
    printed = Cli(world.config)("export", "atom", "--storyline", "friendship-year").output
    assert printed == out.read_text(encoding="utf-8")
    missing = Cli(world.config)("export", "atom", "--storyline", "nope", ok=False)
    assert missing.exit_code == 1 and "no active storyline 'nope'" in missing.output


def test_export_atom_escapes_hostile_text(tmp_path: Path) -> None:
    built = hostile_world(tmp_path)
    result = Cli(built.config)("export", "atom", "--storyline", "russia-turn")
    xml = result.output
    assert "<script" not in xml and "<img" not in xml and "javascript:" not in xml.split("<summary>")[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in xml
    feed = feedparser.parse(xml.encode())
    assert not feed.bozo, feed.bozo_exception
    evil = next(e for e in feed.entries if e.id.endswith(f"/{built.ids['evil']}"))
    assert [link for link in evil.get("links", []) if link.get("rel") == "alternate"] == []  # javascript: dropped
    assert evil.link == evil.id  # feedparser's stand-in when an entry has no link
    assert evil.title_detail.type == "text/plain"
    assert evil.title == EVIL_TITLE  # the text itself, as text
    assert evil.summary == ("Why: mentions “<script>n()</script>”, “[n](javascript:x)”; shares “<iframe src=x>”; "
                            "score 0.50, threshold 0.25. New in this story: <img src=y onerror=z>, "
                            "![p](http://t.example/q.gif).")


def test_atom_feeds_are_rewritten_only_when_a_timeline_changes(world: Built) -> None:
    store.save_storyline(world.db, StorylineConfig(id="not-started", title="Not started yet"), at("2026-11-01 00:00"),
                         origin="config")  # its seeds are not stored yet: an empty timeline
    written = daily.write_atom_feeds(world.db, world.settings, END)
    assert sorted(p.name for p in written) == ["friendship-year.atom", "high-level.atom", "not-started.atom",
                                               "russia-turn.atom"]
    empty = feedparser.parse(written[[p.name for p in written].index("not-started.atom")].read_bytes())
    assert empty.entries == [] and empty.feed.updated == "2026-11-01T00:00:00Z"  # not the clock
    assert daily.write_atom_feeds(world.db, world.settings, END + dt.timedelta(hours=1)) == []
    late = save(world.db, item("late", "Kim Jong Un receives Russian envoy", "The envoy was received." * 4,
                               published="2026-11-23 08:00", feed=1, publisher="Korea Wire"))
    followup(world.db, "russia-turn", late, score=0.5, names=["Kim Jong Un"], terms=["envoy"], decided="2026-11-23 08:01")
    rewritten = daily.write_atom_feeds(world.db, world.settings, END + dt.timedelta(hours=2))
    assert [p.name for p in rewritten] == ["russia-turn.atom"]
    assert feedparser.parse(rewritten[0].read_bytes()).entries[0].title == "Kim Jong Un receives Russian envoy"
