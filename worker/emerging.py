"""Emerging stories: items no storyline took, grouped by the distinctive terms they share; a group
that grows across sources is suggested as a storyline to track."""

from __future__ import annotations

import datetime as dt
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import NamedTuple
import numpy as np
import numpy.typing as npt

from sqlite_utils import Database

from worker import store
from worker.models import Item, Stored
from worker.tracking.spelling import Spelling
from worker.tracking.decisions import Doc
from worker.tracking.track import Tracker


TERMS_PER_ITEM = 12
LOOKUP_TERMS = 30  # an item's terms compared with the groups' cores
SHARED_TERMS = 3  # an item joins a group when this many of its key terms are among the group's
MIN_ITEMS, MIN_SOURCES = 3, 2
MIN_WINDOW = 200  # documents seen before word statistics can tell a distinctive term from a common one
MAX_GROUP = 200  # a group this big is no longer an emerging story: it stops growing
MAX_OPEN = 10_000  # open groups kept (~2 KB each); beyond, the oldest single items are let go


class GroupItem(NamedTuple):
    """What a group keeps of an item (not its text: thousands of groups are open at once)."""

    id: int
    published_at: dt.datetime
    title: str


@dataclass(eq=False, slots=True)
class StoryGroup:
    items: list[GroupItem]  # in the order they arrived, which need not be their published order
    terms: Counter[str] = field(default_factory=Counter)  # its items' key terms, counted
    sources: set[str] = field(default_factory=set)
    core: tuple[str, ...] = ()  # its most common key terms: what an item must share (a tuple: 1/5 of a set's size)
    words: dict[str, str] = field(default_factory=dict)  # its terms as its items write them (a suggestion's)
    first_at: dt.datetime = field(init=False)  # its items' first and last publication times: asked
    last_at: dt.datetime = field(init=False)   # of every group an item shares terms with

    def __post_init__(self) -> None:
        self.first_at = min(i.published_at for i in self.items)
        self.last_at = max(i.published_at for i in self.items)

    def take(self, item: GroupItem, source: str, terms: list[str]) -> None:
        self.items.append(item)
        self.sources.add(source)
        self.terms.update(terms)
        self.first_at, self.last_at = min(self.first_at, item.published_at), max(self.last_at, item.published_at)

    def spans(self, when: dt.datetime) -> dt.timedelta:
        """How far apart its items would lie with one published at ``when``."""
        return max(self.last_at, when) - min(self.first_at, when)


