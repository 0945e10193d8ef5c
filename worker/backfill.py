"""`storywatch backfill`: history loaded through the polling pipeline, in time order, silently.

    sources ─► parsing processes: read, parse, normalize, sort ─► one spool file per document
            ─► one writer merges the spools in time order ─► dedupe ─► store ─► track (batches)

A source is a feed URL (its RFC 5005 archives and `rel="next"` pages followed), a feed file or a
folder of them (gzip too), an OPML file (its feeds), or a JSON Lines file of items. Items are
stored with `source = "backfill"`: they fill storyline timelines but no digest or email shows
them unless asked.

Time order across sources needs every source read before the first item is stored; the parsed
items wait on disk (pickled, in sorted chunks), never in memory, and the writer merges them
lazily. Re-running is idempotent: an item is identified as in polling (feed GUID, URL or content)
and a stored one is skipped, so an interrupted backfill run again finishes where it would have.
Its decisions too: the tracker learns from history in time order, so the items an interrupted run
stored are replayed to it where they stand (not stored again), and it starts from what is stored
before the first item, never from what the interrupted run stored ahead (`_InOrder`).
Each batch of items is one transaction, short enough for the daemon to write in between.

A stop (the `stop` event: Ctrl-C or SIGTERM in the CLI) starts no new work: reading stops at the
documents in flight (fetches in flight are cut short; nothing is stored then), storing after the
batch in flight. The summary says what was stored and what was not; run again, the backfill
stores the rest.
"""

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
import shutil
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from loguru import logger
from sqlite_utils import Database

from worker import pipeline, store, storylines
from worker.window import Window, writing
from worker.ingest import dedupe, normalize, seeds
from worker.ingest.identity import identity_policy
from worker.ingest.text import html_to_text
from worker.sources import opml, parse
from worker.clock import utc_now
from worker.config import Settings, is_file_seed
from worker.errors import StorywatchError
from worker.sources.fetch import Fetched, Fetcher, FetchRequest, Network
from worker.models import Feed, Item
from worker.parallel import ProcessPool, default_processes
from worker.safetext import one_line, without_password

BATCH = 500  # items per transaction: short enough for the daemon to write in between
CHUNK = 16  # items per pickled chunk of a spool file: the merge holds one chunk of every source (~250 KB)
IDENTITY_CHUNK = 500  # identities per pickled chunk of a spool's identity file: one store query each
MAX_FILE_BYTES = 256 * 1024 * 1024  # a source larger than this, decompressed, is refused
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")


@dataclass(frozen=True, slots=True)
class Source:
    kind: str  # "url", "file", "jsonl"
    location: str  # URL or path
    feed: Feed | None = None  # a stored feed the source belongs to (URL sources, --all)


@dataclass(frozen=True, slots=True)
class Options:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    track: bool = True
    dry_run: bool = False
    workers: int = 0  # 0: the number of cores
    max_pages: int = 100
    batch: int = BATCH  # items per transaction (tests stop a small backfill between batches)


@dataclass
class Spooled:
    """One document read by a parsing process: its items wait, sorted, in `path`."""

    label: str
    entries: int = 0
    items: int = 0
    path: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # bad lines, an empty feed
    next_urls: tuple[str, ...] = ()  # URL sources: archive and next pages to read too
    stopped: bool = False  # not read: the backfill was stopped first


@dataclass
class Summary:
    sources_read: int = 0
    entries: int = 0
    items_new: int = 0
    exact_copies: int = 0
    near_duplicates: int = 0
    already_stored: int = 0
    outside_period: int = 0
    revisions: int = 0
    followups: Counter[str] = field(default_factory=Counter)
    sources_failed: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    entries_by_source: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False  # a stop came before the end
    items_not_stored: int = 0  # items read but not stored because of the stop
    sources_not_read: list[str] = field(default_factory=list)  # documents the stop left unread

    def as_json(self) -> dict[str, Any]:
        return {"sources_read": self.sources_read, "entries": self.entries, "items_new": self.items_new,
                "exact_copies": self.exact_copies, "near_duplicates": self.near_duplicates,
                "already_stored": self.already_stored, "outside_period": self.outside_period,
                "revisions": self.revisions, "followups": dict(sorted(self.followups.items())),
                "sources_failed": self.sources_failed, "warnings": self.warnings,
                "seconds": round(self.seconds, 2), "entries_by_source": self.entries_by_source,
                "interrupted": self.interrupted, "items_not_stored": self.items_not_stored,
                "sources_not_read": self.sources_not_read}


