"""Storyline tracking end to end: the default storylines and seeds, follow-ups polled from a real
feed server with their reasons, look-back and restarts, suggestions, and `eval tracking` making the
same decisions as the pipeline."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import hashlib
import json
import math
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.corpus import article
from tests.conftest import NOW, SEEDS, Cli, World
from tests.feedserver import FeedServer, Reply, rss
from worker import evaluate, parsing, pipeline, startup, store, storylines
from worker.ingest import normalize, seeds
from worker.models import Stored, StorylineDef
from worker.config import StorylineConfig, default_config_text, load_settings
from worker.tracking import analysis, buckets
from worker.tracking.buckets import bucket_features
from worker.tracking.decisions import Doc
from worker.tracking.settings import TrackerConfig
from worker.tracking.track import Tracker

DATA = Path(__file__).parent / "data" / "tracking-small.jsonl"

CLOSING = (
    "fy-closing",
    "China and North Korea close Friendship Year with ceremony in Pyongyang",
    "<p>China and North Korea held a closing ceremony for the China-DPRK Friendship Year in Pyongyang on "
    "Saturday, ending a year of events for the 75th anniversary of diplomatic relations. Chinese ambassador "
    "Wang Yajun and North Korean officials attended. The year opened in April when Zhao Leji visited "
    "Pyongyang; observers said ties had cooled since as Pyongyang moved closer to Moscow.</p>",
)
BASEBALL = (
    "kbo-final",
    "Kia Tigers win Korean Series title",
    "<p>The Kia Tigers beat the Samsung Lions 7-5 in game five to win the Korean Series, the championship of "
    "the KBO League, South Korea's professional baseball league. Pitcher James Naile and slugger Kim Do-yeong "
    "led the team through a season that drew record crowds of more than ten million fans.</p>",
)


def without_feeds(config: str) -> str:
    """The config without its [[feeds]] tables: tests never reach the internet."""
    kept, skipping = [], False
    for line in config.splitlines():
        if line.startswith("["):
            skipping = line.strip() == "[[feeds]]"
        if not skipping:
            kept.append(line)
    return "\n".join(kept) + "\n"


@pytest.fixture
def korea(tmp_path: Path) -> Iterator[World]:
    """The default config (seeds, three storylines) plus one feed on a local server."""
    world = korea_world(tmp_path)
    yield world
    if world._rt is not None:
        world._rt.close()
    world.server.__exit__()


def korea_world(folder: Path) -> World:
    """The default config and seeds in `folder`, its one feed ("/korea") on a local server of its own."""
    shutil.copytree(SEEDS, folder / "seeds")
    server = FeedServer().__enter__()
    text = default_config_text()
    text = text.replace('"../var/storywatch.db"', '"sw.db"').replace('"../seeds', '"seeds')
    text = without_feeds(text)
    config = folder / "storywatch.toml"
    config.write_text(text + f'\n[[feeds]]\nurl = "{server.url("/korea")}"\nname = "Korea wire"\n', encoding="utf-8")
    return World(server, config)


def followups_of(world: World, storyline_id: str) -> dict[str, dict[str, object]]:
    rows = world.db.query(
        "SELECT i.title, si.* FROM storyline_items si JOIN items i ON i.id = si.item_id "
        "WHERE si.storyline_id = ? AND si.decision = 'followup'", [storyline_id])
    return {str(r["title"]): r for r in rows}


def test_the_default_storylines_start_from_their_seed_files(korea: World) -> None:
    seeds = {r["storyline_id"]: [] for r in korea.db.query("SELECT storyline_id FROM storyline_items")}
    for r in korea.db.query("SELECT si.storyline_id, i.identity FROM storyline_items si JOIN items i ON i.id = si.item_id "
                            "WHERE si.decision = 'seed' ORDER BY i.identity"):
        seeds[r["storyline_id"]].append(str(r["identity"]).split(":")[1][:3])
    assert seeds["friendship-year"] == ["000", "001", "003"]
    assert seeds["high-level-exchanges"] == ["000", "001", "002", "003", "004"]
    assert seeds["north-korea-russia"] == ["001", "002"]



def test_pruning_old_items_keeps_the_storylines_seeds(korea: World) -> None:
    """The seeds are dated 2019-2024: older than any retention, but they define the storylines."""
    korea.config.write_text(korea.config.read_text().replace("retention_days = 0", "retention_days = 30", 1))
    seeds = "SELECT storyline_id, item_id FROM storyline_items WHERE decision = 'seed' ORDER BY 1, 2"
    before = list(korea.db.query(seeds))
    korea.server.routes["/korea"] = Reply(body=rss([CLOSING], date="Sat, 28 Dec 2024 10:00:00 GMT"))
    korea.poll()  # prunes what is older than 30 days: the closing ceremony, not the seeds
    assert list(korea.db.query(seeds)) == before
    korea.rt.close()
    korea._rt = None
    korea.poll(force=True)  # a new process syncs the storylines' seed files again
    assert list(korea.db.query(seeds)) == before


def test_a_seed_pruned_while_no_storyline_linked_it_is_stored_again_when_linked_again(korea: World) -> None:
    linked = korea.config.read_text().replace("retention_days = 0", "retention_days = 30", 1)
    seed = '    "seeds/004_f9c77d167099ad00.txt",\n'  # a seed of high-level-exchanges only
    assert linked.count(seed) == 1
    korea.config.write_text(linked.replace(seed, ""))
    korea.server.routes["/korea"] = Reply(body=rss([CLOSING], date="Sat, 28 Dec 2024 10:00:00 GMT"))
    korea.poll()  # unlinked, it is news of 2024 like any other: pruned
    assert not list(korea.db.query("SELECT id FROM items WHERE identity LIKE '%004_f9c77d167099ad00%'"))
    korea.rt.close()
    korea._rt = None
    korea.config.write_text(linked)
    korea.poll(force=True)  # a new process links it again
    seeds = korea.db.query("SELECT i.identity, i.publisher, i.published_at FROM storyline_items si "
                           "JOIN items i ON i.id = si.item_id "
                           "WHERE si.storyline_id = 'high-level-exchanges' AND si.decision = 'seed'")
    again = [r for r in seeds if "004_f9c77d167099ad00" in str(r["identity"])]
    assert [(r["publisher"], str(r["published_at"])[:10]) for r in again] == [("South China Morning Post", "2019-09-03")]


FAIR_TEXT = ("The trade ministers of the two states opened the Harbin trade fair on Monday, where firms of both "
             "countries showed machinery, food and textiles. Officials said trade rose by a fifth this year.")
FAIR = ("fair-1", "Trade ministers open the Harbin trade fair", f"<p>{FAIR_TEXT}</p>")


def test_a_seed_file_copying_a_pruned_article_is_stored_and_the_article_stays_pruned(korea: World) -> None:
    korea.config.write_text(korea.config.read_text().replace("retention_days = 0", "retention_days = 30", 1))
    korea.server.routes["/korea"] = Reply(body=rss([FAIR], date="Mon, 16 Dec 2024 08:00:00 GMT"))
    korea.poll()  # stored, then pruned (older than 30 days): its identity and its text are tombstones
    fair = "SELECT identity FROM items WHERE title LIKE 'Trade ministers open%' ORDER BY id"
    assert not list(korea.db.query(fair))
    seed = korea.config.parent / "seeds" / "fair.txt"  # the reader keeps that article as a seed of a new storyline
    seed.write_text(f"{FAIR[1]}\n\n{FAIR_TEXT}\n", encoding="utf-8")
    korea.config.write_text(korea.config.read_text()
                            + '\n[[storylines]]\nid = "fair"\ntitle = "Harbin fair"\nseeds = ["seeds/fair.txt"]\n')
    korea.rt.close()
    korea._rt = None
    korea.server.routes["/korea"] = Reply(body=rss([("fair-2", *FAIR[1:])], date="Mon, 16 Dec 2024 08:00:00 GMT"))
    korea.poll(force=True)  # the feed sends the article again, under another GUID
    assert [str(r["identity"]) for r in korea.db.query(fair)] == ["seed:fair.txt"]

def test_document_frequency_buckets_are_keyed_by_the_stores_secret(korea: World, tmp_path: Path) -> None:
    """No feed can compute a word that shares a storyline word's bucket (and so make it look common)."""
    key = korea.rt.bucket_key
    assert key == storylines.bucket_key(korea.db) and len(key) == 16
    features = [f"word{n}" for n in range(200)]
    assert (bucket_features(features, key) != bucket_features(features, b"")).mean() > 0.99
    assert storylines.bucket_key(store.open_store(tmp_path / "another.db")) != key


