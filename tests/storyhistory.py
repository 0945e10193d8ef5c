"""A history whose storyline decisions depend on what the tracker saw before each item, and the
follow-ups a store recorded: what an interrupted backfill must decide as one run does."""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import sqlite3
from pathlib import Path

from bench.corpus import article
from worker import store

UTC = dt.timezone.utc
CHINA = ("Chinese and North Korean officials met in Beijing to discuss closer cooperation.",
         "Pyongyang and Beijing marked the 75th anniversary of diplomatic relations with a banquet.",
         "Zhao Leji led a Chinese delegation to Pyongyang for talks with Kim Jong Un.",
         "The China-DPRK Friendship Year was opened with a ceremony in Pyongyang.",
         "Wang Yi said China would deepen strategic communication with North Korea.",
         "Trade across the bridge between Dandong and Sinuiju resumed after the talks.",
         "Sun Weidong met Pak Myong-ho to prepare high-level exchanges between the two neighbours.")
RUSSIA = ("Kim Jong Un travelled to Vladivostok for a summit with Vladimir Putin.",
          "Russia and North Korea signed a pact on military cooperation.",
          "Putin arrived in Pyongyang on his first visit in 24 years.",
          "Officials said North Korea shipped artillery shells to Russia by rail.")
Entry = tuple[str, str, str, dt.datetime]  # guid, title, text, published


def korea_history(folder: Path, n: int, seed: int = 1) -> None:
    """Three sites' feed files of `n` items over ten months from August 2023 (before the default
    storylines' first seeds), mixing sentences on China–North Korea and North Korea–Russia ties
    with filler: many items are near the threshold, so what the tracker learnt before an item
    (word statistics, backgrounds, adopted follow-ups, silences) decides it."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    start = dt.datetime(2023, 8, 1, tzinfo=UTC)
    sites: dict[str, list[Entry]] = {f"site{s}": [] for s in range(3)}
    for k in range(n):
        site = f"site{rng.randrange(3)}"
        _, filler = article(rng, rng.choice([200, 600, 1200]))
        pool = rng.choice([CHINA, RUSSIA, CHINA + RUSSIA, ()])
        picked = rng.sample(pool, min(len(pool), rng.randint(1, 3))) if pool else []
        title = picked[0].rstrip(".") if picked and rng.random() < 0.6 else article(rng, 10)[0]
        text = " ".join([*picked, filler.replace("\n\n", " ")])
        sites[site].append((f"{site}-{k}", title, text, start + dt.timedelta(minutes=rng.randrange(300 * 24 * 60))))
    for site, entries in sites.items():
        _write_rss(folder / f"{site}.xml", site, entries)


def _write_rss(path: Path, name: str, entries: list[Entry]) -> None:
    items = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>https://{name}.example/{guid}</link>"
        f"<description><![CDATA[<p>{text}</p>]]></description>"
        f"<pubDate>{email.utils.format_datetime(when)}</pubDate></item>"
        for guid, title, text, when in entries)
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{name}</title>'
                    f"<link>https://{name}.example/</link>{items}</channel></rss>", encoding="utf-8")


def same_secret(source: Path, target: Path) -> None:
    """The store `target` made (if need be) with the secret of the store `source`: the same
    document-frequency buckets (storylines.bucket_key), so two stores fed the same items decide
    the same (with secrets of their own, items at the threshold's edge may go either way)."""
    key = store.identity_key(mine := store.open_store(source))
    mine.conn.close()
    theirs = store.open_store(target)
    with store.transaction(theirs):
        theirs.execute("UPDATE store_identity SET key = ?", [key])
    theirs.conn.close()


def followups(db: Path) -> set[tuple[str, str]]:
    """(item identity, storyline) of every follow-up decision recorded in the store `db`."""
    conn = sqlite3.connect(db)
    try:
        return set(conn.execute("SELECT i.identity, si.storyline_id FROM storyline_items si JOIN items i "
                                "ON i.id = si.item_id WHERE si.decision = 'followup'").fetchall())
    finally:
        conn.close()
