"""The scorer's text analysis (aliases; analyses made in a parsing process: prepare) and the
emerging-story groups' bounds."""

from __future__ import annotations

from collections import Counter
import datetime as dt
import math
import multiprocessing
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.corpus import article
from worker import emerging, evaluate
from worker.tracking.backgrounds import Backgrounds
from worker.tracking.buckets import bucket_features
from worker.tracking.vectors import ProfileMatrix, Recent, Stacked, Unit
from worker.tracking.aliases import AliasTable
from worker.tracking.textproc import words
from worker.models import TextAnalysis
from worker.tracking.analysis import Analysis, analyze, generic_aliases, prepare, unpack
from worker.tracking.decisions import Doc, StorylineSpec
from worker.tracking.settings import DEFAULT_ALIASES, TrackerConfig
from worker.tracking.profiles import reads_differently, rule_starts
from worker.tracking.track import Tracker

DATA = Path(__file__).parent / "data" / "tracking-small.jsonl"


def norms(table: AliasTable, text: str) -> list[str]:
    return table.apply(words(text))


def test_a_storylines_own_aliases_extend_the_generic_group_they_overlap() -> None:
    generic = AliasTable.build(DEFAULT_ALIASES)
    own = AliasTable.build([["DPRK", "North Korea", "N Korea"], ["Russia", "Moscow"]], base=generic)
    assert norms(own, "DPRK") == norms(own, "North Korea") == norms(own, "Pyongyang") == norms(generic, "DPRK")
    assert norms(own, "Korea") == norms(generic, "North Korea")  # "N Korea": the storyline's own variant
    assert norms(own, "Moscow") == ["russia"]
    assert own.firsts_beyond(generic) == {"korea", "moscow"}


SEED = Path(__file__).parents[1] / "seeds" / "000_258aa0af6080a6dd.txt"  # names Pak Myong-ho


def test_a_name_spelled_otherwise_is_read_as_the_storylines_name_and_lone_lookalikes_are_not() -> None:
    tracker = Tracker(TrackerConfig())
    text = SEED.read_text()
    tracker.add_storyline(StorylineSpec("fy", "Friendship Year", (Doc("seed", "", text, 0.0),), keywords=("Ercis",)))

    def read(title: str, text: str) -> Doc:
        doc = Doc(title, title, text, 1.0)
        tracker.decide(doc)
        return doc

    park = read("Park Myung-ho in Beijing", "Vice minister Park Myung-ho arrived on Monday. Park said ties were strong.")
    weights = tracker._reader.analysis(park).weights
    assert {"pak", "myong", "pak myong"} <= weights.keys() and "park" not in weights  # "Park said" too
    assert tracker.unit(park).as_dict()["pak"] > 0

    half = read("Talks", "Talks were led by Park Myong-ho on Monday.")  # one word spelled otherwise
    assert {"pak", "pak myong"} <= tracker._reader.analysis(half).weights.keys()

    # Lone words one edit from a name word name nobody: "Park" and "Myung" stay as written.
    alone = read("Park rangers", "Rangers in the Park met on Monday. Mr Myung, a ranger, spoke.")
    assert {"park", "myung"} <= tracker._reader.analysis(alone).weights.keys()
    # A one-word keyword is a name by itself.
    variant = read("Quake", "Rescuers reached Erciz on Monday.")
    assert "ercis" in tracker._reader.analysis(variant).weights


def _prepare(texts: tuple[str, str]) -> TextAnalysis:
    return prepare(*texts)


def stream() -> tuple[list[StorylineSpec], list[Doc]]:
    """The small labelled stream, storylines with aliases and a keyword name, and one item that
    spells that name differently ("Erciz")."""
    labelled = evaluate.load_dataset(DATA)
    specs = [StorylineSpec(sid, sid, tuple(i.doc for i in its), keywords=("Ercis",),
                           aliases=(("Van province", "Van"), ("Fenland", "Fenland District")))
             for sid, its in evaluate.seed_sets(labelled, 2).items()]
    docs = [i.doc for i in labelled]
    variant = Doc("erciz", "Rescuers reach Erciz villages after Van quake",
                  "Rescue teams reached villages around Erciz, the town worst hit by the earthquake.",
                  docs[-1].published + 60)
    return specs, docs + [variant]


