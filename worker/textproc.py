"""Text analysis for storyline tracking: tokens, phrases, names, aliases.

Kept apart from ``track.py`` so that the scoring code reads as scoring. Everything here
is pure: a string goes in, plain data comes out.

Why each step exists (the measurements are in docs/tracking.md):

* Accents are folded and curly quotes straightened, so "Millán" = "Millan".
* Numbers keep their thousands separators joined ("4,999" -> "4999"): in news the figure is
  often the story ("$4,999 gold watch" vs "$950 watch").
* Dotted acronyms are joined ("U.S." -> "us") and an all-caps acronym survives the stop-word
  filter ("US" is a country, "us" is a pronoun).
* Step 1 of Porter's stemmer only (plurals, -ed, -ing): "beheads" = "beheaded" = "beheading".
* Phrases are adjacent content-word pairs inside a clause ("friendship year", "james foley").
* Names are runs of capitalised words in running text (not in Title-Case headlines, where every
  word is capitalised). They are used for reasons, novelty, the name boost and fuzzy spelling.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

STOPWORDS: frozenset[str] = frozenset(
    """
    a about above after again against all almost also although always am among an and another any
    anyone anything are aren around as at away be became because become been before being below
    between both but by can cannot could couldn did didn do does doesn doing don done down during
    each either else enough etc even ever every few for from further get gets getting got had hadn
    has hasn have haven having he her here hers herself him himself his how however i if in into is
    isn it its itself just last least less let like likely made make many may me might mine more
    most much must my myself neither never no nor not now of off often on once one only or other
    others our ours ourselves out over own per perhaps rather really said say says same see seen
    several shall she should shouldn since so some still such than that the their theirs them
    themselves then there these they this those though through thus to too toward towards under
    until up upon us very via was wasn we were weren what whatever when where whether which while
    who whom whose why will with within without won would wouldn yet you your yours yourself
    yourselves s t re ve ll d m o y new news according told also just update updated breaking
    reportedly report reports read more via photo video image getty images click here com www http
    https
    """.split()
)

# One pattern for every token kind, tried in this order: dotted acronym, number, word.
_TOKEN_RE = re.compile(
    r"(?P<acro>(?:[A-Za-z]\.){2,})"
    r"|(?P<num>\d+(?:[.,]\d{3})*(?:\.\d+)?)"
    r"|(?P<word>[A-Za-z]+(?:['’][A-Za-z]+)?)"
    r"|(?P<brk>[.!?;:\n\"“”()\[\]|–—]|\s-\s)"
)
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "\u00a0": " "})


def fold(text: str) -> str:
    """Strip accents and normalise quotes/dashes so spellings compare equal."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKD", text.translate(_QUOTES))
    return "".join(ch for ch in text if not unicodedata.combining(ch))


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


@dataclass(frozen=True, slots=True)
class Token:
    """One content word: its normalised form, whether it was capitalised, and clause id."""

    norm: str
    capital: bool
    clause: int
    sentence_start: bool


def is_title_case(text: str) -> bool:
    """A headline in Title Case or ALL CAPS: its capitals say nothing about names."""
    words = [w for w in re.findall(r"[A-Za-z]+", text) if len(w) > 3]
    if len(words) < 3:
        return False
    caps = sum(1 for w in words if w[0].isupper())
    return caps / len(words) >= 0.7


def tokenize(text: str, trust_case: bool = True) -> list[Token]:
    """Split into content tokens, dropping stop words but remembering clause boundaries.

    ``trust_case`` is False for Title Case / ALL CAPS headlines: capitals there are not
    evidence of a name, and an all-caps "IS" is the verb, not an acronym.
    """
    text = fold(text)
    if text.isupper():
        trust_case = False
    tokens: list[Token] = []
    clause = 0
    sentence_start = True
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        raw = m.group(kind or "word")
        if kind == "brk":
            clause += 1
            if raw in ".!?\n":
                sentence_start = True
            continue
        if kind == "acro":
            raw = raw.replace(".", "")
            norm = raw.lower()
            tokens.append(Token(norm, True, clause, sentence_start))
            sentence_start = False
            continue
        if kind == "num":
            norm = raw.replace(",", "")
            tokens.append(Token(norm, False, clause, sentence_start))
            sentence_start = False
            continue
        word = raw.replace("’", "'")
        if word.lower().endswith("'s"):
            word = word[:-2]
        elif "'" in word:
            word = word.replace("'", "")
        lower = word.lower()
        acronym = trust_case and len(word) >= 2 and word.isupper()
        if (lower in STOPWORDS and not acronym) or len(lower) < 2:
            sentence_start = False
            continue
        tokens.append(Token(stem(lower), trust_case and word[0].isupper(), clause, sentence_start))
        sentence_start = False
    return tokens


