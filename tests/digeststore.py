"""A fixed store and clock for the digest tests: a real SQLite file built through worker.store.

The day is Monday 2026-11-23, digest time 07:00 Europe/Berlin (06:00 UTC in November), so the
day's period is [2026-11-22 06:00Z, 2026-11-23 06:00Z). What the store holds, so that every
section of the digest has something to show:

- five feeds: two healthy wires, one failing three polls in a row, one silent for 19 days after
  posting daily, one disabled (410 Gone);
- three storylines: "friendship-year" (two follow-ups in the period, one published by two
  sources, and older follow-ups for its 30-day activity), "russia-turn" (one follow-up) and
  "high-level" (its last follow-up 13 days ago: quiet);
- an older follow-up of friendship-year edited in the period ("Updated");
- a follow-up found later: an October item, first seen then, that high-level took in the period
  (a look-back after its definition changed), published outside the 30-day activity line and
  before its last follow-up (so the storyline stays quiet);
- an open suggestion;
- five new items outside the storylines (other_items = 3 in the config: two are left over), one
  of them with an exact copy from the other wire;
- one item loaded by backfill in the period (left out unless include_backfill).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import textwrap
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from worker import digest, store
from worker.ingest.dedupe import word_diff
from worker.config import Settings, StorylineConfig, load_settings
from worker.models import FollowUp, Item, Placement

UTC = dt.timezone.utc
DAY = dt.date(2026, 11, 23)
ZONE = ZoneInfo("Europe/Berlin")
START = dt.datetime(2026, 11, 22, 6, 0, tzinfo=UTC)  # 07:00 in Berlin the day before
END = dt.datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 07:00 in Berlin
EARLY = dt.datetime(2026, 8, 1, tzinfo=UTC)  # when the store was set up

WIRE = "https://wire.example/feed.xml"
TIMES = "https://times.example/rss"
BORDER = "https://border.example/feed"
DAILY = "https://daily.example/atom.xml"
OLD = "https://old.example/rss"


def config_text(*, smtp_port: int = 0, email: str = "", other_items: int = 3, timeout: float = 2,
                security: str = "none") -> str:
    """The TOML config of the fixed world (email on when `smtp_port` is given)."""
    text = f"""\
        [storage]
        path = "sw.db"

        [digest]
        time = "07:00"
        timezone = "Europe/Berlin"
        output_dir = "digests"
        html = true
        other_items = {other_items}
        quiet_days = 7
        silent_days = 7
        """
    text = textwrap.dedent(text)
    if smtp_port:
        text += textwrap.dedent(f"""\

            [email]
            enabled = true
            smtp_host = "127.0.0.1"
            smtp_port = {smtp_port}
            security = "{security}"
            from = "Storywatch <digest@storywatch.example>"
            to = ["reader@example.org", "editor@example.org"]
            subject_prefix = "[storywatch]"
            timeout = {timeout}
            """) + textwrap.dedent(email)
    return text


def write_config(folder: Path, **kwargs: object) -> Path:
    path = folder / "storywatch.toml"
    path.write_text(config_text(**kwargs), encoding="utf-8")  # type: ignore[arg-type]
    return path


@dataclass
class Built:
    config: Path
    settings: Settings
    db: Database
    ids: dict[str, int]

    @property
    def period(self) -> digest.Period:
        return digest.day_period(DAY, self.settings.digest.time, ZONE)


def at(text: str) -> dt.datetime:
    """'2026-11-22 14:30' (UTC) as an aware datetime."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def item(key: str, title: str, text: str, *, published: str, seen: str | None = None, feed: int | None = None,
         publisher: str = "", url: str | None = None, source: str = "feed", summary: str = "") -> Item:
    return Item(
        identity=f"test:{key}",
        source=source,
        title=title,
        text=text,
        published_at=at(published),
        first_seen_at=at(seen or published),
        content_sha256=hashlib.sha256(f"{key}\n{title}\n{text}".encode()).hexdigest(),
        url=url if url is not None else f"https://{publisher.lower().replace(' ', '')}.example/{key}",
        publisher=publisher,
        feed_id=feed,
        summary=summary,
    )


