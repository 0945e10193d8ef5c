"""Text and JSON renderings of what the store knows, for the CLI's status and listing commands."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import shutil
import sys
import textwrap
import time
import unicodedata
from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

from worker.digest.daily import resend_command
from worker.safetext import url_text
from worker.clock import to_iso
from worker.tracking.evidence import MIN_SOURCE_DOCS
from worker.models import (FeedHealth, ItemDetail, StoredItem, StorylineSummary, StoreStatus, TimelineEntry,
                           marked_like, plural, reason_strings, term_words)

if TYPE_CHECKING:
    from worker.backfill import Step as BackfillStep
    from worker.backfill import Summary as BackfillSummary
    from worker.cycle import CycleReport
    from worker.tracking.evidence import Counted
    from worker.tracking.decisions import Decision
    from worker.why import ItemWhy, StorylineWhy


def when(value: dt.datetime | None, never: str = "never") -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else never


# ── tables that fit the terminal, and the other shapes of a listing ──────────────────────────


def terminal_width() -> int | None:
    """The width tables are fitted to: $COLUMNS when set, else the terminal's width when stdout is
    a terminal; None (no limit) when the output goes to a pipe or a file, which get whole lines."""
    if not os.environ.get("COLUMNS", "").strip() and not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def _cell_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def cells(text: str) -> int:
    """The columns `text` takes on a terminal: a wide or fullwidth character (CJK) 2, a combining
    mark or a format character 0, any other 1."""
    return sum(_cell_width(char) for char in text)


def cut(text: str, width: int) -> str:
    """`text` in at most `width` terminal columns, ended with "…" where it was cut."""
    if cells(text) <= width:
        return text
    kept, used = [], 0
    for char in text:
        used += _cell_width(char)
        if used > width - 1:
            break
        kept.append(char)
    return "".join(kept) + "…" if width > 0 else ""


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ", *,
          flexible: Collection[str] = (), optional: Sequence[str] = (), width: int | None = None) -> str:
    """Left-aligned columns measured in terminal columns (a CJK character takes two); the last
    column is not padded. Given a `width`, the widest of the `flexible` columns (named by their
    header: titles, names, addresses, errors) are narrowed, their text cut with "…", until every
    line fits; the other columns (ids, dates, counts) are never cut. Where a flexible column
    would be cut below NARROWEST, the `optional` columns are left out, in their order, first."""
    grid = [[str(c) for c in row] for row in [headers, *rows]]
    if width is not None:
        grid, widths = _fitting_columns(grid, flexible, optional, width - cells(indent))
    else:
        widths = [max(cells(row[i]) for row in grid) for i in range(len(headers))]
    lines = []
    for row in grid:
        shown = [cut(c, w) for c, w in zip(row, widths)]
        padded = [c + " " * (w - cells(c)) for c, w in zip(shown[:-1], widths)] + shown[-1:]
        lines.append((indent + "  ".join(padded)).rstrip())
    return "\n".join(lines)


NARROWEST = 8  # a name cut shorter ("Albi ma…") says little: a column is left out first


def _fitting_columns(grid: list[list[str]], flexible: Collection[str], optional: Sequence[str],
                     room: int) -> tuple[list[list[str]], list[int]]:
    """The grid's columns that fit `room` (see table), and their widths."""
    for leave_out in range(len(optional) + 1):
        kept = [i for i, h in enumerate(grid[0]) if h not in optional[:leave_out]]
        narrow = [[row[i] for i in kept] for row in grid]
        natural = [max(cells(row[i]) for row in narrow) for i in range(len(kept))]
        flex = [i for i, h in enumerate(narrow[0]) if h in flexible]
        widths = _fitted(natural, flex, room - 2 * (len(kept) - 1))
        if all(widths[i] >= min(NARROWEST, natural[i]) for i in flex):
            break
    return narrow, widths


def _fitted(widths: Sequence[int], flexible: Sequence[int], room: int) -> list[int]:
    """Column widths that add up to `room` at most: the widest flexible column narrowed, one
    column at a time (down to 1, "…"), while the line is too wide."""
    fitted = list(widths)
    while sum(fitted) > room and flexible:
        widest = max(flexible, key=lambda i: fitted[i])
        if fitted[widest] <= 1:
            break
        fitted[widest] -= 1
    return fitted


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A listing as CSV: a header row of `columns` (its JSON keys), then one row per object: null
    is an empty cell, true and false are written as in JSON, a list or an object as compact JSON.
    A text that starts with = + - @ (a feed's title, say) gets a leading ' so that a spreadsheet
    shows it rather than running it as a formula."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_csv_cell(row.get(column)) for column in columns] for row in rows)
    return out.getvalue()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, str) and value.lstrip("\ufeff\u200b ")[:1] in _FORMULA_STARTS:
        return "'" + value
    return str(value)


