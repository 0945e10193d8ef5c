"""The writer's clusters: which stored clusters a batch joins, and which stories it brought.

A batch is judged against the store and the window (ingest/dedupe), then stored; here the
copies it stored settle their clusters' representatives, the items that link clusters join
them (store.join_clusters holds the rule), and the stories to track as new are worked out
after those joins. Called by pipeline.ingest_items, the one writer.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlite_utils import Database

from worker import store
from worker.ingest import dedupe
from worker.models import Item
from worker.window import Window


def join(db: Database, window: Window, index: dedupe.Index, verdicts: Sequence[dedupe.Verdict],
                   id_at: dict[int, int]) -> dict[int, int]:
    """Each copy stored settles its cluster's representative, and an item that copies items of
    other clusters (a new copy, or a revision's new text) joins their clusters to its own
    (store.join_clusters): the clusters come out the same whatever order their items arrived
    in. The index follows. Returns each cluster id that changed → the id of the cluster it is
    in now (the ids of the items that no longer represent a cluster)."""
    joined: dict[int, int] = {}
    for n, verdict in enumerate(verdicts):
        item_id = id_at.get(n) or _revised_alone(db, verdict)
        if item_id and (verdict.kind in ("exact", "near", "short") or verdict.joins):
            others = [m.item_id for m in verdict.joins] + [id_at[b] for b in verdict.batch_joins if id_at.get(b)]
            similarity = verdict.match.similarity if verdict.match else None
            kind = verdict.kind if verdict.kind in ("exact", "near", "short") else "near"
            joined.update(store.join_clusters(db, [item_id, *others], kind, similarity))
    for old in joined:  # a cluster joined twice in a batch: to the last one it is in
        while joined[old] in joined:
            joined[old] = joined[joined[old]]
    if joined:
        for searched in {id(window.index): window.index, id(index): index}.values():
            searched.recluster(joined)
    return joined


def _revised_alone(db: Database, verdict: dedupe.Verdict) -> int:
    """A revised item that is alone in its cluster, whose new text copies other stories (a
    truncated text completed): it joins them. One with copies of its own stays: a feed that
    reuses an entry for another story must not join two stories."""
    if verdict.kind != "revision" or not verdict.joins or verdict.stored is None:
        return 0
    return verdict.stored.id if store.cluster_size(db, verdict.stored.id) == 1 else 0


def new_stories(db: Database, stored: Sequence[tuple[dedupe.Verdict, int]],
                 joined: set[int]) -> tuple[tuple[int, Item], ...]:
    """The stories a batch brought, each by the item that represents it (id, item): what is
    tracked as new. After a join, a story one of whose items was stored before is not new (its
    representative was tracked, or handed over its links), and a copy may represent a new one."""
    if not joined:
        return tuple((item_id, v.item) for v, item_id in stored if v.kind == "new")
    items = {item_id: v.item for v, item_id in stored}
    return tuple((cluster, items[cluster]) for cluster in store.clusters_begun(db, list(items)))
