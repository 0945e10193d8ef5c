"""Concurrency: the daemon polling while backfill, digest and poll run in other processes
(tests/hostile/concurrency.py): no "database is locked", nothing lost, nothing duplicated."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile.concurrency import concurrency_run


def _assert_clean(report: object) -> None:
    from tests.hostile.concurrency import ConcurrencyReport

    assert isinstance(report, ConcurrencyReport)
    assert report.failures == []
    assert report.locked == 0
    assert report.served > 0 and report.stored == report.served
    assert report.duplicated == 0 and report.lost == 0
    assert all(report.runs.get(role, 0) >= 1 for role in ("backfill", "digest", "poll")), report.runs


def test_daemon_beside_backfill_digest_and_poll_for_twenty_seconds(tmp_path: Path) -> None:
    _assert_clean(concurrency_run(tmp_path, feeds=60, seconds=20))


@pytest.mark.slow
def test_daemon_beside_backfill_digest_and_poll_for_three_minutes_on_500_feeds(tmp_path: Path) -> None:
    _assert_clean(concurrency_run(tmp_path, feeds=500, seconds=180))
