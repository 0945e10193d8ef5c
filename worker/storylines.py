"""Storyline tracking in the worker: the scorer (`track`) fed from the store, its decisions recorded.

    Tracking.track:  a batch's new originals ─► one decision per storyline ─► follow-ups stored
                     (in the batch's transaction), the rest ─► the emerging-story detector (emerging.py)
    build_tracker:   the store's storylines + a replay of its recent window ─► a warm Tracker

The tracker holds word statistics and per-storyline background scores in memory. They are a
function of the store's recent window, so a restart rebuilds them by replaying that window in
time order through `stream`, the same loop `storywatch eval tracking` runs. A storyline that is
new or whose definition changed also looks back: its follow-ups in the window are recorded
once (its `profile_hash` marks the definition the look-back was made for); replayed decisions
of other storylines are not recorded again, so a restart never changes what was decided.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

from loguru import logger
from sqlite_utils import Database

from worker import saved_tracker, store
from worker.ingest import seeds
from worker.config import Settings, StorylineConfig, TrackingSettings, is_file_seed
from worker.errors import StorywatchError
from worker.models import FollowUp, Indexed, Item, Stored, StorylineDef
from worker.tracking.spelling import Spelling
from worker.tracking.decisions import Decision, Decisions, Doc, StorylineSpec
from worker.tracking.settings import TrackerConfig
from worker.tracking.track import Tracker
from worker.emerging import Emerging, GroupItem, StoryGroup, record_suggestion, source_of


REPLAY_MAX = 5000  # newest originals replayed at start: enough for word statistics, a few seconds
NAMES_COUNTED = 30  # a feed's items its names are counted over on a rebuild, at least (evidence.py)
NAMES_BUDGET = 2000  # earlier items read for that on one rebuild, at most (about 2 s)


def tracker_config(settings: TrackingSettings, bucket_key: bytes = b"") -> TrackerConfig:
    """The tracker's settings (`bucket_key`: the store's, `bucket_key(db)`; none in evaluations)."""
    return replace(TrackerConfig(), threshold=settings.threshold, adapt=settings.adapt, bucket_key=bucket_key)


def bucket_key(db: Database) -> bytes:
    """The key of the document-frequency buckets, from the store's own secret (`store.identity_key`)."""
    return hashlib.blake2b(store.identity_key(db).encode(), digest_size=16, person=b"df-buckets").digest()


def stream(tracker: Tracker, docs: Iterable[Doc], joins: Mapping[str, Sequence[StorylineSpec]],
           joined: Callable[[StorylineSpec], None] | None = None) -> Iterator[tuple[Doc, Decisions]]:
    """Decide each doc (in the order given) against the storylines tracked so far, then learn from
    it; a storyline in `joins[doc.id]` starts right after that doc (its last seed), then
    `joined(spec)` is called."""
    for doc in docs:
        decisions = tracker.process(doc)
        yield doc, decisions
        for spec in joins.get(doc.id, ()):
            tracker.add_storyline(spec)
            if joined is not None:
                joined(spec)


def doc_of(item: Stored) -> Doc:
    return Doc(str(item.id), item.title, item.text, item.published_at.timestamp(),
               source=names_source(item.feed_id, item.identity, item.source))


def arriving_doc(item_id: int, item: Item) -> Doc:
    """A new item as the tracker sees it, with the analysis its parsing process made."""
    return Doc(str(item_id), item.title, item.text, item.published_at.timestamp(), item.analysis,
               source=names_source(item.feed_id, item.identity, item.source))


def names_source(feed_id: int | None, identity: str, source: str) -> str:
    """The source a doc's names are counted under (evidence.py): its feed; a backfilled file or
    archive that is no stored feed on its own ("backfill:KEY", "jsonl:KEY", from its identity);
    the seeds apart."""
    if feed_id is not None:
        return f"feed:{feed_id}"
    if identity.startswith(("backfill:", "jsonl:")):
        kind, key, _ = identity.split(":", 2)
        return f"{kind}:{key}"
    return source


