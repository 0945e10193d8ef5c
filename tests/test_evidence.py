"""Storyline evidence on a beat feed (worker/tracking/evidence.py): where a storyline's own names stand."""

from __future__ import annotations

import random

import numpy as np

from worker.tracking.analysis import generic_aliases, sentences
from worker.tracking.buckets import bucket_features
from worker.tracking.decisions import Doc, StorylineSpec
from worker.tracking.evidence import Evidence, Zones
from worker.tracking.settings import TrackerConfig
from worker.tracking.track import Tracker

DAY = 86400.0
RUSSIA = StorylineSpec(
    "nk-russia", "North Korea's turn towards Russia",
    seeds=(Doc("seed", "North Korea and Russia sign a pact", "Pyongyang and Moscow signed a treaty.", 0.0),),
    keywords=("Russia", "Putin", "military cooperation"),
    aliases=(("North Korea", "DPRK", "Pyongyang"), ("Russia", "Moscow", "Kremlin")),
)
BEAT = ["Farmers Bring In Rice Harvest", "Factory Overfulfils Plan", "Art Troupe Performs",
        "Schoolchildren Visit Museum", "New Housing Completed", "Sports Games Held"]


def beat_item(n: int, title: str, text: str = "", source: str = "kcna") -> Doc:
    body = text or f"Pyongyang, May {n % 28 + 1} (KCNA) -- The DPRK marked event number {n} with workers and officials."
    return Doc(f"{source}-{n}", title, body, DAY * (10 + n / 10), source=source)


def warmed(source: str = "kcna", on_beat: bool = True) -> Tracker:
    tracker = Tracker(TrackerConfig())
    tracker.add_storyline(RUSSIA)
    for n in range(40):  # every item of this feed names the DPRK (or, off the beat, nothing)
        text = "" if on_beat else f"The city council met on item {n} about parks and roads."
        tracker.process(beat_item(n, BEAT[n % len(BEAT)], text, source))
    return tracker


def test_on_a_beat_feed_a_name_in_the_title_makes_a_follow_up_and_says_why() -> None:
    tracker = warmed()
    decisions = tracker.process(beat_item(100, "Kim Jong Un Receives Delegation of Russian Federation"))
    [followup] = decisions.followups
    assert followup.storyline_id == "nk-russia" and followup.evidence >= 1.0
    assert followup.reasons is not None and followup.reasons.evidence[0] == "Russia (title)"
    assert "North Korea (implied by this feed)" in followup.reasons.evidence


def test_a_name_said_once_in_passing_is_not_a_follow_up() -> None:
    tracker = warmed()
    text = ("Pyongyang, May 3 (KCNA) -- " + "Workers of the DPRK rallied for the harvest. " * 30
            + "Guests from Russia also attended.")
    assert not tracker.process(beat_item(101, "Harvest Rally Held", text)).followups


def test_off_the_beat_evidence_adds_nothing() -> None:
    tracker = warmed(source="city-news", on_beat=False)
    doc = Doc("x", "Russian Ballet Tours City", "The ballet from Russia performed at the city theatre.", DAY * 20,
              source="city-news")
    decisions = tracker.decide(doc)
    assert list(decisions.evidence) == [0.0]  # no unit of the storyline is implied by this feed


def test_a_storyline_decides_from_its_first_seed_on() -> None:
    tracker = Tracker(TrackerConfig())
    spec = StorylineSpec("s", "Storyline", seeds=(Doc("a", "First seed", "One.", 10 * DAY),
                                                  Doc("b", "Last seed", "Two.", 20 * DAY)))
    tracker.add_storyline(spec)
    assert len(tracker.decide(Doc("between", "Between the seeds", "Text.", 15 * DAY))) == 1
    assert len(tracker.decide(Doc("before", "Before the seeds", "Text.", 5 * DAY))) == 0


def test_a_short_item_naming_the_name_in_most_of_its_sentences_is_a_follow_up() -> None:
    tracker = warmed()
    text = ("Pyongyang, May 4 (KCNA) -- The foreign minister of the DPRK returned home after a forum held "
            "in Russia. She was greeted at the airport by the Russian ambassador. -0-")  # "-0-": no sentence
    [followup] = tracker.process(beat_item(102, "Foreign Minister Back Home", text)).followups
    assert followup.reasons is not None and followup.reasons.evidence[0] == "Russia (lead, 2×, in 2 of 2 sentences)"


def test_a_name_below_the_lead_in_half_the_sentences_is_a_follow_up() -> None:
    tracker = warmed()
    opening = ("Pyongyang, May 5 (KCNA) -- The general secretary of the Workers' Party visited the tower on "
               "the anniversary of liberation, accompanied by senior officials of the Central Committee, the "
               "foreign minister and commanding officers of the armed forces organs, and a guard of honour of "
               "the army lined up in front of the tower while a band played music in the square, and veterans, "
               "students, workers and farmers from the capital city gathered around the monument with flowers, "
               "as national radio and television broadcast the ceremony live across the whole country. ")
    text = opening + ("A wreath was laid. The anthem of Russia was played. He praised the people of Russia. "
                      "He said the ties with Russia would grow. The guard marched past.")
    decisions = tracker.process(beat_item(103, "Leader Visits Liberation Tower", text))
    [followup] = decisions.followups
    assert followup.reasons is not None and followup.reasons.evidence[0] == "Russia (text, 3×, in 3 of 6 sentences)"


def test_a_name_in_a_few_sentences_of_a_list_is_not_a_follow_up() -> None:
    tracker = warmed()
    text = ("Pyongyang, May 6 (KCNA) -- A player of the DPRK won the final of the Asian championships. "
            "Players came from the DPRK, Russia, Thailand and India. She beat her rival from Russia. "
            "She then beat a player from Japan. Her teammates won two silver medals. The team returned home.")
    decisions = tracker.process(beat_item(104, "DPRK Wins at Asian Championships", text))
    assert not decisions.followups and 0.0 < decisions.evidence[0] < 1.0  # in 2 of 6 sentences


def test_sentences_end_at_full_stops_not_inside_acronyms_and_skip_one_word_lines() -> None:
    table = generic_aliases(TrackerConfig().default_aliases)
    text = "Envoys of the U.S. and Japan met in Seoul. Talks went on!\nThey agreed on a plan. -0-"
    read = sentences(text, table, 400)
    assert len(read) == 3  # "-0-" is no sentence
    assert {"unit_state", "japan", "south_korea"} <= read[0] and "talk" in read[1] and "plan" in read[2]


EXCHANGES = StorylineSpec(
    "exchanges", "China–North Korea high-level exchanges",
    seeds=(Doc("zhao", "China to intensify high-level exchanges with North Korea, Zhao Leji says",
               "Beijing is willing to intensify high-level exchanges with North Korea, deepen cooperation and "
               "strengthen strategic coordination, Zhao Leji told officials in Pyongyang during a three-day visit "
               "marking 75 years of ties between China and the DPRK.", 0.0),),
    keywords=("high-level exchanges",),
    aliases=(("North Korea", "DPRK", "Pyongyang"), ("China", "Beijing"),
             ("China-DPRK Friendship Year", "Friendship Year")),
)
GENERAL = ["Council Approves Budget For Parks", "Storm Closes Coastal Roads", "Local Team Wins Cup",
           "Museum Opens New Wing", "Rail Strike Ends After Talks", "Bakery Prices Rise Again"]


def test_an_item_that_names_only_one_of_the_parties_in_the_title_is_no_follow_up() -> None:
    """The title names China and North Korea: the same visit to Vietnam is no news of their
    relations, however alike its words; the storyline's own name is no party an item must repeat."""
    tracker = Tracker(TrackerConfig())
    tracker.add_storyline(EXCHANGES)
    for n in range(60):
        tracker.process(Doc(f"g{n}", GENERAL[n % len(GENERAL)], f"Item {n}: the city council met about parks, "
                            "roads and schools, officials said.", DAY * (1 + n / 10), source="city"))
    to_vietnam = Doc("vn", "China to intensify high-level exchanges with Vietnam, Zhao Leji says",
                     "Beijing is willing to intensify high-level exchanges with Vietnam, deepen cooperation and "
                     "strengthen strategic coordination, Zhao Leji told officials in Hanoi during a three-day visit "
                     "marking 75 years of ties between China and Vietnam.", DAY * 10, source="city")
    to_korea = Doc("nk", "China to intensify high-level exchanges with North Korea, Zhao Leji tells Kim",
                   "Beijing will intensify high-level exchanges with North Korea and deepen cooperation, Zhao Leji "
                   "told Kim Jong Un in Pyongyang on the last day of a three-day visit.", DAY * 10, source="city")
    vietnam = tracker.decide(to_vietnam, explain="all")
    assert vietnam.score[0] >= vietnam.threshold[0]  # its words alone would make it one
    assert not vietnam.followups and vietnam.missing == [["North Korea"]]
    assert [d.storyline_id for d in tracker.decide(to_korea).followups] == ["exchanges"]


def test_the_units_named_are_found_by_their_buckets_as_by_looking_up_every_feature() -> None:
    """An item's features are looked up by name only where their bucket is a unit key's: the
    same mentions as looking up every feature, and a feature that only shares a key's bucket
    names nothing."""
    key = b"store secret"
    evidence = Evidence(bucket_key=key)
    evidence.add(0, [("Russia", (("russia",), ("moscow",))), ("North Korea", (("north korea",), ("dprk",)))])
    evidence.add(1, [("Putin", (("putin",),))])
    rng = random.Random(4)
    vocabulary = ["russia", "moscow", "north korea", "dprk", "putin"] + [f"word{n}" for n in range(60)]
    for _ in range(300):
        features = rng.sample(vocabulary, rng.randrange(0, 20))
        weights = {f: 1.0 + rng.random() for f in features}
        title = frozenset(rng.sample(features, min(2, len(features))))

        def mentions(buckets: np.ndarray | None) -> tuple[list[int], list[int]] | None:
            found = evidence.mentions(Zones(title, frozenset(), weights, 0.5, 1.0, features=features, buckets=buckets))
            return None if found is None else (found.zone.tolist(), found.count.tolist())

        expected = mentions(None)
        buckets = bucket_features(features, key)
        assert mentions(buckets) == expected
        others = [k for k, f in enumerate(features) if f.startswith("word")]
        if others:  # as if another word fell in a key's bucket
            buckets[rng.choice(others)] = bucket_features(["putin"], key)[0]
            assert mentions(buckets) == expected
