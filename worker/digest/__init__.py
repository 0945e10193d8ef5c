"""Digest: what moved in each tracked story over a period, as Markdown, plain text and HTML.

`render_markdown(data)` (markdown.py) is the digest; the text and HTML forms are made from the
same content.
Pure and deterministic: the same DigestData gives the same bytes (no clock, stable order).

What a digest of a period lists, and when a follow-up found later is listed: see collector.py.

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
