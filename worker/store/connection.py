"""Opening the store and writing to it: WAL, busy timeouts, migrations, BEGIN IMMEDIATE transactions.

Opening a store (`open_store`) creates the file with 8 KiB pages, switches to WAL with
synchronous=NORMAL, sets a busy timeout so a second process waits for the lock instead of
failing, and applies pending migrations. Writes that belong together run in one
`transaction(db)` (BEGIN IMMEDIATE: the write lock is taken up front, so two writers queue
instead of deadlocking on a lock upgrade).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shlex
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger
from sqlite_utils import Database

from worker.clock import from_iso, to_iso
from worker.errors import StoreError
from worker.store.schema import MIGRATIONS, PAGE_SIZE


def open_store(path: Path, *, busy_timeout: float = 30.0, shared: bool = False) -> Database:
    """Open (creating if needed) the store at `path` and bring its schema up to date.

    `shared`: the connection may be used from another thread than the one that opened it
    (the daemon's jobs run in the scheduler's threads), one thread at a time.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        is_new = not path.exists() or path.stat().st_size == 0
        conn = sqlite3.connect(path, timeout=busy_timeout, check_same_thread=not shared)
        db = Database(conn)
        if is_new:
            db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        db.enable_wal()
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        _migrate(db, path)
    except sqlite3.DatabaseError as exc:
        logger.opt(exception=exc).debug("Opening the store failed")  # with -v: where
        raise store_failure(path, exc) from None
    except OSError as exc:
        raise StoreError(f"cannot create the store at {path}: {exc.strerror}") from None
    return db


_DAMAGED = ("malformed", "corrupt")


def is_damage(exc: sqlite3.DatabaseError) -> bool:
    """SQLite found the file damaged (not busy, not read-only, not full)."""
    return any(word in str(exc).lower() for word in _DAMAGED)


def integrity_problem(db: Database, seconds: float) -> str | None:
    """SQLite's quick check of every page, given `seconds` at most (a large store is then left
    unchecked: None, as for a sound one); the first problem found, if any."""
    deadline = time.monotonic() + seconds
    db.conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
    try:
        first = db.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            return None
        raise
    finally:
        db.conn.set_progress_handler(None, 0)
    return None if first == "ok" else " ".join(str(first).split())


def store_failure(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    """What a user reads when SQLite fails on the store: for a damaged file, what to do."""
    said = str(exc).lower()
    if is_damage(exc):
        store, copy = shlex.quote(str(path)), shlex.quote(f"{path}.recovered")
        return StoreError(
            f"the store at {path} is damaged ({exc})",
            hint=f"stop the worker and keep the damaged file; restore the store from a backup, or copy what is "
                 f"readable to a new file: sqlite3 {store} .recover | sqlite3 {copy} (an sqlite3 built without "
                 f".recover says 'SQL logic error' and copies nothing). Only if sqlite3 {copy} 'select count(*) "
                 f"from items' shows your items, move {store} aside with its -wal and -shm files (a journal left "
                 f"beside the new file would be applied to it), then {copy} to {store}")
    if "not a database" in said:
        return StoreError(f"cannot use the store at {path}: {exc}",
                          hint="check [storage] path; if this file was the store, restore it from a backup")
    if "full" in said:
        return StoreError(f"cannot write the store at {path}: {exc}",
                          hint="free space on its disk: what was stored before is kept, and the write is retried")
    if "unable to open" in said:
        return StoreError(f"cannot open the store at {path}: {_why_not_opened(path)}",
                          hint="check [storage] path, and who owns the file and its folder")
    if "readonly" in said:
        return StoreError(f"cannot write the store at {path}: {exc}",
                          hint=f"the file, its -wal and -shm files and its folder must be writable by user id "
                               f"{os.geteuid()}")
    return StoreError(f"cannot use the store at {path}: {exc}")


def _why_not_opened(path: Path) -> str:
    """SQLite says only "unable to open database file"; the usual causes, looked at."""
    if path.is_dir():
        return "it is a folder, not a file"
    if path.is_symlink() and not path.exists():
        return "it is a link to nothing (or a loop of links)"
    if not os.access(path.parent, os.W_OK | os.X_OK):  # the journal files (-wal, -shm) are made beside it
        return f"its folder {path.parent} is not writable by user id {os.geteuid()} (SQLite writes its journal there)"
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"the file is not readable and writable by user id {os.geteuid()}"
    return "unable to open database file"


def _migrate(db: Database, path: Path) -> None:
    known = {m.name for m in MIGRATIONS._migrations}
    applied = {m.name for m in MIGRATIONS.applied(db)}
    if unknown := applied - known:
        raise StoreError(
            f"the store at {path} was made by a newer storywatch (migration {sorted(unknown)[0]})",
            hint="upgrade storywatch or point [storage] path at another file",
        )
    if not MIGRATIONS.pending(db):
        return
    with transaction(db):  # one process migrates; another waits, then finds nothing pending
        MIGRATIONS.apply(db)


def identity_key(db: Database) -> str:
    """The store's own random secret (migration 0011_store_identity), kept for the store's life;
    only copies of its file share it."""
    row = one_row(db, "SELECT key FROM store_identity ORDER BY rowid LIMIT 1")
    return str(row["key"]) if row else _new_identity(db)


def _new_identity(db: Database) -> str:
    """A new secret, should the migration's row have been deleted."""
    with transaction(db):
        if row := one_row(db, "SELECT key FROM store_identity ORDER BY rowid LIMIT 1"):
            return str(row["key"])  # another process made it first
        key = secrets.token_hex(16)
        db.execute("INSERT INTO store_identity (key, created_at) VALUES (?, ?)",
                   [key, to_iso(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))])
        return key


