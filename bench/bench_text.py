"""HTML → text: per-item cost of text.html_to_text on real item bodies, and what leaks.

Bodies: every entry's content of the feeds in ../shared/feeds-dev that the worker parses
(parse.parse_feed, so feedparser with the worker's options), those holding markup or entities.
The same bodies go through the regex converter that html_to_text replaced (kept below as the
baseline, not used by the worker), in alternating rounds in this one process; the figure is
the median round. Then hostile inputs: hidden content that must not reach the text, and
pathological markup whose cost must stay bounded: deep nesting in ms per item, beside a normal
article's (the feeds-dev bodies of 2.0-2.6 KB), as a ratio per item and per KB; and the worst
shapes found of 1 MB, with how their cost grows from 0.5 MB.
"""

from __future__ import annotations

import html
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench import Result
from worker.sources import parse
from worker.errors import StorywatchError
from worker.ingest.text import clean_text, html_to_text

FEEDS = Path(__file__).resolve().parents[2] / "shared" / "feeds-dev"
ROUNDS = 7

# ── the regex converter html_to_text replaced (v1), for comparison only ──────────────────────

_V1_DROPPED = re.compile(r"<(script|style|noscript|template|iframe|object|svg|head)\b.*?</\1\s*>|<!--.*?-->", re.S | re.I)
_V1_ATTRS = r"\b(?:\"[^\"]*\"|'[^']*'|[^'\">])*>"
_V1_PARAGRAPH = re.compile(
    r"</?(?:p|div|ul|ol|h[1-6]|table|blockquote|pre|section|article|header|footer|aside|nav|hr|"
    r"figure|figcaption|dl|main|address|details|summary)" + _V1_ATTRS,
    re.I,
)
_V1_LINE = re.compile(r"<(?:br|li|tr|dt|dd)" + _V1_ATTRS, re.I)
_V1_CELL = re.compile(r"</?(?:td|th)" + _V1_ATTRS, re.I)
_V1_TAG = re.compile(r"<(?:\"[^\"]*\"|'[^']*'|[^'\">])*>")


def regex_v1(markup: str) -> str:
    if "<" not in markup and "&" not in markup:
        return clean_text(markup)
    text = _V1_DROPPED.sub(" ", markup)
    text = _V1_PARAGRAPH.sub("\n\n", text)
    text = _V1_LINE.sub("\n", text)
    text = _V1_CELL.sub(" ", text)
    text = _V1_TAG.sub("", text)
    return clean_text(html.unescape(text))


# ── inputs ───────────────────────────────────────────────────────────────────────────────────

# Each hides the word "leaked" where a reader would never see it.
HOSTILE = (
    "<p>Kept</p><script>var leaked = 1;",
    "<p>Kept</p><style>.leaked { color: red }",
    "<p>Kept</p><!-- leaked <p>x</p>",
    "<p>Kept</p><script>w('</div>leaked')</script>",
    "<p>Kept</p><![CDATA[ leaked ]]>",
    "<p>Kept</p><noscript>leaked</noscript><template>leaked</template><iframe>leaked",
    "<p>Kept</p><div hIdDeN>leaked</div><p style='DISPLAY: NONE'>leaked</p>",
    "<p>Kept</p><textarea hidden>leaked</textarea><xmp style=display:none>leaked</xmp>",
)
# Markup whose cost grows faster than its size in one parser or another (about 100-200 KB each).
PATHOLOGICAL = {
    "20,000 nested <div>": "<div>" * 20_000 + "x",
    "20,000 unclosed <script> tags": "<script>" * 20_000,
    "20,000 unclosed comments": "<!--" * 20_000,
    "20,000 unclosed quoted attributes": "<a title='" * 20_000,
}


# Nesting whose parse grew with the square of its depth (81 s and 16 s before bound_markup).
DEEP = {
    "80,000 nested <ul><li> (640 KB)": "<ul><li>" * 80_000 + "x",
    "80,000 nested <div> (400 KB)": "<div>" * 80_000 + "x",
}
DEEP_ROUNDS = 3

