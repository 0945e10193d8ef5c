"""`eval`: measuring storyline tracking on labelled files and on the reader's marks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any
import click

from worker import evaluate, storylines
from worker.cli.base import App, Group, JSON_OPTION, OUTPUT_OPTION, cli, pass_app, print_data


@cli.group(cls=Group, name="eval")
def eval_group() -> None:
    """Measure the worker on labelled data."""


@eval_group.command(name="tracking")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--nt", default=4, show_default=True, help="Seeds per storyline: each story's first Nt items.")
@click.option("--threshold", type=float, help="Decision threshold to try (default: [tracking] threshold).")
@click.option("--feedback", is_flag=True, help="As a reader who marks every item a storyline takes, right after.")
@JSON_OPTION
@OUTPUT_OPTION
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
    print_data(json.dumps(result.as_json(), indent=2, ensure_ascii=False) if as_json else evaluate.format_table(result), output)


@eval_group.command(name="beat")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--feedback", is_flag=True,
              help="Also as a reader who marks every item a storyline takes, right after it is taken.")
@click.option("--find-missed", type=click.IntRange(0), default=0, metavar="N",
              help="With --feedback: the reader also marks each storyline's first N missed follow-ups.")
@JSON_OPTION
@OUTPUT_OPTION
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
    print_data(json.dumps(found, indent=2, ensure_ascii=False) if as_json else "\n".join(shown), output)


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