def test_a_features_bucket_is_its_bytes_weighted_by_the_keys_numbers_or_blake2b_when_long() -> None:
    """The vectorised hash, feature by feature as its definition reads (empty, non-ASCII, at and
    past the long-feature length, first and last in a document)."""
    key = b"k" * 16
    a = [int(x) for x in buckets._multipliers(key)]

    def bucket(feature: str) -> int:
        data = feature.encode()
        if len(data) > buckets.LONG_FEATURE:
            one = hashlib.blake2b(data, key=key, digest_size=4, person=b"df-long")
            return int.from_bytes(one.digest(), "little") % buckets.DF_BUCKETS
        total = sum(m * x for m, x in zip(a, data)) + a[buckets.LONG_FEATURE] * len(data) + a[buckets.LONG_FEATURE + 1]
        return fmix64(total % 2**64) >> 42

    def fmix64(h: int) -> int:
        mask = 2**64 - 1
        h ^= h >> 33
        h = h * 0xFF51AFD7ED558CCD & mask
        h ^= h >> 33
        h = h * 0xC4CEB9FE1A85EC53 & mask
        return h ^ h >> 33

    features = ["", "korea", "north korea", "조선", "x" * 64, "y" * 65, "1" * 1268, "pyongyang beijing", ""]
    assert bucket_features(features, key).tolist() == [bucket(f) for f in features]
    assert [bucket_features([f], key).tolist() for f in features] == [[bucket(f)] for f in features]
    assert len(bucket_features([], key)) == 0
    with pytest.raises(ValueError):
        bucket_features(["two\nlines"], key)