def decisions(config: TrackerConfig, specs: list[StorylineSpec], docs: list[Doc]) -> list[tuple[str, str, bool, float]]:
    tracker = Tracker(config)
    seeds_end = {spec.seeds[-1].id: spec for spec in specs}
    out = []
    for doc in docs:
        out += [(d.storyline_id, d.doc_id, d.followup, round(d.score, 12)) for d in tracker.process(doc)]
        if doc.id in seeds_end:
            tracker.add_storyline(seeds_end[doc.id])
    return out


def test_an_analysis_made_in_another_process_decides_exactly_as_one_made_by_the_tracker() -> None:
    specs, docs = stream()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:  # another hash seed
        prepared = list(pool.map(_prepare, [(d.title, d.text) for d in docs]))
    shipped = [replace(d, prepared=p) for d, p in zip(docs, prepared)]
    # Document-frequency buckets do not depend on the process's string hashing.
    assert [p.buckets for p in prepared] == [prepare(d.title, d.text).buckets for d in docs]
    config = TrackerConfig()
    assert decisions(config, specs, shipped) == decisions(config, specs, docs)

    # Both ways back to the tracker's own analysis were taken: a spelling fix, own aliases.
    tracker = Tracker(config)
    for spec in specs:
        tracker.add_storyline(spec)
    variant = tracker._reader.prepared(shipped[-1])
    assert variant is not None and tracker._reader.fixes(variant) == {"erciz": "ercis"}  # the keyword "Ercis"
    assert tracker._reader.fixes(unpack(prepared[0])) == {}
    starts = unpack(prepared[0]).starts  # "Van" starts a storyline's own alias
    assert any(reads_differently(s, rule_starts(starts)) for s in tracker._storylines.values())


def test_an_analysis_made_with_other_settings_is_not_used() -> None:
    specs, docs = stream()
    other = replace(TrackerConfig(), title_weight=3.0)
    shipped = [replace(d, prepared=prepare(d.title, d.text)) for d in docs]
    assert decisions(other, specs, shipped) == decisions(other, specs, docs)
    assert decisions(other, specs, docs) != decisions(TrackerConfig(), specs, docs)


def test_emerging_groups_stay_bounded_and_keep_the_ones_that_grew(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emerging, "MAX_OPEN", 40)
    rng = random.Random(7)
    tracker = Tracker(TrackerConfig())
    for n in range(emerging.MIN_WINDOW):
        tracker.observe(Doc(f"w{n}", *article(rng, 600), float(n)))
    detector = emerging.Emerging(3)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)

    def add(n: int, title: str, text: str, source: str) -> emerging.StoryGroup | None:
        doc = Doc(str(n), title, text, 1000.0 + n)
        tracker.process(doc)
        return detector.add(emerging.GroupItem(n, start + dt.timedelta(minutes=n), title), source, doc, tracker)

    story = ("Volcano erupts near Quellon fishing port",
             "The Quellon volcano erupted overnight, covering the fishing port of Quellon in ash; ferries "
             "to Chiloe island were halted and thousands of residents were evacuated.")
    add(0, *story, "a")
    add(1, *story, "b")  # grows the first group
    for n in range(2, 200):
        add(n, *article(rng, 600), "c")
    assert len(detector.groups) <= 40
    grown = [g for g in detector.groups if len(g.items) > 1]
    assert [m.id for m in grown[0].items] == [0, 1]
    indexed = {id(g) for groups in detector.by_term.values() for g in groups}
    assert indexed == {id(g) for g in detector.groups if g.core}  # no posting to a group let go
    assert all(g in detector.by_term[t] for g in detector.groups for t in g.core)
    assert add(300, *story, "d") is grown[0]  # a third item from another source: a suggestion