# Shapes of ~1 MB (MAX_MARKUP, the most of an item converted) whose cost grew faster than their size
# before bound_markup followed them (ms/item before: 16,644, 7,704, 8,477, 14,362, 2,720, 495 growing
# x2.7 a doubling), and the slowest of those that grow as their size: ms per item, and ÷ the same
# shape at half the size (2 when linear, 4 when quadratic).
WORST: dict[str, Callable[[int], str]] = {
    "<table><img>x (moved before the table)": lambda n: "<table>" + "<img>x" * (n // 6),
    "<table> and '&' (moved before the table)": lambda n: "<table>" + "&" * (n - 7),
    "<table><xmp> and '&'": lambda n: "<table><xmp>" + "&" * (n - 12),
    "20,000 nodes, then a table of '&'": lambda n: "x<img>" * 10_000 + "<table>" + "&" * (n - 60_007),
    "one unfinished tag's attributes": lambda n: "<p" + "".join(f" a{i}=1" for i in range(n // 9)),
    "'&</x>', text joined across ignored tags": lambda n: "&</x>" * (n // 5),
    "unclosed <p>": lambda n: "<p>" * (n // 3),
    "unclosed <b><i>x": lambda n: "<b><i>x" * (n // 7),
    "<table> and <tr>x": lambda n: "<table>" + "<tr>x" * (n // 5),
}
WORST_SIZE = 1_000_000


def item_bodies() -> list[str]:
    bodies = []
    for path in sorted(FEEDS.iterdir()):
        if path.name == "MANIFEST.tsv":
            continue
        try:
            feed = parse.parse_feed(path.read_bytes(), url=f"https://feeds.example/{path.name}")
        except StorywatchError:
            continue  # the few files the worker itself rejects
        bodies += [e.content_html for e in feed.entries if "<" in e.content_html or "&" in e.content_html]
    return bodies


# ── measures ─────────────────────────────────────────────────────────────────────────────────


def per_item_us(converters: dict[str, Callable[[str], str]], bodies: list[str]) -> dict[str, float]:
    """Median over ROUNDS rounds of µs per body; converters alternate within each round so that
    a busy machine slows both alike."""
    rounds: dict[str, list[float]] = {name: [] for name in converters}
    for convert in converters.values():
        for body in bodies:  # warm-up: first calls, caches
            convert(body)
    for _ in range(ROUNDS):
        for name, convert in converters.items():
            started = time.perf_counter()
            for body in bodies:
                convert(body)
            rounds[name].append((time.perf_counter() - started) / len(bodies) * 1e6)
    return {name: statistics.median(figures) for name, figures in rounds.items()}


def leaks(convert: Callable[[str], str]) -> int:
    return sum("leaked" in convert(markup) for markup in HOSTILE)


def seconds(convert: Callable[[str], str], markup: str) -> float:
    started = time.perf_counter()
    convert(markup)
    return time.perf_counter() - started


def ms_per_item(bodies: list[str], rounds: int) -> float:
    """Median over rounds of ms per body, after a first call (warm-up)."""
    for body in bodies:
        html_to_text(body)
    figures = []
    for _ in range(rounds):
        started = time.perf_counter()
        for body in bodies:
            html_to_text(body)
        figures.append((time.perf_counter() - started) / len(bodies) * 1e3)
    return statistics.median(figures)


def deep_nesting(bodies: list[str]) -> list[Result]:
    articles = [b for b in bodies if 2000 <= len(b) <= 2600]
    size = statistics.mean(len(b) for b in articles)
    article = ms_per_item(articles, ROUNDS * 3)
    results = [Result("HTML → text: ms/item, normal article", article, "ms", "",
                      f"{len(articles)} feeds-dev bodies of 2.0-2.6 KB, {size:,.0f} characters mean")]
    for name, markup in DEEP.items():
        ms = ms_per_item([markup], DEEP_ROUNDS)
        per_kb = (ms / len(markup)) / (article / size)
        results += [
            Result(f"HTML → text: ms/item, {name}", ms, "ms", "<= 1500"),
            Result(f"HTML → text: {name} ÷ normal article, per item", ms / article, "ratio", "",
                   f"per KB: {per_kb:,.0f}× a normal article's cost"),
        ]
    return results


def worst_shapes() -> list[Result]:
    results = []
    for name, shape in WORST.items():
        ms = ms_per_item([shape(WORST_SIZE)], DEEP_ROUNDS)
        half = ms_per_item([shape(WORST_SIZE // 2)], DEEP_ROUNDS)
        results += [
            Result(f"HTML → text: ms/item, 1 MB of {name}", ms, "ms", "<= 1000"),
            Result(f"HTML → text: 1 MB of {name} ÷ 0.5 MB", ms / half, "ratio", "<= 3"),
        ]
    return results


def run(work: Path) -> list[Result]:
    bodies = item_bodies()
    median, mean = statistics.median(len(b) for b in bodies), statistics.mean(len(b) for b in bodies)
    times = per_item_us({"regex": regex_v1, "parser": html_to_text}, bodies)
    changed = sum(regex_v1(b) != html_to_text(b) for b in bodies)
    note = (f"{len(bodies)} item bodies from feeds-dev, {median:,.0f} characters median, {mean:,.0f} mean; "
            f"{changed} convert differently")
    results = [
        Result("HTML → text: µs/item, parser (nh3/html5ever)", times["parser"], "µs", "<= 250", note),
        Result("HTML → text: µs/item, the regex it replaced", times["regex"], "µs", ""),
        Result("HTML → text: parser ÷ regex, same bodies", times["parser"] / times["regex"], "ratio", "<= 1.5"),
        Result(f"HTML → text: hostile inputs leaking hidden text (of {len(HOSTILE)}), parser", leaks(html_to_text),
               "inputs", "<= 0"),
        Result(f"HTML → text: hostile inputs leaking hidden text (of {len(HOSTILE)}), regex", leaks(regex_v1),
               "inputs", ""),
    ]
    return results + deep_nesting(bodies) + worst_shapes() + [
        Result(f"HTML → text: {name}, parser", seconds(html_to_text, markup), "s", "<= 5")
        for name, markup in PATHOLOGICAL.items()
    ]


if __name__ == "__main__":  # python -m bench.bench_text
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for r in run(Path(tmp)):
            print(f"{r.name}: {r.figure:,.2f} {r.unit} ({r.target}) {r.note}")
