"""Parallel parsing: CPU-heavy work runs in worker processes, so threads only wait on I/O.

Parsing feeds is CPU-bound Python; run in threads it holds the GIL against the one thread that
writes to SQLite (measured: the writer fell from 6k to 2k items/s). A `ProcessPool` runs such
tasks in `processes` workers (forkserver, so a parent with threads forks safely), or in the
calling thread when `processes` is 1. Workers ignore SIGINT and SIGTERM: the parent decides
when they stop, so Ctrl-C or a service stop never turns feeds in flight into errors.

A task that runs longer than `timeout`, or a worker that dies (a hostile feed, out of memory),
costs that one task: the pool is rebuilt and the caller gets a `StorywatchError`.

If the parent is killed (SIGKILL), the workers would wait on their task queue forever (they
hold its write end themselves) and keep the forkserver alive with them; each worker therefore
watches its parent's pid and exits within a second of it disappearing.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from worker.errors import StorywatchError

T = TypeVar("T")
PRELOAD = ["worker.parse", "worker.normalize", "worker.track"]


def default_processes() -> int:
    return max(1, os.cpu_count() or 1)


def _start_worker(parent_pid: int) -> None:
    """In each worker: ignore stop signals, and exit when the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    while True:
        time.sleep(1.0)
        if not _alive(parent_pid):
            os._exit(0)


def _alive(pid: int) -> bool:
    """Running, and not a zombie: a killed parent stays a zombie until its own parent reaps it,
    and that parent may be waiting for our end of a shared pipe to close."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to a signal probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True


class ProcessPool:
    """Runs picklable tasks in worker processes; safe to call from many threads."""

    def __init__(self, processes: int, *, timeout: float = 120.0) -> None:
        self.processes = processes
        self.timeout = timeout
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None

    def run(self, task: Callable[..., T], *args: Any) -> T:
        if self.processes <= 1:
            return task(*args)
        executor = self._current()
        future = executor.submit(task, *args)
        try:
            return future.result(timeout=self.timeout)
        except FutureTimeout:
            self._rebuild(executor)
            raise StorywatchError(f"parsing took longer than {self.timeout:g} s and was stopped") from None
        except BrokenProcessPool:
            self._rebuild(executor)
            raise StorywatchError("the parsing process died (out of memory, or a hostile document?)") from None

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(PRELOAD)
                self._executor = ProcessPoolExecutor(
                    self.processes, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
                )
            return self._executor

    def _rebuild(self, broken: ProcessPoolExecutor) -> None:
        """Replace a pool with a stuck or dead worker; other tasks in it fail and are retried later."""
        with self._lock:
            if self._executor is broken:
                self._executor = None
        for process in list((getattr(broken, "_processes", None) or {}).values()):
            process.kill()  # a worker stuck in a hostile document never finishes on its own
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
