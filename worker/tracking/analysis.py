"""An item's text analysed once (in the parsing processes): terms, names, sentences, document-frequency buckets."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import compress
import numpy as np
import numpy.typing as npt

from worker.models import UNTITLED, TextAnalysis
from worker.tracking.evidence import LEAD_TOKENS
from worker.tracking.aliases import AliasTable
from worker.tracking.stemming import fold
from worker.tracking.textproc import BREAK, is_title_case, language, name_spans, pairs, read, read_sentences, stop_words
from worker.tracking.buckets import BUCKET_HASH, bucket_features
from worker.tracking.settings import TrackerConfig


NAME_CHARS = 4000  # names are looked for in the lead: the first few paragraphs


@dataclass(slots=True)
class Analysis:
    """A document reduced to what scoring needs; computed once per document per alias table."""

    weights: Mapping[str, float]
    """Feature -> sublinear, title-weighted term weight (no IDF yet): a dict, or PackedWeights
    as the item carried it."""
    names: dict[str, str]
    """Name key ("pak myong ho") -> surface form as written ("Pak Myong-ho")."""
    short: bool = False
    """Headline-only (or nearly): scored against its own background distribution."""
    capitals: str = ""
    """Capitalised words as read, before spelling fixes (all that a spelling fix could change),
    space-separated."""
    starts: str = " "
    """Tokens at which an alias rule could start (see AliasTable.firsts_beyond), each with a
    space either side (read into a set once an item, ``profiles.rule_starts``)."""
    weight_array: npt.NDArray[np.float64] | None = None
    """``weights``' values as an array, when it came packed (saves rebuilding it)."""
    buckets: npt.NDArray[np.uint32] | None = None
    """The features' document-frequency buckets, in ``weights`` order (made on first use)."""
    title_terms: frozenset[str] | _Lines = frozenset()
    """The title's words and word pairs (where a name stands: evidence.py)."""
    lead_terms: frozenset[str] | _Lines = frozenset()
    """The words and word pairs of the text's lead (its first LEAD_TOKENS words)."""


def hash_features(features: Iterable[str], n: int) -> npt.NDArray[np.int64]:
    """Python's string hash of each feature: fast, and keyed by a secret of the process, so that
    no feed can forge a feature that matches another by its hash. It differs from one process to
    the next, so hashes are never saved: a saved tracker makes them again (vectors.Recent)."""
    return np.fromiter(map(hash, features), np.int64, n)


def weight_array(vector: Mapping[str, float]) -> npt.NDArray[np.float64]:
    if isinstance(vector, PackedWeights):
        return vector.array
    return np.fromiter(vector.values(), np.float64, len(vector))


def df_buckets(analysis: Analysis, key: bytes) -> npt.NDArray[np.uint32]:
    """The features' buckets under ``key`` (one tracker, one key: a shipped analysis was made
    with the same, its ``recipe`` says)."""
    if analysis.buckets is None:
        analysis.buckets = bucket_features(analysis.weights, key)
    return analysis.buckets


def pack(analysis: Analysis, cfg: TrackerConfig) -> TextAnalysis:
    """An analysis as an item carries it, with the recipe of the settings (``cfg``) it was made with."""
    features, weights = pack_vector(analysis.weights)
    return TextAnalysis(features, weights.tobytes(), df_buckets(analysis, cfg.bucket_key).tobytes(),
                        tuple(analysis.names.items()), analysis.short, analysis.capitals, analysis.starts, recipe(cfg),
                        "\n".join(analysis.title_terms), "\n".join(analysis.lead_terms))


def unpack(prepared: TextAnalysis) -> Analysis:
    """The analysis an item carries, as the tracker reads it."""
    weights = np.frombuffer(prepared.weights, np.float64)
    return Analysis(PackedWeights(prepared.features, weights), dict(prepared.names), prepared.short, prepared.capitals,
                    prepared.starts, weight_array=weights, buckets=np.frombuffer(prepared.buckets, np.uint32),
                    title_terms=_Lines(prepared.title_terms), lead_terms=_Lines(prepared.lead_terms))