# ── sources ──────────────────────────────────────────────────────────────────────────────────


SEEDS_HINT = ("seed documents are loaded by `storywatch init` from [seeds] path in the config; backfill loads feed "
              "URLs, feed files or folders of them, OPML and JSON Lines files")


@dataclass(frozen=True, slots=True)
class SeedPaths:
    """Where the seed documents are: the [seeds] folder and the storylines' seed files. Any folder
    with a seeds.toml is a seed folder too (a copy of the shipped one, another install's)."""

    folder: Path | None = None
    files: frozenset[Path] = frozenset()

    @staticmethod
    def of(settings: Settings) -> SeedPaths:
        folder = settings.seeds.path.resolve() if settings.seeds.path else None
        files = frozenset(Path(seed).resolve() for s in settings.storylines for seed in s.seeds if is_file_seed(seed))
        return SeedPaths(folder, files)

    def is_folder(self, path: Path) -> bool:
        return path.resolve() == self.folder or (path / seeds.DESCRIPTION).is_file()

    def what(self, path: Path) -> str | None:
        """What seed documents `path` is or holds, if it is any."""
        resolved = path.resolve()
        if path.is_dir():
            if resolved == self.folder:
                return "the seed folder ([seeds] path)"
            if self.is_folder(path):
                return f"a seed folder (it has a {seeds.DESCRIPTION})"
        if self.folder is not None and self.folder in resolved.parents:
            return "in the seed folder ([seeds] path)"
        if path.is_file() and (resolved in self.files or path.name == seeds.DESCRIPTION or self.is_folder(resolved.parent)):
            return "a seed document"
        return None


def expand(locations: Sequence[str], db: Database, *, all_feeds: bool = False, seed_paths: SeedPaths = SeedPaths()
           ) -> tuple[list[Source], dict[str, str]]:
    """The sources named on the command line (folders walked, OPML files opened) and the
    ones that cannot be read, with why. Naming seed documents is an error: they are no feed
    items, and `init` loads them (a seed folder found inside a folder is a failed source)."""
    sources: list[Source] = []
    failed: dict[str, str] = {}
    known = store.feeds_by_url(db)
    if all_feeds:
        sources += [Source("url", f.url, f) for f in store.feeds_to_poll(db, utc_now(), force=True)]
    for location in locations:
        if location.startswith(("http://", "https://")):
            sources.append(Source("url", location, known.get(location)))
            continue
        path = Path(location)
        if (what := seed_paths.what(path)) is not None:
            raise StorywatchError(f"{location} is {what}, not a feed: backfill does not load seed documents",
                                  hint=SEEDS_HINT)
        if path.is_dir():
            sources += _walk(path, seed_paths, failed)
        elif path.is_file() and path.suffix.lower() == ".opml":
            try:
                sources += [Source("url", f.url, known.get(f.url)) for f in opml.read_opml(path)]
            except StorywatchError as exc:
                failed[location] = exc.message
        elif path.is_file():
            sources.append(_file_source(path))
        else:
            failed[location] = "no such file or folder"
    unique = list({(s.kind, s.location): s for s in sources}.values())
    return unique, failed


def _walk(top: Path, seed_paths: SeedPaths, failed: dict[str, str]) -> list[Source]:
    """The files in a folder and its subfolders, in path order, hidden ones left out. A folder
    that cannot be listed fails as a source (it was skipped in silence), and so does a seed
    folder in it, saying why (its text files would each fail as "not a feed")."""
    def unreadable(exc: OSError) -> None:
        failed[str(exc.filename)] = f"cannot read the folder: {exc.strerror}"

    found: list[Path] = []
    for root, folders, names in os.walk(top, onerror=unreadable):
        folder = Path(root)
        if folder != top and seed_paths.is_folder(folder):
            failed[root] = "a seed folder, not feeds: `storywatch init` loads seed documents, from [seeds] path"
            folders.clear()
            continue
        found += [folder / name for name in names if not name.startswith(".")]
    return [_file_source(p) for p in sorted(found) if p.is_file()]


