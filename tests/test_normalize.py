"""Normalize: text, links, dates and identity."""

from __future__ import annotations

import datetime as dt
import html
import re

import nh3
import pytest

from worker.ingest import markup as bounding
from worker.ingest import text as plain_text
from worker.ingest.identity import entry_identity, identity_policy, legacy_guid_keys, split_guid_identity, unresolved_guid
from worker.ingest.links import canonical_url
from worker.ingest.markup import _FOSTERED, MAX_DEPTH, MAX_MARKUP, MAX_TAGS, SMALL, bound_markup
from worker.ingest.tokenizer import TEXT_RUN
from worker.ingest.normalize import normalize_entry, publication_time
from worker.ingest.text import _MARKED, content_hash, html_to_text
from worker.config import DEFAULT_CLUTTER
from worker.ingest.dedupe import Clutter
from worker.sources.parse import Entry
from tests.conftest import NOW


def entry(guid: str | None = "g", link: str | None = "https://a.example/1", **kw: object) -> Entry:
    values: dict[str, object] = {"guid": guid, "link": link, "title": "T", "content_html": "<p>Body</p>", "summary_html": ""}
    values.update(kw)
    return Entry(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("<h2>Head</h2>Body", "Head\n\nBody"),
        ("Ex<b>am</b>ple and <i>more</i>", "Example and more"),
        ("line<br>next<br/>last", "line\nnext\nlast"),
        ("<script>alert('x')</script>Kept<style>p{}</style>", "Kept"),
        ("Kim &amp; Xi &ndash; &#8220;friends&#8221; &nbsp;again", "Kim & Xi – “friends” again"),
        ("<ul><li>a</li><li>b</li></ul>", "a\nb"),
        ("<table><tr><td>1</td><td>2</td></tr></table>", "1 2"),
        ('<a href="x" title="a > b">link</a> text', "link text"),
        ("<p lang='en' title='t' class='c'>a</p><div dir=ltr>b</div>", "a\n\nb"),
        ("<!-- hidden -->shown", "shown"),
        ("plain text, no markup", "plain text, no markup"),
        ("ﬁve ＦＵＬＬ", "five FULL"),  # NFKC
        ("bell\x07and\x00nul", "bellandnul"),
        ("<p>a</p>\n\n\n\n<p>b</p>", "a\n\nb"),
        ("line</br>next", "line\nnext"),  # browsers read </br> as <br>
        ("a < b and c > d &lt;i&gt;", "a < b and c > d <i>"),  # a "<" that opens no tag is text
        ('<p>Quote: <a title=\'x\'\'>name</a> said</p><p>more</p>', "Quote: name said\n\nmore"),
    ],
)
def test_html_to_text(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


# ── hostile markup: what a browser would not show never reaches the stored text ──────────────


def test_an_unclosed_script_is_dropped_to_the_end() -> None:
    assert html_to_text("<p>Kept</p><script>alert('x'); var leak = '<p>shown?</p>';") == "Kept"
    assert html_to_text("<p>Kept</p><script src=x.js>") == "Kept"


def test_an_unclosed_style_is_dropped_to_the_end() -> None:
    assert html_to_text("<p>Kept</p><style>p { color: red } .leak::after { content: '<b>x</b>' }") == "Kept"


def test_an_unclosed_comment_is_dropped_to_the_end() -> None:
    assert html_to_text("<p>Kept</p><!-- leak <p>hidden</p> and more") == "Kept"
    assert html_to_text("<p>Kept</p><!-- leak -- > still a comment") == "Kept"


def test_a_script_ends_only_at_its_own_end_tag() -> None:
    markup = "<script>var s = \"</div><p>leak</p>\"; if (a </b) { w('<\\/script>leak'); }</script><p>Kept</p>"
    assert html_to_text(markup) == "Kept"


def test_nested_and_uppercase_tags() -> None:
    markup = "<DIV>One<SCRIPT>leak()</SCRIPT></DIV><P>Two<Style>.leak{}</STYLE></P><div><script><script>leak</script>Three</div>"
    assert html_to_text(markup) == "One\n\nTwo\n\nThree"
    assert html_to_text("<UL><LI>a<LI>b</UL><ScRiPt>leak()") == "a\nb"


def test_cdata_sections_are_comments_as_in_browsers() -> None:
    assert html_to_text("<![CDATA[leak]]>Kept") == "Kept"
    assert html_to_text("<p>Kept</p><![CDATA[ leak, never closed") == "Kept"
    assert html_to_text("<script>//<![CDATA[\nif (a > b) leak();\n//]]></script>Kept") == "Kept"
    # In HTML a CDATA section ends at its first ">", so an article a feed wrapped in one twice
    # keeps its text (with the "]]>" a browser shows too).
    assert html_to_text("<![CDATA[<p>Article</p>]]>") == "Article\n\n]]>"


def test_hidden_elements_are_dropped_with_their_content() -> None:
    markup = ("<template><p>leak</p></template><noscript><img src=x>leak</noscript>"
              "<iframe src=x><p>leak</p></iframe><svg><text>leak</text></svg>Kept")
    assert html_to_text(markup) == "Kept"
    assert html_to_text("<p>Kept</p><iframe><p>leak, never closed</p>") == "Kept"
    page = "<html><head><title>leak</title><style>.leak{}</style></head><body><p>Kept</p></body></html>"
    assert html_to_text(page) == "Kept"


def test_entities_are_decoded_once() -> None:
    assert html_to_text("&amp;lt;b&amp;gt; &lt;i&gt; &#60;u&#62; &copy;&nbsp;KCNA") == "&lt;b&gt; <i> <u> © KCNA"


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<center>a</center><center>b</center>", "a\n\nb"),
        ("foo<form>bar</form>baz", "foo\n\nbar\n\nbaz"),
        ("<fieldset><legend>Legend</legend>Body</fieldset>", "Legend\n\nBody"),
        ("<hgroup><h1>Head</h1>Sub</hgroup>Body", "Head\n\nSub\n\nBody"),
        ("<listing>code</listing>after", "code\n\nafter"),
        ("<xmp><b>bold</b> &amp;</xmp>after", "<b>bold</b> &amp;\n\nafter"),  # shown as written
        ("a<option>b</option>c", "a\n\nb\n\nc"),
        ("<select><option>One<option>Two</select>", "One\n\nTwo"),
        ("<menu><li>a</menu><dir><li>b</dir>c", "a\n\nb\n\nc"),
    ],
)
def test_block_elements_never_glue_words(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("The formula <math><mi>E</mi><mo>=</mo><mi>m</mi><msup><mi>c</mi><mn>2</mn></msup></math> is famous.",
         "The formula E=mc2 is famous."),
        ("<math><semantics><mi>x</mi><annotation encoding='application/x-tex'>x^2</annotation></semantics></math>",
         "x"),  # the annotation (the formula's TeX) is not shown
        ("<object data='clip.swf'><p>Watch the clip</p></object>Kept", "Watch the clip\n\nKept"),
        ("<p>Kept</p><object data='clip.swf'>fallback, never closed", "Kept\n\nfallback, never closed"),
    ],
)
def test_fallback_text_a_browser_shows_is_kept(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>Kept</p><video src='clip.mp4'>Your browser does not support video.</video>", "Kept"),
        ("<audio src='clip.mp3'><p>leak</p></audio>Kept", "Kept"),
        ("<canvas>leak</canvas>Kept", "Kept"),
        ("<datalist><option>leak</option></datalist>Kept", "Kept"),
        ("<div hidden>leak</div><p>Kept</p>", "Kept"),
        ("<p hidden='hidden'>leak <b>leak</b></p>Kept", "Kept"),
        ("<span Hidden>leak</span>Kept <span hidden><span hidden>leak</span>leak</span>too", "Kept too"),
        ("<div hidden><div>leak</div>leak, never closed", ""),
        ("<DIV HIDDEN>leak</DIV><P>Kept</P><DIALOG>leak</DIALOG>", "Kept"),
        ("<dialog>leak</dialog>Kept", "Kept"),
        ("<dialog open>Shown</dialog>", "Shown"),
        ("<details><summary>More</summary><div hidden=until-found>Found</div></details>", "More\n\nFound"),
    ],
)
def test_what_a_browser_does_not_show_is_dropped(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        # the `hidden` attribute and display:none hide in any letter case, unless a display shows anyway
        ("<div hIdDeN>leak</div>Kept", "Kept"),
        ("<p style='DISPLAY : NONE !important'>leak</p>Kept", "Kept"),
        ('<span style="color: red; display:none">leak</span>Kept', "Kept"),
        ("<b style=display:none>leak</b>Kept", "Kept"),
        ("<div hidden style='display: block'>Shown</div>", "Shown"),
        ("<dialog style='display:block'>Shown</dialog>", "Shown"),
        # what the parser reads as text, hidden or shown
        ("<textarea hidden>leak</textarea>Kept", "Kept"),
        ("<xmp hidden><b>leak</b></xmp>Kept", "Kept"),
        ("<xmp style='display:block' hidden>a<b>b</xmp>", "a<b>b"),
        ("<p hidden>leak<xmp>Shown <b></xmp>Kept", "Shown <b>\n\nKept"),  # an <xmp> ends a paragraph
        # blocks never glue words
        ("end<plaintext>start <b>as written", "end\n\nstart <b>as written"),
        ("<xmp><plaintext>a &amp;</xmp><plaintext>b<xmp>&amp;</xmp>", "<plaintext>a &amp;\n\nb<xmp>&amp;</xmp>"),
        ("a<br hidden>b<hr style=display:none>c<br>d", "abc\nd"),  # a hidden break breaks nothing
        ("a<optgroup>b</optgroup>c", "a\n\nb\n\nc"),
        # in MathML a CDATA section is text, and HTML in its text elements shows; a block leaves it
        ("<math><mi>x</mi><![CDATA[y<z & w]]></math>", "xy<z & w"),
        ("<math><mspace/><![CDATA[x]]></math>", "x"),
        ("<math><mi><b>x</b><![CDATA[y]]></mi></math>", "xy"),
        ("<math><mrow><b>x</b><![CDATA[y>z]]></mrow></math>", "xz]]>"),
        ("<svg><g>leak</g><p>Shown</p></svg>", "Shown"),
        ("a<td hidden>b</td>c", "abc"),  # out of a table the parser ignores a cell
    ],
)
def test_text_as_a_browser_shows_it_found_by_differential_fuzzing(
    markup: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random markup converted and compared with html5lib's tree as a browser shows it: each case
    a difference that was found, the same as a small item, through bound_markup, and flattened."""
    assert html_to_text(markup) == text
    monkeypatch.setattr(plain_text, "FEW_TAGS", -1)  # every item through bound_markup
    assert html_to_text(markup) == text
    monkeypatch.setattr(bounding, "MAX_DEPTH", 0)
    assert html_to_text(markup) == text


# ── hostile markup: its cost grows with its size only ────────────────────────────────────────


def parser_depth(markup: str) -> int:
    """How deep the parser nests the elements of `markup` (counted on a parse keeping them all)."""
    tags = set(re.findall(r"<([a-z]+)", markup))
    out = nh3.clean(markup, tags=tags, clean_content_tags=set(), attributes={}, link_rel=None)
    depth = deepest = 0
    for closing in re.findall(r"<(/?)[a-z]+>", out):
        depth += -1 if closing else 1
        deepest = max(deepest, depth)
    return deepest


class Spy:
    """A cleaner that records the markup it is given."""

    def __init__(self, cleaner: nh3.Cleaner) -> None:
        self.cleaner = cleaner
        self.seen: list[str] = []

    def clean(self, markup: str) -> str:
        self.seen.append(markup)
        return self.cleaner.clean(markup)


DEEP = 4000


@pytest.mark.parametrize(
    "markup",
    [
        "<div>" * DEEP + "x",
        "<ul><li>" * DEEP + "x",
        "<blockquote><p>" * DEEP + "x",
        "<span>" * DEEP + "</x>" * DEEP,
        "<b><i>" * DEEP + "x",
        "<object>" + "<div>" * DEEP + "</object>",
        "<dl><dd>" * DEEP + "x",
        "<table><tr><td>" * DEEP + "x",
        "<div hidden>" * DEEP + "x",
    ],
)
def test_the_parser_is_shown_a_bounded_depth(markup: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """html5ever's time grows with the square of the depth (80,000 nested <ul><li> took 81 s):
    however deep an item nests, the parser sees at most MAX_DEPTH elements open at once."""
    shown = shown_to_parser(markup, monkeypatch)
    assert parser_depth(shown) <= MAX_DEPTH + 2  # and the <tbody> the parser adds to a table


def test_the_parser_is_shown_a_bounded_number_of_tags() -> None:
    """Whatever bound_markup misjudges as closed (in a body the parser ignores <td> and </td>, so
    each <div> below stays open), the parser is shown at most MAX_TAGS start tags."""
    markup = "<td><div>x</td>" * MAX_TAGS
    shown = bound_markup(markup)
    assert len(re.findall("<[a-z]", shown)) == MAX_TAGS
    assert html_to_text(shown) == html_to_text(markup) == "\n\n".join("x" * MAX_TAGS)


def test_deeply_nested_text_is_complete_and_in_order() -> None:
    deep = "".join(f"<div><p>Para {i}</p><ul><li>Item {i}" for i in range(2 * MAX_DEPTH))
    flat = "".join(f"<div><p>Para {i}</p><ul><li>Item {i}</li></ul></div>" for i in range(2 * MAX_DEPTH))
    text = "\n\n".join(f"Para {i}\n\nItem {i}" for i in range(2 * MAX_DEPTH))
    assert html_to_text(deep) == html_to_text(flat) == text


def test_hidden_content_stays_hidden_beyond_the_depth_limit() -> None:
    deep = "<div>" * (2 * MAX_DEPTH) + "<p>Kept</p>"
    hidden = ("<template><p>leak</p></template><div hidden>leak</div><video>leak</video><dialog>leak</dialog>"
              "<svg><g><text>leak</text></g></svg><script>leak</script><!-- leak -->")
    assert html_to_text(deep + hidden + "<p>Also kept</p>" + "<style>leak") == "Kept\n\nAlso kept"


@pytest.mark.parametrize(
    "markup",
    [
        "<p>One</p><div>Two<ul><li>a</li><li>b<li>c</ul></div>Ex<b>am</b>ple<br>next<table><tr><td>1<td>2</table>",
        "<p>Kept</p><script>var s = '</div><p>leak</p>'; a <!-- <script> </script> leak --></script><p>Kept</p>",
        "<p>Kept</p><style>.leak{}</style><noscript><p>leak</p></noscript><title>leak</title><!-- leak <p>x</p> -->",
        "<p>a &lt; b</p><xmp><b>shown</b> &amp;</xmp><textarea>\n<b>shown</b> &amp;</textarea>c",
        "<![CDATA[<p>Article</p>]]><p>Kept</p><![CDATA[ leak",
        "<p>Kept</p><plaintext><p>shown &amp; as written",
        "<math><mi>E</mi><mo>=</mo><mi>m</mi><msup><mi>c</mi><mn>2</mn></msup></math>",
        "<div hidden>leak</div><dialog open>Shown</dialog><dialog>leak</dialog><b hidden>leak</b>Kept",
        "<a title='a > b' class=x>link</a> <b class=x>bold</b> text <p>Kept</p><script>leak",
        "x<<b>div>y &am<i>p; <!-<b>- not a comment",
    ],
)
def test_bounding_changes_no_text(markup: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """bound_markup flattens markup into the breaks and spaces it stands for: with no element
    shown to the parser at all, every item keeps its text."""
    text = html_to_text(markup)
    monkeypatch.setattr(plain_text, "FEW_TAGS", -1)  # every item through bound_markup
    monkeypatch.setattr(bounding, "MAX_DEPTH", 0)
    assert html_to_text(markup) == text


def test_text_split_for_the_parser_keeps_every_reference() -> None:
    """Long text reaches the parser in pieces (its cost grows with the square of the "&" in one
    text), cut between character references, never inside one."""
    markup = "".join(f"{'x' * (i % 40)}&amp;{'y' * (i % 3)}&CounterClockwiseContourIntegral;" for i in range(3000))
    text = "".join(f"{'x' * (i % 40)}&{'y' * (i % 3)}∳" for i in range(3000))
    assert len(markup) > SMALL
    assert html_to_text(markup) == text


def test_an_item_longer_than_max_markup_is_cut() -> None:
    markup = "<p>" + "word " * (MAX_MARKUP // 5) + "</p><p>tail</p>"
    text = html_to_text(markup)
    assert text.startswith("word word") and "tail" not in text


def shown_to_parser(markup: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The markup html_to_text gives the parser for `markup`."""
    spy = Spy(_MARKED)
    monkeypatch.setattr(plain_text, "_MARKED", spy)
    html_to_text(markup)
    (shown,) = spy.seen
    return shown


def parsed_tree(markup: str) -> str:
    """The tree the parser builds of `markup`, written out with every element and comment it has."""
    tags = set(re.findall(r"<([a-z]+)", markup))
    return nh3.clean(markup, tags=tags, clean_content_tags=set(), attributes={}, link_rel=None, strip_comments=False)


ATTRIBUTES = " ".join(f"a{i}=1" for i in range(20_000))


@pytest.mark.parametrize(
    "markup",
    [
        "<p>Kept</p>" * 200 + "<p " + ATTRIBUTES,
        "<p>Kept</p>" * 200 + "<p " + ATTRIBUTES * 10 + ">x",  # cut at MAX_MARKUP inside the tag
        "<p>Kept</p>" * 200 + "</p " + ATTRIBUTES,
    ],
)
def test_a_tag_running_to_the_end_is_not_shown_to_the_parser(markup: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser drops a tag left unfinished, but only after checking each of its attributes
    against the others (1 MB of them took 2.6 s): it is left out before."""
    assert len(markup) > SMALL
    shown = shown_to_parser(markup, monkeypatch)
    assert "a1=1" not in shown
    assert html_to_text(markup) == "\n\n".join(["Kept"] * 200)


TEXT_PIECES = 20_000


@pytest.mark.parametrize(
    "markup",
    [
        "&</x>" * TEXT_PIECES,  # an end tag that closes nothing
        "&<td>" * TEXT_PIECES,  # a cell outside a table
        "&<head></>" * TEXT_PIECES,
        "<select>" + "&</x>" * TEXT_PIECES,
        "<p>&" * TEXT_PIECES,  # past MAX_TAGS, each <p> becomes a line break
        "<div>" * MAX_DEPTH + "<b>&</b>" * TEXT_PIECES,  # past MAX_DEPTH, each <b> becomes nothing
        "<table>" + "&" * TEXT_PIECES,  # text a table holds outside its cells
        "<table><tr>" + "&</x>" * TEXT_PIECES,
    ],
)
def test_the_parser_joins_no_long_text_of_many_pieces(markup: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """html5ever's cost grows with the square of the character references in one text node, and
    it joins into one the text around a tag it ignores (1 MB of "&" in a table took 8 s): what it
    is shown makes no text node longer than TEXT_RUN characters, whatever separates the pieces."""
    monkeypatch.setattr(plain_text, "FEW_TAGS", -1)  # every item through bound_markup, however small
    shown = shown_to_parser(markup, monkeypatch)
    longest = max(len(html.unescape(text)) for text in re.split(r"<[^>]*>", parsed_tree(shown)))
    assert longest <= TEXT_RUN
    assert html_to_text(markup).count("&") == TEXT_PIECES


PIECES = 10_000


@pytest.mark.parametrize(
    "table",
    [
        "<table>" + "&" * PIECES,
        "<table><tr>" + "&</x>" * PIECES,
        "<table>" + "<img>&" * PIECES,
        "<table>" + "<b>x</b>" * (MAX_TAGS + 10),  # past MAX_TAGS, the text alone
        "<table><td>x</td>" + "&" * PIECES,
        "<table><td>x</tr>" + "&" * PIECES,  # in the row the parser adds for the cell
        "<table><b><tr><td>x</td></tr>" + "&" * PIECES,  # the <tr> closes the <b>
        "<table><colgroup>" + "&" * PIECES,
        "<table><form>" + "&" * PIECES,  # a form in a table holds nothing
        "<table><caption>x</caption>" + "&" * PIECES,
        "<table>" + "<textarea>&amp;</textarea>" * PIECES,
        "<table><td><table>" + "&" * PIECES,
        "<table><tr><table>" + "&" * PIECES,  # closes the first table
    ],
)
def test_the_parser_moves_little_before_a_table(table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser moves what a table holds outside its cells before the table, walking all that its
    parent holds for each piece of text and each tag (so 1 MB of them took 16 s): it is shown at
    most _FOSTERED such pieces in an item, the table ending there for it."""
    monkeypatch.setattr(plain_text, "FEW_TAGS", -1)  # every item through bound_markup, however small
    shown = shown_to_parser("<div>" + table, monkeypatch)
    tree = parsed_tree(shown)
    moved = tree[tree.index("<div>") + 5: tree.index("<table>")]
    pieces = len(re.findall("<[a-z]", moved)) + html.unescape(re.sub("<[^>]*>", "", moved)).count("&")
    assert pieces <= _FOSTERED
    assert html_to_text(table).count("&") == table.count("&")  # each "&" or "&amp;" one "&" of the text


def test_a_tables_stray_text_shows_before_it_until_a_limit_then_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text a table holds outside its cells shows before the table, as a browser shows it, up to
    _FOSTERED pieces (runs of text, character references, tags) in an item; past them where it
    stands, after the table's earlier rows, as if the table ended there. Either way the text is whole."""
    monkeypatch.setattr(plain_text, "FEW_TAGS", -1)  # every item through bound_markup
    few = (_FOSTERED - 1) // 2
    assert html_to_text("<table><tr><td>cell</td></tr>" + "stray&amp;" * few + "</table>") == "stray&" * few + "\n\ncell"
    many = _FOSTERED
    assert html_to_text("<table><tr><td>cell</td></tr>" + "stray&amp;" * many + "</table>") == "cell\n\n" + "stray&" * many


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTPS://News.Example:443/a?b=2&a=1#frag", "https://news.example/a?a=1&b=2"),
        ("http://news.example:80", "http://news.example/"),
        ("http://news.example:8080/x", "http://news.example:8080/x"),
        ("https://n.example/a?utm_source=rss&utm_medium=feed&id=7&fbclid=x&gclid=y&mc_cid=z", "https://n.example/a?id=7"),
        ("https://n.example/a/?ref=keep", "https://n.example/a/?ref=keep"),
        ("  https://n.example/a  ", "https://n.example/a"),
        ("", None),
        (None, None),
        ("not a url", "not a url"),
    ],
)
def test_canonical_url(url: str | None, canonical: str | None) -> None:
    assert canonical_url(url) == canonical


