"""Digest: what moved in each tracked story over a period, as Markdown, plain text and HTML.

`render_markdown(data)` is the digest (markdown); the text and HTML forms are made from the same content.
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

from worker.digest.model import (
    DigestData, FoundLater, Period, Quiet, SourceProblem, Story, StorylineMoves, Suggestion, Updated, subject,
)
from worker.digest.markdown import (
    LEAD_CHARS, SPARK, escape, lead, link, local, render_markdown, safe_url, sparkline, why,
)
from worker.digest.formats import (
    bar_chart, render_html, render_text, sanitize,
)
from worker.digest.periods import (
    EPOCH, day_period, next_period, zone_of,
)
from worker.digest.collector import (
    ACTIVITY, SILENCE_WINDOW, collect, command_for,
)

__all__ = [
    "ACTIVITY",
    "DigestData",
    "EPOCH",
    "FoundLater",
    "LEAD_CHARS",
    "Period",
    "Quiet",
    "SILENCE_WINDOW",
    "SPARK",
    "SourceProblem",
    "Story",
    "StorylineMoves",
    "Suggestion",
    "Updated",
    "bar_chart",
    "collect",
    "command_for",
    "day_period",
    "escape",
    "lead",
    "link",
    "local",
    "next_period",
    "render_html",
    "render_markdown",
    "render_text",
    "safe_url",
    "sanitize",
    "sparkline",
    "subject",
    "why",
    "zone_of",
]
