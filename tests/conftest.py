"""Shared fixtures: real files, a real SQLite store, the real CLI; no mocks."""

from __future__ import annotations

import datetime as dt
import shutil
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from loguru import logger

from worker.cli import cli

PROJECT = Path(__file__).resolve().parent.parent
SEEDS = PROJECT / "seeds"
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a TOML config into a fresh folder and return its path."""

    def write(text: str, name: str = "storywatch.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def seeded_config(tmp_path: Path, write_config: Callable[[str], Path]) -> Path:
    """A config like the default one: the project's seeds and its three storylines, no feeds."""
    shutil.copytree(SEEDS, tmp_path / "seeds")
    default = (PROJECT / "config" / "storywatch.toml").read_text(encoding="utf-8")
    default = default.replace('"../var/storywatch.db"', '"var/storywatch.db"')
    default = default.replace('"../seeds', '"seeds').replace('"../digests"', '"digests"')
    return write_config(default)


@dataclass
class Cli:
    """Runs `storywatch --config CONFIG ...` in-process, as a user would from a shell."""

    config: Path

    def __call__(self, *args: str, ok: bool = True) -> Result:
        result = CliRunner().invoke(cli, ["--config", str(self.config), *args], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result


@pytest.fixture
def run(seeded_config: Path) -> Cli:
    return Cli(seeded_config)


@pytest.fixture
def log_records() -> Iterator[list[dict[str, object]]]:
    """Every loguru record logged during the test, with its level, message and named fields."""
    records: list[dict[str, object]] = []
    sink_id = logger.add(
        lambda message: records.append(
            {"level": message.record["level"].name, "message": message.record["message"], **message.record["extra"]}
        ),
        level="DEBUG",
    )
    yield records
    logger.remove(sink_id)
