"""Config: typed settings from TOML; every user mistake is one clear error naming file and key."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from worker.config import (
    DEFAULT_TEMPLATE,
    SETTINGS,
    TrackingSettings,
    config_path,
    default_config_for,
    effective_settings,
    load_settings,
)
from worker.errors import ConfigError
from worker.tracking.settings import TrackerConfig
from tests.conftest import PROJECT, SEEDS, Cli

WriteConfig = Callable[[str], Path]


def test_a_config_with_only_storage_and_feeds_is_valid(write_config: WriteConfig) -> None:
    path = write_config(
        """
        [storage]
        path = "data/sw.db"

        [[feeds]]
        url = "https://example.org/feed.xml"

        [[feeds]]
        url = "https://example.net/atom"
        name = "Example"
        interval = "2h"
        tags = ["a", "b"]
        """
    )
    settings = load_settings(path)
    assert settings.storage.path == path.parent / "data" / "sw.db"
    assert settings.seeds.path is None  # a config without [seeds] path loads no seeds
    assert [f.url for f in settings.feeds] == ["https://example.org/feed.xml", "https://example.net/atom"]
    assert settings.feeds[0].interval is None
    assert settings.feeds[1].interval == dt.timedelta(hours=2)
    assert settings.feeds[1].tags == ("a", "b")
    assert settings.fetch.interval == dt.timedelta(minutes=30)
    assert settings.digest.time == dt.time(7, 0)


def test_relative_paths_resolve_against_the_config_folder(write_config: WriteConfig) -> None:
    path = write_config(
        """
        [seeds]
        path = "../corpus"

        [[storylines]]
        id = "s"
        title = "S"
        seeds = ["../corpus/a.txt", "/abs/b.txt", "https://example.org/story"]
        """
    )
    settings = load_settings(path)
    assert settings.seeds.path == path.parent.parent / "corpus"
    assert settings.storage.path == path.parent / "storywatch.db"  # the default resolves too
    assert settings.storylines[0].seeds == (
        str(path.parent.parent / "corpus" / "a.txt"),
        "/abs/b.txt",
        "https://example.org/story",
    )


def test_the_default_config_is_valid_and_comments_every_setting() -> None:
    path = DEFAULT_TEMPLATE  # the shipped default, never the user's config/storywatch.toml
    settings = load_settings(path)
    assert len(settings.feeds) >= 6
    assert {s.id for s in settings.storylines} >= {"friendship-year", "high-level-exchanges", "north-korea-russia"}
    text = path.read_text(encoding="utf-8")
    for info in SETTINGS:
        section, key = info.key.replace("[]", "").split(".")
        assert re.search(rf"^#? ?{re.escape(key)} = ", text, re.M), f"{info.key} missing from the default config"
    assert _uncommented_keys(text) == []


def _uncommented_keys(text: str) -> list[str]:
    """Keys of [section] tables with no comment above them (related keys may share one)."""
    missing, section = [], ""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("["):
            section = line
        elif re.match(r"^[a-z_]+ = ", line) and not section.startswith("[["):
            above = i - 1
            while above >= 0 and re.match(r"^[a-z_]+ = ", lines[above]):
                above -= 1
            if above < 0 or not lines[above].startswith("#"):
                missing.append(f"{section} {line}")
    return missing


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[storage]\npaht = 'x.db'\n", r"storage\.paht: unknown key \(did you mean 'path'\?\)"),
        ("[storag]\npath = 'x.db'\n", r"storag: unknown key \(did you mean 'storage'\?\)"),
        ("[[feeds]]\nurl = 'https://a.example/f'\nintervall = '1h'\n", r"feeds\[0\]\.intervall: unknown key"),
        ("[email]\npassword = 'hunter2'\n", r"email\.password: secrets are never read from the config file"),
    ],
)
def test_unknown_keys_are_errors(write_config: WriteConfig, toml: str, message: str) -> None:
    path = write_config(toml)
    with pytest.raises(ConfigError, match=message) as err:
        load_settings(path)
    assert str(path) in str(err.value)
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[fetch]\ntimeout = 'fast'\n", r"fetch\.timeout: expected a number, got 'fast'"),
        ("[fetch]\nmax_per_host = 2.5\n", r"fetch\.max_per_host: expected a whole number, got 2\.5"),
        ("[fetch]\nadaptive = 'yes'\n", r"fetch\.adaptive: expected true or false, got 'yes'"),
        ("[fetch]\ninterval = 'often'\n", r'fetch\.interval: expected a duration such as "90s"'),
        ("[storage]\npath = 3\n", r"storage\.path: expected a string, got 3"),
        ("[[feeds]]\nurl = 'https://a.example/f'\ntags = 'x'\n", r"feeds\[0\]\.tags: expected a list, got 'x'"),
        ("[[feeds]]\nurl = 'https://a.example/f'\ntags = [1]\n", r"feeds\[0\]\.tags\[0\]: expected a string, got 1"),
        ("feeds = 'x'\n", r"feeds: expected a list of tables \[\[feeds\]\]"),
        ("storage = 1\n", r"storage: expected a table \[storage\]"),
    ],
)
def test_wrong_types_are_errors(write_config: WriteConfig, toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write_config(toml))


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[fetch]\nmax_per_host = 0\n", r"fetch\.max_per_host: expected a value from 1 to 64, got 0"),
        ("[digest]\ntime = '25:00'\n", r'digest\.time: expected a time of day "HH:MM"'),
        ("[digest]\ntimezone = 'Mars/Olympus'\n", r"digest\.timezone: expected an IANA time zone"),
        ("[email]\nsecurity = 'ssl'\n", r"email\.security: expected one of 'starttls', 'tls', 'none'"),
        ("[[feeds]]\nurl = 'ftp://a.example/f'\n", r"feeds\[0\]\.url: expected an http:// or https:// URL"),
        ("[[feeds]]\nname = 'no url'\n", r"feeds\[0\]\.url: this key is required"),
        ("[[feeds]]\nurl = 'https://a.example/f'\ninterval = '1m'\n", r"feeds\[0\]\.interval: expected a duration from 5m to 1d"),
        (
            "[[feeds]]\nurl = 'https://a.example/f'\n[[feeds]]\nurl = 'https://a.example/f'\n",
            r"feeds\[1\]\.url: 'https://a\.example/f' appears twice",
        ),
        (
            "[[feeds]]\nurl = 'HTTPS://A.example/f#top'\n[[feeds]]\nurl = 'https://a.example/f'\n",
            r"feeds\[1\]\.url: 'https://a\.example/f' appears twice",
        ),
        ("[[storylines]]\nid = 'x'\ntitle = 'x'\naliases = [['DPRK', ' ']]\n", r"storylines\[0\]\.aliases: expected groups of 2"),
        ("[[feeds]]\nurl = 'ftp://me:pa/ss@a.example/f'\n", r"got 'ftp://me:\*\*\*\*@a\.example/f'"),
        ("[[storylines]]\nid = 'Bad Id'\ntitle = 'x'\n", r"storylines\[0\]\.id: expected lowercase letters"),
        ("[fetch]\ninterval = '2d'\n", r"fetch\.interval: expected a duration between fetch\.min_interval"),
        ("[email]\nenabled = true\nsmtp_host = 'mail.example'\nfrom = 'a@example.org'\n", r"email\.to: required"),
    ],
)
def test_bad_values_are_errors(write_config: WriteConfig, toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write_config(toml))


def test_invalid_toml_reports_the_line(write_config: WriteConfig) -> None:
    path = write_config("[storage]\npath = 'ok.db'\n\n[fetch\ntimeout = 3\n")
    with pytest.raises(ConfigError, match=r"invalid TOML: .*line 4") as err:
        load_settings(path)
    assert str(path) in str(err.value)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found: .*nowhere\.toml"):
        load_settings(tmp_path / "nowhere.toml")


EMAIL = """
[email]
enabled = true
smtp_host = "mail.example.org"
username = "digest"
password_env = "SW_TEST_SMTP_PASSWORD"
from = "watch@example.org"
to = ["me@example.org"]
"""


def test_missing_secret_variable_is_an_error(write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SW_TEST_SMTP_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match=r"missing secret: .*environment variable SW_TEST_SMTP_PASSWORD"):
        load_settings(write_config(EMAIL))


def test_secret_comes_from_the_environment_or_a_file(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SW_TEST_SMTP_PASSWORD", "s3cret-from-env")
    assert load_settings(write_config(EMAIL)).email.password == "s3cret-from-env"

    monkeypatch.delenv("SW_TEST_SMTP_PASSWORD")
    (tmp_path / "pw").write_text("s3cret-from-file\n")
    settings = load_settings(write_config(EMAIL + 'password_file = "pw"\n'))
    assert settings.email.password == "s3cret-from-file"
    shown = dict(effective_settings(settings))
    assert shown["email.password"] == "********"
    assert "s3cret" not in repr(shown)


def test_unreadable_password_file_is_an_error(write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SW_TEST_SMTP_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match=r"email\.password_file: cannot read"):
        load_settings(write_config(EMAIL + 'password_file = "missing-pw"\n'))


def test_config_path_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORYWATCH_CONFIG", raising=False)
    assert config_path(None) == Path("config/storywatch.toml")
    monkeypatch.setenv("STORYWATCH_CONFIG", "/etc/sw.toml")
    assert config_path(None) == Path("/etc/sw.toml")
    assert config_path("given.toml") == Path("given.toml")


def test_config_check_prints_settings_with_secrets_masked(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SW_TEST_SMTP_PASSWORD", "hunter2-secret")
    result = Cli(write_config(EMAIL))("config", "check")
    assert re.search(r'^email\.smtp_host += "mail\.example\.org"$', result.output, re.M)
    assert re.search(r"^email\.password += \*{8}$", result.output, re.M)
    assert "hunter2" not in result.output


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[storage]\npaht = 1\n", "storage.paht: unknown key"),
        ("[fetch\n", "invalid TOML"),
        ("[fetch]\ntimeout = 'x'\n", "fetch.timeout: expected a number"),
        # Values past what the worker can compute with were tracebacks at start or mid-cycle.
        ('[fetch]\nmax_interval = "99999999999d"\n', "fetch.max_interval: expected a duration"),
        ("[fetch]\ninterval = 99999999999999999\n", "fetch.interval: expected a duration"),
        ("[fetch]\nmax_body_mib = inf\n", "fetch.max_body_mib: expected a number, got inf"),
        ("[fetch]\ntimeout = nan\n", "fetch.timeout: expected a number, got nan"),
        ("[storage]\nretention_days = 9223372036854775807\n", "storage.retention_days: expected a value from 0 to"),
        ("[storage]\nbusy_timeout = 1e300\n", "storage.busy_timeout: expected a value from 1 to"),
        ('[[feeds]]\nurl = "http://[::1/feed"\n', "feeds[0].url: expected an http:// or https:// URL"),
        ('[[feeds]]\nurl = "http://a.example:99999/feed"\n', "feeds[0].url: expected an http:// or https:// URL"),
        # A line break in a header value made every send fail after the claim: "unconfirmed" for ever.
        ('[email]\nsubject_prefix = "[sw]\\r\\nBcc: x@evil.example"\n', "email.subject_prefix: expected one line of text"),
        ('[email]\nto = ["a@b.example", "c@d.example\\nBcc: x@evil.example"]\n', "email.to: expected one line of text"),
        ('[email]\nfrom = "sw@b.example\\u2028"\n', "email.from: expected one line of text"),
    ],
)
def test_cli_reports_config_errors_in_one_line(write_config: WriteConfig, toml: str, needle: str) -> None:
    result = Cli(write_config(toml))("status", ok=False)
    assert result.exit_code == 1
    assert needle in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_config_init_writes_the_shipped_default_and_never_replaces_a_users_file(tmp_path: Path) -> None:
    target = tmp_path / "config" / "storywatch.toml"
    result = Cli(target)("config", "init")
    assert f"Wrote {target}" in result.output
    written = target.read_text(encoding="utf-8")
    assert written == default_config_for(target.parent)
    target.write_text("# mine\n[storage]\npath = 'mine.db'\n", encoding="utf-8")
    refused = Cli(target)("config", "init", ok=False)
    assert refused.exit_code == 1 and "exists already" in refused.output
    assert target.read_text(encoding="utf-8").startswith("# mine")
    Cli(target)("config", "init", "--force")
    assert target.read_text(encoding="utf-8") == written


def test_config_init_in_the_projects_config_folder_is_the_shipped_file_verbatim() -> None:
    assert default_config_for(PROJECT / "config") == DEFAULT_TEMPLATE.read_text(encoding="utf-8")


def test_a_config_written_anywhere_reads_the_shipped_seeds_and_keeps_its_data_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "deeper" / "my.toml"
    Cli(target)("config", "init")
    settings = load_settings(target)
    assert settings.storage.path == target.parent / "var" / "storywatch.db"
    assert settings.digest.output_dir == target.parent / "digests"
    assert settings.seeds.path == SEEDS
    seeds = [Path(seed) for storyline in settings.storylines for seed in storyline.seeds]
    assert seeds and all(seed.is_file() and seed.parent == SEEDS for seed in seeds)
    Cli(target)("config", "check")
    Cli(target)("init")
    assert (target.parent / "var" / "storywatch.db").is_file()


def test_a_test_never_sees_the_users_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's guard (conftest.no_user_config): without --config, no config is found."""
    assert not config_path(None).exists() and "no-user-config" in os.environ["STORYWATCH_CONFIG"]


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('[seeds]\npath = "no-such-folder"\n', "seed folder not found"),
        ('[[storylines]]\nid = "a"\ntitle = "A"\nseeds = ["missing.txt"]\n', "storyline a: seed file not found"),
    ],
)
def test_config_check_fails_on_seeds_that_init_could_not_read(write_config: WriteConfig, toml: str, needle: str) -> None:
    """`config check` said OK to a missing seed folder; `init` then failed on it."""
    config = write_config(toml)
    checked = Cli(config)("config", "check", ok=False)
    assert checked.exit_code == 1 and needle in checked.output and ": OK" not in checked.output
    assert needle in Cli(config)("init", ok=False).output


def test_hebrew_and_arabic_marks_are_text(write_config: WriteConfig) -> None:
    settings = load_settings(write_config("[[feeds]]\nurl = 'https://a.example/f'\nname = 'חדשות\u200f ישראל'\n"))
    assert settings.feeds[0].name == "חדשות\u200f ישראל"


def test_the_tracking_defaults_are_the_trackers() -> None:
    assert (TrackingSettings().threshold, TrackingSettings().adapt) == (TrackerConfig().threshold, TrackerConfig().adapt)


def test_seed_paths_are_the_same_whichever_way_the_config_file_is_named(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """They are stored with the storylines: a relative --config must not make them another definition."""
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "a.txt").write_text("A headline\n\nA text.\n", encoding="utf-8")
    config = tmp_path / "sw.toml"
    config.write_text('[[storylines]]\nid = "s"\ntitle = "S"\nseeds = ["seeds/a.txt"]\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    named_here = load_settings(Path("sw.toml")).storylines[0].seeds
    assert named_here == load_settings(config).storylines[0].seeds
    assert list(named_here) == [str(tmp_path / "seeds" / "a.txt")]
