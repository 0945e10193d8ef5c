"""The README documents every command and every setting; this test fails when one is missing."""

from __future__ import annotations

import re

import pytest

from worker.config import SETTINGS
from worker.errors import ExitStatus
from tests.conftest import PROJECT, Cli
from tests.test_cli import all_commands

README = (PROJECT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("path", [path for path, _ in all_commands()])
def test_every_command_is_in_the_readme(path: str) -> None:
    assert f"storywatch {path}" in README, f"`storywatch {path}` is not documented in README.md"


@pytest.mark.parametrize("key", [info.key for info in SETTINGS])
def test_every_setting_is_in_the_readme(key: str) -> None:
    section, name = key.split(".")
    table = f"[[{section[:-2]}]]" if section.endswith("[]") else f"[{section}]"
    block = README.split(f"### `{table}`", 1)
    assert len(block) == 2, f"README.md has no '### `{table}`' section"
    section_text = block[1].split("\n### ", 1)[0]
    assert re.search(rf"^\| `{re.escape(name)}` \|", section_text, re.M), f"{key} is not documented in README.md"


def test_the_readme_names_exactly_two_setup_commands() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^make \w+", quick_start, re.M) == ["make run", "make test"]


@pytest.mark.parametrize("status", list(ExitStatus), ids=lambda s: s.name)
def test_every_exit_status_is_in_the_readme(status: ExitStatus) -> None:
    assert re.search(rf"^\| {int(status)} \| \S", README, re.M), f"exit status {int(status)} is not in README.md's table"


def readme_examples(command: str) -> list[list[str]]:
    """The output lines the README shows under each `$ storywatch COMMAND` of its examples."""
    found = []
    for block in re.findall(r"^```\n(.*?)^```", README, re.M | re.S):
        lines = block.splitlines()
        for n, line in enumerate(lines):
            if line == f"$ storywatch {command}":
                shown = []
                for out in lines[n + 1:]:
                    if out.startswith("$ "):
                        break
                    shown.append(out)
                found.append(shown)
    return found


def test_the_readme_shows_what_init_prints(run: Cli) -> None:
    """`storywatch init` in the README, run on the shipped config in a fresh folder: the same lines
    (the store's path aside; a new migration changes the schema it names: update the README)."""
    [shown] = readme_examples("init")
    printed = run("init").output.splitlines()
    printed[0] = re.sub(r"^Store: \S+", "Store: var/storywatch.db", printed[0])
    assert shown == printed
