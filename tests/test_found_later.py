"""Late follow-ups: a follow-up decided after its item's digest day (a new storyline's look-back,
a backfill) is listed once, under "Found later", in the digest whose period holds the decision.

The world: the shipped config (its three storylines and seed files) in UTC with the digest at
07:00, one feed on a local server, a real SQLite file and a clock the test moves. The digest of
day D covers (D-1 07:00, D 07:00]; the first one (the 27th) is the story so far.

- 27 Dec 12:00: the feed brings a Friendship Year closing ceremony (a friendship-year follow-up
  at once) and a baseball final (no storyline takes it): both are in the digest of the 28th.
- 28 Dec 12:00: a storyline "Korean Series" is added; its look-back makes the baseball final a
  follow-up. The digest of the 29th lists it under "Found later" with its publication date, 27
  Dec; the digest of the 30th does not list it again.
- A backfill on 28 Dec loads an October article that becomes a follow-up: listed once too.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SEEDS, World
from tests.feedserver import FeedServer, Reply, rss
from tests.test_tracking import without_feeds
from worker import backfill, digest, health, startup, storylines
from worker.digest import daily
from worker.config import StorylineConfig, default_config_text, load_settings

from tests.test_tracking import CLOSING  # the shipped storylines' closing-ceremony fixture

UTC = dt.timezone.utc
FINAL = (
    "kbo-final",
    "Kia Tigers win Korean Series title",
    "<p>The Kia Tigers beat the Samsung Lions 7-5 in game five to win the Korean Series, the championship of "
    "the KBO League, South Korea's professional baseball league. Pitcher James Naile and slugger Kim Do-yeong "
    "led the team through a season that drew record crowds of more than ten million fans.</p>",
)
OPENER = {  # loaded by backfill: published in October, stored on the 28th of December
    "id": "kbo-opener", "title": "Korean Series opens as Kia Tigers host Samsung Lions",
    "text": "The Korean Series, the KBO League's championship, opened in Gwangju on Monday as the Kia Tigers "
            "hosted the Samsung Lions. Rain suspended game one in the sixth inning; the Kia Tigers won it the "
            "next day when play resumed, before a sold-out crowd.",
    "url": "https://sports.example/kbo-opener", "published": "2024-10-21T12:00:00Z", "source": "Sports Desk",
}
KBO = StorylineConfig(id="korean-series", title="Korean Series", keywords=("Korean Series", "Kia Tigers", "KBO"))


def at(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2024, 12, day, hour, tzinfo=UTC)


@pytest.fixture
def beat(tmp_path: Path) -> Iterator[World]:
    """The shipped config in tmp_path, in UTC, with one local feed; the story-so-far digest of
    the 27th written; then the feed's two items stored at 12:00 on the 27th."""
    shutil.copytree(SEEDS, tmp_path / "seeds")
    server = FeedServer().__enter__()
    text = default_config_text().replace('"../var/storywatch.db"', '"sw.db"').replace('"../seeds', '"seeds')
    text = text.replace('timezone = ""', 'timezone = "UTC"').replace('"../digests"', '"digests"')
    text = without_feeds(text)
    config = tmp_path / "storywatch.toml"
    config.write_text(text + f'\n[[feeds]]\nurl = "{server.url("/korea")}"\nname = "Korea wire"\n', encoding="utf-8")
    world = World(server, config)
    world.clock.now = at(27, 6)
    server.routes["/korea"] = Reply(body=rss([]))
    health.record_cycle(world.db, world.poll(), world.clock(), interval=None)  # a first cycle, of nothing yet
    write_digest(world, 27)
    world.clock.now = at(27, 12)
    server.routes["/korea"] = Reply(body=rss([CLOSING, FINAL], date="Fri, 27 Dec 2024 10:00:00 GMT"))
    assert world.poll().new_items == 2
    yield world
    if world._rt is not None:
        world._rt.close()
    server.__exit__()


def write_digest(world: World, day: int) -> digest.DigestData:
    """The scheduled digest of that day in December, written at 07:00."""
    outcome = daily.scheduled_digest(world.db, load_settings(world.config), at(day, 7))
    assert outcome is not None and outcome.data.period.day == dt.date(2024, 12, day)
    return outcome.data


def found_later(data: digest.DigestData) -> list[tuple[str, str, str]]:
    """(storyline, title, publication time) of each follow-up under "Found later"."""
    return [(group.id, s.title, f"{s.published_at:%Y-%m-%d %H:%M}") for group in data.found_later for s in group.stories]


def in_storylines(data: digest.DigestData) -> list[tuple[str, str]]:
    return [(section.id, s.title) for section in data.storylines for s in section.stories]