def test_buckets_spread_features_as_random_ones_would_under_every_key() -> None:
    """Words with numbers differ in a pattern: a hash linear in the bytes gave some keys up to
    75 colliding pairs among these 6,000 (4.3 expected), all at the same difference."""
    features = [f"{word}{n}" for n in range(2000) for word in ("kim", "summit", "trade pact")]
    expected = buckets.DF_BUCKETS * (1 - (1 - 1 / buckets.DF_BUCKETS) ** len(features))
    for key in (hashlib.blake2b(bytes([n]), digest_size=16).digest() for n in range(40)):
        taken = len(set(bucket_features(features, key).tolist()))
        assert expected - taken < 15


def test_a_closing_ceremony_is_a_friendship_year_follow_up_and_baseball_is_not(korea: World) -> None:
    korea.server.routes["/korea"] = Reply(body=rss([CLOSING, BASEBALL], date="Sat, 28 Dec 2024 10:00:00 GMT"))
    report = korea.poll()
    assert report.new_items == 2 and report.followups >= 1
    fy = followups_of(korea, "friendship-year")
    assert list(fy) == [CLOSING[1]]
    decision = fy[CLOSING[1]]
    reasons = json.loads(str(decision["reasons"]))
    assert "Friendship Year" in reasons["names"]
    assert reasons["top_terms"] and all(isinstance(t[1], float) for t in reasons["top_terms"])
    assert float(decision["score"]) >= float(decision["threshold"])  # type: ignore[arg-type]
    seed_ids = {r["item_id"] for r in korea.db.query(
        "SELECT item_id FROM storyline_items WHERE storyline_id = 'friendship-year' AND decision = 'seed'")}
    assert decision["closest_item_id"] in seed_ids
    novelty = json.loads(str(decision["novelty"]))
    assert "Wang Yajun" in novelty  # a name none of the seeds mentions
    assert "Zhao Leji" not in novelty  # seed 003 is about his visit
    baseball = [r for r in korea.db.query(
        "SELECT si.storyline_id FROM storyline_items si JOIN items i ON i.id = si.item_id WHERE i.title = ?", [BASEBALL[1]])]
    assert baseball == []


