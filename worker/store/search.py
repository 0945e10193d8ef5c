"""Finding items for listings: filters, full-text search, one item's detail."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from sqlite_utils import Database

from worker.clock import from_iso, to_iso
from worker.models import ItemDetail, Revision, StoredItem
from worker.store.connection import one_row
from worker.store.items import index_pending


def find_items(
    db: Database,
    *,
    since: dt.datetime | None = None,
    storyline: str | None = None,
    search: str | None = None,
    limit: int = 50,
    copies: bool = True,
) -> list[StoredItem]:
    """Items newest first (best match first when searching), with the storylines they belong to;
    without `copies`, only originals."""
    joins, where, params, order = _item_filter(db, since, storyline, search)
    if not copies:
        where += " AND items.dup_of IS NULL"
    sql = f"SELECT {_LISTED} FROM items {joins} WHERE {where} ORDER BY {order} LIMIT ?"
    return [_stored_item(row) for row in db.query(sql, [*params, limit])]


def count_copies(db: Database, *, since: dt.datetime | None = None, storyline: str | None = None,
                 search: str | None = None) -> int:
    """How many copies `find_items` leaves out without `copies` (the same filters)."""
    joins, where, params, _ = _item_filter(db, since, storyline, search)
    row = one_row(db, f"SELECT count(*) AS n FROM items {joins} WHERE {where} AND items.dup_of IS NOT NULL", params)
    return int(row["n"]) if row else 0


def _item_filter(db: Database, since: dt.datetime | None, storyline: str | None,
                 search: str | None) -> tuple[str, str, list[Any], str]:
    """The joins, condition, parameters and order of an items listing."""
    where, params, joins = ["1"], [], ""
    order = "items.published_at DESC, items.id DESC"
    words, unspaced = _search_terms(search or "")
    if words:
        index_pending(db)  # every stored item is searchable
        joins = "JOIN items_fts ON items_fts.rowid = items.id"
        where.append("items_fts MATCH ?")
        params.append(fts_query(words))
        order = "items_fts.rank, " + order
    for term in unspaced:  # a scan, as the index reads "北朝鮮と中国" as one word
        where.append("instr(items.title || ' ' || items.text, ?) > 0")
        params.append(term)
    if since:
        where.append("items.published_at >= ?")
        params.append(to_iso(since))
    if storyline:
        where.append("items.id IN (SELECT item_id FROM storyline_items WHERE storyline_id = ?)")
        params.append(storyline)
    return joins, " AND ".join(where), params, order


def publisher_sql(items: str) -> str:
    """SQL: who published an item as listings show it: its feed's name, else its title (as they are
    now: a feed renamed or titled since is shown so), else the publisher stored with the item."""
    return (f"coalesce((SELECT coalesce(nullif(f.name, ''), nullif(f.title, '')) FROM feeds f WHERE f.id = {items}.feed_id), "
            f"{items}.publisher) AS publisher")


_LISTED = (
    f"items.id, items.identity, items.source, items.title, items.url, {publisher_sql('items')}, items.published_at, "
    "items.first_seen_at, items.cluster_id, items.revision, items.dup_of, items.dup_kind, "
    "(SELECT json_group_array(storyline_id) FROM storyline_items WHERE item_id = items.id) AS sl"
)


def item_detail(db: Database, item_id: int) -> ItemDetail | None:
    row = one_row(db, f"SELECT {_LISTED}, items.text, items.summary, items.author, items.date_flag, items.similarity "
                   "FROM items WHERE items.id = ?", [item_id])
    if row is None:
        return None
    revisions = tuple(
        Revision(r["revision"], from_iso(r["seen_at"]), r["title"], tuple(json.loads(r["changed"])), r["diff"])
        for r in db.query("SELECT * FROM item_revisions WHERE item_id = ? ORDER BY revision", [item_id])
    )
    cluster = tuple(
        _stored_item(r)
        for r in db.query(f"SELECT {_LISTED} FROM items WHERE cluster_id = ? ORDER BY id", [row["cluster_id"]])
    )
    return ItemDetail(_stored_item(row), row["text"], row["summary"], row["author"], row["date_flag"],
                      row["similarity"], revisions, cluster)


def _stored_item(row: dict[str, Any]) -> StoredItem:
    return StoredItem(
        id=row["id"],
        identity=row["identity"],
        source=row["source"],
        title=row["title"],
        url=row["url"],
        publisher=row["publisher"],
        published_at=from_iso(row["published_at"]),
        first_seen_at=from_iso(row["first_seen_at"]),
        storylines=tuple(sorted(json.loads(row["sl"]))),
        cluster_id=row["cluster_id"],
        revisions=row["revision"] - 1,
        dup_of=row["dup_of"],
        dup_kind=row["dup_kind"],
    )


_FTS_TOKEN = re.compile(r'"([^"]*)"|(\S+)')


# Scripts written without spaces between words (Chinese, Japanese) or that join endings to
# words (Korean): the full-text index can't cut them into words, so they are found as substrings.
_UNSPACED = re.compile("[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def _search_terms(text: str) -> tuple[str, list[str]]:
    """A search split into what the full-text index finds (words) and what is found as a
    substring (terms in an unspaced script, see _UNSPACED)."""
    words, unspaced = [], []
    for phrase, word in _FTS_TOKEN.findall(text):
        term = phrase or word
        if _UNSPACED.search(term):
            unspaced.append(" ".join(term.split()))
        elif term.strip():
            words.append(f'"{term}"' if phrase else term)
    return " ".join(words), unspaced


def fts_query(text: str) -> str:
    """A user's search words as a safe FTS5 query: every word must match, "quoted" = phrase.

    Each term is quoted, so FTS syntax (AND, NEAR, column filters, *) in the input is read
    as plain words rather than failing or changing the query's meaning.
    """
    terms = []
    for phrase, word in _FTS_TOKEN.findall(text):
        words = re.findall(r"\w+", phrase or word)
        if words:
            terms.append('"' + " ".join(words) + '"')
    return " ".join(terms) if terms else '""'
