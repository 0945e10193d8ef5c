"""`storywatch init` and the commands that read what it stored: seeds, storylines, status, items."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from worker import startup, store
from worker.config import load_settings
from worker.ingest.seeds import read_seed_folder
from tests.conftest import NOW, SEEDS, Cli

SEED_TITLES = {
    "000": "China and North Korea pledge stronger cooperation in rare talks as Beijing shores up ties with neighbours",
    "001": "China-North Korea Relations: Vice Minister’s Visit, Strategic Cooperation, and Tensions with Russia",
    "003": "China to ‘intensify high-level exchanges’ with North Korea, No 3 official Zhao Leji says in marking 75 years of ties",
}


def snapshot(db_path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = store.open_store(db_path)
    return {
        table: [tuple(r.values()) for r in db.query(f"SELECT * FROM {table} ORDER BY rowid")]
        for table in ("items", "feeds", "storylines", "storyline_items")
    }


def test_seeds_toml_describes_every_seed_file() -> None:
    docs = read_seed_folder(SEEDS)
    assert [d.path.name[:3] for d in docs] == ["000", "001", "002", "003", "004"]
    assert {d.path.name for d in docs} == {p.name for p in SEEDS.glob("*.txt")}
    dates = {d.path.name[:3]: d.published.isoformat() for d in docs if d.published}
    assert dates == {"000": "2023-12-18", "001": "2024-01-27", "002": "2023-09-09", "003": "2024-04-11", "004": "2019-09-03"}
    for doc in docs:
        assert doc.language == "en" and doc.publisher and doc.title in doc.text


def test_init_loads_the_seeds_once(run: Cli, seeded_config: Path) -> None:
    first = run("init")
    assert "Seeds: 5 read, 5 new" in first.output
    db_path = seeded_config.parent / "var" / "storywatch.db"
    before = snapshot(db_path)
    again = run("init")
    assert "Seeds: 5 read, 0 new" in again.output
    assert snapshot(db_path) == before  # nothing added, nothing changed
    items = before["items"]
    assert len(items) == 5
    db = store.open_store(db_path)
    rows = list(db.query("SELECT identity, source, title, published_at FROM items ORDER BY identity"))
    assert all(r["source"] == "seeds" for r in rows)
    assert rows[0]["published_at"] == "2023-12-18T00:00:00Z"
    assert {r["identity"][5:8]: r["title"] for r in rows if r["identity"][5:8] in SEED_TITLES} == SEED_TITLES


def test_init_links_each_storyline_to_its_seed_items(run: Cli, seeded_config: Path) -> None:
    run("init")
    db = store.open_store(seeded_config.parent / "var" / "storywatch.db")
    seeds = {
        (r["storyline_id"], r["identity"][5:8])
        for r in db.query(
            "SELECT storyline_id, identity FROM storyline_items JOIN items ON items.id = item_id WHERE decision = 'seed'"
        )
    }
    assert {s for sl, s in seeds if sl == "friendship-year"} == {"000", "001", "003"}
    assert {s for sl, s in seeds if sl == "high-level-exchanges"} == {"000", "001", "002", "003", "004"}
    assert {s for sl, s in seeds if sl == "north-korea-russia"} == {"001", "002"}


def test_search_finds_the_friendship_year_seeds(run: Cli) -> None:
    run("init")
    listed = run("items", "--search", "Friendship Year").output
    assert SEED_TITLES["001"] in listed and SEED_TITLES["003"] in listed
    assert SEED_TITLES["000"] not in listed
    found = json.loads(run("items", "--search", "Friendship Year", "--json").output)
    assert sorted(i["identity"] for i in found) == ["seed:001_84e607cf970aea0c.txt", "seed:003_fbc8137f2d954ad1.txt"]
    assert {"id", "title", "url", "publisher", "published_at", "storylines", "source"} <= set(found[0])


def test_items_filters_by_storyline_and_date(run: Cli) -> None:
    run("init")
    russia = json.loads(run("items", "--storyline", "north-korea-russia", "--json").output)
    assert [i["published_at"][:10] for i in russia] == ["2024-01-27", "2023-09-09"]  # newest first
    recent = json.loads(run("items", "--since", "2024-01-01", "--json").output)
    assert sorted(i["published_at"][:10] for i in recent) == ["2024-01-27", "2024-04-11"]
    assert json.loads(run("items", "--limit", "2", "--json").stdout)[0]["published_at"][:10] == "2024-04-11"
    bad = run("items", "--since", "last tuesday", ok=False)
    assert bad.exit_code == 2 and "is not a date" in bad.output


def test_status_shows_items_feeds_and_storylines(run: Cli, seeded_config: Path) -> None:
    run("init")
    out = run("status").output
    assert "Items        5 (5 seeds)" in out
    assert "Last poll    never" in out and "Last digest  never" in out
    assert "South China Morning Post: China" in out and "not polled yet" in out
    assert "friendship-year       3      0" in out


def test_config_changes_are_synced_on_init(run: Cli, seeded_config: Path) -> None:
    run("init")
    text = seeded_config.read_text(encoding="utf-8")
    text = text.replace('url = "https://thediplomat.com/feed/"', 'url = "https://example.org/new.xml"')
    russia_seeds = 'seeds = [\n    "seeds/001_84e607cf970aea0c.txt",\n    "seeds/002_a624dde74f37622b.txt",\n]'
    assert russia_seeds in text
    text = text.replace(russia_seeds, 'seeds = ["seeds/001_84e607cf970aea0c.txt"]')
    seeded_config.write_text(text, encoding="utf-8")
    out = run("init").output
    assert "1 added" in out and "1 removed" in out
    status = run("status").output
    assert "disabled: removed from the config" in status
    assert "north-korea-russia    1" in status


def test_a_missing_seed_file_is_one_clear_error(write_config: Callable[[str], Path]) -> None:
    config = write_config(
        """
        [[storylines]]
        id = "s"
        title = "S"
        seeds = ["nowhere/article.txt"]
        """
    )
    result = Cli(config)("init", ok=False)
    assert result.exit_code == 1
    assert "storyline s: seed file not found:" in result.output and "article.txt" in result.output
    assert "Traceback" not in result.output


def test_a_storyline_seed_outside_the_seed_folder_is_stored_as_a_seed(
    tmp_path: Path, write_config: Callable[[str], Path]
) -> None:
    (tmp_path / "mine.txt").write_text("My own example article\n\nAbout the Friendship Year.\n")
    config = write_config(
        """
        [[storylines]]
        id = "mine"
        title = "Mine"
        seeds = ["mine.txt", "https://example.org/not-yet-ingested"]
        """
    )
    result = Cli(config)("init")
    assert "Storyline mine: 1 seed item(s)" in result.output
    assert "Not in the store yet" in result.output and "not-yet-ingested" in result.output
    settings = load_settings(config)
    db = store.open_store(settings.storage.path)
    report = startup.initialize(db, settings, NOW)  # idempotent through the library too
    assert report.seeds_added == 0 and report.storylines == {"mine": 1}
    assert [i.title for i in store.find_items(db)] == ["My own example article"]
