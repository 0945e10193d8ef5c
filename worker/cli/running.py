"""`run`, `poll` and `backfill`: the worker's jobs, by hand."""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from pathlib import Path

import click

from worker import backfill, manage, report, schedule, startup
from worker.cycle import poll_feeds
from worker.clock import utc_now
from worker.errors import ExitStatus
from worker import health as health_check
from worker.cli.base import (
    App, JSON_OPTION, OUTPUT_OPTION, cli, cycle_status, exit_with, pass_app, print_data, since_option, table_width,
)


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
    exit_with(cycle_status(cycle, signals, failures=False))


@cli.command()
@click.option("--feed", "feed_url", metavar="FEED", help="Poll only this feed, by address or name (even a disabled one).")
@click.option("--force", is_flag=True, help="Poll feeds that are not due yet too (requests stay conditional).")
@click.option("--no-cache", is_flag=True, help="Ignore the stored ETag and Last-Modified.")
@JSON_OPTION
@OUTPUT_OPTION
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
            feed_url = manage.pollable_address(app.db, feed_url)
        signals = schedule.handle_stop_signals(rt)
        cycle = poll_feeds(rt, force=force or bool(feed_url), feed_url=feed_url, no_cache=no_cache)
        if not feed_url:
            health_check.record_cycle(rt.db, cycle, rt.clock(), interval=None)
    finally:
        rt.close()
    print_data(report.cycle_json(cycle) if as_json else report.render_cycle(cycle, width=table_width(output)), output)
    exit_with(cycle_status(cycle, signals, failures=True))


@cli.command(name="backfill")
@click.argument("sources", nargs=-1, metavar="SOURCE…")
@click.option("--all", "all_feeds", is_flag=True, help="Every configured feed (and its archives).")
@click.option("--since", callback=since_option, metavar="DATE|AGE", help="Only items published from then on.")
@click.option("--until", callback=since_option, metavar="DATE|AGE", help="Only items published before then.")
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
        exit_with(ExitStatus.stopped_by(signals.signum))
    exit_with(ExitStatus.FAILED if summary.sources_failed else ExitStatus.OK)
