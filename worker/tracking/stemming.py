"""Words folded (case, accents, quotes) and stemmed (Porter's rules, English)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache


_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_QUOTES = (("’", "'"), ("‘", "'"), ("“", '"'), ("”", '"'), ("\u00a0", " "))
"""Replaced one by one: str.replace runs in C, str.translate with a dict does not."""


def fold(text: str) -> str:
    """Strip accents and normalise quotes/dashes so spellings compare equal."""
    if text.isascii():
        return text
    for old, new in _QUOTES:
        if old in text:
            text = text.replace(old, new)
    text = unicodedata.normalize("NFKD", text)
    text = _COMBINING.sub("", text)  # a regex, not a loop over characters: news text is long
    # NFKD also splits every Hangul syllable into its letters (jamo); NFC joins them again. It
    # first checks whether anything is to be joined, in C, so text without Hangul costs ~5 µs.
    return unicodedata.normalize("NFC", text)


def _consonant(w: str, i: int) -> bool:
    c = w[i]
    if c in "aeiou":
        return False
    if c == "y":
        return i == 0 or not _consonant(w, i - 1)
    return True


def _measure(w: str) -> int:
    """Porter's m: the number of vowel-consonant sequences in ``w``."""
    m, prev_vowel = 0, False
    for i in range(len(w)):
        vowel = not _consonant(w, i)
        if prev_vowel and not vowel:
            m += 1
        prev_vowel = vowel
    return m


def _has_vowel(w: str) -> bool:
    return any(not _consonant(w, i) for i in range(len(w)))


def _cvc(w: str) -> bool:
    return (
        len(w) >= 3
        and _consonant(w, len(w) - 3)
        and not _consonant(w, len(w) - 2)
        and _consonant(w, len(w) - 1)
        and w[-1] not in "wxy"
    )


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Step 1 of Porter's stemmer (plurals, -ed, -ing): "beheads", "beheaded", "beheading" ->
    "behead". The later Porter steps (-ational, -ness...) are left out: they merge too much
    and mangle names. Words ending in -is/-us/-ss keep their s ("ISIS", "Jesus", "US")."""
    w = word
    if len(w) <= 3:
        return w
    if w.endswith("sses") or w.endswith("ies"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "is", "us")):
        w = w[:-1]
    if w.endswith("eed"):
        if _measure(w[:-3]) > 0:
            w = w[:-1]
    else:
        cut = 2 if w.endswith("ed") else 3 if w.endswith("ing") else 0
        if cut and _has_vowel(w[:-cut]):
            w = w[:-cut]
            if w.endswith(("at", "bl", "iz")):
                w += "e"
            elif len(w) >= 2 and w[-1] == w[-2] and _consonant(w, len(w) - 1) and w[-1] not in "lsz":
                w = w[:-1]
            elif _measure(w) == 1 and _cvc(w):
                w += "e"
    if w.endswith("y") and len(w) > 2 and _has_vowel(w[:-1]):
        w = w[:-1] + "i"
    return w
