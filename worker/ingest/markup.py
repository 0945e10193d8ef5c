"""Bounding what the HTML parser is shown: an item's markup, cut and flattened where its size or
nesting would make html5ever's cost grow faster than the item (see `bound_markup`)."""

from __future__ import annotations

import re
from collections import defaultdict

from worker.ingest.tokenizer import (
    MARKUP, NOTHING, RAW_HIDDEN, RAW_SHOWN, TEXT_RUN, WS, comment_end, marks_kept, raw_end, raw_text, split_text,
    text_pieces,
)


# What each structural tag becomes in plain text; every other tag vanishes, keeping its text.
PARAGRAPH_TAGS = (  # separated by a blank line
    "p", "div", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "pre", "section",
    "article", "header", "footer", "aside", "nav", "hr", "figure", "figcaption", "dl", "main", "address",
    "details", "summary", "center", "form", "fieldset", "legend", "hgroup", "listing", "xmp", "menu", "dir",
    "dialog", "search", "option", "optgroup", "plaintext",
)
LINE_TAGS = ("br", "li", "tr", "dt", "dd")  # start a new line
CELL_TAGS = ("td", "th")  # a space between cells
# Inline tags the parser keeps so that what hides them (see _mark_hidden) is seen on them; they
# vanish like the rest. (On a tag it drops, not listed, a mark is lost and what it hides shows.)
INLINE_TAGS = (
    "a", "abbr", "acronym", "applet", "b", "bdi", "bdo", "big", "blink", "button", "caption", "cite", "code",
    "data", "del", "dfn", "em", "font", "i", "ins", "kbd", "label", "map", "mark", "marquee", "meter", "nobr",
    "object", "output", "picture", "progress", "q", "rb", "rp", "rt", "rtc", "ruby", "s", "samp", "select",
    "slot", "small", "span", "strike", "strong", "sub", "sup", "tbody", "textarea", "tfoot", "thead", "time",
    "tt", "u", "var",
)
# Elements whose content a reader never sees, dropped with everything inside them, closed or not;
# among them what a browser shows only when it cannot play or draw the element (the fallback of
# <video>, <audio>, <canvas>), a <datalist>'s suggestions and MathML's annotations (a formula's TeX).
# <object>'s fallback stays: browsers show it for the plugins they no longer run.
HIDDEN_TAGS = (
    "script", "style", "noscript", "template", "iframe", "svg", "head", "title", "noembed", "noframes",
    "video", "audio", "canvas", "datalist", "annotation", "annotation-xml",
)


# Limits on what one item's HTML costs to convert. html5ever's time grows with the square of the
# nesting depth (80,000 nested <ul><li> took 81 s, 400 KB of nested <div> 16 s), and of a few other
# counts (formatting tags it reopens, attributes of one tag, "&" in one text), and a parse in the fetch
# thread has no time limit. So an item's HTML beyond MAX_MARKUP characters is cut, and an item with
# many tags or much text goes through `bound_markup` first: it shows the parser at most MAX_DEPTH open
# elements and MAX_TAGS start tags, beyond which tags are flattened into the line breaks and spaces
# they stand for, so the text stays whole. Articles nest a few dozen deep, run to a few hundred tags
# and tens of KB, so no limit touches a real one; the worst item takes about a second to convert.
MAX_MARKUP = 1_000_000  # characters
MAX_DEPTH = 128  # elements open at once, as bound_markup counts them
MAX_TAGS = 10_000  # start tags the parser is shown, however bound_markup counts what is open
# An item with at most this many "<" and characters is parsed as written: whatever its markup it
# costs 40 ms at worst, and bound_markup's ~3 µs a tag would double the cost of a long article.
FEW_TAGS, SMALL = 1000, 50_000
_LONG_TAG = 2048  # characters: a longer tag keeps only its name (html5ever's check of its attributes is quadratic)


# ── bounding what the parser is shown ───────────────────────────────────────────────────────
#
# bound_markup reads the markup with the HTML tokenizer's rules (tags and their quoted attributes,
# comments, the text of <script> and its kin), one pass, and counts which elements are open with a
# few of the tree builder's rules. It changes nothing in an item within the limits but the spelling
# of what cannot alter the text, and makes the parse's cost linear beyond them.


