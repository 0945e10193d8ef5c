"""`storywatch items show ID`: why each storyline took the item or not, decided again on a tracker
rebuilt from the store as the worker builds it, without writing anything.

The world: the shipped config (three storylines, their seed files) and one feed on a local server,
polled once with the clock at the items' date, so the worker's decisions and the ones made again
see the same window and must agree to the last digit.

- A beat feed (every item names the DPRK, as KCNA's do): 26 everyday items, then "Kim Jong Un
  Receives Delegation of Russian Federation". north-korea-russia takes it by evidence (Russia in
  the title, the DPRK implied by the feed); friendship-year does not (none of its own names).
- The closing ceremony of the Friendship Year (friendship-year takes it) and a baseball final
  (no storyline takes it) on a general feed.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, World
from tests.feedserver import Reply, rss
from tests.test_tracking import BASEBALL, CLOSING, followups_of, korea  # noqa: F401 (korea: the fixture)
from worker import store, storylines
from worker.config import load_settings
from worker.report.why import render_why
from worker.why import ItemWhy, StorylineWhy

UTC = dt.timezone.utc
BEAT_TITLES = ["Farmers Bring In Rice Harvest", "Factory Overfulfils Production Plan", "Art Troupe Gives Performance",
               "Schoolchildren Visit Revolutionary Museum", "New Housing District Completed", "Sports Games Held"]
DELEGATION = "Kim Jong Un Receives Delegation of Russian Federation"


def beat_feed(count: int = 26) -> bytes:
    """An RSS feed of `count` everyday items that all name the DPRK, two a day from 13 Dec 2024,
    then the Russian delegation on 26 Dec: all of them in the 14 days before it."""
    items = []
    for n in range(count):
        body = (f"Pyongyang, December {13 + n // 2} (KCNA) -- Working people of the DPRK marked event {n} "
                f"in {['Kaesong', 'Wonsan', 'Hamhung', 'Sinuiju'][n % 4]} with {n + 3} brigades and officials.")
        items.append((f"beat-{n}", BEAT_TITLES[n % len(BEAT_TITLES)] + f" ({n})", body,
                      dt.datetime(2024, 12, 13, 8, tzinfo=UTC) + dt.timedelta(hours=n * 12)))
    body = ("Pyongyang, December 26 (KCNA) -- Kim Jong Un, general secretary of the Workers' Party of Korea, "
            "received a delegation of the Russian Federation in Pyongyang. The DPRK and Russia discussed "
            "exchanges between the two countries.")
    items.append(("delegation", DELEGATION, body, dt.datetime(2024, 12, 26, 8, tzinfo=UTC)))
    parts = ['<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>KCNA</title>'
             "<link>https://kcna.example/</link>"]
    for guid, title, text, when in items:
        parts.append(f'<item><guid isPermaLink="false">{guid}</guid><title>{title}</title>'
                     f"<link>https://kcna.example/{guid}</link><description>{text}</description>"
                     f"<pubDate>{when:%a, %d %b %Y %H:%M:%S} GMT</pubDate></item>")
    return ("".join(parts) + "</channel></rss>").encode()


def polled(world: World, body: bytes, at: dt.datetime) -> None:
    world.server.routes["/korea"] = Reply(body=body)
    world.clock.now = at  # the items are in the window the worker builds its tracker from
    world.poll()


def item_id(world: World, title: str) -> int:
    [row] = world.db.query("SELECT id FROM items WHERE title = ?", [title])
    return int(row["id"])


def shown(world: World, item: int) -> tuple[str, dict[str, Any]]:
    """`items show` as text (the why part) and its --json, with each storyline by id."""
    run = Cli(world.config)
    text = run("items", "show", str(item)).output
    data = json.loads(run("items", "show", str(item), "--json").output)
    return text[text.index("Storylines: why and why not"):], {s["id"]: s for s in data["tracking"]["storylines"]}


def section(text: str, storyline_id: str) -> str:
    """The lines of one storyline's decision in the why part."""
    start = text.index(f"\n  {storyline_id}: ")
    end = text.find("\n\n", start + 1)
    return text[start:end if end > 0 else None]


