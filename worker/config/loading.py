"""Reading a config file into Settings: TOML, unknown keys with a suggestion, paths, seeds,
secrets from files or the environment, and every value checked with the file and key named."""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import functools
import math
import os
import re
import stat
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from worker.safetext import address_without_password, without_password
from worker.errors import ConfigError
from worker.models import feed_address
from worker.config.fields import check_web_url, format_duration, parse_duration
from worker.config.files import CONFIG_ENV, DEFAULT_CONFIG
from worker.config.sections import ARRAY_SECTIONS, SECTIONS, Settings, toml_key


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """A settings class's field types, worked out once: a config lists up to thousands of feeds."""
    return typing.get_type_hints(cls)


class _Reader:
    """Converts raw TOML values to field types, raising ConfigError with file and key."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.base = source.parent

    def fail(self, key: str, expected: str, got: object) -> ConfigError:
        shown = repr(address_without_password(got) if isinstance(got, str) else got) \
            if not isinstance(got, (dict, list)) else type(got).__name__
        return ConfigError(f"{self.source}: {key}: expected {expected}, got {shown}")

    def build(self, cls: type, table: Mapping[str, Any], where: str) -> Any:
        fields = {toml_key(f): f for f in dataclasses.fields(cls)}
        for key in table:
            if key not in fields:
                raise self._unknown(f"{where}.{key}" if where else key, key, list(fields))
        hints = _type_hints(cls)
        values: dict[str, Any] = {}
        for key, f in fields.items():
            full = f"{where}.{key}" if where else key
            if key in table and not f.metadata.get("from_toml", True):
                raise ConfigError(
                    f"{self.source}: {full}: secrets are never read from the config file",
                    hint="name an environment variable with password_env or a file with password_file",
                )
            if key not in table:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ConfigError(f"{self.source}: {full}: this key is required")
                if isinstance(f.default, Path):  # defaults resolve like written paths
                    values[f.name] = resolve_path(self.base, str(f.default))
                continue
            values[f.name] = self.convert(hints[f.name], table[key], full)
            check = f.metadata.get("check")
            if check and (expected := check(values[f.name])):
                raise self.fail(full, expected, table[key])
        return cls(**values)

    def _unknown(self, full: str, key: str, known: list[str]) -> ConfigError:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "known keys: " + ", ".join(sorted(known))
        return ConfigError(f"{self.source}: {full}: unknown key", hint=hint)

    def convert(self, hint: Any, value: Any, key: str) -> Any:
        origin = typing.get_origin(hint)
        if origin in (types.UnionType, typing.Union):
            (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
            return self.convert(inner, value, key)
        if origin is tuple:
            return self._tuple(typing.get_args(hint)[0], value, key)
        reader = self._SCALARS.get(hint)
        if reader is None:  # pragma: no cover - a programming error in a section class
            raise TypeError(f"no reader for {hint!r}")
        return reader(self, value, key)

    def _tuple(self, item: Any, value: Any, key: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise self.fail(key, "a list", value)
        return tuple(self.convert(item, v, f"{key}[{i}]") for i, v in enumerate(value))

    def _str(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, "a string", value)
        return value

    def _int(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, "a whole number", value)
        return value

    def _float(self, value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(key, "a number", value)  # TOML has inf and nan
        return float(value)

    def _bool(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def _path(self, value: Any, key: str) -> Path:
        text = self._str(value, key)
        if not text.strip() or "\0" in text:
            raise self.fail(key, "a path", value)
        return resolve_path(self.base, text)

    def _duration(self, value: Any, key: str) -> dt.timedelta:
        parsed = parse_duration(value)
        if parsed is None:
            raise self.fail(key, 'a duration such as "90s", "30m", "2h" or "7d" (at most a century)', value)
        return parsed

    def _time(self, value: Any, key: str) -> dt.time:
        if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value):
            hours, minutes = (int(p) for p in value.split(":"))
            if hours < 24 and minutes < 60:
                return dt.time(hours, minutes)
        raise self.fail(key, 'a time of day "HH:MM"', value)

    def section(self, cls: type, value: Any, key: str) -> Any:
        if not isinstance(value, dict):
            raise self.fail(key, f"a table [{key}]", value)
        return self.build(cls, value, key)

    _SCALARS: dict[Any, Callable[..., Any]] = {
        str: _str,
        int: _int,
        float: _float,
        bool: _bool,
        Path: _path,
        dt.timedelta: _duration,
        dt.time: _time,
    }


def resolve_path(base: Path, text: str) -> Path:
    """`text` as a path, relative ones taken from `base` ("config/../var" shown as "var")."""
    path = Path(text).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Which config file to read: --config, else $STORYWATCH_CONFIG, else the default."""
    chosen = explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
    return Path(chosen)


def load_settings(path: Path) -> Settings:
    """Read, validate and resolve the config file at `path`."""
    raw = _read_toml(path)
    reader = _Reader(path)
    sections: dict[str, Any] = {name: reader.section(cls, {}, name)
                                for name, cls in SECTIONS.items() if name not in ARRAY_SECTIONS}
    for name, value in raw.items():
        if name not in SECTIONS:
            raise reader._unknown(name, name, list(SECTIONS))
        if name in ARRAY_SECTIONS:
            sections[name] = _read_array(reader, name, value)
        else:
            sections[name] = reader.section(SECTIONS[name], value, name)
    settings = Settings(**sections, source=path)
    _validate(settings, path)
    settings = _resolve_seed_paths(settings, path.parent.absolute())  # stored: the same from any folder
    return _resolve_secrets(settings, path)


