"""The `storywatch` command: thin click commands, each one call into the library.

The config file is chosen by `storywatch --config PATH COMMAND`, else $STORYWATCH_CONFIG,
else ./config/storywatch.toml. An error a user can cause (any StorywatchError) is printed as
one sentence on stderr with a non-zero exit, never a traceback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import sqlite3
import sys
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

import click
from loguru import logger
from sqlite_utils import Database

from worker import (
    __version__, backfill, digest, evaluate, manage, pipeline, report, schedule, startup, store, storylines, why,
)
from worker.cycle import CycleReport, poll_feeds
from worker.digest import atom, daily, deliver
from worker.clock import UTC, utc_now
from worker.config import (Settings, StorylineConfig, config_path, effective_settings, effective_values, exposed_secrets,
                           is_file_seed, is_web_url, load_settings, parse_duration, write_default_config)
from worker.safetext import address_without_password, has_unsafe, url_text, without_password
from worker.pipeline import Runtime
from worker.errors import DeliveryError, ExitStatus, StorywatchError
from worker.log import configure_logging
from worker.models import Feed, feed_address, plural
from worker import health as health_check
from worker.sources import opml

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class App:
    """What every command needs, made on first use: the settings and the open store."""

    def __init__(self, config: Path | None, log_json: bool, verbose: bool) -> None:
        self.config_option = config  # as given with --config: named in the commands we print
        self.config_file = config_path(config)
        self.log_json = log_json
        self.verbose = verbose

    @cached_property
    def settings(self) -> Settings:
        settings = load_settings(self.config_file)
        level = "DEBUG" if self.verbose else settings.log.level
        configure_logging(level, json=self.log_json or settings.log.json)
        for warning in exposed_secrets(settings):
            logger.warning("Secret readable by others: {warning}", warning=warning)
        return settings

    @cached_property
    def db(self) -> Database:
        storage = self.settings.storage
        return store.open_store(storage.path, busy_timeout=storage.busy_timeout, shared=True)

    @cached_property
    def runtime(self) -> Runtime:
        """The store, synced with the config, and a fetcher: what polling needs."""
        startup.initialize(self.db, self.settings, utc_now())
        return pipeline.open_runtime(self.db, self.settings)


class _Group(click.Group):
    """Turns the project's own errors into one clear sentence and exit status 1, and Ctrl-C in a
    command that does not handle it (its transaction rolled back) into status 130."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StorywatchError as exc:
            raise click.ClickException(str(exc)) from None
        except sqlite3.DatabaseError as exc:  # met after the store opened: a damaged page, a full disk
            app = ctx.find_object(App)
            if app is None or "settings" not in app.__dict__:
                raise
            logger.opt(exception=exc).debug("The store failed in {command}", command=ctx.invoked_subcommand)
            raise click.ClickException(str(store.store_failure(app.settings.storage.path, exc))) from None
        except KeyboardInterrupt:
            click.echo("\nInterrupted.", err=True)
            sys.exit(int(ExitStatus.INTERRUPTED))


def _exit(status: ExitStatus) -> None:
    """End the command with `status` (returning is 0)."""
    if status != ExitStatus.OK:
        sys.exit(int(status))


def _cycle_status(cycle: CycleReport, signals: schedule.StopSignals, *, failures: bool) -> ExitStatus:
    """A polling command's status: stopped by a signal, else feeds failed (when `failures`
    count), else done."""
    if signals.signum is not None:
        return ExitStatus.stopped_by(signals.signum)
    return ExitStatus.FAILED if failures and cycle.failed else ExitStatus.OK


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

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
_CSV = click.option("--csv", "as_csv", is_flag=True, help="Print CSV: a header row (the JSON keys), then one row per line.")
_OUTPUT = click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
                       help="Write to this file (atomically) instead of stdout.")


def _print(text: str, output: Path | None) -> None:
    """Print `text`, or with -o write it to that file atomically (a temporary file beside it,
    renamed over it): the file holds what would have been printed."""
    text = text if text.endswith("\n") else text + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        deliver.write_atomically(output, text, make_folder=False)


def _width(output: Path | None) -> int | None:
    """The width tables fit: the terminal's ($COLUMNS), none in a file (-o)."""
    return None if output else report.terminal_width()


