"""Benchmarks: `make bench` (python -m bench) runs every bench/bench_*.py module.

Each module has `run(work: Path) -> list[Result]`. The runner prints one table and writes
bench/results.json. Targets are checked here, never in the test suite (the machine is shared
and noisy, so timings belong in benchmarks, not in pass/fail tests).
"""

from __future__ import annotations

import resource
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    name: str
    figure: float
    unit: str
    target: str  # e.g. ">= 5000", "<= 2.0", "" for a figure reported without a target
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if not self.target:
            return None
        op, value = self.target.split()
        bound = float(value)
        return self.figure >= bound if op == ">=" else self.figure <= bound


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
