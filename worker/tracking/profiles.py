"""A storyline as the tracker holds it: its members (seeds, adopted follow-ups, the reader's
"yes" marks), its keywords and names, and the profile made of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence, Set as AbstractSet
from dataclasses import dataclass, field
from typing import NamedTuple

from worker.tracking.analysis import Analysis, name_key
from worker.tracking.decisions import Decision, Doc, StorylineSpec
from worker.tracking.settings import ScoreMode, TrackerConfig
from worker.tracking.aliases import AliasTable
from worker.tracking.vectors import Member, add_into, heaviest_unit, sparse_dot


class Spellings(NamedTuple):
    """What a storyline adds to the lexicon of spelling fixes (see Reader.fixes)."""

    words: tuple[str, ...]
    """Words of its names (keywords, names in its seeds)."""
    runs: tuple[str, ...]
    """Runs of two or more consecutive words of its names, space-joined."""
    one_word: tuple[str, ...]
    """Its one-word keywords."""


@dataclass
class MarkedItem:
    """A reader's judgement of an item for a storyline (Tracker.mark)."""

    followup: bool
    analysis: Analysis
    """Under the storyline's reading."""
    vector: dict[str, float]
    """Under the IDF of the last refresh."""


@dataclass
class Storyline:
    spec: StorylineSpec
    aliases: AliasTable
    members: list[Member]
    keyword_analysis: Analysis | None
    exclude: tuple[tuple[str, ...], ...]
    known_names: set[str]
    name_features: set[str]
    slot: int = -1
    """Its position in the tracker's per-storyline arrays (the profile matrix's columns, the
    backgrounds' rows 2·slot and 2·slot + 1, its clock)."""
    seed_ids: frozenset[str] = frozenset()
    keyword_keys: tuple[tuple[str, str], ...] = ()
    """(keyword as written, its feature key), to show keyword hits in the reasons."""
    followups: set[str] = field(default_factory=set)
    """Ids of recent follow-ups: not background when the background is rebuilt."""
    total: dict[str, float] = field(default_factory=dict)
    """Weighted sum of the members' unit vectors (and the keywords'): the profile before
    the name boost, truncation and normalisation."""
    centroid: dict[str, float] = field(default_factory=dict)
    seed_centroid: dict[str, float] = field(default_factory=dict)
    background_centroid: dict[str, float] = field(default_factory=dict)
    """The profile the background scores were measured against (see adapt_rebuild_drift)."""
    adopted: int = 0
    own_firsts: frozenset[str] = frozenset()
    """Where its own aliases start a rule the generic ones do not: an item with none of these
    tokens reads the same under both, and is scored with its generic analysis."""
    spellings: Spellings = field(default_factory=lambda: Spellings((), (), ()))
    marked: dict[str, MarkedItem] = field(default_factory=dict)
    """The reader's marks, by item id. A "yes" is also a member of the profile, as a seed is."""


Analyze = Callable[[Doc, AliasTable], Analysis]
Tokens = Callable[[str, AliasTable], list[str]]


def new_storyline(spec: StorylineSpec, default_aliases: AliasTable, analyze: Analyze, tokens: Tokens) -> Storyline:
    """A storyline from its spec: its seeds read (``analyze``) as members, its keywords, aliases
    and excluded phrases read into tokens; no profile yet (see refresh)."""
    aliases = AliasTable.build(spec.aliases, base=default_aliases) if spec.aliases else default_aliases
    members = [Member(s.id, s.published, 1.0, analyze(s, aliases)) for s in spec.seeds]
    kw_analysis = None
    name_features: set[str] = set()
    known: set[str] = set()
    keyword_keys: list[tuple[str, str]] = []
    if spec.keywords:
        kw_analysis = analyze(Doc(f"{spec.id}#keywords", "", ". ".join(spec.keywords), 0.0), aliases)
        for kw in spec.keywords:
            toks = tokens(kw, aliases)
            known.add(name_key(toks))
            keyword_keys.append((kw, name_key(toks)))
            name_features.update(_words_and_pairs(toks))
    for group in filter(None, spec.aliases):
        name_features.update(_words_and_pairs(tokens(group[0], aliases)))
    for m in members:
        known.update(m.analysis.names)
        for key in m.analysis.names:
            name_features.update(_words_and_pairs(key.split(" ")))
    exclude = tuple(tuple(tokens(e, aliases)) for e in spec.exclude)
    return Storyline(
        spec=spec, aliases=aliases, members=members, keyword_analysis=kw_analysis, exclude=tuple(e for e in exclude if e),
        known_names=known, name_features=name_features, seed_ids=frozenset(s.id for s in spec.seeds),
        keyword_keys=tuple(keyword_keys), own_firsts=aliases.firsts_beyond(default_aliases),
        spellings=spellings_of(known, keyword_keys),
    )


def _words_and_pairs(tokens: Sequence[str]) -> set[str]:
    return {*tokens, *(f"{a} {b}" for a, b in zip(tokens, tokens[1:]))}


