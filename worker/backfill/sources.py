"""A backfill's sources: files, folders, OPML, JSON Lines, feed URLs and their archives."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from worker import store
from worker.ingest import seeds
from worker.sources import opml
from worker.clock import utc_now
from worker.config import Settings, is_file_seed
from worker.errors import StorywatchError
from worker.backfill.model import JSONL_SUFFIXES, Source


SEEDS_HINT = ("seed documents are loaded by `storywatch init` from [seeds] path in the config; backfill loads feed "
              "URLs, feed files or folders of them, OPML and JSON Lines files")


@dataclass(frozen=True, slots=True)
class SeedPaths:
    """Where the seed documents are: the [seeds] folder and the storylines' seed files. Any folder
    with a seeds.toml is a seed folder too (a copy of the shipped one, another install's)."""

    folder: Path | None = None
    files: frozenset[Path] = frozenset()

    @staticmethod
    def of(settings: Settings) -> SeedPaths:
        folder = settings.seeds.path.resolve() if settings.seeds.path else None
        files = frozenset(Path(seed).resolve() for s in settings.storylines for seed in s.seeds if is_file_seed(seed))
        return SeedPaths(folder, files)

    def is_folder(self, path: Path) -> bool:
        return path.resolve() == self.folder or (path / seeds.DESCRIPTION).is_file()

    def what(self, path: Path) -> str | None:
        """What seed documents `path` is or holds, if it is any."""
        resolved = path.resolve()
        if path.is_dir():
            if resolved == self.folder:
                return "the seed folder ([seeds] path)"
            if self.is_folder(path):
                return f"a seed folder (it has a {seeds.DESCRIPTION})"
        if self.folder is not None and self.folder in resolved.parents:
            return "in the seed folder ([seeds] path)"
        if path.is_file() and (resolved in self.files or path.name == seeds.DESCRIPTION or self.is_folder(resolved.parent)):
            return "a seed document"
        return None


def expand(locations: Sequence[str], db: Database, *, all_feeds: bool = False, seed_paths: SeedPaths = SeedPaths()
           ) -> tuple[list[Source], dict[str, str]]:
    """The sources named on the command line (folders walked, OPML files opened) and the
    ones that cannot be read, with why. Naming seed documents is an error: they are no feed
    items, and `init` loads them (a seed folder found inside a folder is a failed source)."""
    sources: list[Source] = []
    failed: dict[str, str] = {}
    known = store.feeds_by_url(db)
    if all_feeds:
        sources += [Source("url", f.url, f) for f in store.feeds_to_poll(db, utc_now(), force=True)]
    for location in locations:
        if location.startswith(("http://", "https://")):
            sources.append(Source("url", location, known.get(location)))
            continue
        path = Path(location)
        if (what := seed_paths.what(path)) is not None:
            raise StorywatchError(f"{location} is {what}, not a feed: backfill does not load seed documents",
                                  hint=SEEDS_HINT)
        if path.is_dir():
            sources += _walk(path, seed_paths, failed)
        elif path.is_file() and path.suffix.lower() == ".opml":
            try:
                sources += [Source("url", f.url, known.get(f.url)) for f in opml.read_opml(path)]
            except StorywatchError as exc:
                failed[location] = exc.message
        elif path.is_file():
            sources.append(_file_source(path))
        else:
            failed[location] = "no such file or folder"
    unique = list({(s.kind, s.location): s for s in sources}.values())
    return unique, failed


def _walk(top: Path, seed_paths: SeedPaths, failed: dict[str, str]) -> list[Source]:
    """The files in a folder and its subfolders, in path order, hidden ones left out. A folder
    that cannot be listed fails as a source (it was skipped in silence), and so does a seed
    folder in it, saying why (its text files would each fail as "not a feed")."""
    def unreadable(exc: OSError) -> None:
        failed[str(exc.filename)] = f"cannot read the folder: {exc.strerror}"

    found: list[Path] = []
    for root, folders, names in os.walk(top, onerror=unreadable):
        folder = Path(root)
        if folder != top and seed_paths.is_folder(folder):
            failed[root] = "a seed folder, not feeds: `storywatch init` loads seed documents, from [seeds] path"
            folders.clear()
            continue
        found += [folder / name for name in names if not name.startswith(".")]
    return [_file_source(p) for p in sorted(found) if p.is_file()]


def _file_source(path: Path) -> Source:
    kind = "jsonl" if path.name.lower().endswith(JSONL_SUFFIXES) else "file"
    return Source(kind, str(path.resolve()))
