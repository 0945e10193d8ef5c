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

from worker.ingest.dedupe.fingerprints import (
    BAND_SALT, PERMUTATIONS, RETITLED_BODY_OVERLAP, RETITLED_MIN_WORDS, RETITLED_TITLE_OVERLAP, SHINGLE,
    SHORT_BODY_OVERLAP, SHORT_WORDS, fingerprint, minhash, signature_of, similarity, title_key, words_of,
)
from worker.ingest.dedupe.matchtext import (
    BOILERPLATE_MIN_ITEMS, BOILERPLATE_SHARE, Boilerplate, Clutter, EDGE_LINES, match_text,
)
from worker.ingest.dedupe.index import (
    GRAY_ZONE, Index, MAX_CHECKS, Match, T, TITLE_ONLY_MIN_WORDS, Texts, is_short, jaccard, shingles, short_copy,
)
from worker.ingest.dedupe.judging import (
    Known, Verdict, classify, indexed,
)
from worker.ingest.dedupe.revisions import (
    DIFF_LIMIT, word_diff,
)

__all__ = [
    "BAND_SALT",
    "BOILERPLATE_MIN_ITEMS",
    "BOILERPLATE_SHARE",
    "Boilerplate",
    "Clutter",
    "DIFF_LIMIT",
    "EDGE_LINES",
    "GRAY_ZONE",
    "Index",
    "Known",
    "MAX_CHECKS",
    "Match",
    "PERMUTATIONS",
    "RETITLED_BODY_OVERLAP",
    "RETITLED_MIN_WORDS",
    "RETITLED_TITLE_OVERLAP",
    "SHINGLE",
    "SHORT_BODY_OVERLAP",
    "SHORT_WORDS",
    "T",
    "TITLE_ONLY_MIN_WORDS",
    "Texts",
    "Verdict",
    "classify",
    "fingerprint",
    "indexed",
    "is_short",
    "jaccard",
    "match_text",
    "minhash",
    "shingles",
    "short_copy",
    "signature_of",
    "similarity",
    "title_key",
    "word_diff",
    "words_of",
]
