"""Atom: a storyline's timeline as a feed, so it can be followed in any feed reader."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from worker import PROJECT_URL, __version__
from worker.clock import to_iso
from worker.digest import Story, why
from worker.models import StorylineDef, TimelineEntry

ATOM = "http://www.w3.org/2005/Atom"


def storyline_feed(storyline: StorylineDef, timeline: Sequence[TimelineEntry], now: dt.datetime) -> str:
    """An Atom 1.0 document: the storyline's follow-ups and seeds, newest first.

    Its dates come from the store (the newest entry, else when the storyline was last defined),
    so the same timeline always gives the same bytes and the file is only rewritten when it
    changed; `now` is not written into it."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _text(feed, "id", f"tag:storywatch,2026:storyline/{storyline.id}")
    _text(feed, "title", storyline.title)
    if storyline.description:
        _text(feed, "subtitle", storyline.description)
    newest = max((entry.published_at for entry in timeline), default=storyline.updated_at)
    _text(feed, "updated", to_iso(newest))
    ET.SubElement(feed, f"{{{ATOM}}}generator", {"uri": PROJECT_URL, "version": __version__}).text = "storywatch"
    for entry in sorted(timeline, key=lambda e: (e.published_at, e.item_id), reverse=True):
        _entry(feed, entry)
    ET.indent(feed)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="unicode") + "\n"


def _entry(feed: ET.Element, entry: TimelineEntry) -> None:
    node = ET.SubElement(feed, f"{{{ATOM}}}entry")
    _text(node, "id", f"tag:storywatch,2026:item/{entry.item_id}")
    _text(node, "title", entry.title)
    _text(node, "updated", to_iso(entry.published_at))
    _text(node, "published", to_iso(entry.published_at))
    if entry.url and entry.url.startswith(("http://", "https://")):
        ET.SubElement(node, f"{{{ATOM}}}link", {"rel": "alternate", "href": entry.url})
    if entry.publisher:
        author = ET.SubElement(node, f"{{{ATOM}}}author")
        _text(author, "name", entry.publisher)
    story = Story(entry.item_id, entry.title, entry.url, entry.publisher, entry.published_at, "", entry.decision,
                  entry.score, entry.threshold, entry.reasons, entry.novelty)
    summary = "Seed of the storyline." if entry.decision == "seed" else f"Why: {why(story, quote=str)}."
    if entry.novelty:
        summary += " New in this story: " + ", ".join(entry.novelty) + "."
    _text(node, "summary", summary)  # plain text: ElementTree escapes it for XML


# Characters XML 1.0 cannot carry at all (feeds do send them): dropped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, f"{{{ATOM}}}{tag}").text = _NOT_XML.sub("", text)
