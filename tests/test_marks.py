"""`storywatch items mark`: a reader's judgement of an item for a storyline, kept in the store,
learnt from by the tracker and in force from the next decision on.

The world of test_why: the shipped config and a beat feed on a local server whose last item, a
Russian delegation received in Pyongyang, north-korea-russia takes. A second delegation, told in
other words, arrives in a later poll: taken like the first unless the reader said the first was
not a follow-up.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import Cli, World
from tests.feedserver import Reply
from tests.test_tracking import followups_of, korea  # noqa: F401 (korea: the fixture)
from tests.test_why import DELEGATION, beat_feed, item_id, polled, section, shown
from worker import digest, evaluate
from worker.digest import daily
from worker.tracking import vectors
from worker.config import load_settings
from worker.tracking.decisions import Doc, StorylineSpec
from worker.tracking.settings import TrackerConfig
from worker.tracking.track import Tracker

UTC = dt.timezone.utc
RUSSIA = "north-korea-russia"
SECOND = "Russian Federation Delegation Received by Kim Jong Un"
SECOND_BODY = ("Pyongyang, December 28 (KCNA) -- A delegation of the Russian Federation was received in "
               "Pyongyang by Kim Jong Un, general secretary of the Workers' Party of Korea. Exchanges "
               "between the DPRK and Russia and between the two countries' parties were discussed.")


def second_delegation(world: World) -> None:
    """The feed again, now with a second delegation told in other words, polled two days later."""
    body = beat_feed().decode().replace(
        "</channel>", f'<item><guid isPermaLink="false">second</guid><title>{SECOND}</title>'
                      f"<link>https://kcna.example/second</link><description>{SECOND_BODY}</description>"
                      "<pubDate>Sat, 28 Dec 2024 08:00:00 GMT</pubDate></item></channel>")
    world.server.routes["/korea"] = Reply(body=body.encode())
    world.clock.now = dt.datetime(2024, 12, 28, 12, tzinfo=UTC)
    world.poll(force=True)


def mark(world: World, item: int, *flags: str, ok: bool = True) -> str:
    return Cli(world.config)("items", "mark", str(item), *flags, ok=ok).output


def test_without_a_mark_the_second_delegation_is_a_follow_up_like_the_first(korea: World) -> None:
    polled(korea, beat_feed(), dt.datetime(2024, 12, 26, 12, tzinfo=UTC))
    assert DELEGATION in followups_of(korea, RUSSIA)
    second_delegation(korea)
    assert SECOND in followups_of(korea, RUSSIA)  # the control for the test below


def test_a_no_mark_unlinks_the_item_and_decides_no_for_the_next_item_like_it(korea: World) -> None:
    polled(korea, beat_feed(), dt.datetime(2024, 12, 26, 12, tzinfo=UTC))
    first = item_id(korea, DELEGATION)
    assert "marked not a follow-up of north-korea-russia" in mark(korea, first, "--storyline", RUSSIA, "--no")
    assert DELEGATION not in followups_of(korea, RUSSIA)

    second_delegation(korea)  # the same worker, its tracker built before the mark
    assert SECOND not in followups_of(korea, RUSSIA)
    text, data = shown(korea, item_id(korea, SECOND))
    russia = data[RUSSIA]
    like = russia["like_marked"]
    assert not russia["followup"] and (like["item_id"], like["followup"]) == (first, False)
    assert like["similarity"] >= TrackerConfig().mark_near
    assert f"like #{first}, which you marked not a follow-up" in section(text, RUSSIA)
    assert f"{RUSSIA}: not a follow-up (by your mark)" in section(text, RUSSIA)
    assert "you marked it not a follow-up" in section(shown(korea, first)[0], RUSSIA)

    timeline = Cli(korea.config)("storylines", "show", RUSSIA).output
    assert "Marked not a follow-up by you (1):" in timeline and f"#{first}" in timeline.split("Marked not")[1]
    listed = json.loads(Cli(korea.config)("storylines", "show", RUSSIA, "--json").output)
    assert [m["item_id"] for m in listed["marked_not_followups"]] == [first]


def test_a_yes_mark_links_a_missed_item_and_holds_after_a_restart(korea: World) -> None:
    polled(korea, beat_feed(), dt.datetime(2024, 12, 26, 12, tzinfo=UTC))
    missed = item_id(korea, "Sports Games Held (5)")
    assert "Sports Games Held (5)" not in followups_of(korea, "friendship-year")
    mark(korea, missed, "--storyline", "friendship-year", "--yes")
    link = followups_of(korea, "friendship-year")["Sports Games Held (5)"]
    assert json.loads(str(link["reasons"])) == {"marked": True}

    korea._rt = None  # a restart: the tracker is built again from the store
    text, data = shown(korea, missed)
    assert data["friendship-year"]["followup"] and "your mark" in data["friendship-year"]["by"]
    assert "you marked it a follow-up" in section(text, "friendship-year")
    timeline = Cli(korea.config)("storylines", "show", "friendship-year").output
    assert f"#{missed}" in timeline and "marked a follow-up by you" in timeline
    entry = next(e for e in json.loads(Cli(korea.config)("storylines", "show", "friendship-year", "--json").output)
                 ["timeline"] if e["item_id"] == missed)
    assert entry["marked"] is True

    # Clearing the mark puts back the tracker's own decision: it had not linked the item.
    assert "now not linked (the tracker's own decision)" in mark(korea, missed, "--storyline", "friendship-year", "--clear")
    assert "Sports Games Held (5)" not in followups_of(korea, "friendship-year")
    assert list(korea.db.query("SELECT * FROM marks")) == []
    assert "unchanged: it had no mark" in mark(korea, missed, "--storyline", "friendship-year", "--clear")


def test_marks_toggled_and_cleared_give_back_the_trackers_own_link(korea: World) -> None:
    polled(korea, beat_feed(), dt.datetime(2024, 12, 26, 12, tzinfo=UTC))
    first = item_id(korea, DELEGATION)
    own = dict(followups_of(korea, RUSSIA)[DELEGATION])
    assert "now not linked" in mark(korea, first, "--storyline", RUSSIA, "--no")
    assert "now linked" in mark(korea, first, "--storyline", RUSSIA, "--yes")
    assert dict(followups_of(korea, RUSSIA)[DELEGATION]) == own  # its score and reasons, not a bare mark
    assert "unchanged: it was marked so already" in mark(korea, first, "--storyline", RUSSIA, "--yes")
    mark(korea, first, "--storyline", RUSSIA, "--no")
    assert "now linked (the tracker's own decision)" in mark(korea, first, "--storyline", RUSSIA, "--clear")
    assert dict(followups_of(korea, RUSSIA)[DELEGATION]) == own


def test_a_mark_survives_a_sigkill_and_rules_the_next_cycle(korea: World, tmp_path: Path) -> None:
    """The mark is committed before the command returns: a process killed (SIGKILL, no clean
    shutdown) right after it leaves it in the store, and the next worker decides by it."""
    polled(korea, beat_feed(), dt.datetime(2024, 12, 26, 12, tzinfo=UTC))
    first = item_id(korea, DELEGATION)
    korea.rt.close()
    korea._rt = None
    script = ("import os, signal, sys\n"
              "from worker.cli import cli\n"
              "try:\n"
              f"    cli(['--config', sys.argv[1], 'items', 'mark', '{first}', '--storyline', '{RUSSIA}', '--no'])\n"
              "except SystemExit:\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", script, str(korea.config)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert "marked not a follow-up" in done.stdout
    second_delegation(korea)  # a new worker: the next cycle
    assert DELEGATION not in followups_of(korea, RUSSIA) and SECOND not in followups_of(korea, RUSSIA)
    assert [(r["item_id"], r["followup"]) for r in korea.db.query("SELECT * FROM marks")] == [(first, 0)]


@pytest.mark.parametrize(("args", "message"), [
    (["999", "--storyline", RUSSIA, "--no"], "Error: no item with id 999 (see storywatch items)"),
    (["1", "--storyline", "nope", "--yes"], "Error: no storyline 'nope' is tracked (see storywatch storylines list)"),
    (["2", "--storyline", RUSSIA, "--yes"], f"Error: item 2 is a seed of {RUSSIA}: a seed needs no mark"),
])
def test_a_mark_of_an_unknown_item_or_storyline_is_one_line_and_exit_1(korea: World, args: list[str],
                                                                      message: str) -> None:
    korea.rt  # the store, with the seeds (items 1 to 5)
    result = Cli(korea.config)("items", "mark", *args, ok=False)
    assert result.exit_code == 1 and result.output.strip() == message
    assert list(korea.db.query("SELECT * FROM marks")) == []


@pytest.mark.parametrize("flags", [[], ["--yes", "--no"], ["--clear", "--yes"], ["--no", "--no", "--clear"]])
def test_mark_asks_for_one_verdict(korea: World, flags: list[str]) -> None:
    korea.rt
    result = Cli(korea.config)("items", "mark", "1", "--storyline", RUSSIA, *flags, ok=False)
    assert result.exit_code == 2 and "say one of --yes, --no or --clear" in result.output
    assert list(korea.db.query("SELECT * FROM marks")) == []


@pytest.mark.parametrize("command", ["mark", "show"])
def test_an_item_id_beyond_what_the_store_holds_is_a_usage_error_not_a_traceback(korea: World, command: str) -> None:
    korea.rt
    extra = ["--storyline", RUSSIA, "--yes"] if command == "mark" else []
    result = Cli(korea.config)("items", command, "99999999999999999999999", *extra, ok=False)
    assert result.exit_code == 2 and "is not in the range" in result.output and "Traceback" not in result.output


# ── the tracker's side ───────────────────────────────────────────────────────────────────────

def _doc(n: int, title: str, text: str) -> Doc:
    return Doc(f"d{n}", title, text, 1_700_000_000.0 + 3600 * n)


def _tracker() -> tuple[Tracker, list[Doc]]:
    """A storyline about a river bridge, and a stream of filler with bridge news in it."""
    seeds = tuple(_doc(n, f"Bridge over the Tarn river {n}", f"The new Tarn bridge at Albi opened to traffic, "
                                                             f"engineers said, after {n + 2} years of work.")
                  for n in range(3))
    tracker = Tracker(replace(TrackerConfig(), adapt=True))
    for n in range(3, 200):
        tracker.observe(_doc(n, f"Filler item {n}", f"Markets, weather and sport number {n} in the region."))
    tracker.add_storyline(StorylineSpec("bridge", "Tarn bridge", seeds, keywords=("Tarn bridge",)))
    return tracker, list(seeds)


def test_a_no_mark_takes_an_adopted_item_out_of_the_profile() -> None:
    tracker, _ = _tracker()
    taken = _doc(300, "Tarn bridge at Albi closed for repairs", "The Tarn bridge at Albi closed for repairs, "
                                                                "engineers said, after cracks were found.")
    assert tracker.process(taken).followups
    story = tracker._storylines["bridge"]
    assert "d300" in {m.id for m in story.members}  # adopted
    tracker.mark("bridge", taken, False)
    assert "d300" not in {m.id for m in story.members} and "d300" not in story.followups
    again = tracker.decide(taken)  # the marked item itself, decided again (a replay): its mark rules
    assert not again.followup.any() and again.like_marked[0] == ("d300", False, 1.0)
    tracker.mark("bridge", taken, None)
    assert "d300" not in story.marked and not tracker._marked


def test_a_yes_mark_joins_the_profile_as_a_seed_and_is_never_dropped() -> None:
    tracker, _ = _tracker()
    story = tracker._storylines["bridge"]
    odd = _doc(300, "Albi crossing works", "Works on the crossing at Albi continue, the town hall said.")
    tracker.mark("bridge", odd, True)
    member = next(m for m in story.members if m.id == "d300")
    assert member.is_seed and "d300" in story.followups
    for n in range(301, 301 + TrackerConfig().adapt_max + 5):  # adoptions beyond adapt_max drop the oldest adopted
        tracker.process(_doc(n, f"Tarn bridge at Albi news {n}", f"The Tarn bridge at Albi: engineers said {n}."))
    assert "d300" in {m.id for m in story.members}
    with pytest.raises(ValueError):
        tracker.mark("bridge", Doc("d0", "", "", 0.0), True)  # a seed needs no mark


def test_eval_beat_feedback_marks_what_was_taken_and_the_first_missed_item() -> None:
    """The reader of eval beat --feedback: after each decision the label of every item taken is
    revealed and marked, and with find_missed the first missed "yes" item; a missed item told
    like the marked one is found after it. Counts by month add up to the storylines'."""
    seeds = tuple(_doc(n, f"Bridge over the Tarn river {n}", f"The new Tarn bridge at Albi opened to traffic, "
                                                             f"engineers said, after {n + 2} years of work.")
                  for n in range(3))
    items = [evaluate.BeatItem(_doc(n, f"Filler item {n}", f"Markets, weather and sport number {n} in the region."),
                               {"bridge": "no"}) for n in range(3, 200)]
    ferry = "A ferry now crosses the river at Albi while the crossing is shut, the town hall said on {}."
    items += [evaluate.BeatItem(_doc(n, "Ferry service at Albi", ferry.format(n)), {"bridge": "yes"})
              for n in range(200, 204)]
    spec = StorylineSpec("bridge", "Tarn bridge", seeds, keywords=("Tarn bridge",))
    plain = evaluate.evaluate_beat(items, [spec], TrackerConfig())[0]
    months: dict[str, evaluate.BeatResult] = {}
    marked = evaluate.evaluate_beat(items, [spec], TrackerConfig(), feedback=True, find_missed=1, by_month=months)[0]
    assert plain.yes == marked.yes == sum(m.yes for m in months.values()) == 4
    assert marked.found > plain.found and marked.false_alarms <= plain.false_alarms


