"""The near-duplicate index: MinHash bands, exact checks in the gray zone, the short-item rules."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar
import numpy as np
import numpy.typing as npt

from worker.models import Indexed
from worker.ingest.dedupe.fingerprints import (
    BANDS, BAND_SALT, PERMUTATIONS, RETITLED_BODY_OVERLAP, RETITLED_MIN_WORDS, RETITLED_TITLE_OVERLAP, SHINGLE,
    SHORT_BODY_OVERLAP, SHORT_WORDS, signature_of, words_of,
)


@dataclass(frozen=True, slots=True)
class Match:
    """The earlier item a new one copies: kind "near" (MinHash) or "short" (the short-item rule)."""

    item_id: int
    cluster_id: int
    kind: str
    similarity: float


def is_short(entry: Indexed) -> bool:
    return entry.words < SHORT_WORDS


def shingles(words: Sequence[str], n: int = SHINGLE) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)} if len(words) >= n else {tuple(words)}


T = TypeVar("T")


def jaccard(a: set[T], b: set[T]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


TITLE_ONLY_MIN_WORDS = 4  # a headline-only item needs a headline this long to match on it alone
GRAY_ZONE = 0.15  # estimates this close to the threshold are checked against the exact texts
MAX_CHECKS = 16  # exact checks per new item at most (the most similar candidates first)
_MERGE_EVERY = 2048  # live additions wait in a dict until there are this many
_BULK_CHUNK = 16384  # a bulk load merges its keys this many items at a time


class Texts(Protocol):
    """The exact texts behind a comparison: the new item's, and a stored item's on demand."""

    @property
    def own(self) -> tuple[str, str]: ...  # (title, match text) of the item being judged

    @property
    def of(self) -> Callable[[int], tuple[str, str] | None]: ...  # a stored item's, by id


_HIGH = np.uint64(0xFFFFFFFF_00000000)
_LOW = np.uint64(0xFFFFFFFF)
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it permutes uint64s, and stirs every bit into the high half


def _hashed(keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """32 bits of each key's hash, in the high half (the row goes in the low half)."""
    return keys * _MIX & _HIGH


def _in_band(band: int, key: int) -> int:
    """A band key with its band above it: a key matches in its own band only, as in the sorted array."""
    return key | band << 64


