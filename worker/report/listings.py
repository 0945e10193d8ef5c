"""Feeds, polling cycles, the store's status and items, as tables, text and JSON."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit
from typing import TYPE_CHECKING, Any

from worker.digest.daily import resend_command
from worker.safetext import url_text
from worker.clock import to_iso
from worker.models import Feed, FeedHealth, ItemDetail, StoredItem, StoreStatus, plural
from worker.report.storylines import storyline_dict
from worker.report.tables import WIDTH, cells, cut, table, to_json, when
from worker.report.why import why_dict

if TYPE_CHECKING:
    from worker.cycle import CycleReport
    from worker.why import ItemWhy


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


def _feed_in_cycle(feed: Feed) -> str:
    """A feed's name or title; else its host and the last part of its path, not the host alone:
    feeds that never answered have no title, and several may share a host. The part between is
    left out (a narrow table cuts the end, where addresses differ), and the query too (it may
    hold a token); `feeds list` shows the whole address."""
    if named := feed.name or feed.title:
        return named
    parts = urlsplit(feed.shown_url)
    path = parts.path.rstrip("/")
    last = path.rsplit("/", 1)[-1]
    return parts.netloc + ("/…/" if path.count("/") > 1 else "/") + last


def render_cycle(cycle: CycleReport, *, width: int | None = None) -> str:
    """Each polled feed's outcome, then the cycle's summary line."""
    rows = [
        [r.outcome, str(r.new_items), _feed_in_cycle(r.feed), r.error or ""]
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
