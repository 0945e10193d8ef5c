"""The `storywatch` command: thin click commands, each one call into the library.

The config file is chosen by `storywatch --config PATH COMMAND`, else $STORYWATCH_CONFIG,
else ./config/storywatch.toml. An error a user can cause (any StorywatchError) is printed as
one sentence on stderr with a non-zero exit, never a traceback.
"""

from __future__ import annotations

from worker.cli.base import App, cli, main

# Each command's module adds it to `cli` when it is first asked for (base.COMMAND_MODULES).

__all__ = ["App", "cli", "main"]