def schema_version(db: Database) -> str:
    applied = MIGRATIONS.applied(db)
    return applied[-1].name if applied else "(empty)"


_OPEN: weakref.WeakSet[Database] = weakref.WeakSet()  # stores inside an outermost transaction()


@contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """One atomic unit of writes. Nested calls become savepoints of the outer one.

    All or nothing when SQLite fails too: a failed COMMIT is rolled back (a full disk may leave
    the transaction open), and once SQLite has rolled the transaction back itself (an I/O
    error may), a nested call raises instead of writing in a transaction of its own.
    """
    if db in _OPEN or db.conn.in_transaction:
        check_open(db)
        with db.atomic():
            yield db
        return
    _begin(db)
    _OPEN.add(db)
    try:
        yield db
        check_open(db)
        db.conn.execute("COMMIT")
    except BaseException:
        db.rollback()  # a no-op if the error already ended the transaction
        raise
    finally:
        _OPEN.discard(db)


@contextmanager
def lock_wait(db: Database, seconds: float) -> Iterator[None]:
    """Wait at most `seconds` at each try for another process's write lock, not the store's busy
    timeout: for writes that may be skipped (a saved tracker when the worker stops)."""
    before = int(db.execute("PRAGMA busy_timeout").fetchone()[0])
    db.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
    try:
        yield
    finally:
        db.execute(f"PRAGMA busy_timeout = {before}")


def check_open(db: Database, cause: str | None = None) -> None:
    """Raise if SQLite rolled back the transaction the caller is in (after an error it caught:
    `cause`, when known)."""
    if db in _OPEN and not db.conn.in_transaction:
        after = f" ({cause})" if cause else ""
        raise StoreError(f"the store rolled the transaction back after an error{after}: none of it was written")


LOCK_RETRIES = 3  # busy timeouts waited for the write lock before giving up
LOCK_SLICE = 0.25  # seconds: how often a wait for the write lock looks whether its process is stopping
STOPPING_LOCK_WAIT = 2.0
"""Seconds a stopping process waits for another process's write lock (`give_up_waiting_when`):
then its transactions fail at once, and what was not stored is fetched again next time, rather
than the stop outlasting the service manager's patience (3 × 30 s a transaction)."""


@dataclass
class _Stopping:
    stop: threading.Event
    patient: int = 0  # `patiently` blocks open: writes that must not be given up
    gave_up: bool = False  # once: every later transaction of the stopping process fails at once


