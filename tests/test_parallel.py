"""The parsing processes: a task that hangs or kills its process fails alone; the others, in flight
or waiting for a worker, get their results. Real worker processes; the task functions are in
tests/pooltasks.py. No test asserts on wall time: waits are bounded (far above what they take)
and "in flight" is made certain by files the tasks create, not by sleeping."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests import pooltasks
from worker.errors import ParseError, StorywatchError
from worker.parallel import ProcessPool

BOUND = 60.0  # seconds: a wait that means a hung test if reached


def run_all(pool: ProcessPool, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Each call (task, *args) from a thread of its own, all at once: its result or its exception."""

    def one(call: tuple[Any, ...]) -> Any:
        try:
            return pool.run(call[0], *call[1:])
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as threads:
        return list(threads.map(one, calls))


def gone(pid: int) -> Callable[[], bool]:
    """Exited and reaped: a killed process shows as a zombie while its other threads (which
    still hold its pipe) are exiting."""
    return lambda: not Path(f"/proc/{pid}").exists()


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, "waited too long"
        time.sleep(0.02)


def test_a_task_that_hangs_fails_alone_and_the_others_in_flight_or_waiting_finish(tmp_path: Path) -> None:
    """12 tasks of 0.4 s take 4.8 s on the one free worker: when the hanging task's 4 s are up,
    some of them are running and some are waiting for a worker."""
    started = tmp_path / "hang-started"
    with closing(ProcessPool(2, timeout=4.0)) as pool, ThreadPoolExecutor(1) as thread:
        hanging = thread.submit(pool.run, pooltasks.hang, str(started))
        wait_for(started.exists)
        results = run_all(pool, [(pooltasks.sleep_then, 0.4, n) for n in range(12)])
        with pytest.raises(StorywatchError, match="longer than 4 s"):
            hanging.result(BOUND)
        assert results == list(range(12))
        assert pool.run(pooltasks.echo, 7)[0] == 7  # its worker was replaced


def test_a_task_waiting_behind_slow_ones_is_not_timed_out_for_the_wait() -> None:
    """10 tasks of 1 s on 2 workers: the last ones wait 4 s for a worker, more than the timeout;
    each runs 1 s."""
    with closing(ProcessPool(2, timeout=3.0)) as pool:
        assert run_all(pool, [(pooltasks.sleep_then, 1.0, n) for n in range(10)]) == list(range(10))


@pytest.mark.parametrize("task", [pooltasks.exit_abruptly, pooltasks.kill_self], ids=["os._exit", "SIGKILL"])
def test_a_task_that_kills_its_process_fails_alone(tmp_path: Path, task: Callable[[], None]) -> None:
    gate = tmp_path / "gate"
    starts = [tmp_path / f"started-{n}" for n in range(2)]
    with closing(ProcessPool(3, timeout=BOUND)) as pool, ThreadPoolExecutor(2) as threads:
        innocent = [threads.submit(pool.run, pooltasks.after_gate, str(gate), str(s), n) for n, s in enumerate(starts)]
        wait_for(lambda: all(s.exists() for s in starts))  # both running, in their own workers
        with pytest.raises(StorywatchError, match="process died"):
            pool.run(task)
        gate.touch()
        assert [future.result(BOUND) for future in innocent] == [0, 1]
        assert pool.run(pooltasks.echo, 7)[0] == 7


def test_a_worker_killed_while_idle_costs_no_task() -> None:
    with closing(ProcessPool(2, timeout=BOUND)) as pool:
        first = pool.run(pooltasks.pid)
        os.kill(first, signal.SIGKILL)
        wait_for(gone(first))
        second = pool.run(pooltasks.pid)  # its worker is found gone and replaced
        assert second != first


def test_a_tasks_own_error_reaches_its_caller_and_the_worker_lives_on() -> None:
    with closing(ProcessPool(2, timeout=BOUND)) as pool:
        worker = pool.run(pooltasks.pid)
        with pytest.raises(ParseError, match="not a feed: test"):
            pool.run(pooltasks.not_a_feed, "not a feed: test")
        with pytest.raises(ZeroDivisionError) as bug:
            pool.run(pooltasks.divide_by_zero)
        assert "divide_by_zero" in "".join(bug.value.__notes__)  # where it happened, for the log
        assert pool.run(pooltasks.pid) == worker


def test_workers_ignore_stop_signals_and_close_stops_them() -> None:
    pool = ProcessPool(2, timeout=BOUND)
    worker = pool.run(pooltasks.pid)
    os.kill(worker, signal.SIGINT)  # Ctrl-C reaches the whole process group: the parent decides
    os.kill(worker, signal.SIGTERM)
    assert pool.run(pooltasks.sleep_then, 0.2, 1) == 1
    assert pool.run(pooltasks.pid) == worker
    pool.close()
    wait_for(gone(worker))


def test_a_worker_busy_at_close_finishes_its_task_then_stops(tmp_path: Path) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    with closing(ProcessPool(2, timeout=BOUND)) as pool, ThreadPoolExecutor(1) as thread:
        busy = thread.submit(pool.run, pooltasks.after_gate, str(gate), str(started), 5)
        wait_for(started.exists)
        pool.close()
        gate.touch()
        assert busy.result(BOUND) == 5
        wait_for(gone(int(started.read_text())))
        assert pool.run(pooltasks.echo, 7)[0] == 7  # a closed pool starts workers again when asked


def test_one_process_runs_tasks_in_the_calling_thread_unless_kept_apart() -> None:
    assert ProcessPool(1).run(pooltasks.pid) == os.getpid()
    apart = ProcessPool(1, apart=True)
    try:
        worker = apart.run(pooltasks.pid)
        assert worker != os.getpid() and apart.run(pooltasks.pid) == worker  # one process, kept
    finally:
        apart.close()


def test_a_program_that_never_closes_its_pool_still_exits() -> None:
    """multiprocessing waits at exit for every child to end; workers that ignore SIGTERM would
    keep it waiting forever, so the pool kills them first."""
    script = ("from tests import pooltasks\nfrom worker.parallel import ProcessPool\n"
              "if __name__ == '__main__':\n    pool = ProcessPool(2)\n    print(pool.run(pooltasks.echo, 7)[0])\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=BOUND)
    assert (done.returncode, done.stdout) == (0, "7\n"), done.stderr


def test_a_parsing_process_imports_what_parsing_needs_and_not_the_writers_world() -> None:
    """A parsing process parses a feed without importing the store, the fetcher or the CLI
    (sqlite-utils, httpx, click: some 250 modules and 18 MiB a process)."""
    from tests.feedserver import rss
    from worker.models import Feed
    from worker.parsing import parse_entries

    body = rss([("g1", "A headline", "<p>A body of a few words.</p>")])
    with closing(ProcessPool(2)) as pool:
        parsed = pool.run(parse_entries, Feed(id=1, url="http://127.0.0.1/f"), body, "application/rss+xml",
                          "http://127.0.0.1/f", dt.datetime(2024, 12, 16, tzinfo=dt.timezone.utc), (), b"key")
        assert [i.title for i in parsed.items] == ["A headline"]
        writer_world = ["sqlite_utils", "httpx", "click", "loguru", "worker.pipeline", "worker.store", "worker.cli"]
        assert pool.run(pooltasks.modules_loaded, writer_world) == []