def save(db: Database, one: Item, place: Placement | None = None) -> int:
    (new_id,) = store.save_items(db, [one], [place or Placement()])
    assert new_id, one.identity
    return new_id


def followup(db: Database, storyline: str, item_id: int, *, score: float, names: list[str], terms: list[str],
             novelty: tuple[str, ...] = (), closest: int | None = None, decided: str = "2026-11-22 23:00") -> None:
    reasons = {"names": names, "top_terms": [[t, round(0.3 - n * 0.05, 2)] for n, t in enumerate(terms)],
               "closest_similarity": 0.41}
    store.save_followups(db, [FollowUp(storyline, item_id, score, 0.25, score + 0.02, reasons, novelty, closest)],
                         at(decided))


FRIENDSHIP = StorylineConfig(id="friendship-year", title="China–DPRK Friendship Year",
                             description="The 75th anniversary of diplomatic ties, celebrated in 2024.",
                             keywords=("Friendship Year",))
RUSSIA = StorylineConfig(id="russia-turn", title="North Korea's turn towards Russia",
                         keywords=("Putin", "Kim Jong Un"))
HIGH_LEVEL = StorylineConfig(id="high-level", title="China–North Korea high-level exchanges",
                             keywords=("Zhao Leji",))

LONG = (" The two sides reviewed the year's exchanges in culture, trade and tourism, and pledged to keep "
        "the momentum going in the years ahead, officials said after the meeting.")


