"""Resources: a simulated run (bench/bench_hostile.py: simulate_day, here 3 hours of cycles every
5 minutes, feeds appearing, changing, failing and recovering) leaks no file descriptor or
thread, keeps its memory flat and prunes the fetch log. The benchmark runs the full 24 hours."""

from __future__ import annotations

from pathlib import Path

from bench.bench_hostile import simulate_day


def test_three_simulated_hours_leak_nothing(tmp_path: Path) -> None:
    day = simulate_day(tmp_path, hours=3, feeds=20)
    assert day.cycles == 36 and day.items > 0 and day.errors_seen > 0  # failures happened, and recovered
    assert day.fds[1] <= day.fds[0], day.fds
    assert day.threads[1] <= day.threads[0], day.threads
    assert day.rss_curve_mib[-1] - day.rss_curve_mib[0] < 30, day.rss_curve_mib
    assert day.fetch_rows_after_prune <= 20 < day.fetch_rows  # after 31 days only the last cycle's rows remain