_FORMULA_STARTS = frozenset("=+-@\t\r")


def feed_state(feed: FeedHealth, now: dt.datetime) -> str:
    """One phrase: disabled, rate limited, failing, ok or not polled yet."""
    if feed.disabled_reason:
        return f"disabled: {feed.disabled_reason}"
    if feed.retry_after and feed.retry_after > now:
        return f"rate limited until {when(feed.retry_after)} (HTTP {feed.last_status})"
    if feed.error_count:
        return f"failing ({feed.error_count} in a row): {feed.last_error}"
    if feed.last_polled_at is None:
        return "not polled yet"
    return f"ok (HTTP {feed.last_status})" if feed.last_status else "ok"


def feed_rows(feeds: Sequence[FeedHealth], now: dt.datetime) -> list[list[str]]:
    """NAME, ITEMS, LAST POLL, NEXT POLL, URL, STATE (the state can be long, so it comes last)."""
    return [
        [f.display_name, str(f.items), when(f.last_polled_at), _next_poll(f, now), f.shown_url, feed_state(f, now)]
        for f in feeds
    ]


FEED_HEADERS = ["NAME", "ITEMS", "LAST POLL", "NEXT POLL", "URL", "STATE"]
FEED_FLEXIBLE = ("NAME", "URL", "STATE")
FEED_OPTIONAL = ("NEXT POLL", "URL", "LAST POLL")  # left out of a narrow terminal's table, in this order


def _next_poll(feed: FeedHealth, now: dt.datetime) -> str:
    if feed.disabled_reason:
        return "-"
    if feed.next_poll_at is None or feed.next_poll_at <= now:
        return "due"
    return when(feed.next_poll_at)


def render_feeds(feeds: Sequence[FeedHealth], now: dt.datetime, *, width: int | None = None) -> str:
    if not feeds:
        return "No feeds: add [[feeds]] to the config or run storywatch feeds add URL."
    return table(FEED_HEADERS, feed_rows(feeds, now), indent="", flexible=FEED_FLEXIBLE, optional=FEED_OPTIONAL,
                 width=width)


def to_json(value: Any) -> str:
    """What --json prints: indented, the text as it is (not \\u-escaped)."""
    return json.dumps(value, ensure_ascii=False, indent=2)


def feeds_json(feeds: Sequence[FeedHealth], now: dt.datetime) -> str:
    return to_json([feed_dict(f, now) for f in feeds])


FEED_COLUMNS = ("url", "name", "title", "origin", "tags", "items", "state", "last_status", "last_error", "error_count",
                "last_polled_at", "last_success_at", "next_poll_at", "retry_after", "disabled_reason")
"""feed_dict's keys, in its order: the columns of `feeds list --csv`."""


def feed_dict(feed: FeedHealth, now: dt.datetime) -> dict[str, Any]:
    def iso(value: dt.datetime | None) -> str | None:
        return to_iso(value) if value else None

    return {
        "url": feed.shown_url,
        "name": feed.name,
        "title": feed.title,
        "origin": feed.origin,
        "tags": list(feed.tags),
        "items": feed.items,
        "state": feed_state(feed, now),
        "last_status": feed.last_status,
        "last_error": feed.last_error,
        "error_count": feed.error_count,
        "last_polled_at": iso(feed.last_polled_at),
        "last_success_at": iso(feed.last_success_at),
        "next_poll_at": iso(feed.next_poll_at),
        "retry_after": iso(feed.retry_after),
        "disabled_reason": feed.disabled_reason,
    }


def render_cycle(cycle: CycleReport, *, width: int | None = None) -> str:
    """Each polled feed's outcome, then the cycle's summary line."""
    rows = [
        [r.outcome, str(r.new_items), r.feed.display_name, r.error or ""]
        for r in cycle.reports
    ]
    head = table(["OUTCOME", "NEW", "FEED", "ERROR"], rows, indent="", flexible=("FEED", "ERROR"), width=width) + "\n" \
        if rows else ""
    summary = cycle.summary()
    return head + (summary if width is None else textwrap.fill(summary, max(width, 20), break_on_hyphens=False))