def definition_hash(storyline: StorylineDef) -> str:
    """What a storyline's profile is made of: when it changes, the storyline looks back again."""
    parts = [storyline.title, storyline.description, storyline.keywords, storyline.aliases,
             storyline.exclude, storyline.seed_ids]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def spec_of(storyline: StorylineDef, seeds: Mapping[int, Stored]) -> StorylineSpec:
    stored = [seeds[i] for i in storyline.seed_ids if i in seeds]
    return StorylineSpec(
        id=storyline.id,
        title=storyline.title,
        seeds=tuple(doc_of(seed) for seed in stored),
        starts=first_dated([seed.published_at.timestamp() for seed in stored if seed.date_flag != "missing"]),
        description=storyline.description,
        keywords=storyline.keywords,
        aliases=storyline.aliases,
        exclude=storyline.exclude,
        threshold=storyline.threshold,
        expires_after=storyline.expires_after.total_seconds() if storyline.expires_after else None,
        tracked_since=storyline.created_at.timestamp() if storyline.created_at else None,
    )


def first_dated(times: Sequence[float]) -> float:
    """When a storyline starts deciding: its first dated seed. A seed with no date of its own
    (a notes file, dated by when it was added) does not move it; with no dated seed at all,
    anything the tracker sees can follow up (the look-back window bounds what it sees)."""
    return min(times, default=-math.inf)


def followup_of(decision: Decision, words: Sequence[str] = ()) -> FollowUp:
    """A follow-up decision as stored: the score, the threshold and the reasons in plain data;
    each shared term as [token, weight, the item's words for it] ("ceremoni", "ceremony"; read
    back by ``models.term_words``)."""
    reasons = decision.reasons
    closest = reasons.closest_id if reasons else None
    return FollowUp(
        storyline_id=decision.storyline_id,
        item_id=int(decision.doc_id),
        score=round(decision.score, 4),
        threshold=round(decision.threshold, 4),
        raw_score=round(decision.raw, 4),
        reasons={
            "top_terms": [[t, w, word] for (t, w), word in zip(reasons.top_terms, words)] if reasons else [],
            "names": list(reasons.names) if reasons else [],
            "closest_similarity": reasons.closest_similarity if reasons else None,
            "margin": round(decision.margin, 4),
            "evidence": list(reasons.evidence) if reasons else [],
            "evidence_score": round(reasons.evidence_score, 4) if reasons else 0.0,
            **({"like_marked": list(reasons.like_marked)} if reasons and reasons.like_marked else {}),
        },
        novelty=decision.novelty,
        closest_item_id=int(closest) if closest and closest.isdigit() else None,
    )


@dataclass
class Replayed:
    tracker: Tracker
    version: str
    looked_back: dict[str, int]  # storyline id → follow-ups found in the window by its look-back
    since: dt.datetime  # the start of the window replayed
    found: list[FollowUp] = field(default_factory=list)  # those follow-ups
    hashes: dict[str, str] = field(default_factory=dict)  # the definitions they were looked for with
    storylines: list[StorylineDef] = field(default_factory=list)
    replayed: int = 0  # items replayed


