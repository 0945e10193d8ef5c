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
preview without learning. The tracker never does I/O and keeps no globals; its memory is bounded
by the config (window sizes), so its speed does not fall as the store grows.

How a decision is made (docs/tracking.md has the measurements behind every step):

1. The item becomes a TF-IDF vector over words and adjacent word pairs ("north korea"), with the
   title counted more. IDF comes from a sliding window over the stream itself (every item
   observed, not only seeds), so story names that were unknown yesterday get their weight today.
2. Each storyline keeps a profile: the centroid of its seeds (plus adopted follow-ups, if
   adaptation is on), its keywords as pseudo-text, and the names seen so far.
3. Raw score = cosine(item, profile). Raw cosines are not comparable across storylines (a
   storyline seeded by long articles scores everything lower than one seeded by headlines), so
   each storyline keeps the distribution of the scores that *background* items get against it,
   and the decision uses a normalised score ``(raw - mean_bg) / spread_bg``.
4. The threshold on the normalised score is global; a storyline may override it.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from worker.textproc import AliasTable, SpellingIndex, Token, is_title_case, names, phrases, tokenize

# --------------------------------------------------------------------------- public data


@dataclass(frozen=True, slots=True)
class Doc:
    """A news item as the tracker sees it. ``published`` is POSIX seconds (UTC)."""

    id: str
    title: str
    text: str
    published: float


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
    """``score`` in units of the global knob: followup == (margin >= config.threshold)."""
    reasons: Reasons | None
    novelty: tuple[str, ...]
    """Names in a follow-up that the storyline has not mentioned before ("new in this story")."""


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
ScoreMode = Literal["centroid", "nearest", "mix"]


@dataclass(frozen=True)
class TrackerConfig:
    """Every tunable, with the shipped default. Defaults were chosen on held-out stories."""

    threshold: float = 0.035
    """The global knob. normalization="none": the cosine threshold itself. "tail": the margin
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
    profile_terms: int = 300
    """Profile vectors keep their N heaviest features (speed, and less noise)."""
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
    adapt_max: int = 20
    """...and at most this many (oldest dropped first); seeds are never dropped."""
    adapt_guard: float = 0.0
    """Drift guard: the follow-up must also score >= threshold + guard against the seeds alone."""
    refresh_every: int = 100
    """Profiles are re-weighted with current IDF after this many observed documents."""
    explain: Literal["all", "followups"] = "all"
    """Compute reasons for every decision, or only for follow-ups (faster)."""
    top_terms: int = 6
    default_aliases: tuple[tuple[str, ...], ...] = DEFAULT_ALIASES
    spelling_variants: bool = True
    """Rewrite capitalised words one edit away from a known storyline name (Park -> Pak)."""


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


@dataclass(slots=True)
class _Member:
    id: str
    published: float
    weight: float
    analysis: _Analysis
    vector: dict[str, float] = field(default_factory=dict)
    """Unit TF-IDF vector under the IDF of the last refresh."""
    is_seed: bool = True


class _BackgroundStats:
    """Scores that non-follow-up items got against one storyline: a bounded window plus a prior.

    The window is bounded so that the cost is constant; the prior carries a new storyline
    until it has seen enough background. The quantile is recomputed every ``_EVERY`` additions
    (a sort of at most ``bg_window`` floats), not per decision.
    """

    _EVERY = 25
    __slots__ = ("scores", "total", "total_sq", "cfg", "_quantile", "_stale")

    def __init__(self, config: TrackerConfig) -> None:
        self.cfg = config
        self.scores: deque[float] = deque(maxlen=config.bg_window)
        self.total = 0.0
        self.total_sq = 0.0
        self._quantile = 0.0
        self._stale = 0

    def add(self, score: float) -> None:
        if len(self.scores) == self.scores.maxlen:
            old = self.scores[0]
            self.total -= old
            self.total_sq -= old * old
        self.scores.append(score)
        self.total += score
        self.total_sq += score * score
        self._stale += 1

    def mean_std(self) -> tuple[float, float]:
        n = len(self.scores)
        k = self.cfg.bg_prior_n
        pm, ps = self.cfg.bg_prior_mean, self.cfg.bg_prior_std
        mean = (self.total + k * pm) / (n + k)
        second = (self.total_sq + k * (ps * ps + pm * pm)) / (n + k)
        std = math.sqrt(max(second - mean * mean, 0.0))
        return mean, max(std, self.cfg.bg_min_std)

    def quantile(self) -> float:
        n = len(self.scores)
        if self._stale and (self._stale >= self._EVERY or n < 4 * self._EVERY):
            ordered = sorted(self.scores)
            self._quantile = ordered[min(int(self.cfg.bg_quantile * n), n - 1)] if n else 0.0
            self._stale = 0
        k = self.cfg.bg_prior_n
        return (n * self._quantile + k * self.cfg.bg_prior_quantile) / (n + k)

    def normalize(self, score: float) -> float:
        """The score in units of the global knob (inverse of ``threshold``)."""
        mode = self.cfg.normalization
        if mode == "tail":
            return score - self.quantile()
        if mode == "zscore":
            mean, std = self.mean_std()
            return (score - mean) / std
        return score

    def threshold(self, knob: float) -> float:
        """The storyline's effective threshold on the raw score."""
        mode = self.cfg.normalization
        if mode == "tail":
            return self.quantile() + knob
        if mode == "zscore":
            mean, std = self.mean_std()
            return mean + knob * std
        return knob


