"""Storylines, their timelines and suggested storylines, as tables, text and JSON."""

from __future__ import annotations

import datetime as dt
from collections.abc import Container, Sequence
from typing import Any

from worker.clock import to_iso
from worker.models import StorylineSummary, TimelineEntry, marked_like, plural, reason_strings, term_words
from worker.store import Suggested
from worker.report.tables import cells, short_text, table, to_json, when


def render_storylines(summaries: Sequence[StorylineSummary], now: dt.datetime, *, width: int | None = None) -> str:
    if not summaries:
        return "No storylines: add [[storylines]] to the config or use `storywatch storylines add`."
    rows = [[s.id + (f" ({s.state})" if s.state else ""), str(s.seeds), str(s.followups),
             when(s.last_followup_at, "-"), _quiet_for(s.last_followup_at, now), s.title] for s in summaries]
    return table(["ID", "SEEDS", "FOLLOW-UPS", "LAST FOLLOW-UP", "QUIET", "TITLE"], rows, indent="", flexible=("TITLE",),
                 optional=("LAST FOLLOW-UP", "SEEDS", "QUIET"), width=width)


def _quiet_for(last: dt.datetime | None, now: dt.datetime) -> str:
    return "-" if last is None else f"{max((now - last).days, 0)} days"


def storylines_json(summaries: Sequence[StorylineSummary], now: dt.datetime) -> str:
    return to_json([storyline_dict(s, now) for s in summaries])


def storyline_dict(s: StorylineSummary, now: dt.datetime) -> dict[str, Any]:
    return {"id": s.id, "title": s.title, "active": s.active, "paused": s.paused, "seeds": s.seeds,
            "followups": s.followups, "last_followup_at": to_iso(s.last_followup_at) if s.last_followup_at else None,
            "quiet_days": (now - s.last_followup_at).days if s.last_followup_at else None}


STORYLINE_COLUMNS = ("id", "title", "active", "paused", "seeds", "followups", "last_followup_at", "quiet_days")
"""storyline_dict's keys, in its order: the columns of `storylines list --csv`."""


def reasons_in_words(entry: TimelineEntry, ruled_out: Container[int] = ()) -> str:
    """A follow-up's stored reasons as one line: names, shared terms, closest item, score.
    ``ruled_out``: items the reader has since marked not a follow-up (the reasons predate it)."""
    reasons = entry.reasons
    parts = []
    if entry.marked is not None:
        parts.append("marked a follow-up by you" if entry.marked else "marked not a follow-up by you")
    if like := marked_like(reasons.get("like_marked")):
        parts.append(like)
    names, terms = reason_strings(reasons.get("names")), term_words(reasons.get("top_terms"))
    if evidence := reason_strings(reasons.get("evidence")):
        parts.append("names where they count: " + ", ".join(evidence[:4]))
    if names:
        parts.append("mentions " + ", ".join(names[:5]))
    if terms:
        parts.append("shares " + ", ".join(terms[:5]))
    if entry.closest_item_id is not None:
        since = ", which you have since marked not a follow-up" if entry.closest_item_id in ruled_out else ""
        parts.append(f"closest to #{entry.closest_item_id} ({reasons.get('closest_similarity')}{since})")
    if entry.score is not None and entry.threshold is not None:
        if entry.score >= entry.threshold:
            parts.append(f"score {entry.score:.3f} ≥ threshold {entry.threshold:.3f}")
        else:  # taken by evidence: where the storyline's names stand, not by similarity
            by = f" {reasons['evidence_score']:.2f}" if isinstance(reasons.get("evidence_score"), float) else ""
            parts.append(f"by evidence{by} (score {entry.score:.3f} below threshold {entry.threshold:.3f})")
    return "; ".join(parts)