def _phrases(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Repeated --keyword/--exclude/--tag values, trimmed; a blank one is a mistake, not a phrase."""
    if any(not v.strip() for v in values):
        raise click.BadParameter("an empty value; give a word or phrase")
    return tuple(_one_line(ctx, param, v) or "" for v in values)


def _one_line(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A title or a name: one line of text (it heads digest sections and email subjects), with
    no control or bidirectional character (it would act on the terminal that lists it)."""
    if value is not None and has_unsafe(value):
        raise click.BadParameter("one line of text, without control or bidirectional characters")
    return value.strip() if value is not None else None


def _one_format(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")


@cli.command()
@_JSON
@pass_app
def init(app: App, as_json: bool) -> None:
    """Create the store, add the config's feeds and storylines, and load the seed documents.

    Running it again adds nothing that is already there.

    \b
    Example:
      storywatch init
      storywatch init --json
    """
    result = startup.initialize(app.db, app.settings, utc_now())
    if as_json:
        click.echo(json.dumps({"store": str(app.settings.storage.path), "schema": store.schema_version(app.db),
                               "feeds": {"in_config": len(app.settings.feeds), **result.feeds},
                               "seeds": {"read": result.seeds_read, "new": result.seeds_added},
                               "storylines": result.storylines, "unresolved": list(result.unresolved)}, indent=2))
        return
    feeds = ", ".join(f"{n} {what}" for what, n in result.feeds.items() if n) or "unchanged"
    click.echo(f"Store: {app.settings.storage.path} (schema {store.schema_version(app.db)})")
    click.echo(f"Feeds: {len(app.settings.feeds)} in the config ({feeds})")
    click.echo(f"Seeds: {result.seeds_read} read, {result.seeds_added} new")
    for storyline_id, n in result.storylines.items():
        click.echo(f"Storyline {storyline_id}: {n} seed item(s)")
    for missing in result.unresolved:
        click.echo(f"Not in the store yet (linked once ingested): {missing}", err=True)


@cli.command()
@_JSON
@_OUTPUT
@pass_app
def status(app: App, as_json: bool, output: Path | None) -> None:
    """Show the store: items, feeds and their health, storylines, last poll and digest, and a
    line for each unconfirmed digest (its sending was cut short: it may or may not have arrived)
    with the command that sends it again.

    \b
    Example:
      storywatch status
      storywatch status --json -o status.json
    """
    path, now = app.settings.storage.path, utc_now()
    shown, schema = store.status(app.db, path, now), store.schema_version(app.db)
    _print(report.status_json(shown, schema, now, config=app.config_option) if as_json
           else report.render_status(shown, schema, now, config=app.config_option, width=_width(output)), output)


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.timedelta | None:
    if value is None:
        return None
    parsed = parse_duration(value)
    if parsed is None or not parsed:
        raise click.BadParameter(f"{value!r} is not a duration such as 90s, 30m or 2h")
    return parsed


@cli.command()
@click.option("--max-age", metavar="DURATION", callback=_duration,
              help="Unhealthy when the last cycle finished longer ago than this (default: 3 intervals).")
@_JSON
@_OUTPUT
@pass_app
def health(app: App, max_age: dt.timedelta | None, as_json: bool, output: Path | None) -> None:
    """Exit 0 when the store is readable, the last polling cycle finished within 3 intervals
    (of the worker's 1-minute tick, or of the last cycle's duration if longer) and no digest is
    unconfirmed; else exit 1. Prints one line saying why, for monitors and systemd checks; each
    problem on a line starting "unhealthy: ".

    An unconfirmed digest (its sending was cut short after the message was handed over: it may
    or may not have arrived) makes it exit 1 too, though the worker runs on: it is never sent again by itself, so
    a person must decide, and the line says what to run. A resend carries the same Message-ID,
    so mail systems that have the first one can drop the copy.

    \b
    Example:
      storywatch health
      storywatch health --max-age 90m     # for `storywatch run --once` from cron every 30 minutes
      storywatch health --json
    """
    storage = app.settings.storage
    result = health_check.check_health(storage.path, utc_now(), max_age=max_age, busy_timeout=storage.busy_timeout,
                                       config=app.config_option)
    _print(report.to_json(result.as_json()) if as_json else str(result), output)
    if not result.ok:
        sys.exit(1)


@cli.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file atomically instead of stdout.")
@pass_app
def metrics(app: App, output: Path | None) -> None:
    """Print the worker's metrics in the Prometheus text format: feeds by state, items by source,
    follow-ups per storyline, the last cycle's duration and time, fetch errors by kind in the
    last 24 hours, digests by sending state.

    \b
    Example:
      storywatch metrics
      storywatch metrics -o /var/lib/prometheus/node-exporter/storywatch.prom
    """
    text = health_check.render_metrics(health_check.collect_metrics(app.db, utc_now()))
    if output:
        health_check.write_metrics_file(output, text)
    else:
        click.echo(text, nl=False)


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.datetime | None:
    """--since: a date (2024-01-27), a date and time (ISO 8601), or an age (7d, 12h)."""
    if value is None:
        return None
    age = parse_duration(value)
    try:
        parsed = utc_now() - age if age is not None else dt.datetime.fromisoformat(value)
        parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise click.BadParameter(f"{value!r} is not a date (2024-01-27) or an age (7d, 12h)") from None
    if not 1800 <= parsed.year < 2200:  # the windows computed around it must stay within the calendar
        raise click.BadParameter(f"{value!r}: give a date from the years 1800 to 2199")
    return parsed


class _ItemId(click.IntRange):
    """An item's ID, as listings show it too (`#42`)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            value = value.removeprefix("#")
        return super().convert(value, param, ctx)


MAX_SEARCH_WORDS = 64  # a query past that is a pasted text, and costs SQLite more than any answer is worth

ITEM_ID = _ItemId(1, 2**63 - 1)
"""An item id as the store can hold it (SQLite's INTEGER)."""


@cli.group(cls=_Group, invoke_without_command=True)
@click.option("--since", metavar="DATE|AGE", callback=_since, help="Only items published since then: 2024-01-27 or 7d.")
@click.option("--storyline", metavar="ID", help="Only items of this storyline.")
@click.option("--search", metavar="TEXT", help='Full-text search: all words must match, "quoted phrase".')
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--copies", is_flag=True, help="List copies of stored stories too (marked '= copy of #N').")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@_CSV
@_OUTPUT
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
    _one_format(as_json, as_csv)
    app = ctx.ensure_object(App)
    if storyline is not None:
        manage.storyline(app.db, storyline)  # an unknown one is an error, not "no items"
    if search is not None and not re.search(r"\w", search):  # nothing to look for: "", '""', "!!"
        raise click.BadParameter("give words to search for", param_hint="--search")
    if search is not None and len(search.split()) > MAX_SEARCH_WORDS:
        raise click.BadParameter(f"at most {MAX_SEARCH_WORDS} words", param_hint="--search")
    found = store.find_items(app.db, since=since, storyline=storyline, search=search, limit=limit + 1, copies=copies)
    more, found = len(found) > limit, found[:limit]
    cut_short = f"only the first {limit:,} items are listed: --limit N lists more" if more else ""
    if as_json or as_csv:
        _print(report.items_json(found) if as_json else
               report.csv_text(map(report.item_dict, found), report.ITEM_COLUMNS), output)
        if more:
            click.echo(f"Note: {cut_short}", err=True)  # not in the data a script reads
        return
    hidden = 0 if copies else store.count_copies(app.db, since=since, storyline=storyline, search=search)
    listed = report.render_items(found, hidden, width=_width(output))
    _print(f"{listed}\n{cut_short[0].upper()}{cut_short[1:]}." if more else listed, output)


@items.command(name="show")
@click.argument("item_id", metavar="ID", type=ITEM_ID)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, the decisions under `tracking`.")
@_OUTPUT
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
    detail = store.item_detail(app.db, item_id)
    if detail is None:
        raise click.ClickException(f"no item with id {item_id} (see storywatch items)")
    found = why.explain_item(app.db, app.settings.tracking, item_id, copy_of=detail.item.dup_of)
    _print(report.item_json(detail, found) if as_json else report.render_item(detail) + "\n\n" + report.render_why(found),
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


@cli.command()
@click.option("--once", is_flag=True, help="Run one whole polling cycle, then exit.")
@pass_app
def run(app: App, once: bool) -> None:
    """Run the worker: poll the feeds when they are due, until SIGTERM or Ctrl-C.

    The config's feeds and storylines are synced into the store first. A tick every minute polls
    the feeds whose next poll time has passed; SIGTERM or SIGINT stops it after the writes in
    flight (exit status 0). With --once: exit status 0 when the cycle finished (feeds that failed
    are retried later, as in the worker), 130 (143) when Ctrl-C (SIGTERM) stopped it.

    \b
    Example:
      storywatch run
      storywatch run --once
    """
    rt = app.runtime
    signals = schedule.handle_stop_signals(rt)
    try:
        if not once:
            schedule.run_daemon(rt)
            return
        cycle = schedule.run_once(rt)
    finally:
        rt.close()
    click.echo(cycle.summary())
    _exit(_cycle_status(cycle, signals, failures=False))


@cli.command()
@click.option("--feed", "feed_url", metavar="FEED", help="Poll only this feed, by address or name (even a disabled one).")
@click.option("--force", is_flag=True, help="Poll feeds that are not due yet too (requests stay conditional).")
@click.option("--no-cache", is_flag=True, help="Ignore the stored ETag and Last-Modified.")
@_JSON
@_OUTPUT
@pass_app
def poll(app: App, feed_url: str | None, force: bool, no_cache: bool, as_json: bool, output: Path | None) -> None:
    """Poll the due feeds now and show what each one returned.

    Exit status 0 when every feed asked for was polled (304 Not Modified included), 3 when one
    failed (an error, a rate limit, a gone feed), 130 (143) when Ctrl-C (SIGTERM) stopped it: the
    feeds it stopped are polled next time. A poll of the due feeds is logged as a cycle for
    `storywatch health`; one --feed is not.

    \b
    Example:
      storywatch poll
      storywatch poll --feed https://www.38north.org/feed/ --no-cache
      storywatch poll --json
    """
    rt = app.runtime
    try:
        if feed_url:
            feed_url = _stored_address(app.db, feed_url)
        signals = schedule.handle_stop_signals(rt)
        cycle = poll_feeds(rt, force=force or bool(feed_url), feed_url=feed_url, no_cache=no_cache)
        if not feed_url:
            health_check.record_cycle(rt.db, cycle, rt.clock(), interval=None)
    finally:
        rt.close()
    _print(report.cycle_json(cycle) if as_json else report.render_cycle(cycle, width=_width(output)), output)
    _exit(_cycle_status(cycle, signals, failures=True))


def _stored_address(db: Database, key: str) -> str:
    """The address, as stored, of the feed `key` names: its address, as given or as outputs show
    it (a password masked: a user copies it from `feeds list`), or its name."""
    f = manage.feed(db, key)
    if f.disabled_reason == store.REMOVED_BY_YOU:
        raise click.ClickException(f"feed {without_password(f.url)} was removed: add it again with storywatch feeds add")
    return f.url


@cli.group(cls=_Group)
def feeds() -> None:
    """List, add, import and export feeds."""


@feeds.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@_CSV
@_OUTPUT
@pass_app
def feeds_list(app: App, as_json: bool, as_csv: bool, output: Path | None) -> None:
    """Show every feed with its health: items, last status and error, next poll.

    \b
    Example:
      storywatch feeds list
      storywatch feeds list --json
      storywatch feeds list --csv -o feeds.csv
    """
    _one_format(as_json, as_csv)
    health, now = list(store.feed_health(app.db)), utc_now()
    _print(report.feeds_json(health, now) if as_json else
           report.csv_text((report.feed_dict(f, now) for f in health), report.FEED_COLUMNS) if as_csv else
           report.render_feeds(health, now, width=_width(output)), output)


@feeds.command(name="add")
@click.argument("url")
@click.option("--name", default="", callback=_one_line, help="A short name shown in status and digests (default: the feed's title).")
@click.option("--interval", metavar="DURATION", help="Time between polls, e.g. 2h.")
@click.option("--tag", "tags", multiple=True, callback=_phrases, help="A label; repeat for several.")
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
    url = known.url if known is not None else feed_address(url)
    shown = without_password(url)
    parsed, answered_from = manage.check_feed(url, app.settings.fetch) if not no_check else (None, url)
    if answered_from != url and _already_known(manage.known_feed(app.db, answered_from), f"{shown} redirects there"):
        return
    manage.check_name(app.db, name, known)
    store.add_feed(app.db, url, utc_now(), name=name, tags=tags, interval=every, title=parsed.title if parsed else "")
    found = f": {parsed.title or 'untitled'}, {plural(len(parsed.entries), 'entry', 'entries')}" if parsed else ""
    click.echo(f"Added {shown}{found}; it is polled at the next cycle (or now: storywatch poll --feed {shown})")


def _already_known(known: Feed | None, why: str = "storywatch feeds edit changes it") -> bool:
    """Say so when a feed to add is known (and not removed: adding a removed one brings it back)."""
    if known is None or known.disabled_reason in store.REMOVED:
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
        same = manage.known_feed(app.db, feed.url)  # a removed one is brought back
        address = same.url if same is not None else feed_address(feed.url)
        name = "" if same is not None or store.name_taken(app.db, feed.title) else feed.title
        if store.add_feed(app.db, address, utc_now(), name=name, tags=feed.tags, origin="opml"):
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
        for f in store.feed_health(app.db)
        if not f.disabled_reason
    ]
    text = opml.write_opml(outlines, utc_now())
    if output:
        deliver.write_atomically(output, text, make_folder=False)
        click.echo(f"Wrote {plural(len(outlines), 'feed')} to {output}")
    else:
        click.echo(text, nl=False)


def _confirmed(question: str, yes: bool) -> None:
    """Ask before a change that loses something, unless --yes (no answer: nothing is done)."""
    if yes:
        return
    try:
        answer = click.confirm(question)
    except click.Abort as exc:  # no answer (end of input), or Ctrl-C: exit status 130, as elsewhere
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise
    if not answer:
        raise click.Abort()


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
    _confirmed(f"Remove {shown}? Its {plural(store.feed_item_count(app.db, found.id), 'item')} stay.", yes)
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
@click.option("--name", callback=_one_line, help="A new name.")
@click.option("--tag", "tags", multiple=True, callback=_phrases, help="The feed's tags, replacing its tags (repeat).")
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


@cli.command(name="backfill")
@click.argument("sources", nargs=-1, metavar="SOURCE…")
@click.option("--all", "all_feeds", is_flag=True, help="Every configured feed (and its archives).")
@click.option("--since", callback=_since, metavar="DATE|AGE", help="Only items published from then on.")
@click.option("--until", callback=_since, metavar="DATE|AGE", help="Only items published before then.")
@click.option("--no-track", is_flag=True, help="Store the items without deciding storyline follow-ups.")
@click.option("--dry-run", is_flag=True, help="Read and count every source; store nothing.")
@click.option("--workers", type=click.IntRange(1, 64), help="Parsing processes (default: the number of cores).")
@click.option("--max-pages", default=100, show_default=True, type=click.IntRange(1, 100_000),
              help="Documents to read per feed URL, following its archive and next-page links.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
def backfill_command(app: App, sources: tuple[str, ...], all_feeds: bool, since: dt.datetime | None,
                     until: dt.datetime | None, no_track: bool, dry_run: bool, workers: int | None,
                     max_pages: int, as_json: bool) -> None:
    """Load history through the same pipeline as polling (dedupe, storylines), in time order,
    without putting it in any digest or email. Run again, it adds only what is missing.

    A SOURCE is a feed URL (its archive and next pages followed), a feed file (RSS, Atom, RDF,
    JSON Feed; gzip too), a folder of them, an OPML file (its feeds) or a JSON Lines file of
    items (id, title, text, url, published, source). Exits 3 if a source failed; every good
    source is still loaded. Ctrl-C (SIGTERM) stops it after the batch in flight, prints what was
    stored and what was not, and exits 130 (143): run it again to store the rest (and decide the
    follow-ups one run would have). Seed documents are not loaded here: `init` loads [seeds] path.

    \b
    Example:
      storywatch backfill archive/ --since 2024-01-01
      storywatch backfill https://example.org/feed.xml --max-pages 20
      storywatch backfill items.jsonl --json
    """
    if not sources and not all_feeds:
        raise click.UsageError("name at least one SOURCE, or --all")
    startup.initialize(app.db, app.settings, utc_now())
    found, failed = backfill.expand(sources, app.db, all_feeds=all_feeds, seed_paths=backfill.SeedPaths.of(app.settings))
    options = backfill.Options(since=since, until=until, track=not no_track, dry_run=dry_run,
                               workers=workers or 0, max_pages=max_pages)
    stop = threading.Event()
    signals = schedule.StopSignals(stop)
    with report.Progress(sys.stderr) as progress:
        summary = backfill.backfill(app.db, app.settings, found, options, progress.update, stop=stop, unreadable=failed)
    click.echo(json.dumps(summary.as_json(), indent=2, ensure_ascii=False) if as_json
               else report.render_backfill(summary, dry_run))
    if signals.signum is not None:
        _exit(ExitStatus.stopped_by(signals.signum))
    _exit(ExitStatus.FAILED if summary.sources_failed else ExitStatus.OK)


@cli.command(name="digest")
@click.option("--date", "day", metavar="YYYY-MM-DD", help="That day's digest (as written then, if it was).")
@click.option("--since", metavar="DATE|AGE", callback=_since, help="A digest of any period: its start (with --until).")
@click.option("--until", metavar="DATE|AGE", callback=_since, help="The end of that period (default: now).")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "text", "email"]), default="md", show_default=True,
              help="md and html are written to files (Markdown and HTML with html); text and email are printed.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), help="Folder to write to instead of [digest] output_dir.")
@click.option("--stdout", is_flag=True, help="Print the digest instead of writing a file.")
@click.option("--send", is_flag=True, help="Email it ([email] settings): today's digest, or a --date one.")
@click.option("--resend", is_flag=True,
              help="With --send: send it even if it was (or may have been) sent already, with the same Message-ID.")
@click.option("--include-backfill", is_flag=True, help="Include items loaded by backfill.")
@pass_app
def digest_command(
    app: App, day: str | None, since: dt.datetime | None, until: dt.datetime | None, fmt: str, output: Path | None,
    stdout: bool, send: bool, resend: bool, include_backfill: bool,
) -> None:
    """Write a digest: what moved in each storyline, edits, suggested storylines, quiet
    storylines, other new items and sources in trouble.

    Without a period, today's digest: since the last digest (the first one: the whole store).
    Once written it is today's digest (the worker's next one starts where it ends) and it is
    regenerated as it was; before its time ([digest] time) it is a preview, written but not
    kept. Writing a digest never sends it: --send does, once (--resend to send it again).
    SIGTERM or Ctrl-C stops a send at once (exit status 143 or 130): a digest not yet handed over
    to the server was not sent and stays to be sent; one handed over is unconfirmed.

    \b
    Example:
      storywatch digest
      storywatch digest --date 2024-12-30 --format html
      storywatch digest --send
      storywatch digest --since 7d --stdout --format text
    """
    settings, now = app.settings, utc_now()
    if resend and not send:
        raise click.UsageError("--resend goes with --send")
    if day and (since or until):
        raise click.UsageError("give --date, or --since/--until, not both")
    if send and (since or until or include_backfill):
        raise click.UsageError("--send sends a day's digest as it is kept: give --date or no period, "
                               "and no --include-backfill")
    period, initial, state = _digest_period(app, day, since, until, now)
    if include_backfill:  # another digest than the day's: never kept, never in the day's file
        state = "asked"
    if stdout or fmt in ("text", "email"):
        data = daily.collect(app.db, settings, period, initial=initial, include_backfill=include_backfill)
        click.echo(_printed(app, data, fmt, now, any_period=bool(since or until or include_backfill)), nl=False)
    else:
        stem = daily.period_stem(period) if since or until else None
        outcome = daily.write_digest(app.db, settings, period, initial=initial, include_backfill=include_backfill,
                                     output_dir=output, html=fmt == "html" or None,
                                     stem=f"{stem or period.day}-with-backfill" if include_backfill else stem)
        data = outcome.data
        if state == "due":
            daily.record_digest(app.db, settings, outcome, now)
        click.echo("Wrote " + ", ".join(str(f) for f in outcome.files) + f": {digest.subject(data, '')}"
                   + _digest_note(state, settings))
    if send and state == "unpolled":  # nothing to send yet: not a failure (a timer may come first)
        click.echo("Nothing sent: no feed has answered yet, so there is no digest to send.")
    elif send:
        _send_digest(settings, app.db, data, now, resend=resend)


def _digest_note(state: str, settings: Settings) -> str:
    """What the line naming a written digest adds: whether it is a preview or the day's."""
    return {"preview": f" (a preview: today's digest is due at {settings.digest.time:%H:%M})",
            "unpolled": " (a preview: no feed has answered yet; the first digest is kept after the first poll"
                        f" that one answers, or at {settings.digest.time:%H:%M})",
            "recorded": " (today's digest, as it was written)"}.get(state, "")


def _send_digest(settings: Settings, db: Database, data: digest.DigestData, now: dt.datetime, *, resend: bool) -> None:
    """Email the digest; SIGTERM or Ctrl-C cuts the send short and records what it did."""
    if not settings.email.enabled:
        raise click.ClickException("email is not enabled: set [email] enabled = true and its settings")
    stop = threading.Event()
    signals = schedule.StopSignals(stop)
    try:
        daily.send_digest(db, settings, data, now, resend=resend, stop=stop)
    except DeliveryError as exc:
        if signals.signum is None:
            raise
        click.echo(f"Stopped: {exc}", err=True)
        _exit(ExitStatus.stopped_by(signals.signum))
    finally:
        signals.restore()
    click.echo(f"Sent to {', '.join(settings.email.to)}")


def _printed(app: App, data: digest.DigestData, fmt: str, now: dt.datetime, *, any_period: bool) -> str:
    """The digest as printed: Markdown, HTML, text, or the whole email (a recorded day's digest
    with the Message-ID it is sent with; anything else, a preview included, with a new one, so a
    preview passed on to a mail system can never stand in for the real digest)."""
    if fmt != "email":
        return {"md": digest.render_markdown, "html": digest.render_html, "text": digest.render_text}[fmt](data)
    recorded = not any_period and store.digest_row(app.db, data.period.day) is not None
    message_id = daily.digest_message_id(app.db, app.settings, data.period.day) if recorded else None
    return daily.digest_message(app.settings, data, now, message_id=message_id).as_string()


def _digest_period(
    app: App, day: str | None, since: dt.datetime | None, until: dt.datetime | None, now: dt.datetime
) -> tuple[digest.Period, bool, str]:
    """(period, whether it is the first digest, what writing it is: "due" makes it today's digest;
    "recorded" writes today's again; "preview" is today's before its time, "unpolled" before the
    store's first poll; "asked" any other period)."""
    zone = digest.zone_of(app.settings.digest.timezone)
    if day:
        try:
            date = dt.date.fromisoformat(day)
        except ValueError:
            raise click.BadParameter(f"{day!r} is not a date YYYY-MM-DD", param_hint="--date") from None
        if date > now.astimezone(zone).date():
            raise click.BadParameter(f"{day} is still to come: its digest can't be written yet", param_hint="--date")
        if date.year < 1800:
            raise click.BadParameter(f"{day}: give a date from the years 1800 on", param_hint="--date")
        period, initial = daily.day_digest_period(app.db, app.settings, date)
        return period, initial, "asked"
    if since or until:
        end = until or now
        if since and since >= end:
            raise click.BadParameter("the period is empty: --since must come before --until", param_hint="--since")
        return digest.Period(since or digest.EPOCH, end, end.astimezone(zone).date(), zone.key), since is None, "asked"
    due = daily.due_digest(app.db, app.settings, now)
    return due.period, due.initial, ("recorded" if due.recorded else "preview" if due.preview
                                     else "unpolled" if due.unpolled else "due")


@cli.group(cls=_Group, name="storylines")
def storylines_group() -> None:
    """The storylines being tracked: list, show, add, and suggested ones."""


@storylines_group.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_CSV
@_OUTPUT
@pass_app
def storylines_list(app: App, as_json: bool, as_csv: bool, output: Path | None) -> None:
    """Every storyline: seeds, follow-ups, the last follow-up and how long it has been quiet.

    \b
    Example:
      storywatch storylines list
      storywatch storylines list --csv
    """
    _one_format(as_json, as_csv)
    summaries, now = list(store.storyline_summaries(app.db)), utc_now()
    _print(report.storylines_json(summaries, now) if as_json else
           report.csv_text((report.storyline_dict(s, now) for s in summaries), report.STORYLINE_COLUMNS) if as_csv else
           report.render_storylines(summaries, now, width=_width(output)), output)


@storylines_group.command(name="show")
@click.argument("storyline_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_CSV
@_OUTPUT
@pass_app
def storylines_show(app: App, storyline_id: str, as_json: bool, as_csv: bool, output: Path | None) -> None:
    """A storyline's timeline: date, source, title and, for each follow-up, its score, why it
    matched and what is new in it.

    \b
    Example:
      storywatch storylines show friendship-year
      storywatch storylines show friendship-year --csv -o friendship-year.csv
    """
    _one_format(as_json, as_csv)
    summary = next((s for s in store.storyline_summaries(app.db) if s.id == storyline_id), None)
    if summary is None:
        raise click.ClickException(f"no storyline {storyline_id!r} (see storywatch storylines list)")
    entries = store.storyline_timeline(app.db, storyline_id)
    rejected = [m.item_id for m in store.marks(app.db, storyline_id=storyline_id) if not m.followup]
    items_of = store.items_by_id(app.db, rejected)
    listed = sorted(((i, items_of[i].published_at, items_of[i].title) for i in rejected if i in items_of),
                    key=lambda entry: (entry[1], entry[0]))
    _print(report.csv_text(report.timeline_rows(entries, listed), report.TIMELINE_COLUMNS) if as_csv else
           (report.timeline_json if as_json else report.render_timeline)(summary, entries, listed), output)


@storylines_group.command(name="add")
@click.argument("storyline_id", metavar="ID")
@click.option("--title", callback=_one_line, help="The storyline's name (default: the suggestion's headline).")
@click.option("--seed", "seeds", multiple=True, metavar="PATH|URL|#ID",
              help="An example article: a text file, or an item in the store by its URL or its ID, #42 (repeat).")
@click.option("--keyword", "keywords", multiple=True, callback=_phrases,
              help="A name or key phrase of the story (repeat).")
@click.option("--alias", "aliases", multiple=True, metavar="A=B=…",
              help="Names that mean the same, e.g. \"DPRK=North Korea\" (repeat).")
@click.option("--exclude", multiple=True, callback=_phrases, help="A word or phrase that rules an item out (repeat).")
@click.option("--description", default="", callback=_one_line, help="What the story is about.")
@click.option("--from-suggestion", "suggestion_id", type=int, metavar="N",
              help="Start from suggested storyline N (its items become the seeds).")
@pass_app
def storylines_add(app: App, storyline_id: str, title: str | None, seeds: tuple[str, ...], keywords: tuple[str, ...],
                   aliases: tuple[str, ...], exclude: tuple[str, ...], description: str,
                   suggestion_id: int | None) -> None:
    """Track a new storyline, kept in the store (the config's storylines stay in the config).

    It looks back over the recent window ([tracking] window) at once and records the follow-ups
    it finds there; the worker picks it up at its next cycle.

    \b
    Example:
      storywatch storylines add kaesong --title "Kaesong reopening" --seed seeds/kaesong.txt \\
          --keyword "Kaesong" --alias "DPRK=North Korea"
      storywatch storylines add volcano --from-suggestion 3
    """
    suggestion = manage.open_suggestion(app.db, suggestion_id) if suggestion_id is not None else None
    title = title or (suggestion["title"] if suggestion else None)
    if not title:
        raise click.BadParameter("a title is needed (--title)", param_hint="--title")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", storyline_id):
        raise click.BadParameter("lowercase letters, digits and '-'", param_hint="ID")
    definition = StorylineConfig(
        id=storyline_id, title=title, description=description, keywords=keywords, exclude=exclude,
        seeds=tuple(str(Path(seed).resolve()) if is_file_seed(seed) else seed for seed in seeds),
        aliases=_alias_groups(aliases))
    n_seeds, found = startup.new_storyline(app.db, app.settings, definition, utc_now(), suggestion_id=suggestion_id)
    click.echo(f"Added storyline {storyline_id} with {plural(n_seeds, 'seed')}; {plural(found, 'follow-up')} found in the "
               f"last {app.settings.tracking.window.days} days.")


@storylines_group.command(name="suggest")
@click.option("--all", "show_all", is_flag=True, help="Also list adopted and dismissed suggestions.")
@click.option("--dismiss", "dismiss", type=click.IntRange(1), metavar="N",
              help="Dismiss suggestion N: it is not listed or suggested again.")
@_JSON
@_CSV
@_OUTPUT
@pass_app
def storylines_suggest(app: App, show_all: bool, dismiss: int | None, as_json: bool, as_csv: bool,
                       output: Path | None) -> None:
    """Suggested storylines: items outside every storyline that cluster together (3 or more items
    from 2 or more sources within [tracking] suggest_days, sharing significant terms).

    \b
    Example:
      storywatch storylines suggest
      storywatch storylines suggest --dismiss 3
      storywatch storylines suggest --all --json
    """
    _one_format(as_json, as_csv)
    if dismiss is not None:
        found, changed = manage.dismiss_suggestion(app.db, dismiss)
        said = f"Dismissed suggestion #{dismiss}: {found['title']}" if changed else \
            f"Suggestion #{dismiss} is dismissed already: {found['title']}"
        _print(report.to_json({"id": dismiss, "title": found["title"], "status": "dismissed", "changed": changed})
               if as_json else said, output)
        return
    rows = store.suggestions(app.db, include_closed=show_all)
    _print(report.to_json([report.suggestion_dict(r) for r in rows]) if as_json else
           report.csv_text(map(report.suggestion_dict, rows), report.SUGGESTION_COLUMNS) if as_csv else
           report.render_suggestions(rows, storylines.MIN_WINDOW, app.settings.tracking.window.days), output)


@storylines_group.command(name="pause")
@click.argument("storyline_id", metavar="ID")
@pass_app
def storylines_pause(app: App, storyline_id: str) -> None:
    """Stop deciding follow-ups for a storyline until `storylines resume` (config ones too); its
    follow-ups stay.

    \b
    Example:
      storywatch storylines pause friendship-year
    """
    changed = manage.pause_storyline(app.db, storyline_id, utc_now())
    click.echo(f"Paused {storyline_id}." if changed else f"{storyline_id} is paused already.")


@storylines_group.command(name="resume")
@click.argument("storyline_id", metavar="ID")
@pass_app
def storylines_resume(app: App, storyline_id: str) -> None:
    """Track a paused storyline again, from the next item on.

    \b
    Example:
      storywatch storylines resume friendship-year
    """
    changed = manage.resume_storyline(app.db, storyline_id, utc_now())
    click.echo(f"Resumed {storyline_id}." if changed else f"{storyline_id} is not paused.")


@storylines_group.command(name="remove")
@click.argument("storyline_id", metavar="ID")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def storylines_remove(app: App, storyline_id: str, yes: bool) -> None:
    """Forget a storyline added here: its definition, follow-up links and marks go, its items
    stay (a config storyline is removed from the config).

    \b
    Example:
      storywatch storylines remove kaesong --yes
    """
    row = manage.removable_storyline(app.db, storyline_id, app.config_file)
    _confirmed(f"Remove storyline {storyline_id} ({row['title']})? Its items stay; its links and marks go.", yes)
    unlinked = manage.remove_storyline(app.db, storyline_id)
    click.echo(f"Removed storyline {storyline_id}; {plural(unlinked, 'follow-up')} unlinked, the items stay.")


def _threshold(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None | bool:
    """--threshold X (-10 to 10), or "default" for [tracking] threshold; False when not given."""
    if value is None:
        return False
    if value == "default":
        return None
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not -10 <= number <= 10:
        raise click.BadParameter(f"{value!r} is not a number from -10 to 10, nor 'default'")
    return number


@storylines_group.command(name="edit")
@click.argument("storyline_id", metavar="ID")
@click.option("--title", callback=_one_line, help="A new title.")
@click.option("--description", callback=_one_line, help="A new description.")
@click.option("--keyword", "keywords", multiple=True, callback=_phrases,
              help="The storyline's keywords, replacing them (repeat).")
@click.option("--alias", "aliases", multiple=True, metavar="A=B=…", help="Its aliases, replacing them (repeat).")
@click.option("--exclude", multiple=True, callback=_phrases, help="Its exclude terms, replacing them (repeat).")
@click.option("--threshold", metavar="X|default", callback=_threshold,
              help="Its own decision threshold, or 'default' for [tracking] threshold.")
@pass_app
def storylines_edit(app: App, storyline_id: str, title: str | None, description: str | None, keywords: tuple[str, ...],
                    aliases: tuple[str, ...], exclude: tuple[str, ...], threshold: float | None | bool) -> None:
    """Change a storyline added here (a config storyline is changed in the config). The next
    decisions use the new definition; earlier follow-ups stay.

    \b
    Example:
      storywatch storylines edit kaesong --title "Kaesong reopening" --keyword Kaesong --keyword "industrial zone"
      storywatch storylines edit kaesong --threshold default
    """
    changes: dict[str, Any] = {"title": title, "description": description, "keywords": keywords or None,
                               "aliases": _alias_groups(aliases) or None, "exclude": exclude or None}
    changes = {k: v for k, v in changes.items() if v is not None}
    if threshold is not False:
        changes["threshold"] = threshold
    if not changes:
        raise click.UsageError("say what to change: --title, --description, --keyword, --alias, --exclude or --threshold")
    changed = manage.edit_storyline(app.db, storyline_id, app.config_file, utc_now(), **changes)
    click.echo(f"Changed {', '.join(changed)} of {storyline_id}." if changed else f"{storyline_id} is unchanged.")


def _alias_groups(aliases: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    groups = tuple(tuple(a.strip() for a in group.split("=") if a.strip()) for group in aliases)
    for given, group in zip(aliases, groups):
        if has_unsafe(given):
            raise click.BadParameter(f"{given!r}: names without control or bidirectional characters", param_hint="--alias")
        if len(group) < 2:
            raise click.BadParameter(f"{given!r}: give 2 or more names joined by '=', e.g. \"DPRK=North Korea\"",
                                     param_hint="--alias")
    return groups


@cli.group(cls=_Group, name="eval")
def eval_group() -> None:
    """Measure the worker on labelled data."""


@eval_group.command(name="tracking")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--nt", default=4, show_default=True, help="Seeds per storyline: each story's first Nt items.")
@click.option("--threshold", type=float, help="Decision threshold to try (default: [tracking] threshold).")
@click.option("--feedback", is_flag=True, help="As a reader who marks every item a storyline takes, right after.")
@_JSON
@_OUTPUT
@pass_app
def eval_tracking(app: App, dataset: Path, nt: int, threshold: float | None, feedback: bool, as_json: bool,
                  output: Path | None) -> None:
    """Storyline tracking measured on labelled items (JSON Lines: id, story_id, published, title,
    text), with the TDT protocol: per storyline and overall P_miss, P_fa, normalized C_det,
    precision, recall and F1. The store is not touched.

    \b
    Example:
      storywatch eval tracking labelled.jsonl --nt 4
      storywatch eval tracking labelled.jsonl --threshold 0.05 --json
    """
    config = storylines.tracker_config(app.settings.tracking)
    if threshold is not None:
        config = dataclasses.replace(config, threshold=threshold)
    result = evaluate.evaluate(evaluate.load_dataset(dataset), nt, config, feedback=feedback)
    _print(json.dumps(result.as_json(), indent=2, ensure_ascii=False) if as_json else evaluate.format_table(result), output)


@eval_group.command(name="beat")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--feedback", is_flag=True,
              help="Also as a reader who marks every item a storyline takes, right after it is taken.")
@click.option("--find-missed", type=click.IntRange(0), default=0, metavar="N",
              help="With --feedback: the reader also marks each storyline's first N missed follow-ups.")
@_JSON
@_OUTPUT
@pass_app
def eval_beat(app: App, dataset: Path, feedback: bool, find_missed: int, as_json: bool, output: Path | None) -> None:
    """Storyline tracking on a labelled beat feed: the config's storylines with their seeds, the
    items (JSON Lines: id, published, title, text, feed, labels {storyline: yes|related|no}) fed
    in time order; per storyline and pooled recall, precision and false alarms ("related" is not
    scored). The store is not touched.

    \b
    Example:
      storywatch eval beat ../shared/eval/beat-dev.jsonl
      storywatch eval beat labelled.jsonl --feedback --find-missed 1
      storywatch eval beat labelled.jsonl --json
    """
    if find_missed and not feedback:
        raise click.UsageError("--find-missed goes with --feedback")
    config = storylines.tracker_config(app.settings.tracking)
    items, specs = evaluate.load_beat(dataset), storylines.config_specs(app.settings)
    results = evaluate.evaluate_beat(items, specs, config)
    found: dict[str, Any] = {"pooled": evaluate.pooled_beat(results), "storylines": [r.as_dict() for r in results]}
    shown = [evaluate.format_beat(results)]
    if feedback:
        months: dict[str, evaluate.BeatResult] = {}
        marked = evaluate.evaluate_beat(items, specs, config, feedback=True, find_missed=find_missed, by_month=months)
        found["feedback"] = {"find_missed": find_missed, "pooled": evaluate.pooled_beat(marked),
                             "storylines": [r.as_dict() for r in marked],
                             "months": [r.as_dict() for _, r in sorted(months.items())]}
        missed = f", and the first {find_missed} it missed" if find_missed else ""
        shown += [f"\nWith a reader marking what each storyline took{missed}:", evaluate.format_beat(marked),
                  "\nBy month, with the reader:", evaluate.format_months(months)]
    _print(json.dumps(found, indent=2, ensure_ascii=False) if as_json else "\n".join(shown), output)


@eval_group.command(name="marks")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def eval_marks(app: App, as_json: bool) -> None:
    """Your storylines measured on your own marks (`items mark`): the stored items streamed in
    time order through a tracker built from the storylines' seeds, each marked item decided
    before its mark is revealed. Per storyline: the items you marked a follow-up that it took
    (recall) and the items it took that you marked not one (precision). The store is not touched.

    \b
    Example:
      storywatch eval marks
    """
    results = evaluate.evaluate_marks(app.db, app.settings.tracking)
    if as_json:
        click.echo(json.dumps({"pooled": evaluate.pooled_beat(results), "storylines": [r.as_dict() for r in results]},
                              indent=2, ensure_ascii=False))
    elif not results:
        click.echo("No marks yet: mark items with `storywatch items mark ID --storyline S --yes|--no`.")
    else:
        click.echo("Decided in time order, each marked item before its mark was known; 'yes' are the items\n"
                   "you marked a follow-up, 'false' those it took that you marked not one.\n\n"
                   + evaluate.format_beat(results))


@cli.group(cls=_Group)
def export() -> None:
    """Export what the store knows in standard formats."""


@export.command(name="atom")
@click.option("--storyline", "storyline_id", metavar="ID", required=True, help="The storyline to export.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file instead of stdout.")
@pass_app
def export_atom(app: App, storyline_id: str, output: Path | None) -> None:
    """A storyline's timeline (seeds and follow-ups) as an Atom feed, for any feed reader.

    \b
    Example:
      storywatch export atom --storyline friendship-year -o friendship-year.atom
    """
    found = [s for s in store.active_storylines(app.db) if s.id == storyline_id]
    if not found:
        raise click.ClickException(f"no active storyline {storyline_id!r} (see storywatch status)")
    text = atom.storyline_feed(found[0], store.storyline_timeline(app.db, storyline_id), utc_now())
    if output:
        deliver.write_atomically(output, text, make_folder=False)
        click.echo(f"Wrote {output}")
    else:
        click.echo(text, nl=False)


@cli.group(cls=_Group, name="config")
def config_group() -> None:
    """Write, inspect and check the configuration."""


@config_group.command(name="init")
@click.option("--force", is_flag=True, help="Replace an existing file.")
@pass_app
def config_init(app: App, force: bool) -> None:
    """Write the default config (every setting, with a comment) to the config file's path.

    \b
    Example:
      storywatch config init                  # ./config/storywatch.toml
      storywatch --config my.toml config init
    """
    write_default_config(app.config_file, force=force)
    click.echo(f"Wrote {app.config_file}: edit it, then `storywatch config check`")


@config_group.command(name="check")
@_JSON
@_OUTPUT
@pass_app
def config_check(app: App, as_json: bool, output: Path | None) -> None:
    """Validate the config file and print every effective setting (secrets masked); the seed
    folder and the storylines' seed files are read as `init` reads them.

    \b
    Example:
      storywatch --config /etc/storywatch/storywatch.toml config check
      storywatch config check --json
    """
    rows = effective_settings(app.settings)
    storylines.config_specs(app.settings)  # reads every seed file, as `init` will: a missing one fails here
    width = max(len(key) for key, _ in rows)
    _print(report.to_json({"config": str(app.config_file), "settings": effective_values(app.settings)}) if as_json
           else "\n".join(f"{key.ljust(width)} = {value}" for key, value in rows), output)
    click.echo(f"# {app.config_file}: OK", err=True)


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="storywatch"))
