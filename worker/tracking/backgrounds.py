"""Per-storyline background scores: what unrelated items score, to normalise a storyline's scores."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from itertools import compress

import numpy as np
import numpy.typing as npt

from worker.tracking.analysis import Analysis
from worker.tracking.decisions import Doc
from worker.tracking.profiles import Storyline, reads_differently, rule_starts, similarity
from worker.tracking.settings import ScoreMode, TrackerConfig
from worker.tracking.vectors import Recent, Stacked, grown, sparse_dot


class Backgrounds:
    """The scores that non-follow-up items got against every storyline, in arrays with a row per
    (storyline slot, kind): kind 1 holds headline-only items when ``bg_split_short`` is on.

    A row is a ring of the last ``bg_window`` scores (bounded, so the cost is constant) with their
    sum and sum of squares ("zscore") or their quantile ("tail"); a prior carries a new storyline
    until it has seen enough background. One item's scores against all storylines are added in a few vector operations;
    a row's quantile is recomputed (a partition of the row) only where it can have changed: the
    window still filling, the score dropped equal to it, or the scores added and dropped on
    either side of it (for the 99th percentile, about 2 items in 100; none for the run of zero
    scores an unrelated stream gives a storyline whose quantile is zero).
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
            self.ring = grown(self.ring, rows)
            self.count, self.head = grown(self.count, rows), grown(self.head, rows)
            self.total, self.total_sq = grown(self.total, rows), grown(self.total_sq, rows)
            self.quantile = grown(self.quantile, rows)

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
            # The k-th smallest moves only where the score dropped was it, or the one added and
            # the one dropped fall on either side of it (a score equal to it never moves it)
            quantile = self.quantile[rows]
            moved = (scores != quantile) & ((dropped == quantile) | ((scores < quantile) != (dropped < quantile)))
            for row in rows[~full | moved].tolist():
                self._requantile(row)

    def _requantile(self, row: int) -> None:
        n = int(self.count[row])
        k = min(int(self.cfg.bg_quantile * n), n - 1)
        # a sort, not a partition: partitioning a row of many equal scores (zeros) took 75 µs, 15 times as long
        self.quantile[row] = np.sort(self.ring[row, :n])[k] if n else 0.0

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


class RecentWindow:
    """The last documents observed (``bg_init_docs``), to give a new storyline its background at
    once, and to measure it again after adaptation has moved its profile."""

    def __init__(self, size: int) -> None:
        self.docs: deque[Recent] = deque(maxlen=size)
        self._observed = 0
        """Documents observed so far: the window's version."""
        self._lookup: npt.NDArray[np.int16] | None = None
        """Scratch for Stacked.dots, made on first use."""
        self._stacked: tuple[int, Stacked] | None = None
        """The window stacked, and the version it was made at."""

    def add(self, recent: Recent) -> None:
        self.docs.append(recent)
        self._observed += 1

    def __getstate__(self) -> dict[str, object]:
        """Saved without the stacked window: its hashes are this process's own (``Recent``)."""
        return {**self.__dict__, "_stacked": None}

    def stacked(self) -> Stacked:
        """The window stacked, made again only once a document has joined it (several
        storylines rebuilt after one item share it)."""
        if self._stacked is None or self._stacked[0] != self._observed:
            if self._lookup is None:
                self._lookup = np.zeros(1 << Stacked.LOOKUP_BITS, np.int16)
            self._stacked = self._observed, Stacked(list(self.docs), self._lookup)
        return self._stacked[1]

    def scores(self, story: Storyline, read_as: Callable[[Storyline, Doc], tuple[Analysis, dict[str, float]]],
               mode: ScoreMode) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """The window's documents (minus the storyline's seeds and follow-ups) scored against its
        profile, and which are headline-only: dot products over the stacked vectors, except for
        the documents its own aliases read otherwise (``read_as``)."""
        skip = story.seed_ids | story.followups
        kept = np.fromiter((r.id not in skip for r in self.docs), bool, len(self.docs))
        docs = list(compress(self.docs, kept))
        stacked = self.stacked()
        scores = stacked.dots(story.centroid)[kept]
        if mode != "centroid":
            nearest = np.zeros(len(docs))  # a storyline of keywords alone has no member
            for m in story.members:
                nearest = np.maximum(nearest, stacked.dots(m.vector)[kept])
            scores = nearest if mode == "nearest" else 0.5 * (scores + nearest)
        short = np.fromiter((r.short for r in docs), bool, len(docs))
        for k, r in enumerate(docs if story.own_firsts else ()):
            if reads_differently(story, rule_starts(r.starts)):
                own, vector = read_as(story, r.doc)
                short[k] = own.short
                scores[k] = similarity(story, vector, sparse_dot(vector, story.centroid), mode)
        return scores, short
