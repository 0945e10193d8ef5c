"""Why an item did or did not join each storyline (`storywatch items show`).

The decisions are made again, with every reason, on a tracker rebuilt from the store as the
worker builds it (`storylines.replay`: its storylines and seeds, then the originals the worker
tracked before the item: those that arrived in the `[tracking] window` before it, in the order
they arrived; for a backfilled item, those published in the window before it, in time order, as
backfill tracks), and the item is decided, not observed:
nothing is written and nothing is learnt. The recorded links are read as they are: a decision
made again can differ from the one recorded (items stored since, a storyline changed, a live
tracker that had seen more than one window), and the output says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, replace

from sqlite_utils import Database

from worker import store, storylines
from worker.clock import UTC
from worker.config import TrackingSettings
from worker.models import Stored, StorylineDef
from worker.tracking.spelling import Spelling
from worker.tracking.decisions import Decision, Idle

UNDECIDED = ("inactive", "copy")  # recorded links only: the storyline is not tracked, the item is a copy


@dataclass(frozen=True, slots=True)
class Recorded:
    """A link the store holds: the item is a seed or a follow-up of the storyline."""

    decision: str  # "seed" | "followup"
    score: float | None
    threshold: float | None
    decided_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Closest:
    """The seed or follow-up in the storyline's profile most similar to the item."""

    item_id: int | None
    kind: str  # "seed" | "follow-up"
    title: str
    similarity: float


@dataclass(frozen=True, slots=True)
class StorylineWhy:
    """One storyline's decision on the item, made again now, beside the one recorded."""

    storyline_id: str
    title: str
    recorded: Recorded | None
    decision: Decision | None = None
    """None when the storyline makes no decision on the item (see ``idle``)."""
    idle: str = ""
    """Why no decision: "seed", "early" (before its start), "expired", "inactive", "copy"."""
    idle_at: dt.datetime | None = None
    """early: when the storyline starts; expired: when it stopped."""
    closest: Closest | None = None
    knob: float = 0.0
    """The threshold setting: the margin above the background the score must reach."""
    evidence_threshold: float = 1.0
    words: tuple[str, ...] = ()
    """The decision's shared terms as the item writes them (``storylines.shown_terms``)."""

    @property
    def followup(self) -> bool:
        return self.decision is not None and self.decision.followup

    @property
    def by(self) -> tuple[str, ...]:
        """What made the follow-up: "score" (similarity) and/or "evidence"."""
        d = self.decision
        if d is None or not d.followup:
            return ()
        like = d.reasons.like_marked if d.reasons is not None else None
        if like is not None and like[0] == d.doc_id:
            return ("your mark",)  # of the item itself: the mark alone decides
        marked = like is not None
        return tuple(name for name, met in (("score", d.score >= d.threshold),
                                            ("evidence", d.evidence >= self.evidence_threshold),
                                            ("your mark", marked)) if met)

    @property
    def differs(self) -> bool:
        """Whether the decision made now is not the one recorded."""
        if self.idle in UNDECIDED:
            return False
        recorded = self.recorded.decision if self.recorded else None
        now = "seed" if self.idle == "seed" else "followup" if self.followup else None
        return recorded != now


@dataclass(frozen=True, slots=True)
class ItemWhy:
    item_id: int
    copy_of: int | None
    window: dt.timedelta
    replayed: int
    """Items replayed into the tracker before deciding this one."""
    storylines: tuple[StorylineWhy, ...]
    by_arrival: bool = False
    """The replayed items are those first seen in the window before it (a polled item), else those
    published in it (a backfilled one)."""

    @property
    def differs(self) -> list[str]:
        return [s.storyline_id for s in self.storylines if s.differs]


