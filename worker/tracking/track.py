"""Storyline tracking (TDT "tracking"): does a new item continue a storyline the user follows?

Usage::

    tracker = Tracker(TrackerConfig())
    tracker.add_storyline(StorylineSpec(id="fy", title="China-DPRK Friendship Year", seeds=(doc1, doc2)))
    for doc in stream:                      # in arrival order
        decisions = tracker.process(doc)    # decide against every live storyline, then learn from doc
        for d in decisions:
            if d.followup: ...              # d.score, d.threshold, d.reasons, d.novelty

``process(doc)`` is ``decide(doc)`` (pure: reads state, changes nothing) followed by
``observe(doc, decisions)`` (updates corpus statistics, background score statistics and, when
enabled, the storyline profile). Call them separately when you need to, e.g. to decide for a
preview without learning. The tracker never does I/O and keeps no state outside the instance
(textproc memoises pure word functions, bounded); its memory is bounded
by the config (window sizes), so its speed does not fall as the store grows.

How a decision is made (accuracy: ``storywatch eval tracking``, bench/bench_tracking.py):

1. The item becomes a TF-IDF vector over words and adjacent word pairs ("north korea"), with the
   title counted more. IDF comes from a sliding window over the stream itself (every item
   observed, not only seeds), so story names that were unknown yesterday get their weight today.
2. Each storyline keeps a profile: the centroid of its seeds (plus adopted follow-ups, if
   adaptation is on), its keywords as pseudo-text, and the names seen so far.
3. Raw score = cosine(item, profile). Raw cosines are not comparable across storylines (a
   storyline seeded by long articles scores everything lower than one seeded by headlines), so
   each storyline keeps the distribution of the scores that *background* items get against it,
   and the decision uses a normalised score: by default the margin above the storyline's 99th
   background percentile (``normalization="tail"``). A logarithmic recency penalty is
   subtracted first (long-silent storylines need a stronger match).
4. The threshold on the normalised score is global; a storyline may override it.
5. Confident follow-ups join the profile (adaptation), except near-duplicates of a member; the
   background is re-scored when the profile has drifted from the one it was measured against.

Speed (bench/bench_tracking.py): an item's text is analysed once, by ``prepare``, where the item
is parsed (a parsing process), and shipped packed with it; the tracker re-reads the text only
when a spelling fix or a storyline's own aliases would read it otherwise. Document frequencies
are counted per hash bucket in one numpy array, so counting an item and weighting its features
are vector operations. Its cosine with every storyline centroid comes from one product with
the centroids held as dense blocks over their features; everything else per storyline (recency,
normalisation, threshold, background windows) is held in arrays by storyline slot, so an item is
decided against all storylines in a few vector operations, and decisions are ``Decisions``
arrays (a ``Decision`` is made when read); reasons are computed only for follow-ups (and vetoes);
profiles are re-weighted with the current IDF every ``refresh_fraction`` of the DF window.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import zlib
from collections import Counter, deque
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import compress
from operator import itemgetter
from typing import Literal, NamedTuple, TypeVar, overload

import numpy as np
import numpy.typing as npt

from worker.models import UNTITLED
from worker.tracking.evidence import (
    LEAD_TOKENS, Counted, Evidence, Mentions, Zones, declared_units, describe, title_actors, unit_keys,
)
from worker.tracking.textproc import (BREAK, AliasTable, SpellingIndex, fold, is_title_case, language, name_spans, pairs,
                             read, read_sentences, stop_words)

NAME_CHARS = 4000  # names are looked for in the lead: the first few paragraphs
_T = TypeVar("_T", bound=np.generic)

# --------------------------------------------------------------------------- public data


@dataclass(frozen=True, slots=True)
class Doc:
    """A news item as the tracker sees it. ``published`` is POSIX seconds (UTC)."""

    id: str
    title: str
    text: str
    published: float
    prepared: TextAnalysis | None = None
    """The text already analysed where the item was parsed (``prepare``); None: analysed here."""
    source: str = ""
    """The feed it came from: which names a feed implies is counted per feed (evidence.py)."""


@dataclass(frozen=True)
class StorylineSpec:
    """A storyline as the product defines it.

    keywords: names and key phrases ("Friendship Year"); they are added to the profile as a
        pseudo-document and every match is shown in the reasons.
    aliases: groups of equivalent names (["North Korea", "DPRK", "Pyongyang"]); every variant is
        rewritten to the first one before scoring, for this storyline's items and seeds.
    exclude: phrases that veto a follow-up (e.g. "baseball").
    threshold: overrides the tracker's normalised threshold for this storyline.
    expires_after: seconds of silence (no seed, no follow-up) after which the storyline stops
        deciding (it returns no decisions).
    """

    id: str
    title: str
    seeds: tuple[Doc, ...]
    description: str = ""
    keywords: tuple[str, ...] = ()
    aliases: tuple[tuple[str, ...], ...] = ()
    exclude: tuple[str, ...] = ()
    threshold: float | None = None
    expires_after: float | None = None
    starts: float | None = None
    """The earliest publication time (POSIX) of an item it decides on; None: its first seed's.
    (The worker passes the first *dated* seed's time: an undated file seed does not move it.)"""
    tracked_since: float | None = None
    """When the reader began tracking it (the worker: when the storyline was added). Items
    published since then count its silence from then at most: a storyline added today with
    seeds from 2019-2024 has not gone quiet for years for its reader (its silence cut every
    score by 0.3 and expired it). Items published before are judged as the history they are."""


@dataclass(frozen=True, slots=True)
class Reasons:
    """Why a decision came out as it did, for a person to read."""

    top_terms: tuple[tuple[str, float], ...]
    """Features shared with the profile, largest contribution to the cosine first."""
    names: tuple[str, ...]
    """Names and keywords of the storyline that the item mentions."""
    closest_id: str | None
    """The seed or earlier follow-up the item is most similar to."""
    closest_similarity: float
    vetoed_by: str | None = None
    """An exclude term found in the item, if that is what decided NO."""
    evidence: tuple[str, ...] = ()
    """The storyline's names the item puts where they count ("Russia (title)"; evidence.py)."""
    evidence_score: float = 0.0
    missing: tuple[str, ...] = ()
    """The parties its title names that the item does not (evidence.py), if that is what decided NO."""
    counted: tuple[Counted, ...] = ()
    """The same evidence in detail: each unit named or implied, where, how often, its points."""
    feed_items: int = 0
    """Recent items of the item's feed that the evidence counted which names the feed implies over."""
    like_marked: tuple[str, bool, float] | None = None
    """Where a reader's mark decided: the marked item, whether it was marked a follow-up, and
    the cosine of this item with it."""


class Idle(NamedTuple):
    """Why a storyline makes no decision on an item, and from or until when."""

    reason: Literal["seed", "early", "expired"]
    """The item seeds it; it was published before the storyline starts; the storyline expired."""
    at: float
    """early: when the storyline starts; expired: when it stopped (POSIX); seed: 0."""


@dataclass(frozen=True, slots=True)
class Decision:
    storyline_id: str
    doc_id: str
    followup: bool
    score: float
    """Similarity to the storyline (cosine, times the recency factor if enabled)."""
    threshold: float
    """This storyline's effective threshold on ``score`` (background level + global margin)."""
    raw: float
    """Cosine between the item and the storyline profile, before the recency factor."""
    margin: float
    """``score`` in units of the global knob: a follow-up when margin >= config.threshold..."""
    reasons: Reasons | None
    novelty: tuple[str, ...]
    """Names in a follow-up that the storyline has not mentioned before ("new in this story")."""
    evidence: float = 0.0
    """...or when evidence >= config.evidence_threshold (evidence.py), unless vetoed."""


class Decisions(Sequence[Decision]):
    """One item's decisions, one per storyline that decided on it, held as arrays: a Decision is
    made when asked for (with 50 storylines, making them all took a tenth of the scoring time,
    and the worker reads only the follow-ups)."""

    __slots__ = ("doc_id", "storyline_ids", "rows", "followup", "score", "threshold", "raw", "margin",
                 "explained", "epoch", "evidence", "missing", "like_marked")

    def __init__(self, doc_id: str, storyline_ids: list[str], rows: npt.NDArray[np.intp],
                 followup: npt.NDArray[np.bool_], score: npt.NDArray[np.float64],
                 threshold: npt.NDArray[np.float64], raw: npt.NDArray[np.float64],
                 margin: npt.NDArray[np.float64], epoch: int) -> None:
        self.doc_id = doc_id
        self.storyline_ids = storyline_ids
        self.rows = rows
        """The background rows (``_Backgrounds``) the scores belong to."""
        self.followup = followup
        self.score, self.threshold, self.raw, self.margin = score, threshold, raw, margin
        self.explained: dict[int, tuple[Reasons, tuple[str, ...]]] = {}
        """Reasons and novelty, by position: follow-ups and vetoes (or all, explain="all")."""
        self.epoch = epoch
        """The tracker's storyline set they were made with (observe checks it)."""
        self.evidence = np.zeros(len(storyline_ids))
        """Evidence scores (evidence.py), by position."""
        self.missing: Sequence[Sequence[str]] = ((),) * len(storyline_ids)
        """By position, where they alone made it a NO: the parties the storyline's title names that
        the item does not (evidence.py)."""
        self.like_marked: dict[int, tuple[str, bool, float]] = {}
        """By position, where a reader's mark decided (see Reasons.like_marked)."""

    @staticmethod
    def none(doc_id: str, epoch: int) -> Decisions:
        empty = np.zeros(0)
        return Decisions(doc_id, [], np.zeros(0, np.intp), np.zeros(0, bool), empty, empty, empty, empty, epoch)

    def __len__(self) -> int:
        return len(self.storyline_ids)

    @overload
    def __getitem__(self, i: int) -> Decision: ...

    @overload
    def __getitem__(self, i: slice) -> list[Decision]: ...

    def __getitem__(self, i: int | slice) -> Decision | list[Decision]:
        if isinstance(i, slice):
            return [self[k] for k in range(len(self))[i]]
        k = range(len(self))[i]
        reasons, novelty = self.explained.get(k, (None, ()))
        return Decision(self.storyline_ids[k], self.doc_id, bool(self.followup[k]), float(self.score[k]),
                        float(self.threshold[k]), float(self.raw[k]), float(self.margin[k]), reasons, novelty,
                        float(self.evidence[k]))

    @property
    def followups(self) -> list[Decision]:
        return [self[k] for k in np.flatnonzero(self.followup).tolist()]


DEFAULT_ALIASES: tuple[tuple[str, ...], ...] = (
    ("Islamic State", "ISIS", "ISIL", "IS", "Daesh"),
    ("North Korea", "DPRK", "Pyongyang", "Democratic People's Republic of Korea"),
    ("South Korea", "ROK", "Republic of Korea", "Seoul"),
    ("United States", "U.S.", "US", "USA", "U.S.A."),
    ("United Kingdom", "UK", "U.K.", "Britain", "Great Britain"),
    ("United Nations", "UN", "U.N."),
)
"""Generic equivalences on by default (config.default_aliases); storylines add their own."""

Normalization = Literal["none", "zscore", "tail"]
Explain = Literal["all", "followups"]
ScoreMode = Literal["centroid", "nearest", "mix"]


@dataclass(frozen=True)
class TrackerConfig:
    """Every tunable, with the shipped default. Defaults were chosen on held-out stories."""

    threshold: float = 0.03
    """The global knob (0.03: the median of the knobs tuned on halves of the dev stories, so
    that it is not fitted to the stories it is measured on). normalization="none": the cosine
    threshold itself. "tail": the margin
    above the storyline's background quantile. "zscore": standard deviations above the
    background mean. Every storyline thus gets its own effective threshold (Decision.threshold)."""
    normalization: Normalization = "tail"
    score_mode: ScoreMode = "centroid"
    """Similarity to the profile centroid, to the nearest member (seed/follow-up), or their mean."""
    df_prior_docs: float = 0.0
    """Pseudo-documents added to N in the IDF (a term is assumed absent from them): keeps IDF
    sensible while the window is still small or a burst dominates it."""
    title_weight: float = 1.0
    """Extra term weight for words that occur in the title (added to the sublinear tf)."""
    phrase_weight: float = 0.5
    """Weight of adjacent-word-pair features relative to single words."""
    name_weight: float = 1.0
    """Multiplier for profile features that are names or keywords of the storyline."""
    keyword_weight: float = 1.0
    """Weight of the keyword pseudo-document in the profile, relative to one seed."""
    body_max_tokens: int = 400
    """Only the first N content tokens of the text count: the lead carries the story."""
    profile_terms: int = 150
    """Profile vectors keep their N heaviest features: less noise (150 was at least as good
    as 300 or 500 on the dev file, 100 was worse) and half the profile matrix's rows."""
    df_window: int = 20000
    """Documents in the sliding window that gives document frequencies."""
    bg_window: int = 1000
    """Background scores kept per storyline for normalisation."""
    bg_init_docs: int = 1000
    """Recent documents kept to give a new storyline its background at once."""
    bg_quantile: float = 0.99
    """normalization="tail": the background quantile the margin is added to."""
    bg_prior_n: float = 20.0
    """Pseudo-observations of the prior below, so a storyline with little background is sane."""
    bg_prior_mean: float = 0.02
    bg_prior_std: float = 0.03
    bg_prior_quantile: float = 0.1
    bg_min_std: float = 0.01
    bg_split_short: bool = False
    """Keep separate background statistics for headline-only items and items with text."""
    short_tokens: int = 25
    """Fewer content tokens than this in the text: the item counts as headline-only."""
    recency_penalty: float = 0.03
    """If > 0, ``recency_penalty * ln(1 + silence / recency_scale)`` is subtracted from the
    cosine, where silence is the time since the storyline's last seed or follow-up. News is
    bursty but storylines come back, hence a slowly growing (logarithmic) penalty, and additive
    so that a strong match still passes after a long silence."""
    recency_scale: float = 3600.0
    activity_margin: float = 0.1
    """A follow-up renews the storyline's activity clock only if its score clears the threshold
    by this much: weak follow-ups (possible false alarms) must not keep a storyline warm."""
    adapt: bool = True
    adapt_margin: float = 0.1
    """A follow-up whose score is >= its threshold + margin joins the profile..."""
    adapt_weight: float = 1.0
    """...with this weight relative to a seed..."""
    adapt_rebuild_background: bool = True
    """After adapting, re-score the recent window so the background matches the new profile."""
    adapt_rebuild_drift: float = 0.05
    """...but only once the profile has moved this far (1 - cosine) from the one the background
    was measured against: 0 rebuilds after every adoption."""
    adapt_max: int = 20
    """...and at most this many (oldest dropped first); seeds are never dropped."""
    adapt_guard: float = 0.0
    """Drift guard: the follow-up must also score >= threshold + guard against the seeds alone."""
    adapt_duplicate: float = 0.9
    """A follow-up this similar (cosine) to a member already in the profile is not adopted: a
    syndicated copy or a re-publication adds nothing and would let one text weigh double."""
    mark_weight: float = 0.5
    """A "yes" mark joins the profile with this weight relative to a seed: half, so that one
    wrong mark does not swing a storyline (on the dev file, a wrong "yes" per storyline at 1.0
    raised C_det from 0.054 to 0.065; at 0.5 it does not)."""
    mark_near: float = 0.5
    """A reader's mark (Tracker.mark) decides for items at least this similar (cosine) to the
    marked item and more similar to it than to any item of the other kind: like an item marked
    "not a follow-up", NO; like one marked "a follow-up" and naming the storyline's units, YES."""
    refresh_every: int = 100
    """Profiles are re-weighted with current IDF after this many observed documents..."""
    refresh_fraction: float = 0.1
    """...or after this fraction of the DF window, when that is more (IDF of a large window
    moves slowly; the cost of a refresh per item stays bounded)."""
    explain: Explain = "followups"
    """Compute reasons for every decision, or only for follow-ups and vetoes (the product
    stores reasons only for those; several times faster with many storylines)."""
    top_terms: int = 6
    default_aliases: tuple[tuple[str, ...], ...] = DEFAULT_ALIASES
    spelling_variants: bool = True
    """Rewrite spelling variants of a storyline's names (Park Myung-ho -> Pak Myong-ho): see
    ``Tracker._fixes``."""
    evidence_threshold: float = 1.0
    """An item is also a follow-up when the storyline's own names stand this prominently in it,
    on a feed that is on the storyline's beat (evidence.py: one name in the title is 1.0)."""
    evidence_window: int = 500
    """Recent items per feed from which the share of items naming each unit is counted."""


# --------------------------------------------------------------------------- internals


@dataclass(slots=True)
class _Analysis:
    """A document reduced to what scoring needs; computed once per document per alias table."""

    weights: dict[str, float]
    """Feature -> sublinear, title-weighted term weight (no IDF yet)."""
    names: dict[str, str]
    """Name key ("pak myong ho") -> surface form as written ("Pak Myong-ho")."""
    short: bool = False
    """Headline-only (or nearly): scored against its own background distribution."""
    capitals: str = ""
    """Capitalised words as read, before spelling fixes (all that a spelling fix could change),
    space-separated."""
    starts: str = " "
    """Tokens at which an alias rule could start (see AliasTable.firsts_beyond), each with a
    space either side: a storyline's few rule starts are looked for by substring search."""
    weight_array: npt.NDArray[np.float64] | None = None
    """``weights``' values as an array, when it came packed (saves rebuilding it)."""
    hashes: npt.NDArray[np.int64] | None = None
    """The features' hashes, in ``weights`` order (made on first use)."""
    buckets: npt.NDArray[np.uint32] | None = None
    """The features' document-frequency buckets, in ``weights`` order (made on first use)."""
    title_terms: frozenset[str] | _Lines = frozenset()
    """The title's words and word pairs (where a name stands: evidence.py)."""
    lead_terms: frozenset[str] | _Lines = frozenset()
    """The words and word pairs of the text's lead (its first LEAD_TOKENS words)."""


DF_BUCKETS = 1 << 22
"""Document frequencies are counted per hash bucket, in one array (16 MB), so that counting an
item and weighting its features are a few vector operations instead of a dictionary operation
per feature. A window's distinct words and word pairs (a million or two) mostly get a bucket
each; one shared with another feature only raises a rare feature's count by one or two. The
bucket is a CRC-32 of the feature, the same in every process and every run (Python's ``hash`` of
a string changes with the process: which features shared a bucket did too, and with it the last
digits of an evaluation's figures)."""


def _hashes(features: Iterable[str], n: int) -> npt.NDArray[np.int64]:
    return np.fromiter(map(hash, features), np.int64, n)


def _weights(vector: dict[str, float]) -> npt.NDArray[np.float64]:
    return np.fromiter(vector.values(), np.float64, len(vector))


def _feature_hashes(analysis: _Analysis) -> npt.NDArray[np.int64]:
    if analysis.hashes is None:
        analysis.hashes = _hashes(analysis.weights, len(analysis.weights))
    return analysis.hashes


def _buckets(analysis: _Analysis) -> npt.NDArray[np.uint32]:
    if analysis.buckets is None:
        crcs = np.fromiter(map(zlib.crc32, map(str.encode, analysis.weights)), np.uint32, len(analysis.weights))
        analysis.buckets = crcs & np.uint32(DF_BUCKETS - 1)
    return analysis.buckets


@dataclass(frozen=True, slots=True)
class TextAnalysis:
    """An item's analysis under the generic aliases, without spelling fixes, made by ``prepare``
    where the item is parsed (a parsing process), so the one writer does not tokenize. Packed
    into a few strings: cheap to send between processes, however many features it has. The
    tracker uses it unless a spelling fix or a storyline's own aliases read the text otherwise."""

    features: str
    """Feature names, one per line."""
    weights: bytes
    """Their weights, an array of doubles."""
    buckets: bytes
    """Their document-frequency buckets, an array of uint32."""
    names: tuple[tuple[str, str], ...]
    short: bool
    capitals: str
    starts: str
    recipe: str
    """The settings it was made with (``recipe``): a tracker configured otherwise ignores it."""
    title_terms: str = ""
    lead_terms: str = ""
    """The title's and the lead's features, one per line."""

    @staticmethod
    def pack(analysis: _Analysis, recipe: str) -> TextAnalysis:
        features, weights = _packed(analysis.weights)
        return TextAnalysis(features, weights.tobytes(), _buckets(analysis).tobytes(),
                            tuple(analysis.names.items()), analysis.short, analysis.capitals, analysis.starts, recipe,
                            "\n".join(analysis.title_terms), "\n".join(analysis.lead_terms))

    def unpack(self) -> _Analysis:
        weights = np.frombuffer(self.weights, np.float64)
        return _Analysis(_unpacked(self.features, weights), dict(self.names), self.short, self.capitals,
                         self.starts, weight_array=weights, buckets=np.frombuffer(self.buckets, np.uint32),
                         title_terms=_Lines(self.title_terms), lead_terms=_Lines(self.lead_terms))


class _Lines(Container[str]):
    """Terms kept as the lines of one string: a lookup is a substring search, so an item whose
    title and lead are never asked about (most: they name no storyline's unit) costs nothing."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = f"\n{text}\n" if text else ""

    def __contains__(self, term: object) -> bool:
        return isinstance(term, str) and "\n" not in term and f"\n{term}\n" in self._text

    def __iter__(self) -> Iterator[str]:
        return iter(self._text[1:-1].split("\n") if self._text else ())


def _packed(vec: dict[str, float]) -> tuple[str, npt.NDArray[np.float64]]:
    """A feature → weight dictionary as two objects instead of hundreds: the features, a line
    each, and the weights as an array (cheap to keep by the thousand and to send)."""
    return "\n".join(vec), np.fromiter(vec.values(), np.float64, len(vec))


def _unpacked(features: str, weights: npt.NDArray[np.float64]) -> dict[str, float]:
    return dict(zip(features.split("\n"), weights.tolist())) if features else {}


Fixes = Mapping[str, str]
"""Spelling fixes for one text: capitalised word as read -> the storyline name word it spells."""

NO_FIXES: Fixes = {}


def _read(text: str, trust_case: bool, table: AliasTable, fixes: Fixes,
          seen: tuple[set[str], set[str]], limit: int | None = None, drop: frozenset[str] = frozenset()
          ) -> list[str]:
    """Tokens (``textproc.read``) with spelling fixes and aliases applied; ``seen`` collects
    (capitalised words as read, tokens where an alias rule could start); ``drop``: the stop
    words of the text's language."""
    seq, caps = read(text, trust_case, limit, drop)
    capitals, starts = seen
    named = set(compress(seq, caps))
    capitals.update(named)
    if fixes and not trust_case:  # a Title Case headline: any word may be the name
        seq = [fixes.get(t, t) for t in seq]
    elif fixes and not named.isdisjoint(fixes):
        seq = [fixes.get(t, t) if capital else t for t, capital in zip(seq, caps)]
    seq = table.apply(seq, starts)
    starts.update(seq)
    return seq


def analyze(title: str, text: str, cfg: TrackerConfig, table: AliasTable,
            fixes: Fixes = NO_FIXES) -> _Analysis:
    """Weighted words and word pairs (the title counted more, only the lead of the text) and the
    names the text mentions."""
    seen: tuple[set[str], set[str]] = (set(), set())
    title = "" if title == UNTITLED else title  # the placeholder of an item without one: no words of it
    title_case = is_title_case(title)
    drop = stop_words(language(title, text))  # "und", "em": no evidence in their own language
    title_tokens = _read(title, not title_case, table, fixes, seen, drop=drop)
    body = _read(text, True, table, fixes, seen, cfg.body_max_tokens, drop)  # only the lead counts
    body_words, body_pairs = _counts(body, cfg)
    weights = _sublinear(body_words, 1.0, 0.0)
    weights.update(_sublinear(body_pairs, cfg.phrase_weight, 0.0))  # no overlap: pairs hold a space
    for counts, scale in zip(_counts(title_tokens, cfg), (1.0, cfg.phrase_weight)):
        for f, w in _sublinear(counts, scale, cfg.title_weight).items():
            weights[f] = weights.get(f, 0.0) + w
    found: dict[str, str] = {}  # name key (aliases applied) → the name as written
    surfaces = [s for lead in [text[:NAME_CHARS]] + ([] if title_case else [title]) for s in name_spans(lead, drop)]
    for surface, key in zip(surfaces, _name_keys(surfaces, table, fixes, seen, drop)):
        if key:
            found.setdefault(key, surface)
    seen[1].discard(BREAK)
    short = len(body) - body.count(BREAK) < cfg.short_tokens
    return _Analysis(weights, found, short, " ".join(seen[0]), f" {' '.join(seen[1])} ",
                     title_terms=_terms(title_tokens), lead_terms=_terms(_lead(body)))


def _lead(body: list[str]) -> list[str]:
    """The first LEAD_TOKENS content words of a text (with the clause breaks between them)."""
    words = 0
    for n, token in enumerate(body):
        words += token != BREAK
        if words > LEAD_TOKENS:
            return body[:n]
    return body


def sentences(text: str, table: AliasTable, limit: int) -> list[frozenset[str]]:
    """The words and word pairs of each sentence of the part of a text that is read (about its
    first ``limit`` content words), aliases applied as the analysis applies them; sentences of
    fewer than two content words (a sign-off, "-0-") left out. Evidence asks for them only where
    a storyline's name stands below the title."""
    found: list[frozenset[str]] = []
    words = 0
    for tokens in read_sentences(text, limit):
        tokens = table.apply(tokens)
        content = len(tokens) - tokens.count(BREAK)
        if content >= 2:
            found.append(_terms(tokens))
            words += content
            if words >= limit:
                break
    return found


def _terms(tokens: list[str]) -> frozenset[str]:
    return frozenset(t for t in tokens if t != BREAK) | frozenset(pairs(tokens))


def _name_keys(surfaces: list[str], table: AliasTable, fixes: Fixes, seen: tuple[set[str], set[str]],
               drop: frozenset[str] = frozenset()) -> list[str]:
    """Each name's key: its tokens, aliases applied. The names are read in two texts, a line
    each (names in capitals apart: their case is not evidence), not one text a name."""
    keys = [""] * len(surfaces)
    for upper in (False, True):
        at = [i for i, s in enumerate(surfaces) if fold(s).isupper() == upper]
        if at:
            seq = _read("\n".join([surfaces[i] for i in at]), True, table, fixes, seen, drop=drop)
            parts = " ".join(seq).split(BREAK)  # a line break reads as a BREAK...
            if len(parts) != len(at):  # ...and so does a name's "⑴" (folded to "(1)"): one by one
                parts = [_name_key(t for t in _read(surfaces[i], True, table, fixes, seen, drop=drop) if t != BREAK)
                         for i in at]
            for i, part in zip(at, parts):
                keys[i] = part.strip()
    return keys


def _counts(seq: list[str], cfg: TrackerConfig) -> tuple[Counter[str], Counter[str]]:
    """Words and word pairs of a token sequence, counted (in C)."""
    words = Counter(seq)
    words.pop(BREAK, None)
    return words, Counter(pairs(seq)) if cfg.phrase_weight > 0 else Counter()


def _sublinear(counts: Counter[str], scale: float, boost: float) -> dict[str, float]:
    """Term weights ``(1 + ln(count) + boost) * scale``; most counts are 1, set in C."""
    out = dict.fromkeys(counts, (1.0 + boost) * scale)
    for f in [f for f, c in counts.items() if c > 1]:
        out[f] = (1.0 + math.log(counts[f]) + boost) * scale
    return out


@lru_cache(maxsize=4)
def generic_aliases(groups: tuple[tuple[str, ...], ...]) -> AliasTable:
    return AliasTable.build(groups)


@lru_cache(maxsize=4)
def recipe(cfg: TrackerConfig) -> str:
    """The settings an analysis depends on, as text (the same in every process)."""
    parts = (cfg.body_max_tokens, cfg.title_weight, cfg.phrase_weight, cfg.short_tokens,
             cfg.default_aliases, LEAD_TOKENS)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def prepare(title: str, text: str, config: TrackerConfig | None = None) -> TextAnalysis:
    """The analysis of an item's text that every tracker with ``config``'s analysis settings
    can reuse (the defaults: the worker's trackers change only thresholds and adaptation)."""
    cfg = config or TrackerConfig()
    return TextAnalysis.pack(analyze(title, text, cfg, generic_aliases(cfg.default_aliases)), recipe(cfg))


@dataclass(slots=True)
class _Member:
    id: str
    published: float
    weight: float
    analysis: _Analysis
    vector: dict[str, float] = field(default_factory=dict)
    """Unit TF-IDF vector under the IDF of the last refresh."""
    is_seed: bool = True


class _Unit:
    """A document's unit TF-IDF vector as its analysis' features (in order) and their weights;
    the dictionary, which only reasons and adaptation need, made when first asked for."""

    __slots__ = ("features", "values", "_dict")

    def __init__(self, features: Sequence[str], values: npt.NDArray[np.float64]) -> None:
        self.features = features
        self.values = values
        self._dict: dict[str, float] | None = None

    def as_dict(self) -> dict[str, float]:
        if not self.features:
            return {}  # a new one each time: the empty unit is shared
        if self._dict is None:
            self._dict = dict(zip(self.features, self.values.tolist()))
        return self._dict


_NO_UNIT = _Unit((), np.zeros(0))


@dataclass(frozen=True, slots=True)
class _Recent:
    """An observed document kept for (re)building backgrounds: its unit vector under the IDF of
    the moment it arrived (a rebuild is then dot products, not a re-analysis of a thousand
    documents), as arrays of feature hashes and weights: as dictionaries, a thousand took ~80 MB."""

    doc: Doc
    """Without its prepared analysis: the text, for a storyline with aliases of its own."""
    short: bool
    starts: str
    hashes: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float64]

    @staticmethod
    def of(doc: Doc, analysis: _Analysis, unit: _Unit) -> _Recent:
        # The vector's features are the analysis' in the same order, or none (a zero vector).
        hashes = _feature_hashes(analysis) if len(unit.values) else np.zeros(0, np.int64)
        return _Recent(replace(doc, prepared=None), analysis.short, analysis.starts, hashes, unit.values)

    @property
    def id(self) -> str:
        return self.doc.id


