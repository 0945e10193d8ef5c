"""Digest: what moved in each tracked story over a period, as Markdown, plain text and HTML.

`render_markdown(data)` is the digest; the text and HTML forms are made from the same content.
Pure and deterministic: the same DigestData gives the same bytes (no clock, stable order).

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

Untrusted text (titles, leads, publishers, feed errors) never reaches the output raw: in
Markdown every character with a meaning is escaped (no injected headings, lists, links or
images; HTML tags shown as text), links are only made for http(s) URLs, and the HTML is
rendered by markdown-it with raw HTML off, then sanitized again by nh3 with an allowlist
(no scripts, styles, event handlers, iframes or images; http(s) links only).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import nh3
from markdown_it import MarkdownIt
from sqlite_utils import Database

from worker import store
from worker.clock import from_iso
from worker.config import DigestSettings
from worker.ingest.dedupe import Clutter, match_text
from worker.models import FeedHealth, FetchHistory, marked_like, plural, reason_strings, term_words

SPARK = "▁▂▃▄▅▆▇█"
LEAD_CHARS = 320


# ── what a digest holds ─────────────────────────────────────────────────────────────────────


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


# ── Markdown ────────────────────────────────────────────────────────────────────────────────

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&])")  # what can start markup anywhere in a line
_LINE_START = re.compile(r"^([#>+=-])")  # what starts a heading, quote, list or rule at a line's start
_ORDERED = re.compile(r"^(\d+)([.)])")  # an ordered list marker: its "." or ")" is what is escaped


def escape(text: str) -> str:
    """Untrusted text as Markdown that shows it literally: no headings, lists, emphasis, links,
    images, code or HTML can come out of it. Backslash escapes (CommonMark and GFM alike);
    the rest of the punctuation stays as it is, so the file still reads well."""
    text = _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))
    text = _ORDERED.sub(r"\1\\\2", text)  # "2024\. was": a backslash before a digit would show
    return _LINE_START.sub(r"\\\1", text)


def safe_url(url: str | None) -> str | None:
    """An http(s) URL fit for a Markdown link target; None for anything else."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return quote(url.strip(), safe=":/?#@!$&'*+,;=%~-._[]")


def link(text: str, url: str | None) -> str:
    target = safe_url(url)
    return f"[{escape(text)}]({target})" if target else escape(text)


# A sentence ends at . ! or ? (maybe closing a quote) before a capital, but not after a
# title or an initial ("Mr. Kim", "U.S. envoy", "Kim J. Un").
_SENTENCE_END = re.compile(
    r"(?:(?<=[.!?])|(?<=[.!?][”’\"']))"
    r"(?<!\bMr\.)(?<!\bMs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\bMrs\.)(?<!\b[A-Z]\.)"
    r"\s+(?=[A-Z“‘\"'])"
)


def lead(text: str, limit: int = LEAD_CHARS) -> str:
    """The first one or two sentences of a text (an ellipsis mid-sentence is not an end)."""
    flat = " ".join(text.split())
    sentences = _SENTENCE_END.split(flat)
    out = sentences[0] if sentences else ""
    if len(sentences) > 1 and len(out) + len(sentences[1]) < limit:
        out += " " + sentences[1]
    return out if len(out) <= limit else out[: limit - 1].rsplit(" ", 1)[0] + "…"


def sparkline(counts: Sequence[int]) -> str:
    top = max(counts, default=0)
    if top == 0:
        return SPARK[0] * len(counts)
    # A day with any follow-up shows at least the second bar: only an empty day is flat.
    return "".join(SPARK[min(len(SPARK) - 1, max(1 if c else 0, round(c / top * (len(SPARK) - 1))))] for c in counts)


def local(when: dt.datetime, zone: str) -> str:
    return when.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def why(story: Story, quote: Callable[[str], str] = escape) -> str:
    """The stored reasons, in words (`quote` makes untrusted words safe for the output format)."""
    reasons = story.reasons or {}
    parts = []
    names, terms = reason_strings(reasons.get("names")), term_words(reasons.get("top_terms"))
    if evidence := reason_strings(reasons.get("evidence")):
        parts.append("names where they count: " + ", ".join(quote(e) for e in evidence[:4]))
    if names:
        parts.append("mentions " + ", ".join(f"“{quote(n)}”" for n in names[:5]))
    shared = [t for t in terms if t.lower() not in {n.lower() for n in names}][:4]
    if shared:
        parts.append("shares " + ", ".join(f"“{quote(t)}”" for t in shared))
    if story.closest_title:
        parts.append(f"closest to “{quote(story.closest_title)}”")
    if story.score is not None and story.threshold is not None:
        parts.append(f"score {story.score:.2f}, threshold {story.threshold:.2f}")
    if reasons.get("marked") is True:
        parts.append("marked a follow-up by you")
    elif like := marked_like(reasons.get("like_marked")):
        parts.append(quote(like))
    return "; ".join(parts)