def cycle_json(cycle: CycleReport) -> str:
    """A polling cycle as `poll --json` prints it: its counts, then each feed asked for."""
    outcomes = ("new", "not_modified", "error", "rate_limited", "gone", "stopped", "deferred")
    return to_json({
        "started_at": to_iso(cycle.started_at), "seconds": round(cycle.seconds, 3), "feeds": len(cycle.reports),
        "new_items": cycle.new_items, "followups": cycle.followups, "failed": cycle.failed,
        "interrupted": cycle.interrupted, "outcomes": {o: cycle.count(o) for o in outcomes}, "summary": cycle.summary(),
        "polled": [{"url": r.feed.shown_url, "name": r.feed.display_name, "outcome": r.outcome,
                    "new_items": r.new_items, "copies": r.copies, "revisions": r.revisions, "followups": r.followups,
                    "error": r.error} for r in cycle.reports],
    })


def unconfirmed_reason(day: dt.date, config: Path | None = None) -> str:
    """What an unconfirmed digest means and what to run, for `status` and `health`."""
    return ("its sending was cut short after the message was handed over, before the server confirmed it, so it may "
            "or may not have arrived; "
            f"to send it again, run: {resend_command(day, config)}")


def render_status(status: StoreStatus, schema: str, now: dt.datetime, *, config: Path | None = None,
                  width: int | None = None) -> str:
    """The store at a glance; given a `width`, the tables fit it and long lines are wrapped."""
    sources = ", ".join(f"{n} {source}" for source, n in sorted(status.items_by_source.items()))
    digest = when(status.last_digest_at)
    if status.last_digest_status:
        digest += f" ({status.last_digest_status}"
        if status.last_digest_error:  # why it failed, is unconfirmed or waits (a send stopped)
            digest += f": {status.last_digest_error}"
        if status.last_digest_status == "failed" and status.last_digest_retry_at:
            digest += f"; next attempt {when(status.last_digest_retry_at)}"
        if status.last_digest_resend_error:
            digest += f"; the last resend failed: {status.last_digest_resend_error}"
        digest += ")"
    fields = [
        ("Store", f"{status.path} (schema {schema})"),
        ("Items", f"{status.items}" + (f" ({sources})" if sources else "")),
        ("Last poll", when(status.last_poll_at)),
        ("Last digest", digest),
        *(("Unconfirmed", f"digest of {day:%Y-%m-%d}: {unconfirmed_reason(day, config)}") for day in status.unconfirmed_digests),
    ]
    parts = [*(_status_field(label, value, width) for label, value in fields), "", f"Feeds ({len(status.feeds)})"]
    if status.feeds:
        parts.append(table(FEED_HEADERS, feed_rows(status.feeds, now), flexible=FEED_FLEXIBLE, optional=FEED_OPTIONAL,
                           width=width))
    else:
        parts.append("  none (storywatch feeds add, or [[feeds]])")
    parts += ["", f"Storylines ({len(status.storylines)})"]
    if status.storylines:
        rows = [
            [s.id + (f" ({s.state})" if s.state else ""), str(s.seeds), str(s.followups), when(s.last_followup_at, "-"), s.title]
            for s in status.storylines
        ]
        parts.append(table(["ID", "SEEDS", "FOLLOW-UPS", "LAST FOLLOW-UP", "TITLE"], rows, flexible=("TITLE",),
                           optional=("LAST FOLLOW-UP", "SEEDS"), width=width))
    else:
        parts.append("  none (storywatch storylines add)")
    return "\n".join(parts)


def status_json(status: StoreStatus, schema: str, now: dt.datetime, *, config: Path | None = None) -> str:
    """`status --json`: what `status` shows, each feed and storyline as `feeds list --json` and
    `storylines list --json` show them."""
    def iso(value: dt.datetime | None) -> str | None:
        return to_iso(value) if value else None

    return to_json({
        "store": str(status.path), "schema": schema, "items": status.items, "items_by_source": status.items_by_source,
        "last_poll_at": iso(status.last_poll_at),
        "last_digest": {"at": iso(status.last_digest_at), "status": status.last_digest_status,
                        "error": status.last_digest_error, "resend_error": status.last_digest_resend_error,
                        "retry_at": iso(status.last_digest_retry_at)},
        "unconfirmed_digests": [{"day": f"{day:%Y-%m-%d}", "resend": resend_command(day, config)}
                                for day in status.unconfirmed_digests],
        "feeds": [feed_dict(f, now) for f in status.feeds],
        "storylines": [storyline_dict(s, now) for s in status.storylines],
    })


