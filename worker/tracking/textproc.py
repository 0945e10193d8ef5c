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
from itertools import compress, filterfalse

from worker.languages import SAMPLE_CHARS, detect, dropped
from worker.tracking.stemming import fold, stem


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
HAN = "\u3400-\u4dbf\u4e00-\u9fff"  # CJK unified ideographs and extension A

# Every token kind, tried in this order: dotted acronym, number, word, Hangul word, one Han
# character, clause break. A Han character is a token of its own: Chinese and Japanese do not
# space their words, and an alias or keyword written in Han is then a run of such tokens, found
# by the alias table inside any longer run as "North Korea" is found in a sentence; adjacent
# pairs (``pairs``) are the text's character bigrams. Character bigrams as tokens would do the
# same for aliases, but a run would then read as several tokens per match, which the one-token-
# per-match lookup below (``_mapped``) cannot give without a pass in Python over every text.
TOKEN_RE = re.compile(
    r"(?:[A-Za-z]\.){2,}"
    r"|\d+(?:[.,]\d{3})*(?:\.\d+)?"
    r"|[A-Za-z]+(?:['’][A-Za-z]+)?"
    f"|[{_HANGUL}]+|[{HAN}]"
    r"|[.!?;:\n\"“”()\[\]|–—。「」『』《》【】]|\s-\s"
)

# What each token as written becomes, where case is trusted (T) and where it is not (U): its
# norm ("" drops it, BREAK ends a clause) and whether it counts as capitalised. Memoised: a few
# thousand distinct tokens make up most of any news stream, and a token is then four dictionary
# lookups done in C (``map``) instead of a pass through Python code.
NORM_TRUSTED: dict[str, str] = {}
_NORM_U: dict[str, str] = {}
_CAP_T: dict[str, bool] = {}
_CAP_U: dict[str, bool] = {}
_MEMO_MAX = 200_000


def learn_token(raw: str) -> None:
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
    NORM_TRUSTED[raw], _NORM_U[raw], _CAP_T[raw], _CAP_U[raw] = entry


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
    raw = TOKEN_RE.findall(text, 0, len(text) if end is None else end)
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
    if len(NORM_TRUSTED) > _MEMO_MAX:
        for memo in (NORM_TRUSTED, _NORM_U, _CAP_T, _CAP_U):
            memo.clear()
    for unknown in set(raw).difference(NORM_TRUSTED):
        learn_token(unknown)
    norms = list(map((NORM_TRUSTED if trust_case else _NORM_U).__getitem__, raw))
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
    raw = TOKEN_RE.findall(fold(text[: max_tokens * 24]))
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
