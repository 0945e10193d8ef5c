"""What the tracker is given and what it answers: documents, storyline specs, decisions and their reasons."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, overload
import numpy as np
import numpy.typing as npt

from worker.tracking.evidence import Counted
from worker.models import TextAnalysis


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
        """The background rows (``Backgrounds``) the scores belong to."""
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
