"""The text copies are compared on: without clutter (page furniture) and a feed's boilerplate."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Clutter:
    """Lines that are page furniture, not article text: each pattern must match a whole line.

    The patterns are joined into one alternation: one regex call a line instead of one a pattern.
    """

    pattern: re.Pattern[str]

    @classmethod
    def compile(cls, patterns: Sequence[str]) -> Clutter:
        return cls(re.compile("|".join(f"(?:{p})" for p in patterns) or "(?!)", re.I))

    def matches(self, line: str) -> bool:
        return self.pattern.fullmatch(line) is not None


EDGE_LINES = (2, 3)  # the first 2 and last 3 lines of an item are where a site puts its furniture
BOILERPLATE_MIN_ITEMS = 3  # a line must open or close at least this many of a feed's items …
BOILERPLATE_SHARE = 0.3  # … and at least this share of them, so one repeated sentence is kept
_BOILERPLATE_KEEP = 50  # candidate lines remembered per feed (real boilerplate has the top counts)


@dataclass(frozen=True, slots=True)
class Boilerplate:
    """A feed's repeated header and footer lines, learned from its own items."""

    items: int = 0
    counts: tuple[tuple[str, int], ...] = ()

    @property
    def lines(self) -> frozenset[str]:
        needed = max(BOILERPLATE_MIN_ITEMS, BOILERPLATE_SHARE * self.items)
        return frozenset(line for line, n in self.counts if n >= needed)

    def learn(self, texts: Sequence[str]) -> Boilerplate:
        counts = Counter(dict(self.counts))
        for text in texts:
            counts.update(set(_edge_lines(text)))
        kept = tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:_BOILERPLATE_KEEP])
        return Boilerplate(self.items + len(texts), kept)

    def to_json(self) -> str:
        return json.dumps({"items": self.items, "counts": dict(self.counts)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | None) -> Boilerplate:
        data = json.loads(text or "{}")
        return cls(int(data.get("items", 0)), tuple((str(k), int(v)) for k, v in data.get("counts", {}).items()))


def _edge_lines(text: str) -> list[str]:
    lines = [line for line in text.split("\n") if line and len(line) <= 300]
    head, tail = EDGE_LINES
    return lines[:head] + lines[-tail:]


def match_text(text: str, clutter: Clutter, boilerplate: frozenset[str] = frozenset()) -> str:
    """The text that hashing and matching use: clutter and the feed's boilerplate left out."""
    kept = [line for line in text.split("\n") if line and line not in boilerplate and not clutter.matches(line)]
    return "\n".join(kept)