class _Bands:
    """Banded LSH over MinHash signatures: sorted numpy arrays plus a dict of recent additions.

    A signature's 64 uint32 minimums, read as 32 little-endian uint64, are its 32 bands of 2
    rows: a pair at Jaccard 0.4 shares a band with probability 0.996. Live additions wait in a
    small dict and are merged in by sorted insertion (linear); a bulk load skips the dict.

    The sorted array holds 32 bits of a band key's hash and the row in one uint64 (8 bytes a
    band, not 12 for a key and a row apart; a merge's copy is as much smaller). A row found by
    the hash is kept if its band's whole key is the one looked for. The hash, not the key's own
    high half: MinHash minimums are small numbers, so the high halves of many keys are alike
    (a 100k-item backfill's lookups took five times as long on them).
    """

    def __init__(self) -> None:
        self.sigs = np.zeros((1024, PERMUTATIONS), dtype=np.uint32)  # row → signature
        self._entries = np.zeros(0, dtype=np.uint64)  # sorted: 32 bits of a band key's hash, then its row
        self._recent: dict[int, int | list[int]] = {}  # _in_band(band, key) → row (a list on a rare collision)
        self._pending: list[int] = []  # rows whose keys are not in the sorted arrays yet

    @staticmethod
    def keys(signatures: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint64]:
        """Band keys of one signature (32) or of several (32 each, in order)."""
        bands = np.ascontiguousarray(signatures, dtype="<u4").view("<u8").reshape(-1, BANDS)
        return (bands ^ BAND_SALT).reshape(-1)

    def band_keys(self, rows: npt.NDArray[np.int64], band: int) -> npt.NDArray[np.uint64]:
        """The key of one band of each of these rows."""
        pair = np.ascontiguousarray(self.sigs[rows, 2 * band:2 * band + 2], dtype="<u4").view("<u8")
        keys: npt.NDArray[np.uint64] = pair.reshape(-1) ^ BAND_SALT[band]
        return keys

    def add(self, row: int, signature: npt.NDArray[np.uint32], *, bulk: bool = False) -> None:
        if row >= len(self.sigs):  # grow by half: doubling would leave up to half the array unused
            grown = np.zeros((max(row + 1, len(self.sigs) * 3 // 2), PERMUTATIONS), dtype=np.uint32)
            grown[: len(self.sigs)] = self.sigs
            self.sigs = grown
        self.sigs[row] = signature
        self._pending.append(row)
        if bulk:
            return
        recent = self._recent
        for band, key in enumerate(self.keys(signature).tolist()):
            band_key = _in_band(band, key)
            held = recent.setdefault(band_key, row)
            if held is not row:
                recent[band_key] = [held, row] if isinstance(held, int) else [*held, row]
        if len(self._pending) >= _MERGE_EVERY:
            self.merge()

    def merge(self) -> None:
        """Move the pending rows' keys into the sorted arrays."""
        if not self._pending:
            return
        rows = np.array(self._pending, dtype=np.uint64)
        entries = _hashed(self.keys(self.sigs[rows])) | np.repeat(rows, BANDS)
        entries.sort()
        self._entries = np.insert(self._entries, np.searchsorted(self._entries, entries), entries)
        self._recent.clear()
        self._pending.clear()

    def candidates(self, signature: npt.NDArray[np.uint32]) -> npt.NDArray[np.int64]:
        """Rows sharing at least one band with `signature`."""
        keys = self.keys(signature)
        found: list[int] = []
        for band, key in enumerate(keys.tolist()):
            held = self._recent.get(_in_band(band, key))
            if held is not None:
                found.extend(held) if isinstance(held, list) else found.append(held)
        hits = [np.array(found, dtype=np.int64)]
        if len(self._entries):
            hashed = _hashed(keys)
            start = np.searchsorted(self._entries, hashed)
            end = np.searchsorted(self._entries, hashed | _LOW, side="right")
            for band, (first, last) in enumerate(zip(start.tolist(), end.tolist())):
                if last > first:  # usually not: a new story shares no band
                    rows = (self._entries[first:last] & _LOW).astype(np.int64)
                    hits.append(rows[self.band_keys(rows, band) == keys[band]])
        return np.unique(np.concatenate(hits))

    def estimates(self, rows: npt.NDArray[np.int64], signature: npt.NDArray[np.uint32]) -> npt.NDArray[np.float64]:
        return np.asarray((self.sigs[rows] == signature).mean(axis=1), dtype=np.float64)


class _Rows:
    """What the index knows of each item, one numpy array a field (compact, vectorized filters)."""

    def __init__(self) -> None:
        self.n = 0
        self.item = np.zeros(1024, dtype=np.int64)
        self.feed = np.zeros(1024, dtype=np.int64)  # -1: no feed (a seed)
        self.cluster = np.zeros(1024, dtype=np.int64)
        self.published = np.zeros(1024, dtype=np.int64)  # POSIX seconds
        self.words = np.zeros(1024, dtype=np.int32)
        self.alive = np.zeros(1024, dtype=bool)
        self.titles: list[str] = []  # headline keys (short items only; "" otherwise)

    def append(self, entry: Indexed) -> int:
        row = self.n
        if row == len(self.item):
            for name in ("item", "feed", "cluster", "published", "words", "alive"):
                old = getattr(self, name)
                grown = np.zeros(len(old) * 3 // 2, dtype=old.dtype)
                grown[: len(old)] = old
                setattr(self, name, grown)
        self.item[row], self.cluster[row] = entry.item_id, entry.cluster_id
        self.feed[row] = -1 if entry.feed_id is None else entry.feed_id
        self.published[row] = int(entry.published.timestamp())
        self.words[row], self.alive[row] = entry.words, True
        self.titles.append(entry.title_key if is_short(entry) else "")
        self.n += 1
        return row

    def entry(self, row: int, signature: bytes) -> Indexed:
        feed = int(self.feed[row])
        return Indexed(int(self.item[row]), None if feed == -1 else feed, int(self.cluster[row]),
                       dt.datetime.fromtimestamp(int(self.published[row]), dt.timezone.utc), signature,
                       self.titles[row], int(self.words[row]))


class Index:
    """The recent items (a window of publication times), searchable for copies of a new item."""

    def __init__(self, window: dt.timedelta, threshold: float) -> None:
        self.window = window
        self.threshold = threshold
        self._clear()

    def _clear(self) -> None:
        self._ids: dict[int, int] = {}  # item id → its live row
        self._rows = _Rows()
        self._bands = _Bands()  # items with a text, by their signature's bands
        self._titles: dict[str, list[int]] = defaultdict(list)  # short items by headline

    def __len__(self) -> int:
        return len(self._ids)

    # ── adding and forgetting ─

    def extend(self, entries: Iterable[Indexed]) -> None:
        """Add many items at once (loading the window): their keys are sorted in chunks, which
        bounds the memory a merge needs beside the arrays it merges into. Nothing to add merges
        nothing: the window extends the index before every batch, usually with no item, and a
        merge copies the whole sorted array."""
        added = 0
        for added, entry in enumerate(entries, 1):
            self.add(entry, bulk=True)
            if added % _BULK_CHUNK == 0:
                self._bands.merge()
        if added:
            self._bands.merge()

    def add(self, entry: Indexed, *, bulk: bool = False) -> None:
        if entry.item_id in self._ids:
            return
        row = self._rows.append(entry)
        self._ids[entry.item_id] = row
        if entry.words:
            self._bands.add(row, signature_of(entry.signature), bulk=bulk)
        if is_short(entry) and entry.title_key:
            self._titles[entry.title_key].append(row)

    def replace(self, entry: Indexed) -> None:
        """Swap an item's entry for a new one (its fingerprint was recomputed)."""
        row = self._ids.pop(entry.item_id, None)
        if row is not None:
            self._rows.alive[row] = False
        self.add(entry)

    def forget_before(self, when: dt.datetime) -> int:
        """Drop items published before `when`; compacts once half the rows are gone."""
        rows = self._rows
        old = rows.alive[: rows.n] & (rows.published[: rows.n] < int(when.timestamp()))
        for row in np.flatnonzero(old).tolist():
            self._ids.pop(int(rows.item[row]), None)
        rows.alive[: rows.n] &= ~old
        if len(self._ids) < rows.n // 2:
            alive = [self._entry(row) for row in sorted(self._ids.values())]
            self._clear()
            self.extend(alive)
        return int(old.sum())

    def _entry(self, row: int) -> Indexed:
        """A row as added, its signature taken back from the bands."""
        words = int(self._rows.words[row])
        return self._rows.entry(row, self._bands.sigs[row].tobytes() if words else b"")

    # ── searching ─

    def find(self, item: Indexed, texts: Texts) -> Match | None:
        """The indexed item that `item` copies (another source, within the window), if any."""
        found = self.find_all(item, texts)
        return found[0] if found else None

    def find_all(self, item: Indexed, texts: Texts) -> list[Match]:
        """The indexed items that `item` copies, one per cluster, the most similar first. More
        than one when the item is the missing link between clusters: two copies of an article
        that differ more from each other than each from it, stored apart before it came."""
        signature = signature_of(item.signature)
        rows = self._bands.candidates(signature) if item.words else np.zeros(0, dtype=np.int64)
        if is_short(item) and item.title_key in self._titles:
            rows = np.union1d(rows, np.array(self._titles[item.title_key], dtype=np.int64))
        rows = self._eligible(rows, item)
        if not len(rows):
            return []
        estimates = self._bands.estimates(rows, signature)
        matched: dict[int, Match] = {}  # cluster → the best match in it
        checks = 0
        for n in np.lexsort((rows, -estimates)).tolist():  # most similar first, then oldest
            estimate, row = float(estimates[n]), int(rows[n])
            if int(self._rows.cluster[row]) in matched:
                continue
            if not is_short(item) and self._rows.words[row] >= SHORT_WORDS:
                if estimate >= self.threshold + GRAY_ZONE:
                    matched[int(self._rows.cluster[row])] = self._match(row, "near", estimate)
                    continue
                if estimate < self.threshold - GRAY_ZONE:
                    break  # ranked: the rest are less similar still
            if checks == MAX_CHECKS:
                break
            checks += 1
            found = self._check(item, self._entry(row), texts)
            if found is not None:
                matched[int(self._rows.cluster[row])] = self._match(row, *found)
        return list(matched.values())

    def recluster(self, joined: dict[int, int]) -> None:
        """Clusters joined: every row of a cluster in `joined` is in the cluster it maps to."""
        rows = self._rows
        for old, new in joined.items():
            rows.cluster[: rows.n][rows.cluster[: rows.n] == old] = new

    def _eligible(self, rows: npt.NDArray[np.int64], item: Indexed) -> npt.NDArray[np.int64]:
        """Alive, not the item itself, from another source, within the window."""
        r = self._rows
        feed = -1 if item.feed_id is None else item.feed_id
        keep = (
            r.alive[rows]
            & (r.item[rows] != item.item_id)
            & ((r.feed[rows] == -1) | (r.feed[rows] != feed))
            & (np.abs(r.published[rows] - int(item.published.timestamp())) <= int(self.window.total_seconds()))
        )
        return np.asarray(rows[keep], dtype=np.int64)

    def _check(self, item: Indexed, other: Indexed, texts: Texts) -> tuple[str, float] | None:
        """Decide a close call on the exact texts: (kind, similarity) when it is a copy."""
        stored = texts.of(other.item_id)
        if stored is None:
            return None
        own_words, other_words = words_of(texts.own[1]), words_of(stored[1])
        if is_short(item) or is_short(other):
            if not short_copy(other, item, stored, texts.own):
                return None
            return "short", jaccard(set(other_words), set(own_words))
        score = jaccard(shingles(own_words), shingles(other_words))
        return ("near", score) if score >= self.threshold else None

    def _match(self, row: int, kind: str, score: float) -> Match:
        return Match(int(self._rows.item[row]), int(self._rows.cluster[row]), kind, round(score, 4))


def short_copy(a: Indexed, b: Indexed, a_texts: tuple[str, str], b_texts: tuple[str, str]) -> bool:
    """The short-item rule (exact texts): the same headline with compatible text, or a similar
    headline over a largely identical text."""
    a_body, b_body = set(words_of(a_texts[1])), set(words_of(b_texts[1]))
    if a.title_key == b.title_key:
        if not a_body and not b_body:
            return len(a.title_key.split()) >= TITLE_ONLY_MIN_WORDS
        return bool(a_body and b_body) and jaccard(a_body, b_body) >= SHORT_BODY_OVERLAP
    if min(len(a_body), len(b_body)) < RETITLED_MIN_WORDS:
        return False
    titles = jaccard(set(words_of(a_texts[0])), set(words_of(b_texts[0])))
    return titles >= RETITLED_TITLE_OVERLAP and jaccard(a_body, b_body) >= RETITLED_BODY_OVERLAP
