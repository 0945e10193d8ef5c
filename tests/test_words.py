"""Every word shown to a person is a word of the text, in the text's own language, and a suggestion
keeps to its day window (issue 20: "about releas, repositori", "shares de, em, na", a suggestion
spanning 2005 to 2018 under a 3-day rule).

The world: the shipped config (three storylines, their seed files) and feeds on a local server,
polled through the real pipeline into a real store, and the CLI reading it back.

- The Friendship Year's closing ceremony is a follow-up: its "why" lines (`storylines show`,
  `items show`, the digest) list the words it shares as the item writes them, not stems
  ("ceremoni"); a row stored before words were kept still reads (its stems, spaced).
- A Portuguese storyline and its Portuguese follow-up: "de", "em", "na" are no shared evidence;
  an English "die" is a word, a German "die" is not.
- Nix releases from a feed's archive (2005, 2018) arrive in one poll: the suggestion they make
  holds the 2018 items only, within [tracking] suggest_days, its terms written as in the items.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import unicodedata
from pathlib import Path

from bench.corpus import article
from tests.conftest import Cli, World
from tests.feedserver import Reply, rss
from tests.test_tracking import CLOSING, followups_of, korea  # noqa: F401 (korea: the fixture)
from worker import store
from worker.tracking import analysis, settings
from worker.models import UNTITLED
from worker.tracking.spelling import Spelling

UTC = dt.timezone.utc


def shared_words(line: str) -> list[str]:
    """The words after "shares " in a why line, up to the next part (";")."""
    found = re.search(r"shares (.*?)(?:;|$)", line)
    assert found, line
    return [w.strip("“”") for w in found.group(1).split(", ")]


def written(text: str) -> str:
    """A text as the words it is made of, one space between them (tags and punctuation aside)."""
    return " ".join(re.findall(r"[\w'’-]+", re.sub(r"<[^>]+>", " ", text)))


def in_text(word: str, text: str) -> bool:
    return f" {written(word)} " in f" {written(text)} "


def test_why_lines_show_the_items_words_and_old_rows_still_read(korea: World) -> None:
    korea.server.routes["/korea"] = Reply(body=rss([CLOSING], date="Sat, 28 Dec 2024 10:00:00 GMT"))
    korea.poll()
    cli = Cli(korea.config)
    item = f"{CLOSING[1]} {CLOSING[2]}"
    why = next(line for line in cli("storylines", "show", "friendship-year").output.splitlines() if "why:" in line)
    shared = shared_words(why)
    assert "China-DPRK Friendship Year" in shared  # an alias group, as the item writes it
    assert shared and all(in_text(w, item) for w in shared), shared
    # The stored reasons keep the token matched beside the word shown.
    row = followups_of(korea, "friendship-year")[CLOSING[1]]
    stored = json.loads(str(row["reasons"]))["top_terms"]
    assert ["china_dprk_friendship_year", "China-DPRK Friendship Year"] in [[t, w] for t, _, w in stored]
    assert all(w == "" or in_text(w, item) for _, _, w in stored)

    shown = cli("items", "show", str(row["item_id"])).output
    assert "Moscow 0.0" in shown and "russia 0.0" not in shown  # north-korea-russia's alias group, as the item names it
    data = json.loads(cli("items", "show", str(row["item_id"]), "--json").output)
    terms = [t for s in data["tracking"]["storylines"] for t in s["terms"]]  # every storyline's, made again
    assert len(terms) == 18 and all(len(t) == 3 for t in terms)
    assert all(in_text(word, item) for _, _, word in terms if word), terms
    assert all(f"{word} {weight:.3f}" in " ".join(shown.split()) for _, weight, word in terms if word)

    digest = cli("digest", "--since", "2026-11-22", "--until", "2026-11-24", "--stdout", "--format", "text").output
    line = next(line for line in digest.splitlines() if "shares" in line)
    assert all(in_text(w, item) for w in shared_words(line)), line

    # A row stored before words were kept holds the tokens alone: they still read, spaced.
    old = [["ceremoni", 0.05], ["north_korea", 0.04]]
    korea.db.execute("UPDATE storyline_items SET reasons = json_set(reasons, '$.top_terms', json(?)) WHERE item_id = ?",
                     [json.dumps(old), row["item_id"]])
    why = next(line for line in cli("storylines", "show", "friendship-year").output.splitlines() if "why:" in line)
    assert shared_words(why) == ["ceremoni", "north korea"]


PT_SEED = ("Lula anuncia plano de investimentos para a Amazônia\n\n"
           "O presidente Lula anunciou nesta terça-feira em Belém um plano de investimentos para a Amazônia. "
           "Segundo o governo, o dinheiro vai para a proteção da floresta e para as comunidades da região, "
           "que esperam há anos por mais apoio. O plano prevê que os estados da Amazônia recebam os recursos "
           "em duas etapas, e a primeira deve sair já no próximo mês.\n")
PT_FOLLOWUP = (
    "lula-2", "Lula detalha investimentos na Amazônia em Belém",
    "<p>O presidente Lula detalhou em Belém o plano de investimentos para a Amazônia. Os recursos vão para a "
    "proteção da floresta e para as comunidades da região, que há anos esperam por apoio. Segundo o governo, os "
    "estados da Amazônia recebem o dinheiro em duas etapas, a primeira no próximo mês.</p>")
PT_STOP_WORDS = {"de", "em", "na", "da", "do", "que", "para", "os", "as", "por", "há", "já", "no", "o", "a"}


def test_stop_words_of_the_items_own_language_are_no_evidence(korea: World, tmp_path: Path) -> None:
    korea.rt  # the store, with the shipped storylines
    seed = tmp_path / "lula.txt"
    seed.write_text(PT_SEED, encoding="utf-8")
    cli = Cli(korea.config)
    cli("storylines", "add", "amazonia", "--title", "Amazônia", "--seed", str(seed))
    korea.server.routes["/korea"] = Reply(body=rss([PT_FOLLOWUP], date="Mon, 23 Nov 2026 09:00:00 GMT"))
    korea.poll()
    row = followups_of(korea, "amazonia")[PT_FOLLOWUP[1]]
    why = next(line for line in cli("storylines", "show", "amazonia").output.splitlines() if "why:" in line)
    shared = shared_words(why)
    assert shared and not {w.lower() for w in shared} & PT_STOP_WORDS, shared
    assert "Amazônia" in shared or "investimentos" in shared  # the words of the story, accents kept
    shown = cli("items", "show", str(row["item_id"]), "--json").output
    terms = next(s["terms"] for s in json.loads(shown)["tracking"]["storylines"] if s["id"] == "amazonia")
    assert terms and not {token for token, _, _ in terms} & PT_STOP_WORDS
    # The language is the item's own: an English "die" is a word, a German one is not.
    english = analysis.prepare("Three die as floods hit Valencia", "Three people die as floods hit the city of Valencia.")
    german = analysis.prepare("Die Regierung plant neue Regeln", "Die Regierung hat am Montag gesagt, dass sie die "
                           "Regeln für den Verkehr in der Stadt ändern will und nicht warten wird.")
    assert "die" in english.features.split("\n")
    assert not {"die", "der", "und", "hat", "nicht", "fur"} & set(german.features.split("\n"))
    assert {"regierung", "regeln"} <= set(german.features.split("\n"))


def archive(feed: str, items: list[tuple[str, str, str, dt.datetime]]) -> bytes:
    """An RSS feed whose items carry dates of their own (a feed's archive: years apart)."""
    parts = [f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{feed}</title>'
             "<link>https://nix.example/</link>"]
    for guid, title, text, when in items:
        parts.append(f'<item><guid isPermaLink="false">{guid}</guid><title>{title}</title>'
                     f"<link>https://nix.example/{guid}</link><description>{text}</description>"
                     f"<pubDate>{when:%a, %d %b %Y %H:%M:%S} GMT</pubDate></item>")
    return ("".join(parts) + "</channel></rss>").encode()


NIX_TEXTS = {
    "n1": "The Nix package manager released version 2.0 with repositories of reproducible packages for NixOS users.",
    "n2": "NixOS users can now install Nix 2.0: its repositories build every package reproducibly, as released today.",
    "old": "Nix 0.9 was released: the package manager keeps repositories of packages, built reproducibly for users.",
    "new": "Version 2.0 of the Nix package manager is released to NixOS, whose repositories hold packages built reproducibly.",
}


def nix(guid: str, title: str, when: dt.datetime) -> tuple[str, str, str, dt.datetime]:
    return guid, title, NIX_TEXTS[guid], when


def test_a_suggestions_items_lie_within_suggest_days_of_each_other(korea: World) -> None:
    # Word statistics first: a week of unrelated news, so that "nix" is distinctive.
    rng = random.Random(2)
    background = [(f"bg{n}", *article(rng, 700)) for n in range(220)]
    server = korea.server
    korea.config.write_text(korea.config.read_text() + "".join(
        f'\n[[feeds]]\nurl = "{server.url(path)}"\nname = "{name}"\n' for path, name in [("/news", "News"), ("/nix", "Nix")]))
    server.routes["/korea"] = Reply(body=rss(background, date="Sun, 15 Nov 2026 09:00:00 GMT"))
    server.routes["/news"] = Reply(body=archive("News", []))
    server.routes["/nix"] = Reply(body=archive("Nix", []))
    korea.poll()
    # A news feed's two Nix items arrive first; the project's feed then brings its archive in one
    # poll: the 2005 release (it shares every term with them) and a 2018 one.
    server.routes["/news"] = Reply(body=archive("News", [
        nix("n1", "Nix 2.0 released", dt.datetime(2018, 2, 22, 9, tzinfo=UTC)),
        nix("n2", "Nix 2.0 is out", dt.datetime(2018, 2, 23, 9, tzinfo=UTC))]))
    korea.poll(force=True)
    server.routes["/nix"] = Reply(body=archive("Nix", [
        nix("old", "Nix 0.9 released", dt.datetime(2005, 9, 1, 9, tzinfo=UTC)),
        nix("new", "Nix 2.0 released for NixOS", dt.datetime(2018, 2, 24, 9, tzinfo=UTC))]))
    korea.poll(force=True)
    found = store.suggestions(korea.db)
    assert len(found) == 1
    titles = {r["title"] for r in korea.db.query(
        "SELECT title FROM items WHERE id IN (SELECT value FROM json_each(?))", [json.dumps(found[0].item_ids)])}
    assert titles == {"Nix 2.0 released", "Nix 2.0 is out", "Nix 2.0 released for NixOS"}
    first, last = dt.datetime.fromisoformat(found[0].first_at), dt.datetime.fromisoformat(found[0].last_at)
    assert last - first <= dt.timedelta(days=3)
    listed = Cli(korea.config)("storylines", "suggest").output
    assert "3 items from 2 sources, 2018-02-22 to 2018-02-24" in listed
    # Its terms are words of the items, not stems ("releas", "repositori", "nixo").
    terms = found[0].terms
    assert "Nix" in terms and not {"releas", "repositori", "nixo", "packag"} & set(terms), terms
    said = " ".join(NIX_TEXTS.values()) + " Nix 2.0 is out"
    assert all(in_text(t, said) for t in terms), terms


def test_a_word_written_with_combining_marks_is_shown_as_one_word() -> None:
    """Text in decomposed form (u + U+0308): the word is still shown, composed."""
    decomposed = unicodedata.normalize("NFD", "Die Flüchtlinge in Berlin")
    assert Spelling.of(decomposed, decomposed).shown("fluchtlinge") == "Flüchtlinge"


def test_an_items_untitled_placeholder_is_no_word_of_it() -> None:
    analysed = analysis.analyze(UNTITLED, "Prices at the market of Albi rose again.", settings.TrackerConfig(),
                                analysis.generic_aliases(()))
    assert analysed.weights and not [term for term in analysed.weights if "untitl" in term]
