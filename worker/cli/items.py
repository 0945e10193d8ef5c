"""`items`: listing, searching, showing and marking stored items."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any
import click

from worker import manage, report, storylines, views, why
from worker.clock import utc_now
from worker.cli.base import (
    App, CSV_OPTION, Group, OUTPUT_OPTION, cli, one_format, pass_app, print_data, since_option, table_width,
)


class _ItemId(click.IntRange):
    """An item's ID, as listings show it too (`#42`)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            value = value.removeprefix("#")
        return super().convert(value, param, ctx)


MAX_SEARCH_WORDS = 64  # a query past that is a pasted text, and costs SQLite more than any answer is worth

ITEM_ID = _ItemId(1, 2**63 - 1)
"""An item id as the store can hold it (SQLite's INTEGER)."""


@cli.group(cls=Group, invoke_without_command=True)
@click.option("--since", metavar="DATE|AGE", callback=since_option, help="Only items published since then: 2024-01-27 or 7d.")
@click.option("--storyline", metavar="ID", help="Only items of this storyline.")
@click.option("--search", metavar="TEXT", help='Full-text search: all words must match, "quoted phrase".')
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--copies", is_flag=True, help="List copies of stored stories too (marked '= copy of #N').")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@CSV_OPTION
@OUTPUT_OPTION
@click.pass_context
def items(
    ctx: click.Context, since: dt.datetime | None, storyline: str | None, search: str | None, limit: int,
    copies: bool, as_json: bool, as_csv: bool, output: Path | None,
) -> None:
    """List stored items, newest first (best match first with --search).

    \b
    Example:
      storywatch items --search "Friendship Year"
      storywatch items --storyline friendship-year --since 2024-01-01 --json
      storywatch items --search Kaesong --copies
      storywatch items --since 7d --csv -o items.csv
      storywatch items show 42
    """
    if ctx.invoked_subcommand is not None:
        return
    one_format(as_json, as_csv)
    app = ctx.ensure_object(App)
    if storyline is not None:
        manage.storyline(app.db, storyline)  # an unknown one is an error, not "no items"
    if search is not None and not re.search(r"\w", search):  # nothing to look for: "", '""', "!!"
        raise click.BadParameter("give words to search for", param_hint="--search")
    if search is not None and len(search.split()) > MAX_SEARCH_WORDS:
        raise click.BadParameter(f"at most {MAX_SEARCH_WORDS} words", param_hint="--search")
    listing = views.items(app.db, since=since, storyline=storyline, search=search, limit=limit, copies=copies,
                          count_hidden=not (as_json or as_csv))
    more, found = listing.more, listing.items
    cut_short = f"only the first {limit:,} items are listed: --limit N lists more" if more else ""
    if as_json or as_csv:
        print_data(report.items_json(found) if as_json else
               report.csv_text(map(report.item_dict, found), report.ITEM_COLUMNS), output)
        if more:
            click.echo(f"Note: {cut_short}", err=True)  # not in the data a script reads
        return
    listed = report.render_items(found, listing.hidden, width=table_width(output))
    print_data(f"{listed}\n{cut_short[0].upper()}{cut_short[1:]}." if more else listed, output)


@items.command(name="show")
@click.argument("item_id", metavar="ID", type=ITEM_ID)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, the decisions under `tracking`.")
@OUTPUT_OPTION
@pass_app
def items_show(app: App, item_id: int, as_json: bool, output: Path | None) -> None:
    """Show one item in full: its text, its earlier versions with diffs, its cluster, and why each
    storyline took it or not (score, threshold, the names and terms that counted, the closest
    seed or follow-up), decided again as the tracker sees the store now.

    \b
    Example:
      storywatch items show 42
      storywatch items show 42 --json
    """
    detail = views.item(app.db, item_id)
    found = why.explain_item(app.db, app.settings.tracking, item_id, copy_of=detail.item.dup_of)
    print_data(report.item_json(detail, found) if as_json else report.render_item(detail) + "\n\n" + report.render_why(found),
           output)


@items.command(name="mark")
@click.argument("item_id", metavar="ID", type=ITEM_ID)
@click.option("--storyline", "storyline_id", metavar="S", required=True, help="The storyline judged.")
@click.option("--yes", is_flag=True, help="The item is a follow-up of the storyline.")
@click.option("--no", is_flag=True, help="The item is not a follow-up of the storyline.")
@click.option("--clear", is_flag=True, help="Forget the mark: the tracker's own decision stands again.")
@pass_app
def items_mark(app: App, item_id: int, storyline_id: str, yes: bool, no: bool, clear: bool) -> None:
    """Mark an item a follow-up of a storyline or not: the storyline learns from it.

    --yes links an item the storyline missed; --no unlinks a follow-up; --clear forgets the mark
    and puts back what the tracker had decided. The storyline takes a "yes" into its profile as
    it does a seed, drops a "no" from it if it had adopted it, and decides alike for items very
    like a marked one. Marks are kept in the store and hold over the tracker's own decisions; a
    running worker uses them from its next cycle.

    \b
    Example:
      storywatch items mark 42 --storyline friendship-year --no
      storywatch items mark 57 --storyline north-korea-russia --yes
    """
    if yes + no + clear != 1:
        raise click.UsageError("say one of --yes, --no or --clear")
    changed = storylines.mark(app.db, item_id, storyline_id, True if yes else False if no else None, utc_now())
    done = "marked a follow-up of" if yes else "marked not a follow-up of" if no else "mark cleared for"
    click.echo(f"Item {item_id} {done} {storyline_id}: {changed}.")
