"""The arrows of docs/architecture.md hold: a room that is a package imports only from the rooms
below it. Read from the source (every `import`, type-only ones too), so a new import that points
up fails here before it tangles the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parent.parent / "worker"
BASE = {"worker", "worker.errors", "worker.clock", "worker.safetext", "worker.localdates", "worker.languages",
        "worker.snapshot", "worker.polling", "worker.models"}
"""Modules every room may use: the package's version, errors, time, safe text, the data shapes."""
SOURCES = {"worker.sources"} | {f"worker.sources.{m.stem}" for m in (WORKER / "sources").glob("*.py")}

INGEST = {"worker.ingest", "worker.ingest.identity"}  # what the store uses of ingest: the storage keys

STORE = {"worker.store"} | {f"worker.store.{m.stem}" for m in (WORKER / "store").glob("*.py")}


def _package(name: str) -> set[str]:
    return {f"worker.{name}"} | {".".join(("worker", *p.relative_to(WORKER).with_suffix("").parts))
                                 for p in (WORKER / name).rglob("*.py") if p.stem != "__init__"}


FOLLOW = {"worker.storylines", "worker.saved_tracker", "worker.emerging", "worker.why"}
"""The follow room: the scorer fed from the store, suggestions, explanations (flat modules)."""

ROOMS = {"sources": BASE, "ingest": BASE | SOURCES, "tracking": BASE, "store": BASE | {"worker.config"} | INGEST,
         "follow": BASE | {"worker.config"} | _package("ingest") | _package("tracking") | STORE,
         "digest": BASE | {"worker.config", "worker.ingest.dedupe"} | STORE,
         "base": BASE}
"""Each room and what it may import besides itself (grows as rooms move in)."""

MODULES = {"follow": FOLLOW, "base": BASE - {"worker"}}
"""The rooms that are flat modules in worker/ rather than a package."""


def room_files(room: str) -> list[Path]:
    if room in MODULES:
        return sorted(WORKER / f"{name.split('.')[-1]}.py" for name in MODULES[room])
    return sorted((WORKER / room).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """The project modules a file imports (`from worker import store` counts as worker.store,
    `from worker import __version__` as worker)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "worker":
            modules = [f"{node.module}.{a.name}" for a in node.names if _is_module(f"{node.module}.{a.name}")]
            found.update(modules if len(modules) == len(node.names) else [*modules, node.module])
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "worker")
    return found


def _is_module(name: str) -> bool:
    path = WORKER.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or path.is_dir()


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_a_room_imports_only_from_below(room: str) -> None:
    allowed = ROOMS[room] | MODULES.get(room, set())
    wrong = {f"{path.name} imports {name}"
             for path in room_files(room)
             for name in imported(path)
             if name not in allowed and not name.startswith(f"worker.{room}.") and name != f"worker.{room}"}
    assert not wrong, sorted(wrong)


def test_the_rooms_are_packages_and_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    for room in ROOMS:
        assert all(path.exists() for path in room_files(room)) and room_files(room), room
        assert room in MODULES or (WORKER / room / "__init__.py").exists(), room
    upward = tmp_path / "upward.py"
    upward.write_text("from worker import store, errors\nfrom worker.sources import parse\nimport worker.pipeline\n")
    assert imported(upward) == {"worker.store", "worker.errors", "worker.sources.parse", "worker.pipeline"}


def test_the_commands_hold_no_queries() -> None:
    """The CLI is a thin layer: its commands call the library (views, manage, ...), never the store;
    only cli/base opens it for them."""
    calling = sorted(path.name for path in (WORKER / "cli").glob("*.py")
                     if path.name != "base.py" and "worker.store" in imported(path))
    assert not calling, calling
