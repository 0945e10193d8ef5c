"""A feed whose writes are rolled back leaves nothing behind in memory either.

The dedupe window and the tracker are changed while a feed is stored; when its transaction
rolls back (a disk hiccup, a bug), what they learnt must go with it, or the next feed is judged
against items the store does not have: a real feed's article stored as a copy of itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from worker import store, storylines
from worker.track import Doc
from tests.conftest import World
from tests.feedserver import Reply, rss

WORDS = ("Pyongyang and Beijing marked the anniversary of their ties with a ceremony at the "
         "friendship tower where delegations laid wreaths and officials spoke of cooperation ").split()
ARTICLE = "<p>" + " ".join(WORDS[i % len(WORDS)] + (str(i // len(WORDS)) if i % 7 == 0 else "")
                           for i in range(400)) + "</p>"


def _fail_once_for(monkeypatch: pytest.MonkeyPatch, feed_id: int, key: str = "boilerplate") -> list[int]:
    """store.update_feed raises once for one feed when it writes `key`: a write that fails inside
    the feed's transaction (the boilerplate model is written after dedupe, the polling state
    after tracking)."""
    real, failures = store.update_feed, []

    def update_feed(db: object, fid: int, **state: object) -> None:
        if fid == feed_id and key in state and not failures:
            failures.append(fid)
            raise OSError("disk I/O error (injected)")
        real(db, fid, **state)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "update_feed", update_feed)
    return failures


def _poll_a_then_b(w: World) -> dict[str, str]:
    """Feed A is stored (and rolled back) before feed B: the order in which the bug showed."""
    reports = [*w.poll(feed_url=w.server.url("/a")).reports, *w.poll(feed_url=w.server.url("/b")).reports]
    return {r.feed.url.rsplit("/", 1)[1]: r.outcome for r in reports}


def test_a_rolled_back_feed_leaves_no_phantom_in_the_dedupe_window(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world("/a", "/b")
    w.server.routes["/a"] = Reply(body=rss([("a-1", "Friendship tower ceremony", ARTICLE)]))
    w.server.routes["/b"] = Reply(body=rss([("b-1", "Friendship tower ceremony held", ARTICLE)]))
    failures = _fail_once_for(monkeypatch, int(w.feed("/a")["id"]))  # type: ignore[arg-type]

    first = _poll_a_then_b(w)
    assert failures and first == {"a": "error", "b": "new"}
    [b_item] = w.items()
    assert b_item["feed_id"] == w.feed("/b")["id"]
    assert b_item["dup_of"] is None and b_item["dup_kind"] is None  # an original, not a copy of itself

    w.clock.advance(dt.timedelta(hours=1))
    w.poll(force=True)  # feed A again: now its copy joins B's cluster
    a_item, b_again = sorted(w.items(), key=lambda r: r["feed_id"] != w.feed("/a")["id"])
    assert b_again["id"] == b_item["id"] and a_item["dup_of"] == b_item["id"]
    assert a_item["cluster_id"] == b_item["cluster_id"]


TOWER = """
[[storylines]]
id = "tower"
title = "The friendship tower"
keywords = ["friendship tower"]
"""


def test_a_rolled_back_feed_leaves_no_phantom_in_the_tracker(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world("/a", "/b", extra=TOWER)
    today = "Mon, 23 Nov 2026 10:00:00 GMT"  # within the tracker's window (a rebuild replays it)
    w.server.routes["/a"] = Reply(body=rss([("a-1", "Friendship tower ceremony", ARTICLE)], date=today))
    w.server.routes["/b"] = Reply(body=rss([("b-1", "Wreaths at the Friendship Tower",
                                             "<p>Officials laid wreaths at the Friendship Tower in Pyongyang.</p>")],
                                           date=today))
    _fail_once_for(monkeypatch, int(w.feed("/a")["id"]), "last_success_at")  # type: ignore[arg-type]
    assert _poll_a_then_b(w) == {"a": "error", "b": "new"}
    # Feed B's article took the rowid feed A's rolled-back item had: it is decided as itself.
    [b_item] = w.items()
    assert [r["item_id"] for r in w.db.query("SELECT item_id FROM storyline_items WHERE storyline_id = 'tower' "
                                             "AND decision = 'followup'")] == [b_item["id"]]
    # The live tracker is the one the store makes: same statistics, same profile, same scores.
    live = w.rt.tracking.current(w.db, w.clock())
    rebuilt = storylines.build_tracker(w.db, w.rt.settings.tracking, w.clock()).tracker
    probe = Doc("probe", "Ceremony at the tower", ARTICLE[3:200], w.clock().timestamp())
    assert live.n_docs == rebuilt.n_docs == 1
    assert list(live.decide(probe).raw) == list(rebuilt.decide(probe).raw)