def test_a_restart_neither_repeats_nor_changes_decisions(korea: World) -> None:
    korea.server.routes["/korea"] = Reply(body=rss([CLOSING, BASEBALL], date="Sat, 28 Dec 2024 10:00:00 GMT"))
    korea.clock.now = dt.datetime(2024, 12, 28, 12, tzinfo=dt.timezone.utc)  # the items are in the window
    korea.poll()
    before = list(korea.db.query("SELECT * FROM storyline_items ORDER BY storyline_id, item_id"))
    settings = load_settings(korea.config)
    rebuilt = storylines.build_tracker(korea.db, settings.tracking, korea.clock())
    assert rebuilt.looked_back == {}  # every storyline's look-back was made for its current definition
    assert list(korea.db.query("SELECT * FROM storyline_items ORDER BY storyline_id, item_id")) == before


def test_a_rebuilt_tracker_knows_a_slow_feeds_beat_as_the_running_worker_did(korea: World) -> None:
    """Every item of the feed names the DPRK, so the feed is on north-korea-russia's beat and a
    title naming Russia is evidence. Its items are older than the window a rebuild replays."""
    farm = [(f"farm-{n}", f"DPRK farmers mark harvest day {n}",
             f"<p>Farmers of the DPRK marked harvest day {n} in South Hwanghae Province. The DPRK praised them.</p>")
            for n in range(30)]
    korea.server.routes["/korea"] = Reply(body=rss(farm, date="Mon, 02 Dec 2024 08:00:00 GMT"))
    korea.clock.now = dt.datetime(2024, 12, 2, 12, tzinfo=dt.timezone.utc)
    korea.poll()
    feed = f"feed:{korea.feed('/korea')['id']}"
    visit = Doc("visit", "DPRK delegation leaves for Russia",
                "A delegation of the DPRK left Pyongyang for Moscow on Monday.",
                dt.datetime(2024, 12, 28, tzinfo=dt.timezone.utc).timestamp(), source=feed)

    def evidence(tracker: Tracker) -> float:
        decisions = tracker.decide(visit)
        return float(decisions.evidence[decisions.storyline_ids.index("north-korea-russia")])

    running = evidence(korea.rt.tracking.current(korea.db, korea.clock()))
    assert running >= 1.0
    korea.clock.now = dt.datetime(2024, 12, 28, 12, tzinfo=dt.timezone.utc)  # the farm items left the window
    settings = load_settings(korea.config)
    assert evidence(storylines.build_tracker(korea.db, settings.tracking, korea.clock()).tracker) == running