def _status_field(label: str, value: str, width: int | None) -> str:
    """A "Label        value" line of `status`, wrapped under its value when wider than `width`."""
    line = f"{label:<12} {value}"
    if width is None or cells(line) <= width:
        return line
    return textwrap.fill(line, max(width, 20), subsequent_indent=" " * 13, break_on_hyphens=False)


def render_items(items: Sequence[StoredItem], hidden_copies: int = 0, *, width: int | None = None) -> str:
    """The items listing; a copy says whose (`= copy of #12`); `hidden_copies` left out are counted."""
    hidden = f"{plural(hidden_copies, 'copy', 'copies')} of stored stories not listed (--copies lists them)." \
        if hidden_copies else ""
    if not items:
        return "\n".join(["No items match.", hidden]).strip()
    rows = [
        [str(i.id), i.published_at.strftime("%Y-%m-%d"), i.source, ",".join(i.storylines) or "-",
         (cut(i.publisher, 24) if width else i.publisher) or "-",
         i.title + (f"  (= copy of #{i.dup_of})" if i.dup_of else "")]
        for i in items
    ]
    listed = table(["ID", "PUBLISHED", "SOURCE", "STORYLINES", "PUBLISHER", "TITLE"], rows, indent="",
                   flexible=("STORYLINES", "PUBLISHER", "TITLE"), optional=("SOURCE", "STORYLINES", "PUBLISHER"),
                   width=width)
    return f"{listed}\n{hidden}" if hidden else listed


def items_json(items: Sequence[StoredItem]) -> str:
    return to_json([item_dict(i) for i in items])


ITEM_COLUMNS = ("id", "identity", "source", "title", "url", "publisher", "published_at", "first_seen_at", "storylines",
                "cluster", "revisions", "copy_of", "copy_kind")
"""item_dict's keys, in its order: the columns of `items --csv`."""


def item_dict(item: StoredItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "identity": item.identity,
        "source": item.source,
        "title": item.title,
        "url": item.url,
        "publisher": item.publisher,
        "published_at": to_iso(item.published_at),
        "first_seen_at": to_iso(item.first_seen_at),
        "storylines": list(item.storylines),
        "cluster": item.cluster_id,
        "revisions": item.revisions,
        "copy_of": item.dup_of,
        "copy_kind": item.dup_kind,
    }


def render_item(detail: ItemDetail) -> str:
    """An item in full: headline, where and when, text, its revisions and its cluster."""
    item = detail.item
    lines = [item.title, "=" * min(len(item.title), 100), ""]
    meta = [
        ("id", str(item.id)),
        ("publisher", item.publisher or "-"),
        ("published", when(item.published_at) + {"missing": " (no date given: first seen)",
                                                   "future": " (dated in the future: clamped)"}.get(detail.date_flag, "")),
        ("first seen", when(item.first_seen_at)),
        ("link", item.url or "-"),
        ("source", item.source),
        ("storylines", ", ".join(item.storylines) or "-"),
        ("identity", url_text(item.identity)),  # a GUID as the feed wrote it: shown inert
    ]
    if item.dup_of:
        meta.append(("copy of", f"item {item.dup_of} ({item.dup_kind}"
                     + (f", similarity {detail.similarity:.2f})" if detail.similarity else ")")))
    lines += [f"{name:<11} {value}" for name, value in meta]
    text = detail.text or detail.summary or "(no text: headline only)"
    lines += ["", *(_fit(paragraph) for paragraph in text.splitlines())]
    if detail.revisions:
        lines += ["", f"Revisions ({len(detail.revisions)} earlier version{'s' if len(detail.revisions) > 1 else ''})"]
        for rev in detail.revisions:
            lines.append(f"  version {rev.revision}, replaced {when(rev.seen_at)}: changed {', '.join(rev.changed)}")
            lines += [_fit("    " + part) for part in rev.diff.splitlines()]
    if len(detail.cluster) > 1:
        lines += ["", f"Cluster {item.cluster_id} ({len(detail.cluster)} items: this story as published by each source)"]
        for member in detail.cluster:
            mark = "*" if member.id == item.id else " "
            kind = f"{member.dup_kind} copy" if member.dup_kind else "original"
            lines.append(_fit(f" {mark} {member.id:>6}  {member.published_at:%Y-%m-%d}  {kind:<11} "
                              f"{member.publisher or '-'}: {member.title}", 35))
    return "\n".join(lines)


