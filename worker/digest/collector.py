"""Collecting a digest's content from the store.

What a digest of the period [start, end) lists (decisions count up to and including `end`, the
moment it is written; consecutive digests chain, each starting where the last one ended):

- new items: originals first seen in [start, end), with their storylines' follow-up decisions
  made by `end`; items loaded by backfill only with `include_backfill`;
- "Found later": follow-ups decided in (start, end] for items this digest does not list as new,
  that is items first seen before `start` (an earlier digest's; the first digest, which starts
  at the beginning of the store, has none of those) and, unless `include_backfill`, items loaded by backfill whenever they were stored. They come
  from a new or changed storyline looking back over the recent window, a backfill, or tracking
  that decided after the item's digest was written. Each follow-up (item, storyline) is listed
  once across chained digests: in its item's digest if decided by that digest's end, otherwise
  in the digest whose period holds its decision time. Grouped by storyline, newest publication
  first, each with its publication time; a digest with none has no such section. The headline
  and the email subject count them apart from the period's follow-ups (and only when there
  are some).
"""

from __future__ import annotations

import datetime as dt
import shlex
from dataclasses import replace
from pathlib import Path

from sqlite_utils import Database

from worker import store
from worker.config import DigestSettings
from worker.ingest.dedupe import Clutter, match_text
from worker.models import FeedHealth, FetchHistory
from worker.digest.model import (
    DigestData, FoundLater, Period, Quiet, SourceProblem, Story, StorylineMoves, Suggestion, Updated,
)


def command_for(config: Path | None) -> str:
    """The start of a command a digest suggests: naming the worker's config file, if it has one."""
    return "storywatch" if config is None else f"storywatch --config {shlex.quote(str(config.resolve()))}"


def collect(db: Database, period: Period, settings: DigestSettings, *, initial: bool, include_backfill: bool,
            clutter: Clutter | None = None, command: str = "storywatch") -> DigestData:
    """Everything the digest of `period` shows, read from the store (which follow-ups are new and
    which found later: the module's docstring)."""
    rows = store.digest_stories(db, period.start, period.end, include_backfill=include_backfill)
    decisions: dict[int, list[store.DecisionRow]] = {}
    for decision in store.storyline_decisions(db, [r.id for r in rows], period.end):
        decisions.setdefault(decision.item_id, []).append(decision)
    storylines = tuple(_storyline_moves(db, rows, decisions, period, initial, clutter))
    titles = {s.id: s.title for s in store.active_storylines(db)}
    other = [_story(row, clutter) for row in rows if row.id not in decisions]
    return DigestData(
        period=period,
        new_items=len(rows),
        storylines=storylines,
        updated=tuple(_updated(row, titles) for row in store.revisions_between(db, period.start, period.end)),
        suggestions=tuple(
            Suggestion(r.id, r.title, r.terms, len(r.item_ids), r.sources) for r in store.open_suggestions(db, period.end)
        ),
        quiet=tuple(_quiet(db, period, settings.quiet_days, {s.id for s in storylines})),
        other=tuple(other[: settings.other_items]),
        other_total=len(other),
        sources=tuple(_source_problems(db, period.end, settings.silent_days)),
        found_later=tuple(_found_later(db, period, include_backfill)),
        command=command,
    )


def _story(row: store.StoryRow, clutter: Clutter | None = None, decision: str = "") -> Story:
    """A story as listed: `decision` is "seed", "followup" or "" (outside the storylines)."""
    return Story(item_id=row.id, title=row.title, url=row.url, publisher=row.publisher, published_at=row.published_at,
                 text=_readable(row.title, row.text or row.summary, clutter), decision=decision, also=row.also)


def _followup(row: store.StoryRow, link: store.DecisionRow, clutter: Clutter | None) -> Story:
    """A follow-up with the recorded decision's score, reasons and what is new in it."""
    return replace(_story(row, clutter, link.decision), score=link.score, threshold=link.threshold,
                   reasons=link.reasons, novelty=link.novelty, closest_title=link.closest_title)


def _readable(title: str, text: str, clutter: Clutter | None) -> str:
    """The text a lead is taken from: its prose, from the first paragraph of at least a dozen
    words after the headline (page chrome such as section names and captions comes before)."""
    lines = [line.strip() for line in (match_text(text, clutter) if clutter else text).split("\n")]
    headline = title.strip()
    head = [i for i, line in enumerate(lines[:40]) if headline and line == headline]
    start = head[0] + 1 if head else 0
    for i in range(start, len(lines)):
        if len(lines[i].split()) >= 12 and not lines[i].startswith(("•", "-", "*")):
            return "\n".join(lines[i:])
    return "\n".join(line for line in lines[start:] if line != headline)