def test_a_follow_up_by_evidence_keeps_its_evidence_in_its_reasons(korea: World) -> None:
    farm = [(f"farm-{n}", f"DPRK farmers mark harvest day {n}",
             f"<p>Farmers of the DPRK marked harvest day {n} in South Hwanghae Province. The DPRK praised them.</p>")
            for n in range(30)]
    visit = ("visit", "DPRK delegation leaves for Russia", "<p>A delegation of the DPRK left Pyongyang on Monday.</p>")
    korea.clock.now = dt.datetime(2024, 12, 2, 12, tzinfo=dt.timezone.utc)
    korea.server.routes["/korea"] = Reply(body=rss(farm, date="Mon, 02 Dec 2024 08:00:00 GMT"))
    korea.poll()
    korea.server.routes["/korea"] = Reply(body=rss([*farm, visit], date="Mon, 02 Dec 2024 08:00:00 GMT"))
    korea.poll(force=True)
    stored = followups_of(korea, "north-korea-russia")[visit[1]]
    reasons = json.loads(str(stored["reasons"]))
    assert reasons["evidence"][0] == "Russia (title)" and reasons["evidence_score"] >= 1.0
    shown = Cli(korea.config)("storylines", "show", "north-korea-russia").output
    assert "names where they count: Russia (title)" in shown
    assert float(stored["score"]) < float(stored["threshold"])  # type: ignore[arg-type]  # taken by evidence alone
    assert f"by evidence {reasons['evidence_score']:.2f} (score {float(stored['score']):.3f} below" in shown  # type: ignore[arg-type]
    assert "≥ threshold" not in shown


def test_names_are_counted_per_feed_per_backfilled_file_and_apart_for_the_seeds() -> None:
    """A beat is a source's: seeds and the files of a backfill never share one with a feed or each other."""
    assert storylines.names_source(7, "guid:feed:7:x", "feed") == "feed:7"
    assert storylines.names_source(7, "backfill:ab12:x", "backfill") == "feed:7"  # a backfilled archive of feed 7
    assert storylines.names_source(None, "backfill:ab12:x", "backfill") == "backfill:ab12"
    assert storylines.names_source(None, "backfill:cd34:x", "backfill") == "backfill:cd34"
    assert storylines.names_source(None, "seed:001-x.md", "seeds") == "seeds"


def test_a_changed_storyline_looks_back_over_the_window(korea: World) -> None:
    korea.server.routes["/korea"] = Reply(body=rss([CLOSING, BASEBALL], date="Sat, 28 Dec 2024 10:00:00 GMT"))
    korea.clock.now = dt.datetime(2024, 12, 28, 12, tzinfo=dt.timezone.utc)
    korea.poll()
    korea.db.execute("DELETE FROM storyline_items WHERE decision = 'followup'")
    korea.db.execute("UPDATE storylines SET keywords = '[\"Friendship Year\", \"closing ceremony\"]' "
                     "WHERE id = 'friendship-year'")
    settings = load_settings(korea.config)
    rebuilt = storylines.build_tracker(korea.db, settings.tracking, korea.clock())
    assert rebuilt.looked_back == {"friendship-year": 1}
    assert list(followups_of(korea, "friendship-year")) == [CLOSING[1]]
    assert followups_of(korea, "high-level-exchanges") == {}  # unchanged: its decisions are not redone


