"""The `storywatch` command: thin click commands, each one call into the library.

The config file is chosen by `storywatch --config PATH COMMAND`, else $STORYWATCH_CONFIG,
else ./config/storywatch.toml. An error a user can cause (any StorywatchError) is printed as
one sentence on stderr with a non-zero exit, never a traceback.
"""

from __future__ import annotations

from worker.cli.base import App, cli, main

# Each module adds its commands to `cli`.
from worker.cli import configuration, digests, evals, feeds, items, running, status, storylines  # noqa: E402,F401

__all__ = ["App", "cli", "main"]