def build_tracker(db: Database, settings: TrackingSettings, now: dt.datetime,
                  emerging: Emerging | None = None, pending: Sequence[int] = (), *, loading: bool = False) -> Replayed:
    """A tracker warmed on the store's recent window; new or changed storylines look back over it.
    `pending`: stored items about to be tracked live, left out of the replay. `loading`: a
    backfill about to load history from `now` on: the window ends before `now` (what it stored
    already of that history is replayed in its time order as it comes, not ahead of it), and
    every storyline decides over all of that history, whenever its seeds are dated."""
    skip = set(pending)
    since = now - settings.window
    # A live worker's window takes items dated a little ahead (clocks, time zones); a backfill's may
    # not: those are the history it is about to load, and would be seen before the items they follow.
    until = now if loading else now + dt.timedelta(days=1)
    found = store.recent_originals(db, since, until, REPLAY_MAX, inclusive=not loading)
    recent = [i for i in found if i.id not in skip]
    replayed = replay(db, settings, recent, since, emerging, whole_history=loading)
    with store.transaction(db):
        store.save_followups(db, replayed.found, now)
        store.set_profile_hashes(db, replayed.hashes)
    logger.debug("Tracker built: {storylines} storylines, {items} items replayed, look-back {found}",
                 storylines=len(replayed.storylines), items=len(recent), found=replayed.looked_back)
    return replayed


def replay(db: Database, settings: TrackingSettings, recent: Sequence[Stored], since: dt.datetime,
           emerging: Emerging | None = None, *, look_back: bool = True, whole_history: bool = False) -> Replayed:
    """The store's active storylines on a tracker that has processed `recent` (oldest first, the
    window from `since`), as the worker builds it; the look-back follow-ups are found, not saved:
    this writes nothing. Without `look_back`, a new or changed storyline starts at its first
    dated seed, as the live stream decides (an item's explanation), not over the whole window.
    With `whole_history` (a backfill), every storyline decides from the window's start on."""
    version = store.storylines_version(db)
    storylines = store.active_storylines(db)
    seeds = store.items_by_id(db, [i for s in storylines for i in s.seed_ids])
    position = {item.id: n for n, item in enumerate(recent)}
    tracker = Tracker(tracker_config(settings, bucket_key(db)))
    joins: dict[str, list[StorylineSpec]] = {}
    hashes = {s.id: definition_hash(s) for s in storylines}
    looking_back = {s.id for s in storylines if s.profile_hash != hashes[s.id]}
    window_start = since.timestamp()
    marked = _Marks(db, tracker, {s.id for s in storylines})
    for storyline in storylines:
        spec = spec_of(storyline, seeds)
        # A storyline added (or changed) now looks back over the window. In a backfill every one
        # does, whether or not it looked back before: a backfill run again after an interruption
        # then decides what one run would have, not only from the storylines' seeds on.
        if whole_history or look_back and storyline.id in looking_back:
            spec = replace(spec, starts=min(spec.starts if spec.starts is not None else math.inf, window_start))
        in_window = [i for i in storyline.seed_ids if i in position]
        if in_window:  # it starts where its last seed is, as in the live stream
            joins.setdefault(str(max(in_window, key=position.__getitem__)), []).append(spec)
        else:
            tracker.add_storyline(spec)
            marked.apply(spec)
    _count_earlier_names(db, tracker, recent, since)
    found = _replay_window(tracker, recent, joins, marked, looking_back, emerging)
    looked_back = {i: sum(f.storyline_id == i for f in found) for i in sorted(looking_back)}
    return Replayed(tracker, version, looked_back, since, found, {i: hashes[i] for i in looking_back}, storylines,
                    len(recent))


def _replay_window(tracker: Tracker, recent: Sequence[Stored], joins: Mapping[str, Sequence[StorylineSpec]],
                   marked: _Marks, looking_back: set[str], emerging: Emerging | None) -> list[FollowUp]:
    """The window through the tracker, oldest first: the follow-ups of the storylines looking back
    (found, not saved), and the items no storyline took offered to `emerging`."""
    found: list[FollowUp] = []
    by_id = {str(item.id): item for item in recent}
    for doc, decisions in stream(tracker, (doc_of(item) for item in recent), joins, marked.apply):
        if looking_back and (taken := [d for d in decisions.followups if d.storyline_id in looking_back]):
            spelled = Spelling.of(doc.title, doc.text)
            found += [followup_of(d, shown_terms(d, spelled, tracker)) for d in taken]
        if emerging is not None and not decisions.followup.any():
            item = by_id[doc.id]
            emerging.add(GroupItem(item.id, item.published_at, item.title), source_of(item), doc, tracker)
    return found