def render_markdown(data: DigestData) -> str:
    p = data.period
    lines = [f"# Digest for {p.day:%A %d %B %Y}", ""]
    span = f"Everything stored up to {local(p.end, p.zone)}" if p.start == EPOCH else \
        f"{local(p.start, p.zone)} to {local(p.end, p.zone)}"
    lines.append(f"{span} ({escape(p.zone)}): {_counts(data)}.")
    if data.empty:
        lines += ["", "Nothing new in this period: no new items, no follow-ups, no edits."]
    for section in data.storylines:
        lines += _storyline_section(section, p.zone, data.command)
    if data.found_later:
        lines += _found_later_section(data.found_later, p.zone)
    if data.updated:
        lines += ["", "## Updated", ""]
        for u in data.updated:
            lines.append(f"- {link(u.title, u.url)} ({escape(u.publisher)}): changed {', '.join(u.changed)}"
                         + (f" · in {', '.join(escape(s) for s in u.storylines)}" if u.storylines else ""))
            quoted = [f"  > {escape(part)}" for part in u.diff.splitlines()[:3]]
            lines += "\n  >\n".join(quoted).split("\n")  # a quoted paragraph each: title, text, link
    if data.suggestions:
        lines += ["", "## Suggested storylines", ""]
        for s in data.suggestions:
            lines.append(f"- **{escape(s.title)}**: {plural(s.items, 'item')} from {plural(s.sources, 'source')}, about "
                         f"{', '.join(f'“{escape(t)}”' for t in s.terms[:6])} "
                         f"(adopt: `{data.command} storylines add ID --from-suggestion {s.id}`)")
    if data.quiet:
        lines += ["", "## Quiet", ""]
        lines += [f"- {escape(q.title)}: no follow-up for {plural(q.days, 'day')}" for q in data.quiet]
    if data.other:
        lines += ["", f"## Other new items ({data.other_total})", ""]
        for story in data.other:
            also = f" · also by {len(story.also)}: {', '.join(escape(a) for a in story.also)}" if story.also else ""
            lines.append(f"- {link(story.title, story.url)} ({escape(story.publisher)}, {local(story.published_at, p.zone)}){also}")
        if data.other_total > len(data.other):
            lines.append(f"- … and {data.other_total - len(data.other):,} more "
                         f"(`{data.command} items --since {data.period.start:%Y-%m-%d}`)")
    if data.sources:
        lines += ["", "## Sources", ""]
        lines += [f"- {escape(s.name)} ({escape(s.url)}): {escape(s.state)}" for s in data.sources]
    return "\n".join(lines).rstrip() + "\n"


def _counts(data: DigestData) -> str:
    """The headline's counts: new items, follow-ups (and those found later, if any), storylines moved."""
    counts = [plural(data.new_items, "new item"), plural(data.followups, "follow-up")]
    if data.late_followups:
        counts.append(plural(data.late_followups, "follow-up") + " found later")
    counts.append(plural(data.moved, "storyline") + " moved")
    return ", ".join(f"**{c}**" for c in counts)


def _found_later_section(groups: Sequence[FoundLater], zone: str) -> list[str]:
    """Follow-ups found after their day's digest, by storyline, each with its publication time."""
    total = sum(len(g.stories) for g in groups)
    lines = ["", "## Found later", "",
             f"{plural(total, 'follow-up')} of earlier or backfilled items, found in this period: by a new or "
             "changed storyline looking back, by a backfill, or by a late decision."]
    for group in groups:
        lines += ["", f"### {escape(group.title)}", ""]
        lines += [f"- {link(s.title, s.url)} ({escape(s.publisher or 'unknown source')}), "
                  f"published {local(s.published_at, zone)} · item {s.item_id}" for s in group.stories]
    return lines


