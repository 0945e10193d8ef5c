"""An edited item is matched by its new text at once: the running worker's dedupe window follows
the store when a revision rewrites an item, as a restarted worker's window (loaded from the store)
would. Otherwise a near copy of the revised text on another site is stored as a second original."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from tests.conftest import World
from tests.feedserver import Reply, rss
from tests.test_outside_writes import NEAR_COPY, ORIGINAL, TODAY, UNRELATED
from worker import pipeline, store
from worker.cycle import poll_feeds
from worker.config import load_settings


@pytest.mark.parametrize("restarted", [False, True], ids=["running-worker", "restarted-worker"])
def test_a_near_copy_of_a_revised_item_joins_it(world: Callable[..., World], restarted: bool) -> None:
    w = world("/a", "/b")
    w.server.routes["/a"] = Reply(body=rss([("a-1", "Friendship tower ceremony", UNRELATED)], date=TODAY))
    w.poll()
    w.clock.now += dt.timedelta(hours=1)
    w.server.routes["/a"] = Reply(body=rss([("a-1", "Friendship tower ceremony", ORIGINAL)], date=TODAY))
    w.poll(force=True, feed_url=w.server.url("/a"))  # the article is rewritten: a revision
    item_id, revision = w.db.execute("SELECT id, revision FROM items WHERE guid = 'a-1'").fetchone()
    assert revision > 1
    w.server.routes["/b"] = Reply(body=rss([("b-1", "Ceremony at the friendship tower", NEAR_COPY)], date=TODAY))
    w.clock.now += dt.timedelta(hours=1)
    rt = w.rt
    if restarted:
        settings = load_settings(w.config)
        rt = pipeline.open_runtime(store.open_store(settings.storage.path), settings, clock=w.clock)
    poll_feeds(rt, force=True, feed_url=w.server.url("/b"))
    if restarted:
        rt.close()
    assert tuple(w.db.execute("SELECT dup_of, dup_kind FROM items WHERE guid = 'b-1'").fetchone()) == (item_id, "near")