def test_unit_vectors_of_empty_items_are_never_shared() -> None:
    empty = vectors.NO_UNIT.as_dict()
    empty["x"] = 1.0
    assert vectors.NO_UNIT.as_dict() == {}


def test_eval_marks_measures_the_storylines_on_the_readers_own_marks(korea: World) -> None:
    korea.rt
    assert "No marks yet" in Cli(korea.config)("eval", "marks").output
    polled(korea, beat_feed(), dt.datetime(2024, 12, 26, 12, tzinfo=UTC))
    mark(korea, item_id(korea, DELEGATION), "--storyline", RUSSIA, "--no")
    mark(korea, item_id(korea, "Sports Games Held (5)"), "--storyline", "friendship-year", "--yes")
    before = list(korea.db.query("SELECT * FROM storyline_items ORDER BY storyline_id, item_id"))
    found = json.loads(Cli(korea.config)("eval", "marks", "--json").output)
    by_id = {s["storyline"]: s for s in found["storylines"]}
    # Each decided before its mark was known, as the worker decided them: the delegation taken
    # (a false alarm by the reader's mark), the sports games missed.
    assert (by_id[RUSSIA]["yes"], by_id[RUSSIA]["found"], by_id[RUSSIA]["false_alarms"]) == (0, 0, 1)
    assert (by_id["friendship-year"]["yes"], by_id["friendship-year"]["found"]) == (1, 0)
    assert set(by_id) == {RUSSIA, "friendship-year"}
    assert "friendship-year" in Cli(korea.config)("eval", "marks").output
    assert list(korea.db.query("SELECT * FROM storyline_items ORDER BY storyline_id, item_id")) == before


