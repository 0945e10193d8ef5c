"""Judging a batch against the store and the index: new, copy, repeat, edit, tombstoned."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from worker.models import Indexed, Item, Stored, index_source
from worker.ingest.dedupe.index import Index, Match, Texts
from worker.ingest.dedupe.matchtext import Clutter, match_text
from worker.ingest.dedupe.revisions import word_diff


@dataclass(frozen=True, slots=True)
class Known:
    """What the store already holds that matters for a batch of items."""

    versions: dict[str, Stored]  # by identity: items seen before
    by_hash: dict[str, tuple[int, int]]  # content_sha256 → (item id, cluster id) of its first item
    tombstoned: frozenset[str]  # identities and content hashes of pruned items


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one item of a batch.

    kind: "new" (an original), "exact" / "near" / "short" (a copy of `match`, or of the batch's
    item `batch_copy_of`), "revision" (an edit of `stored`: `changes`, `diff`), "edit" (a trivial
    change of `stored`: refreshed silently), "unchanged", "repeat" (listed twice in the batch),
    "tombstoned" (pruned by retention: never ingested again).

    A copy may copy items of other clusters too (`joins`: stored ones; `batch_joins`: earlier
    items of the batch, by position), and so may a revision's new text: the item is the link that
    shows they are one story, and their clusters join its own (clusters.join says when).
    """

    item: Item
    kind: str
    match: Match | None = None
    batch_copy_of: int | None = None
    stored: Stored | None = None
    changes: tuple[str, ...] = ()
    diff: str = ""
    joins: tuple[Match, ...] = ()
    batch_joins: tuple[int, ...] = ()


def classify(
    items: Sequence[Item],
    known: Known,
    index: Index,
    clutter: Clutter,
    boilerplate: frozenset[str],
    stored_text: Callable[[int], tuple[str, str] | None],
) -> list[Verdict]:
    """Judge each item of a batch, in order, against the store and the index.

    A batch from several sources (backfill) is also searched for near copies inside itself: its
    items enter a batch index as they are judged (with provisional negative ids). A feed's own
    batch needs none, since copies within one feed are never folded."""
    verdicts: list[Verdict] = []
    identities: set[str] = set()
    batch_hashes: dict[str, int] = {}
    feeds = {item.feed_id for item in items}
    batch = Index(index.window, index.threshold) if len(feeds) > 1 or None in feeds else None

    def text_of(item_id: int) -> tuple[str, str] | None:
        if item_id >= 0:
            return stored_text(item_id)
        other = verdicts[-item_id - 1].item
        return other.title, match_text(other.text, clutter, boilerplate)

    for item in items:
        verdict = _already_known(item, known, identities, clutter, boilerplate)
        if verdict is not None and verdict.kind == "revision" and verdict.stored and item.fingerprint:
            verdict = _rejudged(verdict, verdict.stored, index, _Texts(item, clutter, boilerplate, text_of))
        elif verdict is None:
            texts = _Texts(item, clutter, boilerplate, text_of)
            verdict = _judge_new(item, known, index, texts, batch_hashes, len(verdicts))
            if batch is not None and item.fingerprint is not None:
                verdict = _within_batch(verdict, batch, texts, len(verdicts))
        verdicts.append(verdict)
    return verdicts


def _already_known(item: Item, known: Known, identities: set[str], clutter: Clutter,
                   boilerplate: frozenset[str]) -> Verdict | None:
    """The verdict on an item found without a search: a repeat within the batch (`identities`:
    those judged so far), a stored item (the same, or edited), a tombstone; else None."""
    if item.identity in identities:
        return Verdict(item, "repeat")
    identities.add(item.identity)
    stored = known.versions.get(item.identity)
    if stored is not None:
        return _judge_seen(item, stored, clutter, boilerplate)
    if item.identity in known.tombstoned or item.content_sha256 in known.tombstoned:
        return Verdict(item, "tombstoned")
    return None


