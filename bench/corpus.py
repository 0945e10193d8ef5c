"""Synthetic but realistic article text for benchmarks: Zipf-distributed words, fixed seed."""

from __future__ import annotations

import itertools
import random
import string

_rng = random.Random(20261123)
VOCABULARY = [
    "".join(_rng.choice(string.ascii_lowercase) for _ in range(_rng.randint(2, 11))) for _ in range(20_000)
]
_CUMULATIVE = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(VOCABULARY))))


def words(rng: random.Random, n: int) -> list[str]:
    return rng.choices(VOCABULARY, cum_weights=_CUMULATIVE, k=n)


def article(rng: random.Random, size: int = 2048) -> tuple[str, str]:
    """A (title, text) pair; text is about `size` characters in paragraphs of sentences."""
    title = " ".join(words(rng, 10)).capitalize()
    paragraphs, length = [], 0
    while length < size:
        sentence = " ".join(words(rng, rng.randint(12, 28))).capitalize() + "."
        paragraphs.append(sentence)
        length += len(sentence) + 1
    return title, "\n\n".join(" ".join(paragraphs[i : i + 3]) for i in range(0, len(paragraphs), 3))
