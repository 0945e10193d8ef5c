"""The live tracker kept with the store, so that the next process (a one-shot `poll`, a
restarted worker) takes it up instead of replaying the store's recent window: on a store of
50k items that replay takes 8-10 s, restoring 0.5 s.

A runtime saves its tracker when it closes, if the tracker learnt anything. The next process
restores it only if a worker that never stopped would hold the same:

- the same code and tracking settings (`key`); storylines and marks unchanged
  (`Replayed.version`, as `Tracking.current` checks a running tracker's);
- no original stored since by a process that did not track it (`upto`, the newest item it
  accounts for), in its window: the rule by which a running worker drops a tracker (`Tracking.saw`).

Otherwise it is rebuilt from the store, as before. Feature hashes are not saved (they are this
process's own, `analysis.hash_features`): the next process makes them again. The state is
pickled, its numpy arrays apart as plain numbers; it is read back into the classes a tracker is
made of only, and its arrays only as arrays of numbers, so that a store file written by someone
else cannot make a process run code. A state that cannot be read costs a rebuild.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import pickle
import sqlite3
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from loguru import logger
from sqlite_utils import Database

from worker import store
from worker.config import TrackingSettings
from worker.errors import StorywatchError

if TYPE_CHECKING:
    from worker.emerging import Emerging
    from worker.storylines import Replayed

FORMAT = 1
# The modules whose classes a tracker's state is made of, with worker.tracking's.
_STATE_MODULES = ("worker.storylines", "worker.emerging", "worker.models")
_PACKAGE = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class Restored:
    replayed: Replayed
    emerging: Emerging
    upto: int


def save(db: Database, settings: TrackingSettings, replayed: Replayed, emerging: Emerging, upto: int,
         now: dt.datetime) -> None:
    """Keep the tracker (and the emerging groups) that accounts for every item up to `upto`.
    Waits a few seconds at most for the write lock: a tracker not saved is only rebuilt."""
    state = dumps((replace(replayed, found=[]), emerging))
    saved = store.SavedTracker(state_key(settings), upto, replayed.since, state)
    with store.lock_wait(db, SAVE_LOCK_WAIT), store.transaction(db):
        store.save_tracker(db, saved, now)


SAVE_LOCK_WAIT = 2.0  # seconds a save waits for another process's write, at each of _begin's tries


def restore(db: Database, settings: TrackingSettings, pending: Sequence[int] = ()) -> Restored | None:
    """The saved tracker, if it is still what a running worker would hold (`pending`: items
    stored and about to be tracked); None if there is none or it must be rebuilt."""
    try:
        saved = store.saved_tracker(db)
        if saved is None:
            return None
        if saved.key != state_key(settings):
            logger.info("The saved tracker was made by other code or [tracking] settings: rebuilding it")
            return None
        if store.originals_after(db, saved.upto, saved.since, pending):
            logger.info("Another process stored items the saved tracker never saw: rebuilding it")
            return None
        replayed, emerging = _checked(loads(saved.state))
        if replayed.version != store.storylines_version(db):
            logger.info("The storylines or the reader's marks changed since the tracker was saved: rebuilding it")
            return None
    except (sqlite3.DatabaseError, StorywatchError):
        raise  # the store itself failing: not the saved state's doing
    except Exception as exc:  # a damaged or foreign state costs a rebuild, nothing else
        logger.warning("The saved tracker cannot be read ({error}): rebuilding it", error=f"{type(exc).__name__}: {exc}")
        return None
    logger.debug("Tracker taken up as the last process saved it (up to item {upto})", upto=saved.upto)
    return Restored(replayed, emerging, saved.upto)


def _checked(state: Any) -> tuple[Replayed, Emerging]:
    from worker.emerging import Emerging  # here: storylines, which imports this module, defines Replayed
    from worker.storylines import Replayed

    if not (isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], Replayed)
            and isinstance(state[1], Emerging)):
        raise TypeError("the state is not a tracker's")
    return state[0], state[1]


def dumps(state: object) -> bytes:
    """Pickled and compressed; numpy arrays go apart as their plain numbers (`_Arrays`), so that
    reading it back never needs numpy's own unpickling, which can be made to build anything."""
    out = io.BytesIO()
    arrays = _Arrays()
    pickler = pickle.Pickler(out, pickle.HIGHEST_PROTOCOL)
    pickler.persistent_id = arrays.keep  # type: ignore[method-assign]
    pickler.dump(state)
    return zlib.compress(pickle.dumps((out.getvalue(), arrays.kept), pickle.HIGHEST_PROTOCOL), 1)