def stored(world: World) -> list[dict[str, Any]]:
    return [*world.db.query("SELECT * FROM storyline_items ORDER BY storyline_id, item_id"),
            *world.db.query("SELECT * FROM storylines ORDER BY id"), *world.db.query("SELECT count(*) FROM items")]


def test_items_show_says_why_the_storyline_that_took_an_item_did_and_why_another_did_not(korea: World) -> None:
    polled(korea, beat_feed(), dt.datetime(2024, 12, 26, 12, tzinfo=UTC))
    delegation = item_id(korea, DELEGATION)
    before = stored(korea)
    text, data = shown(korea, delegation)
    assert stored(korea) == before  # decided, not recorded: nothing written

    russia = data["north-korea-russia"]
    recorded = russia["recorded"]
    assert russia["followup"] and russia["by"] == ["evidence"] and recorded["decision"] == "followup"
    assert (russia["score"], russia["threshold"]) == (recorded["score"], recorded["threshold"])  # as the worker saw it
    units = {u["label"]: u for u in russia["evidence"]["units"]}
    assert units["Russia"]["zone"] == "title" and units["Russia"]["points"] == 1.0
    assert units["DPRK"]["implied"] and units["DPRK"]["points"] == 0.0
    assert russia["evidence"]["score"] == pytest.approx(sum(u["points"] for u in units.values()), abs=1e-3)
    part = section(text, "north-korea-russia")
    assert "north-korea-russia: follow-up (by evidence)" in part
    assert f"score     {russia['score']:.3f} below threshold {russia['threshold']:.3f}" in part
    assert f"{russia['evidence']['score']:.2f} ≥ evidence threshold 1.00" in part
    assert "Russia: title, " in part and "weight 1.0 × salience 1.0 = 1.00" in part
    assert "DPRK: implied by the feed" in part

    friendship = data["friendship-year"]
    assert not friendship["followup"] and friendship["recorded"] is None and friendship["evidence"]["score"] == 0.0
    assert friendship["evidence"]["on_beat"] and [u["label"] for u in friendship["evidence"]["units"]] == ["DPRK"]
    part = section(text, "friendship-year")
    assert "friendship-year: not a follow-up" in part and "recorded  nothing (not linked)" in part
    assert f"score     {friendship['score']:.3f} below threshold {friendship['threshold']:.3f}" in part
    assert "0.00 below evidence threshold 1.00" in part
    assert friendship["closest"]["kind"] == "seed" and f"seed #{friendship['closest']['item_id']}" in part
    assert max(len(line) for line in text.splitlines()) <= 100


def test_items_show_numbers_are_the_worker_trackers(korea: World) -> None:
    """The decisions made again are the ones a tracker built by the worker makes, for every storyline."""
    polled(korea, rss([CLOSING, BASEBALL], date="Sat, 28 Dec 2024 10:00:00 GMT"), dt.datetime(2024, 12, 28, 12, tzinfo=UTC))
    closing = item_id(korea, CLOSING[1])
    _, data = shown(korea, closing)
    settings = load_settings(korea.config)
    ids = [r["id"] for r in korea.db.query("SELECT id FROM items WHERE source = 'feed' ORDER BY id")]
    tracker = storylines.build_tracker(korea.db, settings.tracking, korea.clock(), pending=ids).tracker
    [item] = store.items_by_id(korea.db, [closing]).values()
    for d in tracker.decide(storylines.doc_of(item)):
        assert (data[d.storyline_id]["score"], data[d.storyline_id]["threshold"]) == (round(d.score, 4), round(d.threshold, 4))
        assert data[d.storyline_id]["followup"] == d.followup
    assert data["friendship-year"]["followup"] and data["friendship-year"]["by"] == ["score"]
    assert "Friendship Year" in data["friendship-year"]["names"]


