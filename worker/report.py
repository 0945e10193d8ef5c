"""Text and JSON renderings of what the store knows, for the CLI's status and listing commands."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

from worker.clock import to_iso
from worker.models import FeedHealth, ItemDetail, StoredItem, StorylineSummary, StoreStatus, TimelineEntry, plural, reason_strings

if TYPE_CHECKING:
    from worker.backfill import Summary as BackfillSummary
    from worker.pipeline import CycleReport


def when(value: dt.datetime | None, never: str = "never") -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else never


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Left-aligned columns; the last column is never padded (it may be long)."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers) - 1)]
    lines = []
    for row in [headers, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row, widths)] + [str(row[-1])]
        lines.append(indent + "  ".join(cells).rstrip())
    return "\n".join(lines)


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
        [f.name or "-", str(f.items), when(f.last_polled_at), _next_poll(f, now), f.url, feed_state(f, now)]
        for f in feeds
    ]


FEED_HEADERS = ["NAME", "ITEMS", "LAST POLL", "NEXT POLL", "URL", "STATE"]


def _next_poll(feed: FeedHealth, now: dt.datetime) -> str:
    if feed.disabled_reason:
        return "-"
    if feed.next_poll_at is None or feed.next_poll_at <= now:
        return "due"
    return when(feed.next_poll_at)


def render_feeds(feeds: Sequence[FeedHealth], now: dt.datetime) -> str:
    if not feeds:
        return "No feeds: add [[feeds]] to the config or run storywatch feeds add URL."
    return table(FEED_HEADERS, feed_rows(feeds, now), indent="")


def feeds_json(feeds: Sequence[FeedHealth], now: dt.datetime) -> str:
    return json.dumps([feed_dict(f, now) for f in feeds], ensure_ascii=False, indent=2)


def feed_dict(feed: FeedHealth, now: dt.datetime) -> dict[str, Any]:
    def iso(value: dt.datetime | None) -> str | None:
        return to_iso(value) if value else None

    return {
        "url": feed.url,
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


def render_cycle(cycle: CycleReport) -> str:
    """Each polled feed's outcome, then the cycle's summary line."""
    rows = [
        [r.outcome, str(r.new_items), r.feed.display_name, r.error or ""]
        for r in cycle.reports
    ]
    head = table(["OUTCOME", "NEW", "FEED", "ERROR"], rows, indent="") + "\n" if rows else ""
    return head + cycle.summary()


def resend_command(day: dt.date, config: Path | None = None) -> str:
    """The command that sends the digest of `day` again (naming `config`, the --config given)."""
    option = f" --config {shlex.quote(str(config))}" if config else ""
    return f"storywatch{option} digest --date {day:%Y-%m-%d} --send --resend"


def unconfirmed_reason(day: dt.date, config: Path | None = None) -> str:
    """What an unconfirmed digest means and what to run, for `status` and `health`."""
    return ("the worker stopped while sending it, so it may or may not have arrived; "
            f"to send it again, run: {resend_command(day, config)}")


def render_status(status: StoreStatus, schema: str, now: dt.datetime, *, config: Path | None = None) -> str:
    sources = ", ".join(f"{n} {source}" for source, n in sorted(status.items_by_source.items()))
    digest = when(status.last_digest_at)
    if status.last_digest_status:
        digest += f" ({status.last_digest_status}"
        if status.last_digest_status in ("failed", "unconfirmed") and status.last_digest_error:
            digest += f": {status.last_digest_error}"
        if status.last_digest_status == "failed" and status.last_digest_retry_at:
            digest += f"; next attempt {when(status.last_digest_retry_at)}"
        digest += ")"
    parts = [
        f"Store        {status.path} (schema {schema})",
        f"Items        {status.items}" + (f" ({sources})" if sources else ""),
        f"Last poll    {when(status.last_poll_at)}",
        f"Last digest  {digest}",
        *(f"Unconfirmed  digest of {day:%Y-%m-%d}: {unconfirmed_reason(day, config)}" for day in status.unconfirmed_digests),
        "",
        f"Feeds ({len(status.feeds)})",
    ]
    if status.feeds:
        parts.append(table(FEED_HEADERS, feed_rows(status.feeds, now)))
    else:
        parts.append("  none configured: add [[feeds]] to the config")
    parts += ["", f"Storylines ({len(status.storylines)})"]
    if status.storylines:
        rows = [
            [s.id + ("" if s.active else " (inactive)"), str(s.seeds), str(s.followups), when(s.last_followup_at, "-"), s.title]
            for s in status.storylines
        ]
        parts.append(table(["ID", "SEEDS", "FOLLOW-UPS", "LAST FOLLOW-UP", "TITLE"], rows))
    else:
        parts.append("  none configured: add [[storylines]] to the config")
    return "\n".join(parts)


def render_items(items: Sequence[StoredItem]) -> str:
    if not items:
        return "No items match."
    rows = [
        [str(i.id), i.published_at.strftime("%Y-%m-%d"), i.source, ",".join(i.storylines) or "-", _short(i.publisher, 24) or "-", i.title]
        for i in items
    ]
    return table(["ID", "PUBLISHED", "SOURCE", "STORYLINES", "PUBLISHER", "TITLE"], rows, indent="")


def items_json(items: Sequence[StoredItem]) -> str:
    return json.dumps([item_dict(i) for i in items], ensure_ascii=False, indent=2)


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
        ("identity", item.identity),
    ]
    if item.dup_of:
        meta.append(("copy of", f"item {item.dup_of} ({item.dup_kind}"
                     + (f", similarity {detail.similarity:.2f})" if detail.similarity else ")")))
    lines += [f"{name:<11} {value}" for name, value in meta]
    lines += ["", detail.text or detail.summary or "(no text: headline only)"]
    if detail.revisions:
        lines += ["", f"Revisions ({len(detail.revisions)} earlier version{'s' if len(detail.revisions) > 1 else ''})"]
        for rev in detail.revisions:
            lines.append(f"  version {rev.revision}, replaced {when(rev.seen_at)}: changed {', '.join(rev.changed)}")
            lines += ["    " + part for part in rev.diff.splitlines()]
    if len(detail.cluster) > 1:
        lines += ["", f"Cluster {item.cluster_id} ({len(detail.cluster)} items: this story as published by each source)"]
        for member in detail.cluster:
            mark = "*" if member.id == item.id else " "
            kind = f"{member.dup_kind} copy" if member.dup_kind else "original"
            lines.append(f" {mark} {member.id:>6}  {member.published_at:%Y-%m-%d}  {kind:<11} {member.publisher or '-'}: {member.title}")
    return "\n".join(lines)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ── storylines ───────────────────────────────────────────────────────────────────────────────


def render_storylines(summaries: Sequence[StorylineSummary], now: dt.datetime) -> str:
    if not summaries:
        return "No storylines: add [[storylines]] to the config or use `storywatch storylines add`."
    rows = [[s.id + ("" if s.active else " (inactive)"), str(s.seeds), str(s.followups),
             when(s.last_followup_at, "-"), _quiet_for(s.last_followup_at, now), s.title] for s in summaries]
    return table(["ID", "SEEDS", "FOLLOW-UPS", "LAST FOLLOW-UP", "QUIET", "TITLE"], rows, indent="")


def _quiet_for(last: dt.datetime | None, now: dt.datetime) -> str:
    return "-" if last is None else f"{max((now - last).days, 0)} days"


def storylines_json(summaries: Sequence[StorylineSummary], now: dt.datetime) -> str:
    return json.dumps([{"id": s.id, "title": s.title, "active": s.active, "seeds": s.seeds,
                        "followups": s.followups, "last_followup_at": to_iso(s.last_followup_at) if s.last_followup_at else None,
                        "quiet_days": (now - s.last_followup_at).days if s.last_followup_at else None}
                       for s in summaries], indent=2, ensure_ascii=False)


def reasons_in_words(entry: TimelineEntry) -> str:
    """A follow-up's stored reasons as one line: names, shared terms, closest item, score."""
    reasons = entry.reasons
    parts = []
    names, terms = reason_strings(reasons.get("names")), reason_strings(reasons.get("top_terms"))
    if names:
        parts.append("mentions " + ", ".join(names[:5]))
    if terms:
        parts.append("shares " + ", ".join(terms[:5]))
    if entry.closest_item_id is not None:
        parts.append(f"closest to #{entry.closest_item_id} ({reasons.get('closest_similarity')})")
    if entry.score is not None and entry.threshold is not None:
        parts.append(f"score {entry.score:.3f} ≥ threshold {entry.threshold:.3f}")
    return "; ".join(parts)


