"""Sparse vectors and storyline profiles held as dense blocks: one product scores an item against all."""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar
import numpy as np
import numpy.typing as npt

from worker.tracking.analysis import Analysis, hash_features, joined_features, split_features, weight_array
from worker.tracking.buckets import LOOKUP_BITS, LOOKUP_MASK, bucket_features
from worker.tracking.decisions import Doc


_T = TypeVar("_T", bound=np.generic)
@dataclass(slots=True)
class Member:
    id: str
    published: float
    weight: float
    analysis: Analysis
    vector: dict[str, float] = field(default_factory=dict)
    """Unit TF-IDF vector under the IDF of the last refresh."""
    is_seed: bool = True


class Unit:
    """A document's unit TF-IDF vector as its analysis' features (in order) and their weights,
    with their document-frequency buckets when the corpus made it (``ProfileMatrix.dots`` looks
    features up by them); the dictionary, which only reasons and adaptation need, made when
    first asked for."""

    __slots__ = ("features", "values", "buckets", "_dict")

    def __init__(self, features: Sequence[str], values: npt.NDArray[np.float64],
                 buckets: npt.NDArray[np.uint32] | None = None) -> None:
        self.features = features
        self.values = values
        self.buckets = buckets
        self._dict: dict[str, float] | None = None

    def as_dict(self) -> dict[str, float]:
        if not self.features:
            return {}  # a new one each time: the empty unit is shared
        if self._dict is None:
            self._dict = dict(zip(self.features, self.values.tolist()))
        return self._dict


NO_UNIT = Unit((), np.zeros(0))


@dataclass(frozen=True, slots=True)
class Recent:
    """An observed document kept for (re)building backgrounds: its unit vector under the IDF of
    the moment it arrived (a rebuild is then dot products, not a re-analysis of a thousand
    documents), as its features and an array of weights: as dictionaries, a thousand took ~80 MB."""

    doc: Doc
    """Without its prepared analysis: the text, for a storyline with aliases of its own."""
    short: bool
    starts: str
    weights: npt.NDArray[np.float64]
    features: str
    """The vector's features, a line each."""
    _hashes: npt.NDArray[np.int64] | None = field(default=None, compare=False)

    @staticmethod
    def of(doc: Doc, analysis: Analysis, unit: Unit) -> Recent:
        # The vector's features are the analysis' in the same order, or none (a zero vector).
        kept = len(unit.values) > 0
        return Recent(replace(doc, prepared=None), analysis.short, analysis.starts, unit.values,
                      joined_features(analysis.weights) if kept else "")

    @property
    def hashes(self) -> npt.NDArray[np.int64]:
        """The features' hashes (``hash_features``), made when a background rebuild first stacks
        the document: most documents leave the window without one, and they are this process's
        own, so never saved."""
        if self._hashes is None:
            names = split_features(self.features)
            object.__setattr__(self, "_hashes", hash_features(names, len(names)))
        assert self._hashes is not None
        return self._hashes

    def __getstate__(self) -> tuple[Doc, bool, str, npt.NDArray[np.float64], str]:
        return self.doc, self.short, self.starts, self.weights, self.features

    def __setstate__(self, state: tuple[Doc, bool, str, npt.NDArray[np.float64], str]) -> None:
        doc, short, starts, weights, features = state
        if (features.count("\n") + 1 if features else 0) != len(weights):
            raise pickle.UnpicklingError("a recent document's features and weights differ in number")
        for name, value in (("doc", doc), ("short", short), ("starts", starts), ("weights", weights),
                            ("features", features), ("_hashes", None)):
            object.__setattr__(self, name, value)

    @property
    def id(self) -> str:
        return self.doc.id