def spellings_of(names: Iterable[str], keyword_keys: Sequence[tuple[str, str]]) -> Spellings:
    """``names``: name keys (keywords' included); ``keyword_keys``: (keyword, its key)."""
    words: set[str] = set()
    runs: set[str] = set()
    for key in names:
        parts = key.split(" ")
        if len(parts) > 1:
            words.update(parts)
            runs.update(" ".join(parts[i:j]) for i in range(len(parts) - 1) for j in range(i + 2, len(parts) + 1))
    one_word = {key for _, key in keyword_keys if key and " " not in key}
    return Spellings(tuple(sorted(words | one_word)), tuple(sorted(runs)), tuple(sorted(one_word)))


def rule_starts(starts: str) -> frozenset[str]:
    """An analysis' ``starts`` as a set of tokens: read once an item, then asked of each
    storyline with aliases of its own (a substring search per rule start was 6 % of scoring)."""
    return frozenset(starts.split())


def reads_differently(story: Storyline, starts: AbstractSet[str]) -> bool:
    """Whether the storyline's own aliases apply to a text with these rule starts (``rule_starts``)."""
    return not story.own_firsts.isdisjoint(starts)


def similarity(story: Storyline, vector: dict[str, float], central: float, mode: ScoreMode) -> float:
    """Score of an item against a storyline, given its cosine with the centroid."""
    if mode == "centroid":
        return central
    nearest = max((sparse_dot(vector, m.vector) for m in story.members), default=0.0)
    if mode == "nearest":
        return nearest
    return 0.5 * (central + nearest)


def refresh(story: Storyline, vector: Callable[[Analysis], dict[str, float]], cfg: TrackerConfig) -> None:
    """Re-weight every member (and mark) with the current IDF (``vector``) and remake the profile."""
    total: dict[str, float] = {}
    seeds_only: dict[str, float] = {}
    for m in story.members:
        m.vector = vector(m.analysis)
        add_into(total, m.vector, m.weight)
        if m.is_seed and story.adopted:
            add_into(seeds_only, m.vector, 1.0)
    if story.keyword_analysis is not None:
        keywords = vector(story.keyword_analysis)
        add_into(total, keywords, cfg.keyword_weight)
        if story.adopted:
            add_into(seeds_only, keywords, cfg.keyword_weight)
    for mark in story.marked.values():
        mark.vector = vector(mark.analysis)
    story.total = total
    story.centroid = profile(story, total, cfg)
    story.seed_centroid = profile(story, seeds_only, cfg) if story.adopted else story.centroid


def profile(story: Storyline, total: dict[str, float], cfg: TrackerConfig) -> dict[str, float]:
    """A unit profile vector from a sum of member vectors: names boosted, truncated."""
    weight = cfg.name_weight
    if weight != 1.0:
        total = dict(total)
        for f in story.name_features:
            if f in total:
                total[f] *= weight
    return heaviest_unit(total, cfg.profile_terms)


def adopt(story: Storyline, doc: Doc, analysis: Analysis, vector: dict[str, float], decision: Decision,
          cfg: TrackerConfig) -> bool:
    """Add a confident follow-up to the members (bounded, oldest adopted dropped first), unless
    it is too far from the seeds' own profile; whether it was added (the profile is then
    remade from ``story.total``)."""
    if story.adopted:
        raw_seed = sparse_dot(vector, story.seed_centroid)
        if raw_seed < decision.threshold + cfg.adapt_guard:
            return False
    if not story.adopted:
        story.seed_centroid = story.centroid  # the profile so far is the seeds' alone
    # Incremental: add the new member to the sum of member vectors (and take out the
    # oldest adopted one beyond adapt_max); the periodic refresh re-weights them all.
    story.members.append(Member(doc.id, doc.published, cfg.adapt_weight, analysis, vector, is_seed=False))
    add_into(story.total, vector, cfg.adapt_weight)
    story.adopted += 1
    if story.adopted > cfg.adapt_max:
        for i, m in enumerate(story.members):
            if not m.is_seed:
                del story.members[i]
                add_into(story.total, m.vector, -m.weight)
                story.adopted -= 1
                break
    return True


def drifted(story: Storyline, cfg: TrackerConfig) -> bool:
    """Whether adaptation has moved the profile enough from the one its background was measured
    against (cosine below 1 - adapt_rebuild_drift) to measure it again: early adoptions move a
    4-seed profile a lot, later ones barely, and a rebuild costs one dot product per recent item."""
    return cfg.adapt_rebuild_background and 1.0 - sparse_dot(story.centroid, story.background_centroid) >= \
        cfg.adapt_rebuild_drift


def record_mark(story: Storyline, doc: Doc, mark: MarkedItem | None, weight: float) -> None:
    """Record the reader's mark (None clears it): a "yes" joins the members as a seed does (never
    dropped), a "no" takes the item out of them if the storyline had adopted it."""
    story.marked.pop(doc.id, None)
    _drop_member(story, doc.id)
    if mark is None:
        return
    story.marked[doc.id] = mark
    if mark.followup:
        story.members.append(Member(doc.id, doc.published, weight, mark.analysis, mark.vector))
        add_into(story.total, mark.vector, weight)
        story.followups.add(doc.id)
        story.known_names.update(mark.analysis.names)
    else:
        story.followups.discard(doc.id)


def _drop_member(story: Storyline, doc_id: str) -> None:
    """Take an item (not a seed) out of the storyline's members, if it is one."""
    for i, m in enumerate(story.members):
        if m.id == doc_id and m.id not in story.seed_ids:
            del story.members[i]
            add_into(story.total, m.vector, -m.weight)
            story.adopted -= not m.is_seed
            return