def test_items_outside_every_storyline_that_cluster_become_a_suggestion(korea: World, tmp_path: Path) -> None:
    etna = [
        ("e1", "Etna eruption closes Catania airport",
         "Mount Etna erupted overnight, sending lava down its eastern flank and ash over Catania; the airport closed."),
        ("e2", "Ash from Etna grounds flights at Catania",
         "Flights at Catania airport were cancelled for a second day as the Etna eruption sent lava and ash into the sky."),
        ("e3", "Villagers near Etna watch lava approach",
         "Residents of villages on the slopes of Etna watched lava advance as the eruption continued; Catania airport stays shut."),
    ]
    # Word statistics first: a week of unrelated news, so that "etna" is distinctive and "said" is not.
    rng = random.Random(2)
    background = [(f"bg{n}", *article(rng, 700)) for n in range(220)]
    other = FeedServer().__enter__()
    try:
        calm = ("s0", "Mild week in Sicily", "<p>Sunshine and mild temperatures across Sicily this week.</p>")
        other.routes["/sicily"] = Reply(body=rss([calm], title="Sicily news", date="Sun, 15 Nov 2026 09:00:00 GMT"))
        korea.server.routes["/korea"] = Reply(body=rss(background, date="Sun, 15 Nov 2026 09:00:00 GMT"))
        korea.config.write_text(korea.config.read_text() + f'\n[[feeds]]\nurl = "{other.url("/sicily")}"\nname = "Sicily"\n')
        korea.poll()
        other.routes["/sicily"] = Reply(body=rss([calm, *etna[1:]], title="Sicily news", date="Sun, 22 Nov 2026 09:00:00 GMT"))
        korea.server.routes["/korea"] = Reply(body=rss(background + etna[:1], date="Sun, 22 Nov 2026 08:00:00 GMT"))
        korea.poll(force=True)
    finally:
        other.__exit__()
    found = store.suggestions(korea.db)
    assert len(found) == 1
    assert {"Etna", "eruption", "Catania"} <= set(found[0].terms) | {"Catania"}  # as written
    assert len(found[0].item_ids) == 3 and found[0].sources == 2
    cli = Cli(korea.config)
    listed = cli("storylines", "suggest").output
    assert "Etna eruption closes Catania airport" in listed and "3 items from 2 sources" in listed
    added = cli("storylines", "add", "etna", "--from-suggestion", str(found[0].id)).output
    assert "Added storyline etna with 3 seeds" in added
    adopted = store.suggestion(korea.db, found[0].id)
    assert adopted is not None and adopted.status == "adopted" and adopted.storyline_id == "etna"
    shown = json.loads(cli("storylines", "show", "etna", "--json").output)
    assert [e["decision"] for e in shown["timeline"]] == ["seed"] * 3


def test_storylines_add_list_and_show(korea: World, tmp_path: Path) -> None:
    korea.rt  # initialize the store
    article = tmp_path / "kaesong.txt"
    article.write_text("North Korea demolishes Kaesong liaison office\n\nNorth Korea blew up the inter-Korean "
                       "liaison office in Kaesong on Tuesday, days after threatening to cut ties with Seoul.\n")
    cli = Cli(korea.config)
    out = cli("storylines", "add", "kaesong", "--title", "Kaesong", "--seed", str(article), "--keyword", "Kaesong").output
    assert "Added storyline kaesong with 1 seed;" in out
    again = cli("storylines", "add", "kaesong", "--title", "Kaesong", "--seed", str(article), ok=False)
    assert again.exit_code == 1 and "exists already" in again.output
    missing = cli("storylines", "add", "x", "--title", "X", "--seed", "https://nowhere.example/a", ok=False)
    assert missing.exit_code == 1 and "seed not in the store: https://nowhere.example/a" in missing.output
    bad = cli("storylines", "add", "Bad_ID", "--title", "X", "--keyword", "x", ok=False)
    assert bad.exit_code == 2 and "lowercase letters" in bad.output
    listed = json.loads(cli("storylines", "list", "--json").output)
    assert {s["id"]: s["seeds"] for s in listed} == {
        "friendship-year": 3, "high-level-exchanges": 5, "north-korea-russia": 2, "kaesong": 1}
    # A config change keeps a storyline added from the command line.
    startup.initialize(korea.db, load_settings(korea.config), NOW)
    assert "kaesong" in cli("storylines", "list").output
    shown = cli("storylines", "show", "friendship-year").output
    assert "3 seeds, 0 follow-ups" in shown and "seed  South China Morning Post" in shown


def test_storylines_show_explains_each_follow_up(korea: World) -> None:
    korea.server.routes["/korea"] = Reply(body=rss([CLOSING], date="Sat, 28 Dec 2024 10:00:00 GMT"))
    korea.poll()
    shown = Cli(korea.config)("storylines", "show", "friendship-year").output
    assert CLOSING[1] in shown
    why = next(line for line in shown.splitlines() if "why:" in line)
    assert "mentions Friendship Year" in why and "closest to #" in why and "≥ threshold" in why
    assert "new in this story: " in shown and "Wang Yajun" in shown