def test_items_show_gives_every_storylines_why_not_for_an_item_none_took(korea: World) -> None:
    polled(korea, rss([CLOSING, BASEBALL], date="Sat, 28 Dec 2024 10:00:00 GMT"), dt.datetime(2024, 12, 28, 12, tzinfo=UTC))
    text, data = shown(korea, item_id(korea, BASEBALL[1]))
    assert list(data) == ["friendship-year", "high-level-exchanges", "north-korea-russia"]
    for storyline_id, why in data.items():
        assert why["decided"] and not why["followup"] and why["recorded"] is None
        part = section(text, storyline_id)
        assert f"{storyline_id}: not a follow-up" in part
        assert f"score     {why['score']:.3f} below threshold {why['threshold']:.3f}" in part
        assert "0.00 below evidence threshold 1.00: off its beat" in part  # two items of a general feed
        assert "evidence" in part and "closest" in part and "names" in part
    assert "Differs" not in text


def test_items_show_json_gives_each_storylines_decision_as_data(korea: World) -> None:
    polled(korea, beat_feed(), dt.datetime(2024, 12, 26, 12, tzinfo=UTC))
    data = json.loads(Cli(korea.config)("items", "show", str(item_id(korea, DELEGATION)), "--json").output)
    assert data["title"] == DELEGATION and data["storylines"] == ["north-korea-russia"] and "text" in data
    tracking = data["tracking"]
    assert tracking["as_tracked_now"] and tracking["window_days"] == 14 and tracking["replayed"] == 26
    assert tracking["differs"] == []
    why = tracking["storylines"][0]
    assert set(why) == {"id", "title", "recorded", "decided", "not_decided", "not_decided_at", "followup", "by",
                        "differs", "score", "threshold", "background", "threshold_setting", "cosine", "recency",
                        "vetoed_by", "missing", "like_marked", "evidence", "names", "terms", "closest"}
    assert set(why["evidence"]) == {"score", "threshold", "on_beat", "feed_items", "units"}
    assert why["evidence"]["feed_items"] == 26
    assert set(why["evidence"]["units"][0]) == {"label", "name", "zone", "count", "share", "weight", "salience",
                                                "points", "implied"}
    assert set(why["closest"]) == {"item_id", "kind", "title", "similarity"}
    assert why["threshold"] == pytest.approx(why["background"] + why["threshold_setting"], abs=2e-4)
    assert all(isinstance(t, str) and isinstance(w, float) and isinstance(word, str) for t, w, word in why["terms"])


def test_items_show_says_when_the_decision_made_now_differs_from_the_recorded_one(korea: World) -> None:
    polled(korea, rss([CLOSING, BASEBALL], date="Sat, 28 Dec 2024 10:00:00 GMT"), dt.datetime(2024, 12, 28, 12, tzinfo=UTC))
    config = korea.config.read_text()
    korea.config.write_text(config.replace("\nthreshold = 0.03\n", "\nthreshold = 5.0\n"))  # since raised
    text, data = shown(korea, item_id(korea, CLOSING[1]))
    friendship = data["friendship-year"]
    assert friendship["recorded"]["decision"] == "followup" and not friendship["followup"] and friendship["differs"]
    assert "Differs from what was recorded for friendship-year" in text
    assert "as the tracker sees it now" in text
    assert "recorded  follow-up, decided 2024-12-28" in section(text, "friendship-year")


def test_items_show_of_a_seed_says_which_storylines_it_seeds_and_which_it_predates(korea: World) -> None:
    seed = korea.db.query("SELECT id FROM items WHERE identity LIKE '%002_a624dde74f37622b%'")
    text, data = shown(korea, int(next(seed)["id"]))
    assert data["north-korea-russia"]["not_decided"] == "seed" and data["high-level-exchanges"]["not_decided"] == "seed"
    assert data["friendship-year"]["not_decided"] == "early"  # published before its first seed
    assert "friendship-year: not decided" in text
    assert "published before the storyline starts (2023-12-18: its first seed)" in section(text, "friendship-year")
    assert "north-korea-russia: a seed" in text and "the item is one of its seeds" in text


