"""Korean (Hangul) and Chinese (Han) text: names read the same with particles attached, aliases
written in Han are found inside longer runs, and an item written in either language follows up a
storyline whose seed and keywords are English, through its aliases. Fixtures written here: short
news sentences on North Korea and Russia, and an unrelated one in each language (heavy rain)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from bench.corpus import article
from worker.config import DEFAULT_TEMPLATE, load_settings
from worker.tracking.aliases import AliasTable
from worker.tracking.stemming import fold
from worker.tracking.textproc import pairs, read, strip_particles, words
from worker.tracking.analysis import generic_aliases, prepare
from worker.tracking.decisions import Doc, StorylineSpec
from worker.tracking.settings import DEFAULT_ALIASES, TrackerConfig
from worker.tracking.track import Tracker


@pytest.mark.parametrize("written", ["북한은", "북한이", "북한의", "북한과", "북한에", "북한에서", "북한으로",
                                     "북한을", "북한도", "북한만", "북한에서는", "북한까지"])
def test_a_hangul_name_with_a_particle_reads_as_the_name(written: str) -> None:
    assert words(written) == words("북한") == ["북한"]


def test_names_of_every_length_read_alike_with_and_without_particles() -> None:
    assert words("중국과") == words("중국") and words("러시아와") == words("러시아") == ["러시아"]
    # 은 ends the name itself: with or without a particle after it, 김정은 reads the same.
    assert words("김정은은") == words("김정은이") == words("김정은의") == words("김정은")
    assert words("시진핑은 푸틴과") == words("시진핑 푸틴") == ["시진핑", "푸틴"]


def test_a_two_syllable_word_alone_is_untouched_and_a_particle_alone_is_no_token() -> None:
    for name in ("북한", "중국", "조선", "푸틴", "회의", "국가"):  # 의, 가 look like particles
        assert strip_particles(name) == name and words(name) == [name]
    assert strip_particles("핵을") == "핵을"  # a one-syllable noun keeps its particle
    assert words("UN은 중국에서") == ["un", "중국"]  # "UN은": the 은 is all particle


def test_hangul_survives_folding_and_sits_in_clauses_like_any_word() -> None:
    assert fold("북한은 Millán과") == "북한은 Millan과"  # accents go, syllables stay whole
    tokens, capitals = read("북한은 “협력”을 밝혔다.")
    assert tokens == ["북한", "|", "협력", "|", "밝혔다", "|"] and not any(capitals)


def test_han_aliases_are_found_inside_a_longer_run_and_read_as_their_groups_first_variant() -> None:
    table = AliasTable.build([["North Korea", "朝鲜", "北韩"], ["China", "中国"], ["Russia", "俄罗斯"],
                              ["Xi Jinping", "习近平"], ["Putin", "普京"]])
    korea, china, russia, xi, putin = (table.apply(words(v)) for v in ("North Korea", "China", "Russia",
                                                                          "Xi Jinping", "Putin"))
    seq = table.apply(words("中国和朝鲜"))
    assert seq == china + ["和"] + korea
    seq = table.apply(read("俄罗斯总统普京会见习近平。北韩")[0])  # 。 ends a clause
    assert seq == russia + ["总", "统"] + putin + ["会", "见"] + xi + ["|"] + korea


def test_han_characters_pair_into_bigrams_within_a_clause() -> None:
    assert pairs(read("朝鲜。中国")[0]) == ["朝 鲜", "中 国"]
    lead, _ = read("中国和朝鲜。" * 3000, max_tokens=400)  # no spaces: the lead is cut at a 。
    assert len(lead) - lead.count("|") == 400 and lead[:6] == ["中", "国", "和", "朝", "鲜", "|"]


def test_the_shipped_storylines_read_korean_and_chinese_names_as_their_english_ones() -> None:
    generic = generic_aliases(DEFAULT_ALIASES)
    settings = load_settings(DEFAULT_TEMPLATE)  # the shipped default, never the user's config
    same = {"North Korea": ("북한은", "조선의", "朝鲜", "北韩"), "China": ("중국과", "中国"),
            "Russia": ("러시아와", "俄罗斯"), "Kim Jong Un": ("김정은이", "金正恩"),
            "Xi Jinping": ("시진핑은", "习近平"), "Putin": ("푸틴과", "普京")}
    checked = 0
    for storyline in settings.storylines:
        table = AliasTable.build(storyline.aliases, base=generic)
        known = {v for group in storyline.aliases for v in group}
        for english, variants in same.items():
            if english in known:
                checked += 1
                for variant in variants:
                    assert table.apply(words(variant)) == table.apply(words(english)), (storyline.id, variant)
    assert checked == 11  # every group the storylines carry


SEED = Doc("seed", "North Korea and Russia sign military cooperation pact",
           "North Korean leader Kim Jong Un and Russian President Vladimir Putin signed a pact on military "
           "cooperation in Pyongyang on Wednesday, pledging mutual help if either is attacked. Putin said "
           "Russia and the DPRK would deepen ties.", 1000.0)
RUSSIA = StorylineSpec(
    "nk-russia", "North Korea's turn towards Russia", (SEED,),
    keywords=("Russia", "Putin", "military cooperation"),
    aliases=(("DPRK", "North Korea", "Pyongyang", "북한", "조선", "朝鲜"), ("Russia", "Moscow", "러시아", "俄罗斯"),
             ("Putin", "Vladimir Putin", "푸틴", "普京"), ("Kim Jong Un", "김정은", "金正恩")))
ON_TOPIC = {
    "korean": Doc("ko", "김정은, 러시아 국방장관 접견",
                  "북한의 김정은 국무위원장은 평양을 방문한 러시아 국방장관을 접견하고 푸틴 대통령의 친서를 "
                  "전달받았다고 조선중앙통신이 보도했다. 북한과 러시아는 군사 협력을 확대하기로 했다.", 5000.0),
    "chinese": Doc("zh", "金正恩会见俄罗斯国防部长",
                   "据朝中社报道，朝鲜最高领导人金正恩在平壤会见了来访的俄罗斯国防部长，并收到普京总统的亲笔信。"
                   "朝鲜和俄罗斯同意扩大军事合作。", 5000.0),
}
OFF_TOPIC = {
    "korean": Doc("ko-rain", "서울 폭우로 도로 침수",
                  "서울에 집중호우가 내려 도로 곳곳이 침수되고 지하철 운행이 중단됐다고 기상청이 밝혔다.", 5000.0),
    "chinese": Doc("zh-rain", "上海暴雨导致道路积水",
                   "上海遭遇强降雨，多条道路积水，地铁部分线路暂停运营，气象台发布预警。", 5000.0),
}


@pytest.fixture(scope="module")
def tracker() -> Tracker:
    """The Russia storyline (English seed and keywords, aliases in three scripts) over an English
    background of 300 unrelated articles."""
    rng = random.Random(3)
    tracker = Tracker(TrackerConfig())
    for n in range(300):
        tracker.observe(Doc(f"bg{n}", *article(rng, 800), float(n)))
    tracker.add_storyline(RUSSIA)
    return tracker


@pytest.mark.parametrize("language", ["korean", "chinese"])
@pytest.mark.parametrize("analysed_where", ["tracker", "parsing process"])
def test_an_item_in_korean_or_chinese_follows_up_a_storyline_seeded_in_english(
        tracker: Tracker, language: str, analysed_where: str) -> None:
    def decide(doc: Doc) -> list[bool]:
        if analysed_where != "tracker":
            doc = replace(doc, prepared=prepare(doc.title, doc.text))
        return [d.followup for d in tracker.decide(doc)]

    assert decide(ON_TOPIC[language]) == [True]
    follow_up = tracker.decide(ON_TOPIC[language]).followups[0]
    assert follow_up.reasons is not None
    assert {"russia", "putin", "north_korea"} <= {term for term, _ in follow_up.reasons.top_terms}
    assert decide(OFF_TOPIC[language]) == [False]