def test_dates() -> None:
    given = dt.datetime(2024, 12, 16, 8, tzinfo=dt.timezone.utc)
    assert publication_time(entry(published=given), NOW) == (given, "")
    assert publication_time(entry(), NOW) == (NOW, "missing")
    assert publication_time(entry(updated=given), NOW) == (given, "")
    assert publication_time(entry(published=NOW + dt.timedelta(hours=23)), NOW)[1] == ""
    assert publication_time(entry(published=dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)), NOW) == (NOW, "future")


def test_identity_policy_falls_back_and_never_returns() -> None:
    good = [entry("a", "https://x.example/1"), entry("b", "https://x.example/2")]
    assert identity_policy(good, "guid") == "guid"
    repeated = [entry("a", "https://x.example/1"), entry("a", "https://x.example/2")]
    assert identity_policy(repeated, "guid") == "url"
    missing = [entry(None, "https://x.example/1"), entry("b", "https://x.example/2")]
    assert identity_policy(missing, "guid") == "url"
    no_links = [entry(None, None), entry(None, "https://x.example/2")]
    assert identity_policy(no_links, "guid") == "content"
    same_link = [entry(None, "https://x.example/1?utm_source=a"), entry(None, "https://x.example/1")]
    assert identity_policy(same_link, "guid") == "content"
    assert identity_policy(good, "url") == "url"  # once degraded, it stays degraded
    assert identity_policy(good, "content") == "content"


