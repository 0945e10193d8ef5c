"""The stream's word statistics: document frequencies over a sliding window of observed
documents, and the TF-IDF unit vectors they make of an analysis."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import numpy.typing as npt

from worker.tracking.analysis import Analysis, df_buckets, feature_names, pack_vector
from worker.tracking.buckets import DF_BUCKETS
from worker.tracking.settings import TrackerConfig
from worker.tracking.vectors import NO_UNIT, Unit


class Corpus:
    """Document frequencies by hash bucket, over the last ``df_window`` documents observed: the
    window keeps each document's buckets (4 bytes a feature; strings took ~300 MB)."""

    def __init__(self, config: TrackerConfig) -> None:
        self._config = config
        # A count never exceeds the window's length: 2 bytes a bucket when it fits (8 MiB, not 16).
        self._df: npt.NDArray[np.integer] = np.zeros(
            DF_BUCKETS, np.uint16 if config.df_window < (1 << 16) - 1 else np.int32)
        self._window: deque[npt.NDArray[np.uint32]] = deque()
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()

    @property
    def n_docs(self) -> int:
        return len(self._window)

    def has_seen(self, doc_id: str) -> bool:
        """Whether a document was observed (within the last ``df_window`` documents)."""
        return doc_id in self._seen

    def see(self, doc_id: str) -> None:
        self._seen.add(doc_id)
        self._seen_order.append(doc_id)
        if len(self._seen_order) > self._config.df_window:
            self._seen.discard(self._seen_order.popleft())

    def count(self, analysis: Analysis) -> None:
        """A bucket's count is the number of documents with a feature in it (two features of
        one document in one bucket count once: fancy indexing, ten times faster than add.at)."""
        buckets = df_buckets(analysis, self._config.bucket_key)
        self._df[buckets.astype(np.intp)] += 1
        self._window.append(buckets)
        if len(self._window) > self._config.df_window:
            self._df[self._window.popleft().astype(np.intp)] -= 1

    def refresh_due(self, since: int) -> bool:
        """Whether profiles weighted ``since`` documents ago need weighting again. IDF is a
        statistic of the window, so only once a fair part of it has changed: every
        ``refresh_every`` documents, or every ``refresh_fraction`` of the window when that is
        more (constant cost per item)."""
        cfg = self._config
        return since >= max(cfg.refresh_every, int(cfg.refresh_fraction * len(self._window)))

    def unit(self, analysis: Analysis) -> Unit:
        """Unit TF-IDF vector: the analysis' weights times the window's IDF (in numpy: this runs
        for every item and every profile refresh)."""
        buckets = df_buckets(analysis, self._config.bucket_key)
        if not len(buckets):
            return NO_UNIT
        n1 = len(self._window) + self._config.df_prior_docs + 1.0
        weights = analysis.weight_array
        if weights is None:  # kept: members' analyses are re-weighted at every refresh
            weights = analysis.weight_array = pack_vector(analysis.weights)[1]
        vec = weights * (np.log(n1 / (self._df[buckets] + 1.0)) + 1.0)
        norm = math.sqrt(float(vec @ vec))
        if norm == 0.0:
            return NO_UNIT
        return Unit(feature_names(analysis.weights), vec / norm, buckets)

    def vector(self, analysis: Analysis) -> dict[str, float]:
        return self.unit(analysis).as_dict()
