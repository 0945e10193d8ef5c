"""Logging: loguru configured once, to stderr, in a form journald keeps well.

On a terminal: readable coloured lines. Elsewhere (journald, a pipe): the same lines without
colour and without a timestamp of our own (journald adds one). When stderr is systemd's journal
stream ($JOURNAL_STREAM names it), each line starts with its syslog priority (`<4>` for a
warning, sd-daemon(3)), so `journalctl -p warning` shows warnings and errors only. With `json=True`: one JSON object
per line, carrying the named fields passed to each call (`logger.info("… {url}", url=…)`).
Libraries that log through the standard `logging` module (APScheduler, httpx) are routed into
loguru so there is one stream.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import sys
from typing import Any, TextIO

from loguru import logger

from worker.errors import StorywatchError
from worker.safetext import without_password

_TERMINAL_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss}</green> <level>{level: <7}</level> {message}"
)
_PLAIN_FORMAT = "{level: <7} {message}"
# syslog priorities, which journald reads from a "<N>" line prefix
_PRIORITY = {"TRACE": 7, "DEBUG": 7, "INFO": 6, "SUCCESS": 5, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}


def _journal_format(record: Any) -> str:
    return "\\<%d>%s\n{exception}" % (_PRIORITY.get(record["level"].name, 6), _PLAIN_FORMAT)


def _is_journal(out: TextIO) -> bool:
    """Is `out` the stream systemd connected to journald? ($JOURNAL_STREAM is "device:inode".)"""
    expected = os.environ.get("JOURNAL_STREAM")
    if not expected:
        return False
    try:
        stat = os.fstat(out.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False
    return expected == f"{stat.st_dev}:{stat.st_ino}"


class _InterceptHandler(logging.Handler):
    """Hands stdlib log records to loguru, keeping their level and origin."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        depth = 2
        frame = sys._getframe(depth) if hasattr(sys, "_getframe") else None
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(
            level, "{name}: {msg}", name=record.name, msg=record.getMessage()
        )


_sink_ids: list[int] = []


def _mask_passwords(record: Any) -> None:
    """A feed URL's password never reaches a log line, in the message or in its fields."""
    record["message"] = without_password(record["message"])
    for key, value in record["extra"].items():
        if isinstance(value, str):
            record["extra"][key] = without_password(value)


def _remove_default_sink() -> None:
    """loguru starts with a stderr sink (id 0); ours replaces it. Other sinks (tests') stay."""
    try:
        logger.remove(0)
    except ValueError:
        pass


def configure_logging(level: str = "INFO", *, json: bool = False, stream: TextIO | None = None) -> None:
    """Send every log line to `stream` (stderr), replacing the sink a previous call added."""
    out = stream or sys.stderr
    logger.configure(patcher=_mask_passwords)
    _remove_default_sink()
    while _sink_ids:
        logger.remove(_sink_ids.pop())
    if json:
        _sink_ids.append(logger.add(out, level=level, serialize=True, backtrace=False, diagnose=False))
    else:
        is_tty = hasattr(out, "isatty") and out.isatty()
        _sink_ids.append(logger.add(
            out,
            level=level,
            format=_TERMINAL_FORMAT if is_tty else _journal_format if _is_journal(out) else _PLAIN_FORMAT,
            colorize=is_tty,
            backtrace=False,
            diagnose=False,
        ))
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.WARNING, force=True)
    # httpx logs every request at INFO; the worker logs its own summary per feed instead.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.INFO if level == "DEBUG" else logging.WARNING)


_ENVIRONMENT = ("full", "readonly", "read-only", "locked", "disk i/o", "malformed", "no space")


def traceback_for(exc: BaseException) -> BaseException | None:
    """The exception to log with its traceback, or None for a failure of the machine rather than
    the code (a full disk, a read-only or damaged store, a lock held too long): one line says it,
    and a traceback on every feed of every cycle would bury it."""
    if isinstance(exc, StorywatchError):
        return None
    if isinstance(exc, (sqlite3.OperationalError, sqlite3.DatabaseError, OSError)):
        text = str(exc).lower()
        if any(word in text for word in _ENVIRONMENT) or getattr(exc, "errno", None) in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
            return None
    return exc
