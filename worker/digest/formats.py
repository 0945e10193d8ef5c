"""Plain text and HTML from the same content as the Markdown: the HTML is rendered by markdown-it
with raw HTML off, then sanitized again by nh3 with an allowlist (no scripts, styles, event
handlers, iframes or images; http(s) links only).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import nh3

from worker.digest.markdown import render_markdown, sparkline
from worker.digest.model import DigestData

if TYPE_CHECKING:
    from markdown_it import MarkdownIt


_UNESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|~<>&=])")
# A link we made: an unescaped "[" and its text on one line (an escaped "\[" from a title is text).
_MD_LINK = re.compile(r"(?<!\\)\[((?:\\.|[^\]\\\n])*)\]\(([^)\s]+)\)")


def render_text(data: DigestData) -> str:
    """The Markdown without its markup: links become "title <url>"."""
    text = _MD_LINK.sub(lambda m: f"{m.group(1)} <{m.group(2)}>", render_markdown(data))
    text = re.sub(r"^#+ ", "", text, flags=re.M).replace("**", "")
    text = re.sub(r"(?<!\\)`", "", text)  # our code spans; an escaped "\`" from a title stays
    return _UNESCAPE.sub(r"\1", text)


@functools.cache
def _markdown() -> MarkdownIt:
    """The renderer, made when a digest is first rendered as HTML: markdown-it takes a while to
    import, and most commands (a one-shot poll) never render one."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_ALLOWED_TAGS = {"h1", "h2", "h3", "p", "ul", "li", "a", "strong", "em", "code", "blockquote", "table", "tr", "td",
                 "span", "div", "br"}
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "td": {"style", "title"}, "div": {"style"}, "span": {"style"},
                       "table": {"style", "role"}}


def render_html(data: DigestData) -> str:
    body = _markdown().render(render_markdown(data))
    for section in data.storylines:  # the activity line as a small bar chart (mail clients drop SVG),
        # after its paragraph: a table inside a <p> would leave an empty paragraph behind it
        body = body.replace(f" <code>{sparkline(section.activity)}</code></p>", "</p>\n" + bar_chart(section.activity), 1)
    clean = sanitize(body)
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>'
        + f"Digest {data.period.day:%Y-%m-%d}</title></head>"
        + '<body style="font-family:Georgia,serif;max-width:42em;margin:auto;line-height:1.45">'
        + clean + "</body></html>\n"
    )


def sanitize(html: str) -> str:
    """The allowlist every HTML digest goes through: http(s) links only, no active content."""
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https"},
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"height", "width", "background", "display", "vertical-align", "font-size", "color"},
    )


def bar_chart(counts: Sequence[int]) -> str:
    top = max(counts, default=0) or 1
    cells = "".join(
        f'<td title="{c}" style="vertical-align:bottom;width:4px"><div style="height:{max(1, round(c / top * 20))}px;'
        f'width:4px;background:{"#2b6cb0" if c else "#e2e8f0"}"></div></td>'
        for c in counts
    )
    return f'<table role="presentation" style="display:inline-table;height:22px"><tr>{cells}</tr></table>'
