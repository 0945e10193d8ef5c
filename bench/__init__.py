"""Benchmarks: `make bench` (python -m bench) runs every bench/bench_*.py module.

Each module has `run(work: Path) -> list[Result]`. The runner prints one table and writes
bench/results.json. Targets are checked here, never in the test suite (the machine is shared
and noisy, so timings belong in benchmarks, not in pass/fail tests).
"""

from __future__ import annotations

import os
import re
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


def config_without_feeds(folder: Path) -> str:
    """The default config for a file in `folder` (its storylines and seeds), with no [[feeds]]."""
    from worker.config import default_config_for

    return re.sub(r"(?ms)^\[\[feeds\]\].*?(?=^\[(?!\[feeds))", "", default_config_for(folder))


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


def _field_kib(path: str, name: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _rss_kib(pid: int) -> int:
    return _field_kib(f"/proc/{pid}/status", "VmRSS:")


def _pss_kib(pid: int) -> int:
    """Proportional set size: pages shared between the processes (the parsing processes share
    their imports with the forkserver) count once, divided among them, instead of once each."""
    return _field_kib(f"/proc/{pid}/smaps_rollup", "Pss:")


@dataclass
class TreeRss:
    """Samples the resident memory (RSS, and PSS) of this process and its descendants (minus
    `exclude`)."""

    exclude: set[int] = field(default_factory=set)
    interval: float = 0.1
    peak_kib: int = 0
    peak_pss_kib: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def tree(self) -> list[int]:
        pids, todo = [], [os.getpid()]
        while todo:
            pid = todo.pop()
            if pid not in self.exclude:
                pids.append(pid)
                todo += _children(pid)
        return pids

    def total_kib(self) -> int:
        return sum(_rss_kib(pid) for pid in self.tree())

    def __enter__(self) -> "TreeRss":
        def sample() -> None:
            while not self._stop.is_set():
                pids = self.tree()
                self.peak_kib = max(self.peak_kib, sum(_rss_kib(pid) for pid in pids))
                self.peak_pss_kib = max(self.peak_pss_kib, sum(_pss_kib(pid) for pid in pids))
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

    @property
    def peak_pss_mib(self) -> float:
        return self.peak_pss_kib / 1024