def build(folder: Path, **config: object) -> Built:
    """The fixed world: config file, store and every row the digest reads."""
    path = write_config(folder, **config)
    settings = load_settings(path)
    db = store.open_store(settings.storage.path)
    ids: dict[str, int] = {}

    feeds = {WIRE: "Korea Wire", TIMES: "Pyongyang Times", BORDER: "Border Monitor", DAILY: "Daily NK Brief",
             OLD: "Old Bulletin"}
    for url, name in feeds.items():
        store.add_feed(db, url, EARLY, name=name, origin="config")
    feed_id = {row["url"]: row["id"] for row in db.query("SELECT id, url FROM feeds")}
    wire, times, border, daily_feed = feed_id[WIRE], feed_id[TIMES], feed_id[BORDER], feed_id[DAILY]
    store.update_feed(db, feed_id[OLD], disabled_reason="gone: HTTP 410 from the server")

    for storyline in (FRIENDSHIP, RUSSIA, HIGH_LEVEL):
        store.save_storyline(db, storyline, EARLY, origin="config")

    # Seeds: what each storyline starts from.
    ids["seed-1"] = save(db, item("seed-1", "China and North Korea open the Friendship Year",
                                  "Beijing and Pyongyang opened the China-DPRK Friendship Year with a ceremony." + LONG,
                                  published="2024-04-11 00:00", seen="2026-08-01 00:00", source="seeds",
                                  publisher="South China Morning Post"))
    ids["seed-2"] = save(db, item("seed-2", "Zhao Leji visits Pyongyang",
                                  "Zhao Leji, China's third-ranking official, arrived in Pyongyang." + LONG,
                                  published="2024-04-12 00:00", seen="2026-08-01 00:00", source="seeds",
                                  publisher="Xinhua"))
    ids["seed-3"] = save(db, item("seed-3", "Putin and Kim sign a partnership treaty",
                                  "Vladimir Putin and Kim Jong Un signed a comprehensive strategic partnership." + LONG,
                                  published="2024-06-19 00:00", seen="2026-08-01 00:00", source="seeds",
                                  publisher="Reuters"))
    store.set_storyline_seeds(db, "friendship-year", [ids["seed-1"]], EARLY)
    store.set_storyline_seeds(db, "high-level", [ids["seed-2"]], EARLY)
    store.set_storyline_seeds(db, "russia-turn", [ids["seed-3"]], EARLY)

    # Earlier follow-ups: friendship-year's activity over the last 30 days, high-level's last one.
    for n, when in enumerate(["2026-10-30 10:00", "2026-11-12 08:00", "2026-11-18 09:00", "2026-11-18 15:00"]):
        key = f"fy-old-{n}"
        ids[key] = save(db, item(key, f"Friendship Year exhibition opens, part {n + 1}",
                                 f"An exhibition on the Friendship Year opened in Dandong, part {n + 1}." + LONG,
                                 published=when, feed=wire, publisher="Korea Wire"))
        followup(db, "friendship-year", ids[key], score=0.4, names=["Friendship Year"], terms=["exhibition"],
                 decided=when)
    ids["hl-old"] = save(db, item("hl-old", "Chinese vice minister meets DPRK counterpart",
                                  "Sun Weidong met his North Korean counterpart in Beijing for talks." + LONG,
                                  published="2026-11-10 03:00", feed=times, publisher="Pyongyang Times"))
    followup(db, "high-level", ids["hl-old"], score=0.33, names=["Sun Weidong"], terms=["vice minister"],
             decided="2026-11-10 03:00")

    # Found later: an item of October that high-level's look-back took during the period.
    ids["hl-late"] = save(db, item("hl-late", "Chinese and North Korean trade officials meet in Dandong",
                                   "Trade officials of China and North Korea met in Dandong to discuss the border "
                                   "markets." + LONG, published="2026-10-20 09:00", feed=times, publisher="Pyongyang Times"))
    followup(db, "high-level", ids["hl-late"], score=0.29, names=["Dandong"], terms=["trade officials"],
             decided="2026-11-22 21:00")

    # The edit: an older follow-up whose title and text changed in the period.
    edited = store.items_by_id(db, [ids["fy-old-3"]])[ids["fy-old-3"]]
    new_version = item("fy-old-3", "Friendship Year exhibition opens in Dandong",
                       "An exhibition on the Friendship Year opened in Dandong on Tuesday, with 300 photographs."
                       + LONG, published="2026-11-18 15:00", feed=wire, publisher="Korea Wire")
    diff = "\n".join([f"title: {word_diff(edited.title, new_version.title)}",
                      f"text: {word_diff(edited.text, new_version.text)}"])
    store.save_revision(db, edited, new_version, ["title", "text"], diff, at("2026-11-22 20:00"))

    # The day's follow-ups.
    ids["closing"] = save(db, item(
        "closing", "Closing ceremony of the China-DPRK Friendship Year held in Pyongyang",
        "Pyongyang\nPhoto: KCNA\nClosing ceremony of the China-DPRK Friendship Year held in Pyongyang\n"
        "A closing ceremony for the China-DPRK Friendship Year was held in Pyongyang on Sunday, attended by "
        "Choe Ryong Hae and the Chinese ambassador Wang Yajun. Both sides called the year a success. "
        "A third sentence that the lead leaves out.",
        published="2026-11-22 14:30", seen="2026-11-22 14:41", feed=wire, publisher="Korea Wire"))
    ids["closing-copy"] = save(db, item(
        "closing-copy", "Friendship Year ends with ceremony in Pyongyang",
        "A closing ceremony for the China-DPRK Friendship Year was held in Pyongyang on Sunday, attended by "
        "Choe Ryong Hae and the Chinese ambassador Wang Yajun.",
        published="2026-11-22 15:02", seen="2026-11-22 15:10", feed=times, publisher="Pyongyang Times"),
        Placement(dup_of=ids["closing"], dup_kind="near", similarity=0.82, cluster_id=ids["closing"]))
    followup(db, "friendship-year", ids["closing"], score=0.61, names=["Friendship Year", "Choe Ryong Hae"],
             terms=["closing ceremony", "friendship year", "ambassador", "pyongyang", "success"],
             novelty=("Choe Ryong Hae", "Wang Yajun"), closest=ids["seed-1"])
    ids["delegation"] = save(db, item(
        "delegation", "Chinese art troupe arrives for Friendship Year finale",
        "A Chinese art troupe arrived in Pyongyang on Saturday for performances marking the end of the "
        "Friendship Year. It will give three concerts.",
        published="2026-11-22 09:15", seen="2026-11-22 09:20", feed=times, publisher="Pyongyang Times"))
    followup(db, "friendship-year", ids["delegation"], score=0.47, names=["Friendship Year"],
             terms=["art troupe", "performances"], closest=ids["fy-old-2"])
    ids["treaty"] = save(db, item(
        "treaty", "Russian delegation in Pyongyang to mark treaty anniversary",
        "A Russian government delegation led by Alexander Kozlov arrived in Pyongyang on Monday, state media "
        "said. Mr. Kozlov is expected to meet Kim Jong Un.",
        published="2026-11-23 05:10", seen="2026-11-23 05:30", feed=times, publisher="Pyongyang Times"))
    followup(db, "russia-turn", ids["treaty"], score=0.52, names=["Kim Jong Un"], terms=["treaty", "delegation"],
             novelty=("Alexander Kozlov",), closest=ids["seed-3"], decided="2026-11-23 05:31")

    # New items outside the storylines: five, newest first 4, 3, 2, 1, 0.
    for n in range(5):
        key = f"other-{n}"
        ids[key] = save(db, item(key, f"Weather and harvest report {n}",
                                 f"Rice harvest figures for province {n} were published." + LONG,
                                 published=f"2026-11-22 {8 + n * 2:02d}:00", feed=wire, publisher="Korea Wire"))
    ids["other-4-copy"] = save(db, item("other-4-copy", "Weather and harvest report 4",
                                        "Rice harvest figures for province 4 were published." + LONG,
                                        published="2026-11-22 16:30", feed=times, publisher="Pyongyang Times"),
                               Placement(dup_of=ids["other-4"], dup_kind="exact", cluster_id=ids["other-4"]))
    # A copy of an item first seen before the period does not bring it back.
    save(db, item("hl-old-copy", "Chinese vice minister meets DPRK counterpart",
                  "Sun Weidong met his North Korean counterpart in Beijing for talks." + LONG,
                  published="2026-11-22 10:00", feed=wire, publisher="Korea Wire"),
         Placement(dup_of=ids["hl-old"], dup_kind="exact", cluster_id=ids["hl-old"]))
    # Backfill: an old article loaded in the period.
    ids["backfill"] = save(db, item("backfill", "Archive: the 2019 summit in Pyongyang",
                                    "Xi Jinping visited Pyongyang in June 2019, the first such visit in 14 years." + LONG,
                                    published="2019-06-20 08:00", seen="2026-11-22 11:00", feed=wire,
                                    publisher="Korea Wire", source="backfill"))
    # The silent feed: a post a day until 19 days before the digest.
    for n in range(30):
        when = (at("2026-10-05 07:00") + dt.timedelta(days=n)).strftime("%Y-%m-%d %H:%M")
        save(db, item(f"daily-{n}", f"Daily brief {n}", f"Brief number {n} of the daily series." + LONG,
                      published=when, feed=daily_feed, publisher="Daily NK Brief"))

    # A suggested storyline, found before the digest time.
    store.save_suggestion(db, "Rason special economic zone", ["Rason", "special economic zone", "Hunchun", "port"],
                          [ids["other-0"], ids["other-1"], ids["other-2"], ids["other-3"]], 2, at("2026-11-20 00:00"),
                          at("2026-11-22 16:00"), at("2026-11-22 18:00"))

    # The fetch log: the wires and the daily brief poll fine; the border monitor fails 3 times in a row.
    for feed in (wire, times, daily_feed, border):
        store.record_fetch(db, feed, at("2026-11-21 06:00"), kind="ok", status=200)
    for feed in (wire, times, daily_feed):
        store.record_fetch(db, feed, at("2026-11-23 05:45"), kind="ok", status=200)
    for hour in ("08:00", "14:00", "20:00"):
        store.record_fetch(db, border, at(f"2026-11-22 {hour}"), kind="error",
                           error="cannot connect: [Errno 111] Connection refused")
    db.conn.commit()

    # The previous day's digest, so that today's is due at 07:00 and starts at its end.
    store.record_digest(db, DAY - dt.timedelta(days=1), at("2026-11-21 06:00"), START,
                        str(settings.digest.output_dir / "2026-11-22.md"), START, to_send=False)
    return Built(path, settings, db, ids)