# ── eval tracking ─────────────────────────────────────────────────────────────────────────────


def test_eval_and_the_pipeline_make_the_same_decisions(tmp_path: Path) -> None:
    """Items stored one by one, each storyline added after its last seed (as a user would): the
    follow-ups recorded are exactly the YES decisions of `eval tracking` on the same items."""
    nt = 2
    labelled = evaluate.load_dataset(DATA)
    result = evaluate.evaluate(labelled, nt, TrackerConfig())
    assert result.followups, "the dataset must exercise follow-ups"
    config = tmp_path / "storywatch.toml"
    config.write_text('[storage]\npath = "sw.db"\n[tracking]\nwindow = "30d"\n', encoding="utf-8")
    settings = load_settings(config)
    now = dt.datetime(2026, 3, 4, tzinfo=dt.timezone.utc)
    db = store.open_store(settings.storage.path)
    rt = pipeline.open_runtime(db, settings, clock=lambda: now)
    seeds = evaluate.seed_sets(labelled, nt)
    last_seed = {its[-1].doc.id: sid for sid, its in seeds.items()}
    records = {json.loads(line)["id"]: json.loads(line) for line in DATA.read_text().splitlines()}
    item_of: dict[int, str] = {}
    try:
        for entry in labelled:
            r = records[entry.doc.id]
            item = parsing.analysed(normalize.record_item(  # analysed as a parsing process would
                identity=f"eval:{r['id']}", title=r["title"], text=r["text"], url=f"https://news.example/{r['id']}",
                published=dt.datetime.fromisoformat(r["published"].replace("Z", "+00:00")), now=now,
                clutter=rt.window.clutter, publisher="Example"), rt.bucket_key)
            with store.transaction(db):
                stored = pipeline.ingest_items(db, rt.window, None, [item], now)
                rt.tracking.track(db, stored.originals, now)
            assert len(stored.originals) == 1
            item_of[stored.originals[0][0]] = entry.doc.id
            if entry.doc.id in last_seed:
                sid = last_seed[entry.doc.id]
                urls = tuple(f"https://news.example/{i.doc.id}" for i in seeds[sid])
                startup.new_storyline(db, settings, StorylineConfig(id=sid, title=sid, seeds=urls), now)
        recorded = {(r["storyline_id"], item_of[r["item_id"]])
                    for r in db.query("SELECT * FROM storyline_items WHERE decision = 'followup'")}
    finally:
        rt.close()
    assert recorded == set(result.followups)


def test_eval_tracking_reports_the_tdt_figures(run: Cli) -> None:
    out = json.loads(run("eval", "tracking", str(DATA), "--nt", "2", "--json").output)
    overall = out["overall"]
    assert set(overall) >= {"c_det_norm", "p_miss", "p_fa", "precision", "recall", "f1", "storylines", "decisions"}
    assert overall["storylines"] == 2
    # 20 items; each storyline decides every item after its 2nd seed except its own seeds.
    assert {s["story_id"]: s["positives"] for s in out["storylines"]} == {"quake": 5, "budget": 5}
    assert overall["decisions"] == sum(s["positives"] + s["negatives"] for s in out["storylines"])
    p_miss, p_fa = overall["p_miss"], overall["p_fa"]
    assert overall["c_det_norm"] == pytest.approx((0.02 * p_miss + 0.098 * p_fa) / 0.02, abs=1e-5)
    table = run("eval", "tracking", str(DATA), "--nt", "2").output
    assert "normalized C_det" in table and "quake" in table and "budget" in table
    strict = json.loads(run("eval", "tracking", str(DATA), "--nt", "2", "--threshold", "5", "--json").output)
    assert strict["overall"]["recall"] == 0.0 and strict["overall"]["p_fa"] == 0.0


