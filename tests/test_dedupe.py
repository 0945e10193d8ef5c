"""One copy of every story: exact and near copies, short items, revisions, boilerplate, tombstones."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

import numpy as np
import pytest

from worker.ingest import dedupe
from worker.config import DEFAULT_CLUTTER
from worker.models import Indexed
from tests.conftest import NOW, SEEDS, Cli, World
from tests.feedserver import Reply, rss

CLUTTER = dedupe.Clutter.compile(DEFAULT_CLUTTER)
ARTICLE = (
    "Chinese Vice-Premier Liu Guozhong arrived in Pyongyang on Friday at the head of a party and "
    "government delegation for the celebrations of the 75th founding anniversary of North Korea. "
    "He was greeted at the airport by senior officials of the ruling Workers' Party, state media said. "
    "The visit is the second by a senior Chinese official in six weeks as the North reopens its border. "
    "Analysts said Beijing wanted to show that its ties with Pyongyang remained close despite the rising "
    "attention paid to North Korea's relations with Moscow and the planned summit in Vladivostok."
)
OTHER_ARTICLE = (
    "North Korean leader Kim Jong-un travelled by armoured train to the Russian Far East for talks with "
    "President Vladimir Putin, the Kremlin confirmed on Monday, the first such summit in four years. "
    "Officials in Seoul and Washington warned that an arms deal could follow, with Pyongyang supplying "
    "artillery shells for the war in Ukraine in exchange for satellite and submarine technology. "
    "China's foreign ministry said the visit was a matter between the two neighbours."
)


def paragraphs(*lines: str) -> str:
    return "".join(f"<p>{line}</p>" for line in lines)


def clusters(w: World) -> list[tuple[int, int, str | None]]:
    return [(r["id"], r["cluster_id"], r["dup_kind"]) for r in w.db.query("SELECT * FROM items ORDER BY id")]


# ── the "Done when" cases, through the real pipeline ─────────────────────────────────────────


def seed_text(name: str) -> tuple[str, str]:
    path = next(SEEDS.glob(f"{name}_*.txt"))
    title, _, body = path.read_text(encoding="utf-8").partition("\n")
    return title.strip(), body


@pytest.mark.parametrize("seed", ["002", "003"])
def test_a_seed_reposted_with_different_clutter_is_a_copy(world: Callable[..., World], seed: str) -> None:
    w = world("/repost", extra=f'\n[seeds]\npath = "{SEEDS}"')
    title, body = seed_text(seed)
    lines = [line for line in body.split("\n") if line.strip() not in ("Advertisement", "Related posts", "Leave a Comment")]
    lines = ["Home » World » Asia", "Share this article"] + lines[:8] + ["Advertisement"] + lines[8:] + ["Read More", "Subscribe to our newsletter for daily updates"]
    w.server.routes["/repost"] = Reply(body=rss([("r1", title, paragraphs(*lines))]))
    w.poll()
    seed_row = w.db.execute("SELECT id, cluster_id FROM items WHERE identity LIKE ?", [f"seed:{seed}%"]).fetchone()
    repost = w.db.execute("SELECT cluster_id, dup_of, dup_kind FROM items WHERE feed_id IS NOT NULL").fetchone()
    assert repost == (seed_row[1], seed_row[0], "exact")  # clutter aside, the very same text


def test_a_retitled_and_edited_repost_of_a_seed_is_a_near_copy(world: Callable[..., World]) -> None:
    w = world("/repost", extra=f'\n[seeds]\npath = "{SEEDS}"')
    title, body = seed_text("002")
    words = body.split()
    for i in range(10, len(words), 33):  # about 3 % of the words changed
        words[i] = "changed"
    reposted = rss([("r1", "Xi hails new era with Pyongyang", paragraphs(" ".join(words)))],
                   date="Sun, 10 Sep 2023 06:00:00 GMT")  # the day after the seed: within the window
    w.server.routes["/repost"] = Reply(body=reposted)
    w.poll()
    repost = w.db.execute("SELECT cluster_id, dup_kind, similarity FROM items WHERE feed_id IS NOT NULL").fetchone()
    seed_cluster = w.db.execute("SELECT cluster_id FROM items WHERE identity LIKE 'seed:002%'").fetchone()[0]
    assert repost[0] == seed_cluster and repost[1] == "near" and repost[2] >= 0.5


def test_the_same_text_under_two_guids_and_links_is_an_original_and_its_copy(world: Callable[..., World]) -> None:
    w = world("/a", "/b")
    w.server.routes["/a"] = Reply(body=rss([("a1", "Delegation in Pyongyang", paragraphs(ARTICLE))]))
    w.server.routes["/b"] = Reply(body=rss([("b-9", "Delegation in Pyongyang", paragraphs(ARTICLE)),
                                            ("b-10", "Kim meets Putin", paragraphs(OTHER_ARTICLE))]))
    report = w.poll()
    assert report.new_items == 2 and sum(r.copies for r in report.reports) == 1
    rows = clusters(w)
    originals = [r for r in rows if r[2] is None]
    copies = [r for r in rows if r[2] == "exact"]
    assert len(originals) == 2 and len(copies) == 1
    assert copies[0][1] in {o[1] for o in originals}  # one cluster: tracked and digested once, via its original


def test_the_same_guid_with_an_edited_headline_is_one_item_with_a_revision(world: Callable[..., World]) -> None:
    w = world("/f")
    w.server.routes["/f"] = Reply(body=rss([("g1", "Zhao Leji to visit Pyongyang", paragraphs(ARTICLE))]))
    w.poll()
    w.server.routes["/f"] = Reply(body=rss([("g1", "Zhao Leji arrives in Pyongyang for three-day visit", paragraphs(ARTICLE))]))
    report = w.poll(force=True)
    assert report.reports[0].revisions == 1 and report.new_items == 0
    item = w.db.execute("SELECT id, title, revision FROM items").fetchone()
    assert item[1:] == ("Zhao Leji arrives in Pyongyang for three-day visit", 2)
    revision = w.db.execute("SELECT revision, title, changed, diff FROM item_revisions WHERE item_id = ?", [item[0]]).fetchone()
    assert revision[:3] == (1, "Zhao Leji to visit Pyongyang", '["title"]')
    assert revision[3].startswith("title: Zhao Leji [-to") and "{+arrives in" in revision[3] and "three-day" in revision[3]
    shown = Cli(w.config)("items", "show", str(item[0])).output
    assert "version 1, replaced" in shown and "changed title" in shown and "{+arrives in" in shown


def test_an_edited_text_is_a_revision_with_a_word_diff(world: Callable[..., World]) -> None:
    w = world("/f")
    w.server.routes["/f"] = Reply(body=rss([("g1", "Talks", paragraphs(ARTICLE))]))
    w.poll()
    edited = ARTICLE.replace("on Friday", "on Saturday")
    w.server.routes["/f"] = Reply(body=rss([("g1", "Talks", paragraphs(edited))]))
    w.poll(force=True)
    changed, diff = w.db.execute("SELECT changed, diff FROM item_revisions").fetchone()
    assert changed == '["text"]' and "[-Friday-] {+Saturday+}" in diff and "…" in diff


@pytest.mark.parametrize(
    ("change", "link"),
    [
        ("a tracking parameter", "https://news.example/a?utm_source=rss&utm_medium=feed"),
        ("whitespace and clutter", None),
    ],
)
def test_trivial_changes_change_nothing(world: Callable[..., World], change: str, link: str | None) -> None:
    w = world("/f")

    def feed(body: str, url: str = "https://news.example/a") -> bytes:
        return (f'<rss version="2.0"><channel><title>T</title><item><guid>g1</guid><title>Talks</title>'
                f"<link>{url}</link><description><![CDATA[{body}]]></description></item></channel></rss>").encode()

    w.server.routes["/f"] = Reply(body=feed(paragraphs(ARTICLE)))
    w.poll()
    before = w.items()
    if link:
        w.server.routes["/f"] = Reply(body=feed(paragraphs(ARTICLE), link))
    else:
        w.server.routes["/f"] = Reply(body=feed(paragraphs("Advertisement", ARTICLE.replace(". ", ".   "), "Share this")))
    report = w.poll(force=True)
    assert report.new_items == 0 and report.reports[0].revisions == 0
    assert w.db["item_revisions"].count == 0 and len(w.items()) == 1
    assert w.items()[0]["url"] == before[0]["url"] == "https://news.example/a"


def test_two_different_articles_of_one_story_stay_apart(world: Callable[..., World]) -> None:
    w = world("/a", "/b", extra=f'\n[seeds]\npath = "{SEEDS}"')
    w.server.routes["/a"] = Reply(body=rss([("a1", "Kim meets Putin in the Russian Far East", paragraphs(OTHER_ARTICLE))]))
    w.server.routes["/b"] = Reply(body=rss([("b1", "Delegation in Pyongyang", paragraphs(ARTICLE))]))
    w.poll()
    rows = clusters(w)
    assert len({cluster for _, cluster, _ in rows}) == len(rows) == 7  # 5 seeds + 2 articles, all apart
    seeds = w.db.execute("SELECT count(DISTINCT cluster_id) FROM items WHERE source = 'seeds'").fetchone()[0]
    assert seeds == 5  # 000 and 001 tell the same events, in different words: two stories' articles, not copies


def test_copies_within_one_feed_are_not_merged(world: Callable[..., World]) -> None:
    w = world("/f")
    words = ARTICLE.split()
    words[5] = "arrives"
    w.server.routes["/f"] = Reply(body=rss([("g1", "One", paragraphs(ARTICLE)), ("g2", "Two", paragraphs(" ".join(words)))]))
    w.poll()
    assert [kind for _, _, kind in clusters(w)] == [None, None]


def test_the_index_survives_a_restart_without_reading_texts(world: Callable[..., World]) -> None:
    w = world("/a", "/b")
    w.server.routes["/a"] = Reply(body=rss([("a1", "Delegation in Pyongyang", paragraphs(ARTICLE))]))
    w.poll(feed_url=w.server.url("/a"))
    w.rt.close()
    w._rt = None  # a new worker process: its index is rebuilt from the stored signatures
    statements: list[str] = []
    w.rt.db.conn.set_trace_callback(statements.append)
    edited = ARTICLE.replace("Friday", "Saturday").replace("second", "latest")
    w.server.routes["/b"] = Reply(body=rss([("b1", "China's Liu in North Korea", paragraphs(edited))]))
    w.poll(feed_url=w.server.url("/b"))
    assert [kind for _, _, kind in clusters(w)] == [None, "near"]
    loads = [s for s in statements if "signature IS NOT NULL" in s]
    assert loads and all("text" not in s.split("FROM")[0] for s in loads)


def test_short_items_follow_their_own_rule(world: Callable[..., World]) -> None:
    w = world("/a", "/b", "/c")
    w.server.routes["/a"] = Reply(body=rss([
        ("a1", "North Korea fires ballistic missile into the sea", ""),
        ("a2", "Zhao Leji arrives in Pyongyang", paragraphs("China's No 3 official began a three-day visit on Thursday.")),
    ]))
    w.server.routes["/b"] = Reply(body=rss([
        ("b1", "North Korea fires ballistic missile into the sea - Wire", ""),  # headline only, same headline
        ("b2", "Zhao Leji arrives in Pyongyang", paragraphs("A different report: talks on trade and the border.")),
    ]))
    w.server.routes["/c"] = Reply(body=rss([
        ("c1", "Breaking: Zhao Leji arrives in Pyongyang", paragraphs("China's No 3 official began a three-day visit on Thursday, state media said.")),
    ]))
    w.poll()
    rows = {r["guid"]: (r["cluster_id"], r["dup_kind"]) for r in w.db.query("SELECT * FROM items")}

    def copies(a: str, b: str) -> bool:  # the feeds are polled at once: either may come first
        return rows[a][0] == rows[b][0] and {rows[a][1], rows[b][1]} == {None, "short"}

    assert copies("a1", "b1")  # one headline, no text: the same wire item
    assert rows["b2"][0] != rows["a2"][0]  # the same headline over another text: a different article
    assert copies("a2", "c1")  # retitled, the text nearly the same


def test_a_feeds_boilerplate_is_learned_and_its_early_items_fingerprinted_again(world: Callable[..., World]) -> None:
    w = world("/site")
    frame = ("The Daily Bugle: all the news from the Far East", "© The Daily Bugle. All rights reserved.")
    stories = [f"Story {n}: " + " ".join(random.Random(n).choices(ARTICLE.split(), k=60)) for n in range(4)]
    w.server.routes["/site"] = Reply(body=rss([(f"g{n}", f"Story {n}", paragraphs(frame[0], s, frame[1])) for n, s in enumerate(stories)]))
    w.poll()
    learned = dedupe.Boilerplate.from_json(w.db.execute("SELECT boilerplate FROM feeds").fetchone()[0]).lines
    assert set(frame) <= learned
    text = w.items()[0]["text"]
    assert frame[0] in text  # stored as published
    row = w.db.execute("SELECT content_sha256, words FROM items WHERE guid = 'g0'").fetchone()
    match = dedupe.match_text(text, CLUTTER, learned)
    assert row == (dedupe.fingerprint("Story 0", text, match).content_sha256, len(dedupe.words_of(match)))


def test_pruned_items_leave_tombstones_and_never_come_back(world: Callable[..., World]) -> None:
    w = world("/f")
    w.config.write_text(w.config.read_text().replace('path = "sw.db"', 'path = "sw.db"\nretention_days = 30'))
    w.server.routes["/f"] = Reply(body=rss([("old", "An old story", paragraphs(ARTICLE))]))  # dated 2024
    w.poll()
    assert w.items() == []  # older than 30 days: pruned right after the cycle
    assert {r["kind"] for r in w.db.query("SELECT kind FROM tombstones")} == {"identity", "content"}
    w.poll(force=True, no_cache=True)
    assert w.items() == []  # the feed still lists it: it is not ingested again


# ── the pieces ───────────────────────────────────────────────────────────────────────────────


def test_minhash_estimates_jaccard_similarity() -> None:
    rng = random.Random(1)
    vocabulary = [f"w{n}" for n in range(3000)]
    base = rng.choices(vocabulary, k=400)
    for changed in (0, 20, 60, 120, 200):
        other = list(base)
        for i in rng.sample(range(len(other)), changed):
            other[i] = rng.choice(vocabulary)
        exact = dedupe.jaccard(dedupe.shingles(base), dedupe.shingles(other))
        estimate = dedupe.similarity(dedupe.minhash(base), dedupe.minhash(other))
        assert abs(estimate - exact) < 0.2, (changed, exact, estimate)
    assert dedupe.similarity(dedupe.minhash(base), dedupe.minhash(base)) == 1.0
    assert dedupe.minhash(base) == dedupe.minhash(list(base))  # stable: stored and compared later


@pytest.mark.parametrize(
    ("line", "clutter"),
    [("Advertisement", True), ("ADVERTISEMENT", True), ("Read More", True), ("Read more »", True),
     ("Leave a Comment", True), ("Related posts", True), ("Share this article", True), ("Share on Facebook", True),
     ("Subscribe to our newsletter", True), ("Home » News » China-North Korea Relations", True),
     ("#Chinese #Vice #Foreign #Minister", True), ("2024-01-27 14:49:00", True), ("Updated 3 hours ago", True),
     ("This site uses Akismet to reduce spam. Learn how your comment data is processed.", True),
     ("Advertisements for the new service ran all week.", False), ("Read more about the talks in Beijing.", False),
     ("The delegation shared a meal with officials.", False), ("Updated figures from the ministry show trade grew by a fifth last year.", False)],
)
def test_clutter_patterns_match_whole_lines_only(line: str, clutter: bool) -> None:
    assert CLUTTER.matches(line) is clutter


def test_boilerplate_needs_repetition_across_items() -> None:
    texts = [f"Header of the site\nStory number {n} with its own words.\nFooter line" for n in range(5)]
    model = dedupe.Boilerplate().learn(texts[:2])
    assert model.lines == frozenset()  # two items are not enough to tell
    model = model.learn(texts[2:])
    assert model.lines == {"Header of the site", "Footer line"}
    assert dedupe.Boilerplate.from_json(model.to_json()) == model
    lonely = dedupe.Boilerplate()
    for _ in range(10):  # one item seen again and again is not boilerplate of its feed
        lonely = lonely.learn(["The only story\nthat this feed has"])
    assert lonely.items == 10 and "The only story" in lonely.lines  # (the store never teaches re-seen items)


def test_word_diff_is_compact() -> None:
    old = "one two three four five six seven eight nine ten eleven twelve thirteen"
    new = "one two three four five SIX seven eight nine ten eleven twelve thirteen fourteen"
    diff = dedupe.word_diff(old, new)
    assert diff == "one two three four five [-six-] {+SIX+} seven eight nine … eleven twelve thirteen {+fourteen+}"


def short(item_id: int, title: str, text: str, feed: int) -> tuple[Indexed, tuple[str, str]]:
    words = dedupe.words_of(text)
    marks = dedupe.fingerprint(title, text, text)
    return Indexed(item_id, feed, item_id, NOW, marks.signature, marks.title_key, len(words)), (title, text)


@pytest.mark.parametrize(
    ("a", "b", "copy"),
    [
        (("Kim meets Putin in Vladivostok summit", ""), ("Kim meets Putin in Vladivostok summit | Wire", ""), True),
        (("Talks", ""), ("Talks", ""), False),  # too short a headline to say
        (("Kim meets Putin in Vladivostok", "The two leaders met for four hours on Wednesday."),
         ("Kim meets Putin in Vladivostok", "An arms deal is feared by Seoul and Washington."), False),
        (("Kim meets Putin in Vladivostok", "The two leaders met for four hours on Wednesday at the port."),
         ("Update: Kim meets Putin in Vladivostok", "The two leaders met for four hours on Wednesday at the cosmodrome."), True),
        (("British jihadist killed in US air strike", "A teenager from Brighton was killed in a US drone strike in Syria, reports say."),
         ("Brighton jihadi among five killed in Syria", "A teenager from Brighton was among five killed in a US drone strike in Syria."), False),
    ],
)
def test_the_short_item_rule(a: tuple[str, str], b: tuple[str, str], copy: bool) -> None:
    first, first_texts = short(1, *a, feed=1)
    second, second_texts = short(2, *b, feed=2)
    assert dedupe.short_copy(first, second, first_texts, second_texts) is copy


class ArticleTexts:
    """The exact texts of an index test: every item, the new one too, is the same article."""

    own = ("T", ARTICLE)

    @staticmethod
    def of(item_id: int) -> tuple[str, str]:
        return ("T", ARTICLE)


def test_the_index_forgets_outside_its_window() -> None:
    index = dedupe.Index(dt.timedelta(days=30), 0.5)
    marks = dedupe.fingerprint("T", ARTICLE, ARTICLE)
    old = Indexed(1, 1, 1, NOW - dt.timedelta(days=60), marks.signature, marks.title_key, marks.words)
    index.add(old)
    new = Indexed(2, 2, 2, NOW, marks.signature, marks.title_key, marks.words)

    assert index.find(new, ArticleTexts()) is None  # 60 days apart: outside the window
    index.add(dataclasses_replace(old, item_id=3, published=NOW - dt.timedelta(days=1)))
    assert index.find(new, ArticleTexts()) is not None
    assert index.forget_before(NOW - dt.timedelta(days=30)) == 1 and len(index) == 1


def dataclasses_replace(entry: Indexed, **changes: object) -> Indexed:
    import dataclasses

    return dataclasses.replace(entry, **changes)  # type: ignore[arg-type]


def test_band_keys_alike_in_their_hash_only_are_not_taken_for_each_other() -> None:
    """The sorted band index keeps 32 bits of a key's hash beside the row: a row found by the
    hash is a candidate only if its band's whole key is the one looked for."""
    from worker.ingest.dedupe import BAND_SALT
    from worker.ingest.dedupe.index import _MIX, _Bands

    rng = np.random.default_rng(1)
    bands = _Bands()
    stored = rng.integers(0, 2**32, 64, dtype=np.uint32)
    bands.add(0, stored)
    bands.merge()  # into the sorted array
    salt, mix, whole = int(BAND_SALT[0]), int(_MIX), 2**64
    key = (int(stored[0]) | int(stored[1]) << 32) ^ salt  # the first band's key
    other = ((key * mix % whole) ^ 1) * pow(mix, -1, whole) % whole  # another key of the same high hash bits
    assert other != key and (other * mix % whole) >> 32 == (key * mix % whole) >> 32
    query = rng.integers(0, 2**32, 64, dtype=np.uint32)  # no band in common …
    query[0], query[1] = (other ^ salt) & 0xFFFFFFFF, (other ^ salt) >> 32  # … but the first band's hash
    assert bands.candidates(query).tolist() == []
    query[:2] = stored[:2]  # the whole first band
    assert bands.candidates(query).tolist() == [0]


