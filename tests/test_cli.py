"""The command line as a user meets it: a real process, help everywhere, errors in one sentence."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest

from worker.cli import cli
from tests.conftest import PROJECT, Cli


def all_commands(group: click.Group = cli, prefix: str = "") -> list[tuple[str, click.Command]]:
    """Every command and subcommand (as click finds them: the top level loads its modules lazily)."""
    found = []
    ctx = click.Context(group)
    for name in sorted(group.list_commands(ctx)):
        command = group.get_command(ctx, name)
        assert command is not None, name
        path = f"{prefix}{name}"
        found.append((path, command))
        if isinstance(command, click.Group):
            found += all_commands(command, path + " ")
    return found


def test_python_dash_m_worker_runs_the_cli(seeded_config: Path) -> None:
    env = {**os.environ, "STORYWATCH_CONFIG": str(seeded_config)}
    result = subprocess.run(
        [sys.executable, "-m", "worker", "init"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Seeds: 5 read, 5 new" in result.stdout


@pytest.mark.parametrize(("path", "command"), all_commands())
def test_every_command_has_help_with_an_example(path: str, command: click.Command) -> None:
    if isinstance(command, click.Group):
        assert command.help, f"{path} has no help"
        return
    assert command.help and "Example:" in command.help, f"{path} has no example in its help"
    result = Cli(Path("unused.toml"))(*path.split(), "-h")
    assert "Usage: cli" in result.output or "Usage:" in result.output


def test_an_error_a_user_can_cause_is_one_sentence_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(tmp_path / "missing.toml"), "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: config file not found: {tmp_path / 'missing.toml'} (`storywatch config init` writes the default there; or pass --config PATH or set $STORYWATCH_CONFIG)"


def test_each_command_is_found_in_the_module_the_command_map_names() -> None:
    """`storywatch COMMAND` imports only COMMAND's module (base.COMMAND_MODULES): the map must
    name every command, each where it is defined."""
    from worker.cli.base import COMMAND_MODULES

    ctx = click.Context(cli)
    found = {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}
    assert all(found.values()) and set(found) == set(COMMAND_MODULES)
    assert {name: command.callback.__module__ for name, command in found.items() if command and command.callback} == {
        name: f"worker.cli.{module}" for name, module in COMMAND_MODULES.items()}


def test_a_one_shot_poll_imports_neither_the_scheduler_nor_the_digest_renderer() -> None:
    """A one-shot `storywatch poll` (from cron, every few minutes) starts quickly: it does not
    import APScheduler, the backfill, markdown-it or feedparser (the parsing processes do)."""
    probe = ("import sys, click\nfrom worker.cli import cli\n"
             "cli.get_command(click.Context(cli), 'poll')\n"
             "print(sorted(m for m in ('apscheduler', 'worker.backfill', 'markdown_it', 'feedparser') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PROJECT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_mistyped_command_gets_a_suggestion() -> None:
    """Commands load when asked for; a name that is none of them still gets click's "did you mean"."""
    for typed, meant in (("pol", "poll"), ("feed", "feeds"), ("storyline", "storylines")):
        done = subprocess.run([sys.executable, "-m", "worker", typed], capture_output=True, text=True, cwd=PROJECT,
                              timeout=120)
        assert done.returncode == 2 and f"Did you mean '{meant}'?" in done.stderr, (typed, done.stderr)


def test_the_programs_main_module_imports_nothing_until_the_command_runs() -> None:
    """Each parsing process imports the program's main module again (multiprocessing does): the
    `storywatch` script and `python -m worker` start from a module that imports no CLI."""
    scripts = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts == {"storywatch": "worker.__main__:main"}
    probe = "import sys, worker.__main__\nprint(sorted(m for m in sys.modules if m.startswith(('worker.', 'click'))))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PROJECT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['worker.__main__']"


def test_the_command_runs_the_cycle_collector_less_often(monkeypatch: pytest.MonkeyPatch) -> None:
    """The console entry point sets the collector's thresholds before any command runs (the
    writer's objects seldom form cycles; see base.tune_collector)."""
    import gc

    from worker.cli import base

    before = gc.get_threshold()
    monkeypatch.setattr(sys, "argv", ["storywatch", "--version"])
    try:
        with pytest.raises(SystemExit) as exited:
            base.main()
        assert exited.value.code == 0
        assert gc.get_threshold() == base.COLLECTOR_THRESHOLDS
    finally:
        gc.set_threshold(*before)
