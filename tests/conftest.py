"""Shared fixtures: real files, a real SQLite store, the real CLI; no mocks."""

from __future__ import annotations

import datetime as dt
import random
import shutil
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from loguru import logger
from sqlite_utils import Database

from worker import pipeline, startup, store
from worker.cycle import CycleReport, poll_feeds
from worker.cli import cli
from worker.config import default_config_text, load_settings
from worker.pipeline import Runtime
from tests.feedserver import FeedServer

PROJECT = Path(__file__).resolve().parent.parent
SEEDS = PROJECT / "seeds"
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the user's config or home: a command run without --config (in-process or
    as a subprocess, which inherits the environment) finds no config instead of
    ./config/storywatch.toml, and HOME is an empty folder. The shell's COLUMNS is not used."""
    monkeypatch.setenv("STORYWATCH_CONFIG", str(tmp_path / "no-user-config" / "storywatch.toml"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("COLUMNS", raising=False)  # tables are as wide as their text unless a test sets it


@pytest.fixture(autouse=True)
def reproducible_store_secrets(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store made in a test's process gets a secret drawn from the test's name, not a random
    one: the secret keys the document-frequency buckets, so a rare collision of two features
    under one random secret could move an item's weights at a tie (one run in 60 of the
    suggestion test lost a term so). Stores made in one test still differ from each other."""
    draws = random.Random(request.node.nodeid)
    monkeypatch.setattr("secrets.token_hex", lambda n=32: draws.randbytes(n).hex())


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
    default = default_config_text()  # the shipped default: never the user's config/storywatch.toml
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


# ── a feed server and a worker polling it ──────────────────────────────────────────────────


@dataclass
class Clock:
    now: dt.datetime = NOW

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


@dataclass
class World:
    server: FeedServer
    config: Path
    clock: Clock = field(default_factory=Clock)
    _rt: Runtime | None = None

    @property
    def rt(self) -> Runtime:
        if self._rt is None:
            settings = load_settings(self.config)
            db = store.open_store(settings.storage.path)
            startup.initialize(db, settings, self.clock())
            self._rt = pipeline.open_runtime(db, settings, clock=self.clock)
        return self._rt

    @property
    def db(self) -> Database:
        return self.rt.db

    def poll(self, **kwargs: object) -> CycleReport:
        return poll_feeds(self.rt, **kwargs)  # type: ignore[arg-type]

    def feed(self, path: str) -> dict[str, object]:
        rows = list(self.db.query("SELECT * FROM feeds WHERE config_url = ? OR url = ?", [self.server.url(path)] * 2))
        assert len(rows) == 1
        return rows[0]

    def items(self) -> list[dict[str, object]]:
        return list(self.db.query("SELECT * FROM items ORDER BY id"))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    servers: list[FeedServer] = []

    def make(*paths: str, extra: str = "") -> World:
        server = FeedServer().__enter__()
        servers.append(server)
        feeds = "".join(f'\n[[feeds]]\nurl = "{server.url(p)}"\nname = "feed {p}"\n' for p in paths)
        folder = tmp_path / f"world{len(worlds)}" if worlds else tmp_path  # a second world: its own store
        folder.mkdir(exist_ok=True)
        config = folder / "storywatch.toml"
        config.write_text(textwrap.dedent(f'[storage]\npath = "sw.db"\n[fetch]\ntimeout = 3.0\nparse_processes = 1\n{extra}\n{feeds}'))
        worlds.append(World(server, config))
        return worlds[-1]

    worlds: list[World] = []
    yield make
    for w in worlds:
        if w._rt is not None:
            w._rt.close()
    for server in servers:
        server.__exit__()


