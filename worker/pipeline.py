"""The pipeline: wires the stages together; holds no business logic of its own.

    config ─► initialize: feeds synced, seed documents stored, storylines linked to their seeds
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from worker import normalize, seeds, store
from worker.config import Settings, StorylineConfig, is_web_url
from worker.errors import SeedError
from worker.models import Item


@dataclass(frozen=True, slots=True)
class InitReport:
    feeds: dict[str, int]  # added / updated / removed
    seeds_read: int
    seeds_added: int
    storylines: dict[str, int]  # storyline id → seed items linked
    unresolved: tuple[str, ...]  # "storyline: URL" seeds not in the store yet


def initialize(db: Database, settings: Settings, now: dt.datetime) -> InitReport:
    """Bring the store in line with the config; running it again changes nothing."""
    docs = seeds.read_seed_folder(settings.seeds.path) if settings.seeds.path else []
    with store.transaction(db):
        feeds = store.sync_feeds(db, settings.feeds, now)
        added = store.save_items(db, [normalize.seed_item(doc, now) for doc in docs])
        store.sync_storylines(db, settings.storylines, now)
        linked: dict[str, int] = {}
        unresolved: list[str] = []
        for storyline in settings.storylines:
            item_ids, missing = _seed_item_ids(db, storyline, now)
            store.set_storyline_seeds(db, storyline.id, item_ids, now)
            linked[storyline.id] = len(item_ids)
            unresolved += [f"{storyline.id}: {url}" for url in missing]
    return InitReport(feeds, len(docs), len(added), linked, tuple(unresolved))


def _seed_item_ids(
    db: Database, storyline: StorylineConfig, now: dt.datetime
) -> tuple[list[int], list[str]]:
    """The stored items a storyline's seeds name; seed files not stored yet are stored now."""
    item_ids: list[int] = []
    missing: list[str] = []
    for seed in storyline.seeds:
        if is_web_url(seed):
            item_id = store.item_id_by_url(db, seed)
            if item_id is None:
                missing.append(seed)
                continue
        else:
            item_id = _seed_file_item(db, Path(seed), storyline.id, now)
        item_ids.append(item_id)
    return item_ids, missing


def _seed_file_item(db: Database, path: Path, storyline_id: str, now: dt.datetime) -> int:
    try:
        doc = seeds.read_seed_file(path)
    except SeedError as exc:
        raise SeedError(f"storyline {storyline_id}: {exc.message}", hint=exc.hint) from None
    item: Item = normalize.seed_item(doc, now)
    known = store.item_id_by_identity(db, item.identity)
    if known is not None:
        return known
    return store.save_items(db, [item])[0]