def phrases(tokens: Sequence[Token]) -> list[str]:
    """Adjacent content-word pairs within one clause: "friendship year", "north korea"."""
    out: list[str] = []
    for a, b in zip(tokens, tokens[1:]):
        if a.clause == b.clause:
            out.append(f"{a.norm} {b.norm}")
    return out


def names(tokens: Sequence[Token]) -> list[tuple[str, ...]]:
    """Runs of capitalised content tokens in one clause; a lone sentence-initial word is not
    a name ("Officials said ...")."""
    out: list[tuple[str, ...]] = []
    run: list[Token] = []

    def flush() -> None:
        if run and not (len(run) == 1 and run[0].sentence_start):
            out.append(tuple(t.norm for t in run))
        run.clear()

    for tok in tokens:
        if tok.capital and (not run or run[-1].clause == tok.clause):
            run.append(tok)
        else:
            flush()
            if tok.capital:
                run.append(tok)
    flush()
    return out


# --------------------------------------------------------------------------- aliases


@dataclass(frozen=True)
class AliasTable:
    """Equivalent names mapped onto one canonical token sequence.

    ``[["North Korea", "DPRK", "Pyongyang"]]`` rewrites every variant, the first included, to one
    token named after the first entry ("north_korea"): one token, so that "Islamic State" and
    "United States" do not share a "state". Matching is on normalised tokens, longest first.
    """

    rules: Mapping[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    max_len: int = 0

    @staticmethod
    def build(groups: Iterable[Sequence[str]]) -> AliasTable:
        rules: dict[tuple[str, ...], tuple[str, ...]] = {}
        for group in groups:
            keys = [tuple(t.norm for t in tokenize(v, trust_case=False)) for v in group]
            keys = [k for k in keys if k]
            if len(keys) < 2:
                continue
            canon = ("_".join(keys[0]),)
            for k in keys:
                if k != canon:
                    rules[k] = canon
        return AliasTable(rules, max((len(k) for k in rules), default=0))

    def merged(self, other: AliasTable) -> AliasTable:
        rules = dict(self.rules)
        rules.update(other.rules)
        return AliasTable(rules, max(self.max_len, other.max_len))

    def apply(self, tokens: list[Token]) -> list[Token]:
        if not self.rules:
            return tokens
        out: list[Token] = []
        i = 0
        n = len(tokens)
        while i < n:
            for span in range(min(self.max_len, n - i), 0, -1):
                window = tokens[i : i + span]
                if window[-1].clause != window[0].clause:
                    continue
                canon = self.rules.get(tuple(t.norm for t in window))
                if canon is not None:
                    first = window[0]
                    out.extend(Token(c, True, first.clause, first.sentence_start) for c in canon)
                    i += span
                    break
            else:
                out.append(tokens[i])
                i += 1
        return out


# --------------------------------------------------------------------------- fuzzy names


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


class SpellingIndex:
    """Maps a capitalised word onto a known name word one edit away (SymSpell-style deletes).

    Handles romanisation variants: Pak/Park, Myong/Myung, Foley/Folley. Only words of four
    letters or more are rewritten (the shorter of the pair may have three), only when they
    start with the same letter, and never a word that is itself a known name word.
    """

    def __init__(self) -> None:
        self._words: dict[str, int] = {}
        self._by_delete: dict[str, set[str]] = {}

    def add(self, word: str) -> None:
        if len(word) < 3 or not word.isalpha():
            return
        self._words[word] = self._words.get(word, 0) + 1
        if self._words[word] == 1:
            for key in _deletes(word) | {word}:
                self._by_delete.setdefault(key, set()).add(word)

    def remove(self, word: str) -> None:
        count = self._words.get(word, 0)
        if count <= 1:
            if count == 1:
                del self._words[word]
                for key in _deletes(word) | {word}:
                    bucket = self._by_delete.get(key)
                    if bucket is not None:
                        bucket.discard(word)
                        if not bucket:
                            del self._by_delete[key]
        else:
            self._words[word] = count - 1

    def __contains__(self, word: str) -> bool:
        return word in self._words

    def correct(self, word: str) -> str | None:
        """The known word ``word`` is a variant of, or None."""
        if word in self._words or len(word) < 3 or not word.isalpha():
            return None
        candidates: set[str] = set()
        for key in _deletes(word) | {word}:
            candidates |= self._by_delete.get(key, set())
        best = [
            c
            for c in candidates
            if c[0] == word[0] and max(len(c), len(word)) >= 4 and abs(len(c) - len(word)) <= 1
        ]
        if len(best) != 1:  # ambiguous or nothing: leave the word alone
            return None
        return best[0]
