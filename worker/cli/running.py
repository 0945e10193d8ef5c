"""`run` and `backfill`: the worker's jobs, by hand (`poll` is in poll.py)."""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading

import click

from worker import backfill, report, schedule, startup
from worker.clock import utc_now
from worker.errors import ExitStatus
from worker.stopping import StopSignals, handle_stop_signals
from worker.cli.base import App, cli, cycle_status, exit_with, pass_app, since_option


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
    signals = handle_stop_signals(rt)
    try:
        if not once:
            schedule.run_daemon(rt)
            return
        cycle = schedule.run_once(rt)
    finally:
        rt.close()
    click.echo(cycle.summary())
    exit_with(cycle_status(cycle, signals, failures=False))


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
    signals = StopSignals(stop)
    with report.Progress(sys.stderr) as progress:
        summary = backfill.backfill(app.db, app.settings, found, options, progress.update, stop=stop, unreadable=failed)
    click.echo(json.dumps(summary.as_json(), indent=2, ensure_ascii=False) if as_json
               else report.render_backfill(summary, dry_run))
    if signals.signum is not None:
        exit_with(ExitStatus.stopped_by(signals.signum))
    exit_with(ExitStatus.FAILED if summary.sources_failed else ExitStatus.OK)
