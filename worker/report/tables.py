"""Tables that fit the terminal (East-Asian width aware, optional columns dropped before names are
cut), and the other shapes of a listing: CSV (formula-safe) and JSON."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import shutil
import sys
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any


def when(value: dt.datetime | None, never: str = "never") -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else never


def terminal_width() -> int | None:
    """The width tables are fitted to: $COLUMNS when set, else the terminal's width when stdout is
    a terminal; None (no limit) when the output goes to a pipe or a file, which get whole lines."""
    if not os.environ.get("COLUMNS", "").strip() and not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def _cell_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def cells(text: str) -> int:
    """The columns `text` takes on a terminal: a wide or fullwidth character (CJK) 2, a combining
    mark or a format character 0, any other 1."""
    return sum(_cell_width(char) for char in text)


def cut(text: str, width: int) -> str:
    """`text` in at most `width` terminal columns, ended with "…" where it was cut."""
    if cells(text) <= width:
        return text
    kept, used = [], 0
    for char in text:
        used += _cell_width(char)
        if used > width - 1:
            break
        kept.append(char)
    return "".join(kept) + "…" if width > 0 else ""


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ", *,
          flexible: Collection[str] = (), optional: Sequence[str] = (), width: int | None = None) -> str:
    """Left-aligned columns measured in terminal columns (a CJK character takes two); the last
    column is not padded. Given a `width`, the widest of the `flexible` columns (named by their
    header: titles, names, addresses, errors) are narrowed, their text cut with "…", until every
    line fits; the other columns (ids, dates, counts) are never cut. Where a flexible column
    would be cut below NARROWEST, the `optional` columns are left out, in their order, first."""
    grid = [[str(c) for c in row] for row in [headers, *rows]]
    if width is not None:
        grid, widths = _fitting_columns(grid, flexible, optional, width - cells(indent))
    else:
        widths = [max(cells(row[i]) for row in grid) for i in range(len(headers))]
    lines = []
    for row in grid:
        shown = [cut(c, w) for c, w in zip(row, widths)]
        padded = [c + " " * (w - cells(c)) for c, w in zip(shown[:-1], widths)] + shown[-1:]
        lines.append((indent + "  ".join(padded)).rstrip())
    return "\n".join(lines)


NARROWEST = 8  # a name cut shorter ("Albi ma…") says little: a column is left out first


def _fitting_columns(grid: list[list[str]], flexible: Collection[str], optional: Sequence[str],
                     room: int) -> tuple[list[list[str]], list[int]]:
    """The grid's columns that fit `room` (see table), and their widths."""
    for leave_out in range(len(optional) + 1):
        kept = [i for i, h in enumerate(grid[0]) if h not in optional[:leave_out]]
        narrow = [[row[i] for i in kept] for row in grid]
        natural = [max(cells(row[i]) for row in narrow) for i in range(len(kept))]
        flex = [i for i, h in enumerate(narrow[0]) if h in flexible]
        widths = _fitted(natural, flex, room - 2 * (len(kept) - 1))
        if all(widths[i] >= min(NARROWEST, natural[i]) for i in flex):
            break
    return narrow, widths


def _fitted(widths: Sequence[int], flexible: Sequence[int], room: int) -> list[int]:
    """Column widths that add up to `room` at most: the widest flexible column narrowed, one
    column at a time (down to 1, "…"), while the line is too wide."""
    fitted = list(widths)
    while sum(fitted) > room and flexible:
        widest = max(flexible, key=lambda i: fitted[i])
        if fitted[widest] <= 1:
            break
        fitted[widest] -= 1
    return fitted


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A listing as CSV: a header row of `columns` (its JSON keys), then one row per object: null
    is an empty cell, true and false are written as in JSON, a list or an object as compact JSON.
    A text that starts with = + - @ (a feed's title, say) gets a leading ' so that a spreadsheet
    shows it rather than running it as a formula."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_csv_cell(row.get(column)) for column in columns] for row in rows)
    return out.getvalue()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, str) and value.lstrip("\ufeff\u200b ")[:1] in _FORMULA_STARTS:
        return "'" + value
    return str(value)


_FORMULA_STARTS = frozenset("=+-@\t\r")


def to_json(value: Any) -> str:
    """What --json prints: indented, the text as it is (not \\u-escaped)."""
    return json.dumps(value, ensure_ascii=False, indent=2)

def short_text(text: str, width: int) -> str:
    return cut(text, width)

WIDTH = 100  # terminal lines are wrapped at this width
