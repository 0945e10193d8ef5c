"""`poll`: the due feeds polled now, once (apart from `run` and `backfill`, so that a one-shot
poll imports neither the scheduler nor the backfill)."""

from __future__ import annotations

from pathlib import Path

import click

from worker import manage, report
from worker import health as health_check
from worker.cycle import poll_feeds
from worker.stopping import handle_stop_signals
from worker.cli.base import App, JSON_OPTION, OUTPUT_OPTION, cli, cycle_status, exit_with, pass_app, print_data, table_width


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
        if feed_url is not None:  # an empty --feed "" is a feed not found, not every due feed
            feed_url = manage.pollable_address(app.db, feed_url)
        signals = handle_stop_signals(rt)
        cycle = poll_feeds(rt, force=force or feed_url is not None, feed_url=feed_url, no_cache=no_cache)
        if feed_url is None:
            health_check.record_cycle(rt.db, cycle, rt.clock(), interval=None)
    finally:
        rt.close()
    print_data(report.cycle_json(cycle) if as_json else report.render_cycle(cycle, width=table_width(output)), output)
    exit_with(cycle_status(cycle, signals, failures=True))