def test_eval_tracking_names_a_bad_line(run: Cli, tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    good = DATA.read_text().splitlines()
    data.write_text("\n".join([good[0], "{not json", good[1]]) + "\n")
    result = run("eval", "tracking", str(data), ok=False)
    assert result.exit_code == 1 and "bad.jsonl:2: not JSON" in result.output
    data.write_text(json.dumps({"id": "x", "title": "t", "published": "2026-01-01"}) + "\n")
    result = run("eval", "tracking", str(data), ok=False)
    assert "bad.jsonl:1: missing story_id" in result.output


# ── when a storyline starts: its first dated seed ──────────────────────────────────────────────


def _stored_seed(item_id: int, published: dt.datetime, date_flag: str = "") -> Stored:
    return Stored(item_id, f"seed:{item_id}", None, item_id, f"Seed {item_id}", "Text.", None, published, None, 1,
                  source="seeds", date_flag=date_flag)


def test_a_storyline_starts_at_its_first_dated_seed_and_an_undated_one_does_not_move_it() -> None:
    dated = dt.datetime(2024, 1, 10, tzinfo=dt.timezone.utc)
    undated = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)  # a notes file: dated when it was added
    seeds = {1: _stored_seed(1, dated), 2: _stored_seed(2, undated, "missing")}
    definition = StorylineDef("s", "S", "", (), (), (), None, None, (1, 2), undated)
    assert storylines.spec_of(definition, seeds).starts == dated.timestamp()
    only_undated = dataclasses.replace(definition, seed_ids=(2,))
    assert storylines.spec_of(only_undated, seeds).starts == -math.inf  # the look-back window bounds it


def test_a_storyline_added_from_an_undated_notes_file_looks_back_over_the_window(korea: World, tmp_path: Path) -> None:
    """`storylines add --seed notes.txt`: the notes carry no date, so they do not make the
    storyline start today; it looks back over the recent window and finds what it missed."""
    real_now = dt.datetime.now(dt.timezone.utc)  # the command below runs on the real clock
    korea.clock.now = real_now
    published = email.utils.format_datetime(real_now - dt.timedelta(days=2), usegmt=True)
    korea.server.routes["/korea"] = Reply(body=rss([CLOSING, BASEBALL], date=published))
    korea.poll()
    notes = tmp_path / "notes.txt"
    notes.write_text("Friendship Year closing\n\nWatch for the closing ceremony of the China-DPRK Friendship Year "
                     "in Pyongyang, the end of the 75th anniversary of diplomatic relations.\n", encoding="utf-8")
    out = Cli(korea.config)("storylines", "add", "fy-closing", "--title", "Friendship Year closing",
                            "--seed", str(notes), "--keyword", "closing ceremony", "--keyword", "Friendship Year").output
    assert "1 follow-up found" in out, out
    assert list(followups_of(korea, "fy-closing")) == [CLOSING[1]]


@pytest.mark.parametrize(("head", "date"), [
    ("Published: 2024-04-11\n", dt.date(2024, 4, 11)),
    ("By Ann Lee | April 11, 2024\n", dt.date(2024, 4, 11)),
    ("11 Apr. 2024, Pyongyang\n", dt.date(2024, 4, 11)),
    ("Updated Sept. 3, 2023 at 10:00\n", dt.date(2023, 9, 3)),
    ("2024-02-30, then 2024-03-01\n", dt.date(2024, 3, 1)),  # not a day, then one
    ("The 2024 Friendship Year\n", None),  # a year is not a date
    ("Due 2099-01-01\n", None),  # not yet: no article is dated in the future
    ("\n".join(["line"] * 8) + "\n2024-01-01\n", None),  # far below the head: the body's, not the article's
])
def test_a_seed_file_takes_the_date_written_in_its_head(tmp_path: Path, head: str, date: dt.date | None) -> None:
    path = tmp_path / "seed.txt"
    path.write_text(f"A headline\n{head}\nThe text of the article.\n", encoding="utf-8")
    assert seeds.read_seed_file(path).published == date
