"""Which language an item is written in, and that language's stop words.

A word such as "und", "der" or "em" says nothing about what a German or Portuguese item is
about, yet in a stream that is mostly English it is rare, so TF-IDF weighs it as a topic word
(a suggestion "about und, der, die, ich"; a follow-up that "shares de, em, na"). Each item's
language is told by a vote of its most frequent function words, and that language's function
words are then no evidence: they are dropped where English stop words are (``textproc.read``).

The lists are short on purpose: the hundred-odd most frequent function words of each language
(articles, pronouns, prepositions, conjunctions, auxiliaries), written for this project. English
text keeps its own, longer list (``textproc.STOPWORDS``) and nothing else: an English "die",
"war" or "gift" is a word, and the extra lists apply only to items that read as their language.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache
from itertools import chain

ENGLISH = "en"

_WORDS: dict[str, str] = {
    # English: only to vote with (a text that reads as English drops textproc.STOPWORDS alone).
    "en": """
        a the of and to in is are was were be been being that this these those it its for on with as
        at by from have has had not but or an which they their them he she his her we you who would
        will there what about into than""",
    "de": """
        der die das den dem des ein eine einen einem einer eines und oder aber doch sondern ist sind
        war waren wird werden wurde wurden hat haben hatte hatten sein seine seiner seinen seinem
        ihre ihrer ihren ihrem ihr ich du er sie es wir uns mich mir dich dir sich ihm ihn ihnen nicht
        kein keine auch noch nur schon sehr mehr zu zum zur im in an am auf aus bei mit nach von vom
        vor über unter um durch für gegen ohne bis als wie wenn weil dass ob so dann da hier dort
        jetzt nun man was wer wo diese dieser dieses diesem diesen alle kann können muss müssen soll
        sollen will wollen gibt sagte ab""",
    "fr": """
        le la les un une des du de et ou mais donc car ni que qui quoi dont où ce cet cette ces se sa
        son ses leur leurs il ils elle elles on nous vous je tu me te lui en est sont était étaient été
        être a ont avait avoir fait pas ne plus très aussi bien dans sur sous pour par avec sans chez
        entre vers comme si au aux tout tous toute toutes même autre autres selon après avant depuis
        notre nos votre vos mon ma mes cela ça""",
    "es": """
        el la los las lo un una unos unas de del al a y e o u pero sino que quien cual cuando donde
        como porque si no ni ya muy más también tan se su sus le les me te nos él ella ellos ellas yo
        tú usted es son era eran fue fueron han ha había ser estar está están este esta estos estas
        ese esa esos esas esto eso en con por para sin sobre entre hasta desde hacia según todo todos
        toda todas otro otra otros otras hay dijo""",
    "it": """
        il lo la i gli le un uno una di del dello della dei degli delle a al allo alla ai agli alle da
        dal dalla dai in nel nello nella nei negli nelle con su sul sulla per tra fra e ed o ma che chi
        cui non si ci vi ne mi ti è sono era erano stato stata stati essere ha hanno aveva avere
        questo questa questi queste quello quella quelli come anche più molto già ancora se perché
        quando dove tutto tutti tutte sua suo suoi sue loro nostro dopo prima siamo siete sei ho hai
        abbiamo avete fa fare fatto può possono possiamo deve devono dobbiamo""",
    "pt": """
        o a os as um uma uns umas de do da dos das em no na nos nas ao aos à às por pelo pela pelos
        pelas para com sem sobre entre e ou mas que quem qual quando onde como porque se não nem já
        muito mais também é são era eram foi foram ser estar está estão tem têm ter havia este esta
        estes estas esse essa esses essas isso isto ele ela eles elas eu você nós seu sua seus suas
        lhe lhes me te todo todos toda todas outro outra após até disse""",
    "nl": """
        de het een en of maar dat die dit deze wat wie waar hoe als dan ook nog niet geen wel al zo te
        van in op aan met voor door bij uit over naar om tot tegen zonder na onder is zijn was waren
        wordt worden werd werden heeft hebben had hadden kan kunnen zal zullen moet moeten ik je jij
        hij zij ze wij we jullie hun haar hem ons mij me zich er hier daar nu meer veel heel""",
}


def _folded(word: str) -> str:
    """As ``stemming.fold`` spells it: tokens are read without accents ("für" -> "fur")."""
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


STOP_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(_folded(w) for w in text.split()) for lang, text in _WORDS.items()
}
"""Each language's function words, lower case, accents folded."""

LANGUAGES: tuple[str, ...] = tuple(STOP_WORDS)

_VOTES: dict[str, tuple[str, ...]] = {}
"""Word -> the languages it is a function word of ("de" votes for French, Spanish, Portuguese
and Dutch alike; "und" for German alone)."""
for _lang, _stop in STOP_WORDS.items():
    for _word in _stop:
        _VOTES[_word] = _VOTES.get(_word, ()) + (_lang,)

SAMPLE_CHARS = 800  # about 130 words: plenty to tell seven languages apart
MIN_VOTES = 4  # fewer function words than this (a headline, a list of names): taken for English
MIN_LEAD = 2  # ...or a lead over English smaller than this ("Kim Jong Un" holds a French "un")
_LETTERS = re.compile(r"[a-z]+")


def detect(text: str) -> str:
    """The language ``text`` (already accent-folded, as ``textproc.read`` sees it) is written in:
    the one whose function words it uses most, English unless another one wins outright. Costs
    a regex and a few lookups done in C over the first SAMPLE_CHARS characters."""
    words = _LETTERS.findall(text[:SAMPLE_CHARS].lower())
    votes = Counter(chain.from_iterable(filter(None, map(_VOTES.get, words))))
    best = max(LANGUAGES, key=lambda lang: votes[lang])  # ties: the first in LANGUAGES
    if best == ENGLISH or votes[best] < MIN_VOTES or votes[best] - votes[ENGLISH] < MIN_LEAD:
        return ENGLISH
    return best


@lru_cache(maxsize=len(LANGUAGES))
def dropped(lang: str) -> frozenset[str]:
    """The tokens (as written: lower case, Capitalised, UPPER) that ``textproc.read`` drops from a
    text in ``lang`` besides the English stop words; empty for English and unknown languages."""
    if lang == ENGLISH or lang not in STOP_WORDS:
        return frozenset()
    return frozenset(chain.from_iterable((w, w.capitalize(), w.upper()) for w in STOP_WORDS[lang]))
