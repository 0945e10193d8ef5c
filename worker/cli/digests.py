"""`digest` and `export atom`: writing, printing and sending digests; storylines as Atom feeds."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
import click

from sqlite_utils import Database

from worker import digest, views
from worker.digest import daily, deliver
from worker.clock import utc_now
from worker.config import Settings
from worker.errors import DeliveryError, ExitStatus
from worker.stopping import StopSignals
from worker.cli.base import App, Group, cli, exit_with, pass_app, since_option


@cli.command(name="digest")
@click.option("--date", "day", metavar="YYYY-MM-DD", help="That day's digest (as written then, if it was).")
@click.option("--since", metavar="DATE|AGE", callback=since_option, help="A digest of any period: its start (with --until).")
@click.option("--until", metavar="DATE|AGE", callback=since_option, help="The end of that period (default: now).")
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
    _check_options(day, bool(since or until), send, resend, include_backfill)
    period, initial, state = _digest_period(app, day, since, until, now)
    if include_backfill:  # another digest than the day's: never kept, never in the day's file
        state = "asked"
    if stdout or fmt in ("text", "email"):
        data = daily.collect(app.db, settings, period, initial=initial, include_backfill=include_backfill)
        click.echo(_printed(app, data, fmt, now, any_period=bool(since or until or include_backfill)), nl=False)
    else:
        stem = daily.period_stem(period) if since or until else None
        data = _write(app, period, initial, state, now, output=output, html=fmt == "html" or None,
                      include_backfill=include_backfill,
                      stem=f"{stem or period.day}-with-backfill" if include_backfill else stem)
    if send and state == "unpolled":  # nothing to send yet: not a failure (a timer may come first)
        click.echo("Nothing sent: no feed has answered yet, so there is no digest to send.")
    elif send:
        _send_digest(settings, app.db, data, now, resend=resend)




def _write(app: App, period: digest.Period, initial: bool, state: str, now: dt.datetime, *, output: Path | None,
           html: bool | None, include_backfill: bool, stem: str | None) -> digest.DigestData:
    """Write the digest's files (and keep it, when it is the day's and due) and say so."""
    outcome = daily.write_digest(app.db, app.settings, period, initial=initial, include_backfill=include_backfill,
                                 output_dir=output, html=html, stem=stem)
    if state == "due":
        daily.record_digest(app.db, app.settings, outcome, now)
    click.echo("Wrote " + ", ".join(str(f) for f in outcome.files) + f": {digest.subject(outcome.data, '')}"
               + _digest_note(state, app.settings))
    return outcome.data

def _check_options(day: str | None, period: bool, send: bool, resend: bool, include_backfill: bool) -> None:
    """The digest's options that do not go together."""
    if resend and not send:
        raise click.UsageError("--resend goes with --send")
    if day and period:
        raise click.UsageError("give --date, or --since/--until, not both")
    if send and (period or include_backfill):
        raise click.UsageError("--send sends a day's digest as it is kept: give --date or no period, "
                               "and no --include-backfill")

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
    signals = StopSignals(stop)
    try:
        daily.send_digest(db, settings, data, now, resend=resend, stop=stop)
    except DeliveryError as exc:
        if signals.signum is None:
            raise
        click.echo(f"Stopped: {exc}", err=True)
        exit_with(ExitStatus.stopped_by(signals.signum))
    finally:
        signals.restore()
    click.echo(f"Sent to {', '.join(settings.email.to)}")


def _printed(app: App, data: digest.DigestData, fmt: str, now: dt.datetime, *, any_period: bool) -> str:
    """The digest as printed: Markdown, HTML, text, or the whole email (a recorded day's digest
    with the Message-ID it is sent with; anything else, a preview included, with a new one, so a
    preview passed on to a mail system can never stand in for the real digest)."""
    if fmt != "email":
        return {"md": digest.render_markdown, "html": digest.render_html, "text": digest.render_text}[fmt](data)
    message_id = None if any_period else daily.recorded_message_id(app.db, app.settings, data.period.day)
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


@cli.group(cls=Group)
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
    text = views.storyline_atom(app.db, storyline_id, utc_now())
    if output:
        deliver.write_atomically(output, text, make_folder=False)
        click.echo(f"Wrote {output}")
    else:
        click.echo(text, nl=False)