def test_a_storyline_that_starts_later_the_same_day_gives_its_time() -> None:
    """A seed dated to the day shows its date; one published at a time the same day as the
    item shows the time too, or "before the storyline starts (2026-12-06)" reads as untrue."""
    def started(at: dt.datetime) -> str:
        storyline = StorylineWhy("summit", "Summit", None, idle="early", idle_at=at)
        return render_why(ItemWhy(7, None, dt.timedelta(days=14), 0, (storyline,)))

    utc = dt.timezone.utc
    assert "before the storyline starts (2026-12-06 15:46 UTC: its first seed)" in \
        started(dt.datetime(2026, 12, 6, 16, 46, tzinfo=dt.timezone(dt.timedelta(hours=1))))
    assert "before the storyline starts (2026-12-06: its first seed)" in started(dt.datetime(2026, 12, 6, tzinfo=utc))


def test_items_show_of_a_copy_points_to_its_original(korea: World) -> None:
    copy = ("fy-closing-again", CLOSING[1], CLOSING[2])  # the same story under another guid
    polled(korea, rss([CLOSING, copy], date="Sat, 28 Dec 2024 10:00:00 GMT"), dt.datetime(2024, 12, 28, 12, tzinfo=UTC))
    [original, again] = [r["id"] for r in korea.db.query("SELECT id FROM items WHERE source = 'feed' ORDER BY id")]
    text = Cli(korea.config)("items", "show", str(again)).output
    assert f"A copy of item {original}: copies are not tracked" in text and "not a follow-up" not in text
    data = json.loads(Cli(korea.config)("items", "show", str(again), "--json").output)
    assert data["tracking"]["copy_of"] == original and not data["tracking"]["as_tracked_now"]


VIETNAM = ("vn-exchanges", "China to intensify high-level exchanges with Vietnam, No 3 official Zhao Leji says",
           "<p>Beijing was willing to take the anniversary as an opportunity to intensify high-level exchanges, "
           "deepen mutually beneficial cooperation, promote cultural exchanges and strengthen strategic coordination "
           "with Vietnam, a Chinese foreign ministry statement quoted Zhao Leji as saying. The meeting came shortly "
           "after Zhao and his delegation arrived in Hanoi for a three-day visit. Zhao is the third-ranked official "
           "in the ruling Communist Party's Politburo Standing Committee, headed by President Xi Jinping.</p>")


def test_items_show_says_an_item_naming_one_party_alone_was_vetoed(korea: World) -> None:
    """high-level-exchanges' title names China and North Korea: a Chinese official's visit to
    Vietnam, in the words of its seed, is not one of its follow-ups, and `items show` says why."""
    polled(korea, rss([VIETNAM, BASEBALL], date="Sat, 28 Dec 2024 10:00:00 GMT"), dt.datetime(2024, 12, 28, 12, tzinfo=UTC))
    assert followups_of(korea, "high-level-exchanges") == {}
    text, data = shown(korea, item_id(korea, VIETNAM[1]))
    why = data["high-level-exchanges"]
    assert why["score"] >= why["threshold"] and not why["followup"] and why["missing"] == ["DPRK"]
    part = section(text, "high-level-exchanges")
    assert "high-level-exchanges: not a follow-up (vetoed)" in part
    assert "vetoed    its title names DPRK, which the item does not name and its feed does not imply" in part


