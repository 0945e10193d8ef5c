"""`storywatch eval tracking`: measure storyline tracking on labelled items (the TDT protocol).

Every story with at least 5 items is a storyline; its seeds are its first Nt items by
(published, id). All items are streamed in that order through `storylines.stream`, the loop the
worker itself replays: each item is decided against every storyline whose seeds came before it
(never against a storyline it seeds), before the tracker learns from it, and it never sees a label.

Per storyline: P_miss = misses / on-topic items, P_fa = false alarms / off-topic items. Overall:
both averaged over storylines; C_det = 1 · P_miss · 0.02 + 0.1 · P_fa · 0.98, normalized by
min(0.02, 0.098) = 0.02; and precision, recall and F1 pooled over all decisions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from worker import store, storylines
from worker.config import TrackingSettings
from worker.errors import StorywatchError
from worker.storylines import stream
from worker.tracking.decisions import Doc, StorylineSpec
from worker.tracking.settings import TrackerConfig
from worker.tracking.track import Tracker

MIN_STORY_ITEMS = 5
C_MISS, C_FA, P_TARGET = 1.0, 0.1, 0.02
REQUIRED = ("id", "story_id", "published", "title")


@dataclass(frozen=True, slots=True)
class Labelled:
    doc: Doc
    story_id: str
    story_title: str


@dataclass
class StoryResult:
    story_id: str
    title: str
    seeds: int = 0
    positives: int = 0
    negatives: int = 0
    misses: int = 0
    false_alarms: int = 0

    @property
    def p_miss(self) -> float:
        return self.misses / self.positives if self.positives else 0.0

    @property
    def p_fa(self) -> float:
        return self.false_alarms / self.negatives if self.negatives else 0.0

    @property
    def c_det_norm(self) -> float:
        return c_det_norm(self.p_miss, self.p_fa)

    def as_dict(self) -> dict[str, Any]:
        return {"story_id": self.story_id, "title": self.title, "seeds": self.seeds,
                "positives": self.positives, "negatives": self.negatives, "misses": self.misses,
                "false_alarms": self.false_alarms, "p_miss": round(self.p_miss, 6),
                "p_fa": round(self.p_fa, 6), "c_det_norm": round(self.c_det_norm, 6)}


def c_det_norm(p_miss: float, p_fa: float) -> float:
    c_det = C_MISS * p_miss * P_TARGET + C_FA * p_fa * (1 - P_TARGET)
    return c_det / min(C_MISS * P_TARGET, C_FA * (1 - P_TARGET))


@dataclass
class Evaluation:
    nt: int
    threshold: float
    stories: list[StoryResult]
    followups: list[tuple[str, str]] = field(default_factory=list)  # (storyline, item id) decided YES
    feedback: bool = False  # a reader marked what each storyline took

    def overall(self) -> dict[str, Any]:
        n = len(self.stories)
        p_miss = sum(s.p_miss for s in self.stories) / n if n else 0.0
        p_fa = sum(s.p_fa for s in self.stories) / n if n else 0.0
        tp = sum(s.positives - s.misses for s in self.stories)
        fp = sum(s.false_alarms for s in self.stories)
        fn = sum(s.misses for s in self.stories)
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"c_det_norm": round(c_det_norm(p_miss, p_fa), 6), "p_miss": round(p_miss, 6),
                "p_fa": round(p_fa, 6), "precision": round(precision, 6), "recall": round(recall, 6),
                "f1": round(f1, 6), "storylines": n,
                "decisions": sum(s.positives + s.negatives for s in self.stories),
                "nt": self.nt, "threshold": self.threshold, "feedback": self.feedback}

    def as_json(self) -> dict[str, Any]:
        return {"overall": self.overall(), "storylines": [s.as_dict() for s in self.stories]}


def load_dataset(path: Path) -> list[Labelled]:
    """The labelled items of a JSON Lines file, in stream order; a bad line is an error naming it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise StorywatchError(f"cannot read {path}: {exc}") from None
    items = [_labelled(path, n, line) for n, line in enumerate(lines, 1) if line.strip()]
    items.sort(key=lambda it: (it.doc.published, it.doc.id))
    ids = [it.doc.id for it in items]
    if len(set(ids)) != len(ids):
        raise StorywatchError(f"{path}: item ids must be unique")
    return items


