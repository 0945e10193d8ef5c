"""Starting from the config: feeds synced, seed documents stored, storylines linked to their seeds."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from worker import store, storylines
from worker.ingest import normalize, seeds
from worker.ingest.links import canonical_url
from worker.config import Settings, StorylineConfig, is_file_seed, item_seed
from worker.errors import StorywatchError
from worker.models import Item
from worker.pipeline import fill_fingerprints, ingest_items
from worker.window import Window


@dataclass(frozen=True, slots=True)
class InitReport:
    feeds: dict[str, int]  # added / updated / removed
    seeds_read: int
    seeds_added: int
    storylines: dict[str, int]  # storyline id → seed items linked
    unresolved: tuple[str, ...]  # "storyline: URL" seeds not in the store yet


def initialize(db: Database, settings: Settings, now: dt.datetime) -> InitReport:
    """Bring the store in line with the config; running it again changes nothing.

    Seed documents go through the same dedupe and store path as feed items (source "seeds").
    """
    docs = seeds.read_seed_folder(settings.seeds.path) if settings.seeds.path else []
    window = Window(db, settings, now)
    with store.transaction(db):
        feeds = store.sync_feeds(db, settings.feeds, now)
        fill_fingerprints(db, window.clutter)
        added = ingest_items(db, window, None, [normalize.seed_item(doc, now, window.clutter) for doc in docs], now)
        store.sync_storylines(db, settings.storylines, now)
        linked: dict[str, int] = {}
        unresolved: list[str] = []
        for storyline in settings.storylines:
            item_ids, missing = _seed_item_ids(db, window, storyline, now)
            store.set_storyline_seeds(db, storyline.id, item_ids, now)
            linked[storyline.id] = len(item_ids)
            unresolved += [f"{storyline.id}: {url}" for url in missing]
        store.index_pending(db)
    return InitReport(feeds, len(docs), added.new + added.copies, linked, tuple(unresolved))


def new_storyline(db: Database, settings: Settings, storyline: StorylineConfig, now: dt.datetime, *,
                  suggestion_id: int | None = None) -> tuple[int, int]:
    """`storylines add`: store the definition and its seed items (a suggestion's items, if it
    starts from one), then look back over the recent window. Returns (seeds, follow-ups found)."""
    if store.storyline_exists(db, storyline.id):
        raise StorywatchError(f"storyline {storyline.id!r} exists already",
                              hint="choose another ID; a config storyline is changed in the config")
    window = Window(db, settings, now)
    with store.transaction(db):
        item_ids, missing = _seed_item_ids(db, window, storyline, now)
        if missing:
            raise StorywatchError(f"seed not in the store: {', '.join(missing)}",
                                  hint="poll or backfill its feed first, or give the article as a text file")
        if suggestion_id is not None:
            found = store.suggestion(db, suggestion_id)
            assert found is not None
            grouped = store.items_by_id(db, found.item_ids)  # by their stories' representatives now
            item_ids += [i for i in dict.fromkeys(grouped[i].cluster_id for i in found.item_ids if i in grouped)
                         if i not in item_ids]
            if not store.adopt_suggestion(db, suggestion_id, storyline.id):  # another command took it meanwhile
                raise StorywatchError(f"suggestion #{suggestion_id} is {found.status} already")
        if not item_ids and not storyline.keywords:
            raise StorywatchError("a storyline needs seeds (--seed, --from-suggestion) or keywords (--keyword)")
        storylines.add_storyline(db, storyline, item_ids, now)
    replayed = storylines.build_tracker(db, settings.tracking, now)
    return len(item_ids), replayed.looked_back.get(storyline.id, 0)


def _seed_item_ids(
    db: Database, window: Window, storyline: StorylineConfig, now: dt.datetime
) -> tuple[list[int], list[str]]:
    """The stored items a storyline's seeds name; seed files not stored yet are stored now."""
    item_ids: list[int] = []
    missing: list[str] = []
    for seed in storyline.seeds:
        if is_file_seed(seed):
            item_ids.append(_seed_file_item(db, window, Path(seed), storyline.id, now))
            continue
        found = _stored_seed(db, seed)
        if found is None:
            missing.append(seed)
        else:
            item_ids.append(found)
    return item_ids, missing


def _stored_seed(db: Database, seed: str) -> int | None:
    """The story a seed names by ID or by link, by the item that represents it (a copy names its
    story: the representative may change as copies arrive), None if none is stored yet; a link
    that several stories share (a site's news page for every entry) must be given by ID."""
    if (item_id := item_seed(seed)) is not None:
        named = store.items_by_id(db, [item_id]).get(item_id)
        return named.cluster_id if named else None
    found = store.story_ids_by_url(db, canonical_url(seed) or seed)
    if len(found) > 1:
        shown = ", ".join(f"#{i}" for i in found[:5])
        raise StorywatchError(f"{len(found)} stored stories have the link {seed} ({shown})",
                              hint="give the one you mean by its ID, e.g. --seed #" + str(found[0]))
    return found[0] if found else None


def _seed_file_item(db: Database, window: Window, path: Path, storyline_id: str, now: dt.datetime) -> int:
    doc = seeds.read_storyline_seed(storyline_id, path)
    item: Item = normalize.seed_item(doc, now, window.clutter)
    known = store.item_id_by_identity(db, item.identity)
    if known is None:
        with store.transaction(db):
            # Pruned while no storyline linked it (news like any other then): a seed again, it is stored
            # again. Its text stays refused to feeds (the tombstone of a pruned article it copies).
            lifted = store.lift_tombstones(db, [item.identity, item.content_sha256])
            ingest_items(db, window, None, [item], now)
            store.put_back_tombstones(db, [t for t in lifted if t[0] != item.identity])
        known = store.item_id_by_identity(db, item.identity)
    assert known is not None
    return store.items_by_id(db, [known])[known].cluster_id  # its story's representative
