"""What a digest holds (DigestData): the period, its stories by storyline, found later, updates, suggestions, quiet storylines and sources in trouble."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from worker.models import plural


@dataclass(frozen=True, slots=True)
class Period:
    start: dt.datetime  # UTC, inclusive
    end: dt.datetime  # UTC, exclusive
    day: dt.date  # the local date the digest is for
    zone: str  # IANA name shown to readers


@dataclass(frozen=True, slots=True)
class Story:
    """One story in the digest: a cluster's first item, with its copies' publishers."""

    item_id: int
    title: str
    url: str | None
    publisher: str
    published_at: dt.datetime
    text: str
    decision: str  # "seed" or "followup" (or "" outside storylines)
    score: float | None = None
    threshold: float | None = None
    reasons: dict[str, object] | None = None
    novelty: tuple[str, ...] = ()
    closest_title: str | None = None
    also: tuple[str, ...] = ()  # other publishers of the same story


@dataclass(frozen=True, slots=True)
class StorylineMoves:
    id: str
    title: str
    stories: tuple[Story, ...]  # newest first
    activity: tuple[int, ...]  # follow-ups a day over the last 30 days, oldest first
    initial: bool  # the first digest: the corpus the storyline starts from


@dataclass(frozen=True, slots=True)
class FoundLater:
    """A storyline's follow-ups found after the digest of their item's day (the module's docstring)."""

    id: str
    title: str
    stories: tuple[Story, ...]  # newest publication first


@dataclass(frozen=True, slots=True)
class Updated:
    item_id: int
    title: str
    url: str | None
    publisher: str
    changed: tuple[str, ...]
    diff: str
    storylines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Suggestion:
    id: int
    title: str
    terms: tuple[str, ...]
    items: int
    sources: int


@dataclass(frozen=True, slots=True)
class Quiet:
    id: str
    title: str
    days: int


@dataclass(frozen=True, slots=True)
class SourceProblem:
    name: str
    url: str
    state: str


@dataclass(frozen=True, slots=True)
class DigestData:
    period: Period
    new_items: int
    storylines: tuple[StorylineMoves, ...]
    updated: tuple[Updated, ...]
    suggestions: tuple[Suggestion, ...]
    quiet: tuple[Quiet, ...]
    other: tuple[Story, ...]  # capped
    other_total: int  # before the cap
    sources: tuple[SourceProblem, ...]
    found_later: tuple[FoundLater, ...] = ()  # follow-ups decided in the period for earlier items
    command: str = "storywatch"
    """How the commands it suggests start: with --config when the worker was given one (item and
    suggestion ids belong to one store)."""

    @property
    def followups(self) -> int:
        return sum(1 for s in self.storylines for story in s.stories if story.decision == "followup")

    @property
    def moved(self) -> int:
        return sum(1 for s in self.storylines if any(story.decision == "followup" for story in s.stories))

    @property
    def late_followups(self) -> int:
        """Follow-ups listed under "Found later" (not counted in `followups`)."""
        return sum(len(group.stories) for group in self.found_later)

    @property
    def empty(self) -> bool:
        """Nothing new in the period (open suggestions, quiet storylines and sources may still show)."""
        return not (self.new_items or self.storylines or self.updated or self.found_later)


def subject(data: DigestData, prefix: str) -> str:
    """The email subject: the day and the counts a reader decides on."""
    counts = f"{plural(data.followups, 'follow-up')} in {plural(data.moved, 'storyline')}, "
    if data.late_followups:
        counts += f"{data.late_followups:,} found later, "
    counts += plural(data.new_items, "new item")
    if data.empty:
        counts = "nothing new"
    return f"{prefix} {data.period.day:%Y-%m-%d}: {counts}".strip()