def test_a_decision_made_before_a_no_mark_was_committed_never_relinks_the_item(korea: World) -> None:
    """A look-back or backfill builds its tracker, then saves what it found seconds later: a
    "no" committed meanwhile holds over what it found."""
    from worker import store
    from worker.models import FollowUp
    polled(korea, beat_feed(), dt.datetime(2024, 12, 26, 12, tzinfo=UTC))
    first = item_id(korea, DELEGATION)
    mark(korea, first, "--storyline", RUSSIA, "--no")
    stale = FollowUp(storyline_id=RUSSIA, item_id=first, score=0.5, threshold=0.1, raw_score=0.5, reasons={},
                     novelty=(), closest_item_id=None)
    store.save_followups(korea.db, [stale], korea.clock())
    assert DELEGATION not in followups_of(korea, RUSSIA)


def test_one_wrong_yes_mark_moves_a_storyline_less_than_a_seed_would() -> None:
    tracker, _ = _tracker()
    story = tracker._storylines["bridge"]
    tracker.mark("bridge", _doc(300, "Filler item 300", "Markets, weather and sport number 300 in the region."), True)
    member = next(m for m in story.members if m.id == "d300")
    assert member.weight == TrackerConfig().mark_weight < 1.0


def test_marks_given_together_decide_as_marks_given_one_by_one() -> None:
    """A replay gives a storyline's marks in one batch (one background rebuild): the profile and
    the next decisions are those of the same marks given one at a time."""
    marks = [(_doc(300, "Tarn bridge at Albi closed", "The Tarn bridge at Albi closed, engineers said."), True),
             (_doc(301, "Filler item 301", "Markets, weather and sport number 301 in the region."), False),
             (_doc(302, "Albi crossing works", "Works on the crossing at Albi continue, the town hall said."), True),
             (_doc(300, "Tarn bridge at Albi closed", "The Tarn bridge at Albi closed, engineers said."), None)]
    one_by_one, _ = _tracker()
    for doc, followup in marks:
        one_by_one.mark("bridge", doc, followup)
    together, _ = _tracker()
    together.mark_many("bridge", marks)
    later = [_doc(n, f"Tarn bridge at Albi news {n}", f"The crossing at Albi: engineers said {n}.") for n in range(310, 316)]
    for doc in later:
        a, b = one_by_one.process(doc), together.process(doc)
        assert (a.followup.tolist(), a.score.tolist()) == (b.followup.tolist(), b.score.tolist())
    assert sorted(together._storylines["bridge"].marked) == ["d301", "d302"]


