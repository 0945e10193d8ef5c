"""The live tracker kept with the store, so that the next process (a one-shot `poll`, a
restarted worker) takes it up instead of replaying the store's recent window: on a store of
50k items that replay takes 8 s, restoring 0.3 s.

A runtime saves its tracker when it closes, if the tracker learnt anything. The next process
restores it only if a worker that never stopped would hold the same:

- the same tracking code and settings (`key`); storylines and the reader's marks unchanged
  (`Replayed.version`, checked by `Tracking.current` as for a running tracker);
- no original stored since by a process that did not track it (`upto`, the newest item it
  accounts for), in its window: the rule by which a running worker drops a tracker (`Tracking.saw`).

Otherwise it is rebuilt from the store, as before. The state is pickled; it is read back into
the classes a tracker is made of only, so that a store file written by someone else cannot make
a process run code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import pickle
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger
from sqlite_utils import Database

from worker import store
from worker.config import TrackingSettings

if TYPE_CHECKING:
    from worker.emerging import Emerging
    from worker.storylines import Replayed

FORMAT = 1
# The modules whose classes a tracker's state is made of (with worker.tracking's): their source is part of the key.
_STATE_MODULES = ("worker.storylines", "worker.emerging", "worker.models")
_PACKAGE = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class Restored:
    replayed: Replayed
    emerging: Emerging
    upto: int


def save(db: Database, settings: TrackingSettings, replayed: Replayed, emerging: Emerging, upto: int,
         now: dt.datetime) -> None:
    """Keep the tracker (and the emerging groups) that accounts for every item up to `upto`."""
    state = pickle.dumps((replace(replayed, found=[]), emerging), pickle.HIGHEST_PROTOCOL)
    saved = store.SavedTracker(state_key(settings), upto, replayed.since, zlib.compress(state, 1))
    with store.transaction(db):
        store.save_tracker(db, saved, now)


def restore(db: Database, settings: TrackingSettings, pending: Sequence[int] = ()) -> Restored | None:
    """The saved tracker, if it is still what a running worker would hold (`pending`: items
    stored and about to be tracked); None if there is none or it must be rebuilt."""
    saved = store.saved_tracker(db)
    if saved is None:
        return None
    if saved.key != state_key(settings):
        logger.debug("The saved tracker was made by other code or settings: rebuilding it")
        return None
    if store.originals_after(db, saved.upto, saved.since, pending):
        logger.debug("Items were stored since the tracker was saved: rebuilding it")
        return None
    try:
        replayed, emerging = _TrackerUnpickler(io.BytesIO(zlib.decompress(saved.state))).load()
    except Exception as exc:  # a damaged or foreign state costs a rebuild, nothing else
        logger.warning("The saved tracker cannot be read ({error}): rebuilding it", error=f"{type(exc).__name__}: {exc}")
        return None
    return Restored(replayed, emerging, saved.upto)


def state_key(settings: TrackingSettings) -> str:
    """Names what a saved state depends on: its format, the source of the classes in it, and
    the tracking settings."""
    digest = hashlib.sha256(f"{FORMAT}|{settings!r}".encode())
    modules = sorted(_PACKAGE.glob("tracking/*.py")) + [_PACKAGE / f"{name.split('.')[1]}.py" for name in _STATE_MODULES]
    for path in modules:
        digest.update(path.read_bytes())
    return digest.hexdigest()


# What a tracker's state holds besides the project's own classes (numpy arrays, counters, times).
_ALLOWED = {
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("collections", "Counter"), ("collections", "deque"), ("collections", "defaultdict"), ("collections", "OrderedDict"),
    ("datetime", "datetime"), ("datetime", "date"), ("datetime", "timedelta"), ("datetime", "timezone"),
    ("builtins", "set"), ("builtins", "frozenset"),
}


class _TrackerUnpickler(pickle.Unpickler):
    """Builds only the classes a tracker is made of: the project's tracking classes (defined in
    `_STATE_MODULES`) and the few library types in `_ALLOWED`. Anything else (a function that
    runs a command, say) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module.startswith("worker.tracking.") or module in _STATE_MODULES:
            found = super().find_class(module, name)
            if isinstance(found, type) and found.__module__ == module:
                return found
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a tracker")