def _storyline_moves(
    db: Database, rows: list[store.StoryRow], decisions: dict[int, list[store.DecisionRow]], period: Period,
    initial: bool, clutter: Clutter | None,
) -> list[StorylineMoves]:
    sections = []
    for storyline in store.active_storylines(db):
        stories = [
            _followup(row, d, clutter) for row in rows for d in decisions.get(row.id, [])
            if d.storyline_id == storyline.id and d.decision == "followup"
        ]
        if initial:  # the first digest shows the corpus each storyline starts from
            stories += [_story(row, clutter, "seed") for row in store.storyline_seed_stories(db, storyline.id)]
        if stories:
            stories.sort(key=lambda s: (s.published_at, s.item_id), reverse=True)
            activity = _activity(store.followup_times(db, storyline.id, period.end - ACTIVITY, period.end), period.end)
            sections.append(StorylineMoves(storyline.id, storyline.title, tuple(stories), activity, initial))
    return sections


def _found_later(db: Database, period: Period, include_backfill: bool) -> list[FoundLater]:
    """The period's late follow-ups, grouped by storyline in the storylines' order, newest first."""
    rows = store.late_followups(db, period.start, period.end, include_backfill=include_backfill)
    groups = []
    for storyline in store.active_storylines(db):
        # Listed by title, source and time only: no lead (the store gives no text), no reasons.
        stories = tuple(_story(row, None, "followup") for storyline_id, row in rows if storyline_id == storyline.id)
        if stories:
            groups.append(FoundLater(storyline.id, storyline.title, stories))
    return groups


ACTIVITY = dt.timedelta(days=30)


def _activity(times: list[dt.datetime], end: dt.datetime) -> tuple[int, ...]:
    """Follow-ups a day over the 30 days before `end`, oldest first."""
    days = [0] * ACTIVITY.days
    for when in times:
        index = ACTIVITY.days - 1 - (end - when).days
        if 0 <= index < ACTIVITY.days:
            days[index] += 1
    return tuple(days)


def _updated(row: store.RevisionRow, titles: dict[str, str]) -> Updated:
    """An edited item, with the titles of its storylines (readers know storylines by title)."""
    storylines = sorted(titles.get(s, s) for s in row.storylines)
    return Updated(row.item_id, row.title, row.url, row.publisher, row.changed, row.diff, tuple(storylines))


def _quiet(db: Database, period: Period, quiet_days: int, moved: set[str]) -> list[Quiet]:
    titles = {s.id: s.title for s in store.active_storylines(db)}
    quiet = []
    for storyline_id, last in sorted(store.last_activity(db, period.end).items()):
        if storyline_id not in moved and last is not None and (period.end - last).days >= quiet_days:
            quiet.append(Quiet(storyline_id, titles.get(storyline_id, storyline_id), (period.end - last).days))
    return quiet


SILENCE_WINDOW = dt.timedelta(days=90)  # a feed's usual pace is measured over this


def _source_problems(db: Database, end: dt.datetime, silent_days: int) -> list[SourceProblem]:
    """Feeds disabled, failing or rate limited at `end` (from the fetch log, so regenerating a
    past digest shows what was true then), or silent for longer than expected."""
    history, items = store.fetch_history(db, end), store.feed_item_times(db, end - SILENCE_WINDOW, end)
    problems = []
    for feed in store.feed_health(db):
        state = _source_state(feed, history.get(feed.url), items.get(feed.url), end, silent_days)
        if state:
            problems.append(SourceProblem(feed.display_name, feed.shown_url, state))
    return problems


def _source_state(feed: FeedHealth, polls: FetchHistory | None, items: tuple[dt.datetime, int] | None,
                  end: dt.datetime, silent_days: int) -> str | None:
    if feed.disabled_reason:
        return f"disabled: {feed.disabled_reason}"
    if polls and polls.failures:
        what = "rate limited" if polls.last_kind == "rate_limited" else f"failing ({polls.failures} in a row)"
        return f"{what}: {polls.last_error}"
    if not (polls and polls.last_success):
        return None  # not polled yet
    if items is None:
        return "silent: no item yet"
    newest, recent = items
    # Silent: for longer than `silent_days` and than four of its usual gaps between new items
    # over the last 90 days (a feed that posts twice a month is not silent after eight days).
    usual_gap = SILENCE_WINDOW / recent if recent else SILENCE_WINDOW
    if end - newest > max(dt.timedelta(days=silent_days), 4 * usual_gap):
        return f"silent: no new item since {newest:%Y-%m-%d}"
    return None