_VOID = frozenset("area base basefont bgsound br col embed frame hr image img input keygen link meta param "
                  "source track wbr html head body frameset".split())  # and those ignored inside a body
_HIDDEN = frozenset(HIDDEN_TAGS)
# Formatting elements the parser reopens after they are closed by another; it keeps at most three
# alike (same attributes) for that, so theirs are dropped: else a list of them grows without bound.
_FORMATTING = frozenset("b big code em font i s small strike strong tt u".split())
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})  # one closes another: counted as "h1"

# Which open element an end tag closes: the nearest of its name unless an element of its kind
# (below) is open above that one, in which case the parser leaves both open. Block end tags stop at
# the scope's boundaries, table ones at tables, any other at every "special" element.
_SCOPE, _TABLE, _SPECIAL = " scope", " table", " special"
_BOUNDARIES = {
    _SCOPE: "applet caption table td th marquee object template mi mo mn ms mtext annotation-xml "
            "foreignobject desc ol ul button",
    _TABLE: "table template",
    _SPECIAL: "address applet article aside blockquote button caption center colgroup dd details dir div dl dt "
              "fieldset figcaption figure footer form h1 header hgroup li listing main marquee menu nav object ol "
              "p pre search section select summary table tbody td template tfoot th thead tr ul mi mo mn ms mtext "
              "annotation-xml foreignobject desc",
}
_KINDS: dict[str, tuple[str, ...]] = {}  # a name and its kinds, for the names that have any
for _kind, _names in _BOUNDARIES.items():
    for _name in _names.split():
        _KINDS[_name] = (*_KINDS.get(_name, (_name,)), _kind)
_CLOSED_BY: dict[str, str] = {
    **{name: _SCOPE for name in "address applet article aside blockquote button center details dialog dir div dl "
       "fieldset figcaption figure footer header hgroup listing main marquee menu nav object ol pre search section "
       "summary ul li dd dt p h1".split()},
    **{name: _TABLE for name in "table tbody thead tfoot tr td th caption".split()},
}
# A table's parts, shown whenever their parent is (at most three levels beyond the limits): text in
# a table but in none of its cells is moved before it by the parser, out of its place in the text.
_TABLE_PARTS = {
    **{part: {"table"} for part in ("caption", "tbody", "thead", "tfoot")},
    "tr": {"table", "tbody", "thead", "tfoot"}, "td": {"tr"}, "th": {"tr"},
}
# In a table (in none of its cells), the parser moves text and any tag but these before the table
# ("foster parenting"), walking all that the table's parent holds for each piece of text (a run, a
# character reference, a "<", CR or NUL) and each tag: past _FOSTERED such pieces in an item the
# table ends there for the parser, and the rest of it is flattened (see bound_markup), its text
# shown in place, after the table's earlier rows, instead of before the table. Articles put a few
# words at most there.
_FOSTERING = frozenset("table tbody thead tfoot tr colgroup".split())  # the elements of a table it happens in
_ROW_GROUPS = ("tbody", "thead", "tfoot")
_TABLE_STRUCTURE = frozenset(("table", "caption", "colgroup", "col", "tr", "td", "th", *_ROW_GROUPS))
# Tags the parser keeps in a table, and those bound_markup shows it as text (counted as text) or not at all.
_STAYS = _TABLE_STRUCTURE | {"form", "script", "style", "template"} | RAW_HIDDEN | RAW_SHOWN
_FOSTERED = 256

# SVG and MathML ("foreign content"), a kind of the elements in their namespaces as bound_markup counts
# them: in them a CDATA section is text, the text of <xmp> and its kin is markup, a self-closing tag
# opens nothing, and the tags of _BREAKOUT (and the end tags </p>, </br>) close them back to HTML. In
# their integration points HTML is again.
_FOREIGN = " foreign"
_FOREIGN_ROOTS = ("svg", "math")
_INTEGRATION = frozenset({"mi", "mo", "mn", "ms", "mtext", "foreignobject", "desc", "title"})
_BREAKOUT = frozenset(
    "b big blockquote body br center code dd div dl dt em embed h1 head hr i img li listing menu meta nobr ol p pre "
    "ruby s small span strong strike sub sup table tt u ul var".split()
)