class _Marks:
    """The reader's marks of the store's storylines, given to a tracker as each storyline starts:
    in force for every decision it makes, the replayed ones too."""

    def __init__(self, db: Database, tracker: Tracker, storyline_ids: set[str]) -> None:
        self.tracker = tracker
        self.by_storyline: dict[str, list[store.Mark]] = {}
        for mark in store.marks(db):
            if mark.storyline_id in storyline_ids:
                self.by_storyline.setdefault(mark.storyline_id, []).append(mark)
        self.items = store.items_by_id(db, [m.item_id for ms in self.by_storyline.values() for m in ms])

    def apply(self, spec: StorylineSpec) -> None:
        seeds = {s.id for s in spec.seeds}
        marks = [(doc_of(self.items[m.item_id]), m.followup) for m in self.by_storyline.get(spec.id, ())
                 if m.item_id in self.items and str(m.item_id) not in seeds]  # an item made a seed after it was marked
        if marks:
            self.tracker.mark_many(spec.id, marks)


def _count_earlier_names(db: Database, tracker: Tracker, recent: Sequence[Stored], since: dt.datetime) -> None:
    """Each feed's (and backfilled file's) names counted over its last NAMES_COUNTED items at
    least, those before the window included: a running worker counts them over every item it has seen (evidence.py), so
    a rebuilt tracker would otherwise not know that a feed of a few items a day is on a beat.
    Reading an item costs about 1 ms: at most NAMES_BUDGET are read, for the feeds heard from
    last first."""
    in_window = Counter(doc_of(item).source for item in recent)
    replayed = {item.id for item in recent}  # a replay in arrival order may hold older items
    budget = NAMES_BUDGET
    for source in store.sources_by_last_item(db, since):
        wanted = min(NAMES_COUNTED - in_window[source], budget)
        if wanted > 0:
            earlier = [i for i in store.originals_before(db, source, since, wanted) if i.id not in replayed]
            budget -= len(earlier)
            for item in earlier:
                tracker.count_names(doc_of(item))


class Arrival(NamedTuple):
    """An item a backfill gives the tracker, in published order."""

    item_id: int
    item: Item
    replayed: bool  # stored before this run: learnt from again, its decisions not recorded again


