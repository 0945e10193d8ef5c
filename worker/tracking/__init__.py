"""Tracking: the storyline scorer, pure (no store, no clock, no I/O).

- `textproc`: tokens, word pairs, names as written, aliases, spelling variants;
- `evidence`: where an item puts the names a storyline declares (headline, lead, repeated);
- `track`: profiles, background-normalised scores, decisions with their reasons, novelty.

The store-facing side (replay, look-back, suggestions: `worker.storylines`; explanations:
`worker.why`) sits above the store and feeds this package documents.
"""