_STOPS: weakref.WeakKeyDictionary[Database, _Stopping] = weakref.WeakKeyDictionary()


def give_up_waiting_when(db: Database, stop: threading.Event) -> None:
    """Once `stop` is set, transactions on `db` wait STOPPING_LOCK_WAIT at most, all told, for the
    write lock (except within `patiently`)."""
    _STOPS[db] = _Stopping(stop)


def gave_up_at_stop(db: Database) -> bool:
    """Whether this stopping process found the store held by another past STOPPING_LOCK_WAIT:
    nothing more is tried (a write fails at once)."""
    stopping = _STOPS.get(db)
    return stopping is not None and stopping.gave_up and stopping.stop.is_set()


@contextmanager
def patiently(db: Database) -> Iterator[None]:
    """Writes that wait for the lock the store's whole busy timeout even when stopping: the
    record of a digest the mail server accepted cannot be fetched again."""
    stopping = _STOPS.get(db)
    if stopping is None:
        yield
        return
    stopping.patient += 1
    try:
        yield
    finally:
        stopping.patient -= 1


def is_busy(exc: BaseException) -> bool:
    """The error SQLite gives when another process held the write lock past the busy timeout."""
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


def busy_at_stop(db: Database, exc: BaseException) -> bool:
    """Whether `exc` is a write given up because the process is stopping and another holds the store."""
    stopping = _STOPS.get(db)
    return stopping is not None and stopping.stop.is_set() and is_busy(exc)


@contextmanager
def unless_busy_at_stop(db: Database, what: str) -> Iterator[None]:
    """A write that can wait for the next run: skipped (and logged) if `busy_at_stop`, instead of
    failing the stop."""
    try:
        yield
    except Exception as exc:
        if not busy_at_stop(db, exc):
            raise
        logger.warning("Stopping: {what} left for the next run, another process holds the store", what=what)


def _begin(db: Database) -> None:
    """Take the write lock, waiting up to the busy timeout LOCK_RETRIES times: SQLite's busy
    handler is not a queue, so under several busy writers one may lose every race for a while.
    Nothing has been written yet, so trying again is safe. The wait is taken in slices of
    LOCK_SLICE, so that a stop cuts it short."""
    busy = int(db.conn.execute("PRAGMA busy_timeout").fetchone()[0]) / 1000
    stopping = _STOPS.get(db)
    if stopping is not None and stopping.patient:
        stopping = None
    started, warned = time.monotonic(), 0
    first_try = 0.0 if stopping is not None and gave_up_at_stop(db) else min(busy, LOCK_SLICE)
    db.conn.execute(f"PRAGMA busy_timeout = {int(first_try * 1000)}")
    try:
        while True:
            try:
                db.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                waited = time.monotonic() - started
                if not is_busy(exc) or waited >= busy * LOCK_RETRIES:
                    raise
                if stopping is not None and stopping.stop.is_set() and (stopping.gave_up or waited >= STOPPING_LOCK_WAIT):
                    stopping.gave_up = True
                    raise
                if waited >= busy * (warned + 1):
                    warned += 1
                    logger.warning("The store is busy (another process is writing); waiting again ({n}/{max})",
                                   n=warned, max=LOCK_RETRIES - 1)
    finally:
        db.conn.execute(f"PRAGMA busy_timeout = {int(busy * 1000)}")


def differs(row: dict[str, Any], values: dict[str, Any]) -> bool:
    return any(row[key] != value for key, value in values.items())


def one_row(db: Database, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
    return next(iter(db.query(sql, params)), None)

def rows_in_chunks(db: Database, sql: str, values: Sequence[Any]) -> Iterator[dict[str, Any]]:
    """Run `sql` with its IN (…) filled by `values`, 500 at a time (SQLite's variable limit)."""
    for i in range(0, len(values), 500):
        chunk = values[i : i + 500]
        yield from db.query(sql.format(", ".join("?" for _ in chunk)), chunk)

def maybe_time(value: str | None) -> dt.datetime | None:
    return from_iso(value) if value else None
