"""Text: HTML → plain text through a real HTML parser (what a browser would not show, such as
scripts, styles and comments, dropped even when left unclosed; entities decoded; block tags
become line breaks, inline tags never glue or split words), Unicode NFKC, whitespace collapsed;
its cost grows with the item's size only: HTML past MAX_MARKUP is cut, and nesting past
MAX_DEPTH flattened into the line breaks it stands for (see markup.bound_markup)."""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata

import nh3

from worker.ingest.markup import (CELL_TAGS, FEW_TAGS, HIDDEN_TAGS, INLINE_TAGS, LINE_TAGS, MAX_MARKUP,
                                  PARAGRAPH_TAGS, SMALL, bound_markup)
from worker.ingest.tokenizer import display_of
from worker.safetext import one_line

# ── text ─────────────────────────────────────────────────────────────────────────────────────

_BLANK_LINES = re.compile(r"\n{3,}")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # bidi overrides: text shown backwards

def _mark_hidden(element: str, attribute: str, value: str) -> str | None:
    """The attributes the parser keeps as marks for `_drop_hidden`: `hidden` bare (but
    hidden="until-found": content a reader can reveal, kept as text), a <dialog>'s `open` bare, and
    `style` as the display it sets, "none" or "shown" (which a `hidden` or a closed <dialog> yields
    to), or dropped when it sets none."""
    if attribute == "style":
        display = display_of(value)
        return None if not display else "none" if display == "none" else "shown"
    return None if attribute == "hidden" and value.lower() == "until-found" else ""


# The parsing is html5ever's (through nh3), as a browser parses: an unclosed <script>, <style> or
# comment runs to the end, "</" inside a script is script, entities are decoded once, attribute
# names are lower case. Its output keeps only the tags above with marks of what they hide
# (` hidden=""`, ` open=""`, ` style="none"`, see _mark_hidden) for `_drop_hidden`, and escapes every
# "<" of the text (but inside <xmp> and <plaintext>, see _RAW_TEXT), so the patterns below read the
# parser's output, never the feed's markup. <math> is kept so that its text is (MathML's own tags
# vanish inside it: "E=mc2"); without it the parser drops MathML whole; and the MathML elements that
# may hold HTML, else the parser drops that HTML (mi to mtext, see _INTEGRATION). (Every item is
# read for its marks: a look for them in any letter case cost more than the longer output, 4 µs an item.)
_MARKED = nh3.Cleaner(
    tags=set(PARAGRAPH_TAGS + LINE_TAGS + CELL_TAGS + ("math", "mi", "mo", "mn", "ms", "mtext") + INLINE_TAGS),
    clean_content_tags=set(HIDDEN_TAGS),
    attributes={"*": {"hidden", "style"}, "dialog": {"open"}},
    attribute_filter=_mark_hidden,
    strip_comments=True,
    link_rel=None,
)
_PARAGRAPH = re.compile(f"</?(?:{'|'.join(PARAGRAPH_TAGS)})>")
_LINE = re.compile(f"<(?:{'|'.join(LINE_TAGS)})>")
_CELL = re.compile(f"</?(?:{'|'.join(CELL_TAGS)})>")
_TAG = re.compile(r"</?[a-z0-9]+>")  # the rest: closing tags of LINE_TAGS, <math>, inline tags
# Their text comes out as the feed wrote it, unescaped (see _escape_raw); a <plaintext> runs to the end.
_RAW_TEXT = re.compile(r"<(xmp)([^>]*)>(.*?)</xmp>|<(plaintext)([^>]*)>(.*)</plaintext>", re.S)
_OUTPUT_TAG = re.compile(r"<(/?)([a-z0-9-]+)([^>]*)>")


def clean_text(text: str) -> str:
    """NFKC, control characters removed, spaces collapsed within lines, at most one blank line.

    str.split() rather than a regex collapses the spaces: this runs on every item, and a regex
    over 2 KB of text cost 56 µs where split and join cost 9.
    """
    text = unicodedata.normalize("NFKC", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = "\n".join(" ".join(line.split()) for line in text.split("\n"))
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment, as a browser shows it: block elements become line breaks,
    inline ones vanish; scripts, styles, comments and other hidden content never appear.

    A CDATA section in HTML is a comment up to its first ">" (as in browsers), so one holding
    no ">" vanishes whole and one wrapping an article keeps the article's text.
    """
    if "<" not in markup and "&" not in markup:
        return clean_text(markup)
    markup = markup[:MAX_MARKUP]  # cut mid-tag or mid-comment, the rest is dropped as unfinished
    if len(markup) > FEW_TAGS and (len(markup) > SMALL or markup.count("<") > FEW_TAGS):
        markup = bound_markup(markup)
    text = _drop_hidden(_MARKED.clean(markup))
    text = _PARAGRAPH.sub("\n\n", text)
    text = _LINE.sub("\n", text)
    text = _CELL.sub(" ", text)
    text = _TAG.sub("", text)
    return clean_text(html.unescape(text))


def _drop_hidden(text: str) -> str:
    """_MARKED's output without the elements it marks hidden (see _hides), each with all it holds,
    and without the marks; its tags are balanced (only <br> and <hr> are void), so a count of the
    depth finds where each ends (the text of <xmp> and <plaintext> escaped first)."""
    if "<xmp" in text or "<plaintext" in text:
        text = _RAW_TEXT.sub(_escape_raw, text)
    if '="' not in text and "<dialog" not in text:
        return text
    pieces: list[str] = []
    depth, hidden_at, done = 0, -1, 0
    for found in _OUTPUT_TAG.finditer(text):
        closing, name, marks = found.groups()
        if name in ("br", "hr"):  # void: a hidden one is no break
            if marks and hidden_at < 0 and _hides(name, marks):
                pieces.append(text[done:found.start()])
                done = found.end()
            continue
        if closing:
            depth -= 1
            if depth == hidden_at:
                hidden_at, done = -1, found.end()
        else:
            if hidden_at < 0 and _hides(name, marks):
                pieces.append(text[done:found.start()])
                hidden_at = depth
            depth += 1
    pieces.append(text[done:] if hidden_at < 0 else "")
    return _OUTPUT_TAG.sub(r"<\1\2>", "".join(pieces))  # the marks of what shows


def _escape_raw(found: re.Match[str]) -> str:
    """An <xmp> or <plaintext> of _MARKED's output with its text escaped as the rest is."""
    name, marks, text = found.groups()[:3] if found[1] else found.groups()[3:]
    return f"<{name}{marks}>{html.escape(text, quote=False)}</{name}>"


def _hides(name: str, marks: str) -> bool:
    """Whether an element of _MARKED's output with these marks is hidden: display:none in its style,
    else the `hidden` attribute or a <dialog> not open, unless its style displays it anyway."""
    if 'style="' in marks:
        return 'style="none"' in marks
    return "hidden" in marks or (name == "dialog" and "open" not in marks)


MAX_TITLE = 1000  # characters: a longer headline is a hostile or broken feed, cut with "…"


def clean_title(markup: str) -> str:
    """A headline as one safe line of plain text (see safetext), at most MAX_TITLE characters."""
    title = one_line(html_to_text(markup))
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1].rstrip() + "…"


def content_hash(title: str, text: str) -> str:
    """sha256 of a title and body as `clean_text` leaves them, insensitive to whitespace."""
    words = " ".join(title.split()) + "\n" + " ".join(text.split())
    return hashlib.sha256(words.encode("utf-8")).hexdigest()