def test_entry_identity_by_policy() -> None:
    e = entry("urn:1", "https://x.example/1?utm_source=rss")
    assert entry_identity("feed:7", e, "guid", "T", "B") == "feed:7:guid:urn:1"
    assert entry_identity("feed:7", e, "url", "T", "B") == "feed:7:url:https://x.example/1"
    assert entry_identity("feed:7", e, "content", "T", "B") == f"feed:7:content:{content_hash('T', 'B')}"
    assert entry_identity("feed:8", e, "guid", "T", "B") != entry_identity("feed:7", e, "guid", "T", "B")  # GUIDs are per feed


FEED = ("https://a.example/v2/news.rss", "https://a.example/feeds/news.xml")  # now, and before a move


@pytest.mark.parametrize(
    ("guid", "link", "bare"),
    [
        ("https://a.example/feeds/item-17", "https://news.example/17", "item-17"),  # resolved at the old address
        ("https://a.example/v2/item-17", "https://news.example/17", "item-17"),  # ... and at the new one
        ("https://a.example/v2/17:b c#d", None, "17:b c#d"),
        ("HTTPS://A.EXAMPLE/v2/item-17", "https://news.example/17", None),  # not what resolving made
        ("https://a.example/feeds/item-17", "https://a.example/feeds/item-17", None),  # the item's permalink
        ("https://a.example/feeds/item-17#top", "https://a.example/feeds/item-17?ref=rss", None),  # ... still
        ("https://a.example/feeds/item?id=17", "https://news.example/17", None),  # a page the feed links to
        ("https://a.example/feeds/2024/item-17", None, None),  # a path below: a URL the feed wrote
        ("https://a.example/item-17", None, None),  # another folder
        ("https://a.example/feeds/?p=17", None, None),
        ("https://b.example/feeds/item-17", None, None),
        ("item-17", None, None),  # bare already
        ("tag:a.example,2024:17", None, None),  # never resolved
        ("file:///home/u/history/item-17", "file:///home/u/history/item-17", "item-17"),  # a backfilled file
    ],
)
def test_unresolved_guid_recovers_only_guids_resolved_against_the_feeds_address(
    guid: str, link: str | None, bare: str | None
) -> None:
    assert unresolved_guid(guid, FEED, link) == bare


