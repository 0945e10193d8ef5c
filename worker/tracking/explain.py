"""What a decision says beyond its score: vetoes by excluded phrases, the reasons a person reads
about a follow-up, and the reader's marks deciding for items very like a marked one."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import replace
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from worker.tracking.analysis import Analysis
from worker.tracking.decisions import Decisions, Doc, Reasons
from worker.tracking.evidence import Evidence, Mentions, describe
from worker.tracking.profiles import Storyline
from worker.tracking.vectors import sparse_dot


def vetoed(story: Storyline, analysis: Analysis) -> str | None:
    """The storyline's excluded phrase the item contains, if any."""
    for phrase in story.exclude:
        key = " ".join(phrase) if len(phrase) <= 2 else None
        if key is not None and key in analysis.weights:
            return key
        if key is None and all(p in analysis.weights for p in phrase):
            return " ".join(phrase)
    return None


def reasons_for(story: Storyline, analysis: Analysis, vector: dict[str, float], veto: str | None, doc_id: str,
                top_terms: int) -> Reasons:
    """The terms that weighed most, the names it shares with the storyline, its closest member."""
    centroid = story.centroid
    # In the vector's order (the text's), not a set's: a tie is then shown the same way by every process.
    contrib = [(f, w * centroid[f]) for f, w in vector.items() if f in centroid]
    top = heapq.nlargest(top_terms, contrib, key=itemgetter(1))
    shown = tuple(surface for key, surface in analysis.names.items() if key in story.known_names)
    kw_hits = tuple(kw for kw, key in story.keyword_keys if key in analysis.weights)
    best_id, best = None, 0.0
    for m in story.members:
        sim = sparse_dot(vector, m.vector) if m.id != doc_id else 0.0  # a marked item is a member: not itself
        if sim > best:
            best_id, best = m.id, sim
    return Reasons(
        top_terms=tuple((f, round(c, 4)) for f, c in top),
        names=tuple(dict.fromkeys(kw_hits + shown)),
        closest_id=best_id,
        closest_similarity=round(best, 4),
        vetoed_by=veto,
    )


class Judge:
    """What decides on one document beyond its scores, and says why: names evidence, the
    reader's marks, excluded phrases, reasons. Its evidence (``mentions``) is shared by all."""

    def __init__(self, evidence: Evidence, mentions: Mentions | None, top_terms: int) -> None:
        self._evidence = evidence
        self._mentions = mentions
        self._top_terms = top_terms

    def weigh_evidence(self, decisions: Decisions, doc: Doc, slots: npt.NDArray[np.intp], threshold: float) -> None:
        """Names evidence decides YES on its own; a YES missing a party its title names is a NO."""
        decisions.evidence = self._evidence.scores(self._mentions, doc.source, slots)
        decisions.followup |= decisions.evidence >= threshold
        if decisions.followup.any():
            decisions.missing = self._evidence.missing_actors(self._mentions, doc.source, slots, decisions.followup)
            decisions.followup &= np.array([not m for m in decisions.missing], bool)

    def explain(self, decisions: Decisions, k: int, story: Storyline, doc: Doc, analysis: Analysis,
                vector: dict[str, float], every: bool) -> None:
        """Veto, reasons and novelty of decision ``k``. Reasons are what a person reads about a
        follow-up (or about a veto, which decides NO); other decisions need only score and
        threshold (explaining costs a dot product per profile member)."""
        followup = bool(decisions.followup[k])
        like = decisions.like_marked.get(k)
        own_mark = like is not None and like[0] == doc.id  # the reader's word on this very item
        veto = vetoed(story, analysis) if followup and story.exclude and not own_mark else None
        if veto is not None:
            followup = False
            decisions.followup[k] = False  # an exclude term decides NO
        if not (followup or veto is not None or like is not None or every):
            return
        reasons = replace(reasons_for(story, analysis, vector, veto, doc.id, self._top_terms), like_marked=like)
        # Which names counted, and why not, only where they did count or a person asks: a
        # follow-up by score alone has nothing to say of them (70 µs a decision).
        counted = self._evidence.counted(self._mentions, doc.source, story.slot) \
            if every or decisions.evidence[k] > 0 else ()
        reasons = replace(reasons, evidence_score=round(float(decisions.evidence[k]), 4), counted=counted,
                          missing=tuple(decisions.missing[k]),
                          evidence=describe(counted) if self._mentions is not None else (),
                          feed_items=self._evidence.feed_items(doc.source))
        known = story.known_names
        novelty = tuple(s for key, s in analysis.names.items() if key not in known) if followup else ()
        decisions.explained[k] = reasons, novelty

    def apply_marks(self, decisions: Decisions, slots: npt.NDArray[np.intp], doc: Doc, marked: Iterable[Storyline],
                    vector_for: Callable[[Storyline], dict[str, float]], near: float) -> None:
        """Where an item is very like one the reader marked, and more like it than like any item
        of the other kind, the mark decides: NO like a "no"; YES like a "yes", if the item names
        the storyline's units and every party its title names. ``vector_for``: the item's vector
        as a storyline reads it."""
        position = {int(slot): k for k, slot in enumerate(slots.tolist())}
        for story in marked:
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
            vector = vector_for(story)
            best: dict[bool, tuple[str, float]] = {True: ("", 0.0), False: ("", 0.0)}
            for item_id, m in story.marked.items():
                sim = sparse_dot(vector, m.vector)
                if sim > best[m.followup][1]:
                    best[m.followup] = item_id, sim
            profile = max((sparse_dot(vector, m.vector) for m in story.members), default=0.0)
            (yes_id, yes), (no_id, no) = best[True], best[False]
            if decisions.followup[k] and no >= near and no > max(profile, yes):
                decisions.followup[k] = False
                decisions.like_marked[k] = no_id, False, round(no, 4)
            elif not decisions.followup[k] and yes >= near and yes > no and decisions.evidence[k] > 0 \
                    and not self._evidence.missing_actors(self._mentions, doc.source, slots[k:k + 1],
                                                          np.ones(1, bool))[0]:
                decisions.followup[k] = True
                decisions.like_marked[k] = yes_id, True, round(yes, 4)