class Tracking:
    """The worker's tracker: restored as the last process saved it (worker.saved_tracker) or
    built on first use, rebuilt when the storylines change."""

    def __init__(self, settings: TrackingSettings) -> None:
        self.settings = settings
        self.replayed: Replayed | None = None
        self.emerging = Emerging(settings.suggest_days)
        self.stale = False  # another process stored originals it learns from: `refresh` rebuilds it
        self.upto = 0  # the newest item id it accounts for: replayed, tracked, or stored before its build
        self.learnt = False  # since it was built or restored: worth saving
        self.may_restore = True  # not after a rollback: a saved state that fails is rebuilt

    def current(self, db: Database, now: dt.datetime, pending: Sequence[int] = ()) -> Tracker:
        if self.replayed is None and self.may_restore and (restored := saved_tracker.restore(db, self.settings, pending)):
            self.replayed, self.emerging, self.upto = restored.replayed, restored.emerging, restored.upto
        if self.replayed is None or self.replayed.version != store.storylines_version(db):
            if self.replayed is not None:
                logger.info("Storylines or the reader's marks changed: rebuilding the tracker")
            self.emerging = Emerging(self.settings.suggest_days)
            self.upto = store.write_marks(db)[0]  # the newest item, read first: what is stored during the build is newer
            self.replayed = build_tracker(db, self.settings, now, self.emerging, pending)
            self.learnt = True
        return self.replayed.tracker

    def forget(self) -> None:
        """Drop the tracker and the emerging groups: rebuilt from the store on next use."""
        self.replayed = None
        self.emerging = Emerging(self.settings.suggest_days)
        self.stale = False
        self.learnt = False
        self.may_restore = False

    def save(self, db: Database, now: dt.datetime) -> None:
        """Keep the tracker with the store for the next process, if it learnt anything and is
        not stale. Never fails: the next process takes up the one saved before if a running
        worker would hold the same (saved_tracker.restore), else rebuilds it."""
        if self.replayed is None or not self.learnt or self.stale:
            return
        try:
            saved_tracker.save(db, self.settings, self.replayed, self.emerging, self.upto, now)
        except Exception as exc:
            logger.warning("The tracker could not be saved ({error}): the next process takes up the one saved "
                           "before if it is still good, else rebuilds it", error=str(exc))
            return
        logger.debug("Tracker saved for the next process (up to item {upto})", upto=self.upto)
        self.learnt = False

    def saw(self, outside: Sequence[Indexed]) -> None:
        """Items another process stored: the tracker is stale if they include originals (an
        item is its own cluster) in the window it replayed, which a rebuild would learn."""
        if self.replayed is not None and any(
            e.cluster_id == e.item_id and e.published >= self.replayed.since for e in outside
        ):
            self.stale = True

    def refresh(self) -> None:
        """Drop a stale tracker (call it outside any write transaction: the rebuild takes seconds)."""
        if self.stale:
            self.forget()

    def track(self, db: Database, originals: Sequence[tuple[int, Item]], now: dt.datetime) -> dict[str, int]:
        """Decide the new originals (as just stored: id, item) against every storyline; record
        follow-ups and suggestions. Returns the follow-ups per storyline. (A backfill tracks
        with `track_history`.)"""
        if not originals:
            return {}
        tracker = self.current(db, now, [item_id for item_id, _ in originals])
        self.upto = max(self.upto, *(item_id for item_id, _ in originals))
        self.learnt = True
        found: list[FollowUp] = []
        grown: dict[int, StoryGroup] = {}
        for item_id, item in sorted(originals, key=lambda new: (new[1].published_at, new[0])):
            doc = arriving_doc(item_id, item)
            decisions = tracker.process(doc)
            followups = _followups(decisions, doc, tracker)
            found += followups
            member = GroupItem(item_id, item.published_at, item.title)
            if not followups and (group := self.emerging.add(member, source_of(item), doc, tracker)) is not None:
                grown[id(group)] = group
        with store.transaction(db):
            store.save_followups(db, found, now)
            for group in grown.values():
                record_suggestion(db, group, now, self.emerging.span)
        return dict(Counter(f.storyline_id for f in found))

    def loading(self, db: Database, start: dt.datetime) -> Tracker:
        """A backfill's tracker for its items from `start` on: built (or rebuilt, when the
        storylines changed) from what is stored before `start`. Call it outside any write
        transaction: a build takes seconds."""
        if self.replayed is None or self.replayed.version != store.storylines_version(db):
            self.emerging = Emerging(self.settings.suggest_days)
            self.replayed = build_tracker(db, self.settings, start, loading=True)
            self.learnt = False  # a tracker of history, not the live one: never saved
        return self.replayed.tracker

    def track_history(self, db: Database, arrivals: Sequence[Arrival], now: dt.datetime) -> dict[str, int]:
        """Decide a backfill's items in the order given (published order) and learn from each, as
        one uninterrupted backfill would: the follow-ups of new items are recorded; an item stored
        before (by an interrupted run) is only learnt from again, its decisions stand as recorded.
        Returns the follow-ups recorded per storyline. Suggests nothing: history is no news."""
        if not arrivals:
            return {}
        tracker = self.loading(db, arrivals[0].item.published_at)  # built already, unless rolled back
        found: list[FollowUp] = []
        for arrival in arrivals:
            doc = arriving_doc(arrival.item_id, arrival.item)
            decisions = tracker.process(doc)
            if not arrival.replayed:
                found += _followups(decisions, doc, tracker)
        store.save_followups(db, found, now)
        return dict(Counter(f.storyline_id for f in found))


