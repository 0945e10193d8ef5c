"""The HTML tokenizer's rules, as far as bound_markup reads markup with them: tags and their quoted
attributes, comments, the raw text of <script> and its kin, character references, text pieces."""

from __future__ import annotations

import re


def display_of(style: str) -> str:
    """The display a style attribute gives its element, lower case: "none", another, or "" when it
    sets none (its last declaration wins)."""
    display = ""
    for declaration in style.split(";"):
        name, _, value = declaration.partition(":")
        if name.strip().lower() == "display":
            display = value.lower().replace("!important", "").strip()
    return display


# Characters of text in one node: html5ever's cost grows with the product of a text node's length and
# its character references, and it joins into one node the text around a tag it ignores (an unknown
# end tag, a <td> outside a table), so this counts across tags.
TEXT_RUN = 4096
WS = "\t\n\f\r "
ATTRS = (  # from a tag's name to its ">", as the tokenizer reads attributes
    rf"""(?:[{WS}/]+|[^{WS}/>][^{WS}/>=]*(?:[{WS}]*=[{WS}]*(?:"[^"]*"?|'[^']*'?|[^{WS}>]*))?)*"""
)
# A tag (closing?, name, attributes, ">" or "" when unfinished), a comment, or a bogus comment.
MARKUP = re.compile(rf"<(?:(/?)([A-Za-z][^{WS}/>]*)({ATTRS})(>?)|(!--)|[!?/])")
END_TAG_REST = re.compile(f"{ATTRS}>?")
ATTR = re.compile(rf"""([^{WS}/>][^{WS}/>=]*)(?:[{WS}]*=[{WS}]*("[^"]*"?|'[^']*'?|[^{WS}>]*))?""")
COMMENT_END = re.compile(r"--!?>")
SCRIPT_MARK = re.compile(rf"<!--|-->|<(/?)script[{WS}/>]", re.I)
RAW_HIDDEN = frozenset({"script", "style", "noscript", "iframe", "noembed", "noframes", "title"})
RAW_SHOWN = frozenset({"xmp", "textarea", "plaintext"})
RAW_END = {name: re.compile(rf"</{name}[{WS}/>]", re.I) for name in (RAW_HIDDEN | RAW_SHOWN) - {"script"}}
PIECE_ENDS = ("&", "<", "\r", "\0")  # where the tokenizer ends a piece of text


def text_pieces(markup: str, start: int, stop: int) -> int:
    """How many pieces the tokenizer makes of markup[start:stop], text, if it shows (is not all
    white space): each is moved on its own."""
    if not markup[start:stop].strip(WS):
        return 0
    return 1 + sum(markup.count(end, start, stop) for end in PIECE_ENDS)


# What stands for a tag that becomes nothing in the text: an empty comment, which ends the text
# before it in every context, so that what surrounds it never joins into a tag or a reference
# ("&am<b>p;" is not "&amp;"), and opens, closes or hides nothing.
NOTHING = "<!---->"
def marks_kept(tag: str, attrs: str) -> str:
    """The attributes of a start tag that the text depends on, as bound_markup writes them:
    " hidden" (see _hides), " open" (a <dialog> shown), or ""."""
    lowered = attrs.lower()
    if tag != "dialog" and "hidden" not in lowered and "display" not in lowered:
        return ""
    values: dict[str, str] = {}
    for name, value in ATTR.findall(attrs):
        if value[:1] in ("'", '"'):
            value = value[1:].removesuffix(value[0])
        values.setdefault(name.lower(), value)
    display = display_of(values.get("style", ""))
    hidden = values.get("hidden", "until-found").lower() != "until-found"
    if display == "none" or (not display and hidden):
        return " hidden"
    if tag == "dialog":
        return " open" if display or "open" in values else ""
    return ""


def raw_end(markup: str, tag: str, pos: int) -> int:
    """Where the text of an element that the tokenizer reads as text ends (its end tag's "<", or the
    end), from pos, past its start tag."""
    if tag == "script":
        return script_end(markup, pos)
    if tag == "plaintext":
        return len(markup)
    found = RAW_END[tag].search(markup, pos)
    return found.start() if found else len(markup)


def raw_text(markup: str, tag: str, pos: int) -> tuple[int, str]:
    """Past the end tag of a shown element that the tokenizer reads as text (in HTML, not in SVG or
    MathML, which only the tree builder knows), from pos, past its start tag; and its text, escaped."""
    stop = raw_end(markup, tag, pos)
    content = markup[pos:stop]
    rest = END_TAG_REST.match(markup, stop + 2 + len(tag))  # past the end tag, if any
    close = rest.end() if rest and stop < len(markup) else len(markup)
    if tag == "textarea":  # text with character references, less its first line break as the parser reads it
        content = content[2:] if content.startswith("\r\n") else content[1:] if content[:1] in ("\n", "\r") else content
        return close, content.replace("<", "&lt;")
    return close, REFERENCE_START.sub("&amp;", content).replace("<", "&lt;")


def script_end(markup: str, pos: int) -> int:
    """Where a script's text ends (its end tag's "<", or the end): as the tokenizer reads a
    script, "<!--" then "<script" hide a "</script>" until "-->" or another "</script>"."""
    state = 0  # 0: script data, 1: escaped (after "<!--"), 2: double escaped (then "<script")
    while found := SCRIPT_MARK.search(markup, pos):
        token = found.group()
        pos = found.end() - 1
        if token == "<!--":
            state = state or 1
            pos = found.start() + 2  # its own dashes can end it: "<!-->"
        elif token == "-->":
            state = 0
            pos = found.end()
        elif found.group(1):  # </script
            if state < 2:
                return found.start()
            state = 1
        elif state == 1:  # <script
            state = 2
    return len(markup)


def comment_end(markup: str, pos: int) -> int:
    """Past the end of a comment whose "<!--" ends at pos."""
    if markup.startswith(">", pos):
        return pos + 1
    if markup.startswith("->", pos):
        return pos + 2
    found = COMMENT_END.search(markup, pos)
    return found.end() if found else len(markup)


REFERENCE = re.compile(r"&#?[0-9A-Za-z]*;?")  # as far as a character reference may reach
REFERENCE_START = re.compile(r"&(?=[#0-9A-Za-z])")  # an "&" that may start one (another is text as it is)


def split_text(text: str, run: int) -> tuple[str, int]:
    """Text the parser is shown `run` characters after the last text node ended for sure, with
    NOTHING (a comment, a node of its own) wherever that count would pass TEXT_RUN, never inside
    a character reference or a CRLF; and the count at its end. The count runs across tags, since the
    parser ignores some (a <td> outside a table, an unknown end tag) and joins the text around them.
    (It runs across comments too, for the text of a table; bound_markup keeps that short apart.)"""
    if run + len(text) <= TEXT_RUN:
        return text, run + len(text)
    parts, start = [], 0
    while run + len(text) - start > TEXT_RUN:
        cut = start + TEXT_RUN - run
        amp = text.rfind("&", start, cut)
        reference = REFERENCE.match(text, amp) if amp >= 0 else None
        if reference and reference.end() > cut:  # before the reference, or past it when it fills the node alone
            cut = amp if amp > start or run else reference.end()
        elif cut > start + 1 and text.startswith("\r\n", cut - 1):
            cut -= 1
        parts.append(text[start:cut])
        start, run = cut, 0
    parts.append(text[start:])
    return NOTHING.join(parts), len(text) - start
