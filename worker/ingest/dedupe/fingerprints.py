"""An item's fingerprint: its words, a MinHash signature of its word shingles, its title key."""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Sequence
import unicodedata
import numpy as np
import numpy.typing as npt

from worker.models import Fingerprint


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
BAND_SALT = _rng.integers(0, 2**63, size=BANDS, dtype=np.uint64)  # one per band: keys of bands differ
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


def signature_of(raw: bytes) -> npt.NDArray[np.uint32]:
    return np.frombuffer(raw, dtype="<u4")


def similarity(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of two signatures: the share of equal minimums."""
    return float(np.mean(signature_of(a) == signature_of(b)))
