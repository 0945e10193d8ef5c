"""Benchmarks: `make bench` (python -m bench) runs every bench/bench_*.py module.

Each module has `run(work: Path) -> list[Result]`. The runner prints one table and writes
bench/results.json. Targets are checked here, never in the test suite (the machine is shared
and noisy, so timings belong in benchmarks, not in pass/fail tests).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


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


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            kids += [int(k) for k in task.read_text().split()]
        except OSError:
            pass
    return kids


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class TreeRss:
    """Samples the resident memory of this process and its descendants (minus `exclude`)."""

    exclude: set[int] = field(default_factory=set)
    interval: float = 0.1
    peak_kib: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def total_kib(self) -> int:
        total, todo = 0, [os.getpid()]
        while todo:
            pid = todo.pop()
            if pid in self.exclude:
                continue
            total += _rss_kib(pid)
            todo += _children(pid)
        return total

    def __enter__(self) -> "TreeRss":
        def sample() -> None:
            while not self._stop.is_set():
                self.peak_kib = max(self.peak_kib, self.total_kib())
                time.sleep(self.interval)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024