def render_timeline(summary: StorylineSummary, entries: Sequence[TimelineEntry]) -> str:
    lines = [f"{summary.id}: {summary.title}", plural(summary.seeds, "seed") + ", " + plural(summary.followups, "follow-up"), ""]
    for e in entries:
        kind = "seed" if e.decision == "seed" else f"{e.score:.3f}" if e.score is not None else e.decision
        lines.append(f"{e.published_at:%Y-%m-%d}  #{e.item_id:<6} {kind:>6}  {_short(e.publisher, 24) or '-'}  {e.title}")
        if e.decision != "seed":
            lines.append(f"{'':19}why: {reasons_in_words(e)}")
            if e.novelty:
                lines.append(f"{'':19}new in this story: {', '.join(e.novelty)}")
    return "\n".join(lines)


def timeline_json(summary: StorylineSummary, entries: Sequence[TimelineEntry]) -> str:
    return json.dumps({
        "id": summary.id, "title": summary.title,
        "timeline": [{"item_id": e.item_id, "decision": e.decision, "published_at": to_iso(e.published_at),
                      "publisher": e.publisher, "title": e.title, "url": e.url, "source": e.source,
                      "score": e.score, "threshold": e.threshold, "reasons": e.reasons,
                      "novelty": list(e.novelty), "closest_item_id": e.closest_item_id} for e in entries],
    }, indent=2, ensure_ascii=False)


