"""A digest in Markdown, the form the others are made from. Pure and deterministic: the same
DigestData gives the same bytes (no clock, stable order). Untrusted text (titles, leads,
publishers, feed errors) never reaches the output raw: every character with a meaning in
Markdown is escaped (no injected headings, lists, links or images; HTML tags shown as text),
and links are only made for http(s) URLs.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from worker.models import marked_like, plural, reason_strings, term_words
from worker.digest.model import DigestData, FoundLater, Story, StorylineMoves
from worker.digest.periods import EPOCH


SPARK = "▁▂▃▄▅▆▇█"
LEAD_CHARS = 320

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
        seeds = sum(1 for s in section.stories if s.decision == "seed")
        found = f" and {plural(followups, 'follow-up')}" if followups else ""
        lines.append(f"The story so far: {plural(seeds, 'article')} this storyline starts from{found}.")
    else:
        lines.append(f"{plural(followups, 'follow-up')}. Last 30 days: `{sparkline(section.activity)}`")
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
