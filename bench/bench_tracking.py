"""Storyline tracking: accuracy on the labelled dev file and speed with 50 storylines.

Accuracy: `storywatch eval tracking` (worker/evaluate.py, the TDT protocol) on
../shared/eval/tracking-dev.jsonl with the shipped defaults, at Nt = 4 and Nt = 1; beside it the
baseline the brief names: a TF-IDF centroid of the seeds with one global cosine threshold, the
threshold tuned on the same file (an optimistic baseline: it sees the answers).

Speed: 50 storylines (the first 4 items of dev stories, cycled), then 20,000 items (the dev items
again and again with fresh ids and times) through Tracker.process on one core; items/s of the
first and of the last 5,000, CPU time. The target is on scoring: the writer's share, the text
analysed beforehand where the item was parsed (analysis.prepare, as the worker's parsing processes
do); beside it the rate of that analysis alone, and one core doing both.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from bench import Result
from worker.evaluate import Labelled, c_det_norm, evaluate, load_dataset, seed_sets
from worker.tracking.textproc import STOPWORDS
from worker.tracking.analysis import prepare
from worker.tracking.decisions import Doc, StorylineSpec
from worker.tracking.settings import TrackerConfig
from worker.tracking.track import Tracker

DEV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "tracking-dev.jsonl"
STORYLINES, DOCS, BLOCK = 50, 20_000, 5_000


def run(work: Path) -> list[Result]:
    if not DEV.exists():
        return [Result("tracking: dev file missing", 0.0, "-", "", f"{DEV} not found: accuracy not measured")]
    items = load_dataset(DEV)
    results = []
    for nt, target in ((4, "<= 0.06"), (1, "<= 0.12")):
        o = evaluate(items, nt, TrackerConfig()).overall()
        note = f"P_miss {o['p_miss']:.4f}, P_fa {o['p_fa']:.5f}, {o['storylines']} storylines, {o['decisions']:,} decisions"
        results += [
            Result(f"tracking Nt={nt}: normalized C_det", o["c_det_norm"], "", target, note),
            Result(f"tracking Nt={nt}: F1", o["f1"], "", ">= 0.92" if nt == 4 else "",
                   f"precision {o['precision']:.4f}, recall {o['recall']:.4f}"),
        ]
        base_c, base_f1, threshold = baseline(items, nt)
        results.append(Result(f"baseline Nt={nt}: normalized C_det", base_c, "", "",
                              f"TF-IDF seed centroid, one cosine threshold tuned on the file ({threshold:.3f}); F1 {base_f1:.3f}"))
    first, last, cpu = speed(items, prepared=False)
    scored_first, scored_last, scored_cpu = speed(items, prepared=True)
    results += [
        Result("tracking, 50 storylines, scoring on one core (text analysed where parsed): items/s, first 5k",
               scored_first, "items/s", ">= 2000", f"the writer's share in the worker; CPU {scored_cpu:.1f} s for {DOCS:,} items"),
        Result("tracking, 50 storylines, scoring on one core: items/s, last 5k", scored_last, "items/s", ">= 2000",
               f"last/first {scored_last / scored_first:.2f} (the first 5k adapt the 50 profiles)"),
        Result("tracking: text analysis alone (analysis.prepare, in the parsing processes): items/s",
               analysis_rate(items), "items/s", ""),
        Result("tracking, 50 storylines, analysis and scoring both on one core: items/s, first 5k", first, "items/s", "",
               f"CPU {cpu:.1f} s for {DOCS:,} items"),
        Result("tracking, 50 storylines, analysis and scoring both on one core: items/s, last 5k", last, "items/s", "",
               f"last/first {last / first:.2f}"),
    ]
    return results


# ── speed ────────────────────────────────────────────────────────────────────────────────────


def speed(items: Sequence[Labelled], prepared: bool) -> tuple[float, float, float]:
    """Items/s of the first and last 5,000 and the CPU time: each item analysed by the tracker
    itself (one core does everything), or (`prepared`) analysed beforehand with analysis.prepare,
    as the worker's parsing processes do, so the time is the writer's share: scoring."""
    tracker = Tracker(TrackerConfig())
    for doc in repeated(items, 1000, items[0].doc.published - 1e6, "w"):  # a warm corpus first
        tracker.observe(doc)
    stories = [its for its in seed_sets(items, 4).values() if len(its) == 4]
    for k in range(STORYLINES):
        seeds = stories[k % len(stories)]
        tag = f"#{k}"
        tracker.add_storyline(StorylineSpec(seeds[0].story_id + tag, seeds[0].story_title,
                                            tuple(Doc(s.doc.id + tag, s.doc.title, s.doc.text, s.doc.published) for s in seeds)))
    docs = list(repeated(items, DOCS, items[-1].doc.published, "s"))
    if prepared:
        docs = [replace(doc, prepared=prepare(doc.title, doc.text)) for doc in docs]
    rates = []
    cpu_started = time.process_time()
    for start in range(0, DOCS, BLOCK):
        began = time.process_time()
        for doc in docs[start:start + BLOCK]:
            tracker.process(doc)
        rates.append(BLOCK / (time.process_time() - began))
    return rates[0], rates[-1], time.process_time() - cpu_started


def analysis_rate(items: Sequence[Labelled]) -> float:
    """Items/s of analysis.prepare alone (the parsing processes' share), on the same items."""
    docs = list(repeated(items, BLOCK, 0.0, "a"))
    began = time.process_time()
    for doc in docs:
        prepare(doc.title, doc.text)
    return BLOCK / (time.process_time() - began)


def repeated(items: Sequence[Labelled], total: int, start: float, tag: str) -> Iterator[Doc]:
    n = 0
    while n < total:
        for it in items:
            if n >= total:
                return
            yield Doc(f"{it.doc.id}#{tag}{n}", it.doc.title, it.doc.text, start + 60.0 * n)
            n += 1


# ── the baseline ─────────────────────────────────────────────────────────────────────────────

_WORD = re.compile(r"[a-z0-9]+")


def baseline(items: Sequence[Labelled], nt: int) -> tuple[float, float, float]:
    """(normalized C_det, F1, threshold) of the best single cosine threshold on this file."""
    seeds = seed_sets(items, nt)
    joins: dict[str, list[str]] = {}
    for sid, its in seeds.items():
        joins.setdefault(its[-1].doc.id, []).append(sid)
    df: Counter[str] = Counter()
    n_docs = 0
    tf_of: dict[str, dict[str, float]] = {}
    centroids: dict[str, dict[str, float]] = {}
    scored: list[tuple[str, float, bool]] = []  # storyline, cosine, on topic
    for it in items:
        tf = _terms(it.doc)
        tf_of[it.doc.id] = tf
        vec = _unit(tf, df, n_docs)
        for sid, centroid in centroids.items():
            if it.doc.id not in {s.doc.id for s in seeds[sid]}:
                scored.append((sid, sum(w * centroid.get(t, 0.0) for t, w in vec.items()), it.story_id == sid))
        df.update(tf.keys())  # document frequency: one per item
        n_docs += 1
        for sid in joins.get(it.doc.id, ()):
            total: dict[str, float] = {}
            for s in seeds[sid]:
                for t, w in _unit(tf_of[s.doc.id], df, n_docs).items():
                    total[t] = total.get(t, 0.0) + w / len(seeds[sid])
            norm = math.sqrt(sum(w * w for w in total.values())) or 1.0
            centroids[sid] = {t: w / norm for t, w in total.items()}
    best = min(((_cost(scored, t), t) for t in (x / 200 for x in range(1, 100))), key=lambda ct: ct[0][0])
    (c_det, f1), threshold = best
    return c_det, f1, threshold


def _terms(doc: Doc) -> dict[str, float]:
    counts = Counter(w for w in _WORD.findall(f"{doc.title}\n{doc.text}".lower()) if w not in STOPWORDS and len(w) > 1)
    return {w: 1.0 + math.log(c) for w, c in counts.items()}


def _unit(tf: dict[str, float], df: Counter[str], n: int) -> dict[str, float]:
    vec = {w: x * (math.log((n + 1) / (df.get(w, 0) + 1)) + 1.0) for w, x in tf.items()}
    norm = math.sqrt(sum(x * x for x in vec.values())) or 1.0
    return {w: x / norm for w, x in vec.items()}


def _cost(scored: list[tuple[str, float, bool]], threshold: float) -> tuple[float, float]:
    per: dict[str, list[int]] = {}
    for sid, score, on in scored:
        row = per.setdefault(sid, [0, 0, 0, 0])  # positives, misses, negatives, false alarms
        if on:
            row[0] += 1
            row[1] += score < threshold
        else:
            row[2] += 1
            row[3] += score >= threshold
    p_miss = sum(r[1] / r[0] for r in per.values() if r[0]) / len(per)
    p_fa = sum(r[3] / r[2] for r in per.values() if r[2]) / len(per)
    tp = sum(r[0] - r[1] for r in per.values())
    fp = sum(r[3] for r in per.values())
    fn = sum(r[1] for r in per.values())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return c_det_norm(p_miss, p_fa), f1
