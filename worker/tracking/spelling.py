"""Words as written (Spelling: a stem shown as the text writes it) and spelling variants of names
(SpellingIndex: a capitalised word one edit from a storyline's name word)."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from worker.tracking.aliases import AliasTable
from worker.tracking.stemming import fold
from worker.tracking.textproc import BREAK, HAN, NORM_TRUSTED, TOKEN_RE, language, learn_token, stop_words


# A word as written, accents and all ("für", "Millán", "Korea's", "U.S.", "4,999", "북한은"), as
# ``Spelling`` finds it: a dotted acronym, a number, one Han character (as ``read`` takes it), or
# letters and digits ("75th" is one word, which reads as two tokens: neither is shown as "th").
_WRITTEN = re.compile(r"(?:[^\W\d_]\.){2,}|\d+(?:[.,]\d{3})*(?:\.\d+)?(?!\w)"
                      f"|[{HAN}]" r"|[^\W_]+(?:['’][^\W_]+)?")
_HAN_TOKEN = re.compile(f"[{HAN}]")


class Spelling:
    """How a text writes the tokens ``read`` makes of it, so that a person is shown words of the
    text, never stems: "releas" -> "released", "fur" -> "für", the pair "ceremoni pyongyang" ->
    "ceremony in Pyongyang", the alias group "china_dprk_friendship_year" -> "China-DPRK
    Friendship Year". The tokens stay what is matched and stored; this is for showing them."""

    def __init__(self, text: str, drop: frozenset[str] = frozenset()) -> None:
        self.text = text = unicodedata.normalize("NFC", text)  # "u" + a combining mark is one letter, ü
        found = [(m.start(), m.end(), _token_of(m.group(), drop)) for m in _WRITTEN.finditer(text)]
        self._words = [(start, end, token) for start, end, token in found if token]
        """The words that read as one token each, in order (stop words and "75th" left out)."""
        forms: dict[str, Counter[str]] = {}
        for start, end, token in self._words:
            forms.setdefault(token, Counter())[text[start:end]] += 1
        self._usual = {token: _usual(token, counted) for token, counted in forms.items()}

    def shown(self, term: str, aliases: AliasTable | None = None) -> str:
        """``term`` (a token, a word pair, an alias group's token) as the text writes it. A pair
        the text writes apart: word by word; an alias group: the variant the text writes
        ("Moscow" for russia, given the ``aliases`` the text was read with), else the group's
        name spaced ("north korea"); "" when a word is nowhere in the text as a word of its own
        ("th" of "75th")."""
        if term in self._usual:
            return self._usual[term]
        found = self._phrase(term.replace("_", " ").split(" "))
        if found:
            return found
        if " " not in term:
            variants = [list(key) for key, canon in aliases.rules.items() if canon == (term,)] if aliases else []
            found = next(filter(None, map(self._phrase, variants)), "")
            return found or (term.replace("_", " ") if "_" in term else "")
        words = [self.shown(part, aliases) for part in term.split(" ")]
        if not all(words):
            return ""
        return ("" if all(_HAN_TOKEN.fullmatch(w) for w in words) else " ").join(words)  # Han: one word

    @staticmethod
    def of(title: str, text: str) -> Spelling:
        """An item's spelling: its title and text, its language's stop words left out as ``read``
        leaves them out (the words of a pair are then next to each other as they were read)."""
        return Spelling(f"{title}\n{text}", stop_words(language(title, text)))

    def _phrase(self, tokens: list[str]) -> str:
        """The first stretch of the text whose words read as ``tokens`` in a row (stop words
        between them included: "ceremony in Pyongyang"), as written."""
        n = len(tokens)
        for i in range(len(self._words) - n + 1):
            if all(self._words[i + k][2] == tokens[k] for k in range(n)):
                return self.text[self._words[i][0]: self._words[i + n - 1][1]]
        return ""


def _token_of(written: str, drop: frozenset[str]) -> str:
    """The token ``read`` makes of one written word (case trusted); "" if none or several."""
    raw = TOKEN_RE.findall(fold(written))
    if len(raw) != 1 or raw[0] in drop:
        return ""
    if raw[0] not in NORM_TRUSTED:
        learn_token(raw[0])
    return NORM_TRUSTED[raw[0]] if raw[0] != BREAK else ""


def _usual(token: str, forms: Counter[str]) -> str:
    """The most frequent of a token's spellings, counting "Released" and "released" as one word
    written in lower case when it ever is. Ties: the word the token is ("Korea" before "Korea's",
    북한 before 북한은), then the shortest, then the first written."""
    words: Counter[str] = Counter()
    for form, n in forms.items():
        words[form.lower()] += n
    word = max(words, key=lambda w: (words[w], fold(w) == token, -len(w)))
    cased = [form for form in forms if form.lower() == word]
    return word if word in cased else max(cased, key=forms.__getitem__)


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
        self._cache: dict[str, str | None] = {}
        """Answers of ``correct`` since the last change of the index (names recur a lot)."""

    def add(self, word: str) -> None:
        if len(word) < 3 or not word.isalpha():
            return
        self._words[word] = self._words.get(word, 0) + 1
        if self._words[word] == 1:
            self._cache.clear()
            for key in _deletes(word) | {word}:
                self._by_delete.setdefault(key, set()).add(word)

    def remove(self, word: str) -> None:
        count = self._words.get(word, 0)
        if count <= 1:
            if count == 1:
                self._cache.clear()
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
        try:
            return self._cache[word]
        except KeyError:
            pass
        if len(self._cache) > 100_000:  # bounded memory on an endless stream
            self._cache.clear()
        fixed = self._correct(word)
        self._cache[word] = fixed
        return fixed

    def _correct(self, word: str) -> str | None:
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
