"""Resources: a simulated run (bench/bench_hostile.py: simulate_day, here 3 hours of cycles every
5 minutes, feeds appearing, changing, failing and recovering) leaks no file descriptor or
thread, keeps its memory flat and prunes the fetch log. The benchmark runs the full 24 hours.

The run has a process of its own: descriptors and threads are counted per process, and in the
test process other tests' servers and threads may still be closing or opening theirs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = ("import dataclasses, json, sys\nfrom pathlib import Path\nfrom bench.bench_hostile import simulate_day\n"
       "print(json.dumps(dataclasses.asdict(simulate_day(Path(sys.argv[1]), hours=3, feeds=20))))\n")


def test_three_simulated_hours_leak_nothing(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", RUN, str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    day = json.loads(done.stdout.strip().splitlines()[-1])
    assert day["cycles"] == 36 and day["items"] > 0 and day["errors_seen"] > 0  # failures happened, and recovered
    assert day["fds"][1] <= day["fds"][0], (day["fds"], day["fds_new"])
    assert day["threads"][1] <= day["threads"][0], day["threads"]
    assert day["rss_curve_mib"][-1] - day["rss_curve_mib"][0] < 30, day["rss_curve_mib"]
    assert day["fetch_rows_after_prune"] <= 20 < day["fetch_rows"]  # after 31 days only the last cycle's rows remain
