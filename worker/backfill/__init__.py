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

from worker.backfill.model import (
    BATCH, CHUNK, IDENTITY_CHUNK, JSONL_SUFFIXES, MAX_FILE_BYTES, Options, Source, Spooled, Summary,
)
from worker.backfill.sources import (
    SEEDS_HINT, SeedPaths, expand,
)
from worker.backfill.spools import (
    Key, Merged, ReadContext, merged_spools, read_file, read_identities, read_page,
)
from worker.backfill.run import (
    Progress, SPOOL_PREFIX, Step, backfill,
)

__all__ = [
    "BATCH",
    "CHUNK",
    "IDENTITY_CHUNK",
    "JSONL_SUFFIXES",
    "Key",
    "MAX_FILE_BYTES",
    "Merged",
    "Options",
    "Progress",
    "ReadContext",
    "SEEDS_HINT",
    "SPOOL_PREFIX",
    "SeedPaths",
    "Source",
    "Spooled",
    "Step",
    "Summary",
    "backfill",
    "expand",
    "merged_spools",
    "read_file",
    "read_identities",
    "read_page",
]