class _Stacked:
    """Many recent documents' vectors in one pair of arrays: dot products with a profile are then
    a few vector operations (a background rebuild scores a thousand documents)."""

    LOOKUP_BITS = 20

    def __init__(self, docs: Sequence[_Recent], lookup: npt.NDArray[np.int16]) -> None:
        self.n = len(docs)
        self.hashes = np.concatenate([r.hashes for r in docs]) if docs else np.zeros(0, np.int64)
        self.weights = np.concatenate([r.weights for r in docs]) if docs else np.zeros(0)
        self.doc = np.repeat(np.arange(self.n), [len(r.hashes) for r in docs])
        self.lookup = lookup
        """Scratch, all zeros between calls: a profile's features by hash bucket."""
        self.buckets = self._bucket(self.hashes)

    @classmethod
    def _bucket(cls, hashes: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
        return (hashes & ((1 << cls.LOOKUP_BITS) - 1)).astype(np.intp)

    def dots(self, profile: dict[str, float]) -> npt.NDArray[np.float64]:
        """Each document's dot product with ``profile`` (features matched by hash).

        The profile's features are put in a lookup table by hash bucket (a few MB: a gather
        from it is several times faster than a binary search per feature); if two of them
        share a bucket, a binary search it is."""
        if not profile or not len(self.hashes):
            return np.zeros(self.n)
        keys = _hashes(profile, len(profile))
        values = np.fromiter(profile.values(), np.float64, len(profile))
        buckets = self._bucket(keys)
        if len(keys) < np.iinfo(np.int16).max and len(np.unique(buckets)) == len(buckets):
            self.lookup[buckets] = np.arange(1, len(keys) + 1)
            at = self.lookup[self.buckets].astype(np.intp) - 1  # -1: no feature of the profile
            self.lookup[buckets] = 0
        else:
            order = np.argsort(keys)
            keys, values = keys[order], values[order]
            at = np.minimum(np.searchsorted(keys, self.hashes), len(keys) - 1)
        products = np.where((at >= 0) & (keys[at] == self.hashes), values[at] * self.weights, 0.0)
        return np.bincount(self.doc, products, minlength=self.n).astype(np.float64, copy=False)


class _ProfileBlock:
    """Up to ``width`` profiles as dense columns over the features they use (a row each, kept
    while some column uses it, reused when none does)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.matrix = np.zeros((0, width))
        self.row_of: dict[str, int] = {}
        self.feature_of: list[str] = []
        self.users: list[int] = []
        """Per row, how many columns use it."""
        self.free: list[int] = []
        self.columns: dict[int, list[int]] = {}
        """Per column in use, the rows it uses."""

    def put(self, column: int, profile: dict[str, float]) -> None:
        self.drop(column)
        rows = [self._use_row(f) for f in profile]
        self.matrix[rows, column] = _weights(profile)
        self.columns[column] = rows

    def drop(self, column: int) -> None:
        rows = self.columns.pop(column, None)
        if rows is None:
            return
        self.matrix[rows, column] = 0.0
        for row in rows:
            self.users[row] -= 1
            if not self.users[row]:
                del self.row_of[self.feature_of[row]]
                self.free.append(row)

    def _use_row(self, feature: str) -> int:
        row = self.row_of.get(feature)
        if row is None:
            row = self.free.pop() if self.free else self._new_row()
            self.row_of[feature] = row
            self.feature_of[row] = feature
        self.users[row] += 1
        return row

    def _new_row(self) -> int:
        row = len(self.feature_of)
        if row == len(self.matrix):
            self.matrix = _grown(self.matrix, max(64, 2 * row))
        self.feature_of.append("")
        self.users.append(0)
        return row

    def dots(self, features: Sequence[str], weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        get = self.row_of.get
        at = np.array([get(f, -1) for f in features], np.intp)
        used = at >= 0
        return weights[used] @ self.matrix[at[used]]


class _ProfileMatrix:
    """The centroids of every storyline, by slot, as dense blocks of ``BLOCK`` storylines over
    the features they use: an item is scored against all of them with a row lookup per feature
    and one vector-matrix product per block (a third faster than a sparse dot per storyline at
    50 storylines). A block has at most ``profile_terms`` rows per storyline, so memory grows
    linearly: 150 terms × 64 storylines × 8 bytes, ~77 KB a storyline."""

    BLOCK = 64

    def __init__(self) -> None:
        self._blocks: list[_ProfileBlock] = []

    def put(self, slot: int, profile: dict[str, float]) -> None:
        block, column = divmod(slot, self.BLOCK)
        while len(self._blocks) <= block:
            self._blocks.append(_ProfileBlock(self.BLOCK))
        self._blocks[block].put(column, profile)

    def drop(self, slot: int) -> None:
        block, column = divmod(slot, self.BLOCK)
        if block < len(self._blocks):
            self._blocks[block].drop(column)

    def dots(self, features: Sequence[str], weights: npt.NDArray[np.float64], n_slots: int) -> npt.NDArray[np.float64]:
        """Dot product of a vector (``features`` and their ``weights``) with every profile, by slot."""
        if not self._blocks:
            return np.zeros(n_slots)
        out = np.concatenate([block.dots(features, weights) for block in self._blocks])
        return out[:n_slots] if len(out) >= n_slots else _grown(out, n_slots)


def _grown(a: npt.NDArray[_T], rows: int) -> npt.NDArray[_T]:
    """``a`` with zero rows appended up to ``rows``."""
    return np.concatenate([a, np.zeros((rows - len(a), *a.shape[1:]), a.dtype)])


class _Backgrounds:
    """The scores that non-follow-up items got against every storyline, in arrays with a row per
    (storyline slot, kind): kind 1 holds headline-only items when ``bg_split_short`` is on.

    A row is a ring of the last ``bg_window`` scores (bounded, so the cost is constant) with their
    sum and sum of squares ("zscore") or their quantile ("tail"); a prior carries a new storyline
    until it has seen enough background. One item's scores against all storylines are added in a few vector operations;
    a row's quantile is recomputed (a partition of the row) only where it can have changed: the
    window still filling, or a score added or dropped at or above it (for the 99th percentile,
    about 2 items in 100).
    """

    def __init__(self, config: TrackerConfig) -> None:
        self.cfg = config
        self.ring = np.zeros((0, config.bg_window))
        self.count = np.zeros(0, np.intp)
        self.head = np.zeros(0, np.intp)
        self.total = np.zeros(0)
        self.total_sq = np.zeros(0)
        self.quantile = np.zeros(0)
        """The window's ``bg_quantile`` (0 when empty)."""

    def grow(self, rows: int) -> None:
        if rows > len(self.count):
            self.ring = _grown(self.ring, rows)
            self.count, self.head = _grown(self.count, rows), _grown(self.head, rows)
            self.total, self.total_sq = _grown(self.total, rows), _grown(self.total_sq, rows)
            self.quantile = _grown(self.quantile, rows)

    def reset(self, row: int, scores: npt.NDArray[np.float64]) -> None:
        kept = scores[-self.cfg.bg_window:]
        n = len(kept)
        self.ring[row, :n] = kept
        self.count[row] = n
        self.head[row] = n % self.cfg.bg_window
        self.total[row] = kept.sum()
        self.total_sq[row] = kept @ kept
        self._requantile(row)

    def add(self, rows: npt.NDArray[np.intp], scores: npt.NDArray[np.float64]) -> None:
        """One score for each of ``rows`` (distinct)."""
        window = self.cfg.bg_window
        head = self.head[rows]
        full = self.count[rows] >= window
        dropped = np.where(full, self.ring[rows, head], 0.0)
        self.ring[rows, head] = scores
        self.head[rows] = (head + 1) % window
        self.count[rows] += ~full
        mode = self.cfg.normalization  # each keeps only what it reads
        if mode == "zscore":
            self.total[rows] += scores - dropped
            self.total_sq[rows] += scores * scores - dropped * dropped
        elif mode == "tail":
            quantile = self.quantile[rows]
            for row in rows[~full | (scores >= quantile) | (dropped >= quantile)].tolist():
                self._requantile(row)

    def _requantile(self, row: int) -> None:
        n = int(self.count[row])
        k = min(int(self.cfg.bg_quantile * n), n - 1)
        self.quantile[row] = np.partition(self.ring[row, :n], k)[k] if n else 0.0

    def _level(self, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        """The background quantile, shrunk towards the prior while the window is small."""
        n, k = self.count[rows], self.cfg.bg_prior_n
        return (n * self.quantile[rows] + k * self.cfg.bg_prior_quantile) / (n + k)

    def _mean_std(self, rows: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        cfg = self.cfg
        n, k = self.count[rows], cfg.bg_prior_n
        pm, ps = cfg.bg_prior_mean, cfg.bg_prior_std
        mean = (self.total[rows] + k * pm) / (n + k)
        second = (self.total_sq[rows] + k * (ps * ps + pm * pm)) / (n + k)
        std = np.sqrt(np.maximum(second - mean * mean, 0.0))
        return mean, np.maximum(std, cfg.bg_min_std)

    def judge(self, rows: npt.NDArray[np.intp], scores: npt.NDArray[np.float64], knobs: npt.NDArray[np.float64]
              ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The scores in units of the global knob (a follow-up where that reaches the knob), and
        the storylines' effective thresholds on the raw score."""
        mode = self.cfg.normalization
        if mode == "tail":
            level = self._level(rows)
            return scores - level, level + knobs
        if mode == "zscore":
            mean, std = self._mean_std(rows)
            return (scores - mean) / std, mean + knobs * std
        return scores, knobs


@dataclass
class _Storyline:
    spec: StorylineSpec
    aliases: AliasTable
    members: list[_Member]
    keyword_analysis: _Analysis | None
    exclude: tuple[tuple[str, ...], ...]
    known_names: set[str]
    name_features: set[str]
    slot: int = -1
    """Its position in the tracker's per-storyline arrays (the profile matrix's columns, the
    backgrounds' rows 2·slot and 2·slot + 1, its clock)."""
    seed_ids: frozenset[str] = frozenset()
    keyword_keys: tuple[tuple[str, str], ...] = ()
    """(keyword as written, its feature key), to show keyword hits in the reasons."""
    followups: set[str] = field(default_factory=set)
    """Ids of recent follow-ups: not background when the background is rebuilt."""
    total: dict[str, float] = field(default_factory=dict)
    """Weighted sum of the members' unit vectors (and the keywords'): the profile before
    the name boost, truncation and normalisation."""
    centroid: dict[str, float] = field(default_factory=dict)
    seed_centroid: dict[str, float] = field(default_factory=dict)
    background_centroid: dict[str, float] = field(default_factory=dict)
    """The profile the background scores were measured against (see adapt_rebuild_drift)."""
    adopted: int = 0
    own_firsts: tuple[str, ...] = ()
    """Where its own aliases start a rule the generic ones do not: an item with none of these
    tokens reads the same under both, and is scored with its generic analysis."""
    spellings: _Spellings = field(default_factory=lambda: _Spellings((), (), ()))
    marked: dict[str, _Mark] = field(default_factory=dict)
    """The reader's marks, by item id. A "yes" is also a member of the profile, as a seed is."""


@dataclass
class _Mark:
    """A reader's judgement of an item for a storyline (Tracker.mark)."""

    followup: bool
    analysis: _Analysis
    """Under the storyline's reading."""
    vector: dict[str, float]
    """Under the IDF of the last refresh."""


class _Spellings(NamedTuple):
    """What a storyline adds to the lexicon of spelling fixes (see Tracker._fixes)."""

    words: tuple[str, ...]
    """Words of its names (keywords, names in its seeds)."""
    runs: tuple[str, ...]
    """Runs of two or more consecutive words of its names, space-joined."""
    one_word: tuple[str, ...]
    """Its one-word keywords."""


def _spellings(names: Iterable[str], keyword_keys: Sequence[tuple[str, str]]) -> _Spellings:
    """``names``: name keys (keywords' included); ``keyword_keys``: (keyword, its key)."""
    words: set[str] = set()
    runs: set[str] = set()
    for key in names:
        parts = key.split(" ")
        if len(parts) > 1:
            words.update(parts)
            runs.update(" ".join(parts[i:j]) for i in range(len(parts) - 1) for j in range(i + 2, len(parts) + 1))
    one_word = {key for _, key in keyword_keys if key and " " not in key}
    return _Spellings(tuple(sorted(words | one_word)), tuple(sorted(runs)), tuple(sorted(one_word)))


def _dot(a: dict[str, float], b: dict[str, float]) -> float:
    """Sparse dot product. The shared features are found by a set intersection of the key
    views (in C), so Python only loops over the few features the vectors have in common."""
    return sum([a[f] * b[f] for f in a.keys() & b.keys()])


def _add_into(total: dict[str, float], vector: dict[str, float], weight: float) -> None:
    get = total.get
    for f, w in vector.items():
        total[f] = get(f, 0.0) + weight * w


def _heaviest_unit(vec: dict[str, float], limit: int) -> dict[str, float]:
    """The ``limit`` largest entries (the first of equal ones; all when there are no more), scaled
    to unit length: a stable sort in numpy (a profile sums thousands of features)."""
    if not vec:
        return {}
    features, weights = list(vec), np.fromiter(vec.values(), np.float64, len(vec))
    if len(vec) > limit:
        top = np.argsort(-weights, kind="stable")[:limit]
        features, weights = [features[i] for i in top.tolist()], weights[top]
    norm = math.sqrt(float(weights @ weights))
    return dict(zip(features, (weights / norm).tolist())) if norm else {}


def _name_key(name: Iterable[str]) -> str:
    return " ".join(name)


class Tracker:
    """Holds corpus statistics and storyline profiles; decides item by item. Not thread-safe."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._default_aliases = generic_aliases(self.config.default_aliases)
        self._recipe = recipe(self.config)
        self._storylines: dict[str, _Storyline] = {}
        # Document frequencies over a sliding window of observed documents, by hash bucket: the
        # window keeps each document's buckets (4 bytes a feature; strings took ~300 MB).
        self._df = np.zeros(DF_BUCKETS, np.int32)
        self._window: deque[npt.NDArray[np.uint32]] = deque()
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        # Recent documents, to give a new storyline its background at once.
        self._recent: deque[_Recent] = deque(maxlen=self.config.bg_init_docs)
        self._lookup: npt.NDArray[np.int16] | None = None
        """Scratch for background rebuilds (_Stacked.dots), made on first use."""
        self._observed = 0
        """Documents observed so far: the recent window's version."""
        self._marked: dict[str, _Storyline] = {}
        """The storylines with a reader's marks."""
        self._since_max = -math.inf
        """The latest time since which a storyline has been tracked (free slots' too)."""
        self._stacked: tuple[int, _Stacked] | None = None
        """The recent window stacked, and the version it was made at."""
        # Storylines' names, for spelling fixes: their words, their runs of two or more words
        # ("pak myong", "myong ho", "pak myong ho") and the one-word keywords.
        self._spelling = SpellingIndex()
        self._name_runs: Counter[str] = Counter()
        self._one_word_names: Counter[str] = Counter()
        self._since_refresh = 0
        self._last_analysis: tuple[Doc, _Analysis, _Unit | None] | None = None
        # The centroids of every storyline, looked up by feature: an item is scored against all
        # of them in a few vector operations instead of one dot product per storyline.
        self._index = _ProfileMatrix()
        self._free_slots: list[int] = []
        self._n_slots = 0
        # Per storyline slot, so that one item is decided against all of them in vector
        # operations: the storyline, when it starts deciding (its last seed's time), its last
        # activity, how long a silence expires it, its knob; and the background scores.
        self._by_slot: list[_Storyline | None] = []
        self._ids: list[str] = []
        """Storyline ids by slot ("" where free); a new list at each change, so that decisions
        made with every slot live share it."""
        self._starts = np.zeros(0)
        self._activity = np.zeros(0)
        self._expires = np.zeros(0)
        self._since = np.zeros(0)
        self._knob = np.zeros(0)
        self._backgrounds = _Backgrounds(self.config)
        self._own_aliased: dict[str, _Storyline] = {}
        """The storylines with aliases of their own (they may read a text otherwise)."""
        self._seeded: dict[str, list[int]] = {}
        """Seed id -> slots of the storylines it seeds (they do not decide on it)."""
        self._epoch = 0
        """Changes whenever a storyline is added or removed."""
        self._evidence = Evidence(self.config.evidence_window)
        self._last_mentions: tuple[Doc, Mentions | None] | None = None

    # ------------------------------------------------------------------ corpus statistics

    @property
    def n_docs(self) -> int:
        return len(self._window)

    def _count(self, analysis: _Analysis) -> None:
        """A bucket's count is the number of documents with a feature in it (two features of
        one document in one bucket count once: fancy indexing, ten times faster than add.at)."""
        buckets = _buckets(analysis)
        self._df[buckets.astype(np.intp)] += 1
        self._window.append(buckets)
        if len(self._window) > self.config.df_window:
            self._df[self._window.popleft().astype(np.intp)] -= 1

    # ------------------------------------------------------------------ analysis

    def _tokens(self, text: str, trust_case: bool, aliases: AliasTable) -> list[str]:
        """The content tokens of a keyword, alias or exclude phrase, clauses ignored."""
        return [t for t in _read(text, trust_case, aliases, NO_FIXES, (set(), set())) if t != BREAK]

    def _analyze(self, doc: Doc, aliases: AliasTable | None = None, plain: _Analysis | None = None
                 ) -> _Analysis:
        """The document's analysis under an alias table, spelling fixes applied; ``plain``: its
        analysis without fixes, if already made."""
        table = aliases or self._default_aliases
        if plain is None:
            plain = analyze(doc.title, doc.text, self.config, table)
        fixes = self._fixes(plain)
        return analyze(doc.title, doc.text, self.config, table, fixes) if fixes else plain

    def _fixes(self, plain: _Analysis) -> Fixes:
        """The spelling variants of storyline names in a text (its analysis without fixes).

        A capitalised word one edit from a name word is a variant only where the text names one
        of the storyline names with it: a run of two or more of the name's words, at least one
        written alike ("Park Myung-ho" or "Minister Park" for Pak Myong-ho, not a lone "Time" for
        Tim), or one edit from a one-word keyword ("Erciz" for Ercis). The fix then applies to
        every capitalised use of the word in the text ("... Park said")."""
        if not self.config.spelling_variants or not (self._name_runs or self._one_word_names):
            return NO_FIXES
        correct = self._spelling.correct
        variants = {w: c for w in plain.capitals.split() if (c := correct(w)) is not None}
        if not variants:
            return NO_FIXES
        fixes = {w: c for w, c in variants.items() if c in self._one_word_names}
        for key in plain.names:
            words = key.split(" ")
            if len(words) > 1 and not variants.keys().isdisjoint(words):
                fixes.update(self._name_variants(words, variants))
        return fixes

    def _name_variants(self, words: list[str], variants: Mapping[str, str]) -> dict[str, str]:
        """The fixes by which runs of ``words`` (a name in the text) spell a storyline name."""
        fixed = [variants.get(w, w) for w in words]
        found: dict[str, str] = {}
        for i in range(len(words) - 1):
            for j in range(i + 2, len(words) + 1):
                changed = [(w, f) for w, f in zip(words[i:j], fixed[i:j]) if w != f]
                if changed and len(changed) < j - i and " ".join(fixed[i:j]) in self._name_runs:
                    found.update(changed)
        return found

    def _prepared(self, doc: Doc) -> _Analysis | None:
        """The analysis made where the item was parsed (without spelling fixes), if it was made
        with this tracker's analysis settings."""
        if doc.prepared is None or doc.prepared.recipe != self._recipe:
            return None
        return doc.prepared.unpack()

    def _analyze_cached(self, doc: Doc) -> _Analysis:
        """decide() and observe() of one document share its analysis (default aliases)."""
        last = self._last_analysis
        if last is not None and last[0] is doc:
            return last[1]
        analysis = self._analyze(doc, plain=self._prepared(doc))
        self._last_analysis = (doc, analysis, None)
        return analysis

    def _unit_cached(self, doc: Doc, analysis: _Analysis) -> _Unit:
        """The unit vector of the document last analysed, under the IDF of its first use."""
        last = self._last_analysis
        if last is not None and last[0] is doc and last[2] is not None:
            return last[2]
        unit = self._unit(analysis)
        self._last_analysis = (doc, analysis, unit)
        return unit

    def _vector_cached(self, doc: Doc, analysis: _Analysis) -> dict[str, float]:
        return self._unit_cached(doc, analysis).as_dict()

    def _vector(self, analysis: _Analysis) -> dict[str, float]:
        return self._unit(analysis).as_dict()

    def _unit(self, analysis: _Analysis) -> _Unit:
        """Unit TF-IDF vector: the analysis' weights times the window's IDF (in numpy: this runs
        for every item and every profile refresh)."""
        buckets = _buckets(analysis)
        if not len(buckets):
            return _NO_UNIT
        n1 = len(self._window) + self.config.df_prior_docs + 1.0
        weights = analysis.weight_array
        if weights is None:  # kept: members' analyses are re-weighted at every refresh
            weights = analysis.weight_array = _packed(analysis.weights)[1]
        vec = weights * (np.log(n1 / (self._df[buckets] + 1.0)) + 1.0)
        norm = math.sqrt(float(vec @ vec))
        if norm == 0.0:
            return _NO_UNIT
        return _Unit(list(analysis.weights), vec / norm)

    # ------------------------------------------------------------------ storylines

    def add_storyline(self, spec: StorylineSpec) -> None:
        """Start tracking. Seeds not yet observed are added to the corpus statistics."""
        aliases = (
            AliasTable.build(spec.aliases, base=self._default_aliases)
            if spec.aliases
            else self._default_aliases
        )
        for seed in spec.seeds:
            if seed.id not in self._seen:
                self._observe_stats(seed)
        members = [
            _Member(s.id, s.published, 1.0, self._analyze(s, aliases)) for s in spec.seeds
        ]
        kw_analysis = None
        name_features: set[str] = set()
        known: set[str] = set()
        keyword_keys: list[tuple[str, str]] = []
        if spec.keywords:
            kw_doc = Doc(f"{spec.id}#keywords", "", ". ".join(spec.keywords), 0.0)
            kw_analysis = self._analyze(kw_doc, aliases)
            for kw in spec.keywords:
                toks = self._tokens(kw, False, aliases)
                known.add(_name_key(toks))
                keyword_keys.append((kw, _name_key(toks)))
                name_features.update(toks)
                name_features.update(f"{a} {b}" for a, b in zip(toks, toks[1:]))
        for group in filter(None, spec.aliases):
            canon = self._tokens(group[0], False, aliases)
            name_features.update(canon)
            name_features.update(f"{a} {b}" for a, b in zip(canon, canon[1:]))
        for m in members:
            known.update(m.analysis.names)
            for key in m.analysis.names:
                parts = key.split(" ")
                name_features.update(parts)
                name_features.update(f"{a} {b}" for a, b in zip(parts, parts[1:]))
        exclude = tuple(
            tuple(self._tokens(e, False, aliases)) for e in spec.exclude
        )
        story = _Storyline(
            spec=spec,
            aliases=aliases,
            members=members,
            keyword_analysis=kw_analysis,
            exclude=tuple(e for e in exclude if e),
            known_names=known,
            name_features=name_features,
            seed_ids=frozenset(s.id for s in spec.seeds),
            keyword_keys=tuple(keyword_keys),
            own_firsts=tuple(f" {t} " for t in aliases.firsts_beyond(self._default_aliases)),
            spellings=_spellings(known, keyword_keys),
        )
        self._learn_spellings(story.spellings, +1)
        if spec.id in self._storylines:
            self.remove_storyline(spec.id)
        self._place(story)
        self._last_mentions = None  # made before this storyline's units were known
        tokens = lambda text: self._tokens(text, False, self._default_aliases)  # noqa: E731 (items' reading)
        self._evidence.add(story.slot, [(label, unit_keys(spellings, tokens))
                                        for label, spellings in declared_units(spec.title, spec.keywords, spec.aliases)],
                           actors=title_actors(spec.title, spec.aliases))
        self._refresh_story(story)
        self._rebuild_background(story)

    def _place(self, story: _Storyline) -> None:
        """Give the storyline a slot in the per-storyline arrays, and set its values there."""
        if self._free_slots:
            story.slot = self._free_slots.pop()
        else:
            story.slot = self._n_slots
            self._n_slots += 1
            self._by_slot.append(None)
            self._starts, self._activity, self._expires, self._knob, self._since = (
                _grown(a, self._n_slots) for a in (self._starts, self._activity, self._expires, self._knob, self._since))
            self._backgrounds.grow(2 * self._n_slots)
        slot, spec = story.slot, story.spec
        self._by_slot[slot] = story
        self._ids = [s.spec.id if s is not None else "" for s in self._by_slot]
        self._storylines[spec.id] = story
        if story.own_firsts:
            self._own_aliased[spec.id] = story
        last_seed = max((s.published for s in spec.seeds), default=0.0)
        first_seed = min((s.published for s in spec.seeds), default=0.0)
        self._starts[slot] = first_seed if spec.starts is None else spec.starts
        self._activity[slot] = last_seed
        self._since[slot] = -math.inf if spec.tracked_since is None else spec.tracked_since
        self._since_max = float(self._since.max())
        self._expires[slot] = math.inf if spec.expires_after is None else spec.expires_after
        self._knob[slot] = self.config.threshold if spec.threshold is None else spec.threshold
        for seed_id in story.seed_ids:
            self._seeded.setdefault(seed_id, []).append(slot)
        self._epoch += 1

    def _rebuild_background(self, story: _Storyline) -> None:
        """Score the recent window (minus seeds and follow-ups) against the current profile.

        Done when a storyline starts, so it has a background at once, and when adaptation
        has moved its profile, so the background is measured on the same scale as new scores.
        Vectors of recent items are kept, so this is dot products over stacked arrays (_Stacked).
        """
        cfg = self.config
        story.background_centroid = story.centroid
        skip = story.seed_ids | story.followups
        kept = np.fromiter((r.id not in skip for r in self._recent), bool, len(self._recent))
        docs = list(compress(self._recent, kept))
        stacked = self._stacked_recent()
        scores = stacked.dots(story.centroid)[kept]
        if cfg.score_mode != "centroid":
            nearest = np.zeros(len(docs))  # a storyline of keywords alone has no member
            for m in story.members:
                nearest = np.maximum(nearest, stacked.dots(m.vector)[kept])
            scores = nearest if cfg.score_mode == "nearest" else 0.5 * (scores + nearest)
        short = np.fromiter((r.short for r in docs), bool, len(docs))
        for k, r in enumerate(docs if story.own_firsts else ()):
            if self._reads_differently(story, r.starts):
                own = self._analyze(r.doc, story.aliases)
                vector = self._vector(own)
                short[k] = own.short
                scores[k] = self._similarity(story, vector, _dot(vector, story.centroid))
        split = short & cfg.bg_split_short
        self._backgrounds.reset(2 * story.slot, scores[~split])
        self._backgrounds.reset(2 * story.slot + 1, scores[split])
        if len(story.followups) > 2 * cfg.bg_init_docs:
            story.followups &= {r.id for r in self._recent}

    def _stacked_recent(self) -> _Stacked:
        """The recent window stacked, made again only once a document has joined it (several
        storylines rebuilt after one item share it)."""
        if self._stacked is None or self._stacked[0] != self._observed:
            if self._lookup is None:
                self._lookup = np.zeros(1 << _Stacked.LOOKUP_BITS, np.int16)
            self._stacked = self._observed, _Stacked(list(self._recent), self._lookup)
        return self._stacked[1]

    def remove_storyline(self, storyline_id: str) -> None:
        story = self._storylines.pop(storyline_id)
        self._own_aliased.pop(storyline_id, None)
        self._marked.pop(storyline_id, None)
        self._index.drop(story.slot)
        self._free_slots.append(story.slot)
        self._by_slot[story.slot] = None
        self._ids = [s.spec.id if s is not None else "" for s in self._by_slot]
        self._starts[story.slot] = math.inf  # a free slot decides nothing
        self._evidence.remove(story.slot)
        for seed_id in story.seed_ids:
            slots = self._seeded[seed_id]
            slots.remove(story.slot)
            if not slots:
                del self._seeded[seed_id]
        self._learn_spellings(story.spellings, -1)
        self._epoch += 1

    def _learn_spellings(self, spellings: _Spellings, sign: int) -> None:
        """Count a storyline's names in (or, sign -1, out of) the spelling fixes' lexicon."""
        change = self._spelling.add if sign > 0 else self._spelling.remove
        for word in spellings.words:
            change(word)
        self._name_runs.update(dict.fromkeys(spellings.runs, sign))
        self._one_word_names.update(dict.fromkeys(spellings.one_word, sign))
        self._name_runs = +self._name_runs  # drop what reached zero
        self._one_word_names = +self._one_word_names

    @property
    def storyline_ids(self) -> list[str]:
        return list(self._storylines)

    def aliases(self, storyline_id: str) -> AliasTable:
        """The alias table a storyline reads items with (the generic groups and its own): to show
        a reason's alias token as the item writes it ("Moscow" for russia)."""
        story = self._storylines.get(storyline_id)
        return story.aliases if story is not None else self._default_aliases

    def _refresh_story(self, story: _Storyline) -> None:
        """Re-weight every member with the current IDF and recompute the profile."""
        cfg = self.config
        total: dict[str, float] = {}
        seeds_only: dict[str, float] = {}
        for m in story.members:
            m.vector = self._vector(m.analysis)
            _add_into(total, m.vector, m.weight)
            if m.is_seed and story.adopted:
                _add_into(seeds_only, m.vector, 1.0)
        if story.keyword_analysis is not None:
            keywords = self._vector(story.keyword_analysis)
            _add_into(total, keywords, cfg.keyword_weight)
            if story.adopted:
                _add_into(seeds_only, keywords, cfg.keyword_weight)
        for mark in story.marked.values():
            mark.vector = self._vector(mark.analysis)
        story.total = total
        self._set_centroid(story)
        story.seed_centroid = self._profile(story, seeds_only) if story.adopted else story.centroid

    def _set_centroid(self, story: _Storyline) -> None:
        story.centroid = self._profile(story, story.total)
        self._index.put(story.slot, story.centroid)

    def _profile(self, story: _Storyline, total: dict[str, float]) -> dict[str, float]:
        """A unit profile vector from a sum of member vectors: names boosted, truncated."""
        weight = self.config.name_weight
        if weight != 1.0:
            total = dict(total)
            for f in story.name_features:
                if f in total:
                    total[f] *= weight
        return self._truncate(total)

    def _truncate(self, vec: dict[str, float]) -> dict[str, float]:
        return _heaviest_unit(vec, self.config.profile_terms)

    def _refresh(self) -> None:
        for story in self._storylines.values():
            self._refresh_story(story)
        self._since_refresh = 0

    def _refresh_due(self) -> bool:
        """IDF is a statistic of the window, so profiles need re-weighting only once a fair
        part of the window has changed: every ``refresh_every`` documents, or every
        ``refresh_fraction`` of the window when that is more (constant cost per item)."""
        cfg = self.config
        every = max(cfg.refresh_every, int(cfg.refresh_fraction * len(self._window)))
        return self._since_refresh >= every

    # ------------------------------------------------------------------ deciding

    def _central_scores(self, unit: _Unit) -> npt.NDArray[np.float64]:
        """Cosine of the item with the centroid of every storyline, by slot."""
        if not len(unit.values):
            return np.zeros(self._n_slots)
        return self._index.dots(unit.features, unit.values, self._n_slots)

    def decide(self, doc: Doc, explain: Explain | None = None) -> Decisions:
        """One decision per live storyline (not those this doc seeds, nor those it predates or
        that have expired), in slot order. Pure. ``explain`` overrides ``config.explain`` (a
        one-off question "why" wants every decision's reasons)."""
        if not self._storylines:
            return Decisions.none(doc.id, self._epoch)
        cfg = self.config
        analysis = self._analyze_cached(doc)
        raw = self._central_scores(self._unit_cached(doc, analysis))
        silence = self._silence(doc)
        live = self._live(doc, silence)
        short = np.full(self._n_slots, analysis.short and cfg.bg_split_short)
        readings: dict[int, tuple[_Analysis, dict[str, float]]] = {}
        apart = self._storylines if cfg.score_mode != "centroid" else self._own_aliased
        for story in apart.values():  # scored otherwise than by the profile matrix
            if live[story.slot] and (cfg.score_mode != "centroid" or self._reads_differently(story, analysis.starts)):
                vector = self._vector_cached(doc, analysis)
                own, own_vector = self._own_reading(story, doc, analysis, vector)
                central = raw[story.slot] if own_vector is vector else _dot(own_vector, story.centroid)
                raw[story.slot] = self._similarity(story, own_vector, central)
                short[story.slot] = own.short and cfg.bg_split_short
                readings[story.slot] = own, own_vector
        slots = np.flatnonzero(live)
        raw = raw[slots]
        score = raw
        if cfg.recency_penalty > 0.0:
            score = raw - cfg.recency_penalty * np.log1p(silence[slots] / cfg.recency_scale)
        rows = 2 * slots + short[slots]
        knob = self._knob[slots]
        margin, threshold = self._backgrounds.judge(rows, score, knob)
        ids = self._ids if len(slots) == self._n_slots else [self._ids[s] for s in slots.tolist()]
        decisions = Decisions(doc.id, ids, rows, margin >= knob, score, threshold, raw, margin, self._epoch)
        mentions = self._mentions(doc, analysis)
        decisions.evidence = self._evidence.scores(mentions, doc.source, slots)
        decisions.followup |= decisions.evidence >= cfg.evidence_threshold
        if decisions.followup.any():
            decisions.missing = self._evidence.missing_actors(mentions, doc.source, slots, decisions.followup)
            decisions.followup &= np.array([not m for m in decisions.missing], bool)
        if self._marked:
            self._apply_marks(decisions, slots, doc, analysis, mentions, readings)
        every = (explain or cfg.explain) == "all"
        explained = range(len(slots)) if every else \
            sorted({*np.flatnonzero(decisions.followup).tolist(), *decisions.like_marked})
        for k in explained:
            slot = int(slots[k])
            owner = self._by_slot[slot]
            assert owner is not None
            own, own_vector = readings.get(slot) or (analysis, self._vector_cached(doc, analysis))
            self._explain_decision(decisions, k, owner, doc, own, own_vector, every)
        return decisions

    def _live(self, doc: Doc, silence: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """By slot: whether the storyline decides on ``doc`` (free slots: starts inf)."""
        live: npt.NDArray[np.bool_] = (doc.published >= self._starts) & (silence <= self._expires)
        for slot in self._seeded.get(doc.id, ()):
            live[slot] = False  # a storyline decides on what follows its seeds
        return live

    def not_deciding(self, doc: Doc) -> dict[str, Idle]:
        """The storylines that make no decision on ``doc`` (``decide`` leaves them out), and why."""
        silence = self._silence(doc)
        idle = {}
        for slot in np.flatnonzero(~self._live(doc, silence)).tolist():
            story = self._by_slot[slot]
            if story is None:
                continue
            if slot in self._seeded.get(doc.id, ()):
                idle[story.spec.id] = Idle("seed", 0.0)
            elif doc.published < self._starts[slot]:
                idle[story.spec.id] = Idle("early", float(self._starts[slot]))
            else:
                idle[story.spec.id] = Idle("expired", float(doc.published - silence[slot] + self._expires[slot]))
        return idle

    def _silence(self, doc: Doc) -> npt.NDArray[np.float64]:
        """Per slot, how long the storyline had been quiet when ``doc`` was published: since its
        last seed or follow-up, or, for an item published since it was tracked, since then."""
        activity = np.maximum(self._activity, self._since)
        if doc.published < self._since_max:  # tracked since after it, for some: their last activity
            activity = np.where(doc.published >= self._since, activity, self._activity)
        silence: npt.NDArray[np.float64] = np.maximum(doc.published - activity, 0.0)
        return silence

    @staticmethod
    def _reads_differently(story: _Storyline, starts: str) -> bool:
        """Whether the storyline's own aliases apply to a text with these rule starts."""
        return any(first in starts for first in story.own_firsts)

    def _own_reading(self, story: _Storyline, doc: Doc, analysis: _Analysis,
                     vector: dict[str, float]) -> tuple[_Analysis, dict[str, float]]:
        """The document's analysis and vector as ``story`` reads it: the generic ones unless the
        storyline's own aliases apply to it."""
        if not self._reads_differently(story, analysis.starts):
            return analysis, vector
        own = self._analyze(doc, story.aliases)
        return own, self._vector(own)

    def _explain_decision(self, decisions: Decisions, k: int, story: _Storyline, doc: Doc, analysis: _Analysis,
                          vector: dict[str, float], every: bool) -> None:
        """Veto, reasons and novelty of decision ``k``. Reasons are what a person reads about a
        follow-up (or about a veto, which decides NO); other decisions need only score and
        threshold (explaining costs a dot product per profile member)."""
        followup = bool(decisions.followup[k])
        like = decisions.like_marked.get(k)
        own_mark = like is not None and like[0] == doc.id  # the reader's word on this very item
        veto = self._vetoed(story, analysis) if followup and story.exclude and not own_mark else None
        if veto is not None:
            followup = False
            decisions.followup[k] = False  # an exclude term decides NO
        if not (followup or veto is not None or like is not None or every):
            return
        reasons = replace(self._explain(story, analysis, vector, veto, doc.id), like_marked=like)
        mentions = self._mentions(doc, analysis)
        # Which names counted, and why not, only where they did count or a person asks: a
        # follow-up by score alone has nothing to say of them (70 µs a decision).
        counted = self._evidence.counted(mentions, doc.source, story.slot) \
            if every or decisions.evidence[k] > 0 else ()
        reasons = replace(reasons, evidence_score=round(float(decisions.evidence[k]), 4), counted=counted,
                          missing=tuple(decisions.missing[k]),
                          evidence=describe(counted) if mentions is not None else (),
                          feed_items=self._evidence.feed_items(doc.source))
        known = story.known_names
        novelty = tuple(s for key, s in analysis.names.items() if key not in known) if followup else ()
        decisions.explained[k] = reasons, novelty

    def _similarity(self, story: _Storyline, vector: dict[str, float], central: float) -> float:
        """Score of an item against a storyline, given its cosine with the centroid."""
        mode = self.config.score_mode
        if mode == "centroid":
            return central
        nearest = max((_dot(vector, m.vector) for m in story.members), default=0.0)
        if mode == "nearest":
            return nearest
        return 0.5 * (central + nearest)

    def _vetoed(self, story: _Storyline, analysis: _Analysis) -> str | None:
        for phrase in story.exclude:
            key = " ".join(phrase) if len(phrase) <= 2 else None
            if key is not None and key in analysis.weights:
                return key
            if key is None and all(p in analysis.weights for p in phrase):
                return " ".join(phrase)
        return None

    def _explain(
        self,
        story: _Storyline,
        analysis: _Analysis,
        vector: dict[str, float],
        veto: str | None,
        doc_id: str,
    ) -> Reasons:
        centroid = story.centroid
        contrib = [(f, vector[f] * centroid[f]) for f in vector.keys() & centroid.keys()]
        top = heapq.nlargest(self.config.top_terms, contrib, key=itemgetter(1))
        shown = tuple(
            surface for key, surface in analysis.names.items() if key in story.known_names
        )
        kw_hits = tuple(kw for kw, key in story.keyword_keys if key in analysis.weights)
        best_id, best = None, 0.0
        for m in story.members:
            sim = _dot(vector, m.vector) if m.id != doc_id else 0.0  # a marked item is a member: not itself
            if sim > best:
                best_id, best = m.id, sim
        return Reasons(
            top_terms=tuple((f, round(c, 4)) for f, c in top),
            names=tuple(dict.fromkeys(kw_hits + shown)),
            closest_id=best_id,
            closest_similarity=round(best, 4),
            vetoed_by=veto,
        )

    # ------------------------------------------------------------------ the reader's marks

    def mark(self, storyline_id: str, doc: Doc, followup: bool | None) -> None:
        """A reader's judgement of ``doc`` for a storyline (None clears it): a labelled example.
        "Yes" joins the profile as a seed does (never dropped); "no" takes it out of the profile
        if the storyline had adopted it. Either decides for items very like it (``mark_near``).
        Marks outweigh the tracker's own adaptation: it never adopts or drops a marked item."""
        self.mark_many(storyline_id, [(doc, followup)])

    def mark_many(self, storyline_id: str, marks: Sequence[tuple[Doc, bool | None]]) -> None:
        """Several marks of one storyline (as `mark`, in order), its background rebuilt once:
        a rebuild per mark made a tracker with 1,000 marks ten times slower to build."""
        story = self._storylines[storyline_id]
        for doc, _ in marks:
            if doc.id in story.seed_ids:
                raise ValueError(f"{doc.id} is a seed of {storyline_id}")
        for doc, followup in marks:
            self._record_mark(story, doc, followup)
        self._marked = {s.spec.id: s for s in self._storylines.values() if s.marked}
        self._set_centroid(story)
        self._rebuild_background(story)

    def _record_mark(self, story: _Storyline, doc: Doc, followup: bool | None) -> None:
        story.marked.pop(doc.id, None)
        self._drop_member(story, doc.id)
        if followup is None:
            return
        analysis = self._analyze(doc, story.aliases)
        vector = self._vector(analysis)
        story.marked[doc.id] = _Mark(followup, analysis, vector)
        if followup:
            weight = self.config.mark_weight
            story.members.append(_Member(doc.id, doc.published, weight, analysis, vector))
            _add_into(story.total, vector, weight)
            story.followups.add(doc.id)
            story.known_names.update(analysis.names)
            self._activity[story.slot] = max(self._activity[story.slot], doc.published)
        else:
            story.followups.discard(doc.id)

    def _drop_member(self, story: _Storyline, doc_id: str) -> None:
        """Take an item (not a seed) out of the storyline's profile, if it is in it."""
        for i, m in enumerate(story.members):
            if m.id == doc_id and m.id not in story.seed_ids:
                del story.members[i]
                _add_into(story.total, m.vector, -m.weight)
                story.adopted -= not m.is_seed
                return

    def _apply_marks(self, decisions: Decisions, slots: npt.NDArray[np.intp], doc: Doc, analysis: _Analysis,
                     mentions: Mentions | None, readings: dict[int, tuple[_Analysis, dict[str, float]]]) -> None:
        """Where an item is very like one the reader marked, and more like it than like any item
        of the other kind, the mark decides: NO like a "no"; YES like a "yes", if the item names
        the storyline's units and every party its title names."""
        near = self.config.mark_near
        position = {int(slot): k for k, slot in enumerate(slots.tolist())}
        for story in self._marked.values():
            k = position.get(story.slot)
            if k is None:
                continue
            own = story.marked.get(doc.id)
            if own is not None:  # the marked item itself (decided again: a replay)
                decisions.followup[k] = own.followup
                decisions.like_marked[k] = doc.id, own.followup, 1.0
                continue
            if not decisions.followup[k] and decisions.evidence[k] <= 0:
                continue  # neither rule can apply: a YES by a mark needs evidence
            vector = readings[story.slot][1] if story.slot in readings else self._vector_cached(doc, analysis)
            best: dict[bool, tuple[str, float]] = {True: ("", 0.0), False: ("", 0.0)}
            for item_id, m in story.marked.items():
                sim = _dot(vector, m.vector)
                if sim > best[m.followup][1]:
                    best[m.followup] = item_id, sim
            profile = max((_dot(vector, m.vector) for m in story.members), default=0.0)
            (yes_id, yes), (no_id, no) = best[True], best[False]
            if decisions.followup[k] and no >= near and no > max(profile, yes):
                decisions.followup[k] = False
                decisions.like_marked[k] = no_id, False, round(no, 4)
            elif not decisions.followup[k] and yes >= near and yes > no and decisions.evidence[k] > 0 \
                    and not self._evidence.missing_actors(mentions, doc.source, slots[k:k + 1], np.ones(1, bool))[0]:
                decisions.followup[k] = True
                decisions.like_marked[k] = yes_id, True, round(yes, 4)

    # ------------------------------------------------------------------ learning

    def observe(self, doc: Doc, decisions: Decisions | None = None) -> None:
        """Learn from a document after deciding on it (``decisions``: what ``decide`` said of it):
        corpus statistics, background scores, and (if enabled) adaptation of storyline profiles
        to confident follow-ups."""
        if doc.id in self._seen:
            return
        analysis = self._analyze_cached(doc)
        # The vector under the IDF the decisions used (before this document is counted).
        unit = self._unit_cached(doc, analysis)
        self._observe_stats(doc)
        self._recent.append(_Recent.of(doc, analysis, unit))
        self._observed += 1
        if decisions is not None and len(decisions):
            self._add_background(decisions)
            for d in decisions.followups:
                self._learn_followup(doc, d, analysis)
        self._since_refresh += 1
        if self._refresh_due():
            self._refresh()

    def _add_background(self, decisions: Decisions) -> None:
        """The NO decisions' scores join their storylines' backgrounds."""
        no = ~decisions.followup
        rows, raw = decisions.rows[no], decisions.raw[no]
        if decisions.epoch != self._epoch:  # storylines came or went since: find them by id
            found_rows, found_raw = [], []
            for k in np.flatnonzero(no).tolist():
                story = self._storylines.get(decisions.storyline_ids[k])
                if story is not None:  # same kind of row (item with text, headline-only), its slot
                    found_rows.append(2 * story.slot + int(decisions.rows[k]) % 2)
                    found_raw.append(float(decisions.raw[k]))
            rows, raw = np.array(found_rows, np.intp), np.array(found_raw)
        self._backgrounds.add(rows, raw)

    def _learn_followup(self, doc: Doc, d: Decision, analysis: _Analysis) -> None:
        cfg = self.config
        story = self._storylines.get(d.storyline_id)
        if story is None:
            return
        if doc.id in story.marked:
            return  # the reader's mark holds: not adopted (a "yes" is in the profile already)
        story.followups.add(doc.id)
        if d.score - d.threshold >= cfg.activity_margin:
            self._activity[story.slot] = max(self._activity[story.slot], doc.published)
        analysis, vector = self._own_reading(story, doc, analysis, self._vector_cached(doc, analysis))
        if d.reasons is not None:
            story.known_names.update(analysis.names)
        if cfg.adapt and d.score >= d.threshold + cfg.adapt_margin:
            duplicate = d.reasons is not None and d.reasons.closest_similarity >= cfg.adapt_duplicate
            if not duplicate:
                self._adapt(story, doc, analysis, vector, d)

    def process(self, doc: Doc) -> Decisions:
        """decide() then observe(): the call the product makes per arriving item."""
        decisions = self.decide(doc)
        self.observe(doc, decisions)
        return decisions

    def vector(self, doc: Doc) -> dict[str, float]:
        """The document's TF-IDF unit vector (words and word pairs, title counted more) as scoring
        sees it; free right after process(doc) when storylines are tracked (decide made it)."""
        return self._vector_cached(doc, self._analyze_cached(doc))

    def count_names(self, doc: Doc) -> None:
        """Count an earlier item in its feed's name shares only (evidence.py), not in the word
        statistics: a rebuilt tracker reads a slow feed's earlier items so."""
        self._evidence.observe(self._mentions(doc, self._analyze_cached(doc)), doc.source)

    def _observe_stats(self, doc: Doc) -> _Analysis:
        self._seen.add(doc.id)
        self._seen_order.append(doc.id)
        if len(self._seen_order) > self.config.df_window:
            self._seen.discard(self._seen_order.popleft())
        analysis = self._analyze_cached(doc)
        self._count(analysis)
        self._evidence.observe(self._mentions(doc, analysis), doc.source)
        return analysis

    def _mentions(self, doc: Doc, analysis: _Analysis) -> Mentions | None:
        """Where the document names the storylines' units (decide and observe share it)."""
        last = self._last_mentions
        if last is not None and last[0] is doc:
            return last[1]
        cfg = self.config
        read = lambda: sentences(doc.text, self._default_aliases, cfg.body_max_tokens)  # noqa: E731 (lazy)
        found = self._evidence.mentions(Zones(analysis.title_terms, analysis.lead_terms, analysis.weights,
                                              cfg.phrase_weight, cfg.title_weight, read))
        self._last_mentions = (doc, found)
        return found

    def _adapt(
        self,
        story: _Storyline,
        doc: Doc,
        analysis: _Analysis,
        vector: dict[str, float],
        decision: Decision,
    ) -> None:
        """Add a confident follow-up to the profile (bounded, oldest adopted dropped first).

        The background is re-scored only when the profile has drifted from the one it was
        measured against (cosine below 1 - adapt_rebuild_drift): early adoptions move a
        4-seed profile a lot, later ones barely, and a rebuild costs one dot product per
        recent item."""
        cfg = self.config
        if story.adopted:
            raw_seed = _dot(vector, story.seed_centroid)
            if raw_seed < decision.threshold + cfg.adapt_guard:
                return
        if not story.adopted:
            story.seed_centroid = story.centroid  # the profile so far is the seeds' alone
        # Incremental: add the new member to the sum of member vectors (and take out the
        # oldest adopted one beyond adapt_max); the periodic refresh re-weights them all.
        member = _Member(doc.id, doc.published, cfg.adapt_weight, analysis, vector, is_seed=False)
        story.members.append(member)
        _add_into(story.total, vector, cfg.adapt_weight)
        story.adopted += 1
        if story.adopted > cfg.adapt_max:
            for i, m in enumerate(story.members):
                if not m.is_seed:
                    del story.members[i]
                    _add_into(story.total, m.vector, -m.weight)
                    story.adopted -= 1
                    break
        self._set_centroid(story)
        if cfg.adapt_rebuild_background:
            moved = 1.0 - _dot(story.centroid, story.background_centroid)
            if moved >= cfg.adapt_rebuild_drift:
                self._rebuild_background(story)


def with_overrides(config: TrackerConfig, **changes: object) -> TrackerConfig:
    """A copy of ``config`` with some fields changed (typed helper for experiments)."""
    return replace(config, **changes)  # type: ignore[arg-type]