def test_a_follow_up_whose_reasons_cite_an_item_ruled_out_since_says_so(korea: World) -> None:
    polled(korea, beat_feed(), dt.datetime(2024, 12, 26, 12, tzinfo=UTC))
    second_delegation(korea)
    mark(korea, item_id(korea, SECOND), "--storyline", RUSSIA, "--yes")  # the reader's first view of it
    third = "Kim Jong Un Received Delegation of Russian Federation Again"
    body = korea.server.routes["/korea"].body.decode().replace(
        "</channel>", f'<item><guid isPermaLink="false">third</guid><title>{third}</title>'
                      "<link>https://kcna.example/third</link><description>Pyongyang, December 30 (KCNA) -- "
                      "Kim Jong Un, general secretary of the Workers' Party of Korea, received a delegation of "
                      "the Russian Federation again. Exchanges between the parties of the DPRK and Russia "
                      "were discussed once more.</description>"
                      "<pubDate>Mon, 30 Dec 2024 08:00:00 GMT</pubDate></item></channel>")
    korea.server.routes["/korea"] = Reply(body=body.encode())
    korea.clock.now = dt.datetime(2024, 12, 30, 12, tzinfo=UTC)
    korea.poll(force=True)
    second, last = item_id(korea, SECOND), item_id(korea, third)
    assert str(followups_of(korea, RUSSIA)[third]["closest_item_id"]) == str(second)  # decided before the mark
    mark(korea, second, "--storyline", RUSSIA, "--no")  # ...changed
    timeline = Cli(korea.config)("storylines", "show", RUSSIA).output
    why = timeline.split(f"#{last}")[1].split("\n")[1]
    assert f"closest to #{second} (" in why and "which you have since marked not a follow-up" in why
    listed = json.loads(Cli(korea.config)("storylines", "show", RUSSIA, "--json").output)["timeline"]
    assert [e["closest_ruled_out"] for e in listed if e["item_id"] == last] == [True]
    shown_id = Cli(korea.config)("items", "mark", f"#{last}", "--storyline", RUSSIA, "--clear").output
    assert shown_id.startswith(f"Item {last} mark cleared")  # an ID as listings show it, #N


def test_a_digest_written_again_for_a_past_day_is_as_written_then_and_a_new_one_heeds_the_mark(korea: World) -> None:
    polled(korea, beat_feed(), dt.datetime(2024, 12, 26, 12, tzinfo=UTC))
    settings = load_settings(korea.config)
    outcome = daily.scheduled_digest(korea.db, settings, dt.datetime(2024, 12, 27, 7, tzinfo=UTC))
    assert outcome is not None
    written = outcome.data
    assert DELEGATION in digest.render_markdown(written)
    delegation = item_id(korea, DELEGATION)
    mark(korea, delegation, "--storyline", RUSSIA, "--no")
    period, initial = daily.day_digest_period(korea.db, settings, dt.date(2024, 12, 27))
    again = daily.collect(korea.db, settings, period, initial=initial)
    assert digest.render_markdown(again) == digest.render_markdown(written)  # the day's digest, as sent
    today = digest.Period(period.start, dt.datetime.now(UTC), dt.date(2024, 12, 27), "UTC")
    assert DELEGATION not in str(daily.collect(korea.db, settings, today).storylines)  # the mark is heeded
