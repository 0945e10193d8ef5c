"""The project's errors: one small tree, so callers catch what they can act on.

    StorywatchError            a message a user can act on, plus an optional hint
    ├── ConfigError            the config file: missing, invalid TOML, unknown key, wrong type,
    │                          bad value, missing secret
    ├── StoreError             the database cannot be opened, is not ours, or is too new
    └── SeedError              a seed document or seeds.toml is missing or malformed

The CLI turns any StorywatchError into one sentence on stderr and a non-zero exit;
tracebacks never reach users for errors they can cause.
"""

from __future__ import annotations


class StorywatchError(Exception):
    """Base class: `str(error)` is a complete sentence; `hint` says what to do about it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(StorywatchError):
    """The configuration cannot be used as written."""


class StoreError(StorywatchError):
    """The SQLite store cannot be opened or used."""


class SeedError(StorywatchError):
    """A seed document or its description is missing or malformed."""