def _labelled(path: Path, number: int, line: str) -> Labelled:
    where = f"{path}:{number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise StorywatchError(f"{where}: not JSON: {exc.msg}") from None
    if not isinstance(record, dict):
        raise StorywatchError(f"{where}: expected a JSON object")
    missing = [key for key in REQUIRED if record.get(key) in (None, "")]
    if missing:
        raise StorywatchError(f"{where}: missing {', '.join(missing)}")
    try:
        published = dt.datetime.fromisoformat(str(record["published"]).replace("Z", "+00:00"))
    except ValueError:
        raise StorywatchError(f"{where}: published: not an ISO 8601 date: {record['published']!r}") from None
    if published.tzinfo is None:
        published = published.replace(tzinfo=dt.timezone.utc)
    doc = Doc(str(record["id"]), str(record["title"]), str(record.get("text") or ""), published.timestamp())
    return Labelled(doc, str(record["story_id"]), str(record.get("story_title") or record["story_id"]))


def seed_sets(items: Sequence[Labelled], nt: int) -> dict[str, list[Labelled]]:
    """Story id → its first `nt` items, for the stories with at least 5 items."""
    by_story: dict[str, list[Labelled]] = {}
    for item in items:
        by_story.setdefault(item.story_id, []).append(item)
    return {sid: its[:nt] for sid, its in by_story.items() if len(its) >= MIN_STORY_ITEMS}


def evaluate(items: Sequence[Labelled], nt: int, config: TrackerConfig, feedback: bool = False) -> Evaluation:
    """The TDT protocol: each story's first ``nt`` items seed a storyline that decides on every
    later item. ``feedback``: each item a storyline took is marked right after the decision,
    a follow-up if it is of that story (a reader of what was delivered)."""
    if nt < 1:
        raise StorywatchError("--nt must be at least 1")
    seeds = seed_sets(items, nt)
    joins: dict[str, list[StorylineSpec]] = {}
    for sid, its in seeds.items():
        spec = StorylineSpec(sid, its[0].story_title, tuple(i.doc for i in its))
        joins.setdefault(its[-1].doc.id, []).append(spec)
    results = {sid: StoryResult(sid, its[0].story_title, seeds=len(its)) for sid, its in seeds.items()}
    story_of = {it.doc.id: it.story_id for it in items}
    outcome = Evaluation(nt, config.threshold, list(results.values()), feedback=feedback)
    tracker = Tracker(config)
    for doc, decisions in stream(tracker, (it.doc for it in items), joins):
        for d in decisions:
            _score(results[d.storyline_id], story_of[doc.id] == d.storyline_id, d.followup)
            if d.followup:
                outcome.followups.append((d.storyline_id, doc.id))
                if feedback:
                    tracker.mark(d.storyline_id, doc, story_of[doc.id] == d.storyline_id)
    return outcome


def _score(result: StoryResult, on_topic: bool, followup: bool) -> None:
    if on_topic:
        result.positives += 1
        result.misses += not followup
    else:
        result.negatives += 1
        result.false_alarms += followup