@dataclass
class _Storyline:
    spec: StorylineSpec
    aliases: AliasTable
    members: list[_Member]
    keyword_analysis: _Analysis | None
    exclude: tuple[tuple[str, ...], ...]
    known_names: set[str]
    name_features: set[str]
    backgrounds: tuple[_BackgroundStats, _BackgroundStats]
    """Background scores of (items with text, headline-only items): their scales differ."""
    last_activity: float
    followups: set[str] = field(default_factory=set)
    """Ids of recent follow-ups: not background when the background is rebuilt."""
    centroid: dict[str, float] = field(default_factory=dict)
    seed_centroid: dict[str, float] = field(default_factory=dict)
    adopted: int = 0


def _sublinear(count: float) -> float:
    return 1.0 + math.log(count) if count >= 1.0 else count


def _unit(vector: dict[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(w * w for w in vector.values()))
    if norm == 0.0:
        return {}
    return {f: w / norm for f, w in vector.items()}


def _dot(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(f, 0.0) for f, w in a.items())


def _name_key(name: Sequence[str]) -> str:
    return " ".join(name)


class Tracker:
    """Holds corpus statistics and storyline profiles; decides item by item. Not thread-safe."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._default_aliases = AliasTable.build(self.config.default_aliases)
        self._storylines: dict[str, _Storyline] = {}
        # Document frequencies over a sliding window of observed documents.
        self._df: dict[str, int] = {}
        self._window: deque[frozenset[str]] = deque()
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        # Recent analyses, to give a new storyline a background at once.
        self._recent: deque[tuple[Doc, _Analysis]] = deque(maxlen=self.config.bg_init_docs)
        self._spelling = SpellingIndex()
        self._since_refresh = 0
        self._last_analysis: tuple[Doc, _Analysis] | None = None

    # ------------------------------------------------------------------ corpus statistics

    @property
    def n_docs(self) -> int:
        return len(self._window)

    def idf(self, feature: str) -> float:
        """Smoothed IDF over the window; unseen features get the largest value."""
        n = len(self._window) + self.config.df_prior_docs
        return math.log((n + 1) / (self._df.get(feature, 0) + 1)) + 1.0

    def _count(self, features: Iterable[str]) -> None:
        fs = frozenset(features)
        self._window.append(fs)
        for f in fs:
            self._df[f] = self._df.get(f, 0) + 1
        if len(self._window) > self.config.df_window:
            for f in self._window.popleft():
                left = self._df[f] - 1
                if left:
                    self._df[f] = left
                else:
                    del self._df[f]

    # ------------------------------------------------------------------ analysis

    def _tokens(self, text: str, trust_case: bool, aliases: AliasTable) -> list[Token]:
        toks = tokenize(text, trust_case)
        if self.config.spelling_variants:
            toks = [self._respell(t) for t in toks]
        return aliases.apply(toks)

    def _respell(self, tok: Token) -> Token:
        if not tok.capital:
            return tok
        fixed = self._spelling.correct(tok.norm)
        return tok if fixed is None else Token(fixed, True, tok.clause, tok.sentence_start)

    def _analyze(self, doc: Doc, aliases: AliasTable | None = None) -> _Analysis:
        cfg = self.config
        table = aliases or self._default_aliases
        title = self._tokens(doc.title, not is_title_case(doc.title), table)
        body = self._tokens(doc.text, True, table)[: cfg.body_max_tokens]
        weights: dict[str, float] = {}
        for part, boost in ((body, 0.0), (title, cfg.title_weight)):
            counts: dict[str, float] = {}
            for t in part:
                counts[t.norm] = counts.get(t.norm, 0.0) + 1.0
            if cfg.phrase_weight > 0:
                for p in phrases(part):
                    counts[p] = counts.get(p, 0.0) + 1.0
            for f, c in counts.items():
                w = _sublinear(c) + boost
                if " " in f:
                    w *= cfg.phrase_weight
                weights[f] = weights.get(f, 0.0) + w
        found: dict[str, str] = {}
        for part in (title, body):
            for name in names(part):
                found.setdefault(_name_key(name), " ".join(name))
        return _Analysis(weights, found, len(body) < cfg.short_tokens)

    def _analyze_cached(self, doc: Doc) -> _Analysis:
        """decide() and observe() of one document share its analysis (default aliases)."""
        if self._last_analysis is not None and self._last_analysis[0] is doc:
            return self._last_analysis[1]
        analysis = self._analyze(doc)
        self._last_analysis = (doc, analysis)
        return analysis

    def _vector(self, analysis: _Analysis, limit: int | None = None) -> dict[str, float]:
        vec = {f: w * self.idf(f) for f, w in analysis.weights.items()}
        if limit is not None and len(vec) > limit:
            vec = dict(heapq.nlargest(limit, vec.items(), key=lambda kv: kv[1]))
        return _unit(vec)

    # ------------------------------------------------------------------ storylines

    def add_storyline(self, spec: StorylineSpec) -> None:
        """Start tracking. Seeds not yet observed are added to the corpus statistics."""
        cfg = self.config
        aliases = (
            self._default_aliases.merged(AliasTable.build(spec.aliases))
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
        if spec.keywords:
            kw_doc = Doc(f"{spec.id}#keywords", "", ". ".join(spec.keywords), 0.0)
            kw_analysis = self._analyze(kw_doc, aliases)
            for kw in spec.keywords:
                toks = [t.norm for t in self._tokens(kw, False, aliases)]
                known.add(_name_key(toks))
                name_features.update(toks)
                name_features.update(f"{a} {b}" for a, b in zip(toks, toks[1:]))
        for group in spec.aliases:
            canon = [t.norm for t in self._tokens(group[0], False, aliases)]
            name_features.update(canon)
            name_features.update(f"{a} {b}" for a, b in zip(canon, canon[1:]))
        for m in members:
            known.update(m.analysis.names)
            for key in m.analysis.names:
                parts = key.split(" ")
                name_features.update(parts)
                name_features.update(f"{a} {b}" for a, b in zip(parts, parts[1:]))
        for f in name_features:
            if " " not in f:
                self._spelling.add(f)
        exclude = tuple(
            tuple(t.norm for t in self._tokens(e, False, aliases)) for e in spec.exclude
        )
        story = _Storyline(
            spec=spec,
            aliases=aliases,
            members=members,
            keyword_analysis=kw_analysis,
            exclude=tuple(e for e in exclude if e),
            known_names=known,
            name_features=name_features,
            backgrounds=(_BackgroundStats(cfg), _BackgroundStats(cfg)),
            last_activity=max((s.published for s in spec.seeds), default=0.0),
        )
        self._storylines[spec.id] = story
        self._refresh_story(story)
        self._rebuild_background(story)

    def _rebuild_background(self, story: _Storyline) -> None:
        """Score the recent window (minus seeds and follow-ups) against the current profile.

        Done when a storyline starts, so it has a background at once, and when adaptation
        changes its profile, so the background is measured on the same scale as new scores.
        """
        cfg = self.config
        story.backgrounds = (_BackgroundStats(cfg), _BackgroundStats(cfg))
        skip = {s.id for s in story.spec.seeds} | story.followups
        for doc, analysis in self._recent:
            if doc.id in skip:
                continue
            if story.aliases is not self._default_aliases:
                analysis = self._analyze(doc, story.aliases)
            bg = self._background(story, analysis)
            bg.add(self._similarity(story, self._vector(analysis)))
        if len(story.followups) > 2 * cfg.bg_init_docs:
            recent_ids = {doc.id for doc, _ in self._recent}
            story.followups &= recent_ids

    def remove_storyline(self, storyline_id: str) -> None:
        story = self._storylines.pop(storyline_id)
        for f in story.name_features:
            if " " not in f:
                self._spelling.remove(f)

    @property
    def storyline_ids(self) -> list[str]:
        return list(self._storylines)

    def _refresh_story(self, story: _Storyline) -> None:
        cfg = self.config
        total: dict[str, float] = {}
        seeds_only: dict[str, float] = {}
        for m in story.members:
            m.vector = self._vector(m.analysis)
            for f, w in m.vector.items():
                total[f] = total.get(f, 0.0) + m.weight * w
                if m.is_seed:
                    seeds_only[f] = seeds_only.get(f, 0.0) + w
        if story.keyword_analysis is not None:
            for f, w in self._vector(story.keyword_analysis).items():
                total[f] = total.get(f, 0.0) + cfg.keyword_weight * w
                seeds_only[f] = seeds_only.get(f, 0.0) + cfg.keyword_weight * w
        if cfg.name_weight != 1.0:
            for vec in (total, seeds_only):
                for f in story.name_features:
                    if f in vec:
                        vec[f] *= cfg.name_weight
        story.centroid = self._truncate(total)
        story.seed_centroid = self._truncate(seeds_only) if story.adopted else story.centroid

    def _truncate(self, vec: dict[str, float]) -> dict[str, float]:
        limit = self.config.profile_terms
        if len(vec) > limit:
            vec = dict(heapq.nlargest(limit, vec.items(), key=lambda kv: kv[1]))
        return _unit(vec)

    def _refresh(self) -> None:
        for story in self._storylines.values():
            self._refresh_story(story)
        self._since_refresh = 0

    # ------------------------------------------------------------------ deciding

    def decide(self, doc: Doc) -> list[Decision]:
        """One decision per live storyline (skipping storylines this doc seeds). Pure."""
        cfg = self.config
        out: list[Decision] = []
        default_analysis: _Analysis | None = None
        default_vector: dict[str, float] | None = None
        for story in self._storylines.values():
            spec = story.spec
            if any(s.id == doc.id for s in spec.seeds):
                continue
            silence = max(doc.published - story.last_activity, 0.0)
            if spec.expires_after is not None and silence > spec.expires_after:
                continue
            if story.aliases is self._default_aliases:
                if default_analysis is None:
                    default_analysis = self._analyze_cached(doc)
                    default_vector = self._vector(default_analysis)
                analysis, vector = default_analysis, default_vector
            else:
                analysis = self._analyze(doc, story.aliases)
                vector = self._vector(analysis)
            assert vector is not None
            raw = self._similarity(story, vector)
            score = raw
            if cfg.recency_penalty > 0.0:
                score -= cfg.recency_penalty * math.log1p(silence / cfg.recency_scale)
            knob = spec.threshold if spec.threshold is not None else cfg.threshold
            bg = self._background(story, analysis)
            threshold = bg.threshold(knob)
            margin = bg.normalize(score)
            veto = self._vetoed(story, analysis)
            followup = margin >= knob and veto is None
            reasons = None
            novelty: tuple[str, ...] = ()
            if cfg.explain == "all" or followup:
                reasons = self._explain(story, analysis, vector, veto)
            if followup:
                novelty = tuple(
                    surface
                    for key, surface in analysis.names.items()
                    if key not in story.known_names
                )
            out.append(
                Decision(spec.id, doc.id, followup, score, threshold, raw, margin, reasons, novelty)
            )
        return out

    def _background(self, story: _Storyline, analysis: _Analysis) -> _BackgroundStats:
        return story.backgrounds[analysis.short and self.config.bg_split_short]

    def _similarity(self, story: _Storyline, vector: dict[str, float]) -> float:
        mode = self.config.score_mode
        central = _dot(vector, story.centroid)
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
    ) -> Reasons:
        contrib = [
            (f, w * story.centroid[f]) for f, w in vector.items() if f in story.centroid
        ]
        top = heapq.nlargest(self.config.top_terms, contrib, key=lambda kv: kv[1])
        shown = tuple(
            surface for key, surface in analysis.names.items() if key in story.known_names
        )
        kw_hits = tuple(
            kw
            for kw in story.spec.keywords
            if _name_key([t.norm for t in self._tokens(kw, False, story.aliases)])
            in analysis.weights
        )
        best_id, best = None, 0.0
        for m in story.members:
            sim = _dot(vector, m.vector)
            if sim > best:
                best_id, best = m.id, sim
        return Reasons(
            top_terms=tuple((f, round(c, 4)) for f, c in top),
            names=tuple(dict.fromkeys(kw_hits + shown)),
            closest_id=best_id,
            closest_similarity=round(best, 4),
            vetoed_by=veto,
        )

    # ------------------------------------------------------------------ learning

    def observe(self, doc: Doc, decisions: Sequence[Decision] = ()) -> None:
        """Learn from a document after deciding on it: corpus statistics, background scores,
        and (if enabled) adaptation of storyline profiles to confident follow-ups."""
        if doc.id in self._seen:
            return
        cfg = self.config
        analysis = self._observe_stats(doc)
        self._recent.append((doc, analysis))
        for d in decisions:
            story = self._storylines.get(d.storyline_id)
            if story is None:
                continue
            if not d.followup:
                self._background(story, analysis).add(d.raw)
                continue
            story.followups.add(doc.id)
            if d.score - d.threshold >= cfg.activity_margin:
                story.last_activity = max(story.last_activity, doc.published)
            if d.reasons is not None:
                story.known_names.update(
                    k for k in self._analyze(doc, story.aliases).names
                )
            if cfg.adapt and d.score >= d.threshold + cfg.adapt_margin:
                self._adapt(story, doc, d)
        self._since_refresh += 1
        if self._since_refresh >= cfg.refresh_every:
            self._refresh()

    def process(self, doc: Doc) -> list[Decision]:
        """decide() then observe(): the call the product makes per arriving item."""
        decisions = self.decide(doc)
        self.observe(doc, decisions)
        return decisions

    def _observe_stats(self, doc: Doc) -> _Analysis:
        self._seen.add(doc.id)
        self._seen_order.append(doc.id)
        if len(self._seen_order) > self.config.df_window:
            self._seen.discard(self._seen_order.popleft())
        analysis = self._analyze_cached(doc)
        self._count(analysis.weights)
        return analysis

    def _adapt(self, story: _Storyline, doc: Doc, decision: Decision) -> None:
        cfg = self.config
        analysis = self._analyze(doc, story.aliases)
        if story.adopted:
            raw_seed = _dot(self._vector(analysis), story.seed_centroid)
            if raw_seed < decision.threshold + cfg.adapt_guard:
                return
        story.members.append(
            _Member(doc.id, doc.published, cfg.adapt_weight, analysis, is_seed=False)
        )
        story.adopted += 1
        if story.adopted > cfg.adapt_max:
            for i, m in enumerate(story.members):
                if not m.is_seed:
                    del story.members[i]
                    story.adopted -= 1
                    break
        self._refresh_story(story)
        if cfg.adapt_rebuild_background:
            self._rebuild_background(story)


def with_overrides(config: TrackerConfig, **changes: object) -> TrackerConfig:
    """A copy of ``config`` with some fields changed (typed helper for experiments)."""
    return replace(config, **changes)  # type: ignore[arg-type]
