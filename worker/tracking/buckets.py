"""Document-frequency buckets: each feature (a word or word pair) hashed, keyed by the store's
secret, to one of DF_BUCKETS counters; and filters of a few features by their buckets."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache
import numpy as np
import numpy.typing as npt


DF_BUCKETS = 1 << 22
"""Document frequencies are counted per hash bucket, in one array (16 MB), so that counting an
item and weighting its features are a few vector operations instead of a dictionary operation
per feature. A window's distinct words and word pairs (a million or two) mostly get a bucket
each; one shared with another feature only raises a rare feature's count by one or two."""


BUCKET_HASH = "multiply-shift, fmix64"
"""How buckets are computed: part of an analysis' recipe (one made otherwise is made again)."""
LONG_FEATURE = 64
"""Bytes: a longer feature (a rare run of digits or letters) gets its bucket by BLAKE2b instead."""
_BUCKET_SHIFT = np.uint64(64 - 22)  # a bucket is the top 22 bits of a 64-bit sum (DF_BUCKETS)
_SHIFT_33, _FMIX_1, _FMIX_2 = np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
assert DF_BUCKETS == 1 << 22


@lru_cache(maxsize=4)
def _multipliers(key: bytes) -> npt.NDArray[np.uint64]:
    """The random 64-bit numbers, made from ``key``, that weight a feature's bytes by position
    (then its length, then a constant): LONG_FEATURE + 2 of them."""
    count = LONG_FEATURE + 2
    stream = b"".join(hashlib.blake2b(n.to_bytes(4, "little"), key=key, person=b"df-buckets").digest()
                      for n in range(-(-count * 8 // 64)))
    return np.frombuffer(stream, "<u8")[:count].copy()


@lru_cache(maxsize=4)
def _long_hasher(key: bytes) -> hashlib.blake2b:
    return hashlib.blake2b(key=key, digest_size=4, person=b"df-long")


def bucket_features(features: Iterable[str], key: bytes) -> npt.NDArray[np.uint32]:
    """Each feature's document-frequency bucket, keyed by ``key`` (the store's secret): the same
    in every process of a store (the tracker saved with it counts by them), and no feed can
    compute a feature that falls in a storyline word's bucket: items full of such features would
    make that word look common and its follow-ups score lower (an unkeyed CRC-32 allowed it).

    The hash is vector multiply-shift (Thorup, "High Speed Hashing for Integers and Strings",
    3.3): a feature's bytes x_i, its length and 1 weighted by random 64-bit numbers a_i, summed
    modulo 2**64 (two different features give one sum under one key in 2**56 at most), mixed
    (``_mixed``), the top 22 bits kept; a feed never sees a bucket, so it cannot look for a
    key's collisions. All of a document's features in a few numpy operations: under half the
    time of one keyed BLAKE2b a feature."""
    names = list(features)
    if not names:
        return np.zeros(0, np.uint32)
    a = _multipliers(key)
    data = np.frombuffer("\n".join(names).encode(), np.uint8)
    ends = np.flatnonzero(data == 10)
    if len(ends) != len(names) - 1:
        raise ValueError("a feature holds a line break")
    starts = np.concatenate(([0], ends + 1))
    lengths = np.diff(np.append(starts, len(data) + 1)) - 1
    position = np.arange(len(data)) - np.repeat(starts, lengths + 1)[: len(data)]
    weighted = np.zeros(len(data) + 1, np.uint64)  # one more: the sum of a last, empty feature
    weighted[:-1] = a[np.minimum(position, LONG_FEATURE - 1)] * data
    weighted[ends] = 0
    sums = np.add.reduceat(weighted, starts) + a[LONG_FEATURE] * lengths.astype(np.uint64) + a[LONG_FEATURE + 1]
    buckets: npt.NDArray[np.uint32] = (_mixed(sums) >> _BUCKET_SHIFT).astype(np.uint32)
    for n in np.flatnonzero(lengths > LONG_FEATURE).tolist():
        buckets[n] = _long_bucket(names[n], key)
    return buckets


def _mixed(sums: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """MurmurHash3's 64-bit finaliser (a fixed bijection). Without it, buckets are linear in the
    bytes: under a key that gives "summit1050" and "summit1405" one bucket, every pair of
    features that differ as they do share one too ("summit1051", "summit1406", ...), and numbers
    or word-and-number features crowd a few stores' buckets (a review measured up to 17 times
    the expected collisions among 6,000 such features, for 1 key in 40)."""
    sums = sums ^ (sums >> _SHIFT_33)
    sums *= _FMIX_1
    sums ^= sums >> _SHIFT_33
    sums *= _FMIX_2
    sums ^= sums >> _SHIFT_33
    return sums


def _long_bucket(feature: str, key: bytes) -> int:
    one = _long_hasher(key).copy()
    one.update(feature.encode())
    return int.from_bytes(one.digest(), "little") & (DF_BUCKETS - 1)


LOOKUP_BITS = 18
LOOKUP_MASK = (1 << LOOKUP_BITS) - 1
"""A bucket cut to LOOKUP_BITS places it in a filter's table (``BucketFilter``,
``vectors._ProfileBlock``): one gather from a table of 2**18 places finds which of a document's
features may be among a few thousand (at half the cost of a binary search of each), with one
false candidate an item at 450 features, 14 at 9,600 (64 storylines' profiles)."""


class BucketFilter:
    """Some features as a table of their buckets (cut to LOOKUP_BITS, 256 KB): which of a
    document's features may be among them is one gather, and only those few are then looked up
    by name (another feature may share a place)."""

    __slots__ = ("table",)

    def __init__(self, buckets: npt.NDArray[np.uint32]) -> None:
        self.table = np.zeros(1 << LOOKUP_BITS, bool)
        self.table[buckets & LOOKUP_MASK] = True

    def candidates(self, buckets: npt.NDArray[np.uint32]) -> list[int]:
        """The positions in ``buckets`` of those that may be among the filter's."""
        found: list[int] = np.flatnonzero(self.table[buckets & LOOKUP_MASK]).tolist()
        return found