def test_a_look_back_follow_up_is_found_later_once(beat: World) -> None:
    first = write_digest(beat, 28)
    assert FINAL[1] in {s.title for s in first.other} and first.found_later == ()
    assert "Found later" not in digest.render_markdown(first)

    beat.clock.now = at(28, 12)
    settings = load_settings(beat.config)
    assert startup.new_storyline(beat.db, settings, KBO, beat.clock()) == (0, 1)  # the look-back takes the final

    second = write_digest(beat, 29)
    assert found_later(second) == [("korean-series", FINAL[1], "2024-12-27 10:00")]
    assert in_storylines(second) == [] and second.other == () and second.late_followups == 1
    md = digest.render_markdown(second)
    section = md.split("\n## Found later\n", 1)[1]
    [final] = beat.db.query("SELECT id FROM items WHERE title = ?", [FINAL[1]])
    assert "\n### Korean Series\n\n- [Kia Tigers win Korean Series title](https://news.example/kbo-final) " \
        f"(Korea wire), published 2024-12-27 10:00 · item {final['id']}\n" in section
    assert "**0 follow-ups**, **1 follow-up found later**, **0 storylines moved**" in md
    assert digest.subject(second, "[sw]") == "[sw] 2024-12-29: 0 follow-ups in 0 storylines, 1 found later, 0 new items"
    html = digest.render_html(second)
    assert "<h2>Found later</h2>" in html and "<h3>Korean Series</h3>" in html and "published 2024-12-27 10:00" in html
    assert "Found later" in digest.render_text(second) and "published 2024-12-27 10:00" in digest.render_text(second)

    third = write_digest(beat, 30)
    assert third.found_later == () and "Found later" not in digest.render_markdown(third)


def test_a_follow_up_decided_in_its_items_period_stays_in_its_storyline(beat: World) -> None:
    first = write_digest(beat, 28)
    # The closing ceremony is a state-to-state contact too: a storyline tracked since the store
    # began counts its silence from then, not from its 2024 seeds.
    assert in_storylines(first) == [("friendship-year", CLOSING[1]), ("high-level-exchanges", CLOSING[1])]
    assert first.found_later == ()
    beat.clock.now = at(28, 12)
    startup.new_storyline(beat.db, load_settings(beat.config), KBO, beat.clock())
    second = write_digest(beat, 29)
    assert [group.id for group in second.found_later] == ["korean-series"]  # not friendship-year again


def test_a_backfilled_follow_up_is_found_later_once(beat: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_digest(beat, 28)
    beat.clock.now = at(28, 11)
    settings = load_settings(beat.config)
    startup.new_storyline(beat.db, settings, KBO, beat.clock())
    history = tmp_path / "history.jsonl"
    history.write_text(json.dumps(OPENER) + "\n", encoding="utf-8")
    monkeypatch.setattr(backfill.run, "utc_now", lambda: at(28, 12))
    sources, failed = backfill.expand([str(history)], beat.db)
    summary = backfill.backfill(beat.db, settings, sources, backfill.Options(workers=1))
    assert not failed and summary.items_new == 1 and summary.followups == {"korean-series": 1}

    second = write_digest(beat, 29)
    assert found_later(second) == [("korean-series", FINAL[1], "2024-12-27 10:00"),
                                   ("korean-series", OPENER["title"], "2024-10-21 12:00")]  # newest publication first
    assert OPENER["title"] not in {s.title for s in second.other}  # backfill is no new item
    assert "published 2024-10-21 12:00" in digest.render_markdown(second)
    assert write_digest(beat, 30).found_later == ()
    # Asked to include backfill, the period lists the item as new, with its storyline, and not as found later.
    included = daily.collect(beat.db, settings, second.period, include_backfill=True)
    assert in_storylines(included) == [("korean-series", OPENER["title"])]
    assert found_later(included) == [("korean-series", FINAL[1], "2024-12-27 10:00")]


def test_an_item_the_reader_links_is_not_found_later(beat: World) -> None:
    """`items mark --yes` on the final (an item of 27 Dec, no storyline's) links it now: the
    reader's own doing, no news to them, so the next digest does not list it as found later."""
    write_digest(beat, 28)
    beat.clock.now = at(28, 12)
    [row] = beat.db.query("SELECT id FROM items WHERE title = ?", [FINAL[1]])
    storylines.mark(beat.db, row["id"], "friendship-year", True, beat.clock())  # as `items mark` at that time
    assert [r["storyline_id"] for r in beat.db.query("SELECT * FROM storyline_items WHERE item_id = ?", [row["id"]])] \
        == ["friendship-year"]
    assert write_digest(beat, 29).found_later == ()
