"""How the tracker reads a text: the generic aliases, spelling fixes toward the storylines'
names, and the analysis, vector and names evidence of the document being decided (decide and
observe share them)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from worker.tracking.analysis import (
    Analysis, Fixes, NO_FIXES, analyze, df_buckets, feature_names, generic_aliases, read_tokens, recipe, sentences, unpack,
)
from worker.tracking.corpus import Corpus
from worker.tracking.decisions import Doc
from worker.tracking.evidence import Evidence, Mentions, Zones
from worker.tracking.profiles import Spellings
from worker.tracking.settings import TrackerConfig
from worker.tracking.aliases import AliasTable
from worker.tracking.spelling import SpellingIndex
from worker.tracking.textproc import BREAK
from worker.tracking.vectors import Unit


class Reader:
    """Reads documents into analyses and vectors; learns the storylines' names for spelling fixes."""

    def __init__(self, config: TrackerConfig, corpus: Corpus, evidence: Evidence) -> None:
        self._config = config
        self._corpus = corpus
        self._evidence = evidence
        self.default_aliases = generic_aliases(config.default_aliases)
        self._recipe = recipe(config)
        # Storylines' names, for spelling fixes: their words, their runs of two or more words
        # ("pak myong", "myong ho", "pak myong ho") and the one-word keywords.
        self._spelling = SpellingIndex()
        self._name_runs: Counter[str] = Counter()
        self._one_word_names: Counter[str] = Counter()
        self._last: tuple[Doc, Analysis, Unit | None] | None = None
        self._last_mentions: tuple[Doc, Mentions | None] | None = None

    def tokens(self, text: str, aliases: AliasTable) -> list[str]:
        """The content tokens of a keyword, alias or exclude phrase, clauses ignored."""
        return [t for t in read_tokens(text, False, aliases, NO_FIXES, (set(), set())) if t != BREAK]

    def analyze(self, doc: Doc, aliases: AliasTable | None = None, plain: Analysis | None = None) -> Analysis:
        """The document's analysis under an alias table, spelling fixes applied; ``plain``: its
        analysis without fixes, if already made."""
        table = aliases or self.default_aliases
        if plain is None:
            plain = analyze(doc.title, doc.text, self._config, table)
        fixes = self.fixes(plain)
        return analyze(doc.title, doc.text, self._config, table, fixes) if fixes else plain

    def fixes(self, plain: Analysis) -> Fixes:
        """The spelling variants of storyline names in a text (its analysis without fixes).

        A capitalised word one edit from a name word is a variant only where the text names one
        of the storyline names with it: a run of two or more of the name's words, at least one
        written alike ("Park Myung-ho" or "Minister Park" for Pak Myong-ho, not a lone "Time" for
        Tim), or one edit from a one-word keyword ("Erciz" for Ercis). The fix then applies to
        every capitalised use of the word in the text ("... Park said")."""
        if not self._config.spelling_variants or not (self._name_runs or self._one_word_names):
            return NO_FIXES
        correct = self._spelling.correct
        variants = {w: c for w in plain.capitals.split() if (c := correct(w)) is not None}
        if not variants:
            return NO_FIXES
        fixes = {w: c for w, c in variants.items() if c in self._one_word_names}
        for key in plain.names:
            words = key.split(" ")
            if len(words) > 1 and not variants.keys().isdisjoint(words):
                fixes.update(self._name_variants(words, variants))
        return fixes

    def _name_variants(self, words: list[str], variants: Mapping[str, str]) -> dict[str, str]:
        """The fixes by which runs of ``words`` (a name in the text) spell a storyline name."""
        fixed = [variants.get(w, w) for w in words]
        found: dict[str, str] = {}
        for i in range(len(words) - 1):
            for j in range(i + 2, len(words) + 1):
                changed = [(w, f) for w, f in zip(words[i:j], fixed[i:j]) if w != f]
                if changed and len(changed) < j - i and " ".join(fixed[i:j]) in self._name_runs:
                    found.update(changed)
        return found

    def prepared(self, doc: Doc) -> Analysis | None:
        """The analysis made where the item was parsed (without spelling fixes), if it was made
        with this tracker's analysis settings."""
        if doc.prepared is None or doc.prepared.recipe != self._recipe:
            return None
        return unpack(doc.prepared)

    def analysis(self, doc: Doc) -> Analysis:
        """The document's analysis under the generic aliases; decide() and observe() of one
        document share it."""
        last = self._last
        if last is not None and last[0] is doc:
            return last[1]
        analysis = self.analyze(doc, plain=self.prepared(doc))
        self._last = (doc, analysis, None)
        return analysis

    def unit(self, doc: Doc, analysis: Analysis) -> Unit:
        """The unit vector of the document last analysed, under the IDF of its first use."""
        last = self._last
        if last is not None and last[0] is doc and last[2] is not None:
            return last[2]
        unit = self._corpus.unit(analysis)
        self._last = (doc, analysis, unit)
        return unit

    def vector(self, doc: Doc, analysis: Analysis) -> dict[str, float]:
        return self.unit(doc, analysis).as_dict()

    def mentions(self, doc: Doc, analysis: Analysis) -> Mentions | None:
        """Where the document names the storylines' units."""
        last = self._last_mentions
        if last is not None and last[0] is doc:
            return last[1]
        cfg = self._config
        read = lambda: sentences(doc.text, self.default_aliases, cfg.body_max_tokens)  # noqa: E731 (lazy)
        found = self._evidence.mentions(Zones(analysis.title_terms, analysis.lead_terms, analysis.weights,
                                              cfg.phrase_weight, cfg.title_weight, read, feature_names(analysis.weights),
                                              df_buckets(analysis, cfg.bucket_key)))
        self._last_mentions = (doc, found)
        return found

    def __getstate__(self) -> dict[str, object]:
        """What a saved tracker keeps (worker.saved_tracker): not the last document's mentions, a cache."""
        return {**self.__dict__, "_last_mentions": None}

    def forget_mentions(self) -> None:
        """A storyline came: the units it declares are looked for from now on."""
        self._last_mentions = None

    def learn(self, spellings: Spellings, sign: int) -> None:
        """Count a storyline's names in (or, sign -1, out of) the spelling fixes' lexicon."""
        change = self._spelling.add if sign > 0 else self._spelling.remove
        for word in spellings.words:
            change(word)
        self._name_runs.update(dict.fromkeys(spellings.runs, sign))
        self._one_word_names.update(dict.fromkeys(spellings.one_word, sign))
        self._name_runs = +self._name_runs  # drop what reached zero
        self._one_word_names = +self._one_word_names