def _fit(line: str, indent: int | None = None) -> str:
    """A line wrapped at WIDTH for a terminal, continued at `indent` (default: its own indent)."""
    if len(line) <= WIDTH:
        return line
    hanging = " " * (len(line) - len(line.lstrip()) if indent is None else indent)
    return textwrap.fill(line, WIDTH, subsequent_indent=hanging, break_long_words=False, break_on_hyphens=False)


def item_json(detail: ItemDetail, why: ItemWhy | None = None) -> str:
    """An item in full as JSON, with every storyline's decision on it (``tracking``)."""
    found = item_dict(detail.item) | {
        "text": detail.text, "summary": detail.summary, "author": detail.author, "date_flag": detail.date_flag,
        "copy_similarity": detail.similarity,
        "versions": [{"revision": r.revision, "replaced_at": to_iso(r.seen_at), "title": r.title,
                      "changed": list(r.changed), "diff": r.diff} for r in detail.revisions],
        "cluster_items": [m.id for m in detail.cluster],
    }
    if why is not None:
        found["tracking"] = why_dict(why)
    return json.dumps(found, indent=2, ensure_ascii=False)


def _short(text: str, width: int) -> str:
    return cut(text, width)


# ── storylines ───────────────────────────────────────────────────────────────────────────────


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
    publishers = [_short(e.publisher, 24) or "-" for e in entries]
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


def suggestion_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A suggested storyline as `storylines suggest --json` prints it."""
    return {"id": row["id"], "title": row["title"], "status": row["status"], "storyline_id": row["storyline_id"],
            "items": len(json.loads(row["item_ids"])), "sources": row["sources"], "first_at": row["first_at"],
            "last_at": row["last_at"], "terms": json.loads(row["terms"]), "item_ids": json.loads(row["item_ids"])}


SUGGESTION_COLUMNS = ("id", "title", "status", "storyline_id", "items", "sources", "first_at", "last_at", "terms",
                      "item_ids")
"""suggestion_dict's keys, in its order: the columns of `storylines suggest --csv`."""


def render_suggestions(rows: Sequence[dict[str, Any]], warm_up: int, window_days: int) -> str:
    """Suggestions, or why there are none (`warm_up`: items of the recent window read before the
    first can come)."""
    if not rows:
        return ("No suggested storylines: nothing outside the storylines has clustered yet (suggestions "
                f"start once the worker has read {warm_up:,} items published within {plural(window_days, 'day')} "
                "([tracking] window): word statistics first tell a story's distinctive words from common ones).")
    lines = []
    for r in rows:
        terms = ", ".join(json.loads(r["terms"]))
        items = len(json.loads(r["item_ids"]))
        state = "" if r["status"] == "open" else f" ({r['status']}{': ' + r['storyline_id'] if r['storyline_id'] else ''})"
        lines += [f"#{r['id']}{state}  {r['title']}",
                  f"    {items} items from {r['sources']} sources, {r['first_at'][:10]} to {r['last_at'][:10]}; terms: {terms}"]
    if any(r["status"] == "open" for r in rows):
        lines += ["", "Adopt one: storywatch storylines add ID --from-suggestion N (or --dismiss N)"]
    return "\n".join(lines)


# ── backfill ─────────────────────────────────────────────────────────────────────────────────


class Progress:
    """Backfill progress: a bar with counts, rate and ETA on a terminal, else a log line every
    few seconds (journald and pipes get no carriage returns)."""

    EVERY = 5.0  # seconds between log lines

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.terminal = stream.isatty()
        self.phase = ""
        self.started = self.last = time.monotonic()
        self.width = 0  # of the line on the terminal, to blank what a shorter one leaves

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.terminal and self.phase:
            self.stream.write("\n")
            self.stream.flush()

    def update(self, step: BackfillStep) -> None:
        now = time.monotonic()
        if step.phase != self.phase:  # a phase's clock starts with its first step (at zero)
            if self.terminal and self.phase:
                self.stream.write("\n")
            self.phase, self.started, self.last, self.width = step.phase, now, 0.0, 0
        if not self.terminal and now - self.last < self.EVERY and step.done < step.total:
            return
        self.last = now
        line = progress_line(step, now - self.started)
        if self.terminal:
            self.stream.write("\r" + line.ljust(self.width))
            self.stream.flush()
            self.width = len(line)
        else:
            logger.info("Backfill: {line}", line=line)


