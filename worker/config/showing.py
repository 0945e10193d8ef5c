"""Showing the settings in effect (config show, config check): values as written, secrets masked."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

from worker.safetext import without_password
from worker.config.fields import format_duration
from worker.config.sections import ARRAY_SECTIONS, SECTIONS, Settings, toml_key


MASK = "********"


def effective_settings(settings: Settings) -> list[tuple[str, str]]:
    """Every setting with its effective value as text, secrets masked (for `config check`)."""
    rows: list[tuple[str, str]] = []
    for name in SECTIONS:
        value = getattr(settings, name)
        if name in ARRAY_SECTIONS:
            for i, entry in enumerate(value):
                rows.extend(_section_rows(f"{name}[{i}]", entry))
        else:
            rows.extend(_section_rows(name, value))
    return rows


def _section_rows(prefix: str, section: Any) -> list[tuple[str, str]]:
    rows = []
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if f.metadata.get("secret"):
            shown = MASK if value else "(not set)"
        else:
            shown = without_password(format_value(value))  # a feed URL with a login
        rows.append((f"{prefix}.{toml_key(f)}", shown))
    return rows


def effective_values(settings: Settings) -> dict[str, Any]:
    """Every setting with its effective value as JSON has it (durations and times as written in
    the config, unset ones null), secrets masked (for `config check --json`)."""
    values: dict[str, Any] = {}
    for name in SECTIONS:
        value = getattr(settings, name)
        for prefix, section in ([(f"{name}[{i}]", e) for i, e in enumerate(value)] if name in ARRAY_SECTIONS
                                else [(name, value)]):
            for f in dataclasses.fields(section):
                field_value = getattr(section, f.name)
                shown = (MASK if field_value else None) if f.metadata.get("secret") else _json_value(field_value)
                values[f"{prefix}.{toml_key(f)}"] = shown
    return values


def _json_value(value: Any) -> Any:
    if isinstance(value, (dt.timedelta, dt.time)):
        return format_value(value).strip('"')
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, (str, Path)):
        return without_password(str(value))
    return value


def format_value(value: Any) -> str:
    """A setting's value as it would be written in TOML."""
    if isinstance(value, dt.timedelta):
        return f'"{format_duration(value)}"'
    if isinstance(value, dt.time):
        return f'"{value:%H:%M}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, Path)):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if value is None:
        return "(unset)"
    return str(value)