def loads(blob: bytes) -> Any:
    inflate = zlib.decompressobj()
    raw = inflate.decompress(blob, max(INFLATED_MIN, INFLATION * len(blob)))
    if inflate.unconsumed_tail or not inflate.eof:
        raise ValueError("the state is cut short or inflates beyond any tracker's")
    state, arrays = _StateUnpickler(io.BytesIO(raw), []).load()
    return _StateUnpickler(io.BytesIO(state), arrays).load()


# How far a state may inflate: a large one 2-3 times (its arrays are dense), a small one more (the
# arrays sized for a large window are mostly zeros); a "zip bomb" would far more.
INFLATION, INFLATED_MIN = 20, 64 << 20


class _Arrays:
    """The numpy arrays of a state, as (dtype, shape, bytes): numbers only. An array held in two
    places is kept once, and comes back as one."""

    def __init__(self) -> None:
        self.kept: list[tuple[str, tuple[int, ...], bytes]] = []
        self._ids: dict[int, int] = {}  # id(array) → its persistent id (the arrays live while pickled)

    def keep(self, obj: object) -> int | None:
        if not isinstance(obj, np.ndarray | np.generic):
            return None
        if id(obj) in self._ids:
            return self._ids[id(obj)]
        array = np.asarray(obj)
        if array.dtype.kind not in _NUMBERS:
            raise pickle.PicklingError(f"an array of {array.dtype} is no part of a tracker")
        self.kept.append((array.dtype.str, (array.shape if isinstance(obj, np.ndarray) else ()), array.tobytes()))
        pid = self._ids[id(obj)] = len(self.kept) - 1 if isinstance(obj, np.ndarray) else -len(self.kept)
        return pid


_NUMBERS = "biufc"  # booleans, integers, floats, complex numbers: never objects or records


def _array(kept: tuple[str, tuple[int, ...], bytes]) -> np.ndarray:
    code, shape, data = kept
    if not (isinstance(code, str) and isinstance(shape, tuple) and isinstance(data, bytes)):
        raise pickle.UnpicklingError("an array of the state is not (type, shape, numbers)")
    dtype = np.dtype(code)
    longest = max(len(data) // max(dtype.itemsize, 1), LONGEST_EMPTY)  # no axis of an empty array runs on for ever
    if (dtype.kind not in _NUMBERS or dtype.fields is not None or dtype.subdtype is not None
            or not all(isinstance(n, int) and 0 <= n <= longest for n in shape)):
        raise pickle.UnpicklingError(f"no tracker holds an array of {code} {shape}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()  # reshape checks the size; a copy is writable


LONGEST_EMPTY = 1 << 16


def state_key(settings: TrackingSettings) -> str:
    """Names what a saved state depends on: its format, the tracking settings and the code. (Not
    the process's string hashing: feature hashes are not saved but made again, `vectors.Recent`.)"""
    return hashlib.sha256(f"{FORMAT}|{settings!r}|{_CODE}".encode()).hexdigest()


def _code_digest() -> str:
    """All of the package's source (what a rebuild would replay is chosen outside the tracker's own
    classes too), read when the process starts: a worker upgraded while it runs saves under its own."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


_CODE = _code_digest()


# What a tracker's state holds besides the project's own classes and its arrays (`_Arrays`).
_ALLOWED = {
    ("collections", "Counter"), ("collections", "deque"), ("collections", "defaultdict"), ("collections", "OrderedDict"),
    ("datetime", "datetime"), ("datetime", "date"), ("datetime", "timedelta"), ("datetime", "timezone"),
    ("builtins", "set"), ("builtins", "frozenset"),
}


class _StateUnpickler(pickle.Unpickler):
    """Builds only the classes a tracker is made of: the project's tracking classes (defined in
    `_STATE_MODULES` or worker.tracking) and the few library types in `_ALLOWED`; its arrays from
    their numbers. Anything else (a function that runs a command, numpy's own rebuilding) is refused."""

    def __init__(self, file: io.BytesIO, arrays: list[tuple[str, tuple[int, ...], bytes]]) -> None:
        super().__init__(file)
        self.arrays = arrays
        self.made: dict[int, Any] = {}  # each array is made once, however often it is referred to

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, int) or not -len(self.arrays) <= pid < len(self.arrays):
            raise pickle.UnpicklingError("a reference to no array of the state")
        if pid not in self.made:
            self.made[pid] = _array(self.arrays[pid]) if pid >= 0 else _array(self.arrays[-pid - 1])[()]  # < 0: a scalar
        return self.made[pid]

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module.startswith("worker.tracking.") or module in _STATE_MODULES:
            found = super().find_class(module, name)
            if isinstance(found, type) and found.__module__ == module:
                return found
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a tracker")