def explain_item(db: Database, settings: TrackingSettings, item_id: int, copy_of: int | None = None) -> ItemWhy:
    """Every storyline's decision on the stored item `item_id`, made again with its reasons; a copy
    (`copy_of`: its original) is never tracked: only its recorded links are listed."""
    links = {link.storyline_id: link for link in store.item_links(db, item_id)}
    if copy_of is not None:
        return ItemWhy(item_id, copy_of, settings.window, 0, tuple(_untracked(links, set())))
    item = store.items_by_id(db, [item_id])[item_id]
    before, since = _before(db, settings, item)
    # A backfill has every storyline decide over the history it loads, whatever its seeds' dates.
    replayed = storylines.replay(db, settings, before, since, look_back=False, whole_history=item.source == "backfill")
    tracker = replayed.tracker
    doc = storylines.doc_of(item)
    decisions = {d.storyline_id: d for d in tracker.decide(doc, explain="all")}
    idle = tracker.not_deciding(doc)
    members = _member_titles(db, decisions.values())
    spelled = Spelling.of(doc.title, doc.text)
    found = []
    for s in replayed.storylines:
        decided = decisions.get(s.id)
        base = StorylineWhy(s.id, s.title, _recorded(links.get(s.id)),
                            knob=settings.threshold if s.threshold is None else s.threshold,
                            evidence_threshold=tracker.config.evidence_threshold,
                            words=tuple(storylines.shown_terms(decided, spelled, tracker)) if decided else ())
        found.append(_with_decision(base, decided, idle.get(s.id), s, members))
    found += _untracked(links, {s.id for s in replayed.storylines})
    return ItemWhy(item_id, None, settings.window, replayed.replayed, tuple(found), by_arrival=item.source != "backfill")


def _before(db: Database, settings: TrackingSettings, item: Stored) -> tuple[list[Stored], dt.datetime]:
    """The originals the worker tracked before this item, in its order, and where that window starts."""
    if item.source == "backfill":  # backfill tracks in time order
        start = item.published_at - settings.window
        recent = store.recent_originals(db, start, item.published_at, storylines.REPLAY_MAX)
        return [i for i in recent if (i.published_at, i.id) < (item.published_at, item.id)], start
    start = store.first_seen(db, item.id) - settings.window
    return store.arrived_before(db, item.id, start, storylines.REPLAY_MAX), start


def _with_decision(why: StorylineWhy, decision: Decision | None, idle: Idle | None, storyline: StorylineDef,
                   members: dict[int, str]) -> StorylineWhy:
    if decision is None:
        assert idle is not None  # a tracked storyline either decides or says why not
        at = dt.datetime.fromtimestamp(idle.at, UTC) if idle.reason != "seed" else None
        return replace(why, idle=idle.reason, idle_at=at)
    member = _closest_id(decision)
    closest = None
    if member is not None and decision.reasons is not None:
        kind = "seed" if member in storyline.seed_ids else "follow-up"
        closest = Closest(member, kind, members.get(member, ""), decision.reasons.closest_similarity)
    return replace(why, decision=decision, closest=closest)


def _closest_id(decision: Decision) -> int | None:
    """The stored item the decision's item is closest to (profile members are stored items)."""
    closest = decision.reasons.closest_id if decision.reasons is not None else None
    return int(closest) if closest is not None and closest.isdigit() else None


def _member_titles(db: Database, decisions: Iterable[Decision]) -> dict[int, str]:
    """The titles of the seeds and follow-ups the item is closest to."""
    ids = {i for d in decisions if (i := _closest_id(d)) is not None}
    return {i: item.title for i, item in store.items_by_id(db, sorted(ids)).items()}


def _recorded(link: store.ItemLink | None) -> Recorded | None:
    if link is None:
        return None
    return Recorded(link.decision, link.score, link.threshold, link.decided_at)


def _untracked(links: dict[str, store.ItemLink], tracked: set[str]) -> list[StorylineWhy]:
    """Recorded links to storylines that are not decided now (inactive, or the item is a copy)."""
    return [StorylineWhy(sid, link.title, _recorded(link), idle="inactive" if not link.active else "copy")
            for sid, link in links.items() if sid not in tracked]
