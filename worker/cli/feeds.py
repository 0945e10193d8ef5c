"""`feeds`: listing, adding, importing, exporting, editing, pausing and removing feeds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
import click

from worker import manage, report, views
from worker.digest import deliver
from worker.clock import utc_now
from worker.config import is_web_url, parse_duration
from worker.safetext import address_without_password, url_text, without_password
from worker.models import Feed, plural
from worker.sources import opml
from worker.cli.base import (
    App, CSV_OPTION, Group, OUTPUT_OPTION, cli, confirm_loss, one_format, one_line_option, pass_app, phrases_option,
    print_data, table_width,
)


@cli.group(cls=Group)
def feeds() -> None:
    """List, add, import and export feeds."""


@feeds.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@CSV_OPTION
@OUTPUT_OPTION
@pass_app
def feeds_list(app: App, as_json: bool, as_csv: bool, output: Path | None) -> None:
    """Show every feed with its health: items, last status and error, next poll.

    \b
    Example:
      storywatch feeds list
      storywatch feeds list --json
      storywatch feeds list --csv -o feeds.csv
    """
    one_format(as_json, as_csv)
    health, now = views.feeds(app.db), utc_now()
    print_data(report.feeds_json(health, now) if as_json else
           report.csv_text((report.feed_dict(f, now) for f in health), report.FEED_COLUMNS) if as_csv else
           report.render_feeds(health, now, width=table_width(output)), output)


@feeds.command(name="add")
@click.argument("url")
@click.option("--name", default="", callback=one_line_option, help="A short name shown in status and digests (default: the feed's title).")
@click.option("--interval", metavar="DURATION", help="Time between polls, e.g. 2h.")
@click.option("--tag", "tags", multiple=True, callback=phrases_option, help="A label; repeat for several.")
@click.option("--no-check", is_flag=True, help="Add it without fetching it once first.")
@pass_app
def feeds_add(app: App, url: str, name: str, interval: str | None, tags: tuple[str, ...], no_check: bool) -> None:
    """Add a feed to the store (polled from the next cycle on). It is fetched once first: an
    address that does not answer, or answers with no feed, is refused (a web page's advertised
    feeds are named); --no-check skips that.

    Feeds added here are kept when the config changes; to manage a feed in the config instead,
    add it there as a [[feeds]] entry.

    \b
    Example:
      storywatch feeds add https://www.nknews.org/feed/ --name "NK News" --tag korea
    """
    if not is_web_url(url):
        raise click.BadParameter("expected an http:// or https:// URL", param_hint="URL")
    every = parse_duration(interval) if interval else None
    if interval and every is None:
        raise click.BadParameter(f"{interval!r} is not a duration such as 30m or 2h", param_hint="--interval")
    known = manage.known_feed(app.db, url)
    if _already_known(known):
        return
    url = manage.feed_url(known, url)
    shown = without_password(url)
    parsed, answered_from = manage.check_feed(url, app.settings.fetch) if not no_check else (None, url)
    if answered_from != url and _already_known(manage.known_feed(app.db, answered_from), f"{shown} redirects there"):
        return
    manage.check_name(app.db, name, known)
    manage.add_feed(app.db, url, utc_now(), name=name, tags=tags, interval=every, title=parsed.title if parsed else "")
    found = f": {parsed.title or 'untitled'}, {plural(len(parsed.entries), 'entry', 'entries')}" if parsed else ""
    click.echo(f"Added {shown}{found}; it is polled at the next cycle (or now: storywatch poll --feed {shown})")


def _already_known(known: Feed | None, why: str = "storywatch feeds edit changes it") -> bool:
    """Say so when a feed to add is known (and not removed: adding a removed one brings it back)."""
    if not manage.is_listed(known):
        return False
    click.echo(f"Already known: {without_password(known.url)} ({why})")
    return True


@feeds.command(name="import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def feeds_import(app: App, path: Path) -> None:
    """Add every feed of an OPML file (folders become tags).

    \b
    Example:
      storywatch feeds import subscriptions.opml
    """
    added = known = 0
    for feed in opml.read_opml(path):
        if not is_web_url(feed.url):
            click.echo(f"Skipped (not an http(s) address): {address_without_password(url_text(feed.url))}", err=True)
            continue
        if manage.import_feed(app.db, feed.url, feed.title, feed.tags, utc_now()):
            added += 1
        else:
            known += 1
    click.echo(f"Imported {path}: {plural(added, 'feed')} added, {known} already known")


@feeds.command(name="export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file instead of stdout.")
@pass_app
def feeds_export(app: App, output: Path | None) -> None:
    """Write every active feed as OPML 2.0.

    \b
    Example:
      storywatch feeds export -o storywatch.opml
    """
    outlines = [
        opml.OutlineFeed(f.url, f.name or f.title or "", f.tags)
        for f in views.feeds(app.db)
        if not f.disabled_reason
    ]
    text = opml.write_opml(outlines, utc_now())
    if output:
        deliver.write_atomically(output, text, make_folder=False)
        click.echo(f"Wrote {plural(len(outlines), 'feed')} to {output}")
    else:
        click.echo(text, nl=False)


def _interval(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.timedelta | None | bool:
    """--interval DURATION, or "default" to unset it; False when not given."""
    if value is None:
        return False
    if value == "default":
        return None
    every = parse_duration(value)
    if every is None:
        raise click.BadParameter(f"{value!r} is not a duration such as 30m or 2h, nor 'default'")
    return every


@feeds.command(name="remove")
@click.argument("feed", metavar="FEED")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def feeds_remove(app: App, feed: str, yes: bool) -> None:
    """Stop polling a feed added here (or by OPML) and hide it from listings. Its items stay,
    searchable and listed under its name; `feeds add` with its address brings it back. FEED:
    its address as `feeds list` shows it, or its name. A feed of the config is removed there.

    \b
    Example:
      storywatch feeds remove https://example.org/feed.xml --yes
    """
    found = manage.removable_feed(app.db, feed, app.config_file)
    shown = without_password(found.url)
    confirm_loss(f"Remove {shown}? Its {plural(views.feed_item_count(app.db, found.id), 'item')} stay.", yes)
    manage.remove_feed(app.db, found)
    click.echo(f"Removed {shown}; its items stay in the store.")


@feeds.command(name="disable")
@click.argument("feed", metavar="FEED")
@pass_app
def feeds_disable(app: App, feed: str) -> None:
    """Stop polling a feed until `feeds enable` (config feeds too: it stays disabled).

    \b
    Example:
      storywatch feeds disable "NK News"
    """
    found, changed = manage.disable_feed(app.db, feed)
    shown = without_password(found.url)
    click.echo(f"Disabled {shown}." if changed else f"{shown} is disabled already ({found.disabled_reason}).")


@feeds.command(name="enable")
@click.argument("feed", metavar="FEED")
@pass_app
def feeds_enable(app: App, feed: str) -> None:
    """Poll a disabled feed again from the next cycle (whatever disabled it).

    \b
    Example:
      storywatch feeds enable "NK News"
    """
    found, reason = manage.enable_feed(app.db, feed)
    shown = without_password(found.url)
    click.echo(f"Enabled {shown} (disabled: {reason}); it is polled at the next cycle." if reason
               else f"{shown} is enabled already.")


@feeds.command(name="edit")
@click.argument("feed", metavar="FEED")
@click.option("--name", callback=one_line_option, help="A new name.")
@click.option("--tag", "tags", multiple=True, callback=phrases_option, help="The feed's tags, replacing its tags (repeat).")
@click.option("--no-tags", is_flag=True, help="Remove every tag.")
@click.option("--interval", metavar="DURATION|default", callback=_interval, help="Time between polls, or 'default'.")
@pass_app
def feeds_edit(app: App, feed: str, name: str | None, tags: tuple[str, ...], no_tags: bool,
               interval: dt.timedelta | None | bool) -> None:
    """Change a feed added here: its name, tags or interval (a config feed is changed in the config).

    \b
    Example:
      storywatch feeds edit https://example.org/feed.xml --name "Example" --tag korea --interval 2h
    """
    if tags and no_tags:
        raise click.UsageError("--tag and --no-tags exclude each other")
    if name is None and not tags and not no_tags and interval is False:
        raise click.UsageError("say what to change: --name, --tag, --no-tags or --interval")
    found = manage.edit_feed(app.db, feed, app.config_file, name=name, tags=() if no_tags else tags or None,
                             interval=interval)
    click.echo(f"Changed {without_password(found.url)}.")
