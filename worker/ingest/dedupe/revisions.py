"""An edit's word diff, kept with the revision."""

from __future__ import annotations

import difflib


DIFF_LIMIT = 2000  # characters of diff kept per revision


def word_diff(old: str, new: str, context: int = 3) -> str:
    """A compact word diff: unchanged runs shortened to their edges, [-removed-] {+added+}."""
    a, b = old.split(), new.split()
    parts: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            run = a[i1:i2]
            parts.append(" ".join(run) if len(run) <= 2 * context else " ".join(run[:context]) + " … " + " ".join(run[-context:]))
            continue
        if i2 > i1:
            parts.append("[-" + " ".join(a[i1:i2]) + "-]")
        if j2 > j1:
            parts.append("{+" + " ".join(b[j1:j2]) + "+}")
    diff = " ".join(parts)
    return diff if len(diff) <= DIFF_LIMIT else diff[: DIFF_LIMIT - 1] + "…"
