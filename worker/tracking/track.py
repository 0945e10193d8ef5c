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

from collections.abc import Sequence, Set as AbstractSet

import numpy as np
import numpy.typing as npt

from worker.tracking.analysis import Analysis
from worker.tracking.backgrounds import RecentWindow
from worker.tracking.corpus import Corpus
from worker.tracking.decisions import Decision, Decisions, Doc, Idle, StorylineSpec
from worker.tracking.evidence import Evidence
from worker.tracking.explain import Judge
from worker.tracking.profiles import (
    MarkedItem, Storyline, adopt, drifted, new_storyline, profile, reads_differently, record_mark, refresh, rule_starts,
    similarity,
)
from worker.tracking.reading import Reader
from worker.tracking.settings import Explain, TrackerConfig
from worker.tracking.slots import SlotTable
from worker.tracking.aliases import AliasTable
from worker.tracking.vectors import Recent, Unit, sparse_dot

Reading = tuple[Analysis, dict[str, float]]
"""An item's analysis and vector as one storyline reads it (its own aliases)."""


class Tracker:
    """Decides item by item whether it follows a storyline, and learns from each. Not thread-safe.

    Its parts: the stream's word statistics (Corpus), how texts are read (Reader), the
    storylines' profiles (profiles.Storyline) and their per-slot arrays (SlotTable), the
    recent window their backgrounds are measured on, and the names evidence (Evidence)."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._corpus = Corpus(self.config)
        self._evidence = Evidence(self.config.evidence_window, self.config.bucket_key)
        self._reader = Reader(self.config, self._corpus, self._evidence)
        self._slots = SlotTable(self.config)
        self._recent = RecentWindow(self.config.bg_init_docs)
        self._storylines: dict[str, Storyline] = {}
        self._own_aliased: dict[str, Storyline] = {}
        """The storylines with aliases of their own (they may read a text otherwise)."""
        self._marked: dict[str, Storyline] = {}
        """The storylines with a reader's marks."""
        self._since_refresh = 0

    @property
    def n_docs(self) -> int:
        return self._corpus.n_docs

    @property
    def storyline_ids(self) -> list[str]:
        return list(self._storylines)

    def aliases(self, storyline_id: str) -> AliasTable:
        """The alias table a storyline reads items with (the generic groups and its own): to show
        a reason's alias token as the item writes it ("Moscow" for russia)."""
        story = self._storylines.get(storyline_id)
        return story.aliases if story is not None else self._reader.default_aliases

    # ------------------------------------------------------------------ storylines

    def add_storyline(self, spec: StorylineSpec) -> None:
        """Start tracking. Seeds not yet observed are added to the corpus statistics."""
        for seed in spec.seeds:
            if not self._corpus.has_seen(seed.id):
                self._observe_stats(seed)
        reader = self._reader
        story = new_storyline(spec, reader.default_aliases, reader.analyze, reader.tokens)
        reader.learn(story.spellings, +1)
        if spec.id in self._storylines:
            self.remove_storyline(spec.id)
        self._slots.place(story)
        self._storylines[spec.id] = story
        if story.own_firsts:
            self._own_aliased[spec.id] = story
        reader.forget_mentions()  # made before this storyline's units were known
        tokens = lambda text: reader.tokens(text, reader.default_aliases)  # noqa: E731 (items' reading)
        self._evidence.declare(story.slot, spec.title, spec.keywords, spec.aliases, tokens)
        self._refresh_story(story)
        self._rebuild_background(story)

    def remove_storyline(self, storyline_id: str) -> None:
        story = self._storylines.pop(storyline_id)
        self._own_aliased.pop(storyline_id, None)
        self._marked.pop(storyline_id, None)
        self._slots.free(story)
        self._evidence.remove(story.slot)
        self._reader.learn(story.spellings, -1)

    def _refresh_story(self, story: Storyline) -> None:
        """Re-weight every member with the current IDF and recompute the profile."""
        refresh(story, self._corpus.vector, self.config)
        self._slots.index.put(story.slot, story.centroid)

    def _set_centroid(self, story: Storyline) -> None:
        story.centroid = profile(story, story.total, self.config)
        self._slots.index.put(story.slot, story.centroid)

    def _rebuild_background(self, story: Storyline) -> None:
        """Score the recent window (minus seeds and follow-ups) against the current profile.

        Done when a storyline starts, so it has a background at once, and when adaptation
        has moved its profile, so the background is measured on the same scale as new scores.
        Vectors of recent items are kept, so this is dot products over stacked arrays (Stacked).
        """
        cfg = self.config
        story.background_centroid = story.centroid
        scores, short = self._recent.scores(story, self._read_as, cfg.score_mode)
        split = short & cfg.bg_split_short
        self._slots.backgrounds.reset(2 * story.slot, scores[~split])
        self._slots.backgrounds.reset(2 * story.slot + 1, scores[split])
        if len(story.followups) > 2 * cfg.bg_init_docs:
            story.followups &= {r.id for r in self._recent.docs}

    # ------------------------------------------------------------------ deciding

    def decide(self, doc: Doc, explain: Explain | None = None) -> Decisions:
        """One decision per live storyline (not those this doc seeds, nor those it predates or
        that have expired), in slot order. Pure. ``explain`` overrides ``config.explain`` (a
        one-off question "why" wants every decision's reasons)."""
        table = self._slots
        if not self._storylines:
            return Decisions.none(doc.id, table.epoch)
        cfg = self.config
        analysis = self._reader.analysis(doc)
        silence = table.silence(doc)
        live = table.live(doc, silence)
        raw, short, readings = self._raw_scores(doc, analysis, live)
        slots = np.flatnonzero(live)
        raw = raw[slots]
        score = raw
        if cfg.recency_penalty > 0.0:
            score = raw - cfg.recency_penalty * np.log1p(silence[slots] / cfg.recency_scale)
        rows = 2 * slots + short[slots]
        knob = table.knob[slots]
        margin, threshold = table.backgrounds.judge(rows, score, knob)
        ids = table.ids if len(slots) == table.n else [table.ids[s] for s in slots.tolist()]
        decisions = Decisions(doc.id, ids, rows, margin >= knob, score, threshold, raw, margin, table.epoch)
        judge = Judge(self._evidence, self._reader.mentions(doc, analysis), cfg.top_terms)
        judge.weigh_evidence(decisions, doc, slots, cfg.evidence_threshold)
        if self._marked:
            vector_for = lambda story: (readings[story.slot][1] if story.slot in readings  # noqa: E731
                                        else self._reader.vector(doc, analysis))
            judge.apply_marks(decisions, slots, doc, self._marked.values(), vector_for, cfg.mark_near)
        every = (explain or cfg.explain) == "all"
        explained = range(len(slots)) if every else \
            sorted({*np.flatnonzero(decisions.followup).tolist(), *decisions.like_marked})
        for k in explained:
            owner = table.by_slot[int(slots[k])]
            assert owner is not None
            own, own_vector = readings.get(owner.slot) or (analysis, self._reader.vector(doc, analysis))
            judge.explain(decisions, k, owner, doc, own, own_vector, every)
        return decisions

    def _raw_scores(self, doc: Doc, analysis: Analysis, live: npt.NDArray[np.bool_]
                    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], dict[int, Reading]]:
        """By slot: the item's score before normalisation, whether it counts as headline-only,
        and (for storylines that read it otherwise) its own reading."""
        cfg = self.config
        raw = self._slots.central_scores(self._reader.unit(doc, analysis))
        short = np.full(self._slots.n, analysis.short and cfg.bg_split_short)
        readings: dict[int, Reading] = {}
        apart = self._storylines if cfg.score_mode != "centroid" else self._own_aliased
        starts = rule_starts(analysis.starts) if apart else frozenset()
        for story in apart.values():  # scored otherwise than by the profile matrix
            if live[story.slot] and (cfg.score_mode != "centroid" or reads_differently(story, starts)):
                vector = self._reader.vector(doc, analysis)
                own, own_vector = self._own_reading(story, doc, analysis, vector, starts)
                central = raw[story.slot] if own_vector is vector else sparse_dot(own_vector, story.centroid)
                raw[story.slot] = similarity(story, own_vector, central, cfg.score_mode)
                short[story.slot] = own.short and cfg.bg_split_short
                readings[story.slot] = own, own_vector
        return raw, short, readings

    def not_deciding(self, doc: Doc) -> dict[str, Idle]:
        """The storylines that make no decision on ``doc`` (``decide`` leaves them out), and why."""
        return self._slots.idle(doc)

    def _own_reading(self, story: Storyline, doc: Doc, analysis: Analysis, vector: dict[str, float],
                     starts: AbstractSet[str]) -> Reading:
        """The document's analysis and vector as ``story`` reads it: the generic ones unless the
        storyline's own aliases apply to it (``starts``: the analysis' rule starts, ``rule_starts``)."""
        return self._read_as(story, doc) if reads_differently(story, starts) else (analysis, vector)

    def _read_as(self, story: Storyline, doc: Doc) -> Reading:
        own = self._reader.analyze(doc, story.aliases)
        return own, self._corpus.vector(own)

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
            mark = None if followup is None else MarkedItem(followup, *self._read_as(story, doc))
            record_mark(story, doc, mark, self.config.mark_weight)
            if followup:
                self._slots.raise_activity(story.slot, doc.published)
        self._marked = {s.spec.id: s for s in self._storylines.values() if s.marked}
        self._set_centroid(story)
        self._rebuild_background(story)

    # ------------------------------------------------------------------ learning

    def observe(self, doc: Doc, decisions: Decisions | None = None) -> None:
        """Learn from a document after deciding on it (``decisions``: what ``decide`` said of it):
        corpus statistics, background scores, and (if enabled) adaptation of storyline profiles
        to confident follow-ups."""
        if self._corpus.has_seen(doc.id):
            return
        analysis = self._reader.analysis(doc)
        # The vector under the IDF the decisions used (before this document is counted).
        unit = self._reader.unit(doc, analysis)
        self._observe_stats(doc)
        self._recent.add(Recent.of(doc, analysis, unit))
        if decisions is not None and len(decisions):
            self._slots.add_background(decisions)
            for d in decisions.followups:
                self._learn_followup(doc, d, analysis)
        self._since_refresh += 1
        if self._corpus.refresh_due(self._since_refresh):
            for story in self._storylines.values():
                self._refresh_story(story)
            self._since_refresh = 0

    def _learn_followup(self, doc: Doc, d: Decision, analysis: Analysis) -> None:
        cfg = self.config
        story = self._storylines.get(d.storyline_id)
        if story is None or doc.id in story.marked:
            return  # gone, or the reader's mark holds: not adopted (a "yes" is in the profile already)
        story.followups.add(doc.id)
        if d.score - d.threshold >= cfg.activity_margin:
            self._slots.raise_activity(story.slot, doc.published)
        analysis, vector = self._own_reading(story, doc, analysis, self._reader.vector(doc, analysis),
                                             rule_starts(analysis.starts))
        if d.reasons is not None:
            story.known_names.update(analysis.names)
        if cfg.adapt and d.score >= d.threshold + cfg.adapt_margin:
            duplicate = d.reasons is not None and d.reasons.closest_similarity >= cfg.adapt_duplicate
            if not duplicate and adopt(story, doc, analysis, vector, d, cfg):
                self._set_centroid(story)
                if drifted(story, cfg):
                    self._rebuild_background(story)

    def process(self, doc: Doc) -> Decisions:
        """decide() then observe(): the call the product makes per arriving item."""
        decisions = self.decide(doc)
        self.observe(doc, decisions)
        return decisions

    def unit(self, doc: Doc) -> Unit:
        """The document's TF-IDF unit vector (words and word pairs, title counted more) as scoring
        sees it; free right after process(doc) when storylines are tracked (decide made it)."""
        return self._reader.unit(doc, self._reader.analysis(doc))

    def count_names(self, doc: Doc) -> None:
        """Count an earlier item in its feed's name shares only (evidence.py), not in the word
        statistics: a rebuilt tracker reads a slow feed's earlier items so."""
        self._evidence.observe(self._reader.mentions(doc, self._reader.analysis(doc)), doc.source)

    def _observe_stats(self, doc: Doc) -> Analysis:
        self._corpus.see(doc.id)
        analysis = self._reader.analysis(doc)
        self._corpus.count(analysis)
        self._evidence.observe(self._reader.mentions(doc, analysis), doc.source)
        return analysis
