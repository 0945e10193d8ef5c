"""Settings: a TOML file read into typed, frozen, validated dataclasses.

Every setting is a field of one of the section classes below; the field's metadata holds its
help text, and `SETTINGS` lists them all (the README test checks each is documented). Reading
a file (`load_settings`) rejects unknown keys (suggesting the nearest), wrong types and bad
values with a message naming the file, the key and what was expected; invalid TOML reports its
line. Relative paths resolve against the config file's folder. Secrets (the SMTP password) come
from an environment variable or a file the config names, never from the TOML itself.

The config file is chosen by `--config`, else `$STORYWATCH_CONFIG`, else
`./config/storywatch.toml` (`config_path`). The shipped default (`worker/default.toml`, every
setting with its comment) is written there by `storywatch config init`: that copy is the user's,
and nothing else (tests included) reads or writes it.
"""

from __future__ import annotations

from worker.config.files import (
    CONFIG_ENV, DEFAULT_CONFIG, DEFAULT_TEMPLATE, SHIPPED_FOLDER, default_config_for, default_config_text,
    write_default_config,
)
from worker.config.fields import (
    ALIAS_GROUP_RULE, Check, DEFAULT_ADAPT, DEFAULT_CLUTTER, DEFAULT_THRESHOLD, LONGEST, between, check_lines,
    check_one_line, check_one_line_each, check_prose, check_regexes, check_slug, check_timezone, check_web_url,
    duration_between, format_duration, one_of, parse_duration, setting,
)
from worker.config.sections import (
    ARRAY_SECTIONS, DedupeSettings, DigestSettings, EmailSettings, FeedConfig, FetchSettings, LogSettings,
    MonitoringSettings, SECTIONS, SETTINGS, SeedsSettings, SettingInfo, Settings, StorageSettings, StorylineConfig,
    TrackingSettings, toml_key,
)
from worker.config.loading import (
    config_path, exposed_secrets, is_file_seed, is_web_url, item_seed, load_settings, resolve_path,
)
from worker.config.showing import (
    MASK, effective_settings, effective_values, format_value,
)

__all__ = [
    "ALIAS_GROUP_RULE",
    "ARRAY_SECTIONS",
    "CONFIG_ENV",
    "Check",
    "DEFAULT_ADAPT",
    "DEFAULT_CLUTTER",
    "DEFAULT_CONFIG",
    "DEFAULT_TEMPLATE",
    "DEFAULT_THRESHOLD",
    "DedupeSettings",
    "DigestSettings",
    "EmailSettings",
    "FeedConfig",
    "FetchSettings",
    "LONGEST",
    "LogSettings",
    "MASK",
    "MonitoringSettings",
    "SECTIONS",
    "SETTINGS",
    "SHIPPED_FOLDER",
    "SeedsSettings",
    "SettingInfo",
    "Settings",
    "StorageSettings",
    "StorylineConfig",
    "TrackingSettings",
    "between",
    "check_lines",
    "check_one_line",
    "check_one_line_each",
    "check_prose",
    "check_regexes",
    "check_slug",
    "check_timezone",
    "check_web_url",
    "config_path",
    "default_config_for",
    "default_config_text",
    "duration_between",
    "effective_settings",
    "effective_values",
    "exposed_secrets",
    "format_duration",
    "format_value",
    "is_file_seed",
    "is_web_url",
    "item_seed",
    "load_settings",
    "one_of",
    "parse_duration",
    "resolve_path",
    "setting",
    "toml_key",
    "write_default_config",
]
