"""Where the config lives, and the default config written from the shipped template."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from worker.errors import ConfigError


CONFIG_ENV = "STORYWATCH_CONFIG"
DEFAULT_CONFIG = Path("config/storywatch.toml")


DEFAULT_TEMPLATE = Path(__file__).parent.parent / "default.toml"
"""The shipped default; its relative paths hold from any folder beside `seeds/`, as config/ is."""


def default_config_text() -> str:
    return DEFAULT_TEMPLATE.read_text(encoding="utf-8")


SHIPPED_FOLDER = DEFAULT_TEMPLATE.parent.parent / "config"
"""The folder the shipped default's relative paths are written for (beside seeds/)."""
_TEMPLATE_PATH = re.compile(r'"(\.\./[^"]*)"')


def write_default_config(path: Path, *, force: bool = False) -> None:
    """`storywatch config init`: the default config written where the user will edit it."""
    if path.exists() and not force:
        raise ConfigError(f"config file exists already: {path}", hint="edit it, or add --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(default_config_for(path.parent), encoding="utf-8")


def default_config_for(folder: Path) -> str:
    """The shipped default for a config file in `folder`. In the project's config/ folder, as
    shipped. Elsewhere the seeds are still the shipped ones (named by absolute path), and what
    the worker writes (the store, the digests) goes beside the new file, not into the project."""
    if folder.resolve() == SHIPPED_FOLDER.resolve():
        return default_config_text()

    def moved(match: re.Match[str]) -> str:
        relative = match.group(1)
        if relative == "../seeds" or relative.startswith("../seeds/"):
            return json.dumps(os.path.normpath(SHIPPED_FOLDER.resolve() / relative))
        return json.dumps(relative.removeprefix("../"))

    return _TEMPLATE_PATH.sub(moved, default_config_text())
