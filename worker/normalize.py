"""Normalize: turn what a source says about an article into an Item ready to store.

Text is Unicode-normalized (NFKC) and its whitespace collapsed; the content hash is taken
over the normalized title and body, so the same words always hash alike.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata

from worker.clock import start_of_day
from worker.models import Item, SeedDoc

_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """NFKC, spaces collapsed within lines, at most one blank line between paragraphs."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def content_hash(title: str, text: str) -> str:
    """sha256 of the normalized title and body, whitespace-insensitive."""
    words = " ".join(clean_text(title).split()) + "\n" + " ".join(clean_text(text).split())
    return hashlib.sha256(words.encode("utf-8")).hexdigest()


def seed_identity(doc: SeedDoc) -> str:
    """A seed is identified by its file name, so editing the file revises the same item."""
    return f"seed:{doc.path.name}"


def seed_item(doc: SeedDoc, now: dt.datetime) -> Item:
    """A seed document as an item (source "seeds"); an undated seed is dated by first sight."""
    title = clean_text(doc.title)
    body = clean_text(doc.text)
    first_line, _, rest = body.partition("\n")
    if first_line.strip() == title:  # the file repeats its headline as the first line
        body = rest.strip()
    return Item(
        identity=seed_identity(doc),
        source="seeds",
        title=title,
        text=body,
        published_at=start_of_day(doc.published) if doc.published else now,
        first_seen_at=now,
        content_sha256=content_hash(title, body),
        publisher=doc.publisher,
        lang=doc.language,
    )
