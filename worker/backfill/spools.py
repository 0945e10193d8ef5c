"""The parsing processes' side: each source read into a spool file of items in time order, and the
spools merged into one stream, with bounded memory and open files. Spooled items are not yet
analysed for tracking: the store phase has that done as it goes (run._Analysing), so the
parsing processes work alongside the writer instead of leaving a core idle while it stores."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import heapq
import itertools
import json
import os
import pickle
import resource
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from worker import parsing
from worker.ingest import dedupe, normalize
from worker.ingest.identity import identity_policy
from worker.ingest.text import html_to_text
from worker.sources import parse
from worker.errors import StorywatchError
from worker.models import Feed, Item
from worker.safetext import one_line
from worker.backfill.model import CHUNK, IDENTITY_CHUNK, MAX_FILE_BYTES, Spooled


@dataclass(frozen=True, slots=True)
class ReadContext:
    """What a parsing process needs besides the document: picklable and small."""

    spool_dir: str
    now: dt.datetime
    clutter: tuple[str, ...]
    since: dt.datetime | None
    until: dt.datetime | None
    feeds: dict[str, Feed]  # stored feeds by address, to file a document under its feed


def read_file(path: str, kind: str, ctx: ReadContext) -> Spooled:
    """A local document, read, parsed and spooled (runs in a parsing process)."""
    try:
        body = _read_bytes(Path(path))
        if kind == "jsonl":
            return _spool_jsonl(path, body, ctx)
        feed = parse.parse_feed(body, url=Path(path).as_uri())
    except StorywatchError as exc:
        return Spooled(path, error=exc.message)
    return _spool_feed(path, feed, None, ctx, fallback_key=path)


def read_page(url: str, body: bytes, content_type: str, known: Feed | None, ctx: ReadContext) -> Spooled:
    """One fetched page of a feed URL, parsed and spooled (runs in a parsing process)."""
    try:
        feed = parse.parse_feed(body, content_type=content_type, url=url)
    except StorywatchError as exc:
        return Spooled(url, error=exc.message)
    spooled = _spool_feed(url, feed, known, ctx, fallback_key=url)
    spooled.next_urls = tuple(u for u in (feed.prev_archive_url, feed.next_url) if u)
    return spooled


def _read_bytes(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head == b"\x1f\x8b":
                return _gunzip(fh.read(MAX_FILE_BYTES + 1))
            body = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise StorywatchError(f"cannot read: {exc.strerror or exc}") from None
    if len(body) > MAX_FILE_BYTES:
        raise StorywatchError(f"larger than {MAX_FILE_BYTES // 2**20} MiB")
    return body


def _gunzip(data: bytes) -> bytes:
    """gzip (several members too), stopping at the size cap: a gzip bomb costs nothing."""
    out: list[bytes] = []
    size = 0
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = inflater.decompress(data, MAX_FILE_BYTES + 1 - size)
        except zlib.error as exc:
            raise StorywatchError(f"corrupt gzip: {exc}") from None
        out.append(chunk)
        size += len(chunk)
        if size > MAX_FILE_BYTES or inflater.unconsumed_tail:
            raise StorywatchError(f"larger than {MAX_FILE_BYTES // 2**20} MiB once decompressed")
        if not inflater.eof:
            raise StorywatchError("corrupt gzip: truncated")
        data = inflater.unused_data
    return b"".join(out)


def _spool_feed(label: str, parsed: parse.ParsedFeed, known: Feed | None, ctx: ReadContext, fallback_key: str) -> Spooled:
    """A parsed feed's entries as items, filed under the stored feed they belong to if any."""
    cut = [parse.CUT_SHORT] if parsed.left_out else []  # the entry the document ends inside, left out
    if not parsed.entries:  # as in polling, a feed may be empty: read, with nothing to load
        return Spooled(label, entries=parsed.left_out, warnings=cut or [f"no entries ({parsed.format} feed)"])
    feed = known or (ctx.feeds.get(parsed.self_url) if parsed.self_url else None)
    scope = None if feed else "backfill:" + hashlib.sha256(_feed_key(parsed, fallback_key).encode()).hexdigest()[:16]
    feed = feed or Feed(id=0, url=parsed.self_url or fallback_key)
    policy = identity_policy(parsed.entries, feed.identity_policy)
    publisher = feed.name or parsed.title or feed.title or ""
    items = parsing.normalize_batch(feed, parsed.entries, policy=policy, publisher=publisher, now=ctx.now,
                                     clutter=ctx.clutter, source="backfill", scope=scope, analyse=False)
    spooled = _spool(label, items, ctx)
    spooled.entries = len(parsed.entries) + parsed.left_out
    spooled.warnings = cut
    return spooled


def _feed_key(parsed: parse.ParsedFeed, fallback: str) -> str:
    """What makes two documents the same feed: its own address, else its site and title."""
    if parsed.self_url:
        return parsed.self_url
    if parsed.site_url:
        return f"{parsed.site_url} {parsed.title}"
    return fallback


