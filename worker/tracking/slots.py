"""The storylines by slot: everything an item is decided with, one entry per slot in arrays kept
in step here, so that an item is decided against every storyline in a few vector operations."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from worker.tracking.backgrounds import Backgrounds
from worker.tracking.decisions import Decisions, Doc, Idle
from worker.tracking.profiles import Storyline
from worker.tracking.settings import TrackerConfig
from worker.tracking.vectors import ProfileMatrix, Unit, grown


class SlotTable:
    """Per slot: the storyline, when it starts deciding (its first seed's time), its last
    activity, since when it has been tracked, how long a silence expires it, its threshold
    knob, its centroid (a column of one matrix) and its background scores (two rows: items with
    text, headline-only items). A removed storyline's slot is reused."""

    def __init__(self, config: TrackerConfig) -> None:
        self._config = config
        self.by_slot: list[Storyline | None] = []
        self.ids: list[str] = []
        """Storyline ids by slot ("" where free); a new list at each change, so that decisions
        made with every slot live share it."""
        self.starts = np.zeros(0)
        self.activity = np.zeros(0)
        self.expires = np.zeros(0)
        self.since = np.zeros(0)
        self.knob = np.zeros(0)
        self.since_max = -math.inf
        """The latest time since which a storyline has been tracked (free slots' too)."""
        self.backgrounds = Backgrounds(config)
        self.index = ProfileMatrix(config.bucket_key)
        self.seeded: dict[str, list[int]] = {}
        """Seed id -> slots of the storylines it seeds (they do not decide on it)."""
        self.epoch = 0
        """Changes whenever a storyline is added or removed."""
        self._free: list[int] = []

    @property
    def n(self) -> int:
        return len(self.by_slot)

    def place(self, story: Storyline) -> None:
        """Give the storyline a slot, and set its values there."""
        if self._free:
            story.slot = self._free.pop()
        else:
            story.slot = self.n
            self.by_slot.append(None)
            self.starts, self.activity, self.expires, self.knob, self.since = (
                grown(a, self.n) for a in (self.starts, self.activity, self.expires, self.knob, self.since))
            self.backgrounds.grow(2 * self.n)
        slot, spec = story.slot, story.spec
        self.by_slot[slot] = story
        self.ids = [s.spec.id if s is not None else "" for s in self.by_slot]
        self.starts[slot] = min((s.published for s in spec.seeds), default=0.0) if spec.starts is None else spec.starts
        self.activity[slot] = max((s.published for s in spec.seeds), default=0.0)
        self.since[slot] = -math.inf if spec.tracked_since is None else spec.tracked_since
        self.since_max = float(self.since.max())
        self.expires[slot] = math.inf if spec.expires_after is None else spec.expires_after
        self.knob[slot] = self._config.threshold if spec.threshold is None else spec.threshold
        for seed_id in story.seed_ids:
            self.seeded.setdefault(seed_id, []).append(slot)
        self.epoch += 1

    def free(self, story: Storyline) -> None:
        self.index.drop(story.slot)
        self._free.append(story.slot)
        self.by_slot[story.slot] = None
        self.ids = [s.spec.id if s is not None else "" for s in self.by_slot]
        self.starts[story.slot] = math.inf  # a free slot decides nothing
        for seed_id in story.seed_ids:
            slots = self.seeded[seed_id]
            slots.remove(story.slot)
            if not slots:
                del self.seeded[seed_id]
        self.epoch += 1

    def raise_activity(self, slot: int, published: float) -> None:
        self.activity[slot] = max(self.activity[slot], published)

    def central_scores(self, unit: Unit) -> npt.NDArray[np.float64]:
        """Cosine of the item with the centroid of every storyline, by slot."""
        if not len(unit.values):
            return np.zeros(self.n)
        return self.index.dots(unit.features, unit.values, self.n, unit.buckets)

    def silence(self, doc: Doc) -> npt.NDArray[np.float64]:
        """Per slot, how long the storyline had been quiet when ``doc`` was published: since its
        last seed or follow-up, or, for an item published since it was tracked, since then."""
        activity = np.maximum(self.activity, self.since)
        if doc.published < self.since_max:  # tracked since after it, for some: their last activity
            activity = np.where(doc.published >= self.since, activity, self.activity)
        silence: npt.NDArray[np.float64] = np.maximum(doc.published - activity, 0.0)
        return silence

    def live(self, doc: Doc, silence: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """By slot: whether the storyline decides on ``doc`` (free slots: starts inf)."""
        live: npt.NDArray[np.bool_] = (doc.published >= self.starts) & (silence <= self.expires)
        for slot in self.seeded.get(doc.id, ()):
            live[slot] = False  # a storyline decides on what follows its seeds
        return live

    def idle(self, doc: Doc) -> dict[str, Idle]:
        """The storylines that make no decision on ``doc``, and why."""
        silence = self.silence(doc)
        idle = {}
        for slot in np.flatnonzero(~self.live(doc, silence)).tolist():
            story = self.by_slot[slot]
            if story is None:
                continue
            if slot in self.seeded.get(doc.id, ()):
                idle[story.spec.id] = Idle("seed", 0.0)
            elif doc.published < self.starts[slot]:
                idle[story.spec.id] = Idle("early", float(self.starts[slot]))
            else:
                idle[story.spec.id] = Idle("expired", float(doc.published - silence[slot] + self.expires[slot]))
        return idle

    def add_background(self, decisions: Decisions) -> None:
        """The NO decisions' scores join their storylines' backgrounds."""
        no = ~decisions.followup
        rows, raw = decisions.rows[no], decisions.raw[no]
        if decisions.epoch != self.epoch:  # storylines came or went since: find them by id
            found_rows, found_raw = [], []
            for k in np.flatnonzero(no).tolist():
                storyline_id = decisions.storyline_ids[k]
                slot = self.ids.index(storyline_id) if storyline_id in self.ids else None
                if slot is not None:  # same kind of row (item with text, headline-only), its slot
                    found_rows.append(2 * slot + int(decisions.rows[k]) % 2)
                    found_raw.append(float(decisions.raw[k]))
            rows, raw = np.array(found_rows, np.intp), np.array(found_raw)
        self.backgrounds.add(rows, raw)