def progress_line(step: BackfillStep, seconds: float) -> str:
    """The bar, the counts (the summary's numbers: sources read and failed, entries; items, those
    already stored), then the rate and the time left once something is done to tell them by."""
    width = 30
    filled = min(int(width * step.done / step.total), width) if step.total else width
    if step.phase == "read":
        counts = f"{step.read:,}/{step.total:,} sources read"
        counts += f", {step.failed:,} failed" if step.failed else ""
        counts += f", {plural(step.entries, 'entry', 'entries')}"
        count, unit = step.entries, "entries"
    else:
        counts = f"{step.done:,}/{step.total:,} items loaded"
        counts += f", {step.already_stored:,} already stored" if step.already_stored else ""
        count, unit = step.done, "items"
    line = f"[{'#' * filled}{'.' * (width - filled)}] {counts}"
    if seconds > 0 and count > 0:
        line += f", {count / seconds:,.0f} {unit}/s"
    if seconds > 0 and 0 < step.done < step.total:  # the rest at the pace so far
        line += f", ETA {_duration(seconds * (step.total - step.done) / step.done)}"
    return line


def _duration(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour."""
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def render_backfill(summary: BackfillSummary, dry_run: bool) -> str:
    lines = [f"{'Dry run: ' if dry_run else ''}{plural(summary.sources_read, 'source')} read, {plural(summary.entries, 'entry', 'entries')} "
             f"in {summary.seconds:.1f} s"]
    if not dry_run:
        lines += [f"  new items        {summary.items_new:,}",
                  f"  exact copies     {summary.exact_copies:,}",
                  f"  near-duplicates  {summary.near_duplicates:,}",
                  f"  revisions        {summary.revisions:,}",
                  f"  already stored   {summary.already_stored:,}"]
    if summary.outside_period:
        lines.append(f"  outside the period  {summary.outside_period:,}")
    if summary.followups:
        lines.append("Follow-ups: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.followups.items())))
    if summary.interrupted:
        lines += _interrupted_backfill(summary, dry_run)
    if summary.sources_failed:
        lines.append(f"Failed ({len(summary.sources_failed)}):")
        lines += [f"  {source}: {why}" for source, why in sorted(summary.sources_failed.items())]
    if summary.warnings:
        lines.append(f"Warnings ({len(summary.warnings)}):")
        lines += [f"  {w}" for w in summary.warnings[:20]]
        if len(summary.warnings) > 20:
            lines.append(f"  … and {len(summary.warnings) - 20} more (--json lists all)")
    return "\n".join(lines)


def _interrupted_backfill(summary: BackfillSummary, dry_run: bool) -> list[str]:
    """What a stopped backfill left undone, and how to finish it."""
    unread = len(summary.sources_not_read)
    left = [f"{unread} source{'' if unread == 1 else 's'} not read"]
    if not dry_run:
        left.insert(0, f"{summary.items_not_stored:,} items not stored")
    lines = [f"Interrupted: {', '.join(left)} (run the same command again to load the rest)"]
    if unread:
        lines.append(f"Not read ({unread}):")
        lines += [f"  {source}" for source in sorted(summary.sources_not_read)]
    return lines


# ── why and why not: every storyline's decision on one item ──────────────────────────────────

WIDTH = 100  # terminal lines are wrapped at this width
LABEL = 14  # where a decision line's text starts ("    evidence  ")


def render_why(why: ItemWhy) -> str:
    """Every storyline's decision on the item with its reasons, as a list a person reads."""
    lines = ["Storylines: why and why not"]
    if why.copy_of is not None:
        lines.append(_wrap(f"A copy of item {why.copy_of}: copies are not tracked, their original is "
                           f"(storywatch items show {why.copy_of}).", "  "))
    else:
        lines.append(_wrap(f"Each storyline's decision made again as the tracker sees the store now: after "
                           f"replaying {plural(why.replayed, 'item')} published in the {why.window.days} days "
                           "before it. The item is decided, not learnt from: nothing is written.", "  "))
        if not why.storylines:
            lines.append("  No storylines: add [[storylines]] to the config or use `storywatch storylines add`.")
    if why.differs:
        lines.append(_wrap("Differs from what was recorded for " + ", ".join(why.differs) + ": the recorded "
                           "links stand as stored; the reasons below are as the tracker sees it now.", "  "))
    for storyline in why.storylines:
        lines += ["", *_storyline_why(storyline, why.item_id)]
    if any(s.decision is not None for s in why.storylines):
        lines += ["", _wrap("To change a decision: mark the item (`storywatch items mark ID --storyline S "
                            "--yes|--no`: the storyline learns from it), or keywords and aliases (the names "
                            "evidence counts), seeds (the profile the score and closest compare with), [tracking] threshold or the "
                            "storyline's own threshold (see the README, `storywatch items show`).", "")]
    return "\n".join(lines)


def _storyline_why(s: StorylineWhy, item_id: int) -> list[str]:
    lines = [f"  {s.storyline_id}: {_verdict(s)}", _field("recorded", _recorded(s))]
    d = s.decision
    if d is None:
        return lines + [_field("why", _idle(s))]
    lines += [_score(s, d), *_evidence_why(s, d)]
    reasons = d.reasons
    if reasons is not None:
        if reasons.like_marked is not None:
            marked, followup, _ = reasons.like_marked
            lines.append(_field("mark", f"you marked it {'a follow-up' if followup else 'not a follow-up'}"
                                if marked == str(item_id) else marked_like(list(reasons.like_marked))))
        if reasons.vetoed_by:
            lines.append(_field("vetoed", f"the exclude term '{reasons.vetoed_by}' is in the item"))
        if reasons.missing:
            lines.append(_field("vetoed", f"its title names {' and '.join(reasons.missing)}, which the item "
                                          "does not name and its feed does not imply"))
        lines.append(_field("names", ", ".join(reasons.names) or "none of its keywords or known names"))
        terms = ", ".join(f"{word} {weight:.3f}" for (_, weight), word in zip(reasons.top_terms, s.words) if word)
        lines.append(_field("terms", terms or "no term shared with its profile"))
    lines.append(_field("closest", _closest(s)))
    return lines


def _like_marked(like: tuple[str, bool, float]) -> dict[str, Any]:
    item_id, followup, similarity = like
    return {"item_id": int(item_id) if item_id.isdigit() else item_id, "followup": followup, "similarity": similarity}


def _score(s: StorylineWhy, d: Decision) -> str:
    """The similarity against its threshold: the background level plus the threshold setting."""
    level = d.score - d.margin  # the worker normalises by the background's tail: margin = score - level
    compare = "≥" if d.score >= d.threshold else "below"
    silence = f" minus {d.raw - d.score:.3f} for the storyline's silence" if d.raw > d.score else ""
    return _field("score", f"{d.score:.3f} {compare} threshold {d.threshold:.3f} (background {level:.3f} + "
                  f"threshold setting {s.knob:.3f}); cosine {d.raw:.3f}{silence}")


def _verdict(s: StorylineWhy) -> str:
    if s.idle:
        return {"seed": "a seed", "inactive": "not tracked", "copy": "not decided (a copy)"}.get(s.idle, "not decided")
    if s.followup:
        return "follow-up (by " + " and ".join(s.by) + ")"
    reasons = s.decision.reasons if s.decision is not None else None
    if reasons is not None and reasons.like_marked is not None:
        return "not a follow-up (by your mark)"
    vetoed = reasons is not None and (reasons.vetoed_by or reasons.missing)
    return "not a follow-up" + (" (vetoed)" if vetoed else "")


def _recorded(s: StorylineWhy) -> str:
    r = s.recorded
    if r is None:
        return "nothing (not linked)"
    if r.decision == "seed":
        return f"seed, since {r.decided_at:%Y-%m-%d}"
    scored = f" (score {r.score:.3f}, threshold {r.threshold:.3f})" if r.score is not None and r.threshold is not None else ""
    return f"follow-up, decided {r.decided_at:%Y-%m-%d}{scored}"


def _idle(s: StorylineWhy) -> str:
    at = f"{s.idle_at:%Y-%m-%d}" if s.idle_at else ""
    return {
        "seed": "the item is one of its seeds: a storyline decides on what follows them",
        "early": f"published before the storyline starts ({at}: its first seed)",
        "expired": f"the storyline expired on {at}: expires_after passed without a follow-up",
        "inactive": "the storyline is inactive (no longer in the config): the link stays as recorded",
        "copy": "the item is a copy: the link stays as recorded",
    }.get(s.idle, s.idle)


def _evidence_why(s: StorylineWhy, d: Decision) -> list[str]:
    compare = "≥" if d.evidence >= s.evidence_threshold else "below"
    head = f"{d.evidence:.2f} {compare} evidence threshold {s.evidence_threshold:.2f}"
    counted = d.reasons.counted if d.reasons is not None else ()
    on_beat = any(c.implied for c in counted)
    if not on_beat:
        head += ": off its beat, " + _off_beat(d.reasons.feed_items if d.reasons is not None else 0)
    lines = [_field("evidence", head)]
    lines += [_field("", _unit(c, on_beat), indent=LABEL + 2) for c in counted]
    if not counted:
        lines.append(_field("", "none of its names or keywords is in the item", indent=LABEL + 2))
    return lines


def _off_beat(feed_items: int) -> str:
    """Why evidence counts nothing: no name of the storyline is implied by the item's feed."""
    if feed_items < MIN_SOURCE_DOCS:
        return (f"so it counts 0: the window holds {plural(feed_items, 'item')} of this feed, fewer than "
                f"the {MIN_SOURCE_DOCS} needed to tell which names the feed implies")
    return (f"so it counts 0: none of its names is in half of this feed's {feed_items} recent items "
            "(evidence counts only where the feed is on the storyline's beat)")


def _unit(c: Counted, on_beat: bool) -> str:
    """One unit of evidence: "Russia: title, 2×, weight 1.0 × salience 1.0 = 1.00"."""
    share = f" (in {c.share:.0%} of the feed's items)" if c.share else ""
    if c.implied:
        return f"{c.label}: implied by the feed{share}: on the beat, adds 0"
    times = "once" if c.count <= 1 else f"{c.count}×"
    where = f"{c.label}{'' if c.name else ' (topic)'}: {c.zone}, {times}{c.spread}"
    if not on_beat:
        return where
    product = f"weight {c.weight:.1f}{share} × salience {c.salience:.1f}" + ("" if c.name else " × 0.5")
    alone = "" if c.name or c.points else " (a topic counts only beside a name in the title or lead)"
    return f"{where}, {product} = {c.points:.2f}{alone}"


def _closest(s: StorylineWhy) -> str:
    c = s.closest
    if c is None:
        return "no seed or follow-up shares a term with the item"
    return f"{c.kind} #{c.item_id} (similarity {c.similarity:.3f}): {_short(c.title, 80)}"


def _field(label: str, text: str, indent: int = LABEL) -> str:
    """A labelled line wrapped at WIDTH, continued under its text."""
    head = f"    {label:<{indent - 4}}" if label else " " * indent
    return textwrap.fill(text, WIDTH, initial_indent=head, subsequent_indent=" " * indent,
                         break_long_words=False, break_on_hyphens=False)


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False)