def _leaves_foreign(key: str, closing: str, attrs: str) -> bool:
    """Whether a tag in SVG or MathML closes them back to HTML (see _FOREIGN)."""
    if closing:
        return key in ("p", "br")
    return key in _BREAKOUT or (key == "font" and re.search(r"\b(?:color|face|size)\b", attrs, re.I) is not None)


# The open element a start tag surely closes when it is the innermost one: (a start tag, what it closes).
_CLOSES_P = ({"p"},)
_CLOSES: dict[str, tuple[set[str], ...]] = {
    **{name: _CLOSES_P for name in "address article aside blockquote center details dialog dir div dl fieldset "
       "figcaption figure footer form header hgroup listing main menu nav ol p pre search section summary table "
       "ul".split()},
    "li": ({"p"}, {"li"}), "dd": ({"p"}, {"dd", "dt"}), "dt": ({"p"}, {"dd", "dt"}), "h1": ({"p"}, {"h1"}),
    "option": ({"option"},), "optgroup": ({"option"}, {"optgroup"}), "button": ({"button"},),
    "tr": ({"td", "th"}, {"tr"}), "td": ({"td", "th"},), "th": ({"td", "th"},),
}


def bound_markup(markup: str) -> str:
    """The markup as the parser should see it: at most MAX_DEPTH elements open at once and
    MAX_TAGS start tags, with the same text.

    Every tag beyond the limits is replaced by what it becomes in the text (a paragraph's or line's
    break, a cell's space, nothing), and a hidden element beyond them by nothing, with all it holds.
    Whatever the tree builder decides by context is settled here first, so that this reading and the
    parser's agree on what is a tag: the text of <script>, <style> and the rest of what is never shown
    is dropped, that of <xmp>, <textarea> and <plaintext> escaped as text, a CDATA section (a bogus
    comment in HTML, text in SVG and MathML) left out, a tag left unfinished at the end dropped.
    Long text is split into several text nodes (see TEXT_RUN), a table ends after _FOSTERED pieces
    the parser would move before it (see _FOSTERING), long tags lose their attributes, formatting
    tags their attributes (see _FORMATTING).
    """
    return _Bounder(markup).bounded()


class _OpenElements:
    """The elements open as bound_markup counts them, and what of them the parser is shown: the
    tree builder's rules for where an element closes (tables, SVG and MathML) that decide it."""

    __slots__ = ("stack", "where", "foreign_open", "shown", "hidden_at")

    def __init__(self) -> None:
        # The open elements as counted, each as its name and kinds; the parser is shown stack[:shown].
        self.stack: list[tuple[str, ...]] = []
        self.where: defaultdict[str, list[int]] = defaultdict(list)  # positions in `stack` of each name and kind
        self.foreign_open = self.where[_FOREIGN]  # those of SVG's and MathML's elements: mostly none
        self.shown = 0
        self.hidden_at = -1  # position in `stack` of the hidden element being left out, or -1

    def pop_to(self, index: int) -> None:
        stack, where = self.stack, self.where
        while len(stack) > index:
            for key in stack.pop():
                where[key].pop()
        self.shown = min(self.shown, index)
        if self.hidden_at >= index:
            self.hidden_at = -1

    def leave_foreign(self) -> None:
        """Close SVG and MathML back to HTML, as a tag of _BREAKOUT does in them."""
        stack = self.stack
        index = len(stack)
        while index and stack[index - 1][-1] == _FOREIGN and stack[index - 1][0] not in _INTEGRATION:
            index -= 1
        self.pop_to(index)

    def push(self, key: str, foreign: bool = False) -> None:
        """Open an element (`foreign`: in SVG or MathML, see _FOREIGN)."""
        keys = _KINDS.get(key) or (key,)
        if foreign or key in _FOREIGN_ROOTS:
            keys = (*keys, _FOREIGN)
        for k in keys:
            self.where[k].append(len(self.stack))
        self.stack.append(keys)

    def last_of(self, names: tuple[str, ...], above: int) -> int:
        """Position of the innermost open element of these names, when above position `above` and
        shown to the parser, or -1 (it has not seen one flattened, nor those around it)."""
        found = -1
        for name in names:
            positions = self.where[name]
            if positions and positions[-1] > found:
                found = positions[-1]
        return found if above < found < self.shown else -1

    def open_table(self) -> int:
        """Position of the table the parser is in (shown, the innermost, with no template nor SVG or
        MathML open in it), whose rules it follows, or -1."""
        bounds = self.where[_TABLE]
        if not bounds or bounds[-1] >= self.shown or self.stack[bounds[-1]][0] != "table":
            return -1
        return bounds[-1] if self.last_of(("svg", "math"), bounds[-1]) < 0 else -1

    def fostering(self) -> bool:
        """Whether the parser would move text or a tag here before a table."""
        return self.shown > 0 and self.stack[self.shown - 1][0] in _FOSTERING and self.hidden_at < 0 and \
            self.open_table() >= 0

    def in_table(self, key: str, table: int) -> None:
        """Open elements as the parser has them at a start tag of a table's structure in that
        table: it closes all that is open in it back to the part the tag belongs in (so a tag
        nested in a cell closes the cell) and adds the parts the tag needs (a <td> its row)."""
        if key == "table":  # in no cell, a table closes the one it is in, and opens beside it
            if self.last_of(("td", "th", "caption"), table) < 0:
                self.pop_to(table)
            return
        row = self.last_of(("tr",), table) if key in ("td", "th") else -1
        group = self.last_of(_ROW_GROUPS, table) if key in ("td", "th", "tr") and row < 0 else -1
        self.pop_to(max(row, group, table) + 1)
        if key in ("td", "th", "tr") and max(row, group) < 0:
            self.push("tbody")
        if key in ("td", "th") and row < 0:
            self.push("tr")
        if key == "col":
            self.push("colgroup")
        self.shown = len(self.stack)  # the parser has them all


