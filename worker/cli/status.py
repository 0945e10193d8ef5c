"""`init`, `status`, `health` and `metrics`: setting up, and what the worker says about itself."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
import click

from worker import report, startup, views
from worker.clock import utc_now
from worker.config import parse_duration
from worker import health as health_check
from worker.cli.base import App, JSON_OPTION, OUTPUT_OPTION, cli, pass_app, print_data, table_width


@cli.command()
@JSON_OPTION
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
        click.echo(json.dumps({"store": str(app.settings.storage.path), "schema": views.schema(app.db),
                               "feeds": {"in_config": len(app.settings.feeds), **result.feeds},
                               "seeds": {"read": result.seeds_read, "new": result.seeds_added},
                               "storylines": result.storylines, "unresolved": list(result.unresolved)}, indent=2))
        return
    feeds = ", ".join(f"{n} {what}" for what, n in result.feeds.items() if n) or "unchanged"
    click.echo(f"Store: {app.settings.storage.path} (schema {views.schema(app.db)})")
    click.echo(f"Feeds: {len(app.settings.feeds)} in the config ({feeds})")
    click.echo(f"Seeds: {result.seeds_read} read, {result.seeds_added} new")
    for storyline_id, n in result.storylines.items():
        click.echo(f"Storyline {storyline_id}: {n} seed item(s)")
    for missing in result.unresolved:
        click.echo(f"Not in the store yet (linked once ingested): {missing}", err=True)


@cli.command()
@JSON_OPTION
@OUTPUT_OPTION
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
    shown, schema = views.status(app.db, path, now), views.schema(app.db)
    print_data(report.status_json(shown, schema, now, config=app.config_option) if as_json
           else report.render_status(shown, schema, now, config=app.config_option, width=table_width(output)), output)


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
@JSON_OPTION
@OUTPUT_OPTION
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
    print_data(report.to_json(result.as_json()) if as_json else str(result), output)
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
