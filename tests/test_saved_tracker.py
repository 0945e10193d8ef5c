"""The live tracker saved with the store: the next process takes it up and decides exactly as a
worker that never stopped; a stale, foreign or damaged saved state is rebuilt from the store."""

from __future__ import annotations

import collections
import datetime as dt
import io
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import World
from tests.feedserver import Reply, rss
from tests.test_tracking import BASEBALL, CLOSING, korea_world
from worker import saved_tracker, store, storylines

FIRST = dt.datetime(2024, 12, 2, 12, tzinfo=dt.timezone.utc)
LATER = dt.datetime(2024, 12, 28, 12, tzinfo=dt.timezone.utc)
FARM = [(f"farm-{n}", f"DPRK farmers mark harvest day {n}",
         f"<p>Farmers of the DPRK marked harvest day {n} in South Hwanghae Province. The DPRK praised them.</p>")
        for n in range(20)]
VISITS = [(f"visit-{n}", f"DPRK delegation leaves for Russia, visit {n}",
           f"<p>A delegation of the DPRK left Pyongyang for Moscow on day {n} to meet Russian officials.</p>")
          for n in range(3)]


@pytest.fixture
def worlds(tmp_path: Path) -> Iterator[Callable[[], World]]:
    made: list[World] = []

    def make() -> World:
        folder = tmp_path / f"w{len(made)}"
        folder.mkdir()
        db = store.open_store(folder / "sw.db")
        with store.transaction(db):  # the same secret, so the same document-frequency buckets: decisions comparable
            db.execute("UPDATE store_identity SET key = 'the worlds share it'")
        db.conn.close()
        made.append(korea_world(folder))
        made[-1].clock.now = FIRST
        return made[-1]

    yield make
    for world in made:
        if world._rt is not None:
            world._rt.close()
        world.server.__exit__()


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many trackers were built from the store (replayed), in order."""
    counted: list[int] = []
    build = storylines.build_tracker

    def counting(*args: Any, **kwargs: Any) -> storylines.Replayed:
        counted.append(1)
        return build(*args, **kwargs)

    monkeypatch.setattr(storylines, "build_tracker", counting)
    return counted


def poll(world: World, entries: list[tuple[str, str, str]], date: str) -> None:
    world.server.routes["/korea"] = Reply(body=rss(entries, date=date))
    world.poll(force=True)


def first_batch(world: World) -> None:
    poll(world, FARM, "Mon, 02 Dec 2024 08:00:00 GMT")


def second_batch(world: World) -> None:
    world.clock.now = LATER
    poll(world, [*FARM, CLOSING, BASEBALL, *VISITS], "Sat, 28 Dec 2024 10:00:00 GMT")


def restart(world: World) -> None:
    """The process ends as a one-shot command does (its runtime closed), and another starts."""
    assert world._rt is not None
    world._rt.close()
    world._rt.db.close()
    world._rt = None


def killed(world: World) -> None:
    """The process is killed: nothing of it runs after its last commit."""
    assert world._rt is not None
    world._rt.db.close()
    world._rt.fetcher.close()
    world._rt = None


def saved_after_a_first_process(world: World) -> tuple[storylines.Replayed, Any]:
    """The tracker (and emerging groups) a first process saved after the first batch, as read back."""
    first_batch(world)
    restart(world)
    saved = store.saved_tracker(world.db)
    assert saved is not None
    replayed, emerging = saved_tracker.loads(saved.state)
    return replayed, emerging


def decided(world: World) -> list[dict[str, object]]:
    return list(world.db.query("SELECT storyline_id, item_id, decision, score, threshold, reasons FROM storyline_items "
                               "ORDER BY storyline_id, item_id"))


def test_a_restarted_worker_takes_up_the_saved_tracker_and_decides_as_one_that_never_stopped(
        worlds: Callable[[], World], builds: list[int]) -> None:
    running, restarted = worlds(), worlds()
    first_batch(running)
    second_batch(running)
    assert len(builds) == 1

    first_batch(restarted)
    restart(restarted)
    assert store.saved_tracker(restarted.db) is not None
    second_batch(restarted)
    assert len(builds) == 2  # one for each world's first cycle; the restarted one restored its tracker
    assert decided(restarted) == decided(running)
    assert any(r["decision"] == "followup" for r in decided(running))
    suggestions = "SELECT title, item_ids FROM suggestions ORDER BY id"
    assert list(restarted.db.query(suggestions)) == list(running.db.query(suggestions))


def test_a_tracker_saved_before_another_process_stored_an_original_is_rebuilt(
        worlds: Callable[[], World], builds: list[int]) -> None:
    """The other process was killed before it could save its own: the saved tracker never
    learnt that item, so it is not taken up; the rebuilt one decides as a fresh build does."""
    world, fresh = worlds(), worlds()
    first_batch(world)
    restart(world)
    world.clock.now = dt.datetime(2024, 12, 3, 12, tzinfo=dt.timezone.utc)
    poll(world, [*FARM, VISITS[0]], "Tue, 03 Dec 2024 08:00:00 GMT")  # restored, then killed: not saved again
    killed(world)
    assert len(builds) == 1
    second_batch(world)
    assert len(builds) == 2

    first_batch(fresh)
    fresh.clock.now = dt.datetime(2024, 12, 3, 12, tzinfo=dt.timezone.utc)
    poll(fresh, [*FARM, VISITS[0]], "Tue, 03 Dec 2024 08:00:00 GMT")
    restart(fresh)  # saved: up to date
    fresh.db.execute("DELETE FROM saved_tracker")
    second_batch(fresh)  # rebuilt, as `world` was
    assert decided(world) == decided(fresh)


def test_a_tracker_saved_with_other_settings_is_rebuilt(worlds: Callable[[], World], builds: list[int]) -> None:
    world = worlds()
    first_batch(world)
    restart(world)
    world.config.write_text(world.config.read_text().replace("suggest_days = 3", "suggest_days = 4", 1))
    second_batch(world)
    assert len(builds) == 2


def test_a_saved_state_that_would_run_code_is_refused_and_rebuilt(
        worlds: Callable[[], World], builds: list[int], tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return os.system, (f"touch {marker}",)

    world = worlds()
    first_batch(world)
    restart(world)
    world.db.execute("UPDATE saved_tracker SET state = ?", [zlib.compress(pickle.dumps(Payload()))])
    second_batch(world)
    assert not marker.exists()
    assert len(builds) == 2


def test_a_rolled_back_or_untouched_tracker_is_not_saved(worlds: Callable[[], World]) -> None:
    world = worlds()
    world.rt.close()  # nothing tracked: nothing to save
    assert store.saved_tracker(world.db) is None
    first_batch(world)
    world.rt.tracking.forget()  # as after a rolled-back transaction
    world.rt.close()
    assert store.saved_tracker(world.db) is None


def test_an_edited_seed_file_makes_the_next_process_rebuild(worlds: Callable[[], World], builds: list[int]) -> None:
    """The seed is revised in place (same item, same storyline row): its text is what changed."""
    world = worlds()
    first_batch(world)
    restart(world)
    seed = world.config.parent / "seeds" / "003_fbc8137f2d954ad1.txt"
    seed.write_text(seed.read_text(encoding="utf-8") + "\nBoth sides pledged a new bridge over the Yalu River.\n",
                    encoding="utf-8")
    second_batch(world)  # the new process syncs the seeds, then tracks
    assert len(builds) == 2


def test_two_edits_of_a_storyline_within_one_second_are_two_versions(worlds: Callable[[], World]) -> None:
    world = worlds()
    before = store.storylines_version(world.db)
    world.db.execute("UPDATE storylines SET keywords = '[\"bridge\"]' WHERE id = 'friendship-year'")  # updated_at as it was
    assert store.storylines_version(world.db) != before



class _Call:
    """Pickled as a call of `what` with `args` (how a crafted state would call an allowed class)."""

    def __init__(self, what: Any, args: tuple[Any, ...]) -> None:
        self.what, self.args = what, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.what, self.args


class _Array:
    """Pickled as a reference to the state's array number `pid`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid


def _state(inner: object, arrays: list[tuple[str, tuple[int, ...], bytes]]) -> bytes:
    """A state in the saved format: a pickle whose arrays are references, and the arrays."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, pickle.HIGHEST_PROTOCOL)
    pickler.persistent_id = lambda obj: obj.pid if isinstance(obj, _Array) else None  # type: ignore[method-assign]
    pickler.dump(inner)
    return zlib.compress(pickle.dumps((out.getvalue(), arrays)))

@pytest.mark.parametrize("state", [
    b"not a tracker",
    zlib.compress(pickle.dumps(("a", 1))),  # pickled, of the wrong shape
    zlib.compress(pickle.dumps((pickle.dumps(("a", 1)), []))),  # in the format, not a tracker
    zlib.compress(pickle.dumps((pickle.dumps(np.zeros(3)), []))),  # numpy's own rebuilding: refused
    zlib.compress(pickle.dumps((b"", [("|O", (1,), b"\0" * 8)]))),  # an array of objects: refused
    zlib.compress(pickle.dumps((b"", [("<f8", (5,), b"\0" * 8)]))),  # an array bigger than its bytes
    zlib.compress(b"\0" * (300 << 20), 9),  # inflates to 300 MiB from 300 KiB
    _state(_Call(collections.deque, (_Array(0), 0)), [("|u1", (1 << 62, 0), b"")]),  # an empty axis that runs on
], ids=["garbage", "wrong-shape", "not-a-tracker", "numpy-reduce", "object-array", "short-array", "bomb", "endless-axis"])
def test_a_damaged_or_foreign_saved_state_costs_a_rebuild_and_nothing_else(
        worlds: Callable[[], World], builds: list[int], state: bytes) -> None:
    world = worlds()
    first_batch(world)
    restart(world)
    world.db.execute("UPDATE saved_tracker SET state = ?", [state])
    second_batch(world)
    assert len(builds) == 2
    assert any(r["decision"] == "followup" for r in decided(world))
    assert store.saved_tracker(world.db) is not None  # and the next process has a good one again


def test_a_saved_recent_document_whose_features_and_weights_differ_costs_a_rebuild(
        worlds: Callable[[], World], builds: list[int]) -> None:
    world = worlds()
    replayed, emerging = saved_after_a_first_process(world)
    recent = replayed.tracker._recent.docs[0]
    object.__setattr__(recent, "features", recent.features + "\nforged")  # one feature more than weights
    world.db.execute("UPDATE saved_tracker SET state = ?", [saved_tracker.dumps((replayed, emerging))])
    second_batch(world)
    assert len(builds) == 2
    assert any(r["decision"] == "followup" for r in decided(world))


def test_a_damaged_saved_row_costs_a_rebuild(worlds: Callable[[], World], builds: list[int]) -> None:
    world = worlds()
    first_batch(world)
    restart(world)
    world.db.execute("UPDATE saved_tracker SET since = 'garbage'")
    second_batch(world)
    assert len(builds) == 2
    assert any(r["decision"] == "followup" for r in decided(world))


def test_a_stop_does_not_wait_long_for_another_process_to_let_go_of_the_store(
        worlds: Callable[[], World], monkeypatch: pytest.MonkeyPatch) -> None:
    """The save is skipped (the next process rebuilds) rather than hold up a worker stopping."""
    monkeypatch.setattr(saved_tracker, "SAVE_LOCK_WAIT", 0.1)
    world = worlds()
    first_batch(world)
    other = sqlite3.connect(world.config.parent / "sw.db")
    other.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        world.rt.close()
        assert time.monotonic() - started < 20  # the store's own busy timeout would be 3 × 30 s
    finally:
        other.rollback()
        other.close()
    assert store.saved_tracker(world.db) is None
    assert world.db.execute("PRAGMA busy_timeout").fetchone()[0] == 30000



def test_an_array_held_in_two_places_is_saved_once_and_comes_back_as_one() -> None:
    shared = np.arange(6.0)
    state = saved_tracker.loads(saved_tracker.dumps({"a": shared, "b": shared, "n": np.float32(2.5)}))
    assert state["a"] is state["b"] and state["a"].tolist() == shared.tolist() and state["a"].flags.writeable
    assert state["n"] == np.float32(2.5) and isinstance(state["n"], np.float32)



def window_scores(world: World) -> dict[str, list[float]]:
    """The tracker's recent window scored against each storyline's profile, as adaptation
    measures a storyline's background again: the features of documents tracked by one process
    matched with those of a profile made in another."""
    assert world.rt.tracking.replayed is not None
    tracker = world.rt.tracking.replayed.tracker
    return {sid: np.round(tracker._recent.scores(story, tracker._read_as, tracker.config.score_mode)[0], 9).tolist()
            for sid, story in tracker._storylines.items()}


_ONE_PROCESS = """
import datetime as dt, json, sys
from pathlib import Path
from tests.conftest import World
from tests.test_saved_tracker import window_scores
from worker import storylines
builds = []
build = storylines.build_tracker
storylines.build_tracker = lambda *args, **kwargs: builds.append(1) or build(*args, **kwargs)
world = World(None, Path(sys.argv[1]))  # the feed server runs in the test
world.clock.now = dt.datetime.fromisoformat(sys.argv[2])
report = world.poll(force=True)
print(json.dumps({"built": len(builds), "new": report.new_items, "window": window_scores(world)}))
world.rt.close()
"""


def in_a_process_of_its_own(world: World, hash_seed: str) -> dict[str, Any]:
    """Polls `world` once in a new Python process whose strings hash by `hash_seed`: trackers
    built, new items, and `window_scores` after the poll."""
    done = subprocess.run([sys.executable, "-c", _ONE_PROCESS, str(world.config), world.clock.now.isoformat()],
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent,
                          env={**os.environ, "PYTHONHASHSEED": hash_seed})
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout))


def test_a_tracker_saved_by_one_process_decides_the_same_in_a_process_that_hashes_strings_otherwise(
        worlds: Callable[[], World]) -> None:
    """Python seeds its string hashing per process; the tracker's features are keyed by hashes
    of their own, so the next process, whatever its seed, decides as a worker that never stopped."""
    running, restarted = worlds(), worlds()
    first_batch(running)
    second_batch(running)

    restarted.server.routes["/korea"] = Reply(body=rss(FARM, date="Mon, 02 Dec 2024 08:00:00 GMT"))
    assert in_a_process_of_its_own(restarted, "1")["built"] == 1
    restarted.clock.now = LATER
    restarted.server.routes["/korea"] = Reply(body=rss([*FARM, CLOSING, BASEBALL, *VISITS],
                                                       date="Sat, 28 Dec 2024 10:00:00 GMT"))
    taken_up = in_a_process_of_its_own(restarted, "2")
    assert (taken_up["built"], taken_up["new"]) == (0, 2 + len(VISITS))
    assert decided(restarted) == decided(running)
    suggestions = "SELECT title, item_ids FROM suggestions ORDER BY id"
    assert list(restarted.db.query(suggestions)) == list(running.db.query(suggestions))
    assert taken_up["window"] == window_scores(running)
    assert all(any(scores) for scores in taken_up["window"].values())
    assert any(r["decision"] == "followup" for r in decided(running))


def test_removing_a_storyline_with_its_marks_and_adding_it_again_is_a_new_version(worlds: Callable[[], World]) -> None:
    world = worlds()
    first_batch(world)
    item = world.db.execute("SELECT id FROM items WHERE source != 'seeds' LIMIT 1").fetchone()[0]
    storylines.mark(world.db, item, "friendship-year", False, world.clock())
    before = store.storylines_version(world.db)
    world.db.execute("DELETE FROM marks")  # as removing the storyline does, marks_version as it was
    assert store.storylines_version(world.db) != before


def test_a_saved_state_that_fails_when_used_is_rebuilt_after_the_rollback(
        worlds: Callable[[], World], builds: list[int]) -> None:
    world = worlds()
    replayed, emerging = saved_after_a_first_process(world)
    replayed.tracker._corpus = None  # well formed, of the right classes, and broken
    world.db.execute("UPDATE saved_tracker SET state = ?", [saved_tracker.dumps((replayed, emerging))])
    second_batch(world)  # fails, rolled back: reported as not stored
    world.poll(force=True)  # rebuilt from the store, not taken up again
    assert len(builds) == 2
    assert any(r["decision"] == "followup" for r in decided(world))
