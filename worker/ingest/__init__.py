"""Ingest: what sources give, made into items and kept once.

- `normalize`: an entry (or a seed, or a record) into an Item: `text` (HTML to plain text,
  bounded by `markup`), `links` (canonical addresses), `identity` (the key it is stored under);
- `dedupe`: fingerprints, the near-duplicate index, copies and revisions;
- `seeds`: the seed documents of a folder.

It imports the sources and the base modules, never the store, the tracker or the digest.
"""
