"""Text analysis for storyline tracking: tokens, phrases, names, aliases.

Kept apart from ``track.py`` so that the scoring code reads as scoring. Everything here
is pure: a string goes in, plain data comes out. A text becomes a sequence of token strings with
BREAK between clauses, built by memoised lookups run in C (``map``): tokenizing is the largest
part of analysing an item, and this is several times faster than building a tuple per token.

Why each step exists (accuracy: ``storywatch eval tracking``, bench/bench_tracking.py):

* Accents are folded and curly quotes straightened, so "Millán" = "Millan".
* Numbers keep their thousands separators joined ("4,999" -> "4999"): in news the figure is
  often the story ("$4,999 gold watch" vs "$950 watch").
* Dotted acronyms are joined ("U.S." -> "us") and an all-caps acronym survives the stop-word
  filter ("US" is a country, "us" is a pronoun).
* Step 1 of Porter's stemmer only (plurals, -ed, -ing): "beheads" = "beheaded" = "beheading".
* Phrases are adjacent content-word pairs inside a clause ("friendship year", "james foley").
* Names are runs of capitalised words in running text (not in Title-Case headlines, where every
  word is capitalised). They are used for reasons, novelty, the name boost and fuzzy spelling.
* Korean: a Hangul word loses the particles attached to it ("북한은", "북한에서" -> "북한"), so a
  name reads the same in every grammatical role (``strip_particles``).
* Chinese and Japanese kanji have no spaces: each Han character is a token, so an alias written
  in Han ("朝鲜") is a run of tokens that the alias table finds inside a longer run ("中国和朝鲜"),
  and the adjacent pairs (``pairs``) are the character bigrams of standard CJK indexing.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import compress, filterfalse

from worker.languages import SAMPLE_CHARS, detect, dropped

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


BREAK = "|"
"""Stands between clauses in a token sequence: word pairs and alias rules never span it."""


_WORD_SPLIT = re.compile(r"[A-Za-z]+")


def is_title_case(text: str) -> bool:
    """A headline in Title Case or ALL CAPS: its capitals say nothing about names."""
    words = [w for w in _WORD_SPLIT.findall(text) if len(w) > 3]
    if len(words) < 3:
        return False
    caps = sum(1 for w in words if w[0].isupper())
    return caps / len(words) >= 0.7


def _word(word: str) -> tuple[str | None, str | None, bool]:
    """What a word token becomes: (norm where case is trusted, norm where it is not,
    capitalised); None drops it. A stop word survives only as an all-caps acronym in text
    whose case is trusted ("US" is a country, "us" is a pronoun)."""
    if "'" in word or "\u2019" in word:
        word = word.replace("\u2019", "'")
        word = word[:-2] if word.lower().endswith("'s") else word.replace("'", "")
    lower = word.lower()
    if len(lower) < 2:
        return None, None, False
    norm = stem(lower)
    if lower not in STOPWORDS:
        return norm, norm, word[0].isupper()
    return (norm if word.isupper() else None), None, True


_HANGUL = "\uac00-\ud7a3"  # composed syllables (fold recomposes them)
_HAN = "\u3400-\u4dbf\u4e00-\u9fff"  # CJK unified ideographs and extension A

# Every token kind, tried in this order: dotted acronym, number, word, Hangul word, one Han
# character, clause break. A Han character is a token of its own: Chinese and Japanese do not
# space their words, and an alias or keyword written in Han is then a run of such tokens, found
# by the alias table inside any longer run as "North Korea" is found in a sentence; adjacent
# pairs (``pairs``) are the text's character bigrams. Character bigrams as tokens would do the
# same for aliases, but a run would then read as several tokens per match, which the one-token-
# per-match lookup below (``_mapped``) cannot give without a pass in Python over every text.
_TOKEN_RE = re.compile(
    r"(?:[A-Za-z]\.){2,}"
    r"|\d+(?:[.,]\d{3})*(?:\.\d+)?"
    r"|[A-Za-z]+(?:['’][A-Za-z]+)?"
    f"|[{_HANGUL}]+|[{_HAN}]"
    r"|[.!?;:\n\"“”()\[\]|–—。「」『』《》【】]|\s-\s"
)

# What each token as written becomes, where case is trusted (T) and where it is not (U): its
# norm ("" drops it, BREAK ends a clause) and whether it counts as capitalised. Memoised: a few
# thousand distinct tokens make up most of any news stream, and a token is then four dictionary
# lookups done in C (``map``) instead of a pass through Python code.
_NORM_T: dict[str, str] = {}
_NORM_U: dict[str, str] = {}
_CAP_T: dict[str, bool] = {}
_CAP_U: dict[str, bool] = {}
_MEMO_MAX = 200_000


def _learn(raw: str) -> None:
    if "\uac00" <= raw[0] <= "\ud7a3":  # a Hangul word: no case; its particles come off
        norm = strip_particles(raw)
        entry = (norm, norm, False, False)
    elif raw[0] >= "\u3400":  # one Han character (the only other token from that far up)
        entry = (raw, raw, False, False)
    elif raw[0].isalpha() and "." in raw:  # dotted acronym: "U.S." -> "us", a name in any case
        norm = raw.replace(".", "").lower()
        entry = (norm, norm, True, True)
    elif raw[0].isalpha():
        trusted, untrusted, capital = _word(raw)
        entry = (trusted or "", untrusted or "", capital, False)
    elif raw[0].isdigit():  # number: thousands separators joined ("4,999" -> "4999")
        norm = raw.replace(",", "")
        entry = (norm, norm, False, False)
    else:
        entry = (BREAK, BREAK, False, False)
    _NORM_T[raw], _NORM_U[raw], _CAP_T[raw], _CAP_U[raw] = entry


def read(text: str, trust_case: bool = True, max_tokens: int | None = None,
         drop: frozenset[str] = frozenset()) -> tuple[list[str], list[bool]]:
    """The content tokens of ``text`` in order, with BREAK between clauses, and beside each
    whether it was capitalised (evidence of a name). Stop words are dropped.

    ``trust_case`` is False for Title Case / ALL CAPS headlines: capitals there are not
    evidence of a name, and an all-caps "IS" is the verb, not an acronym. ``max_tokens`` keeps
    the first N content tokens (the caller reads only the lead; a long text is read in part).
    ``drop``: the stop words of the text's own language (``stop_words``), as written.
    """
    text = fold(text)
    if text.isupper():
        trust_case = False
    if max_tokens is None:
        return _mapped(_found(text, drop), trust_case)
    seq: list[str] = []
    cut = _cut(text, max_tokens * 24) if len(text) > max_tokens * 24 else -1
    if cut > 0:  # a long text: its lead first (cut at a space or 。, which no token contains)
        seq, caps = _mapped(_found(text, drop, cut), trust_case)
    if len(seq) - seq.count(BREAK) < max_tokens:
        seq, caps = _mapped(_found(text, drop), trust_case)
    if len(seq) - seq.count(BREAK) > max_tokens:
        end = _end_of(seq, max_tokens)
        seq, caps = seq[:end], caps[:end]
    return seq, caps


def _found(text: str, drop: frozenset[str], end: int | None = None) -> list[str]:
    """The raw tokens of ``text`` (up to ``end``), without those in ``drop`` (filtered in C; an
    English text, the most common, drops nothing here: its stop words are dropped by ``_word``)."""
    raw = _TOKEN_RE.findall(text, 0, len(text) if end is None else end)
    return list(filterfalse(drop.__contains__, raw)) if drop else raw


def language(title: str, text: str) -> str:
    """The language an item is written in (``languages.detect``), from its title and lead."""
    return detect(fold(f"{title}\n{text[:SAMPLE_CHARS]}"))


def stop_words(lang: str) -> frozenset[str]:
    """The words ``read`` drops from a text in ``lang`` besides the English stop words."""
    return dropped(lang)


def _cut(text: str, end: int) -> int:
    """Where to cut a long text's lead, at most ``end``: the last space before it, or in Chinese
    or Japanese (no spaces) the last full stop; -1: nowhere."""
    cut = text.rfind(" ", 0, end)
    return cut if cut > 0 else text.rfind("。", 0, end)


def _mapped(raw: list[str], trust_case: bool) -> tuple[list[str], list[bool]]:
    if len(_NORM_T) > _MEMO_MAX:
        for memo in (_NORM_T, _NORM_U, _CAP_T, _CAP_U):
            memo.clear()
    for unknown in set(raw).difference(_NORM_T):
        _learn(unknown)
    norms = list(map((_NORM_T if trust_case else _NORM_U).__getitem__, raw))
    capitals = list(map((_CAP_T if trust_case else _CAP_U).__getitem__, raw))
    return list(compress(norms, norms)), list(compress(capitals, norms))


def _end_of(seq: list[str], count: int) -> int:
    """The length of the prefix of ``seq`` that holds ``count`` content tokens."""
    seen = 0
    for n, token in enumerate(seq):
        if token != BREAK:
            seen += 1
            if seen == count:
                return n + 1
    return len(seq)


# --------------------------------------------------------------------------- words as written

# A word as written, accents and all ("für", "Millán", "Korea's", "U.S.", "4,999", "북한은"), as
# ``Spelling`` finds it: a dotted acronym, a number, one Han character (as ``read`` takes it), or
# letters and digits ("75th" is one word, which reads as two tokens: neither is shown as "th").
_WRITTEN = re.compile(r"(?:[^\W\d_]\.){2,}|\d+(?:[.,]\d{3})*(?:\.\d+)?(?!\w)"
                      f"|[{_HAN}]" r"|[^\W_]+(?:['’][^\W_]+)?")
_HAN_TOKEN = re.compile(f"[{_HAN}]")


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
    raw = _TOKEN_RE.findall(fold(written))
    if len(raw) != 1 or raw[0] in drop:
        return ""
    if raw[0] not in _NORM_T:
        _learn(raw[0])
    return _NORM_T[raw[0]] if raw[0] != BREAK else ""


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


# --------------------------------------------------------------------------- Korean

PARTICLES: tuple[str, ...] = tuple(sorted(
    """
    은 는 이 가 께서 을 를 의 에 에서 에게 에게서 으로 로 으로서 로서 으로써 로써 과 와 도 만 뿐
    까지 부터 조차 마저 보다 처럼 만큼 들
    """.split(), key=len, reverse=True))
"""What ``strip_particles`` takes off the end of a Hangul word, longest first (else 북한에서
would keep its 에서: 서 alone is no particle). The common Korean particles (josa) of news text:
topic 은/는, subject 이/가/께서, object 을/를, genitive 의, place and direction 에/에서/에게/
에게서/(으)로, role and means (으)로서/(으)로써, "and, with" 과/와, "also" 도, "only" 만/뿐,
"until, from" 까지/부터, "even" 조차/마저, comparison 보다/처럼/만큼; and the plural suffix 들
(지도자들 -> 지도자). Stacked particles come off one at a time (북한에서는 -> 북한에서 -> 북한), so
they need no entries of their own. Left out: 나/이나 ("or": it would cut 우크라이나 to 우크라),
랑/하고/한테 (spoken language), the copula (이다, 였다)."""
_PARTICLE_SET = frozenset(PARTICLES)


def strip_particles(word: str) -> str:
    """A Hangul word without the particles attached to it: 북한은, 북한이, 북한의, 북한에서는 ->
    북한. At least two syllables always remain: a two-syllable name is never cut (북한, 중국, 조선,
    푸틴), and a single-syllable noun keeps its particle (핵을). A word that is all particle (the
    은 of "UN은") is dropped ("").

    Particles are taken off as long as there are any, so a name whose last syllable looks like a
    particle reads the same with and without one: 김정은 -> 김정, and 김정은은 -> 김정은 -> 김정.
    Aliases and keywords are read by this same function, so they match either way: no list of
    names is needed. (Taking off one particle only would read 김정은 as 김정 but 김정은이 as 김정은.)
    """
    if word in _PARTICLE_SET:
        return ""
    while len(word) > 2:
        for particle in PARTICLES:
            if word.endswith(particle) and len(word) - len(particle) >= 2:
                word = word[: -len(particle)]
                break
        else:
            break
    return word


_SENTENCE_ENDS = frozenset({".", "!", "?", "。", "\n"})


def read_sentences(text: str, max_tokens: int) -> list[list[str]]:
    """The tokens of each sentence of ``text`` as ``read`` gives them (case trusted, BREAK
    between clauses), from the first ``max_tokens`` * 24 characters: about as much text as
    ``read`` keeps. A sentence ends at . ! ? 。 or a line break ("U.S." is one token, no end)."""
    raw = _TOKEN_RE.findall(fold(text[: max_tokens * 24]))
    found, start = [], 0
    for end in [i for i, token in enumerate(raw) if token in _SENTENCE_ENDS] + [len(raw)]:
        seq, _ = _mapped(raw[start:end], True)
        if seq:
            found.append(seq)
        start = end + 1
    return found


def words(text: str, trust_case: bool = True) -> list[str]:
    """The content tokens of ``text``, clauses ignored ("N Korea" -> ["korea"])."""
    return [t for t in read(text, trust_case)[0] if t != BREAK]


def pairs(seq: list[str]) -> list[str]:
    """Adjacent content-word pairs within one clause: "friendship year", "north korea"."""
    return [f"{a} {b}" for a, b in zip(seq, seq[1:]) if a != BREAK and b != BREAK]


# A run of capitalised words as written ("Wang Yajun", "Pak Myong-ho", "China-DPRK Friendship
# Year"); any lower-case word or punctuation ends it.
_NAME_RUN = re.compile(r"[A-Z][\w'’-]*(?:[ \t]+[A-Z][\w'’-]*)*")
_NOT_NAMES = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february march april may "
    "june july august september october november december".split()
)


def name_spans(text: str, drop: frozenset[str] = frozenset()) -> list[str]:
    """Names as written in running text: runs of capitalised words, without leading stop words
    ("The"; ``drop``: those of the text's own language, "Der"), weekdays and months; a lone word
    that opens a sentence is not a name."""
    out: list[str] = []
    for m in _NAME_RUN.finditer(text):
        words = m.group().split()
        n = len(words)
        while words and (words[0].lower() in STOPWORDS or drop and fold(words[0]) in drop):
            words.pop(0)
        if not words or all(w.lower() in _NOT_NAMES for w in words):
            continue
        if len(words) == 1 and (len(words) != n or _opens_sentence(text, m.start())):
            continue
        out.append(" ".join(words))
    return out


def _opens_sentence(text: str, at: int) -> bool:
    """Whether the word at ``at`` opens the text or a sentence (looks back over spaces only: a
    slice of everything before it made long texts quadratic)."""
    i = at - 1
    while i >= 0 and text[i].isspace():
        i -= 1
    return i < 0 or text[i] in ".!?:\"“"


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
    firsts: frozenset[str] = frozenset()
    """First tokens of every rule: most tokens start no rule and are passed over at once."""

    @staticmethod
    def build(groups: Iterable[Sequence[str]], base: AliasTable | None = None) -> AliasTable:
        """The rules of ``groups``, on top of ``base``'s. A group that names a variant the base
        knows joins that base group: all its variants map onto the base's canonical token, so a
        storyline's ["DPRK", "North Korea", "N Korea"] extends the generic North Korea group
        instead of competing with it."""
        rules: dict[tuple[str, ...], tuple[str, ...]] = dict(base.rules) if base else {}
        for group in groups:
            keys = [tuple(words(v, trust_case=False)) for v in group]
            keys = [k for k in keys if k]
            if len(keys) < 2:
                continue
            known = [base.rules[k] for k in keys if base and k in base.rules]
            canon = known[0] if known else ("_".join(keys[0]),)
            for k in keys:
                if k != canon:
                    rules[k] = canon
        return AliasTable(
            rules, max((len(k) for k in rules), default=0), frozenset(k[0] for k in rules)
        )

    def firsts_beyond(self, base: AliasTable) -> frozenset[str]:
        """First tokens of the rules this table has and ``base`` has not: a text in which none
        of them can start a rule reads the same under both tables."""
        return frozenset(k[0] for k, canon in self.rules.items() if base.rules.get(k) != canon)

    def apply(self, seq: list[str], tried: set[str] | None = None) -> list[str]:
        """The token sequence (see ``read``) with every variant rewritten; a variant never spans
        a BREAK. ``tried`` (if given) receives the first token of each rewritten span: with the
        tokens returned, these are all the places where any table's rule could have started
        (see ``firsts_beyond``)."""
        firsts = self.firsts
        if not firsts or firsts.isdisjoint(seq):
            return seq
        out: list[str] = []
        done = 0
        n = len(seq)
        for i in [i for i, token in enumerate(seq) if token in firsts]:
            if i < done:
                continue  # inside a span already rewritten
            out.extend(seq[done:i])  # the stretch before a possible rule start, as a slice
            done = i + 1
            for span in range(min(self.max_len, n - i), 0, -1):
                canon = self.rules.get(tuple(seq[i : i + span]))
                if canon is not None:
                    if tried is not None:
                        tried.add(seq[i])
                    out.extend(canon)
                    done = i + span
                    break
            else:
                out.append(seq[i])
        out.extend(seq[done:])
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