def _rejudged(verdict: Verdict, stored: Stored, index: Index, texts: Texts) -> Verdict:
    """A revision may make its item a copy of another cluster's (a truncated text completed):
    their clusters join."""
    found = index.find_all(indexed(verdict.item, stored.id, stored.cluster_id), texts)
    return dataclasses.replace(verdict, joins=tuple(m for m in found if m.cluster_id != stored.cluster_id))


def _within_batch(verdict: Verdict, batch: Index, texts: Texts, position: int) -> Verdict:
    """A new item may copy earlier items of its batch: the first it copies is its original, if
    it has none stored; the others' clusters join its own. Either way it joins the batch index
    (each batch item in a cluster of its own there: which join is settled when they are stored)."""
    item = verdict.item
    if verdict.kind in ("new", "near", "short"):
        found = batch.find_all(indexed(item, 0, 0), texts)
        if found and verdict.kind == "new":
            verdict = dataclasses.replace(verdict, kind=found[0].kind, match=found[0],
                                          batch_copy_of=-found[0].item_id - 1)
            found = found[1:]
        if found:
            verdict = dataclasses.replace(verdict, batch_joins=tuple(-m.item_id - 1 for m in found))
    batch.add(indexed(item, -position - 1, -position - 1))
    return verdict


class _Texts:
    """The texts behind close calls; the new item's match text is only made if one is needed."""

    def __init__(self, item: Item, clutter: Clutter, boilerplate: frozenset[str],
                 of: Callable[[int], tuple[str, str] | None]) -> None:
        self._item, self._clutter, self._boilerplate, self.of = item, clutter, boilerplate, of

    @functools.cached_property
    def own(self) -> tuple[str, str]:
        return self._item.title, match_text(self._item.text, self._clutter, self._boilerplate)


def _judge_new(
    item: Item, known: Known, index: Index, texts: Texts, batch_hashes: dict[str, int], position: int
) -> Verdict:
    if item.content_sha256 in known.by_hash:
        item_id, cluster_id = known.by_hash[item.content_sha256]
        return Verdict(item, "exact", match=Match(item_id, cluster_id, "exact", 1.0))
    if item.content_sha256 in batch_hashes:
        return Verdict(item, "exact", batch_copy_of=batch_hashes[item.content_sha256])
    batch_hashes[item.content_sha256] = position
    found = index.find_all(indexed(item, 0, 0), texts) if item.fingerprint else []
    return Verdict(item, found[0].kind, match=found[0], joins=tuple(found[1:])) if found else Verdict(item, "new")


def indexed(item: Item, item_id: int, cluster_id: int) -> Indexed:
    marks = item.fingerprint
    assert marks is not None
    return Indexed(item_id, index_source(item.feed_id, item.identity), cluster_id, item.published_at,
                   marks.signature, marks.title_key, marks.words)


def _judge_seen(item: Item, stored: Stored, clutter: Clutter, boilerplate: frozenset[str]) -> Verdict:
    """A re-seen item: unchanged, trivially changed, or a revision with what changed.

    Trivial (not a revision): whitespace, clutter or boilerplate lines, a tracking parameter
    (links are compared canonical) or the date alone.
    """
    if item.fingerprint and item.fingerprint.raw_sha256 == stored.raw_sha256:
        return Verdict(item, "unchanged", stored=stored)
    old_text, new_text = match_text(stored.text, clutter, boilerplate), match_text(item.text, clutter, boilerplate)
    changes = []
    if item.title.split() != stored.title.split():
        changes.append("title")
    if old_text.split() != new_text.split():
        changes.append("text")
    if (item.url or None) != (stored.url or None):
        changes.append("link")
    if not changes:
        return Verdict(item, "edit", stored=stored)
    if item.published_at != stored.published_at:
        changes.append("date")
    parts = []
    if "title" in changes:
        parts.append("title: " + word_diff(stored.title, item.title))
    if "text" in changes:
        parts.append("text: " + word_diff(old_text, new_text))
    if "link" in changes:
        parts.append(f"link: {stored.url} → {item.url}")
    return Verdict(item, "revision", stored=stored, changes=tuple(changes), diff="\n".join(parts))