def test_items_show_replays_what_the_worker_saw_before_the_item_whatever_its_date(korea: World) -> None:
    """A first poll of an archive-like feed: forty items published years apart arrive before the
    closing ceremony. The worker's tracker learnt from all of them before deciding on it, so the
    replay is of what arrived before it, not of what was published in the fortnight before it."""
    old = "".join(
        f'<item><guid isPermaLink="false">old-{n}</guid><title>{BEAT_TITLES[n % 6]} in the year {1980 + n}</title>'
        f"<link>https://news.example/old-{n}</link><description>The town held event {n} with {n + 2} "
        f"teams in {['spring', 'summer', 'autumn'][n % 3]}, {1980 + n}.</description>"
        f"<pubDate>Mon, 02 Jun {1980 + n} 08:00:00 GMT</pubDate></item>" for n in range(40))
    body = rss([CLOSING], date="Sat, 28 Dec 2024 10:00:00 GMT").replace(b"<item>", old.encode() + b"<item>", 1)
    polled(korea, body, dt.datetime(2024, 12, 28, 12, tzinfo=UTC))
    [recorded] = korea.db.query("SELECT * FROM storyline_items WHERE decision = 'followup'")
    assert recorded["item_id"] == item_id(korea, CLOSING[1])
    text, data = shown(korea, recorded["item_id"])
    why = data[recorded["storyline_id"]]
    assert (why["score"], why["threshold"]) == (recorded["score"], recorded["threshold"]) and why["followup"]
    assert why["differs"] is False
    assert "items first seen in the 14 days before it" in " ".join(text.split())  # not "published"


def test_items_show_of_a_backfilled_item_published_before_the_storylines_seeds_decides_it_as_backfill_did(
    run: Cli, tmp_path: Path
) -> None:
    """A backfill has every storyline decide over the history it loads: an item published before
    friendship-year's first seed (2023-12-18) is decided, and `items show` decides it too."""
    (tmp_path / "wire.xml").write_bytes(rss([CLOSING], date="Sat, 03 Jun 2023 10:00:00 GMT"))
    run("init")
    summary = json.loads(run("backfill", str(tmp_path / "wire.xml"), "--json").stdout)
    assert summary["followups"]["friendship-year"] == 1
    db = store.open_store(load_settings(run.config).storage.path)
    recorded = {r["storyline_id"]: r for r in db.query("SELECT * FROM storyline_items WHERE decision = 'followup'")}
    data = json.loads(run("items", "show", str(recorded["friendship-year"]["item_id"]), "--json").stdout)
    text = " ".join(run("items", "show", str(recorded["friendship-year"]["item_id"])).stdout.split())
    assert "published in the 14 days before it" in text, text
    for why in data["tracking"]["storylines"]:
        assert why["followup"] is (why["id"] in recorded) and why["differs"] is False and why["decided"], why
        if why["followup"]:
            assert (why["score"], why["threshold"]) == (recorded[why["id"]]["score"], recorded[why["id"]]["threshold"])


def test_items_show_of_a_backfilled_jsonl_item_counts_its_files_names_as_backfill_did(run: Cli, tmp_path: Path) -> None:
    """A JSON Lines file is a source of its own, its names counted over its earlier items as for a
    feed: `items show` took them for no source's, and called a follow-up backfill recorded from
    the file's beat (DPRK implied by the file) "not a follow-up" (6 of 21 on a beat archive)."""
    import random

    from bench.corpus import article

    rng, start = random.Random(3), dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    lines = [{"id": f"b{n}", "title": f"DPRK {article(rng, 8)[0]}", "text": "The DPRK said: " + article(rng, 150)[1],
              "published": (start + dt.timedelta(days=4 * n)).isoformat(), "source": "wire"} for n in range(30)]
    lines.append({"id": "ru", "title": "Military Delegation of Russian Federation Arrives",
                  "text": "A military delegation of the Russian Federation led by the Russian defence minister arrived. "
                          "Russia and the host country will expand military cooperation, the delegation said.",
                  "published": (start + dt.timedelta(days=4 * 30)).isoformat(), "source": "wire"})
    (tmp_path / "wire.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    run("init")
    summary = json.loads(run("backfill", str(tmp_path / "wire.jsonl"), "--json").stdout)
    assert summary["followups"].get("north-korea-russia") == 1, summary  # the file's beat implies the DPRK
    db = store.open_store(load_settings(run.config).storage.path)
    [item_id] = [r["item_id"] for r in db.query("SELECT item_id FROM storyline_items WHERE decision = 'followup'")]
    data = json.loads(run("items", "show", str(item_id), "--json").stdout)
    why = {s["id"]: s for s in data["tracking"]["storylines"]}
    assert why["north-korea-russia"]["followup"] and not any(s["differs"] for s in why.values()), why