def test_an_items_key_terms_are_its_heaviest_words_in_a_stable_order_however_many_numbers_crowd_them() -> None:
    """Only the heaviest weights are sorted: the terms are those of a stable sort of all of
    them (ties in the vector's order), numbers left out, also where ties straddle the cut or
    numbers fill the top."""
    rng = random.Random(8)
    for _ in range(500):
        n = rng.randrange(0, 120)
        names = [str(k) if rng.random() < rng.choice((0.05, 0.6, 0.95)) else f"w{k}" for k in range(n)]
        weights = np.array([rng.choice((0.5, 1.0, round(rng.random(), 2))) for _ in range(n)])  # many ties
        assert emerging.key_terms(names, weights, 0) == []
        for count in (1, 12, 30):
            order = sorted(range(n), key=lambda k: -weights[k])  # stable: ties in order
            expected = [names[k] for k in order if not names[k].isdigit()][:count]
            assert emerging.key_terms(names, weights, count) == expected


def test_a_groups_time_span_follows_items_that_arrive_out_of_publication_order() -> None:
    day, start = dt.timedelta(days=1), dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    group = emerging.StoryGroup([emerging.GroupItem(1, start + 2 * day, "b")], Counter(["quake"]), {"a"})
    group.take(emerging.GroupItem(2, start, "a"), "b", ["quake"])
    group.take(emerging.GroupItem(3, start + day, "c"), "c", ["ferry"])
    assert (group.first_at, group.last_at) == (start, start + 2 * day)
    assert group.spans(start + 3 * day) == 3 * day and group.spans(start + day) == 2 * day
    assert group.sources == {"a", "b", "c"} and group.terms == Counter(quake=2, ferry=1)


@pytest.mark.parametrize("normalization", ["tail", "zscore"])
def test_background_windows_keep_the_exact_quantile_or_sums_of_their_last_scores(normalization: str) -> None:
    """The ring arrays recompute a quantile ("tail") only where it can have changed, or keep
    running sums ("zscore"): checked against a plain sorted window, with ties, a window filling
    up, resets and rows left out, and runs of zeros under a zero quantile."""
    config = replace(TrackerConfig(), bg_window=50, bg_quantile=0.9, normalization=normalization)
    bg = Backgrounds(config)
    bg.grow(6)
    rng = random.Random(3)
    windows: list[list[float]] = [[] for _ in range(6)]
    for step in range(3000):
        if step % 997 == 0:
            row = rng.randrange(6)
            windows[row] = [rng.choice((0.0, 0.1, 0.2, rng.random())) for _ in range(rng.randrange(80))]
            bg.reset(row, np.array(windows[row]))
        rows = sorted(rng.sample(range(6), rng.randrange(1, 7)))
        zeros = step % 1000 < 300  # a stretch of unrelated items: the quantile falls to 0
        scores = [0.0 if zeros else rng.choice((0.0, 0.1, 0.2, rng.random())) for _ in rows]  # ties too
        bg.add(np.array(rows, np.intp), np.array(scores))
        for row, score in zip(rows, scores):
            windows[row] = (windows[row] + [score])[-50:]
        for row, window in enumerate(windows):
            ordered = sorted(window)
            expected = ordered[min(int(0.9 * len(ordered)), len(ordered) - 1)] if ordered else 0.0
            if normalization == "tail":
                assert bg.quantile[row] == expected
            else:
                assert math.isclose(bg.total[row], sum(window), abs_tol=1e-9)
                assert math.isclose(bg.total_sq[row], sum(x * x for x in window), abs_tol=1e-9)


def test_decisions_are_read_one_by_one_or_as_follow_ups() -> None:
    specs, docs = stream()
    tracker = Tracker(TrackerConfig())
    seeds_end = {spec.seeds[-1].id: spec for spec in specs}
    seen = 0
    for doc in docs:
        decisions = tracker.process(doc)
        listed = list(decisions)
        assert len(listed) == len(decisions) and decisions[-1:] == listed[-1:]
        assert decisions.followups == [d for d in listed if d.followup]
        assert all(d.doc_id == doc.id and (d.reasons is not None) == d.followup for d in listed)
        seen += len(decisions.followups)
        if doc.id in seeds_end:
            tracker.add_storyline(seeds_end[doc.id])
    assert seen > 0