def _file_source(path: Path) -> Source:
    kind = "jsonl" if path.name.lower().endswith(JSONL_SUFFIXES) else "file"
    return Source(kind, str(path.resolve()))


# ── parsing processes ────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class _Context:
    """What a parsing process needs besides the document: picklable and small."""

    spool_dir: str
    now: dt.datetime
    clutter: tuple[str, ...]
    since: dt.datetime | None
    until: dt.datetime | None
    feeds: dict[str, Feed]  # stored feeds by address, to file a document under its feed


def read_file(path: str, kind: str, ctx: _Context) -> Spooled:
    """A local document, read, parsed and spooled (runs in a parsing process)."""
    try:
        body = _read_bytes(Path(path))
        if kind == "jsonl":
            return _spool_jsonl(path, body, ctx)
        feed = parse.parse_feed(body, url=Path(path).as_uri())
    except StorywatchError as exc:
        return Spooled(path, error=exc.message)
    return _spool_feed(path, feed, None, ctx, fallback_key=path)


def read_page(url: str, body: bytes, content_type: str, known: Feed | None, ctx: _Context) -> Spooled:
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


def _spool_feed(label: str, parsed: parse.ParsedFeed, known: Feed | None, ctx: _Context, fallback_key: str) -> Spooled:
    """A parsed feed's entries as items, filed under the stored feed they belong to if any."""
    if not parsed.entries:  # as in polling, a feed may be empty: read, with nothing to load
        return Spooled(label, warnings=[f"no entries ({parsed.format} feed)"])
    feed = known or (ctx.feeds.get(parsed.self_url) if parsed.self_url else None)
    scope = None if feed else "backfill:" + hashlib.sha256(_feed_key(parsed, fallback_key).encode()).hexdigest()[:16]
    feed = feed or Feed(id=0, url=parsed.self_url or fallback_key)
    policy = identity_policy(parsed.entries, feed.identity_policy)
    publisher = feed.name or parsed.title or feed.title or ""
    items = pipeline.normalize_batch(feed, parsed.entries, policy=policy, publisher=publisher, now=ctx.now,
                                     clutter=ctx.clutter, source="backfill", scope=scope)
    spooled = _spool(label, items, ctx)
    spooled.entries = len(parsed.entries)
    return spooled


def _feed_key(parsed: parse.ParsedFeed, fallback: str) -> str:
    """What makes two documents the same feed: its own address, else its site and title."""
    if parsed.self_url:
        return parsed.self_url
    if parsed.site_url:
        return f"{parsed.site_url} {parsed.title}"
    return fallback


def _spool_jsonl(path: str, body: bytes, ctx: _Context) -> Spooled:
    """Items given one JSON object per line; a bad line is reported by number, the rest load."""
    items: list[Item] = []
    errors: list[str] = []
    rules = pipeline.clutter_rules(ctx.clutter)
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


def _record(record: Any, default_source: str, ctx: _Context, rules: dedupe.Clutter) -> Item:
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if not record.get("id") or not (record.get("title") or record.get("text")):
        raise ValueError("needs id and a title or text")
    published = record.get("published")
    when = dt.datetime.fromisoformat(str(published).replace("Z", "+00:00")) if published else ctx.now
    when = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
    source = one_line(str(record.get("source") or default_source)) or default_source
    return pipeline.analysed(normalize.record_item(
        identity=f"jsonl:{source}:{record['id']}", title=str(record.get("title") or ""),
        text=html_to_text(str(record.get("text") or "")), url=record.get("url") or None,
        published=when.astimezone(dt.timezone.utc), now=ctx.now, clutter=rules, publisher=source,
        source="backfill"))


def _spool(label: str, items: Sequence[Item], ctx: _Context) -> Spooled:
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


def _in_period(item: Item, ctx: _Context) -> bool:
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


def _merged(spools: Sequence[Spooled]) -> Iterator[Merged]:
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


