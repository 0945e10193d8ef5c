"""Seed documents: the example articles a user starts from, read from a folder.

A seed folder holds plain-text files and a `seeds.toml` describing them (file, title,
publisher, published, language). Without seeds.toml, every *.txt file is a seed whose title is
its first non-empty line. A storyline may also name a seed file outside the folder; it is read
the same way (`read_seed_file`).
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path
from typing import Any

from worker.errors import SeedError
from worker.models import SeedDoc

DESCRIPTION = "seeds.toml"
_FIELDS = {"file", "title", "publisher", "published", "language", "note"}


def read_seed_folder(folder: Path) -> list[SeedDoc]:
    """Every seed document in `folder`, in file-name order."""
    if not folder.is_dir():
        raise SeedError(f"seed folder not found: {folder}", hint="check [seeds] path in the config")
    description = folder / DESCRIPTION
    if not description.exists():
        return [read_seed_file(path) for path in sorted(folder.glob("*.txt"))]
    entries = _read_description(description)
    return sorted((_seed_from_entry(folder, description, e, i) for i, e in enumerate(entries)),
                  key=lambda doc: doc.path.name)


def read_seed_file(path: Path, described: SeedDoc | None = None) -> SeedDoc:
    """A seed file with no description: its first non-empty line is its title, and the first
    date written in its head (`written_date`) its publication date; else it is undated."""
    text = _read_text(path)
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not first_line:
        raise SeedError(f"seed file is empty: {path}")
    return SeedDoc(path=path, title=first_line, text=text, publisher="", published=written_date(text), language="")


def read_storyline_seed(storyline_id: str, path: Path) -> SeedDoc:
    """A seed file a storyline names, as its folder's seeds.toml describes it if it does (title,
    publisher, date: as the seed folder loads it); an error says which storyline."""
    try:
        description = path.parent / DESCRIPTION
        if description.exists():  # its entry alone is read, not the folder's other texts
            for index, entry in enumerate(_read_description(description)):
                if isinstance(entry, dict) and (path.parent / str(entry.get("file"))).resolve() == path.resolve():
                    return _seed_from_entry(path.parent, description, entry, index)
        return read_seed_file(path)
    except SeedError as exc:
        raise SeedError(f"storyline {storyline_id}: {exc.message}", hint=exc.hint) from None


HEAD_LINES = 6  # a saved article's head: headline, byline, date line, the first paragraphs
_MONTHS = {m: n for n, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
     ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"),
     ("nov", "november"), ("dec", "december")], 1) for m in names}
_MONTH = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DATES = (
    (re.compile(r"\b((?:19|20)\d\d)-(\d\d)-(\d\d)\b"), ("year", "month", "day")),
    (re.compile(rf"\b{_MONTH}\s+(\d{{1,2}}),?\s+((?:19|20)\d\d)\b", re.I), ("month", "day", "year")),
    (re.compile(rf"\b(\d{{1,2}})\s+{_MONTH}\s+((?:19|20)\d\d)\b", re.I), ("day", "month", "year")),
)


def written_date(text: str, today: dt.date | None = None) -> dt.date | None:
    """The first full date (2024-04-11, April 11, 2024, 11 April 2024) in the head of a text, as
    a saved article carries its date line; None if there is none, or it is not a real past day
    (a file seed with no date must not claim one: it would move its storyline's start)."""
    latest = (today or dt.date.today()) + dt.timedelta(days=1)
    for line in [line for line in text.splitlines() if line.strip()][:HEAD_LINES]:
        found = sorted((m.start(), m, order) for pattern, order in _DATES for m in pattern.finditer(line))
        for _, match, order in found:
            date = _date_of(dict(zip(order, match.groups())))
            if date is not None and date <= latest:
                return date
    return None


def _date_of(parts: dict[str, str]) -> dt.date | None:
    month = parts["month"]
    try:
        return dt.date(int(parts["year"]), int(month) if month.isdigit() else _MONTHS[month.lower()], int(parts["day"]))
    except ValueError:  # 2024-02-30
        return None


def _read_description(path: Path) -> list[dict[str, Any]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SeedError(f"{path}: invalid TOML: {exc}") from None
    entries = data.get("seeds")
    if set(data) - {"seeds"} or not isinstance(entries, list):
        raise SeedError(f"{path}: expected only [[seeds]] tables")
    return entries


def _seed_from_entry(folder: Path, source: Path, entry: Any, index: int) -> SeedDoc:
    where = f"{source}: seeds[{index}]"
    if not isinstance(entry, dict):
        raise SeedError(f"{where}: expected a table")
    if unknown := set(entry) - _FIELDS:
        raise SeedError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    for key in ("file", "title"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise SeedError(f"{where}.{key}: expected a non-empty string")
    published = entry.get("published")
    if isinstance(published, str):
        try:
            published = dt.date.fromisoformat(published)
        except ValueError:
            raise SeedError(f"{where}.published: expected a date YYYY-MM-DD, got {published!r}") from None
    if published is not None and not isinstance(published, dt.date):
        raise SeedError(f"{where}.published: expected a date YYYY-MM-DD")
    path = folder / entry["file"]
    return SeedDoc(
        path=path,
        title=entry["title"].strip(),
        text=_read_text(path),
        publisher=str(entry.get("publisher", "")),
        published=published,
        language=str(entry.get("language", "")),
    )


MAX_SEED_BYTES = 4 * 1024 * 1024  # an article is far smaller; /dev/zero is endless


def _read_text(path: Path) -> str:
    if path.exists() and not path.is_file():  # a FIFO would wait for a writer for ever
        raise SeedError(f"seed is not a regular file: {path}")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SEED_BYTES + 1)
        if len(data) > MAX_SEED_BYTES:
            raise SeedError(f"seed file is larger than {MAX_SEED_BYTES // 2**20} MiB, no article: {path}")
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as read_text() reads lines
    except FileNotFoundError:
        hint = f" (a stored item is given as #{path.name})" if path.name.isdigit() else ""
        raise SeedError(f"seed file not found: {path}{hint}") from None
    except UnicodeDecodeError:
        raise SeedError(f"seed file is not UTF-8 text: {path}") from None
    except OSError as exc:
        raise SeedError(f"cannot read seed file {path}: {exc.strerror}") from None