@pytest.mark.parametrize("bits", [20, 2])  # 2: profile features share lookup buckets (binary search)
def test_stacked_recent_vectors_give_the_same_dot_products_as_dictionaries(
        bits: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Stacked, "LOOKUP_BITS", bits)
    rng = random.Random(5)
    vocabulary = [f"w{n}" for n in range(400)] + [f"w{n} w{n + 1}" for n in range(200)]

    def vector(size: int) -> dict[str, float]:
        return {f: rng.random() for f in rng.sample(vocabulary, size)}

    vectors = [vector(rng.randrange(0, 60)) for _ in range(300)]
    recent = [Recent.of(Doc(str(n), "", "", 0.0), Analysis(dict.fromkeys(v, 1.0), {}),
                               Unit(list(v), np.array(list(v.values()))))
              for n, v in enumerate(vectors)]
    assert all(r._hashes is None for r in recent)  # hashed when first stacked: most never are
    lookup = np.zeros(1 << bits, np.int16)
    stacked = Stacked(recent, lookup)
    for profile in (vector(150), vector(1), {}, {"absent": 1.0}):
        expected = [sum(w * profile.get(f, 0.0) for f, w in v.items()) for v in vectors]
        assert np.allclose(stacked.dots(profile), expected, rtol=1e-12, atol=0.0)
        assert not lookup.any()  # the scratch is left clean
    assert len(Stacked([], lookup).dots(vector(5))) == 0


def test_the_profile_matrix_gives_the_same_dot_products_as_dictionaries_as_profiles_come_and_go() -> None:
    """Profiles put, replaced and dropped in two blocks of storylines (rows freed and reused):
    every item's dot products with them match plain dictionaries, whether its features are
    looked up one by one or by their buckets first, and a feature that only shares a profile
    feature's bucket adds nothing."""
    rng = random.Random(7)
    vocabulary = [f"w{n}" for n in range(300)]
    key = b"store secret"
    matrix, profiles = ProfileMatrix(key), {}
    n_slots = ProfileMatrix.BLOCK + 10
    for step in range(600):
        slot = rng.randrange(n_slots)
        if rng.random() < 0.25:
            matrix.drop(slot)
            profiles.pop(slot, None)
        else:
            profiles[slot] = {f: rng.random() for f in rng.sample(vocabulary, rng.randrange(0, 40))}
            matrix.put(slot, profiles[slot])
        item = {f: rng.random() for f in rng.sample(vocabulary + ["unknown"], rng.randrange(0, 50))}
        expected = [sum(w * profiles.get(s, {}).get(f, 0.0) for f, w in item.items()) for s in range(n_slots)]
        weights = np.array(list(item.values()))
        got = matrix.dots(list(item), weights, n_slots)
        assert np.allclose(got, expected, rtol=1e-12, atol=1e-15)
        buckets = bucket_features(item, key)
        assert matrix.dots(list(item), weights, n_slots, buckets).tolist() == got.tolist()
        if "unknown" in item and profiles:  # as if "unknown" fell in a profile feature's bucket
            some = rng.choice([f for p in profiles.values() for f in p] or ["w0"])
            buckets[list(item).index("unknown")] = bucket_features([some], key)[0]
            assert matrix.dots(list(item), weights, n_slots, buckets).tolist() == got.tolist()
    for block in matrix._blocks:  # a row is kept exactly while some profile uses it
        assert set(block.row_of) == {f for s, p in profiles.items() if s // matrix.BLOCK == matrix._blocks.index(block)
                                     for f in p}