class _Bounder(_OpenElements):
    """bound_markup's reading of one document, left to right: the elements open as counted, what
    of them the parser is shown, and the pieces of markup it will be shown instead of the original."""

    __slots__ = ("markup", "pieces", "tags", "text_run", "fostered", "done")

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.markup = markup
        self.pieces: list[str] = []
        self.tags = 0
        self.text_run = 0  # characters of text shown to the parser since a text node surely ended (split_text)
        self.fostered = 0  # pieces the parser moves before a table (see _FOSTERING)
        self.done = 0  # markup[:done] is in pieces (or left out)

    def bounded(self) -> str:
        markup, stack, search = self.markup, self.stack, MARKUP.search
        last = 0  # markup[:last] has been read
        while found := search(markup, last):
            start, end = found.span()
            if self.hidden_at >= 0:
                self.done = start  # what a hidden element holds is left out
            elif start > last:
                if self.text_run + start - last <= TEXT_RUN and not (
                        self.shown and stack[self.shown - 1][0] in _FOSTERING):
                    self.text_run += start - last  # text, in place: keep_text's most frequent case, inline
                else:
                    self.keep_text(last, start)
            closing, name, attrs, finished, comment = found.groups()
            if name is None:
                end = self.other(start, end, comment)
                if end < 0:  # "</" or "<!" at the end: text
                    last = len(markup)
                    break
            elif not finished:  # a tag running to the end, which the parser drops: it is not shown one
                self.replace(start, len(markup), "")  # (its attributes cost the square of their number)
                last = len(markup)
                break
            else:
                end = self.tag(start, end, closing, name, attrs)
            last = end
            if self.hidden_at >= 0:
                self.done = end
        if self.hidden_at >= 0:
            self.done = len(markup)
        else:
            self.keep_text(last, len(markup))
        if self.done == 0:
            return markup
        self.pieces.append(markup[self.done:])
        return "".join(self.pieces)

    def other(self, start: int, end: int, comment: str | None) -> int:
        """A comment, a CDATA section, a doctype or another bogus comment: where it ends (-1: a
        "</" or "<!" at the end, which is text)."""
        markup = self.markup
        if comment:  # the same in every context
            return comment_end(markup, end)
        if markup.startswith("</>", start):
            return start + 3
        if end == len(markup):
            return -1
        if markup.startswith("<![CDATA[", start) and self.stack and self.stack[-1][-1] == _FOREIGN:
            close = markup.find("]]>", end)  # in SVG and MathML a CDATA section is text, up to "]]>"
            content = markup[start + 9: close if close >= 0 else len(markup)]
            end = close + 3 if close >= 0 else len(markup)
            escaped = content.replace("&", "&amp;").replace("<", "&lt;")
            self.replace(start, end, f"{NOTHING}{self.text(escaped)}{NOTHING}")
            return end
        close = markup.find(">", end)  # <!…>, <?…>, </…>: a bogus comment, up to ">" (a doctype ends alike)
        end = close + 1 if close >= 0 else len(markup)
        if markup.startswith("<![CDATA[", start):  # left out: where else is it text?
            self.replace(start, end, NOTHING)
        return end

    def tag(self, start: int, end: int, closing: str, name: str, attrs: str) -> int:
        """A finished start or end tag: what the parser is shown of it; where it ends (an element
        whose text is raw ends after its end tag)."""
        tag = name.lower()
        key = "h1" if tag in _HEADINGS else tag
        long_tag = end - start > _LONG_TAG
        stack = self.stack
        foreign = bool(self.foreign_open) and stack[-1][-1] == _FOREIGN and stack[-1][0] not in _INTEGRATION
        if foreign and _leaves_foreign(key, closing, attrs):
            self.leave_foreign()
            foreign = False
        if closing:
            self.end_tag(start, end, tag, key, long_tag)
            return end
        # In a table, first: what the parser closes there, or moves before it.
        if key in _TABLE_STRUCTURE and (table := self.open_table()) >= 0:
            self.in_table(key, table)
        elif self.shown and stack[self.shown - 1][0] in _FOSTERING and tag not in _STAYS and self.fostering():
            self.foster(start, 1)
        if tag in _VOID or ((foreign or key in _FOREIGN_ROOTS) and attrs.rstrip(WS).endswith("/")) or (
                tag == "form" and self.fostering()):  # holding nothing
            if tag not in _VOID and self.shown < len(stack):  # in a flattened SVG or MathML: not an element
                self.replace(start, end, NOTHING)            # of HTML's, which would hold what follows
            elif long_tag:
                self.replace(start, end, f"<{tag}>")
        elif tag in RAW_HIDDEN and not foreign:  # dropped up to its end tag (or the end), left in place
            end = raw_end(self.markup, tag, end)
            self.replace(start, end, "")
        elif tag in RAW_SHOWN and not foreign:
            end = self.raw_shown(start, end, tag, attrs)
        else:
            self.start_tag(start, end, tag, key, attrs, foreign, long_tag)
        return end

    def end_tag(self, start: int, end: int, tag: str, key: str, long_tag: bool) -> None:
        where = self.where
        positions = where[key]
        target = positions[-1] if positions else -1
        kind = where[_CLOSED_BY.get(key, _SPECIAL)]
        if target < 0 or (kind and target < kind[-1]):  # closes nothing
            if long_tag:
                self.replace(start, end, f"</{tag}>")
        elif target >= self.shown:  # a flattened element's end
            ignored = key in _TABLE_STRUCTURE and not where[_TABLE]
            gap = NOTHING if target == self.hidden_at or ignored else _FLAT_END.get(key, NOTHING)
            self.pop_to(target)
            self.replace_shown(start, end, gap)
        else:
            self.pop_to(target)
            if long_tag:
                self.replace(start, end, f"</{tag}>")

    def raw_shown(self, start: int, end: int, tag: str, attrs: str) -> int:
        """An element whose text is shown as it is written (<xmp>, <textarea>, <plaintext>): escaped
        as text, up to its end tag; where it ends."""
        where = self.where
        paragraph = where["p"][-1] if where["p"] and tag != "textarea" else -1
        if paragraph > max(where[_SCOPE], default=-1):  # in button scope: the parser closes it first
            ending = "</p>" if paragraph < self.shown else "\n\n"
            self.pop_to(paragraph)
            self.replace(start, start, ending)
        if marks_kept(tag, attrs) == " hidden":  # left out with all it holds
            end = raw_end(self.markup, tag, end)
            self.replace(start, end, "")
            return end
        end, content = raw_text(self.markup, tag, end)
        if self.fostering():
            self.foster(start, 1 + content.count("&"))
        self.replace(start, end, f"{NOTHING}{self.text(content)}{NOTHING}" if tag == "textarea"
                     else self.text(f"\n\n{content}\n\n"))
        return end

    def start_tag(self, start: int, end: int, tag: str, key: str, attrs: str, foreign: bool, long_tag: bool) -> None:
        """An element opened: shown to the parser within the limits, else flattened or hidden."""
        stack = self.stack
        closing, keys, parents, flat = _OPENING.get(key) or _plain(key)
        for closes in closing:
            if stack and stack[-1][0] in closes:
                self.pop_to(len(stack) - 1)
        within = self.shown == len(stack)  # its parent is shown (an element in a table ended for the parser is not)
        parent = stack[-1][0] if stack and within else ""
        if foreign or key in _FOREIGN_ROOTS:
            keys = (*keys, _FOREIGN)
        where = self.where
        for k in keys:
            where[k].append(len(stack))
        stack.append(keys)
        if (within and len(stack) <= MAX_DEPTH and self.tags < MAX_TAGS) or parent in parents:
            self.tags += 1
            self.shown = len(stack)
            if long_tag or (tag in _FORMATTING and attrs.strip("\t\n\f\r /")):
                self.replace(start, end, f"<{tag}{marks_kept(tag, attrs)}>")
            return
        marks = marks_kept(tag, attrs) if attrs else ""
        ignored = key in _TABLE_STRUCTURE and not where[_TABLE]  # by the parser, out of a table
        if self.hidden_at < 0 and not ignored and (tag in _HIDDEN or marks == " hidden" or (tag == "dialog" and not marks)):
            self.replace(start, end, NOTHING)
            self.hidden_at = len(stack) - 1
        else:
            self.replace_shown(start, end, NOTHING if ignored else flat)

    def replace(self, start: int, end: int, piece: str) -> None:
        if self.hidden_at < 0:
            self.pieces.extend((self.markup[self.done:start], piece))
        self.done = end

    def replace_shown(self, start: int, end: int, piece: str) -> None:
        """replace(start, end, self.text(piece)), in one call (a flattened tag, the most frequent
        case in deep nesting); NOTHING is no text."""
        if piece != NOTHING:
            if self.text_run + len(piece) <= TEXT_RUN:
                self.text_run += len(piece)
            else:
                piece, self.text_run = split_text(piece, self.text_run)
        if self.hidden_at < 0:
            self.pieces.extend((self.markup[self.done:start], piece))
        self.done = end

    def text(self, piece: str) -> str:
        """Text the parser is shown, separated from what it was shown before as split_text says."""
        if self.text_run + len(piece) <= TEXT_RUN:
            self.text_run += len(piece)
            return piece
        piece, self.text_run = split_text(piece, self.text_run)
        return piece

    def keep_text(self, start: int, stop: int) -> None:
        """markup[start:stop] is text the parser is shown, in place."""
        if self.fostering():
            self.foster(start, text_pieces(self.markup, start, stop))
        if self.text_run + stop - start > TEXT_RUN:
            self.replace(start, stop, self.text(self.markup[start:stop]))
        else:
            self.text_run += stop - start

    def foster(self, at: int, pieces: int) -> None:
        """The parser would move `pieces` at markup[at] before a table: past _FOSTERED, the
        table ends there for the parser, and the rest of it is flattened (text in place)."""
        if self.fostered + pieces <= _FOSTERED:
            self.fostered += pieces
            return
        self.shown = self.open_table()
        self.replace(at, at, "</table>")


# What a tag becomes in the text, for one the parser is not shown: a start tag, an end tag.
_FLAT_START = {**{name: "\n\n" for name in PARAGRAPH_TAGS}, **{name: "\n" for name in LINE_TAGS},
               **{name: " " for name in CELL_TAGS}}
_FLAT_END = {**{name: "\n\n" for name in PARAGRAPH_TAGS}, "br": "\n", **{name: " " for name in CELL_TAGS}}
# What start_tag looks up of a name, in one table (it is the most frequent case): what open elements
# it closes first, its name and kinds, the parents it is shown under as a table's part, what it
# becomes in the text when flattened.
_Opening = tuple[tuple[set[str], ...], tuple[str, ...], set[str] | tuple[()], str]
_OPENING: dict[str, _Opening] = {
    key: (_CLOSES.get(key, ()), _KINDS.get(key) or (key,), _TABLE_PARTS.get(key, ()), _FLAT_START.get(key, NOTHING))
    for key in {*_CLOSES, *_KINDS, *_TABLE_PARTS, *_FLAT_START}
}


def _plain(key: str) -> _Opening:
    """What start_tag looks up of a name the table does not hold."""
    return (), (key,), (), NOTHING