def _read_identities(path: str) -> Iterator[list[tuple[str, dt.datetime]]]:
    with open(_identities_path(path), "rb") as fh:
        while True:
            try:
                yield pickle.load(fh)
            except EOFError:
                return


# ── the run ──────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Step:
    """Where a backfill is, for its progress line. Read: documents (a feed URL's pages each count,
    as in the summary) read and failed out of those known so far; store: items through the
    pipeline (new or already stored) out of those read. Each phase starts with a step at zero."""

    phase: str  # "read" or "store"
    done: int  # read: documents read or failed; store: items stored or found stored already
    total: int
    entries: int = 0  # read: entries read so far
    failed: int = 0  # read: documents that failed (and sources that could not be opened)
    already_stored: int = 0  # store: items found stored already

    @property
    def read(self) -> int:
        return self.done - self.failed


Progress = Callable[[Step], None]


def backfill(db: Database, settings: Settings, sources: Sequence[Source], options: Options,
             progress: Progress | None = None, *, stop: threading.Event | None = None,
             network: Network | None = None, unreadable: dict[str, str] | None = None) -> Summary:
    """Read every source (in parallel), then store their items in time order, in batches, until
    `stop` is set. `unreadable`: sources `expand` could not open, failed from the start (why);
    `network`: how names resolve and connections are made (tests replace it)."""
    started = time.monotonic()
    summary = Summary(sources_failed={without_password(k): v for k, v in (unreadable or {}).items()})
    report = progress or (lambda step: None)
    workers = options.workers or default_processes()
    stop = stop or threading.Event()
    _remove_stale_spools()
    with tempfile.TemporaryDirectory(prefix=f"{SPOOL_PREFIX}{os.getpid()}-") as spool_dir:
        ctx = _Context(spool_dir, utc_now(), settings.dedupe.clutter_patterns, options.since, options.until,
                       store.feeds_by_url(db))
        spools = _read_all(settings, sources, ctx, workers, options.max_pages, summary, report, stop, network)
        if not options.dry_run:
            _store_all(db, settings, spools, options, summary, report, stop)
    summary.interrupted = stop.is_set()
    summary.seconds = time.monotonic() - started
    return summary


@dataclass
class _Reading:
    """The read phase's counts, as the summary will have them, updated from the reading threads."""

    report: Progress
    total: int  # documents known: the sources, and the pages of a feed URL as they are found
    failed: int = 0
    read: int = 0
    entries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def step(self) -> None:
        self.report(Step("read", self.read + self.failed, self.total, self.entries, self.failed))

    def done(self, document: Spooled, more: int = 0) -> None:
        """A document is done (read, failed or passed over after a stop); `more`: pages it
        links to, to read too."""
        with self.lock:
            self.total += more
            if document.stopped:
                return  # not read: the progress says so, as the summary does
            if document.error:
                self.failed += 1
            else:
                self.read += 1
            self.entries += document.entries
            self.step()


SPOOL_PREFIX = "storywatch-backfill-"  # then the pid of the backfill that spools there