class Stacked:
    """Many recent documents' vectors in one pair of arrays: dot products with a profile are then
    a few vector operations (a background rebuild scores a thousand documents)."""

    LOOKUP_BITS = 20

    def __init__(self, docs: Sequence[Recent], lookup: npt.NDArray[np.int16]) -> None:
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
        keys = hash_features(profile, len(profile))
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

    def __init__(self, width: int, bucket_key: bytes) -> None:
        self.width = width
        self.bucket_key = bucket_key
        self.matrix = np.zeros((0, width))
        self.row_of: dict[str, int] = {}
        self.feature_of: list[str] = []
        self.lookup_of: list[int] = []
        """Per row, its feature's bucket cut to LOOKUP_BITS (``buckets.LOOKUP_BITS``)."""
        self.users: list[int] = []
        """Per row, how many columns use it."""
        self.free: list[int] = []
        self.columns: dict[int, list[int]] = {}
        """Per column in use, the rows it uses."""
        self.rows_at = np.zeros(1 << LOOKUP_BITS, np.uint16)
        """By bucket cut to LOOKUP_BITS, how many rows in use have one there (512 KB): an item's
        features are looked up by name only where a row has their place; a lookup of every
        feature was a tenth of the writer's time."""

    def put(self, column: int, profile: dict[str, float]) -> None:
        self.drop(column)
        lookups = (bucket_features(profile, self.bucket_key) & LOOKUP_MASK).tolist()
        rows = [self._use_row(f, at) for f, at in zip(profile, lookups)]
        self.matrix[rows, column] = weight_array(profile)
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
                self.rows_at[self.lookup_of[row]] -= 1
                self.free.append(row)

    def _use_row(self, feature: str, lookup: int) -> int:
        row = self.row_of.get(feature)
        if row is None:
            row = self.free.pop() if self.free else self._new_row()
            self.row_of[feature] = row
            self.feature_of[row] = feature
            self.lookup_of[row] = lookup
            self.rows_at[lookup] += 1
        self.users[row] += 1
        return row

    def _new_row(self) -> int:
        row = len(self.feature_of)
        if row == len(self.matrix):
            self.matrix = grown(self.matrix, max(64, 2 * row))
        self.feature_of.append("")
        self.lookup_of.append(0)
        self.users.append(0)
        return row

    def dots(self, features: Sequence[str], weights: npt.NDArray[np.float64],
             buckets: npt.NDArray[np.uint32] | None = None) -> npt.NDArray[np.float64]:
        """The vector's dot product with each column; with the features' ``buckets``, only those
        that may be a row's are looked up by name."""
        get = self.row_of.get
        if buckets is None or len(buckets) != len(features):
            at = np.array([get(f, -1) for f in features], np.intp)
            used = at >= 0
            return weights[used] @ self.matrix[at[used]]
        maybe = np.flatnonzero(self.rows_at[buckets & LOOKUP_MASK]).tolist()
        found = [(k, row) for k in maybe if (row := get(features[k], -1)) >= 0]
        return weights[[k for k, _ in found]] @ self.matrix[[row for _, row in found]]


class ProfileMatrix:
    """The centroids of every storyline, by slot, as dense blocks of ``BLOCK`` storylines over
    the features they use: an item is scored against all of them with a row lookup per feature
    and one vector-matrix product per block (a third faster than a sparse dot per storyline at
    50 storylines). A block has at most ``profile_terms`` rows per storyline, so memory grows
    linearly: 150 terms × 64 storylines × 8 bytes, ~77 KB a storyline."""

    BLOCK = 64

    def __init__(self, bucket_key: bytes = b"") -> None:
        self._blocks: list[_ProfileBlock] = []
        self._bucket_key = bucket_key
        """The tracker's (``TrackerConfig.bucket_key``): an item's buckets were made with it."""

    def put(self, slot: int, profile: dict[str, float]) -> None:
        block, column = divmod(slot, self.BLOCK)
        while len(self._blocks) <= block:
            self._blocks.append(_ProfileBlock(self.BLOCK, self._bucket_key))
        self._blocks[block].put(column, profile)

    def drop(self, slot: int) -> None:
        block, column = divmod(slot, self.BLOCK)
        if block < len(self._blocks):
            self._blocks[block].drop(column)

    def dots(self, features: Sequence[str], weights: npt.NDArray[np.float64], n_slots: int,
             buckets: npt.NDArray[np.uint32] | None = None) -> npt.NDArray[np.float64]:
        """Dot product of a vector (``features`` and their ``weights``, and their ``buckets``
        if known) with every profile, by slot."""
        if not self._blocks:
            return np.zeros(n_slots)
        out = np.concatenate([block.dots(features, weights, buckets) for block in self._blocks])
        return out[:n_slots] if len(out) >= n_slots else grown(out, n_slots)


def grown(a: npt.NDArray[_T], rows: int) -> npt.NDArray[_T]:
    """``a`` with zero rows appended up to ``rows``."""
    return np.concatenate([a, np.zeros((rows - len(a), *a.shape[1:]), a.dtype)])


def sparse_dot(a: dict[str, float], b: dict[str, float]) -> float:
    """Sparse dot product. The shared features are found by a set intersection of the key
    views (in C), so Python only loops over the few features the vectors have in common."""
    return sum([a[f] * b[f] for f in a.keys() & b.keys()])


def add_into(total: dict[str, float], vector: dict[str, float], weight: float) -> None:
    get = total.get
    for f, w in vector.items():
        total[f] = get(f, 0.0) + weight * w


def heaviest_unit(vec: dict[str, float], limit: int) -> dict[str, float]:
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