def why_dict(why: ItemWhy) -> dict[str, Any]:
    return {"as_tracked_now": why.copy_of is None, "copy_of": why.copy_of, "window_days": why.window.days,
            "replayed": why.replayed, "differs": why.differs,
            "storylines": [_storyline_dict(s) for s in why.storylines]}


def _storyline_dict(s: StorylineWhy) -> dict[str, Any]:
    r, d = s.recorded, s.decision
    found: dict[str, Any] = {
        "id": s.storyline_id, "title": s.title,
        "recorded": None if r is None else {"decision": r.decision, "score": r.score, "threshold": r.threshold,
                                            "decided_at": to_iso(r.decided_at)},
        "decided": d is not None, "not_decided": s.idle or None,
        "not_decided_at": to_iso(s.idle_at) if s.idle_at else None,
        "followup": s.followup, "by": list(s.by), "differs": s.differs,
    }
    if d is None:
        return found
    reasons = d.reasons
    return found | {
        "score": round(d.score, 4), "threshold": round(d.threshold, 4), "background": round(d.score - d.margin, 4),
        "threshold_setting": s.knob, "cosine": round(d.raw, 4), "recency": round(d.raw - d.score, 4),
        "vetoed_by": reasons.vetoed_by if reasons else None,
        "missing": list(reasons.missing) if reasons else [],
        "like_marked": _like_marked(reasons.like_marked) if reasons and reasons.like_marked else None,
        "evidence": {
            "score": round(d.evidence, 4), "threshold": s.evidence_threshold,
            "on_beat": any(c.implied for c in reasons.counted) if reasons else False,
            "feed_items": reasons.feed_items if reasons else 0,
            "units": [{"label": c.label, "name": c.name, "zone": c.zone or None, "count": c.count,
                       "share": round(c.share, 4), "weight": round(c.weight, 4), "salience": round(c.salience, 4),
                       "points": round(c.points, 4), "implied": c.implied} for c in (reasons.counted if reasons else ())],
        },
        "names": list(reasons.names) if reasons else [],
        "terms": [[t, w, word] for (t, w), word in zip(reasons.top_terms, s.words)] if reasons else [],
        "closest": None if s.closest is None else {"item_id": s.closest.item_id, "kind": s.closest.kind,
                                                   "title": s.closest.title, "similarity": s.closest.similarity},
    }
