"""Dedupe: one copy of each story, however many sites repeat it, and edits kept as revisions.

Three layers, cheapest first:
1. exact copies: sha256 of the title and the *match text* (match_text below: clutter and
   the feed's own boilerplate left out), in the same feed or across feeds;
2. near-duplicates across sources: MinHash over word 3-shingles of the match text (64
   multiply-shift permutations), candidates from an LSH index (32 bands of 2 rows: a pair at
   Jaccard 0.4 becomes a candidate with probability 0.996), verified by estimated Jaccard.
   The title is left out of the shingles, so a changed headline does not hide a copy. Copies
   within one feed are never merged: a site may reuse text for different items;
3. short items (fewer than SHORT_WORDS words: a headline and a line or two, too few shingles
   for a MinHash estimate to be trusted) are judged on their exact texts by their own rule:
   the same normalized headline with compatible text (both empty, or sharing at least half
   their words), or a similar headline (60 % of its words in common) over a text sharing 70 %
   of its words. Words rather than 3-shingles, because one changed word in a 12-word text
   breaks a quarter of its shingles. The bounds come from real labelled news: different
   articles of one story do share headlines word for word (for example two articles on the
   same death, with 4 % of their 3-shingles in common), so a headline never merges texts on its
   own; and different wire summaries of one event share up to 82 % of their words, but under
   headlines that share at most 47 % of theirs.

Close calls are decided on exact texts: an estimate within GRAY_ZONE of the threshold is
checked by the exact Jaccard similarity of the two match texts (read from the store), so the
estimate's noise (±0.06 at 64 permutations) can neither merge two articles nor split a copy.

The index holds a window of recent items (by publication time) in numpy arrays: 64 uint32 per
signature and one sorted uint64 array of band keys, about 0.6 KB an item where Python dicts of
band keys would take about 2.5 KB. Signatures are stored in SQLite, so the index is rebuilt at
start without re-reading any text. Pure: the store is read and written by the pipeline.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import hashlib
import json
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import unicodedata

import numpy as np
import numpy.typing as npt

from worker.models import Fingerprint, Indexed, Item, Stored, index_source

PERMUTATIONS = 64
BANDS, ROWS = 32, 2
SHINGLE = 3
SHORT_WORDS = 50  # match texts with fewer words than this use the short-item rule
SHORT_BODY_OVERLAP = 0.5  # short texts under one headline: share of words in common
RETITLED_TITLE_OVERLAP = 0.6  # short copies under another headline: its words in common with ours …
RETITLED_BODY_OVERLAP = 0.7  # … and their texts' words in common
RETITLED_MIN_WORDS = 8  # … with texts at least this long

_rng = np.random.default_rng(20261123)  # fixed: signatures are stored and must stay comparable
_MULT = _rng.integers(1, 2**63, size=PERMUTATIONS, dtype=np.uint64) | np.uint64(1)  # odd multipliers
_ADD = _rng.integers(0, 2**63, size=PERMUTATIONS, dtype=np.uint64)
_SALT = _rng.integers(0, 2**63, size=BANDS, dtype=np.uint64)  # one per band: keys of bands differ
def _separators() -> dict[int, str]:
    """Punctuation and symbols (Latin to CJK, and full-width forms) become spaces between words."""
    ranges = (range(0x3100), range(0xFF00, 0xFFF0))
    return {c: " " for r in ranges for c in r if unicodedata.category(chr(c))[0] in "PS"}


_SEPARATORS = _separators()
_WORD_IDS: dict[str, int] = {}  # crc32 of words already seen (news vocabulary repeats: Zipf)
_WORD_IDS_MAX = 200_000


def words_of(text: str) -> list[str]:
    """Lower-cased words, punctuation and symbols dropped (str.translate: 4× a \\w+ regex)."""
    return text.lower().translate(_SEPARATORS).split()


def fingerprint(title: str, text: str, match: str) -> Fingerprint:
    """Hashes and signature of an item; `match` is its match text (match_text)."""
    words = words_of(match)
    head = " ".join(title.split()) + "\n"
    content = _sha(head + " ".join(match.split()))
    return Fingerprint(
        content_sha256=content,
        raw_sha256=content if match == text else _sha(head + " ".join(text.split())),
        signature=minhash(words),
        title_key=title_key(title),
        words=len(words),
    )


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_SOURCE_SUFFIX = re.compile(r"\s+[-|–—:]\s+\S+(?:\s+\S+){0,3}\s*$")  # " - Reuters", " | SCMP"


def title_key(title: str) -> str:
    """The headline as words, without a trailing " - Source" that syndicators append."""
    trimmed = _SOURCE_SUFFIX.sub("", title)
    if len(words_of(trimmed)) >= 6:
        title = trimmed
    return " ".join(words_of(title))


def _word_ids(words: Sequence[str]) -> npt.NDArray[np.uint64]:
    """crc32 of each word: stable across processes and restarts (Python's hash() is salted)."""
    ids = _WORD_IDS
    if len(ids) > _WORD_IDS_MAX:
        ids.clear()
    out = []
    for word in words:
        value = ids.get(word)
        if value is None:
            value = ids[word] = zlib.crc32(word.encode("utf-8"))
        out.append(value)
    return np.array(out, dtype=np.uint64)


def minhash(words: Sequence[str], shingle: int = SHINGLE) -> bytes:
    """64 × uint32 MinHash of the word n-shingles (3 by default; single words with 1)."""
    ids = _word_ids(words)
    if shingle == SHINGLE and len(ids) >= SHINGLE:
        shingles = (ids[:-2] * np.uint64(0x9E3779B1) + ids[1:-1]) * np.uint64(0x85EBCA77) + ids[2:]
    else:
        shingles = ids
    if len(shingles) == 0:
        return bytes(4 * PERMUTATIONS)
    shingles &= np.uint64(0xFFFFFFFF)  # repeated shingles are left in: they cannot change a minimum
    # multiply-shift hashing: the high 32 bits of a·x + b (mod 2^64) for each permutation
    hashed = (_MULT[:, None] * shingles[None, :] + _ADD[:, None]) >> np.uint64(32)
    return bytes(hashed.min(axis=1).astype("<u4").tobytes())


def _signature(raw: bytes) -> npt.NDArray[np.uint32]:
    return np.frombuffer(raw, dtype="<u4")


def similarity(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of two signatures: the share of equal minimums."""
    return float(np.mean(_signature(a) == _signature(b)))


# ── match text: clutter and a feed's boilerplate left out ──────────────────────────────────

@dataclass(frozen=True, slots=True)
class Clutter:
    """Lines that are page furniture, not article text: each pattern must match a whole line.

    The patterns are joined into one alternation: one regex call a line instead of one a pattern.
    """

    pattern: re.Pattern[str]

    @classmethod
    def compile(cls, patterns: Sequence[str]) -> Clutter:
        return cls(re.compile("|".join(f"(?:{p})" for p in patterns) or "(?!)", re.I))

    def matches(self, line: str) -> bool:
        return self.pattern.fullmatch(line) is not None


EDGE_LINES = (2, 3)  # the first 2 and last 3 lines of an item are where a site puts its furniture
BOILERPLATE_MIN_ITEMS = 3  # a line must open or close at least this many of a feed's items …
BOILERPLATE_SHARE = 0.3  # … and at least this share of them, so one repeated sentence is kept
_BOILERPLATE_KEEP = 50  # candidate lines remembered per feed (real boilerplate has the top counts)


@dataclass(frozen=True, slots=True)
class Boilerplate:
    """A feed's repeated header and footer lines, learned from its own items."""

    items: int = 0
    counts: tuple[tuple[str, int], ...] = ()

    @property
    def lines(self) -> frozenset[str]:
        needed = max(BOILERPLATE_MIN_ITEMS, BOILERPLATE_SHARE * self.items)
        return frozenset(line for line, n in self.counts if n >= needed)

    def learn(self, texts: Sequence[str]) -> Boilerplate:
        counts = Counter(dict(self.counts))
        for text in texts:
            counts.update(set(_edge_lines(text)))
        kept = tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:_BOILERPLATE_KEEP])
        return Boilerplate(self.items + len(texts), kept)

    def to_json(self) -> str:
        return json.dumps({"items": self.items, "counts": dict(self.counts)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | None) -> Boilerplate:
        data = json.loads(text or "{}")
        return cls(int(data.get("items", 0)), tuple((str(k), int(v)) for k, v in data.get("counts", {}).items()))


def _edge_lines(text: str) -> list[str]:
    lines = [line for line in text.split("\n") if line and len(line) <= 300]
    head, tail = EDGE_LINES
    return lines[:head] + lines[-tail:]


def match_text(text: str, clutter: Clutter, boilerplate: frozenset[str] = frozenset()) -> str:
    """The text that hashing and matching use: clutter and the feed's boilerplate left out."""
    kept = [line for line in text.split("\n") if line and line not in boilerplate and not clutter.matches(line)]
    return "\n".join(kept)


# ── the index ──────────────────────────────────────────────────────────────────────────────


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


class _Bands:
    """Banded LSH over MinHash signatures: sorted numpy arrays plus a dict of recent additions.

    A signature's 64 uint32 minimums, read as 32 little-endian uint64, are its 32 bands of 2
    rows: a pair at Jaccard 0.4 shares a band with probability 0.996. Live additions wait in a
    small dict and are merged in by sorted insertion (linear); a bulk load skips the dict.
    """

    def __init__(self) -> None:
        self.sigs = np.zeros((1024, PERMUTATIONS), dtype=np.uint32)  # row → signature
        self._keys = np.zeros(0, dtype=np.uint64)  # sorted band keys (salted per band) …
        self._key_rows = np.zeros(0, dtype=np.int32)  # … and the row of each
        self._recent: dict[int, int | list[int]] = {}  # band key → row (a list on a rare collision)
        self._pending: list[int] = []  # rows whose keys are not in the sorted arrays yet

    @staticmethod
    def keys(signatures: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint64]:
        """Band keys of one signature (32) or of several (32 each, in order)."""
        bands = np.ascontiguousarray(signatures, dtype="<u4").view("<u8").reshape(-1, BANDS)
        return (bands ^ _SALT).reshape(-1)

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
        for key in self.keys(signature).tolist():
            held = recent.setdefault(key, row)
            if held is not row:
                recent[key] = [held, row] if isinstance(held, int) else [*held, row]
        if len(self._pending) >= _MERGE_EVERY:
            self.merge()

    def merge(self) -> None:
        """Move the pending rows' keys into the sorted arrays."""
        if not self._pending:
            return
        rows = np.array(self._pending, dtype=np.int32)
        keys = self.keys(self.sigs[rows])
        order = np.argsort(keys, kind="stable")
        keys, rows = keys[order], np.repeat(rows, BANDS)[order]
        at = np.searchsorted(self._keys, keys)
        self._keys = np.insert(self._keys, at, keys)
        self._key_rows = np.insert(self._key_rows, at, rows)
        self._recent.clear()
        self._pending.clear()

    def candidates(self, signature: npt.NDArray[np.uint32]) -> npt.NDArray[np.int64]:
        """Rows sharing at least one band with `signature`."""
        keys = self.keys(signature)
        found: list[int] = []
        for key in keys.tolist():
            held = self._recent.get(key)
            if held is not None:
                found.extend(held) if isinstance(held, list) else found.append(held)
        hits = [np.array(found, dtype=np.int64)]
        if len(self._keys):
            start = np.searchsorted(self._keys, keys)
            end = np.searchsorted(self._keys, keys, side="right")
            for first, last in zip(start.tolist(), end.tolist()):  # usually empty: a new story shares no band
                if last > first:
                    hits.append(self._key_rows[first:last].astype(np.int64))
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
        bounds the memory a merge needs beside the arrays it merges into."""
        for n, entry in enumerate(entries, 1):
            self.add(entry, bulk=True)
            if n % _BULK_CHUNK == 0:
                self._bands.merge()
        self._bands.merge()

    def add(self, entry: Indexed, *, bulk: bool = False) -> None:
        if entry.item_id in self._ids:
            return
        row = self._rows.append(entry)
        self._ids[entry.item_id] = row
        if entry.words:
            self._bands.add(row, _signature(entry.signature), bulk=bulk)
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
        signature = _signature(item.signature)
        rows = self._bands.candidates(signature) if item.words else np.zeros(0, dtype=np.int64)
        if is_short(item) and item.title_key in self._titles:
            rows = np.union1d(rows, np.array(self._titles[item.title_key], dtype=np.int64))
        rows = self._eligible(rows, item)
        if not len(rows):
            return None
        estimates = self._bands.estimates(rows, signature)
        checks = 0
        for n in np.lexsort((rows, -estimates)).tolist():  # most similar first, then oldest
            estimate, row = float(estimates[n]), int(rows[n])
            if not is_short(item) and self._rows.words[row] >= SHORT_WORDS:
                if estimate >= self.threshold + GRAY_ZONE:
                    return self._match(row, "near", estimate)
                if estimate < self.threshold - GRAY_ZONE:
                    break  # ranked: the rest are less similar still
            if checks == MAX_CHECKS:
                break
            checks += 1
            found = self._check(item, self._entry(row), texts)
            if found is not None:
                return self._match(row, *found)
        return None

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
            if not _short_copy(other, item, stored, texts.own):
                return None
            return "short", jaccard(set(other_words), set(own_words))
        score = jaccard(shingles(own_words), shingles(other_words))
        return ("near", score) if score >= self.threshold else None

    def _match(self, row: int, kind: str, score: float) -> Match:
        return Match(int(self._rows.item[row]), int(self._rows.cluster[row]), kind, round(score, 4))


def _short_copy(a: Indexed, b: Indexed, a_texts: tuple[str, str], b_texts: tuple[str, str]) -> bool:
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


# ── judging a batch ────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Known:
    """What the store already holds that matters for a batch of items."""

    versions: dict[str, Stored]  # by identity: items seen before
    by_hash: dict[str, tuple[int, int]]  # content_sha256 → (item id, cluster id) of its first item
    tombstoned: frozenset[str]  # identities and content hashes of pruned items


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one item of a batch.

    kind: "new" (an original), "exact" / "near" / "short" (a copy of `match`, or of the batch's
    item `batch_copy_of`), "revision" (an edit of `stored`: `changes`, `diff`), "edit" (a trivial
    change of `stored`: refreshed silently), "unchanged", "repeat" (listed twice in the batch),
    "tombstoned" (pruned by retention: never ingested again).
    """

    item: Item
    kind: str
    match: Match | None = None
    batch_copy_of: int | None = None
    stored: Stored | None = None
    changes: tuple[str, ...] = ()
    diff: str = ""


def classify(
    items: Sequence[Item],
    known: Known,
    index: Index,
    clutter: Clutter,
    boilerplate: frozenset[str],
    stored_text: Callable[[int], tuple[str, str] | None],
) -> list[Verdict]:
    """Judge each item of a batch, in order, against the store and the index.

    A batch from several sources (backfill) is also searched for near copies inside itself: its
    items enter a batch index as they are judged (with provisional negative ids). A feed's own
    batch needs none, since copies within one feed are never folded."""
    verdicts: list[Verdict] = []
    identities: set[str] = set()
    batch_hashes: dict[str, int] = {}
    feeds = {item.feed_id for item in items}
    batch = Index(index.window, index.threshold) if len(feeds) > 1 or None in feeds else None

    def text_of(item_id: int) -> tuple[str, str] | None:
        if item_id >= 0:
            return stored_text(item_id)
        other = verdicts[-item_id - 1].item
        return other.title, match_text(other.text, clutter, boilerplate)

    for item in items:
        verdict = _already_known(item, known, identities, clutter, boilerplate)
        if verdict is None:
            texts = _Texts(item, clutter, boilerplate, text_of)
            verdict = _judge_new(item, known, index, texts, batch_hashes, len(verdicts))
            if batch is not None and item.fingerprint is not None:
                verdict = _within_batch(verdict, batch, texts, len(verdicts))
        verdicts.append(verdict)
    return verdicts


def _already_known(item: Item, known: Known, identities: set[str], clutter: Clutter,
                   boilerplate: frozenset[str]) -> Verdict | None:
    """The verdict on an item found without a search: a repeat within the batch (`identities`:
    those judged so far), a stored item (the same, or edited), a tombstone; else None."""
    if item.identity in identities:
        return Verdict(item, "repeat")
    identities.add(item.identity)
    stored = known.versions.get(item.identity)
    if stored is not None:
        return _judge_seen(item, stored, clutter, boilerplate)
    if item.identity in known.tombstoned or item.content_sha256 in known.tombstoned:
        return Verdict(item, "tombstoned")
    return None


def _within_batch(verdict: Verdict, batch: Index, texts: Texts, position: int) -> Verdict:
    """A new item may copy an earlier item of its batch; either way it joins the batch index."""
    item = verdict.item
    if verdict.kind == "new":
        found = batch.find(indexed(item, 0, 0), texts)
        if found is not None:
            verdict = Verdict(item, found.kind, match=found, batch_copy_of=-found.item_id - 1)
    batch.add(indexed(item, -position - 1, 0))
    return verdict


class _Texts:
    """The texts behind close calls; the new item's match text is only made if one is needed."""

    def __init__(self, item: Item, clutter: Clutter, boilerplate: frozenset[str],
                 of: Callable[[int], tuple[str, str] | None]) -> None:
        self._item, self._clutter, self._boilerplate, self.of = item, clutter, boilerplate, of

    @functools.cached_property
    def own(self) -> tuple[str, str]:
        return self._item.title, match_text(self._item.text, self._clutter, self._boilerplate)


def _judge_new(
    item: Item, known: Known, index: Index, texts: Texts, batch_hashes: dict[str, int], position: int
) -> Verdict:
    if item.content_sha256 in known.by_hash:
        item_id, cluster_id = known.by_hash[item.content_sha256]
        return Verdict(item, "exact", match=Match(item_id, cluster_id, "exact", 1.0))
    if item.content_sha256 in batch_hashes:
        return Verdict(item, "exact", batch_copy_of=batch_hashes[item.content_sha256])
    batch_hashes[item.content_sha256] = position
    found = index.find(indexed(item, 0, 0), texts) if item.fingerprint else None
    return Verdict(item, found.kind, match=found) if found else Verdict(item, "new")


def indexed(item: Item, item_id: int, cluster_id: int) -> Indexed:
    marks = item.fingerprint
    assert marks is not None
    return Indexed(item_id, index_source(item.feed_id, item.identity), cluster_id, item.published_at,
                   marks.signature, marks.title_key, marks.words)


def _judge_seen(item: Item, stored: Stored, clutter: Clutter, boilerplate: frozenset[str]) -> Verdict:
    """A re-seen item: unchanged, trivially changed, or a revision with what changed.

    Trivial (not a revision): whitespace, clutter or boilerplate lines, a tracking parameter
    (links are compared canonical) or the date alone.
    """
    if item.fingerprint and item.fingerprint.raw_sha256 == stored.raw_sha256:
        return Verdict(item, "unchanged", stored=stored)
    old_text, new_text = match_text(stored.text, clutter, boilerplate), match_text(item.text, clutter, boilerplate)
    changes = []
    if item.title.split() != stored.title.split():
        changes.append("title")
    if old_text.split() != new_text.split():
        changes.append("text")
    if (item.url or None) != (stored.url or None):
        changes.append("link")
    if not changes:
        return Verdict(item, "edit", stored=stored)
    if item.published_at != stored.published_at:
        changes.append("date")
    parts = []
    if "title" in changes:
        parts.append("title: " + word_diff(stored.title, item.title))
    if "text" in changes:
        parts.append("text: " + word_diff(old_text, new_text))
    if "link" in changes:
        parts.append(f"link: {stored.url} → {item.url}")
    return Verdict(item, "revision", stored=stored, changes=tuple(changes), diff="\n".join(parts))


# ── revisions ──────────────────────────────────────────────────────────────────────────────

DIFF_LIMIT = 2000  # characters of diff kept per revision


def word_diff(old: str, new: str, context: int = 3) -> str:
    """A compact word diff: unchanged runs shortened to their edges, [-removed-] {+added+}."""
    a, b = old.split(), new.split()
    parts: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            run = a[i1:i2]
            parts.append(" ".join(run) if len(run) <= 2 * context else " ".join(run[:context]) + " … " + " ".join(run[-context:]))
            continue
        if i2 > i1:
            parts.append("[-" + " ".join(a[i1:i2]) + "-]")
        if j2 > j1:
            parts.append("{+" + " ".join(b[j1:j2]) + "+}")
    diff = " ".join(parts)
    return diff if len(diff) <= DIFF_LIMIT else diff[: DIFF_LIMIT - 1] + "…"
