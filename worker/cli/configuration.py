"""`config`: writing the default config, and checking one."""

from __future__ import annotations

from pathlib import Path
import click

from worker import report, storylines
from worker.config import effective_settings, effective_values, write_default_config
from worker.cli.base import App, Group, JSON_OPTION, OUTPUT_OPTION, cli, pass_app, print_data


@cli.group(cls=Group, name="config")
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
@JSON_OPTION
@OUTPUT_OPTION
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
    print_data(report.to_json({"config": str(app.config_file), "settings": effective_values(app.settings)}) if as_json
           else "\n".join(f"{key.ljust(width)} = {value}" for key, value in rows), output)
    click.echo(f"# {app.config_file}: OK", err=True)
