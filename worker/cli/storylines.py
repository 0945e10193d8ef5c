"""`storylines`: listing, showing, adding, suggesting, pausing, editing and removing storylines."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
import click

from worker import emerging, manage, report, startup, views
from worker.clock import utc_now
from worker.config import StorylineConfig, is_file_seed
from worker.safetext import has_unsafe
from worker.models import plural
from worker.cli.base import (
    App, CSV_OPTION, Group, JSON_OPTION, OUTPUT_OPTION, cli, confirm_loss, one_format, one_line_option, pass_app,
    phrases_option, print_data, table_width,
)


@cli.group(cls=Group, name="storylines")
def storylines_group() -> None:
    """The storylines being tracked: list, show, add, and suggested ones."""


@storylines_group.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@CSV_OPTION
@OUTPUT_OPTION
@pass_app
def storylines_list(app: App, as_json: bool, as_csv: bool, output: Path | None) -> None:
    """Every storyline: seeds, follow-ups, the last follow-up and how long it has been quiet.

    \b
    Example:
      storywatch storylines list
      storywatch storylines list --csv
    """
    one_format(as_json, as_csv)
    summaries, now = views.storylines(app.db), utc_now()
    print_data(report.storylines_json(summaries, now) if as_json else
           report.csv_text((report.storyline_dict(s, now) for s in summaries), report.STORYLINE_COLUMNS) if as_csv else
           report.render_storylines(summaries, now, width=table_width(output)), output)


@storylines_group.command(name="show")
@click.argument("storyline_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@CSV_OPTION
@OUTPUT_OPTION
@pass_app
def storylines_show(app: App, storyline_id: str, as_json: bool, as_csv: bool, output: Path | None) -> None:
    """A storyline's timeline: date, source, title and, for each follow-up, its score, why it
    matched and what is new in it.

    \b
    Example:
      storywatch storylines show friendship-year
      storywatch storylines show friendship-year --csv -o friendship-year.csv
    """
    one_format(as_json, as_csv)
    page = views.storyline_page(app.db, storyline_id)
    print_data(report.csv_text(report.timeline_rows(page.entries, page.rejected), report.TIMELINE_COLUMNS) if as_csv
               else (report.timeline_json if as_json else report.render_timeline)(page.summary, page.entries,
                                                                                   page.rejected), output)


@storylines_group.command(name="add")
@click.argument("storyline_id", metavar="ID")
@click.option("--title", callback=one_line_option, help="The storyline's name (default: the suggestion's headline).")
@click.option("--seed", "seeds", multiple=True, metavar="PATH|URL|#ID",
              help="An example article: a text file, or an item in the store by its URL or its ID, #42 (repeat).")
@click.option("--keyword", "keywords", multiple=True, callback=phrases_option,
              help="A name or key phrase of the story (repeat).")
@click.option("--alias", "aliases", multiple=True, metavar="A=B=…",
              help="Names that mean the same, e.g. \"DPRK=North Korea\" (repeat).")
@click.option("--exclude", multiple=True, callback=phrases_option, help="A word or phrase that rules an item out (repeat).")
@click.option("--description", default="", callback=one_line_option, help="What the story is about.")
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
    title = title or (suggestion.title if suggestion else None)
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
@JSON_OPTION
@CSV_OPTION
@OUTPUT_OPTION
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
    one_format(as_json, as_csv)
    if dismiss is not None:
        found, changed = manage.dismiss_suggestion(app.db, dismiss)
        said = f"Dismissed suggestion #{dismiss}: {found.title}" if changed else \
            f"Suggestion #{dismiss} is dismissed already: {found.title}"
        print_data(report.to_json({"id": dismiss, "title": found.title, "status": "dismissed", "changed": changed})
               if as_json else said, output)
        return
    rows = views.suggestions(app.db, include_closed=show_all)
    print_data(report.to_json([report.suggestion_dict(r) for r in rows]) if as_json else
           report.csv_text(map(report.suggestion_dict, rows), report.SUGGESTION_COLUMNS) if as_csv else
           report.render_suggestions(rows, emerging.MIN_WINDOW, app.settings.tracking.window.days), output)


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
    confirm_loss(f"Remove storyline {storyline_id} ({row.definition.title})? Its items stay; its links and marks go.", yes)
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
@click.option("--title", callback=one_line_option, help="A new title.")
@click.option("--description", callback=one_line_option, help="A new description.")
@click.option("--keyword", "keywords", multiple=True, callback=phrases_option,
              help="The storyline's keywords, replacing them (repeat).")
@click.option("--alias", "aliases", multiple=True, metavar="A=B=…", help="Its aliases, replacing them (repeat).")
@click.option("--exclude", multiple=True, callback=phrases_option, help="Its exclude terms, replacing them (repeat).")
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
