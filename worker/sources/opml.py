"""OPML 2.0: the feed-list format every reader imports and exports."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path

from worker.errors import StorywatchError
from worker.safetext import one_line


@dataclass(frozen=True, slots=True)
class OutlineFeed:
    url: str
    title: str = ""
    tags: tuple[str, ...] = ()


def read_opml(path: Path) -> list[OutlineFeed]:
    """Every feed (outline with an xmlUrl) in an OPML file; folders become tags."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise StorywatchError(f"OPML file not found: {path}") from None
    except ET.ParseError as exc:
        raise StorywatchError(f"{path}: not an OPML file: {exc}") from None
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise StorywatchError(f"{path}: not an OPML file: no <opml><body>")
    feeds: list[OutlineFeed] = []
    try:
        _walk(body, (), feeds)
    except RecursionError:
        raise StorywatchError(f"{path}: folders nested deeper than any reader's (thousands of levels)") from None
    return feeds


def _walk(node: ET.Element, folders: tuple[str, ...], out: list[OutlineFeed]) -> None:
    for outline in node.findall("outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        title = one_line(outline.get("title") or outline.get("text") or "")
        if url:
            categories = tuple(one_line(c).lstrip("/") for c in (outline.get("category") or "").split(",") if one_line(c))
            out.append(OutlineFeed(url, title, folders + categories))
        else:
            _walk(outline, folders + ((title,) if title else ()), out)


def write_opml(feeds: Sequence[OutlineFeed], now: dt.datetime) -> str:
    """An OPML 2.0 document listing the feeds (tags in the category attribute)."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = "storywatch feeds"
    ET.SubElement(head, "dateCreated").text = format_datetime(now)
    body = ET.SubElement(root, "body")
    for feed in feeds:
        attrs = {"type": "rss", "text": feed.title or feed.url, "title": feed.title or feed.url, "xmlUrl": feed.url}
        if feed.tags:
            attrs["category"] = ",".join(feed.tags)
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