def format_table(evaluation: Evaluation) -> str:
    header = f"{'storyline':24} {'seeds':>5} {'on':>5} {'off':>6} {'miss':>5} {'fa':>5} {'P_miss':>7} {'P_fa':>7} {'C_norm':>7}"
    lines = [header, "-" * len(header)]
    for s in sorted(evaluation.stories, key=lambda s: (-s.c_det_norm, s.story_id)):
        lines.append(f"{s.story_id[:24]:24} {s.seeds:5d} {s.positives:5d} {s.negatives:6d} {s.misses:5d} "
                     f"{s.false_alarms:5d} {s.p_miss:7.3f} {s.p_fa:7.4f} {s.c_det_norm:7.3f}")
    o = evaluation.overall()
    reader = ", a reader marking what each storyline took" if evaluation.feedback else ""
    lines += ["", f"Nt = {o['nt']}, threshold {o['threshold']:g}{reader}: {o['storylines']} storylines, "
                  f"{o['decisions']:,} decisions",
              f"normalized C_det {o['c_det_norm']:.4f}  (P_miss {o['p_miss']:.4f}, P_fa {o['p_fa']:.5f})",
              f"precision {o['precision']:.4f}  recall {o['recall']:.4f}  F1 {o['f1']:.4f}"]
    return "\n".join(lines)


# ── eval beat: the config's storylines on a labelled beat feed ──────────────────────────────


@dataclass(frozen=True, slots=True)
class BeatItem:
    doc: Doc
    labels: dict[str, str]  # storyline id -> "yes", "related" or "no"


@dataclass
class BeatResult:
    storyline_id: str
    yes: int = 0
    found: int = 0  # yes items decided follow-ups
    false_alarms: int = 0  # "no" items decided follow-ups

    @property
    def recall(self) -> float:
        return self.found / self.yes if self.yes else 1.0

    @property
    def precision(self) -> float:
        decided = self.found + self.false_alarms
        return self.found / decided if decided else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"storyline": self.storyline_id, "yes": self.yes, "found": self.found,
                "false_alarms": self.false_alarms, "recall": round(self.recall, 4),
                "precision": round(self.precision, 4)}


def load_beat(path: Path) -> list[BeatItem]:
    """Labelled beat items (JSON Lines: id, published, title, text, feed, labels), in time order."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise StorywatchError(f"cannot read {path}: {exc}") from None
    items = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        labelled = _labelled(path, number, _with_story(line))
        record = json.loads(line)
        if not isinstance(record.get("labels"), dict):
            raise StorywatchError(f"{path}:{number}: missing labels")
        doc = dataclasses.replace(labelled.doc, source=str(record.get("feed") or "beat"))
        items.append(BeatItem(doc, {str(k): str(v) for k, v in record["labels"].items()}))
    items.sort(key=lambda it: (it.doc.published, it.doc.id))
    return items


def _with_story(line: str) -> str:
    """A beat line has labels instead of a story id: give it one, for the common reader."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return line
    return json.dumps({**record, "story_id": "beat"}) if isinstance(record, dict) else line


def evaluate_beat(items: Sequence[BeatItem], specs: Sequence[StorylineSpec], config: TrackerConfig,
                  feedback: bool = False, find_missed: int = 0,
                  by_month: dict[str, BeatResult] | None = None) -> list[BeatResult]:
    """Every storyline from the start, the items streamed in time order through the tracker (the
    worker's loop); per storyline, "yes" items found and "no" items taken ("related": not scored).

    ``feedback``: a reader marks each item a storyline took, right after the decision, with its
    label (TREC's adaptive filtering; "related" is left unmarked); ``find_missed``: the first N
    "yes" items each storyline missed are marked too, as by a reader who searched. ``by_month``
    collects the storylines' counts pooled by month of publication (learning over time)."""
    tracker = Tracker(config)
    for spec in specs:
        tracker.add_storyline(spec)
    results = {spec.id: BeatResult(spec.id) for spec in specs}
    labels_of = {it.doc.id: it.labels for it in items}
    missed_marks = dict.fromkeys(results, find_missed)
    for doc, decisions in stream(tracker, (it.doc for it in items), {}):
        taken = {d.storyline_id for d in decisions.followups}
        labels = labels_of[doc.id]
        month = dt.datetime.fromtimestamp(doc.published, dt.timezone.utc).strftime("%Y-%m")
        if by_month is not None:
            by_month.setdefault(month, BeatResult(month))
        for sid in results:
            label = labels.get(sid, "no")
            for result in (results[sid], by_month[month]) if by_month is not None else (results[sid],):
                result.yes += label == "yes"
                result.found += label == "yes" and sid in taken
                result.false_alarms += label == "no" and sid in taken
            if feedback and sid in taken and label != "related":
                tracker.mark(sid, doc, label == "yes")  # the reader reads what was delivered
            elif label == "yes" and sid not in taken and missed_marks[sid] > 0:
                missed_marks[sid] -= 1  # ...and searched for what was not
                tracker.mark(sid, doc, True)
    return list(results.values())


