"""Near-duplicate quality on real article text, through the real ingest path.

Originals: the seeds and the items of ../shared/eval/tracking-dev.jsonl that have text (read
from there, never copied into the project), each published by one of SITES synthetic sites.
Positives: each original copied by two other sites 1–48 hours later, each copy on its own:
wrapped in that site's header and footer, about 3 % of its words replaced, one sentence
dropped, an "Updated" line added, and a changed headline (so the two copies differ from each
other more than each from the original). Every set is polled in three orders (ORDERS): the
originals first, the copies first, and one copy, the original, the other copy; which feed
answers first is chance, so the clusters must not depend on it.

Negatives: every pair of different originals of one story (same story_id) that can be told
apart (different headline or text); they must never share a cluster. Negatives exclude the
pairs that are copies in the data, directly or through a chain of copies (repost_groups): real
outlets repost one text under different headlines, and folding those is the point of dedupe. A
pair is such a repost when its exact Jaccard similarity of word 3-shingles (match texts)
reaches the similarity threshold (for short items: when the short-item rule holds on the exact
texts); those are reported on their own line. The same is measured for short items (a
headline and one sentence).

Every item goes through normalize.normalize_entry (with its feed's learned boilerplate) and
pipeline.ingest_items into a real SQLite store, one poll per site and day, as the worker would.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench import Result
from worker import parsing, pipeline, startup, store
from worker.window import Window
from worker.ingest import dedupe
from worker.config import DEFAULT_CLUTTER, DedupeSettings, FeedConfig, Settings
from worker.ingest.dedupe import Clutter
from worker.models import Indexed
from worker.ingest.text import clean_text
from worker.sources.parse import Entry
from worker.ingest.seeds import read_seed_folder

SHARED = Path(__file__).resolve().parents[2] / "shared"
EVAL = SHARED / "eval" / "tracking-dev.jsonl"
SEEDS = Path(__file__).resolve().parents[1] / "seeds"
SITES = 24
UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Doc:
    key: str
    story: str
    title: str
    text: str
    published: dt.datetime


def load_docs() -> list[Doc]:
    docs = []
    for line in EVAL.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["text"].strip():
            published = dt.datetime.fromisoformat(row["published"].replace("Z", "+00:00"))
            docs.append(Doc(row["id"], row["story_id"], row["title"], row["text"], published))
    for seed in read_seed_folder(SEEDS):
        when = dt.datetime.combine(seed.published or dt.date(2024, 1, 1), dt.time(), UTC)
        docs.append(Doc(seed.path.name, "seed:" + seed.path.name, seed.title, seed.text, when))
    return docs


def site_wrapper(site: int) -> tuple[list[str], list[str]]:
    """A site's own furniture: a few header and footer lines no clutter pattern knows."""
    name = f"The Daily Site {site}"
    head = [f"{name} — independent news since 19{50 + site}", f"Edition: World / Asia / Section {site}"]
    foot = [f"Copyright {name}. Reproduction without permission of {name} is forbidden.",
            f"Contact the {name} newsroom at desk{site}@site{site}.example"]
    return head, foot