class PackedWeights(Mapping[str, float]):
    """Feature -> weight as an item carries them: the features a line each (``lines``), their
    weights an array. Scoring and counting read the array; a dictionary is made only when a
    weight is asked for by name (evidence, for the few items that name a storyline's unit):
    making one for every item took a tenth of the writer's time."""

    __slots__ = ("lines", "array", "_dict", "_names")

    def __init__(self, lines: str, array: npt.NDArray[np.float64]) -> None:
        self.lines, self.array = lines, array
        self._dict: dict[str, float] | None = None
        self._names: list[str] | None = None

    def __getitem__(self, feature: str) -> float:
        if self._dict is None:
            self._dict = dict(zip(self.names(), self.array.tolist()))
        return self._dict[feature]

    def __contains__(self, feature: object) -> bool:
        if self._dict is not None:
            return feature in self._dict
        # a substring search: asked of a few features (names of a storyline's units) at most
        return isinstance(feature, str) and "\n" not in feature and bool(self.lines) and \
            f"\n{feature}\n" in f"\n{self.lines}\n"

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        """The features in order, split once (the tracker reads them twice an item); not to be changed."""
        if self._names is None:
            self._names = split_features(self.lines)
        return self._names

    def __len__(self) -> int:
        return len(self.array)

    def __repr__(self) -> str:
        return f"PackedWeights({dict(zip(self, self.array.tolist()))!r})"

    def __getstate__(self) -> tuple[str, npt.NDArray[np.float64]]:
        return self.lines, self.array

    def __setstate__(self, state: tuple[str, npt.NDArray[np.float64]]) -> None:
        self.lines, self.array = state
        self._dict = self._names = None


def feature_names(weights: Mapping[str, float]) -> Sequence[str]:
    """The features in order (a packed item's split once)."""
    return weights.names() if isinstance(weights, PackedWeights) else list(weights)


def joined_features(weights: Mapping[str, float]) -> str:
    """The features a line each (as packed: no new string for packed weights)."""
    return weights.lines if isinstance(weights, PackedWeights) else "\n".join(weights)


class _Lines(Container[str]):
    """Terms kept as the lines of one string: a lookup is a substring search, so an item whose
    title and lead are never asked about (most: they name no storyline's unit) costs nothing."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = f"\n{text}\n" if text else ""

    def __contains__(self, term: object) -> bool:
        return isinstance(term, str) and "\n" not in term and f"\n{term}\n" in self._text

    def __iter__(self) -> Iterator[str]:
        return iter(self._text[1:-1].split("\n") if self._text else ())


def pack_vector(vec: Mapping[str, float]) -> tuple[str, npt.NDArray[np.float64]]:
    """A feature → weight dictionary as two objects instead of hundreds: the features, a line
    each, and the weights as an array (cheap to keep by the thousand and to send)."""
    return joined_features(vec), weight_array(vec)


def split_features(lines: str) -> list[str]:
    """Features kept a line each, as a list (none for the empty string)."""
    return lines.split("\n") if lines else []


Fixes = Mapping[str, str]
"""Spelling fixes for one text: capitalised word as read -> the storyline name word it spells."""

NO_FIXES: Fixes = {}


def read_tokens(text: str, trust_case: bool, table: AliasTable, fixes: Fixes,
          seen: tuple[set[str], set[str]], limit: int | None = None, drop: frozenset[str] = frozenset()
          ) -> list[str]:
    """Tokens (``textproc.read``) with spelling fixes and aliases applied; ``seen`` collects
    (capitalised words as read, tokens where an alias rule could start); ``drop``: the stop
    words of the text's language."""
    seq, caps = read(text, trust_case, limit, drop)
    capitals, starts = seen
    named = set(compress(seq, caps))
    capitals.update(named)
    if fixes and not trust_case:  # a Title Case headline: any word may be the name
        seq = [fixes.get(t, t) for t in seq]
    elif fixes and not named.isdisjoint(fixes):
        seq = [fixes.get(t, t) if capital else t for t, capital in zip(seq, caps)]
    seq = table.apply(seq, starts)
    starts.update(seq)
    return seq


def analyze(title: str, text: str, cfg: TrackerConfig, table: AliasTable,
            fixes: Fixes = NO_FIXES) -> Analysis:
    """Weighted words and word pairs (the title counted more, only the lead of the text) and the
    names the text mentions."""
    seen: tuple[set[str], set[str]] = (set(), set())
    title = "" if title == UNTITLED else title  # the placeholder of an item without one: no words of it
    title_case = is_title_case(title)
    drop = stop_words(language(title, text))  # "und", "em": no evidence in their own language
    title_tokens = read_tokens(title, not title_case, table, fixes, seen, drop=drop)
    body = read_tokens(text, True, table, fixes, seen, cfg.body_max_tokens, drop)  # only the lead counts
    body_words, body_pairs = _counts(body, cfg)
    weights = _sublinear(body_words, 1.0, 0.0)
    weights.update(_sublinear(body_pairs, cfg.phrase_weight, 0.0))  # no overlap: pairs hold a space
    for counts, scale in zip(_counts(title_tokens, cfg), (1.0, cfg.phrase_weight)):
        for f, w in _sublinear(counts, scale, cfg.title_weight).items():
            weights[f] = weights.get(f, 0.0) + w
    found: dict[str, str] = {}  # name key (aliases applied) → the name as written
    surfaces = [s for lead in [text[:NAME_CHARS]] + ([] if title_case else [title]) for s in name_spans(lead, drop)]
    for surface, key in zip(surfaces, _name_keys(surfaces, table, fixes, seen, drop)):
        if key:
            found.setdefault(key, surface)
    seen[1].discard(BREAK)
    short = len(body) - body.count(BREAK) < cfg.short_tokens
    return Analysis(weights, found, short, " ".join(seen[0]), f" {' '.join(seen[1])} ",
                     title_terms=_terms(title_tokens), lead_terms=_terms(_lead(body)))