def _storyline_section(section: StorylineMoves, zone: str, command: str) -> list[str]:
    lines = ["", f"## {escape(section.title)}", ""]
    followups = sum(1 for s in section.stories if s.decision == "followup")
    if section.initial:
        lines.append(f"The story so far: {len(section.stories)} article{'s' if len(section.stories) != 1 else ''} "
                     "this storyline starts from.")
    else:
        lines.append(f"{followups} follow-up{'s' if followups != 1 else ''}. "
                     f"Last 30 days: `{sparkline(section.activity)}`")
    for story in section.stories:
        lines += ["", f"### {link(story.title, story.url)}", ""]
        lines.append(f"{escape(story.publisher or 'unknown source')}, {local(story.published_at, zone)}"
                     + (" · seed" if story.decision == "seed" else ""))
        if story.text:
            lines += ["", escape(lead(story.text))]
        if story.decision == "followup" and (reason := why(story)):
            lines += ["", f"Why: {reason}."]
        if story.decision == "followup":  # the reader's say, which the storyline learns from
            lines += ["", f"Item {story.item_id}. Not a follow-up? "
                      f"`{command} items mark {story.item_id} --storyline {section.id} --no`"]
        if story.novelty:
            lines += ["", "New in this story: " + ", ".join(escape(n) for n in story.novelty) + "."]
        if story.also:
            lines += ["", f"Also published by {len(story.also)} source{'s' if len(story.also) != 1 else ''}: "
                      + ", ".join(escape(a) for a in story.also) + "."]
    return lines


# ── plain text and HTML, from the same content ──────────────────────────────────────────────

_UNESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|~<>&=])")
# A link we made: an unescaped "[" and its text on one line (an escaped "\[" from a title is text).
_MD_LINK = re.compile(r"(?<!\\)\[((?:\\.|[^\]\\\n])*)\]\(([^)\s]+)\)")


def render_text(data: DigestData) -> str:
    """The Markdown without its markup: links become "title <url>"."""
    text = _MD_LINK.sub(lambda m: f"{m.group(1)} <{m.group(2)}>", render_markdown(data))
    text = re.sub(r"^#+ ", "", text, flags=re.M).replace("**", "")
    text = re.sub(r"(?<!\\)`", "", text)  # our code spans; an escaped "\`" from a title stays
    return _UNESCAPE.sub(r"\1", text)


_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_ALLOWED_TAGS = {"h1", "h2", "h3", "p", "ul", "li", "a", "strong", "em", "code", "blockquote", "table", "tr", "td",
                 "span", "div", "br"}
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "td": {"style", "title"}, "div": {"style"}, "span": {"style"},
                       "table": {"style", "role"}}


def render_html(data: DigestData) -> str:
    body = _MARKDOWN.render(render_markdown(data))
    for section in data.storylines:  # the activity line as a small bar chart (mail clients drop SVG),
        # after its paragraph: a table inside a <p> would leave an empty paragraph behind it
        body = body.replace(f" <code>{sparkline(section.activity)}</code></p>", "</p>\n" + bar_chart(section.activity), 1)
    clean = sanitize(body)
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>'
        + f"Digest {data.period.day:%Y-%m-%d}</title></head>"
        + '<body style="font-family:Georgia,serif;max-width:42em;margin:auto;line-height:1.45">'
        + clean + "</body></html>\n"
    )


def sanitize(html: str) -> str:
    """The allowlist every HTML digest goes through: http(s) links only, no active content."""
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https"},
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"height", "width", "background", "display", "vertical-align", "font-size", "color"},
    )


def bar_chart(counts: Sequence[int]) -> str:
    top = max(counts, default=0) or 1
    cells = "".join(
        f'<td title="{c}" style="vertical-align:bottom;width:4px"><div style="height:{max(1, round(c / top * 20))}px;'
        f'width:4px;background:{"#2b6cb0" if c else "#e2e8f0"}"></div></td>'
        for c in counts
    )
    return f'<table role="presentation" style="display:inline-table;height:22px"><tr>{cells}</tr></table>'


# ── periods ─────────────────────────────────────────────────────────────────────────────────

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def zone_of(name: str) -> ZoneInfo:
    """The configured zone, or the machine's (the TZ variable or /etc/localtime)."""
    if name:
        return ZoneInfo(name)
    try:
        from tzlocal import get_localzone_name  # installed with APScheduler

        return ZoneInfo(get_localzone_name() or "UTC")
    except Exception:
        return ZoneInfo("UTC")


