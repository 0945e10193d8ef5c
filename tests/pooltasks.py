"""Tasks for tests/test_parallel.py: in a module of their own, so worker processes can import them."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from worker.errors import ParseError

GATE_BOUND = 60.0  # seconds a task waits for its gate at most: a bound against a hung test, never reached


def pid() -> int:
    return os.getpid()


def echo(value: int) -> tuple[int, int]:
    return value, os.getpid()


def sleep_then(seconds: float, value: int) -> int:
    """Slow but legitimate work."""
    time.sleep(seconds)
    return value


def after_gate(gate: str, started: str, value: int) -> int:
    """Say it started (write its pid to `started`), then run until the test opens the gate (creates `gate`)."""
    Path(started).write_text(str(os.getpid()))
    deadline = time.monotonic() + GATE_BOUND
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


def hang(started: str) -> None:
    """A hostile document: say it started, then never finish."""
    Path(started).touch()
    threading.Event().wait()


def exit_abruptly() -> None:
    os._exit(3)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def not_a_feed(message: str) -> None:
    raise ParseError(message)


def divide_by_zero() -> float:
    return 1 / 0


def modules_loaded(names: list[str]) -> list[str]:
    """Which of ``names`` the worker process has imported."""
    import sys

    return [name for name in names if name in sys.modules]
