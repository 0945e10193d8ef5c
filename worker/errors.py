"""The project's errors: one small tree, so callers catch what they can act on.

    StorywatchError            a message a user can act on, plus an optional hint
    ├── ConfigError            the config file: missing, invalid TOML, unknown key, wrong type,
    │                          bad value, missing secret
    ├── StoreError             the database cannot be opened, is not ours, or is too new
    ├── SeedError              a seed document or seeds.toml is missing or malformed
    ├── FetchError             a feed could not be fetched; `kind` says why (dns, connect, tls,
    │   │                      timeout, http, too_large, redirect, blocked, protocol, encoding)
    │   ├── RateLimited        429/503 with Retry-After: wait until `retry_after`, not an error
    │   └── FeedGone           410: the publisher removed the feed; it is disabled
    ├── ParseError             the body is not a feed that can be read
    │   └── NotAFeed           an HTML page (or other document) instead of a feed
    └── DeliveryError          a digest could not be written or mailed; `kind` says why

The CLI turns any StorywatchError into one sentence on stderr and a non-zero exit;
tracebacks never reach users for errors they can cause. Every exit status of every command is
an `ExitStatus` (the README's table lists them).
"""

from __future__ import annotations

import datetime as dt
import enum
import signal


class ExitStatus(enum.IntEnum):
    """What a command's exit status says: 0 only when everything asked for was done."""

    OK = 0  # everything asked for was done (a feed that answered 304 is done)
    ERROR = 1  # an error you can fix (config, store, unknown feed); `health`: unhealthy
    USAGE = 2  # a bad option or argument (click's own status)
    FAILED = 3  # feeds or sources asked for failed; the others were done and stored
    INTERRUPTED = 128 + signal.SIGINT  # 130: Ctrl-C stopped it; what was done is kept
    TERMINATED = 128 + signal.SIGTERM  # 143: SIGTERM stopped it; what was done is kept

    @classmethod
    def stopped_by(cls, signum: int | None) -> ExitStatus:
        """The status of a command stopped by a signal (SIGINT when not known)."""
        return cls.TERMINATED if signum == signal.SIGTERM else cls.INTERRUPTED


class StorywatchError(Exception):
    """Base class: `str(error)` is a complete sentence; `hint` says what to do about it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(StorywatchError):
    """The configuration cannot be used as written."""


class StoreError(StorywatchError):
    """The SQLite store cannot be opened or used."""


class SeedError(StorywatchError):
    """A seed document or its description is missing or malformed."""


class FetchError(StorywatchError):
    """A feed could not be fetched. `kind` groups causes for backoff, metrics and status."""

    def __init__(self, message: str, *, url: str, kind: str, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.url = url
        self.kind = kind
        self.status = status


class RateLimited(FetchError):
    """The server asked us to come back later (429 or 503 with Retry-After)."""

    def __init__(self, message: str, *, url: str, status: int, retry_after: dt.datetime) -> None:
        super().__init__(message, url=url, kind="rate_limited", status=status)
        self.retry_after = retry_after


class FeedGone(FetchError):
    """410 Gone: the feed was removed on purpose."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message, url=url, kind="gone", status=410)


class ParseError(StorywatchError):
    """The body could not be read as a feed."""


class NotAFeed(ParseError):
    """A web page (or other document) came back instead of a feed."""

    def __init__(self, message: str, *, advertised: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.advertised = advertised


class DeliveryError(StorywatchError):
    """A digest could not be written (kind "file") or sent (connect, timeout, tls, auth, refused)."""

    def __init__(self, message: str, *, kind: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind
