"""Storyline evidence: the names a storyline declares, and where an item puts them.

Why: on a beat feed every item is about the beat (every KCNA article names the DPRK, Kim Jong Un,
the Party), so a TF-IDF profile scores the storyline's items no higher than the rest and a
background-normalised score finds nothing. What tells a reader that an item continues "North
Korea's turn towards Russia" is where its names stand: "Russia" in the headline, in the lead, or
said again and again; a commentary that names Russia once in passing does not.

The evidence comes from what the config says, nothing written for one storyline:

- Units. A storyline's units are its keywords and those of its alias groups that its title or
  keywords name ("China–DPRK Friendship Year" names the China and the DPRK groups). A unit
  matches any of its spellings, and a place name's adjective and plural ("Russia": Russian,
  Russians; "China": Chinese). A unit written with a capital is a *name*; one in lower case
  ("delegation", "military cooperation") is a *topic* word, which counts only beside a name.
- Implied units. Per source (feed), the share of recent items that mention each unit: a unit in
  at least half of a feed's items is *implied* there (every KCNA item is about the DPRK). A
  storyline has evidence on a feed only where one of its units is implied: the feed is on its
  beat, and the storyline is told from the rest of the beat by its other units. On any other
  feed (a general news site, the Emergent stories) this adds nothing: the similarity score
  decides alone there, as before.
- Salience. A unit in the title counts 1, first in the lead (the first LEAD_TOKENS words) 0.6,
  further down 0.3, plus 0.1 for each further mention (at most 0.4). Below the title, a unit
  named in SPREAD_SHARE (half) of the item's sentences, and in at least MIN_SPREAD of them,
  counts 1 too, and in proportion below that, if that is more: where the lead stands says
  little about a short item ("...returned from Russia. She was greeted by the Russian
  ambassador.") or one whose lead is formula ("Kim Jong Un, general secretary of..."), while a
  name said in most of its sentences is what it is about. A name said five times in one
  sentence (a list of guests) is one sentence. Sentences are read only for the few items where
  a storyline's name is said twice or more below the title, on a feed on its beat. A unit's weight fades from
  1 to 0 as its share of the feed's items grows from DISTINCT_SHARE to IMPLIED_SHARE: a name
  half the feed mentions says little.
- Score. The sum over the storyline's present, non-implied units of weight × salience (topic
  words at half, and only when a name stands in the title or lead). One name in the title, a
  name in the lead said five times, or a name in half the sentences reaches 1.0, the default
  ``evidence_threshold``.

Measured and left out (KCNA dev file, issue 17): names learned from a storyline's follow-ups
(capitalised words far more frequent there than on the feed) as secondary units found no
further follow-up and took two "no" items (junk such as "Receives" and "June" is learned too);
requiring a unit that no sibling storyline shares loses every follow-up that China alone
names (high-level exchanges: 1 of 6).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from worker.tracking.buckets import BucketFilter, bucket_features

NONE, BODY, LEAD, TITLE = 0, 1, 2, 3
ZONE_NAMES = ("", "text", "lead", "title")
SALIENCE = np.array([0.0, 0.3, 0.6, 1.0])
MENTION_BONUS, MAX_BONUS = 0.1, 0.4
TOPIC_WEIGHT = 0.5
DISTINCT_SHARE, IMPLIED_SHARE = 0.25, 0.5
MIN_SOURCE_DOCS = 20  # a feed's shares mean something from this many items on (90 % of 20 is clear)
LEAD_TOKENS = 50  # content words of the text that make its lead (about the first 400 characters)
SPREAD_SHARE, MIN_SPREAD = 0.5, 2  # a name in half the sentences (two at least) is as salient as in the title


@dataclass(frozen=True, slots=True)
class Unit:
    """One thing a storyline names, in every spelling the tracker reads."""

    label: str
    """As the config writes it (an alias group's first spelling, a keyword)."""
    variants: tuple[tuple[str, ...], ...]
    """Per spelling, the feature keys (words, word pairs) that must all be in one zone."""
    name: bool


@dataclass(slots=True)
class Mentions:
    """Where an item mentions each known unit: zone (NONE, BODY, LEAD, TITLE) and count; and,
    read only when asked, its sentences (to say how many of them name a unit)."""

    zone: npt.NDArray[np.int8]
    count: npt.NDArray[np.int32]
    read_sentences: Callable[[], Sequence[frozenset[str]]] = tuple
    _sentences: Sequence[frozenset[str]] | None = None

    @property
    def any(self) -> bool:
        return bool(self.zone.any())

    @property
    def sentences(self) -> Sequence[frozenset[str]]:
        if self._sentences is None:
            self._sentences = self.read_sentences()
        return self._sentences

    def spread(self, unit: Unit) -> int:
        """How many of the item's sentences name ``unit``."""
        return sum(1 for s in self.sentences if any(all(k in s for k in keys) for keys in unit.variants))


@dataclass(frozen=True, slots=True)
class Counted:
    """One of a storyline's units in an item: where it stands and what it added to the score."""

    label: str
    name: bool
    """A name (counts alone) or a topic word (counts at half, beside a name in the title or lead)."""
    zone: str
    """"title", "lead", "text", or "" (not named: the feed implies it)."""
    count: int
    share: float
    """The share of the feed's recent items that name it."""
    weight: float
    """1 while the share is under DISTINCT_SHARE, fading to 0 at IMPLIED_SHARE."""
    salience: float
    points: float
    """What it added to the evidence score: weight × salience (topic words: × TOPIC_WEIGHT, and
    only beside a name in the title or lead); 0 off the storyline's beat."""
    implied: bool
    """In IMPLIED_SHARE of the feed's items: it puts the feed on the beat and adds nothing itself."""
    spread: str = ""
    """", in 6 of 13 sentences" where the share of sentences that name it counted, else ""."""


@dataclass(frozen=True, slots=True)
class Zones:
    """The feature keys of an item's title and lead, and its weighted features (title and the
    text's first words) with the scale of a word pair's weight, to count mentions; and how to
    read the text's sentences (each one's feature keys), which few items need."""

    title: Container[str]
    lead: Container[str]
    weights: Mapping[str, float]
    phrase_weight: float
    title_weight: float
    sentences: Callable[[], Sequence[frozenset[str]]] = tuple
    features: Sequence[str] = ()
    """The weighted features in order, and their document-frequency buckets if known: the
    units' keys are then looked for among those in a key's bucket only (a lookup of every
    feature took a twentieth of the writer's time)."""
    buckets: npt.NDArray[np.uint32] | None = None


def place_forms(word: str) -> list[str]:
    """A place name's adjective and plural, for names ending in -a (Russia: Russian, Russians;
    China: Chinese; Korea: Korean): how English news writes a country in its headlines."""
    if len(word) < 4 or not word.endswith("a") or not word[:1].isupper() or " " in word:
        return []
    return [word + "n", word + "ns", word[:-1] + "ese"]


def declared_units(title: str, keywords: Sequence[str], aliases: Sequence[Sequence[str]]
                   ) -> list[tuple[str, tuple[str, ...]]]:
    """A storyline's units as (label, spellings): its keywords, each merged into the alias group
    it belongs to, and the alias groups that its title or keywords name."""
    named = " | ".join([title, *keywords]).casefold()
    units: list[tuple[str, tuple[str, ...]]] = []
    taken: set[int] = set()
    for n, group in enumerate(aliases):
        if any(_names(named, spelling) for spelling in group):
            units.append((group[0], tuple(group)))
            taken.add(n)
    for keyword in keywords:
        if not any(keyword.casefold() in (s.casefold() for s in aliases[n]) for n in taken):
            units.append((keyword, (keyword,)))
    return units


def title_actors(title: str, aliases: Sequence[Sequence[str]]) -> list[str]:
    """The labels of the alias groups a storyline's title names: the parties to its story. A
    group with a spelling that names another of them ("China-DPRK Friendship Year") is the
    story's own name, which its items need not repeat, not a party."""
    folded = title.casefold()
    named = [group for group in aliases if group and any(_names(folded, spelling) for spelling in group)]
    return [group[0] for group in named
            if not any(other is not group and any(_names(spelling.casefold(), o) for o in other for spelling in group)
                       for other in named)]


def _names(text: str, spelling: str) -> bool:
    """Whether folded ``text`` names ``spelling`` (or its place forms) as a whole word."""
    for form in [spelling, *place_forms(spelling)]:
        at = text.find(form.casefold())
        while at >= 0:
            end = at + len(form)
            if (at == 0 or not text[at - 1].isalnum()) and (end == len(text) or not text[end].isalnum()):
                return True
            at = text.find(form.casefold(), at + 1)
    return False


class _Source:
    """One feed's recent mentions: which units each of its last items named."""

    __slots__ = ("window", "counts")

    def __init__(self, units: int) -> None:
        self.window: deque[npt.NDArray[np.intp]] = deque()
        self.counts = np.zeros(units, np.int32)

    def shares(self, units: int) -> npt.NDArray[np.float64]:
        if len(self.window) < MIN_SOURCE_DOCS:
            return np.zeros(units)
        return self._grown(units) / len(self.window)

    def add(self, present: npt.NDArray[np.intp], units: int, limit: int) -> None:
        counts = self._grown(units)
        counts[present] += 1
        self.window.append(present)
        if len(self.window) > limit:
            counts[self.window.popleft()] -= 1

    def _grown(self, units: int) -> npt.NDArray[np.int32]:
        if len(self.counts) < units:
            self.counts = np.concatenate([self.counts, np.zeros(units - len(self.counts), np.int32)])
        return self.counts


class Evidence:
    """The units of every storyline, their feeds' statistics, and scores by storyline slot."""

    def __init__(self, window: int = 500, bucket_key: bytes = b"") -> None:
        self.window = window
        self.bucket_key = bucket_key
        """The tracker's: an item's buckets (``Zones.buckets``) were made with it."""
        self._known: BucketFilter | None = None
        """The buckets of ``_keys``, made again once keys are added."""
        self.units: list[Unit] = []
        self._index: dict[tuple[str, tuple[tuple[str, ...], ...]], int] = {}
        self._keys: dict[str, list[int]] = {}  # a feature key -> units with a spelling using it
        self._member = np.zeros((0, 0), bool)  # slot x unit
        self._actor = np.zeros((0, 0), bool)  # slot x unit: the alias groups its title names
        self._names = np.zeros(0, bool)
        self._sources: dict[str, _Source] = {}

    # ------------------------------------------------------------------ storylines

    def add(self, slot: int, units: Iterable[tuple[str, tuple[tuple[str, ...], ...]]],
            actors: Iterable[str] = ()) -> None:
        """Give ``slot`` its units (label, keys per spelling); units are shared by label and keys.
        ``actors``: the labels of those its title names (see ``missing_actors``)."""
        wanted = set(actors)
        found = [(self._unit(label, variants), label in wanted) for label, variants in units if variants]
        self._fit(slot + 1, len(self.units))
        self._member[slot] = self._actor[slot] = False
        for u, actor in found:
            self._member[slot, u] = True
            self._actor[slot, u] = actor

    def declare(self, slot: int, title: str, keywords: Sequence[str], aliases: Sequence[Sequence[str]],
                tokens: Callable[[str], list[str]]) -> None:
        """Give ``slot`` the units a storyline declares (its title, keywords and aliases), read
        into keys with ``tokens``."""
        self.add(slot, [(label, unit_keys(spellings, tokens))
                        for label, spellings in declared_units(title, keywords, aliases)],
                 actors=title_actors(title, aliases))

    def remove(self, slot: int) -> None:
        if slot < len(self._member):
            self._member[slot] = self._actor[slot] = False

    def slot_units(self, slot: int) -> list[int]:
        return np.flatnonzero(self._member[slot]).tolist() if slot < len(self._member) else []

    def _unit(self, label: str, variants: tuple[tuple[str, ...], ...]) -> int:
        key = (label, variants)
        if key not in self._index:
            self._index[key] = len(self.units)
            self.units.append(Unit(label, variants, any(c.isupper() for c in label)))
            for spelling in variants:
                for feature in spelling:
                    self._keys.setdefault(feature, []).append(self._index[key])
            self._known = None
            self._names = np.append(self._names, self.units[-1].name)
        return self._index[key]

    def _fit(self, slots: int, units: int) -> None:
        rows, cols = self._member.shape
        if rows < slots or cols < units:
            shape = (max(rows, slots), max(cols, units))
            self._member, self._actor = _grown(self._member, shape), _grown(self._actor, shape)

    # ------------------------------------------------------------------ items

    def mentions(self, zones: Zones) -> Mentions | None:
        """Where the item names each unit; None when it names none (most items)."""
        found = {u for key in self._named_keys(zones) for u in self._keys[key]}
        if not found:
            return None
        n = len(self.units)
        zone, count = np.zeros(n, np.int8), np.zeros(n, np.int32)
        for u in found:
            zone[u], count[u] = _where(self.units[u], zones)
        return Mentions(zone, count, zones.sentences) if zone.any() else None

    def _named_keys(self, zones: Zones) -> Iterable[str]:
        """The units' keys among the item's features (by their buckets where ``zones`` has them)."""
        names = zones.features
        if zones.buckets is None or len(zones.buckets) != len(names):
            return self._keys.keys() & zones.weights.keys()
        if self._known is None:
            self._known = BucketFilter(bucket_features(self._keys, self.bucket_key))
        return self._keys.keys() & {names[k] for k in self._known.candidates(zones.buckets)}

    def observe(self, mentions: Mentions | None, source: str) -> None:
        """Count the item in its feed's shares."""
        feed = self._sources.get(source)
        if feed is None:
            feed = self._sources[source] = _Source(len(self.units))
        present = np.flatnonzero(mentions.zone) if mentions is not None else _EMPTY
        feed.add(present, len(self.units), self.window)

    def scores(self, mentions: Mentions | None, source: str, slots: npt.NDArray[np.intp]
               ) -> npt.NDArray[np.float64]:
        """The evidence score of the item for each slot (0 off the storyline's beat)."""
        if mentions is None or not len(slots):
            return np.zeros(len(slots))
        weight, implied = self._weights(source)
        member = self._member[slots][:, : len(self.units)]
        on_beat = (member & implied).any(axis=1)
        salience = self._salience(mentions, member[on_beat].any(axis=0) & ~implied & (weight > 0))
        shown = (mentions.zone >= LEAD) & self._names & ~implied & (weight > 0)
        anchored = (member & shown).any(axis=1)
        value = weight * salience
        names = member @ (value * self._names)
        topics = member @ (value * ~self._names) * TOPIC_WEIGHT
        return np.where(on_beat, names + np.where(anchored, topics, 0.0), 0.0)

    def missing_actors(self, mentions: Mentions | None, source: str, slots: npt.NDArray[np.intp],
                       asked: npt.NDArray[np.bool_]) -> list[list[str]]:
        """For each slot (where ``asked``), the parties its title names (China and the DPRK, for
        "China–DPRK Friendship Year") that the item names nowhere and its feed does not imply: an
        item about Chinese rockets, or Russia alone, is no news of their relations, however alike
        its words."""
        found: list[list[str]] = [[] for _ in slots]
        actor = self._actor[slots][:, : len(self.units)] & asked[:, None]
        if not actor.any():
            return found
        present = self._weights(source)[1]
        if mentions is not None:
            present = present | (mentions.zone > NONE)
        absent = actor & ~present
        for k in np.flatnonzero(absent.any(axis=1)).tolist():
            found[k] = [self.units[u].label for u in np.flatnonzero(absent[k]).tolist()]
        return found

    def counted(self, mentions: Mentions | None, source: str, slot: int) -> tuple[Counted, ...]:
        """What each of ``slot``'s units named or implied by the item's feed added to its score,
        in the storyline's order (the parts ``scores`` sums, for a person to read)."""
        weight, implied = self._weights(source)
        shares = self._shares(source)
        units = self.slot_units(slot)
        if mentions is None:
            mentions = Mentions(np.zeros(len(self.units), np.int8), np.zeros(len(self.units), np.int32))
        zone, count = mentions.zone, mentions.count
        wanted = np.zeros(len(self.units), bool)
        wanted[units] = ~implied[units] & (weight[units] > 0)
        salience = self._salience(mentions, wanted)
        on_beat = any(implied[u] for u in units)
        anchored = any(zone[u] >= LEAD and self._names[u] and not implied[u] and weight[u] > 0 for u in units)
        found = []
        for u in units:
            if not (zone[u] or implied[u]):
                continue
            unit = self.units[u]
            value = float(weight[u] * salience[u]) * (1.0 if unit.name else TOPIC_WEIGHT * anchored)
            spread = self._spread_said(mentions, u) if wanted[u] and zone[u] else ""
            found.append(Counted(unit.label, unit.name, ZONE_NAMES[zone[u]], int(count[u]), float(shares[u]),
                                 float(weight[u]), float(salience[u]), value if on_beat else 0.0, bool(implied[u]),
                                 spread))
        return tuple(found)

    def feed_items(self, source: str) -> int:
        """The feed's recent items its shares are counted over (none implied under MIN_SOURCE_DOCS)."""
        feed = self._sources.get(source)
        return len(feed.window) if feed is not None else 0

    def _shares(self, source: str) -> npt.NDArray[np.float64]:
        feed = self._sources.get(source)
        return feed.shares(len(self.units)) if feed is not None else np.zeros(len(self.units))

    def _salience(self, mentions: Mentions, wanted: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        """Each unit's salience: by zone and count, or for the ``wanted`` units named below the
        title, by the share of the item's sentences that name them, if that is more (a short
        item about Russia names it in most of its sentences, wherever its lead stands)."""
        salience = _salience(mentions)
        # Sentences are read only where they could add: a unit said twice or more, not yet at 1.
        could = wanted & (mentions.zone > NONE) & (mentions.count >= MIN_SPREAD) & (salience < 1.0)
        for u in np.flatnonzero(could).tolist():
            salience[u] = max(salience[u], _spread_salience(mentions.spread(self.units[u]), len(mentions.sentences)))
        return salience

    def _spread_said(self, mentions: Mentions, u: int) -> str:
        """", in 6 of 13 sentences" where the share of sentences counted, else ""."""
        if mentions.zone[u] == TITLE:
            return ""
        named = mentions.spread(self.units[u])
        return f", in {named} of {len(mentions.sentences)} sentences" if named >= MIN_SPREAD else ""

    def _weights(self, source: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        shares = self._shares(source)
        weight = np.clip((IMPLIED_SHARE - shares) / (IMPLIED_SHARE - DISTINCT_SHARE), 0.0, 1.0)
        return weight, shares >= IMPLIED_SHARE


_EMPTY = np.zeros(0, np.intp)


def _grown(matrix: npt.NDArray[np.bool_], shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
    grown = np.zeros(shape, bool)
    grown[: matrix.shape[0], : matrix.shape[1]] = matrix
    return grown


def describe(counted: Iterable[Counted]) -> tuple[str, ...]:
    """Counted units in a few words ("Russia (title)", "DPRK (implied by this feed)"), strongest first."""
    shown = []
    for c in counted:
        if c.implied:
            shown.append((0.0, f"{c.label} (implied by this feed)"))
        else:
            times = f", {c.count}×" if c.count > 1 else ""
            shown.append((c.weight * c.salience, f"{c.label} ({c.zone}{times}{c.spread})"))
    return tuple(text for _, text in sorted(shown, key=lambda s: -s[0]))


def _salience(mentions: Mentions) -> npt.NDArray[np.float64]:
    bonus = np.minimum(np.maximum(mentions.count - 1, 0) * MENTION_BONUS, MAX_BONUS)
    bonus = np.where((mentions.zone == TITLE) | (mentions.zone == NONE), 0.0, bonus)
    salience: npt.NDArray[np.float64] = SALIENCE[mentions.zone] + bonus
    return salience


def _spread_salience(named: int, sentences: int) -> float:
    """A unit named in ``named`` of an item's ``sentences``: 1 from SPREAD_SHARE of them on, in
    proportion below; nothing for a single sentence (one mention is what zone and count say)."""
    if named < MIN_SPREAD:
        return 0.0
    return min(1.0, named / sentences / SPREAD_SHARE)


def _where(unit: Unit, zones: Zones) -> tuple[int, int]:
    """The most salient zone any spelling of ``unit`` stands in, and how often it is said."""
    best, count = NONE, 0
    for keys in unit.variants:
        if all(k in zones.title for k in keys):
            best = TITLE
        elif best < LEAD and all(k in zones.lead for k in keys):
            best = LEAD
        elif best < BODY and all(k in zones.weights for k in keys):
            best = BODY
        if all(k in zones.weights for k in keys):
            count += _mentions(keys[0], zones)  # "Russia" and "Russian" are two mentions
    return best, count


def _mentions(key: str, zones: Zones) -> int:
    """How often the text says ``key``: its weight is (1 + ln count + title boost) × scale."""
    scale = zones.phrase_weight if " " in key else 1.0
    boost = zones.title_weight if key in zones.title else 0.0
    return max(1, round(math.exp(zones.weights[key] / scale - 1.0 - boost)))


def unit_keys(spellings: Iterable[str], tokens: Callable[[str], list[str]]) -> tuple[tuple[str, ...], ...]:
    """Each spelling (and place form) as the feature keys the tracker reads it as: one word,
    one word pair, or the pairs of a longer name."""
    keys: list[tuple[str, ...]] = []
    for spelling in spellings:
        for form in [spelling, *place_forms(spelling)]:
            words = tokens(form)
            if len(words) == 1:
                keys.append((words[0],))
            elif words:
                keys.append(tuple(f"{a} {b}" for a, b in zip(words, words[1:])))
    return tuple(dict.fromkeys(keys))
