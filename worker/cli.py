"""The `storywatch` command: thin click commands, each one call into the library.

The config file is chosen by `storywatch --config PATH COMMAND`, else $STORYWATCH_CONFIG,
else ./config/storywatch.toml. An error a user can cause (any StorywatchError) is printed as
one sentence on stderr with a non-zero exit, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import sys
from functools import cached_property
from pathlib import Path
from typing import Any

import click
from sqlite_utils import Database

from worker import __version__, opml, pipeline, report, schedule, store
from worker.clock import UTC, utc_now
from worker.config import Settings, config_path, effective_settings, is_web_url, load_settings, parse_duration
from worker.pipeline import Runtime
from worker.errors import StorywatchError
from worker.log import configure_logging

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class App:
    """What every command needs, made on first use: the settings and the open store."""

    def __init__(self, config: Path | None, log_json: bool, verbose: bool) -> None:
        self.config_file = config_path(config)
        self.log_json = log_json
        self.verbose = verbose

    @cached_property
    def settings(self) -> Settings:
        settings = load_settings(self.config_file)
        level = "DEBUG" if self.verbose else settings.log.level
        configure_logging(level, json=self.log_json or settings.log.json)
        return settings

    @cached_property
    def db(self) -> Database:
        storage = self.settings.storage
        return store.open_store(storage.path, busy_timeout=storage.busy_timeout, shared=True)

    @cached_property
    def runtime(self) -> Runtime:
        """The store, synced with the config, and a fetcher: what polling needs."""
        pipeline.initialize(self.db, self.settings, utc_now())
        return pipeline.open_runtime(self.db, self.settings)


class _Group(click.Group):
    """Turns the project's own errors into one clear sentence and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StorywatchError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings=CONTEXT)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file. Default: $STORYWATCH_CONFIG, else ./config/storywatch.toml.",
)
@click.option("--log-json", is_flag=True, help="Log one JSON object per line.")
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@click.version_option(__version__, prog_name="storywatch")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, log_json: bool, verbose: bool) -> None:
    """storywatch: watch news feeds, keep one copy of each story, track storylines.

    \b
    Example:
      storywatch --config config/storywatch.toml init
      storywatch status
    """
    configure_logging("DEBUG" if verbose else "INFO", json=log_json)
    ctx.obj = App(config, log_json, verbose)


pass_app = click.make_pass_decorator(App)


@cli.command()
@pass_app
def init(app: App) -> None:
    """Create the store, add the config's feeds and storylines, and load the seed documents.

    Running it again adds nothing that is already there.

    \b
    Example:
      storywatch init
    """
    result = pipeline.initialize(app.db, app.settings, utc_now())
    feeds = ", ".join(f"{n} {what}" for what, n in result.feeds.items() if n) or "unchanged"
    click.echo(f"Store: {app.settings.storage.path} (schema {store.schema_version(app.db)})")
    click.echo(f"Feeds: {len(app.settings.feeds)} in the config ({feeds})")
    click.echo(f"Seeds: {result.seeds_read} read, {result.seeds_added} new")
    for storyline_id, n in result.storylines.items():
        click.echo(f"Storyline {storyline_id}: {n} seed item(s)")
    for missing in result.unresolved:
        click.echo(f"Not in the store yet (linked once ingested): {missing}", err=True)


@cli.command()
@pass_app
def status(app: App) -> None:
    """Show the store: items, feeds and their health, storylines, last poll and digest.

    \b
    Example:
      storywatch status
    """
    path = app.settings.storage.path
    click.echo(report.render_status(store.status(app.db, path), store.schema_version(app.db), utc_now()))


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.datetime | None:
    """--since: a date (2024-01-27), a date and time (ISO 8601), or an age (7d, 12h)."""
    if value is None:
        return None
    age = parse_duration(value)
    if age is not None:
        return utc_now() - age
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (2024-01-27) or an age (7d, 12h)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@cli.group(cls=_Group, invoke_without_command=True)
@click.option("--since", metavar="DATE|AGE", callback=_since, help="Only items published since then: 2024-01-27 or 7d.")
@click.option("--storyline", metavar="ID", help="Only items of this storyline.")
@click.option("--search", metavar="TEXT", help='Full-text search: all words must match, "quoted phrase".')
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@click.pass_context
def items(
    ctx: click.Context, since: dt.datetime | None, storyline: str | None, search: str | None, limit: int, as_json: bool
) -> None:
    """List stored items, newest first (best match first with --search).

    \b
    Example:
      storywatch items --search "Friendship Year"
      storywatch items --storyline friendship-year --since 2024-01-01 --json
      storywatch items show 42
    """
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.ensure_object(App)
    found = store.find_items(app.db, since=since, storyline=storyline, search=search, limit=limit)
    click.echo(report.items_json(found) if as_json else report.render_items(found))