def is_web_url(value: str) -> bool:
    return check_web_url(value) is None


_ITEM_SEED = re.compile(r"#(\d{1,18})")


def item_seed(seed: str) -> int | None:
    """The stored item a seed names by its ID ("#42", as listings show it), if it does."""
    found = _ITEM_SEED.fullmatch(seed.strip())
    return int(found.group(1)) if found else None


def is_file_seed(seed: str) -> bool:
    """A seed that is a text file (not a stored item's URL or ID)."""
    return not is_web_url(seed) and item_seed(seed) is None


def _resolve_seed_paths(settings: Settings, base: Path) -> Settings:
    """Storyline seeds that are not URLs are paths, relative to the config file's folder."""

    def resolve(seed: str) -> str:
        return str(resolve_path(base, seed)) if is_file_seed(seed) else seed

    storylines = tuple(
        dataclasses.replace(s, seeds=tuple(resolve(seed) for seed in s.seeds))
        for s in settings.storylines
    )
    return dataclasses.replace(settings, storylines=storylines)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found: {path}",
            hint=f"`storywatch config init` writes the default there; or pass --config PATH or set ${CONFIG_ENV}",
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a folder, not a file: {path}") from None
    except PermissionError:
        raise ConfigError(f"config file is not readable: {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: invalid TOML: the file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _read_array(reader: _Reader, name: str, value: Any) -> tuple[Any, ...]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise reader.fail(name, f"a list of tables [[{name}]]", value)
    return tuple(reader.build(SECTIONS[name], v, f"{name}[{i}]") for i, v in enumerate(value))


def _validate(settings: Settings, path: Path) -> None:
    """Rules that span several keys."""
    fetch = settings.fetch
    if not fetch.min_interval <= fetch.interval <= fetch.max_interval:
        raise ConfigError(
            f"{path}: fetch.interval: expected a duration between fetch.min_interval "
            f"({format_duration(fetch.min_interval)}) and fetch.max_interval "
            f"({format_duration(fetch.max_interval)}), got {format_duration(fetch.interval)}"
        )
    _unique(path, "feeds", [f.url for f in settings.feeds], "url", feed_address)  # HTTP://Host/x is http://host/x
    _unique(path, "storylines", [s.id for s in settings.storylines], "id")
    for i, feed in enumerate(settings.feeds):
        if feed.interval is not None and not fetch.min_interval <= feed.interval <= fetch.max_interval:
            raise ConfigError(
                f"{path}: feeds[{i}].interval: expected a duration from "
                f"{format_duration(fetch.min_interval)} to {format_duration(fetch.max_interval)}, "
                f"got {format_duration(feed.interval)}"
            )
    email = settings.email
    if email.enabled:
        for key, value in (("smtp_host", email.smtp_host), ("from", email.from_addr)):
            if not value:
                raise ConfigError(f"{path}: email.{key}: required when email.enabled = true")
        if not email.to:
            raise ConfigError(f"{path}: email.to: required when email.enabled = true")


def _unique(path: Path, section: str, values: list[str], key: str, same: Callable[[str], str] = str) -> None:
    """Each value once (`same`: the form in which two values are the same)."""
    seen: set[str] = set()
    for i, value in enumerate(values):
        if same(value) in seen:
            raise ConfigError(f"{path}: {section}[{i}].{key}: {without_password(repr(value))} appears twice")
        seen.add(same(value))


def _resolve_secrets(settings: Settings, path: Path) -> Settings:
    """Fill email.password from its variable or file; required only when a login is needed."""
    email = settings.email
    if not (email.enabled and email.username):
        return settings
    password = os.environ.get(email.password_env) if email.password_env else None
    if password is None and email.password_file is not None:
        try:
            password = email.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{path}: email.password_file: cannot read {email.password_file}: {exc.strerror}"
            ) from None
    if not password:
        where = f"environment variable {email.password_env}"
        if email.password_file is not None:
            where += f" or file {email.password_file}"
        raise ConfigError(
            f"{path}: missing secret: the SMTP password is not set ({where} is empty or unset)",
            hint=f"export {email.password_env}=... or set email.password_file",
        )
    return dataclasses.replace(settings, email=dataclasses.replace(email, password=password))


def exposed_secrets(settings: Settings) -> list[str]:
    """Warnings for secrets that other users of the machine can read: a world-readable password
    file, or a world-readable config file holding a feed address with a password in it."""
    warnings = []
    password_file = settings.email.password_file
    if password_file is not None and _world_readable(password_file):
        warnings.append(f"{password_file} holds the SMTP password and is readable by every user: chmod o-r it")
    if settings.source is not None and _world_readable(settings.source):
        if any(urlsplit(feed.url).password for feed in settings.feeds):
            warnings.append(f"{settings.source} holds a feed password and is readable by every user: chmod o-r it")
    return warnings


def _world_readable(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & stat.S_IROTH)
    except OSError:
        return False
