"""Parallel parsing: CPU-heavy work runs in worker processes, so threads only wait on I/O.

Parsing feeds is CPU-bound Python; run in threads it holds the GIL against the one thread that
writes to SQLite (measured: the writer fell from 6k to 2k items/s). A `ProcessPool` runs such
tasks in `processes` workers (forkserver, so a parent with threads forks safely), or in the
calling thread when `processes` is 1 (unless `apart`: then in one worker). Workers ignore
SIGINT and SIGTERM: the parent decides when they stop, so Ctrl-C or a service stop never turns
feeds in flight into errors.

Each worker runs one task at a time, sent down a pipe of its own, so the pool always knows which
task a worker is running, and a hostile feed costs that one feed only:

- A caller waits for a free worker in its own thread; `timeout` starts when a worker has the
  task, so a task queued behind slow ones is never timed out for its wait.
- A task that runs longer than `timeout` costs its own worker: that process is killed and
  replaced, and its caller gets a `StorywatchError`. The other tasks in flight go on.
- A worker that dies while running a task (a hostile feed, out of memory) costs that task. A
  worker found dead before a task reached it (killed while idle) is not the task's doing: the
  task is tried once more, on a fresh worker.

If the parent is killed (SIGKILL), each worker sees its pipe close, or (if busy in a task)
notices within a second that the parent's pid is gone, and exits.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from worker.errors import StorywatchError

T = TypeVar("T")
PRELOAD = ["worker.parallel", "feedparser", "worker.parsing"]  # a parsing process needs these alone (parsing.py)
START_TIMEOUT = 60.0  # seconds a new worker may take to start (a busy machine); not the task's time
READY = b"ready"


def default_processes() -> int:
    return max(1, os.cpu_count() or 1)


class _NotStarted(StorywatchError):
    """The worker was gone (or never came up) before the task reached it: not the task's doing."""


class ProcessPool:
    """Runs picklable tasks in worker processes; safe to call from many threads."""

    def __init__(self, processes: int, *, timeout: float = 120.0, apart: bool = False) -> None:
        self.processes = processes
        self.timeout = timeout
        self.in_caller = processes <= 1 and not apart  # `apart`: one worker process, not the caller's thread
        self._free = threading.Semaphore(max(1, processes))  # one per worker: callers beyond wait here
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._generation = 0  # bumped by close(): workers busy then are closed when done, not kept

    def run(self, task: Callable[..., T], *args: Any) -> T:
        if self.in_caller:
            return task(*args)
        job = pickle.dumps((task, args), pickle.HIGHEST_PROTOCOL)  # a task that cannot be pickled fails here
        with self._free:  # the wait for a worker, off the task's clock
            try:
                ok, value = self._call(job)
            except _NotStarted:  # its worker was gone before the task reached it: once more, on a fresh one
                ok, value = self._call(job)
        if ok:
            return cast(T, value)
        raise value

    def _call(self, job: bytes) -> tuple[bool, Any]:
        worker = self._take()
        try:
            outcome = worker.call(job, self.timeout)
        except BaseException:
            worker.close()  # stuck, dead, or its pipe out of step: never reused
            raise
        self._give_back(worker)
        return outcome

    def _take(self) -> _Worker:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            generation = self._generation
        return _Worker(generation)  # started outside the lock: a start may take a while

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if worker.generation == self._generation:
                self._idle.append(worker)
                return
        worker.close()

    def close(self) -> None:
        """Stop the idle workers now, and the busy ones when their task is done."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._generation += 1
        for worker in idle:
            worker.close()


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        self.conn, theirs = context.Pipe()
        self.process = context.Process(target=_serve, args=(theirs, os.getpid()), name="storywatch-parse")
        with _STARTING:
            self.process.start()
        theirs.close()
        _WORKERS.add(self)
        try:
            if self.conn.poll(START_TIMEOUT) and self.conn.recv_bytes() == READY:
                return
        except (EOFError, OSError):  # it died starting
            pass
        self.close()
        raise _NotStarted("a parsing process could not be started")

    def call(self, job: bytes, timeout: float) -> tuple[bool, Any]:
        """(True, result) or (False, the task's exception); raises for a timeout or a death."""
        try:
            self.conn.send_bytes(job)  # it waits for a job: from here on, the time is the task's
        except OSError:
            raise _NotStarted("the parsing process was gone before the task reached it") from None
        if not self.conn.poll(timeout):
            raise StorywatchError(f"parsing took longer than {timeout:g} s and was stopped")
        try:
            answer = self.conn.recv_bytes()
        except (EOFError, OSError):
            raise StorywatchError("the parsing process died (out of memory, or a hostile document?)") from None
        outcome: tuple[bool, Any] = pickle.loads(answer)
        return outcome

    def close(self) -> None:
        """Kill the process: idle, it loses nothing; busy, it was stuck or its caller gave up."""
        self.process.kill()
        self.process.join()
        self.process.close()
        self.conn.close()
        _WORKERS.discard(self)


_STARTING = threading.Lock()  # multiprocessing does not promise that start() is thread-safe
_WORKERS: weakref.WeakSet[_Worker] = weakref.WeakSet()


@atexit.register  # runs before multiprocessing's exit handler, which waits for every child to end
def _close_all() -> None:
    for worker in list(_WORKERS):
        with contextlib.suppress(ValueError):  # closed meanwhile by a thread still running
            worker.close()


# In the worker process.


def _serve(conn: multiprocessing.connection.Connection, parent_pid: int) -> None:
    """Say ready, then run the tasks that come down the pipe, one at a time, until it closes."""
    _start_worker(parent_pid)
    try:
        conn.send_bytes(READY)
        while True:
            conn.send_bytes(_outcome(conn.recv_bytes()))
    except (EOFError, OSError):  # the pool closed its end, or the parent is gone
        return


def _outcome(job: bytes) -> bytes:
    """The pickled (True, result) or (False, exception) of a pickled (task, args); never raises."""
    try:
        task, args = pickle.loads(job)
        outcome: tuple[bool, Any] = (True, task(*args))
    except BaseException as exc:  # the caller's to handle, as if the task had run in its thread
        if not isinstance(exc, StorywatchError):  # a bug: keep where it happened, for the log
            exc.add_note("In the parsing process:\n" + "".join(traceback.format_tb(exc.__traceback__)))
        outcome = (False, exc)
    try:
        return pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        return pickle.dumps((False, RuntimeError(f"the task's outcome cannot be pickled: {exc!r}")))


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