def _lead(body: list[str]) -> list[str]:
    """The first LEAD_TOKENS content words of a text (with the clause breaks between them)."""
    words = 0
    for n, token in enumerate(body):
        words += token != BREAK
        if words > LEAD_TOKENS:
            return body[:n]
    return body


def sentences(text: str, table: AliasTable, limit: int) -> list[frozenset[str]]:
    """The words and word pairs of each sentence of the part of a text that is read (about its
    first ``limit`` content words), aliases applied as the analysis applies them; sentences of
    fewer than two content words (a sign-off, "-0-") left out. Evidence asks for them only where
    a storyline's name stands below the title."""
    found: list[frozenset[str]] = []
    words = 0
    for tokens in read_sentences(text, limit):
        tokens = table.apply(tokens)
        content = len(tokens) - tokens.count(BREAK)
        if content >= 2:
            found.append(_terms(tokens))
            words += content
            if words >= limit:
                break
    return found


def _terms(tokens: list[str]) -> frozenset[str]:
    return frozenset(t for t in tokens if t != BREAK) | frozenset(pairs(tokens))


def _name_keys(surfaces: list[str], table: AliasTable, fixes: Fixes, seen: tuple[set[str], set[str]],
               drop: frozenset[str] = frozenset()) -> list[str]:
    """Each name's key: its tokens, aliases applied. The names are read in two texts, a line
    each (names in capitals apart: their case is not evidence), not one text a name."""
    keys = [""] * len(surfaces)
    for upper in (False, True):
        at = [i for i, s in enumerate(surfaces) if fold(s).isupper() == upper]
        if at:
            seq = read_tokens("\n".join([surfaces[i] for i in at]), True, table, fixes, seen, drop=drop)
            parts = " ".join(seq).split(BREAK)  # a line break reads as a BREAK...
            if len(parts) != len(at):  # ...and so does a name's "⑴" (folded to "(1)"): one by one
                parts = [name_key(t for t in read_tokens(surfaces[i], True, table, fixes, seen, drop=drop) if t != BREAK)
                         for i in at]
            for i, part in zip(at, parts):
                keys[i] = part.strip()
    return keys


def _counts(seq: list[str], cfg: TrackerConfig) -> tuple[Counter[str], Counter[str]]:
    """Words and word pairs of a token sequence, counted (in C)."""
    words = Counter(seq)
    words.pop(BREAK, None)
    return words, Counter(pairs(seq)) if cfg.phrase_weight > 0 else Counter()


def _sublinear(counts: Counter[str], scale: float, boost: float) -> dict[str, float]:
    """Term weights ``(1 + ln(count) + boost) * scale``; most counts are 1, set in C."""
    out = dict.fromkeys(counts, (1.0 + boost) * scale)
    for f in [f for f, c in counts.items() if c > 1]:
        out[f] = (1.0 + math.log(counts[f]) + boost) * scale
    return out


@lru_cache(maxsize=4)
def generic_aliases(groups: tuple[tuple[str, ...], ...]) -> AliasTable:
    return AliasTable.build(groups)


@lru_cache(maxsize=4)
def recipe(cfg: TrackerConfig) -> str:
    """The settings an analysis depends on, as text (the same in every process)."""
    parts = (cfg.body_max_tokens, cfg.title_weight, cfg.phrase_weight, cfg.short_tokens,
             cfg.default_aliases, LEAD_TOKENS, cfg.bucket_key, BUCKET_HASH)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


@lru_cache(maxsize=4)
def keyed(bucket_key: bytes) -> TrackerConfig:
    """The default analysis settings with a store's bucket key: what the parsing processes use."""
    return replace(TrackerConfig(), bucket_key=bucket_key)


def prepare(title: str, text: str, config: TrackerConfig | None = None) -> TextAnalysis:
    """The analysis of an item's text that every tracker with ``config``'s analysis settings
    can reuse (the defaults: the worker's trackers change only thresholds and adaptation)."""
    cfg = config or TrackerConfig()
    return pack(analyze(title, text, cfg, generic_aliases(cfg.default_aliases)), cfg)


def name_key(name: Iterable[str]) -> str:
    return " ".join(name)