def test_guid_identities_split_into_scope_and_guid() -> None:
    assert split_guid_identity("feed:7:guid:https://a.example/x:guid:y") == ("feed:7", "https://a.example/x:guid:y")
    assert split_guid_identity("backfill:0123456789abcdef:guid:g") == ("backfill:0123456789abcdef", "g")
    assert split_guid_identity("feed:7:url:https://a.example/x") is None
    assert split_guid_identity("seed:000.txt") is None and split_guid_identity("jsonl:a:guid:b") is None


def test_legacy_guid_keys_are_the_guid_as_older_versions_keyed_it_against_each_address() -> None:
    bases = ["https://a.example/feeds/rss", "https://a.example/v2/rss", "https://a.example/feeds/"]
    assert legacy_guid_keys("feed:1:guid:posts/17", "posts/17", bases) == [
        "feed:1:guid:https://a.example/feeds/posts/17", "feed:1:guid:https://a.example/v2/posts/17"]
    assert legacy_guid_keys("feed:1:guid:#20", "#20", bases[:1]) == ["feed:1:guid:https://a.example/feeds/rss#20"]
    assert legacy_guid_keys("backfill:00ff:guid:../21", "../21", ["file:///h/u/feeds/f.xml"]) == [
        "backfill:00ff:guid:file:///h/u/21"]
    # A URL or a URN as written is its own key: nothing else to look for ...
    assert legacy_guid_keys("feed:1:guid:https://a.example/feeds/12345", "https://a.example/feeds/12345", bases) == []
    assert legacy_guid_keys("feed:1:guid:urn:uuid:1", "urn:uuid:1", bases) == []
    # ... but in a store 0010 as first released re-keyed: what it made of the key
    assert legacy_guid_keys("feed:1:guid:https://a.example/feeds/12345", "https://a.example/feeds/12345", bases,
                            first_0010=True) == ["feed:1:guid:12345"]
    assert legacy_guid_keys("feed:1:guid:#20", "#20", bases[:1], first_0010=True) == [
        "feed:1:guid:https://a.example/feeds/rss#20", "feed:1:guid:rss#20"]
    assert legacy_guid_keys("feed:1:url:https://a.example/1", "posts/17", bases) == []  # not keyed by its GUID


def test_normalize_entry() -> None:
    e = entry(title="Kim &amp; Xi", content_html="<p>Text</p>", summary_html="<b>Sum</b>", author="<i>Desk</i>",
              link="https://x.example/1?utm_campaign=z")
    clutter = Clutter.compile(DEFAULT_CLUTTER)
    item = normalize_entry(e, feed_id=3, policy="guid", publisher="X News", now=NOW, clutter=clutter)
    assert (item.title, item.text, item.summary, item.author) == ("Kim & Xi", "Text", "Sum", "Desk")
    assert item.url == "https://x.example/1" and item.feed_id == 3 and item.source == "feed"
    assert item.published_at == NOW and item.date_flag == "missing" and item.publisher == "X News"
    assert item.fingerprint is not None and item.content_sha256 == item.fingerprint.content_sha256
    untitled = normalize_entry(entry(title=""), feed_id=3, policy="guid", publisher="", now=NOW, clutter=clutter)
    assert untitled.title == "(untitled)"
