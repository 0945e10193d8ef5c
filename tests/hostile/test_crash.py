"""Crash safety: real worker processes killed with SIGKILL at seeded random moments, restarted
each time, then every invariant of tests/hostile/crash.py checked (see its docstring)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile.crash import crash_run


def test_killed_eight_times_nothing_is_lost_or_duplicated(tmp_path: Path) -> None:
    report = crash_run(tmp_path, kills=8, seed=9)
    assert report.violations == []
    assert report.stored == report.served > 0 and report.backfilled == 720 and report.revisions > 0
    assert report.digests_sent <= 1


@pytest.mark.slow
def test_killed_thirty_times_nothing_is_lost_or_duplicated(tmp_path: Path) -> None:
    report = crash_run(tmp_path, kills=30, seed=30, feeds=16, history=(10, 200))
    assert report.violations == []
    assert report.stored == report.served > 0 and report.backfilled == 2000 and report.revisions > 0
    assert report.digests_sent <= 1
