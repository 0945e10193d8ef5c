"""What every command shares: the application (settings, store, runtime, each made on first use), the
group that turns errors into one sentence, the output options and the table printer."""

from __future__ import annotations

import datetime as dt
import errno
import gc
import importlib
import os
import sqlite3
import sys
from functools import cached_property
from pathlib import Path
from typing import Any
import click

from loguru import logger
from sqlite_utils import Database

from worker import __version__, pipeline, report, startup, store
from worker.cycle import CycleReport
from worker.digest import deliver
from worker.clock import UTC, utc_now
from worker.config import Settings, config_path, exposed_secrets, load_settings, parse_duration
from worker.safetext import has_unsafe
from worker.pipeline import Runtime
from worker.errors import ExitStatus, StorywatchError
from worker.log import configure_logging
from worker.stopping import StopSignals


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


class Group(click.Group):
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


def exit_with(status: ExitStatus) -> None:
    """End the command with `status` (returning is 0)."""
    if status != ExitStatus.OK:
        sys.exit(int(status))


def cycle_status(cycle: CycleReport, signals: StopSignals, *, failures: bool) -> ExitStatus:
    """A polling command's status: stopped by a signal, else feeds failed (when `failures`
    count), else done."""
    if signals.signum is not None:
        return ExitStatus.stopped_by(signals.signum)
    return ExitStatus.FAILED if failures and cycle.failed else ExitStatus.OK


# Which module (in worker/cli/) defines each command: a command's module, and what it imports,
# is loaded only when that command runs (a one-shot `poll` does without digests, evaluation,
# backfill and the scheduler), or when --help lists them all.
COMMAND_MODULES = {
    "backfill": "running", "config": "configuration", "digest": "digests", "eval": "evals", "export": "digests",
    "feeds": "feeds", "health": "status", "init": "status", "items": "items", "metrics": "status", "poll": "poll",
    "run": "running", "status": "status", "storylines": "storylines",
}


class _Commands(Group):
    """The top-level group: imports a command's module when it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMAND_MODULES and cmd_name not in self.commands:
            importlib.import_module(f"worker.cli.{COMMAND_MODULES[cmd_name]}")
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in COMMAND_MODULES:  # a mistake: every command loaded, for "did you mean"
            for name in COMMAND_MODULES:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


@click.group(cls=_Commands, context_settings=CONTEXT)
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


def _output_folder_exists(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """-o FILE: its folder must exist (as for a shell's >), checked before the command does its
    work (a poll, a digest), with the error writing the file would give."""
    folder = value.absolute().parent if value is not None else None
    if folder is not None and not folder.is_dir():
        problem = errno.ENOTDIR if folder.exists() else errno.ENOENT
        raise StorywatchError(f"cannot write {value}: {os.strerror(problem)}")
    return value


JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
CSV_OPTION = click.option("--csv", "as_csv", is_flag=True, help="Print CSV: a header row (the JSON keys), then one row per line.")
OUTPUT_OPTION = click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
                             callback=_output_folder_exists, help="Write to this file (atomically) instead of stdout.")


def print_data(text: str, output: Path | None) -> None:
    """Print `text`, or with -o write it to that file atomically (a temporary file beside it,
    renamed over it): the file holds what would have been printed."""
    text = text if text.endswith("\n") else text + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        deliver.write_atomically(output, text, make_folder=False)


def table_width(output: Path | None) -> int | None:
    """The width tables fit: the terminal's ($COLUMNS), none in a file (-o)."""
    return None if output else report.terminal_width()


def phrases_option(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Repeated --keyword/--exclude/--tag values, trimmed; a blank one is a mistake, not a phrase."""
    if any(not v.strip() for v in values):
        raise click.BadParameter("an empty value; give a word or phrase")
    return tuple(one_line_option(ctx, param, v) or "" for v in values)


def one_line_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A title or a name: one line of text (it heads digest sections and email subjects), with
    no control or bidirectional character (it would act on the terminal that lists it)."""
    if value is not None and has_unsafe(value):
        raise click.BadParameter("one line of text, without control or bidirectional characters")
    return value.strip() if value is not None else None


def one_format(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")


def since_option(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.datetime | None:
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

def confirm_loss(question: str, yes: bool) -> None:
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


COLLECTOR_THRESHOLDS = (20_000, 10, 10)


def tune_collector() -> None:
    """Run Python's cycle collector less often than by default (700, 10, 10): the writer holds a
    few hundred thousand objects that seldom form cycles (the tracker, emerging groups, items in
    flight), and a cold cycle of 50,000 items spent 3.7 s of its 47 s of CPU collecting, in 21
    full collections; with these thresholds 1.0 s, in one. The benchmarks run it too."""
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


def main() -> None:
    """Console-script entry point."""
    tune_collector()
    sys.exit(cli.main(prog_name="storywatch"))
