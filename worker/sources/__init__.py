"""Sources: where feed documents come from and how they are read, before anything is stored.

- `fetch`: one polite, bounded, conditional HTTP GET per feed (httpx), with the SSRF guard;
- `parse`: RSS, Atom, RDF and JSON Feed documents into entries (feedparser);
- `opml`: subscription lists in and out.

Nothing here knows the store, the tracker or the digest: this package imports only the
project's base modules (errors, safetext, localdates).
"""