def render_timeline(summary: StorylineSummary, entries: Sequence[TimelineEntry],
                    rejected: Sequence[tuple[int, dt.datetime, str]] = ()) -> str:
    """The timeline; ``rejected``: the items the reader marked not a follow-up (id, date, title)."""
    lines = [f"{summary.id}: {summary.title}", plural(summary.seeds, "seed") + ", " + plural(summary.followups, "follow-up"), ""]
    ruled_out = {item_id for item_id, _, _ in rejected}
    publishers = [short_text(e.publisher, 24) or "-" for e in entries]
    column = max(map(cells, publishers), default=0)  # the titles start in one column
    for e, publisher in zip(entries, publishers):
        kind = "seed" if e.decision == "seed" else f"{e.score:.3f}" if e.score is not None else \
            "marked" if e.marked else e.decision
        shown = publisher + " " * (column - cells(publisher))
        lines.append(f"{e.published_at:%Y-%m-%d}  #{e.item_id:<6} {kind:>6}  {shown}  {e.title}")
        if e.decision != "seed":
            lines.append(f"{'':19}why: {reasons_in_words(e, ruled_out)}")
            if e.novelty:
                lines.append(f"{'':19}new in this story: {', '.join(e.novelty)}")
    if rejected:
        lines += ["", f"Marked not a follow-up by you ({len(rejected)}):"]
        lines += [f"{published:%Y-%m-%d}  #{item_id:<6} {title}" for item_id, published, title in rejected]
    return "\n".join(lines)


def timeline_json(summary: StorylineSummary, entries: Sequence[TimelineEntry],
                  rejected: Sequence[tuple[int, dt.datetime, str]] = ()) -> str:
    return to_json({
        "id": summary.id, "title": summary.title,
        "timeline": timeline_rows(entries, rejected),
        "marked_not_followups": [{"item_id": item_id, "published_at": to_iso(published), "title": title}
                                 for item_id, published, title in rejected],
    })


def timeline_rows(entries: Sequence[TimelineEntry],
                  rejected: Sequence[tuple[int, dt.datetime, str]] = ()) -> list[dict[str, Any]]:
    """The timeline's seeds and follow-ups as `storylines show --json` and `--csv` give them;
    ``rejected``: the items the reader marked not a follow-up (id, date, title)."""
    ruled_out = {item_id for item_id, _, _ in rejected}
    return [{"item_id": e.item_id, "decision": e.decision, "published_at": to_iso(e.published_at),
             "publisher": e.publisher, "title": e.title, "url": e.url, "source": e.source,
             "score": e.score, "threshold": e.threshold, "reasons": e.reasons,
             "novelty": list(e.novelty), "closest_item_id": e.closest_item_id,
             "closest_ruled_out": e.closest_item_id in ruled_out, "marked": e.marked}
            for e in entries]


TIMELINE_COLUMNS = ("item_id", "decision", "published_at", "publisher", "title", "url", "source", "score", "threshold",
                    "reasons", "novelty", "closest_item_id", "closest_ruled_out", "marked")
"""timeline_dict's keys, in its order: the columns of `storylines show --csv` (one row per seed or follow-up)."""


def suggestion_dict(row: Suggested) -> dict[str, Any]:
    """A suggested storyline as `storylines suggest --json` prints it."""
    return {"id": row.id, "title": row.title, "status": row.status, "storyline_id": row.storyline_id,
            "items": len(row.item_ids), "sources": row.sources, "first_at": row.first_at,
            "last_at": row.last_at, "terms": list(row.terms), "item_ids": list(row.item_ids)}


SUGGESTION_COLUMNS = ("id", "title", "status", "storyline_id", "items", "sources", "first_at", "last_at", "terms",
                      "item_ids")
"""suggestion_dict's keys, in its order: the columns of `storylines suggest --csv`."""


def render_suggestions(rows: Sequence[Suggested], warm_up: int, window_days: int) -> str:
    """Suggestions, or why there are none (`warm_up`: items of the recent window read before the
    first can come)."""
    if not rows:
        return ("No suggested storylines: nothing outside the storylines has clustered yet (suggestions "
                f"start once the worker has read {warm_up:,} items published within {plural(window_days, 'day')} "
                "([tracking] window): word statistics first tell a story's distinctive words from common ones).")
    lines = []
    for r in rows:
        state = "" if r.status == "open" else f" ({r.status}{': ' + r.storyline_id if r.storyline_id else ''})"
        lines += [f"#{r.id}{state}  {r.title}",
                  f"    {len(r.item_ids)} items from {r.sources} sources, {r.first_at[:10]} to {r.last_at[:10]}; "
                  f"terms: {', '.join(r.terms)}"]
    if any(r.status == "open" for r in rows):
        lines += ["", "Adopt one: storywatch storylines add ID --from-suggestion N (or --dismiss N)"]
    return "\n".join(lines)
