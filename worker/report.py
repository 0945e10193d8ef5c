"""Text and JSON renderings of what the store knows, for the CLI's status and listing commands."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from worker.clock import to_iso
from worker.models import FeedHealth, StoredItem, StoreStatus


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


def feed_state(feed: FeedHealth) -> str:
    """One phrase: disabled, failing, ok or new."""
    if feed.disabled_reason:
        return f"disabled: {feed.disabled_reason}"
    if feed.error_count:
        return f"failing ({feed.error_count} in a row): {feed.last_error}"
    if feed.last_polled_at is None:
        return "not polled yet"
    return f"ok ({feed.last_status})" if feed.last_status else "ok"


def render_status(status: StoreStatus, schema: str) -> str:
    sources = ", ".join(f"{n} {source}" for source, n in sorted(status.items_by_source.items()))
    digest = when(status.last_digest_at)
    if status.last_digest_status:
        digest += f" ({status.last_digest_status})"
    parts = [
        f"Store        {status.path} (schema {schema})",
        f"Items        {status.items}" + (f" ({sources})" if sources else ""),
        f"Last poll    {when(status.last_poll_at)}",
        f"Last digest  {digest}",
        "",
        f"Feeds ({len(status.feeds)})",
    ]
    if status.feeds:
        rows = [
            [f.name or "-", str(f.items), when(f.last_polled_at), when(f.next_poll_at, "due"), f.url, feed_state(f)]
            for f in status.feeds
        ]  # the state can be long, so it comes last and the other columns stay aligned
        parts.append(table(["NAME", "ITEMS", "LAST POLL", "NEXT POLL", "URL", "STATE"], rows))
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
    }


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