class Emerging:
    """Originals that match no storyline, grouped by the key terms they share (single pass: an
    item joins the recent group whose core terms it shares most, at least 3). A group of 3 or
    more items from 2 or more sources within `days` becomes a suggested storyline.

    Only a group's core (its 12 most common key terms) attracts items, so a group cannot snowball
    into "everything"; an inverted index from core term to groups keeps the cost per item
    independent of how many groups are open. Memory is bounded: at most MAX_OPEN groups stay
    open; past that, the oldest groups of a single item are dropped (a busy install's items of
    the last day or so can all still start a story)."""

    def __init__(self, days: int) -> None:
        self.span = dt.timedelta(days=days)
        self.by_term: dict[str, list[StoryGroup]] = {}
        self.groups: list[StoryGroup] = []
        self._swept: dt.datetime | None = None

    def add(self, item: GroupItem, source: str, doc: Doc, tracker: Tracker) -> StoryGroup | None:
        """Place the item (`doc`: the item as just processed by `tracker`; `source`: its publisher);
        the group it completes or grows, if that group is now a suggestion."""
        if tracker.n_docs < MIN_WINDOW:
            return None
        unit = tracker.unit(doc)
        wide = key_terms(unit.features, unit.values, LOOKUP_TERMS)
        terms = list(map(sys.intern, wide[:TERMS_PER_ITEM]))  # kept by thousands of groups: one copy a word
        if len(terms) < SHARED_TERMS:
            return None
        self._forget_before(item.published_at - self.span)
        # The groups whose cores share the item's terms (its 30 best: a short text's 12 best may
        # miss words the group is built on), counted in C: the index lists exactly each core.
        mentions = Counter(chain.from_iterable([self.by_term.get(term, ()) for term in wide]))
        # By publication time, not arrival: a feed's first poll brings years of archive at once,
        # and a group of its newest items must not take one from 2005 ("2005 to 2018", not 3 days).
        eligible = [g for g, n in mentions.items() if n >= SHARED_TERMS and g.spans(item.published_at) <= self.span]
        if not eligible:
            group = StoryGroup([item], Counter(terms), {source})
            self.groups.append(group)
            self._recore(group)
            if len(self.groups) > MAX_OPEN:
                self._let_go_of_single_items()
            return None
        group = max(eligible, key=lambda g: (mentions[g], -g.items[0].id))
        group.take(item, source, terms)
        self._recore(group)
        return group if len(group.items) >= MIN_ITEMS and len(group.sources) >= MIN_SOURCES else None

    def _recore(self, group: StoryGroup) -> None:
        """The group's core is its most common terms (none once it is full: it stops growing);
        the index follows."""
        full = len(group.items) >= MAX_GROUP
        core = () if full else tuple(t for t, _ in group.terms.most_common(TERMS_PER_ITEM))
        old, new = set(group.core), set(core)
        for term in group.core:
            if term not in new:
                postings = self.by_term[term]
                postings.remove(group)
                if not postings:
                    del self.by_term[term]
        for term in core:
            if term not in old:
                self.by_term.setdefault(term, []).append(group)
        group.core = core

    def _forget_before(self, start: dt.datetime) -> None:
        """Groups whose newest item is older than the span stop taking items (swept at most ten
        times a span: a scan of every open group)."""
        if self._swept is not None and start - self._swept < self.span / 10:
            return
        self._swept = start
        self._let_go([g for g in self.groups if g.last_at < start])

    def _let_go_of_single_items(self) -> None:
        """Down to three quarters of MAX_OPEN groups: the oldest groups of one item go first
        (in bulk: once every MAX_OPEN / 4 new groups)."""
        singles = [g for g in self.groups if len(g.items) == 1]
        self._let_go(singles[: len(self.groups) - MAX_OPEN * 3 // 4])

    def _let_go(self, groups: list[StoryGroup]) -> None:
        """Close ``groups``: out of the list and of the index, where only the terms of their
        cores are looked at (rebuilding the whole index was 110 ms each time)."""
        if not groups:
            return
        gone = {id(g) for g in groups}
        self.groups = [g for g in self.groups if id(g) not in gone]
        for term in {t for g in groups for t in g.core}:
            kept = [g for g in self.by_term[term] if id(g) not in gone]
            if kept:
                self.by_term[term] = kept
            else:
                del self.by_term[term]


def source_of(item: Stored | Item) -> str:
    return item.publisher or str(item.feed_id)


def key_terms(names: Sequence[str], weights: npt.NDArray[np.float64], count: int = TERMS_PER_ITEM) -> list[str]:
    """An item's most distinctive words and word pairs: the heaviest in its TF-IDF vector
    (`names` and their `weights`: weighty in the item, rare in the recent window), ties in the
    vector's order; numbers are no topic. Only the heaviest few are sorted, unless numbers
    crowd them out (a stable sort of all, a third of the per-item time of emerging groups)."""
    if count <= 0:
        return []
    heaviest = _heaviest(weights, 2 * count)
    terms = _words(names, heaviest, count)
    if len(terms) < count and len(heaviest) < len(weights):
        terms = _words(names, _heaviest(weights, len(weights)), count)
    return terms


def _heaviest(weights: npt.NDArray[np.float64], count: int) -> list[int]:
    """The places of the `count` heaviest weights and of any tied with the last of them,
    heaviest first, ties in order: the start of the stable sort of all of them."""
    kept = np.arange(len(weights))
    if len(weights) > count:
        edge = np.partition(weights, len(weights) - count)[len(weights) - count]
        kept = np.flatnonzero(weights >= edge)
    order: list[int] = kept[np.argsort(-weights[kept], kind="stable")].tolist()
    return order


def _words(names: Sequence[str], order: Sequence[int], count: int) -> list[str]:
    """The first `count` of `names` in `order` that are not numbers."""
    return list(islice((names[n] for n in order if not names[n].isdigit()), count))


def record_suggestion(db: Database, group: StoryGroup, now: dt.datetime, span: dt.timedelta) -> int:
    """Record a group as a suggestion (``span``: the days its items may lie apart)."""
    first = min(group.items, key=lambda i: (i.published_at, i.id))  # the headline that broke it
    terms = [t for t, _ in group.terms.most_common(6)]
    words = _group_words(db, group, terms)
    return store.save_suggestion(db, first.title, words, [i.id for i in group.items], len(group.sources),
                                 first.published_at, group.last_at, now, span=span)


SPELLED_ITEMS = 10  # a suggestion's newest items read for how they write its terms


def _group_words(db: Database, group: StoryGroup, terms: Sequence[str]) -> list[str]:
    """A suggestion's terms as its items write them ("released", not the stem "releas"). The
    items' texts are read from the store once, when a term is new to the group (a group keeps
    no text): its core terms are in most of its items, so its newest few are enough."""
    if any(t not in group.words for t in terms):
        items = store.items_by_id(db, [i.id for i in group.items[-SPELLED_ITEMS:]]).values()
        spelled = [Spelling.of(item.title, item.text) for item in items]
        group.words.update({t: next(filter(None, (s.shown(t) for s in spelled)), "") for t in terms})
    return [group.words[t] for t in terms if group.words[t]]  # "th" of "75th" is no word: not shown