def mutate(text: str, rng: random.Random, vocabulary: list[str]) -> str:
    """About 3 % of words replaced, one sentence dropped, an "Updated" line added."""
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    if len(sentences) > 3:
        del sentences[rng.randrange(1, len(sentences) - 1)]
    words = " ".join(sentences).split(" ")
    for i in rng.sample(range(len(words)), max(1, len(words) * 3 // 100)):
        words[i] = rng.choice(vocabulary)
    return f"Updated {rng.randint(1, 12)} hours ago\n" + " ".join(words)


def retitle(title: str, rng: random.Random) -> str:
    words = title.split()
    if len(words) > 6:
        del words[rng.randrange(len(words))]
    return rng.choice(["Report: ", "Update: ", "", "Breaking: "]) + " ".join(words)


def html(lines: list[str]) -> str:
    return "".join(f"<p>{line}</p>" for line in lines if line)


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0][:300]


Posted = tuple[dt.datetime, int, str, str, list[str], Doc, int]
"""One item: (published, site, guid, title, body lines, doc, copy: 0 for the original, else 1 or 2)."""

ORDERS = {  # which items each pass polls, the passes one after the other
    "originals first": ((0,), (1, 2)),
    "copies first": ((1, 2), (0,)),
    "interleaved": ((1,), (0,), (2,)),
}


@dataclass
class Stream:
    """The items of one run, in the order they are polled: each pass in publication order."""

    entries: list[Posted]


def build(docs: list[Doc], short: bool, rng: random.Random) -> list[Posted]:
    """Every original and its two copies (guids o<n>, a<n>, b<n>), in publication order."""
    vocabulary = sorted({w for d in docs for w in d.text.split()[:50]})  # sorted: the same run every time
    entries = []
    for n, doc in enumerate(docs):
        home = n % SITES
        first, second = rng.sample([s for s in range(SITES) if s != home], 2)
        body = first_sentence(doc.text) if short else doc.text
        head, foot = site_wrapper(home)
        entries.append((doc.published, home, f"o{n}", doc.title, head + body.split("\n") + foot, doc, 0))
        for copy, other in enumerate((first, second), 1):
            head, foot = site_wrapper(other)
            copy_body = mutate(body, rng, vocabulary) if not short else _touch(body, rng, vocabulary)
            copy_title = (doc.title + " - Site " + str(other)) if short else retitle(doc.title, rng)
            when = doc.published + dt.timedelta(hours=rng.uniform(1, 48))
            lines = head + copy_body.split("\n") + ["Read more"] + foot
            entries.append((when, other, f"{'ab'[copy - 1]}{n}", copy_title, lines, doc, copy))
    return entries


def in_order(entries: list[Posted], order: str) -> Stream:
    """The entries as polled in `order`: pass after pass, each by day, then site (one poll each)."""
    polled: list[Posted] = []
    for copies in ORDERS[order]:
        polled += sorted((e for e in entries if e[6] in copies), key=lambda e: (e[0].date(), e[1], e[0], e[2]))
    return Stream(polled)


def _touch(sentence: str, rng: random.Random, vocabulary: list[str]) -> str:
    words = sentence.split(" ")
    if len(words) > 8:
        words[rng.randrange(len(words))] = rng.choice(vocabulary)
    return " ".join(words)


def run_stream(work: Path, stream: Stream, similarity: float, name: str) -> dict[str, dict[str, int]]:
    """Ingest the stream; return each doc's clusters: {doc number: {"o": cluster, "a": …, "b": …}}."""
    settings = Settings(feeds=tuple(FeedConfig(url=f"https://site{s}.example/feed") for s in range(SITES)),
                        dedupe=DedupeSettings(similarity=similarity))
    db = store.open_store(work / f"{name}.db")
    startup.initialize(db, settings, dt.datetime(2026, 1, 1, tzinfo=UTC))
    window = Window(db, settings, dt.datetime(2014, 1, 1, tzinfo=UTC))
    for (day, site), batch in itertools.groupby(stream.entries, key=lambda e: (e[0].date(), e[1])):
        # one poll: a site's items of one day, as the worker would fetch them
        entries = [Entry(guid, f"https://site{site}.example/{guid}", title, html(lines), "", published=when)
                   for when, _, guid, title, lines, _, _ in batch]
        feed = store.feeds_to_poll(db, entries[0].published or NOW, url=f"https://site{site}.example/feed")[0]
        items = parsing.normalize_batch(feed, entries, policy="guid", publisher=f"site{site}",
                                         now=entries[-1].published or NOW, clutter=settings.dedupe.clutter_patterns)
        with store.transaction(db):
            pipeline.ingest_items(db, window, feed, items, entries[-1].published or NOW)
    clusters: dict[str, dict[str, int]] = defaultdict(dict)
    for row in db.query("SELECT guid, cluster_id FROM items WHERE feed_id IS NOT NULL"):
        clusters[row["guid"][1:]][row["guid"][0]] = row["cluster_id"]
    db.conn.close()
    return clusters


@dataclass
class Score:
    recall: float
    copies: int
    false_merges: int
    negatives: int
    reposts: int  # same-story pairs that are copies in the data, directly or through a chain of them
    reposts_merged: int


def is_repost(a: Doc, b: Doc, short: bool, threshold: float) -> bool:
    """Whether two originals are copies of each other by the rule the worker applies, on exact texts."""
    clutter = Clutter.compile(DEFAULT_CLUTTER)
    ta, tb = (dedupe.match_text(clean_text(first_sentence(d.text) if short else d.text), clutter) for d in (a, b))
    wa, wb = dedupe.words_of(ta), dedupe.words_of(tb)
    if min(len(wa), len(wb)) < dedupe.SHORT_WORDS:
        ia = Indexed(0, 0, 0, a.published, b"", dedupe.title_key(a.title), len(wa))
        ib = Indexed(0, 0, 0, b.published, b"", dedupe.title_key(b.title), len(wb))
        return dedupe.short_copy(ia, ib, (a.title, ta), (b.title, tb))
    return dedupe.jaccard(dedupe.shingles(wa), dedupe.shingles(wb)) >= threshold


def repost_groups(docs: list[Doc], members: list[int], short: bool, threshold: float) -> dict[int, int]:
    """A story's originals grouped by chains of reposts (a copy of b, b of c: one group), as
    {doc: its group}. One story per cluster means such a chain is one cluster whatever order its
    texts arrive in (b, arriving last, is a copy of both a and c), so only originals in different
    groups are distinct articles that must stay apart."""
    group = {n: n for n in members}

    def root(n: int) -> int:
        while group[n] != n:
            n = group[n]
        return n

    for a, b in itertools.combinations(members, 2):
        if is_repost(docs[a], docs[b], short, threshold):
            group[root(a)] = root(b)
    return {n: root(n) for n in members}


def score(docs: list[Doc], clusters: dict[str, dict[str, int]], short: bool, threshold: float) -> Score:
    """Recall over copies; false merges over same-story pairs of distinct articles (in different
    groups of reposts: repost_groups)."""
    found = sum(1 for n in range(len(docs)) for copy in "ab" if clusters[str(n)].get("o") == clusters[str(n)].get(copy))
    by_story: dict[str, list[int]] = defaultdict(list)
    for n, doc in enumerate(docs):
        by_story[doc.story].append(n)
    negatives = false = reposts = merged = 0
    for members in by_story.values():
        groups = repost_groups(docs, members, short, threshold)
        for a, b in itertools.combinations(members, 2):
            together = clusters[str(a)]["o"] == clusters[str(b)]["o"]
            if groups[a] == groups[b]:
                reposts += 1
                merged += together
            else:
                negatives += 1
                false += together
    return Score(found / (2 * len(docs)), 2 * len(docs), false, negatives, reposts, merged)


def run(work: Path) -> list[Result]:
    if not EVAL.exists():
        return [Result("dedupe quality: skipped (no ../shared/eval)", 0, "", "")]
    docs = load_docs()
    results = []
    threshold = DedupeSettings().similarity
    for short in (False, True):
        entries = build(docs, short, random.Random(11))
        label = "title + one sentence" if short else "articles"
        for order in ORDERS:
            name = f"{'short' if short else 'long'}-{order.replace(' ', '-')}"
            result = score(docs, run_stream(work, in_order(entries, order), threshold, name), short, threshold)
            results += [
                Result(f"dedupe {label}, {order}: recall of copies ({result.copies} copies)", result.recall, "ratio",
                       ">= 0.99" if not short else ""),
                Result(f"dedupe {label}, {order}: false merges, {result.negatives} same-story pairs of different texts",
                       result.false_merges, "pairs", "<= 0"),
            ]
        results.append(Result(f"dedupe {label}: same-story reposts in the data, or chains of them, folded "
                              f"({result.reposts} pairs)",
                              result.reposts_merged / max(1, result.reposts), "ratio", ""))
    return results