def test_extending_with_nothing_leaves_live_additions_waiting() -> None:
    """The window extends the index before every batch, mostly with nothing: that must not merge
    the live additions, a copy of the whole sorted array each time."""
    index = dedupe.Index(dt.timedelta(days=30), 0.5)
    marks = dedupe.fingerprint("T", ARTICLE, ARTICLE)
    for item_id in range(1, 4):
        index.add(Indexed(item_id, item_id, item_id, NOW, marks.signature, marks.title_key, marks.words))
    index.extend(())
    assert len(index._bands._pending) == 3  # still in the dict of recent additions
    index.extend([Indexed(9, 9, 9, NOW, marks.signature, marks.title_key, marks.words)])
    assert not index._bands._pending  # a bulk load merges, the waiting additions with it
    new = Indexed(10, 10, 10, NOW, marks.signature, marks.title_key, marks.words)

    assert {m.item_id for m in index.find_all(new, ArticleTexts())} == {1, 2, 3, 9}


def test_a_key_matches_in_its_own_band_only_waiting_or_merged() -> None:
    """A row's second band key given as a query's first band is no shared band: not while the
    row waits among the recent additions, and not once merged into the sorted array."""
    from worker.ingest.dedupe import BAND_SALT
    from worker.ingest.dedupe.index import _Bands

    rng = np.random.default_rng(2)
    bands = _Bands()
    stored = rng.integers(0, 2**32, 64, dtype=np.uint32)
    bands.add(0, stored)
    second = (int(stored[2]) | int(stored[3]) << 32) ^ int(BAND_SALT[1])  # its second band's key
    query = rng.integers(0, 2**32, 64, dtype=np.uint32)
    first = second ^ int(BAND_SALT[0])  # the pair whose first band key is that key
    query[0], query[1] = first & 0xFFFFFFFF, first >> 32
    assert bands.candidates(query).tolist() == []
    bands.merge()
    assert bands.candidates(query).tolist() == []
    query[2:4] = stored[2:4]  # the second band itself
    assert bands.candidates(query).tolist() == [0]