def _followups(decisions: Decisions, doc: Doc, tracker: Tracker) -> list[FollowUp]:
    """The follow-ups among ``decisions`` as stored (the item is spelled only if there are any)."""
    taken = decisions.followups
    if not taken:
        return []
    spelled = Spelling.of(doc.title, doc.text)
    return [followup_of(d, shown_terms(d, spelled, tracker)) for d in taken]


def shown_terms(decision: Decision, spelled: Spelling, tracker: Tracker) -> list[str]:
    """A decision's shared terms as its item writes them ("ceremoni" -> "ceremony", the pair
    "dprk russia" -> "DPRK and Russia", russia -> "Moscow"; "" where the item has no word of its
    own for one: "th" of "75th"), for a person to read; the terms stay what is matched."""
    if decision.reasons is None:
        return []
    aliases = tracker.aliases(decision.storyline_id)
    return [spelled.shown(term, aliases) for term, _ in decision.reasons.top_terms]


def mark(db: Database, item_id: int, storyline_id: str, followup: bool | None, now: dt.datetime) -> str:
    """Record a reader's mark of an item for a storyline (None clears it), after checking that
    both exist and that the item is one the storyline decides on (not a seed, not a copy).
    Returns what changed, in words."""
    storyline = next((s for s in store.active_storylines(db) if s.id == storyline_id), None)
    if storyline is None:
        known = any(s.id == storyline_id for s in store.storyline_summaries(db))
        raise StorywatchError(f"storyline {storyline_id!r} is inactive: it is no longer in the config" if known
                              else f"no storyline {storyline_id!r} is tracked (see storywatch storylines list)")
    item = store.items_by_id(db, [item_id]).get(item_id)
    if item is None:
        raise StorywatchError(f"no item with id {item_id} (see storywatch items)")
    if item.cluster_id != item.id:
        raise StorywatchError(f"item {item_id} is a copy of item {item.cluster_id}: mark that one")
    if item_id in storyline.seed_ids:
        raise StorywatchError(f"item {item_id} is a seed of {storyline_id}: a seed needs no mark")
    return store.set_mark(db, storyline_id, item_id, followup, now)


def add_storyline(db: Database, storyline: StorylineConfig, seed_ids: Sequence[int], now: dt.datetime) -> None:
    """A storyline defined outside the config (`storylines add`): kept when the config changes."""
    with store.transaction(db):
        store.save_storyline(db, storyline, now, origin="cli")
        store.set_storyline_seeds(db, storyline.id, seed_ids, now)


def config_specs(settings: Settings) -> list[StorylineSpec]:
    """The config's storylines as the tracker takes them, seeds read from their files (for an
    evaluation that does not touch the store; seeds given as URLs are left out)."""
    described = {d.path.resolve(): d for d in seeds.read_seed_folder(settings.seeds.path)} if settings.seeds.path else {}
    specs = []
    for s in settings.storylines:
        docs, dated = [], []
        for seed in s.seeds:
            if not is_file_seed(seed):
                continue
            doc = described.get(Path(seed).resolve()) or seeds.read_storyline_seed(s.id, Path(seed))
            when = dt.datetime.combine(doc.published, dt.time(), dt.timezone.utc).timestamp() if doc.published else 0.0
            docs.append(Doc(f"seed:{doc.path.name}", doc.title, doc.text, when, source="seeds"))
            dated += [when] if doc.published else []
        specs.append(StorylineSpec(s.id, s.title, tuple(docs), s.description, s.keywords, s.aliases, s.exclude,
                                   s.threshold, s.expires_after.total_seconds() if s.expires_after else None,
                                   starts=first_dated(dated)))
    return specs
