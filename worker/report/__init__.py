"""Text and JSON renderings of what the store knows, for the CLI's status and listing commands:
tables (fitting the terminal; CSV, JSON), listings, storylines, backfill progress, why."""

from __future__ import annotations

from worker.report.tables import (
    NARROWEST, WIDTH, cells, csv_text, cut, short_text, table, terminal_width, to_json, when,
)
from worker.report.listings import (
    FEED_COLUMNS, FEED_FLEXIBLE, FEED_HEADERS, FEED_OPTIONAL, ITEM_COLUMNS, cycle_json, feed_dict, feed_rows,
    feed_state, feeds_json, item_dict, item_json, items_json, render_cycle, render_feeds, render_item, render_items,
    render_status, status_json, unconfirmed_reason,
)
from worker.report.storylines import (
    STORYLINE_COLUMNS, SUGGESTION_COLUMNS, TIMELINE_COLUMNS, reasons_in_words, render_storylines,
    render_suggestions, render_timeline, storyline_dict, storylines_json, suggestion_dict, timeline_json,
    timeline_rows,
)
from worker.report.progress import (
    Progress, progress_line, render_backfill,
)
from worker.report.why import (
    LABEL, render_why, why_dict,
)

__all__ = [
    "FEED_COLUMNS",
    "FEED_FLEXIBLE",
    "FEED_HEADERS",
    "FEED_OPTIONAL",
    "ITEM_COLUMNS",
    "LABEL",
    "NARROWEST",
    "Progress",
    "STORYLINE_COLUMNS",
    "SUGGESTION_COLUMNS",
    "TIMELINE_COLUMNS",
    "WIDTH",
    "cells",
    "csv_text",
    "cut",
    "cycle_json",
    "feed_dict",
    "feed_rows",
    "feed_state",
    "feeds_json",
    "item_dict",
    "item_json",
    "items_json",
    "progress_line",
    "reasons_in_words",
    "render_backfill",
    "render_cycle",
    "render_feeds",
    "render_item",
    "render_items",
    "render_status",
    "render_storylines",
    "render_suggestions",
    "render_timeline",
    "render_why",
    "short_text",
    "status_json",
    "storyline_dict",
    "storylines_json",
    "suggestion_dict",
    "table",
    "terminal_width",
    "timeline_json",
    "timeline_rows",
    "to_json",
    "unconfirmed_reason",
    "when",
    "why_dict",
]