def day_period(day: dt.date, at: dt.time, zone: ZoneInfo) -> Period:
    """The digest of `day`: from the previous day's digest time to this day's, local time.

    Built from local wall-clock times through zoneinfo, so a day around a DST change is 23 or
    25 hours long and still ends exactly at the digest time.
    """
    end = dt.datetime.combine(day, at, tzinfo=zone)
    start = dt.datetime.combine(day - dt.timedelta(days=1), at, tzinfo=zone)
    return Period(start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc), day, zone.key)


def next_period(last_end: dt.datetime | None, now: dt.datetime, zone: ZoneInfo) -> Period:
    """The period a scheduled digest covers: since the last digest (the beginning, for the first)."""
    return Period(last_end or EPOCH, now, now.astimezone(zone).date(), zone.key)


# ── collecting a period from the store ──────────────────────────────────────────────────────


def command_for(config: Path | None) -> str:
    """The start of a command a digest suggests: naming the worker's config file, if it has one."""
    return "storywatch" if config is None else f"storywatch --config {shlex.quote(str(config.resolve()))}"


def collect(db: Database, period: Period, settings: DigestSettings, *, initial: bool, include_backfill: bool,
            clutter: Clutter | None = None, command: str = "storywatch") -> DigestData:
    """Everything the digest of `period` shows, read from the store (which follow-ups are new and
    which found later: the module's docstring)."""
    rows = store.digest_stories(db, period.start, period.end, include_backfill=include_backfill)
    decisions: dict[int, list[dict[str, Any]]] = {}
    for decision in store.storyline_decisions(db, [r["id"] for r in rows], period.end):
        decisions.setdefault(decision["item_id"], []).append(decision)
    storylines = tuple(_storyline_moves(db, rows, decisions, period, initial, clutter))
    titles = {s.id: s.title for s in store.active_storylines(db)}
    other = [_story(row, None, clutter) for row in rows if row["id"] not in decisions]
    return DigestData(
        period=period,
        new_items=len(rows),
        storylines=storylines,
        updated=tuple(_updated(row, titles) for row in store.revisions_between(db, period.start, period.end)),
        suggestions=tuple(
            Suggestion(r["id"], r["title"], tuple(json.loads(r["terms"])), len(json.loads(r["item_ids"])), r["sources"])
            for r in store.open_suggestions(db, period.end)
        ),
        quiet=tuple(_quiet(db, period, settings.quiet_days, {s.id for s in storylines})),
        other=tuple(other[: settings.other_items]),
        other_total=len(other),
        sources=tuple(_source_problems(db, period.end, settings.silent_days)),
        found_later=tuple(_found_later(db, period, include_backfill)),
        command=command,
    )


def _story(row: dict[str, Any], decision: dict[str, Any] | None = None, clutter: Clutter | None = None) -> Story:
    decision = decision or {}
    return Story(
        item_id=row["id"],
        title=row["title"],
        url=row["url"],
        publisher=row["publisher"],
        published_at=from_iso(row["published_at"]),
        text=_readable(row["title"], row["text"] or row["summary"] or "", clutter),
        decision=decision.get("decision", ""),
        score=decision.get("score"),
        threshold=decision.get("threshold"),
        reasons=json.loads(decision["reasons"]) if decision.get("reasons") else None,
        novelty=tuple(json.loads(decision["novelty"])) if decision.get("novelty") else (),
        closest_title=decision.get("closest_title"),
        also=tuple(a for a in json.loads(row.get("also") or "[]") if a),
    )


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
    db: Database, rows: list[dict[str, Any]], decisions: dict[int, list[dict[str, Any]]], period: Period, initial: bool,
    clutter: Clutter | None,
) -> list[StorylineMoves]:
    sections = []
    for storyline in store.active_storylines(db):
        stories = [
            _story(row, d, clutter) for row in rows for d in decisions.get(row["id"], [])
            if d["storyline_id"] == storyline.id and d["decision"] == "followup"
        ]
        if initial:  # the first digest shows the corpus each storyline starts from
            stories += [_story(row, {"decision": "seed"}, clutter) for row in store.storyline_seed_stories(db, storyline.id)]
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
        stories = tuple(_story(row, {"decision": "followup"}) for row in rows if row["storyline_id"] == storyline.id)
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


def _updated(row: dict[str, Any], titles: dict[str, str]) -> Updated:
    """An edited item, with the titles of its storylines (readers know storylines by title)."""
    storylines = sorted(titles.get(s, s) for s in json.loads(row["storylines"]))
    return Updated(row["item_id"], row["title"], row["url"], row["publisher"], tuple(json.loads(row["changed"])),
                   row["diff"], tuple(storylines))


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
