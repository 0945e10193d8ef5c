"""What a poll's outcome makes of a feed's state (its row in the store): the validators for a
conditional GET, the next poll time, the count of errors in a row, whether the publisher removed
it. Pure: the caller reads the feed's cadence from the store, and writes the state back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import NamedTuple, Protocol

from worker import polling
from worker.errors import FeedGone, FetchError, ParseError, RateLimited, StorywatchError
from worker.models import Feed
from worker.safetext import one_line, without_password
from worker.sources.fetch import Fetched


class FeedSays(Protocol):
    """What a parsed feed says of itself."""

    @property
    def title(self) -> str: ...
    @property
    def site_url(self) -> str | None: ...
    @property
    def ttl(self) -> dt.timedelta | None: ...


def after_success(feed: Feed, fetched: Fetched, parsed: FeedSays | None, policy: str, cadence: polling.Cadence,
                  now: dt.datetime, *, keeps_disabled: bool) -> dict[str, object]:
    """The state of a feed that answered (new content, or 304). `keeps_disabled`: the reader
    disabled or removed it, which an answer does not undo (a gone feed that answers is back)."""
    state: dict[str, object] = {
        "etag": fetched.etag, "last_modified": fetched.last_modified, "body_sha256": fetched.body_sha256,
        "last_polled_at": now, "last_success_at": now, "last_status": fetched.status,
        "error_count": 0, "last_error": None, "retry_after": None, "identity_policy": policy,
        "next_poll_at": polling.after_success(now, cadence, ttl=parsed.ttl if parsed else None, max_age=fetched.max_age),
    }
    if feed.disabled_reason and not keeps_disabled:
        state["disabled_reason"] = None
    if fetched.origin_public is not None:
        state["public_origin"] = int(fetched.origin_public)
    if parsed is not None:
        state["title"] = parsed.title or feed.title
        state["site_url"] = parsed.site_url
    return state


class Failure(NamedTuple):
    """A failed poll: its outcome, what the fetch log records, and the feed's new state."""

    outcome: str  # "rate_limited", "gone" or "error"
    kind: str  # the fetch log's kind: the fetch error's, "parse" or "internal"
    status: int | None
    said: str  # the server's own words, passwords masked
    message: str  # the whole error, passwords masked: the feed's last error
    state: dict[str, object]


def after_failure(feed: Feed, error: StorywatchError, cadence: Callable[[], polling.Cadence],
                  now: dt.datetime) -> Failure:
    """The state of a feed whose poll failed: a rate limit waits as asked, a feed the publisher
    removed is disabled, other errors back off (`cadence`, asked only when needed: it reads the
    store)."""
    status = error.status if isinstance(error, FetchError) else None
    kind = error.kind if isinstance(error, FetchError) else ("parse" if isinstance(error, ParseError) else "internal")
    state: dict[str, object] = {"last_polled_at": now, "last_status": status}
    # A server's words, shown on terminals; the feed's URL in them may hold its password.
    said, message = without_password(one_line(error.message)), without_password(one_line(str(error)))
    if isinstance(error, RateLimited):
        outcome = "rate_limited"
        state |= {"retry_after": error.retry_after,
                  "next_poll_at": polling.after_rate_limit(now, cadence(), error.retry_after)}
    elif isinstance(error, FeedGone):
        outcome = "gone"
        state |= {"disabled_reason": f"gone: {said} ({now:%Y-%m-%d})", "next_poll_at": None, "last_error": said}
    else:
        outcome = "error"
        errors = feed.error_count + 1
        state |= {"error_count": errors, "last_error": message,
                  "next_poll_at": polling.after_error(now, cadence(), errors)}
    return Failure(outcome, kind, status, said, message, state)