MARKS_ITEMS = 50_000
"""The most stored items `eval marks` replays (about a minute of tracking)."""


def evaluate_marks(db: Database, settings: TrackingSettings) -> list[BeatResult]:
    """The store's storylines measured on the reader's own marks, in time order: the stored items
    from a window before the first marked one to the last, streamed through a tracker built from
    the storylines' seeds; each marked item is decided before its marks are revealed to the
    tracker (as they were to the worker: after it decided). Per storyline with marks: the "yes"
    marks, those it took (found), and the "no" marks it took (false alarms)."""
    marks = store.marks(db)
    marked = store.items_by_id(db, [m.item_id for m in marks])
    if not marked:
        return []
    by_item: dict[str, list[store.Mark]] = {}
    for m in marks:
        by_item.setdefault(str(m.item_id), []).append(m)
    times = [item.published_at for item in marked.values()]
    recent = store.recent_originals(db, min(times) - settings.window, max(times), MARKS_ITEMS)
    defs = store.active_storylines(db)
    seeds = store.items_by_id(db, [i for s in defs for i in s.seed_ids])
    tracker = Tracker(storylines.tracker_config(settings))
    for definition in defs:
        tracker.add_storyline(storylines.spec_of(definition, seeds))
    results = {s.id: BeatResult(s.id) for s in defs if any(m.storyline_id == s.id for m in marks)}
    for doc, decisions in stream(tracker, (storylines.doc_of(item) for item in recent), {}):
        taken = {d.storyline_id for d in decisions.followups}
        for m in by_item.get(doc.id, ()):
            result = results.get(m.storyline_id)
            if result is None:
                continue
            result.yes += m.followup
            result.found += m.followup and m.storyline_id in taken
            result.false_alarms += not m.followup and m.storyline_id in taken
            tracker.mark(m.storyline_id, doc, m.followup)
    return list(results.values())


def format_months(months: Mapping[str, BeatResult]) -> str:
    """Pooled recall and precision month by month: how a storyline learns over time."""
    lines = [f"{'month':8} {'yes':>4} {'found':>5} {'false':>5} {'recall':>7} {'precision':>9}"]
    lines += [f"{m:8} {r.yes:4d} {r.found:5d} {r.false_alarms:5d} {_rate(r.recall, r.yes):>7} "
              f"{_rate(r.precision, r.found + r.false_alarms):>9}" for m, r in sorted(months.items())]
    return "\n".join(lines)


def _rate(value: float, out_of: int) -> str:
    return f"{value:.3f}" if out_of else "-"  # nothing to count that month


def format_beat(results: Sequence[BeatResult]) -> str:
    lines = [f"{'storyline':24} {'yes':>4} {'found':>5} {'false':>5} {'recall':>7} {'precision':>9}"]
    for r in results:
        lines.append(f"{r.storyline_id[:24]:24} {r.yes:4d} {r.found:5d} {r.false_alarms:5d} {r.recall:7.3f} "
                     f"{r.precision:9.3f}")
    pooled = pooled_beat(results)
    lines.append(f"\npooled: recall {pooled['recall']:.3f}  precision {pooled['precision']:.3f}")
    return "\n".join(lines)


def pooled_beat(results: Sequence[BeatResult]) -> dict[str, Any]:
    total = BeatResult("pooled", sum(r.yes for r in results), sum(r.found for r in results),
                       sum(r.false_alarms for r in results))
    return total.as_dict()