def _remove_stale_spools() -> None:
    """Remove the spool folders of backfills that died without cleaning up (SIGKILL, a power
    cut): they held a copy of everything read (137 MB left behind in $TMPDIR in one case)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}*"):
        pid = folder.name[len(SPOOL_PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or not folder.is_dir() or folder.stat().st_uid != os.geteuid():
                continue
            os.kill(int(pid), 0)  # raises if no such process
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            logger.info("Removed the spool of a backfill that did not finish: {folder}", folder=str(folder))
        except OSError:  # alive under another user, or gone meanwhile
            continue


def _read_all(settings: Settings, sources: Sequence[Source], ctx: _Context, workers: int, max_pages: int,
              summary: Summary, report: Progress, stop: threading.Event, network: Network | None) -> list[Spooled]:
    pool = ProcessPool(workers, timeout=pipeline.PARSE_TIMEOUT)
    fetcher = Fetcher(pipeline.fetch_policy(settings.fetch), network) if any(s.kind == "url" for s in sources) else None
    if fetcher:
        fetcher.abort = stop  # a stop cuts the fetches in flight short
    done: list[Spooled] = []
    failed_first = len(summary.sources_failed)  # sources that could not even be opened
    reading = _Reading(report, len(sources) + failed_first, failed=failed_first)
    reading.step()  # the phase starts at zero read

    def read(source: Source) -> None:
        if stop.is_set():
            spooled = [Spooled(source.location, stopped=True)]
            reading.done(spooled[0])
        elif source.kind == "url":
            spooled = _read_url(source, pool, fetcher, ctx, max_pages, stop, reading.done)
        else:
            spooled = [_run(pool, read_file, source.location, source.kind, ctx)]
            reading.done(spooled[0])
        with reading.lock:
            done.extend(spooled)

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as threads:
            list(threads.map(read, sources))
    finally:
        pool.close()
        if fetcher:
            fetcher.close()
    for spooled in done:
        _account(spooled, summary)
    return [s for s in done if s.path and s.items]


def _run(pool: ProcessPool, task: Callable[..., Spooled], *args: Any) -> Spooled:
    try:
        return pool.run(task, *args)
    except StorywatchError as exc:  # the parsing process died or timed out on this document
        return Spooled(str(args[0]), error=exc.message)
    except Exception as exc:  # a bug met on one document fails that document, never the run
        logger.opt(exception=exc).error("Unexpected error reading {source}", source=without_password(str(args[0])))
        return Spooled(str(args[0]), error=f"internal error: {type(exc).__name__}: {exc}")


def _fetch_page(fetcher: Fetcher, url: str, was_public: bool | None, stop: threading.Event) -> Fetched | Spooled:
    """One page of a feed's history, or what stands for it when it could not be read: a fetch cut
    short by the stop was not read (not failed); one bad page fails itself, never the backfill."""
    try:
        return fetcher.fetch(FetchRequest(url, was_public=was_public))
    except StorywatchError as exc:
        return Spooled(url, stopped=True) if stop.is_set() else Spooled(url, error=exc.message)
    except Exception as exc:
        logger.opt(exception=exc).error("Unexpected error fetching {url}", url=without_password(url))
        return Spooled(url, error=f"internal error: {type(exc).__name__}: {exc}")


def _read_url(source: Source, pool: ProcessPool, fetcher: Fetcher | None, ctx: _Context, max_pages: int,
              stop: threading.Event, done: Callable[[Spooled, int], None]) -> list[Spooled]:
    """A feed URL and the archive or next pages it links to, up to `max_pages` documents; `done`
    hears of each document and of how many more pages it adds to read.

    The pages a feed links to are fetched under the feed's guard: once the feed is known to be
    on a public address (from its last poll, or from this first fetch), no page it names may be
    on a loopback, private or link-local one (its links are the publisher's words, as redirects are).
    """
    assert fetcher is not None
    pages: list[Spooled] = []
    todo, seen = [source.location], {source.location}
    was_public = source.feed.public_origin if source.feed else None
    while todo and len(pages) < max_pages:
        url = todo.pop(0)
        if stop.is_set():  # the pages after this one are not known yet
            pages.append(Spooled(url, stopped=True))
            done(pages[-1], 0)
            break
        fetched = _fetch_page(fetcher, url, was_public, stop)
        if isinstance(fetched, Spooled):  # not read: failed, or cut short by the stop
            pages.append(fetched)
            done(fetched, 0)
            continue
        was_public = was_public or fetched.origin_public
        page = _run(pool, read_page, fetched.final_url, fetched.body, fetched.content_type, source.feed, ctx)
        page.label = url
        if pages and not page.entries:
            page.warnings = []  # an empty archive page after others is no news
        pages.append(page)
        known = len(pages) + len(todo)  # counted in the progress so far, this page included
        found = [u for u in dict.fromkeys(page.next_urls) if u not in seen]
        seen.update(found)
        todo += found
        done(page, min(len(pages) + len(todo), max_pages) - min(known, max_pages))
    return pages


def _account(spooled: Spooled, summary: Summary) -> None:
    """Add a document's counts to the summary, which names it without a password in its URL."""
    label = without_password(spooled.label)
    if spooled.stopped:
        summary.sources_not_read.append(label)
        return
    if spooled.error:
        summary.sources_failed[label] = without_password(one_line(spooled.error))
    else:
        summary.sources_read += 1
    summary.entries += spooled.entries
    summary.entries_by_source[label] = spooled.entries
    summary.outside_period += max(spooled.entries - spooled.items - len(spooled.warnings), 0)
    summary.warnings += [without_password(f"{label}: {e}") for e in spooled.warnings]


def _store_all(db: Database, settings: Settings, spools: Sequence[Spooled], options: Options, summary: Summary,
               report: Progress, stop: threading.Event) -> None:
    """Merge the spools in time order and store them batch by batch, tracked as in polling,
    until `stop` is set (the batch in flight is stored whole)."""
    total = sum(s.items for s in spools)
    merged = _merged(spools)
    now = utc_now()
    window = Window(db, settings, now)
    tracking = storylines.Tracking(settings.tracking) if options.track else None
    history = _InOrder(_last_unstored(db, spools)) if options.track else None
    stored = 0
    report(Step("store", 0, total))  # the phase starts at zero, its clock too
    for batch in _batches(merged, options.batch):
        if stop.is_set():
            break
        if tracking is not None:  # built from the history before the first item, outside any write transaction
            tracking.loading(db, batch[0].published)
        stored += _store_batch(db, window, tracking, history, batch, now, summary)
        report(Step("store", stored, total, already_stored=summary.already_stored))
        if stored % (options.batch * 20) == 0:
            store.index_pending(db)  # searchable as it goes, in short transactions
    store.index_pending(db)
    summary.items_not_stored = total - stored


def _batches(items: Iterator[Merged], size: int) -> Iterator[list[Merged]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


def _last_unstored(db: Database, spools: Sequence[Spooled]) -> Key | None:
    """Where in the merged stream the last item the store does not hold yet is (None: it holds
    them all). Past it every item is stored already, so nothing is left to decide: replaying
    those would cost a run again over finished history its whole tracking time for nothing."""
    last: Key | None = None
    for rank, spooled in enumerate(spools):  # ranked as the merge ranks them
        if not spooled.path:
            continue
        n = 0
        for chunk in _read_identities(spooled.path):
            held = store.stored_identities(db, [identity for identity, _ in chunk])
            for identity, published in chunk:
                if identity not in held and (last is None or (published, rank, n) > last):
                    last = (published, rank, n)
                n += 1
    return last


@dataclass
class _InOrder:
    """What the tracker is given of each batch, so that a backfill run again after an
    interruption tracks exactly as one run would have: the new originals, and the originals
    stored before (by the interrupted run) replayed where they stand in time, each item once.
    Replaying stops at `until`, the last item not stored before: nothing after it is decided."""

    until: Key | None
    seen: set[int] = field(default_factory=set)  # items given the tracker in this run (an identity recurs: revisions)

    def arrivals(self, db: Database, batch: Sequence[Merged], new: Sequence[tuple[int, Item]]) -> list[storylines.Arrival]:
        fresh = {item.identity: item_id for item_id, item in new}
        earlier = [m.item.identity for m in batch
                   if m.item.identity not in fresh and self.until is not None and m.key <= self.until]
        stored = store.originals_by_identity(db, earlier) if earlier else {}
        arrivals = []
        for m in batch:  # time order; an identity's first place is where it was tracked
            identity = m.item.identity
            item_id = fresh.get(identity) or stored.get(identity)
            if item_id is None or item_id in self.seen:
                continue
            self.seen.add(item_id)
            arrivals.append(storylines.Arrival(item_id, m.item, replayed=identity not in fresh))
        return arrivals


def _store_batch(db: Database, window: Window, tracking: storylines.Tracking | None,
                 history: _InOrder | None, batch: list[Merged], now: dt.datetime, summary: Summary) -> int:
    with writing(db, window, tracking):
        result = pipeline.ingest_items(db, window, None, [m.item for m in batch], now)
        if tracking is not None and history is not None:
            arrivals = history.arrivals(db, batch, result.originals)
            summary.followups.update(tracking.track_history(db, arrivals, now))
    summary.items_new += result.new
    summary.exact_copies += result.exact
    summary.near_duplicates += result.near
    summary.revisions += result.revisions
    summary.already_stored += len(batch) - result.new - result.copies - result.revisions
    return len(batch)