@items.command(name="show")
@click.argument("item_id", metavar="ID", type=int)
@pass_app
def items_show(app: App, item_id: int) -> None:
    """Show one item in full: its text, its earlier versions with diffs, and its cluster.

    \b
    Example:
      storywatch items show 42
    """
    detail = store.item_detail(app.db, item_id)
    if detail is None:
        raise click.ClickException(f"no item with id {item_id} (see storywatch items)")
    click.echo(report.render_item(detail))


@cli.command()
@click.option("--once", is_flag=True, help="Run one whole polling cycle, then exit.")
@pass_app
def run(app: App, once: bool) -> None:
    """Run the worker: poll the feeds when they are due, until SIGTERM or Ctrl-C.

    The config's feeds and storylines are synced into the store first. A tick every minute polls
    the feeds whose next poll time has passed; SIGTERM or SIGINT stops it after the writes in
    flight (exit status 0).

    \b
    Example:
      storywatch run
      storywatch run --once
    """
    rt = app.runtime
    schedule.handle_stop_signals(rt)
    try:
        if once:
            click.echo(schedule.run_once(rt).summary())
        else:
            schedule.run_daemon(rt)
    finally:
        rt.close()


@cli.command()
@click.option("--feed", "feed_url", metavar="URL", help="Poll only this feed (even a disabled one).")
@click.option("--force", is_flag=True, help="Poll feeds that are not due yet too (requests stay conditional).")
@click.option("--no-cache", is_flag=True, help="Ignore the stored ETag and Last-Modified.")
@pass_app
def poll(app: App, feed_url: str | None, force: bool, no_cache: bool) -> None:
    """Poll the due feeds now and show what each one returned.

    \b
    Example:
      storywatch poll
      storywatch poll --feed https://www.38north.org/feed/ --no-cache
    """
    if feed_url and not store.feeds_to_poll(app.db, utc_now(), url=feed_url):
        raise click.ClickException(f"no feed with the address {feed_url} (see storywatch feeds list)")
    rt = app.runtime
    schedule.handle_stop_signals(rt)
    try:
        result = pipeline.poll_feeds(rt, force=force or bool(feed_url), feed_url=feed_url, no_cache=no_cache)
    finally:
        rt.close()
    click.echo(report.render_cycle(result))


@cli.group(cls=_Group)
def feeds() -> None:
    """List, add, import and export feeds."""


@feeds.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@pass_app
def feeds_list(app: App, as_json: bool) -> None:
    """Show every feed with its health: items, last status and error, next poll.

    \b
    Example:
      storywatch feeds list
      storywatch feeds list --json
    """
    health = list(store.feed_health(app.db))
    click.echo(report.feeds_json(health, utc_now()) if as_json else report.render_feeds(health, utc_now()))


@feeds.command(name="add")
@click.argument("url")
@click.option("--name", default="", help="A short name shown in status and digests.")
@click.option("--interval", metavar="DURATION", help="Time between polls, e.g. 2h.")
@click.option("--tag", "tags", multiple=True, help="A label; repeat for several.")
@pass_app
def feeds_add(app: App, url: str, name: str, interval: str | None, tags: tuple[str, ...]) -> None:
    """Add a feed to the store (polled from the next cycle on).

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
    if store.add_feed(app.db, url, utc_now(), name=name, tags=tags, interval=every):
        click.echo(f"Added {url}; it is polled at the next cycle (or now: storywatch poll --feed {url})")
    else:
        click.echo(f"Already known: {url}")


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
            click.echo(f"Skipped (not an http(s) address): {feed.url}", err=True)
            continue
        if store.add_feed(app.db, feed.url, utc_now(), name=feed.title, tags=feed.tags, origin="opml"):
            added += 1
        else:
            known += 1
    click.echo(f"Imported {path}: {added} feeds added, {known} already known")


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
        for f in store.feed_health(app.db)
        if not f.disabled_reason
    ]
    text = opml.write_opml(outlines, utc_now())
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"Wrote {len(outlines)} feeds to {output}")
    else:
        click.echo(text, nl=False)


@cli.group(cls=_Group, name="config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command(name="check")
@pass_app
def config_check(app: App) -> None:
    """Validate the config file and print every effective setting (secrets masked).

    \b
    Example:
      storywatch --config /etc/storywatch/storywatch.toml config check
    """
    rows = effective_settings(app.settings)
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        click.echo(f"{key.ljust(width)} = {value}")
    click.echo(f"# {app.config_file}: OK", err=True)


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="storywatch"))