def render_suggestions(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "No suggested storylines: nothing outside the storylines has clustered yet."
    lines = []
    for r in rows:
        terms = ", ".join(json.loads(r["terms"]))
        items = len(json.loads(r["item_ids"]))
        state = "" if r["status"] == "open" else f" ({r['status']}{': ' + r['storyline_id'] if r['storyline_id'] else ''})"
        lines += [f"#{r['id']}{state}  {r['title']}",
                  f"    {items} items from {r['sources']} sources, {r['first_at'][:10]} to {r['last_at'][:10]}; terms: {terms}"]
    lines += ["", "Adopt one: storywatch storylines add ID --from-suggestion N"]
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

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.terminal and self.phase:
            self.stream.write("\n")
            self.stream.flush()

    def update(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if phase != self.phase:
            if self.terminal and self.phase:
                self.stream.write("\n")
            self.phase, self.started, self.last = phase, now, 0.0
        if not self.terminal and now - self.last < self.EVERY and done < total:
            return
        self.last = now
        line = progress_line(phase, done, total, now - self.started)
        if self.terminal:
            self.stream.write("\r" + line)
            self.stream.flush()
        else:
            logger.info("Backfill: {line}", line=line)


def progress_line(phase: str, done: int, total: int, seconds: float) -> str:
    unit = "sources read" if phase == "read" else "items stored"
    rate = done / seconds if seconds > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else 0.0
    width = 30
    filled = int(width * done / total) if total else width
    return (f"[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} {unit}, "
            f"{rate:,.0f}/s, ETA {int(eta) // 60}:{int(eta) % 60:02d}")


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
