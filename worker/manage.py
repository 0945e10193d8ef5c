"""Day-to-day changes a reader makes from the command line: feeds removed, disabled, enabled or
edited; storylines paused, resumed, removed or edited; suggestions dismissed.

What the config declares stays declared there: a change to a config feed's or storyline's
definition is refused with the file to change (the next start would undo it). Disabling a feed
and pausing a storyline are states, not definitions: they hold for config ones too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any, TypeGuard

from sqlite_utils import Database

from worker import pipeline, store
from worker.config import FetchSettings
from worker.errors import FetchError, NotAFeed, ParseError, StorywatchError
from worker.sources.fetch import Fetcher, FetchRequest
from worker.models import Feed, feed_address
from worker.sources.parse import ParsedFeed, parse_feed
from worker.safetext import without_password


# ── feeds ────────────────────────────────────────────────────────────────────────────────────


def feed(db: Database, key: str) -> Feed:
    """The one feed `key` names (its address as `feeds list` shows it, or its name)."""
    if not key.strip():
        raise StorywatchError("no feed named: give its address or name (see storywatch feeds list)")
    found = store.feeds_matching(db, key)
    if not found and (same := known_feed(db, key)) is not None:  # HTTP://Host/feed for http://host/feed
        found = [same]
    if not found:
        raise StorywatchError(f"no feed {key!r} (see storywatch feeds list)")
    if len(found) > 1:
        given = "the address with its password" if "://" in key else "the address"
        raise StorywatchError(f"{len(found)} feeds are named {key!r}: give {given} instead (see storywatch feeds list)")
    return found[0]


def _shown(f: Feed) -> str:
    return without_password(f.url)


def _not_declared(declared: bool, what: str, config_file: Path, section: str) -> None:
    if declared:
        raise StorywatchError(f"{what} is declared in {config_file}: change its {section} entry there "
                              "(the worker reads the config when it starts)")


def _declared_feed(f: Feed) -> bool:
    """Whether the config declares the feed now (one removed from it is the reader's to keep or remove)."""
    return f.origin == "config" and f.disabled_reason != store.REMOVED_FROM_CONFIG


def _declared_storyline(row: store.StoredStoryline) -> bool:
    return row.origin == "config" and (row.active or row.paused)


def known_feed(db: Database, url: str) -> Feed | None:
    """The stored feed at this address (or the address the config gives a feed that moved),
    whatever the case of its scheme and host."""
    return store.feed_at_address(db, url)




def pollable_address(db: Database, key: str) -> str:
    """The address, as stored, of the feed `key` names (`poll --feed`): its address, as given or as
    outputs show it (a password masked: a user copies it from `feeds list`), or its name; a feed
    the reader removed is not polled."""
    f = feed(db, key)
    if f.disabled_reason == store.REMOVED_BY_YOU:
        raise StorywatchError(f"feed {without_password(f.url)} was removed: add it again with storywatch feeds add")
    return f.url

def feed_url(known: Feed | None, url: str) -> str:
    """The address a feed is stored under: a known one's, else the address as given, normalised."""
    return known.url if known is not None else feed_address(url)


def is_listed(f: Feed | None) -> TypeGuard[Feed]:
    """A known feed that is not removed (adding a removed one brings it back)."""
    return f is not None and f.disabled_reason not in store.REMOVED


def add_feed(db: Database, url: str, now: dt.datetime, *, name: str, tags: tuple[str, ...],
             interval: dt.timedelta | None, title: str) -> None:
    """Add a feed by hand (a removed one comes back with its items); `title`: its own, if read."""
    store.add_feed(db, url, now, name=name, tags=tags, interval=interval, title=title)


def import_feed(db: Database, url: str, title: str, tags: tuple[str, ...], now: dt.datetime) -> bool:
    """Add a feed of an OPML file (a removed one is brought back), named by its title unless another
    feed has that name; False when the feed is known."""
    same = known_feed(db, url)
    address = feed_url(same, url)
    name = "" if same is not None or store.name_taken(db, title) else title
    return store.add_feed(db, address, now, name=name, tags=tags, origin="opml")

def check_feed(url: str, settings: FetchSettings) -> tuple[ParsedFeed, str]:
    """Fetch the address once and read it as a feed, or say in one sentence why it is none: not
    reachable, an error status, a web page (with the feeds it advertises), not a feed. Returns
    the feed and the address it answered from (after redirects)."""
    shown = without_password(url)
    try:
        with Fetcher(pipeline.fetch_policy(settings)) as fetcher:
            fetched = fetcher.fetch(FetchRequest(url))
        return parse_feed(fetched.body, content_type=fetched.content_type, url=fetched.final_url), fetched.final_url
    except NotAFeed as exc:
        if exc.advertised:
            offered = without_password(", ".join(exc.advertised))
            raise StorywatchError(f"{shown} is a web page; it advertises {offered}",
                                  hint=f"add one of them: storywatch feeds add {without_password(exc.advertised[0])}") from None
        raise StorywatchError(f"{shown} is a web page that advertises no feed",
                              hint="--no-check adds it anyway") from None
    except (FetchError, ParseError) as exc:
        raise StorywatchError(f"{shown}: {without_password(str(exc))}", hint="--no-check adds it anyway") from None


def removable_feed(db: Database, key: str, config_file: Path) -> Feed:
    """The feed `key` names, if it may be removed here (not declared in the config, not removed)."""
    f = feed(db, key)
    _not_declared(_declared_feed(f), f"feed {_shown(f)}", config_file, "[[feeds]]")
    if f.disabled_reason == store.REMOVED_BY_YOU:
        raise StorywatchError(f"feed {_shown(f)} is removed already")
    return f


def _not_removed(f: Feed) -> None:
    if f.disabled_reason == store.REMOVED_BY_YOU:
        raise StorywatchError(f"feed {_shown(f)} is removed: add it again with storywatch feeds add")


def remove_feed(db: Database, f: Feed) -> None:
    """Stop polling a feed for good and hide it from listings; its items stay (searchable, under
    the feed's name). `feeds add` with its address brings it back."""
    store.set_feed_disabled(db, f.id, store.REMOVED_BY_YOU)


def disable_feed(db: Database, key: str) -> tuple[Feed, bool]:
    """Stop polling a feed until `enable`; False when it was disabled already."""
    f = feed(db, key)
    _not_removed(f)
    if f.disabled_reason is not None:
        return f, False
    store.set_feed_disabled(db, f.id, store.DISABLED_BY_YOU)
    return f, True


def enable_feed(db: Database, key: str) -> tuple[Feed, str | None]:
    """Poll a disabled feed again from the next cycle (whatever disabled it: the reader, a 410
    Gone, too many failures). Returns the feed and the reason it had been disabled (None: it
    was not)."""
    f = feed(db, key)
    _not_removed(f)
    if f.disabled_reason == store.REMOVED_FROM_CONFIG:
        raise StorywatchError(f"feed {_shown(f)} was removed from the config: put its [[feeds]] entry back, "
                              "or keep it here with storywatch feeds add")
    if f.disabled_reason is not None:
        store.set_feed_disabled(db, f.id, None)
    return f, f.disabled_reason


def edit_feed(db: Database, key: str, config_file: Path, **changes: Any) -> Feed:
    """Change a feed's `name`, `tags` (replaced) or `interval` (None: the default); what is not
    given stays."""
    f = feed(db, key)
    _not_declared(_declared_feed(f), f"feed {_shown(f)}", config_file, "[[feeds]]")
    _not_removed(f)
    check_name(db, changes.get("name") or "", f)
    store.set_feed_settings(db, f.id, **changes)
    return f


def check_name(db: Database, name: str, f: Feed | None = None) -> None:
    """Refuse a feed name that another feed has (its name, or its title when it has none)."""
    if store.name_taken(db, name, f.id if f else None):
        raise StorywatchError(f"a feed is named {name!r} already: choose another name (see storywatch feeds list)")


# ── storylines ───────────────────────────────────────────────────────────────────────────────


def storyline(db: Database, storyline_id: str) -> store.StoredStoryline:
    row = store.storyline_row(db, storyline_id)
    if row is None:
        raise StorywatchError(f"no storyline {storyline_id!r} (see storywatch storylines list)")
    return row


def pause_storyline(db: Database, storyline_id: str, now: dt.datetime) -> bool:
    """Stop deciding follow-ups for a storyline until `resume` (its links stay); False if paused already."""
    row = storyline(db, storyline_id)
    if row.paused:
        return False
    if not row.active:
        raise StorywatchError(f"storyline {storyline_id!r} is inactive (removed from the config or expired)")
    store.set_storyline_paused(db, storyline_id, True, now)
    return True


def resume_storyline(db: Database, storyline_id: str, now: dt.datetime) -> bool:
    """Track a paused storyline again (items that arrived meanwhile are not looked back on)."""
    if not storyline(db, storyline_id).paused:
        return False
    store.set_storyline_paused(db, storyline_id, False, now)
    return True


def removable_storyline(db: Database, storyline_id: str, config_file: Path) -> store.StoredStoryline:
    """The storyline, if it may be removed here (added from the command line, not the config)."""
    row = storyline(db, storyline_id)
    _not_declared(_declared_storyline(row), f"storyline {storyline_id!r}", config_file, "[[storylines]]")
    return row


def remove_storyline(db: Database, storyline_id: str) -> int:
    """Forget a storyline (see `removable_storyline`); returns how many follow-ups were unlinked."""
    return store.remove_storyline(db, storyline_id)


def edit_storyline(db: Database, storyline_id: str, config_file: Path, now: dt.datetime,
                   **changes: Any) -> list[str]:
    """Change a command-line storyline's definition (title, keywords, aliases, exclude,
    threshold, description): the fields given replace the stored ones. Returns the names of the
    fields that changed; the next decisions use them (earlier follow-ups stay)."""
    if not str(changes.get("title", "-")).strip():
        raise StorywatchError("a storyline's title cannot be empty")
    with store.transaction(db):  # read and written in one: an edit made meanwhile is not undone
        row = storyline(db, storyline_id)
        _not_declared(_declared_storyline(row), f"storyline {storyline_id!r}", config_file, "[[storylines]]")
        before = row.definition
        after = dataclasses.replace(before, **changes)
        store.save_storyline(db, after, now, origin=row.origin)
    return [name for name in changes if getattr(before, name) != getattr(after, name)]


def dismiss_suggestion(db: Database, suggestion_id: int) -> tuple[store.Suggested, bool]:
    """Close a suggestion for good (the same group is not suggested again). Returns it, and
    False when it was dismissed already; an adopted one can't be."""
    found = open_suggestion(db, suggestion_id, allow="dismissed")
    return found, store.dismiss_suggestion(db, suggestion_id)


def open_suggestion(db: Database, suggestion_id: int, *, allow: str = "open") -> store.Suggested:
    """Suggestion N, if it is open (or in the state `allow`): an adopted one has its storyline,
    a dismissed one is closed (adopting it would undo the dismissal)."""
    found = store.suggestion(db, suggestion_id)
    if found is None:
        raise StorywatchError(f"no suggestion #{suggestion_id} (see storywatch storylines suggest)")
    if found.status not in ("open", allow):
        adopted = f" by storyline {found.storyline_id}" if found.status == "adopted" else ""
        raise StorywatchError(f"suggestion #{suggestion_id} is {found.status}{adopted} already")
    return found