def _spool_jsonl(path: str, body: bytes, ctx: ReadContext) -> Spooled:
    """Items given one JSON object per line; a bad line is reported by number, the rest load."""
    items: list[Item] = []
    errors: list[str] = []
    rules = parsing.clutter_rules(ctx.clutter)
    lines = body.decode("utf-8", errors="replace").splitlines()
    stem = Path(path).name.split(".")[0]
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            items.append(_record(json.loads(line), stem, ctx, rules))
        except (ValueError, TypeError, KeyError) as exc:
            errors.append(f"line {number}: {exc}")
    spooled = _spool(path, items, ctx)
    spooled.entries = sum(1 for line in lines if line.strip())
    spooled.warnings = errors
    if not items and errors:
        spooled.error = f"no valid line ({errors[0]})"
    return spooled


def _record(record: Any, default_source: str, ctx: ReadContext, rules: dedupe.Clutter) -> Item:
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if not record.get("id") or not (record.get("title") or record.get("text")):
        raise ValueError("needs id and a title or text")
    published = record.get("published")
    when = dt.datetime.fromisoformat(str(published).replace("Z", "+00:00")) if published else ctx.now
    when = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
    source = one_line(str(record.get("source") or default_source)) or default_source
    return normalize.record_item(
        identity=f"jsonl:{source}:{record['id']}", title=str(record.get("title") or ""),
        text=html_to_text(str(record.get("text") or "")), url=record.get("url") or None,
        published=when.astimezone(dt.timezone.utc), now=ctx.now, clutter=rules, publisher=source,
        source="backfill")


def _spool(label: str, items: Sequence[Item], ctx: ReadContext) -> Spooled:
    """The items in the period, sorted by time, pickled in chunks to one file; their identities
    and times, in the same order, to a small file beside it (`_last_unstored` reads only those)."""
    kept = sorted((i for i in items if _in_period(i, ctx)), key=lambda i: i.published_at)
    handle, path = tempfile.mkstemp(suffix=".spool", dir=ctx.spool_dir)
    with os.fdopen(handle, "wb") as fh:
        for start in range(0, len(kept), CHUNK):
            pickle.dump(kept[start:start + CHUNK], fh, protocol=pickle.HIGHEST_PROTOCOL)
    with open(_identities_path(path), "wb") as fh:
        for start in range(0, len(kept), IDENTITY_CHUNK):
            pickle.dump([(i.identity, i.published_at) for i in kept[start:start + IDENTITY_CHUNK]], fh,
                        protocol=pickle.HIGHEST_PROTOCOL)
    return Spooled(label, items=len(kept), path=path)


def _identities_path(spool: str) -> str:
    return spool + ".ids"


def _in_period(item: Item, ctx: ReadContext) -> bool:
    return (ctx.since is None or item.published_at >= ctx.since) and (ctx.until is None or item.published_at < ctx.until)


class Merged(NamedTuple):
    """An item of a spool as the merge orders them: by time, then by spool (`rank`) and place."""

    published: dt.datetime
    rank: int
    n: int
    item: Item

    @property
    def key(self) -> Key:
        return self.published, self.rank, self.n


Key = tuple[dt.datetime, int, int]  # an item's place in the merged, time-ordered stream


def _read_spool(path: str, rank: int) -> Iterator[Merged]:
    with open(path, "rb") as fh:
        n = 0
        while True:
            try:
                chunk: list[Item] = pickle.load(fh)
            except EOFError:
                return
            for item in chunk:
                yield Merged(item.published_at, rank, n, item)
                n += 1


def merged_spools(spools: Sequence[Spooled]) -> Iterator[Merged]:
    """The spools' items in one time-ordered stream, with at most `_max_open()` spool files open
    at once: past that many, groups of spools are merged into one file first, each item keeping
    its place (a backfill of 10,000 files opened them all, and failed with EMFILE under
    systemd's default limit of 1,024 open files)."""
    readers: list[Callable[[], Iterator[Merged]]] = [
        functools.partial(_read_spool, s.path, rank) for rank, s in enumerate(spools) if s.path]
    limit = _max_open()
    while len(readers) > limit:
        folder = os.path.dirname(next(s.path for s in spools if s.path))
        readers = [_merge_to_file(readers[i:i + limit], folder) for i in range(0, len(readers), limit)]
    return heapq.merge(*(read() for read in readers), key=lambda m: m.key)


def _max_open() -> int:
    """Spool files open at once: a quarter of what this process may open, 256 at most."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(2, min(256, (1024 if soft == resource.RLIM_INFINITY else soft) // 4))


def _merge_to_file(readers: Sequence[Callable[[], Iterator[Merged]]], folder: str) -> Callable[[], Iterator[Merged]]:
    """Merge some spools into one file of items with their places, in `folder`; returns its reader."""
    merged = heapq.merge(*(read() for read in readers), key=lambda m: m.key)
    handle, path = tempfile.mkstemp(suffix=".merged", dir=folder)
    with os.fdopen(handle, "wb") as fh:
        while chunk := list(itertools.islice(merged, CHUNK)):
            pickle.dump(chunk, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return functools.partial(_read_merged, path)


def _read_merged(path: str) -> Iterator[Merged]:
    with open(path, "rb") as fh:
        while True:
            try:
                chunk: list[Merged] = pickle.load(fh)
            except EOFError:
                return
            yield from chunk


def read_identities(path: str) -> Iterator[list[tuple[str, dt.datetime]]]:
    with open(_identities_path(path), "rb") as fh:
        while True:
            try:
                yield pickle.load(fh)
            except EOFError:
                return