def test_observing_after_storylines_came_and_went_adds_each_score_to_its_own_storyline() -> None:
    specs, docs = stream()
    tracker = Tracker(TrackerConfig())
    first, second = specs[0], specs[1]
    for doc in docs:
        tracker.observe(doc)
    tracker.add_storyline(first)
    tracker.add_storyline(second)
    doc = Doc("bakery", "Village bakery wins national bread award",
              "A family bakery in the village won the national award for its sourdough loaf.", docs[-1].published + 60)
    decisions = tracker.decide(doc)
    assert {d.storyline_id for d in decisions} == {first.id, second.id} and not decisions.followups
    slot = tracker._storylines[second.id].slot
    before = int(tracker._slots.backgrounds.count[2 * slot])
    tracker.remove_storyline(first.id)  # its slot is free: the scores must find the second by id
    tracker.add_storyline(replace(first, id="other"))  # and takes that slot
    other = 2 * tracker._storylines["other"].slot
    other_before = (int(tracker._slots.backgrounds.count[other]), tracker._slots.backgrounds.total[other])
    tracker.observe(doc, decisions)
    assert tracker._storylines[second.id].slot == slot
    assert tracker._slots.backgrounds.count[2 * slot] == min(before + 1, TrackerConfig().bg_window)
    assert (tracker._slots.backgrounds.count[other], tracker._slots.backgrounds.total[other]) == other_before  # not first's score


def test_names_whose_characters_read_as_clause_breaks_keep_their_own_keys() -> None:
    config = TrackerConfig()
    text = "Officials said Room⑴ was sealed, and Pak Myong-ho met Wang Yajun in Beijing on Monday."
    names = analyze("Talks", text, config, generic_aliases(config.default_aliases)).names
    assert names == {"room 1": "Room⑴", "pak myong ho": "Pak Myong-ho", "wang yajun": "Wang Yajun", "beij": "Beijing"}


@pytest.mark.parametrize("mode", ["nearest", "mix"])
def test_a_storyline_of_keywords_alone_starts_in_every_score_mode(mode: str) -> None:
    tracker = Tracker(replace(TrackerConfig(), score_mode=mode))  # type: ignore[arg-type]
    tracker.observe(Doc("a", "Quake hits Van", "An earthquake hit Van province on Sunday.", 0.0))
    tracker.add_storyline(StorylineSpec("quake", "Van quake", (), keywords=("Van earthquake",)))
    assert [d.storyline_id for d in tracker.process(Doc("b", "Van quake toll rises", "The toll rose.", 60.0))] == ["quake"]


def test_a_storylines_silence_counts_from_when_it_was_tracked_for_items_since() -> None:
    """A storyline added today with seeds from years ago has not gone quiet for years for its
    reader: an item published since it was tracked counts its silence from then (a 0.3 cut of
    every score, and expiry at once); an item published before is judged as history."""
    from worker.tracking.decisions import Doc, StorylineSpec

    day = 86400.0
    seeded = 1_700_000_000.0  # the seeds' time
    added = seeded + 700 * day  # the storyline added to the worker
    seed = Doc("seed", "Rail link opens between the two capitals", "The new rail link between the capitals opened "
               "with a ceremony; trains will run twice a week, the ministers said.", seeded)
    spec = StorylineSpec("rail", "The rail link", (seed,), expires_after=300 * day)
    now = Doc("new", "Rail link between the capitals carries its first freight",
              "The rail link between the capitals carried its first freight train, the ministers said.", added + day)
    old = replace(now, id="old", published=seeded + 400 * day)
    scores = {}
    for tracked_since in (None, added):
        tracker = Tracker(TrackerConfig())
        tracker.add_storyline(replace(spec, tracked_since=tracked_since))
        decisions = tracker.decide(now)
        scores[tracked_since] = decisions
        assert len(tracker.decide(old)) == 0  # history: 400 days of silence expire it either way
    assert len(scores[None]) == 0  # 701 days quiet: expired
    [decision] = scores[added]
    cfg = TrackerConfig()
    assert math.isclose(decision.score, decision.raw - cfg.recency_penalty * math.log1p(day / cfg.recency_scale))
