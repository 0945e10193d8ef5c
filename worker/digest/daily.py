"""The daily digest job: which period is due, writing it, and emailing it exactly once.

Each local day has at most one digest (a row in `digests`, a file `digests/YYYY-MM-DD.md`). It
covers from the end of the previous one (the beginning of the store, for the first) to the
moment it was written, so no item is left out or shown twice however long the worker was
stopped; a follow-up decided after its item's digest is listed once, under "Found later", in the
digest whose period holds the decision (see `digest`). A digest to email is "pending" until sent;
a failure is retried with backoff; one left "sending" by a killed worker becomes "unconfirmed" and
is only sent again on request, unless it was killed before handing the message over (the send's
phase, recorded in the store, says so): then it was not sent, and is sent again. Every send of a
day's digest carries the same Message-ID (`digest_message_id`), so a resend of a digest that did
arrive is recognised as a copy by mail systems.

A recorded digest keeps the data it was rendered from (`snapshot`): written again, sent or
resent later, it is the digest of that day, byte for byte, whatever was stored, marked or
changed since. No digest is recorded before the store's first poll cycle: until then it would
only show the seeds, and lock that in as the day's digest. Nor is the first one before a feed
has answered, unless a digest time has come since the first poll (it then says which feeds fail).
"""

from __future__ import annotations

import datetime as dt
import shlex
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from loguru import logger
from sqlite_utils import Database

from worker import digest, snapshot, store
from worker.digest import atom, deliver
from worker.clock import from_iso, to_iso
from worker.config import Settings
from worker.ingest.dedupe import Clutter
from worker.errors import DeliveryError, StorywatchError
from worker.models import plural

RETRY_FIRST, RETRY_MAX = dt.timedelta(minutes=5), dt.timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class DigestOutcome:
    data: digest.DigestData
    files: tuple[Path, ...]
    sent: bool = False
    error: str | None = None


def collect(db: Database, settings: Settings, period: digest.Period, *, initial: bool = False,
            include_backfill: bool = False) -> digest.DigestData:
    """What the digest of `period` shows (leads are taken from text without the configured clutter);
    the recorded digest of that day and period, as it was written."""
    if not include_backfill and (kept := kept_digest(db, period)) is not None:
        return kept
    return digest.collect(db, period, settings.digest, initial=initial, include_backfill=include_backfill,
                          clutter=Clutter.compile(settings.dedupe.clutter_patterns),
                          command=digest.command_for(settings.source))


def kept_digest(db: Database, period: digest.Period) -> digest.DigestData | None:
    """The data the recorded digest of `period` was rendered from, if it is kept."""
    row = store.digest_row(db, period.day)
    if row is None or not row["snapshot"] or (row["period_start"], row["period_end"]) != (to_iso(period.start),
                                                                                          to_iso(period.end)):
        return None
    try:
        return snapshot.loads(digest.DigestData, row["snapshot"])
    except ValueError as exc:  # written by a version whose digest had another shape
        logger.warning("The kept digest of {day} cannot be read back ({error}); it is made again from the store",
                       day=row["day"], error=str(exc))
        return None


def write_digest(
    db: Database, settings: Settings, period: digest.Period, *, initial: bool = False,
    include_backfill: bool = False, output_dir: Path | None = None, html: bool | None = None, stem: str | None = None,
) -> DigestOutcome:
    """Collect, render and write the digest of `period` (Markdown, and HTML when asked) to
    `stem`.md (default: the day's file, YYYY-MM-DD.md)."""
    data = collect(db, settings, period, initial=initial, include_backfill=include_backfill)
    folder = output_dir or settings.digest.output_dir
    stem = stem or f"{period.day:%Y-%m-%d}"
    files = [folder / f"{stem}.md"]
    deliver.write_atomically(files[0], digest.render_markdown(data))
    if settings.digest.html if html is None else html:
        files.append(folder / f"{stem}.html")
        deliver.write_atomically(files[1], digest.render_html(data))
    logger.info("Digest written: {path}: {new}, {followups}, {late} found later", path=str(files[0]),
                new=plural(data.new_items, "new item"), followups=plural(data.followups, "follow-up"),
                late=data.late_followups)
    return DigestOutcome(data, tuple(files))


def period_stem(period: digest.Period) -> str:
    """The file name of a digest of any period (--since/--until): never a day's digest file,
    which holds the day's kept digest."""
    zone = digest.zone_of(period.zone)
    start = "start" if period.start == digest.EPOCH else f"{period.start.astimezone(zone):%Y-%m-%d}"
    return f"{start}_to_{period.end.astimezone(zone):%Y-%m-%d}"


@dataclass(frozen=True, slots=True)
class DueDigest:
    """The digest of the day a `storywatch digest` without a period means."""

    period: digest.Period
    initial: bool  # the first digest: everything stored so far
    recorded: bool  # already written once: regenerate it as it was
    preview: bool  # not due yet (before the digest time): written, not recorded
    unpolled: bool = False  # no poll cycle yet: written, not recorded (it would hold only the seeds)

    @property
    def to_write(self) -> bool:
        """Due and not written yet: the daily job writes and records it now."""
        return not (self.recorded or self.preview or self.unpolled)


def due_digest(db: Database, settings: Settings, now: dt.datetime) -> DueDigest:
    """Today's digest: the recorded one, the one due now (since the last digest), or, before the
    digest time or the store's first poll cycle, a preview of it."""
    zone = digest.zone_of(settings.digest.timezone)
    today = now.astimezone(zone).date()
    if row := store.digest_row(db, today):
        return DueDigest(_recorded_period(row, zone), row["period_start"] == to_iso(digest.EPOCH), True, False)
    last = store.last_digest(db)
    period = digest.Period(from_iso(last["period_end"]) if last else digest.EPOCH, now, today, zone.key)
    digest_time = digest.day_period(today, settings.digest.time, zone).end
    # The first digest comes once a feed has answered; if none answers (no network, or no feed
    # yet, at the first start), it comes at the first digest time after the first poll, and says
    # which feeds fail.
    first = store.first_cycle_at(db)
    waiting = not store.has_answered(db) and (first is None or last is None and not first < digest_time <= now)
    return DueDigest(period, last is None, False, not (last is None or now >= digest_time), unpolled=waiting)


def _recorded_period(row: dict[str, Any], zone: ZoneInfo) -> digest.Period:
    return digest.Period(from_iso(row["period_start"]), from_iso(row["period_end"]),
                         dt.date.fromisoformat(row["day"]), zone.key)


def record_digest(db: Database, settings: Settings, outcome: DigestOutcome, now: dt.datetime) -> None:
    """Make a written digest the day's digest: the next one starts where it ends; it is emailed
    once if email is on."""
    p = outcome.data.period
    store.record_digest(db, p.day, p.start, p.end, str(outcome.files[0]), now, to_send=settings.email.enabled,
                        snapshot=snapshot.dumps(outcome.data))


def day_digest_period(db: Database, settings: Settings, day: dt.date) -> tuple[digest.Period, bool]:
    """The period of `day`'s digest: as recorded if it was written, else the day before its digest time."""
    zone = digest.zone_of(settings.digest.timezone)
    if row := store.digest_row(db, day):
        return _recorded_period(row, zone), row["period_start"] == to_iso(digest.EPOCH)
    return digest.day_period(day, settings.digest.time, zone), False


def recorded_message_id(db: Database, settings: Settings, day: dt.date) -> str | None:
    """The Message-ID of the day's digest as it is recorded (sent with it), or None when the day has
    no recorded digest (a preview gets a new one)."""
    return digest_message_id(db, settings, day) if store.digest_row(db, day) is not None else None


def digest_message_id(db: Database, settings: Settings, day: dt.date) -> str:
    """The Message-ID of the digest of `day`: the same on every send of it, whoever it goes to
    (one day, one message), and different for every other day and every other store."""
    return deliver.stable_message_id(store.identity_key(db), f"digest.{day:%Y-%m-%d}", settings.email.from_addr)


def digest_message(
    settings: Settings, data: digest.DigestData, now: dt.datetime, *, message_id: str | None = None
) -> EmailMessage:
    """The digest as one email; `message_id`: the day's (`digest_message_id`), else a new random one."""
    email = settings.email
    return deliver.build_message(email, subject=digest.subject(data, email.subject_prefix), text=digest.render_text(data),
                                 html=digest.render_html(data), date=now, message_id=message_id)


def send_digest(db: Database, settings: Settings, data: digest.DigestData, now: dt.datetime, *, resend: bool = False,
                stop: threading.Event | None = None) -> None:
    """Send the recorded digest of `data.period.day` once: a sent (or maybe sent) one needs `resend`.
    `stop` set cuts the send short at once (see deliver.send_message)."""
    day = data.period.day
    row = store.digest_row(db, day)
    if row is None:
        raise StorywatchError(f"there is no digest of {day} to send",
                              hint="only the daily digests are sent: run `storywatch digest` (no period) first")
    # Built before the claim: a failure to build it leaves nothing "sending".
    message = digest_message(settings, data, now, message_id=digest_message_id(db, settings, day))
    if not store.claim_digest(db, day, now, resend=resend):
        if (sender := store.digest_sender(db, day, now)) is not None:
            raise StorywatchError(f"the digest of {day} is being sent right now (by process {sender})")
        row = store.digest_state(db, day, now) or row
        done = ("was already sent" if row["status"] == "sent"
                else "may have been sent (its sending was cut short before the server confirmed it)")
        raise StorywatchError(f"the digest of {day} {done}", hint="add --resend to send it again")
    resend_of = (store.digest_row(db, day) or row)["resend_of"]  # a resend of a sent or unconfirmed digest
    try:
        deliver.send_message(settings.email, message, stop=stop,
                             handing_over=lambda: store.mark_send_phase(db, day, "data"))
    except DeliveryError as exc:
        _record_failure(db, settings, day, exc, now, resend_of=bool(resend_of), attempts=row["attempts"] + 1)
        raise
    store.mark_digest(db, day, "sent", now, recipients=settings.email.to)
    logger.info("Digest of {day} sent to {n}", day=str(day), n=plural(len(settings.email.to), "recipient"))



def _record_failure(db: Database, settings: Settings, day: dt.date, exc: DeliveryError, now: dt.datetime, *,
                    resend_of: bool, attempts: int) -> None:
    """Record what a failed send means for the digest (and raise for a resend, which keeps its
    record): unconfirmed (never sent again unasked), pending (stopped before it was handed
    over: the next cycle sends it), or failed (retried with backoff)."""
    if resend_of:  # the digest keeps its record: sent (or unconfirmed) before, plus this error
        status = store.end_resend(db, day, str(exc))
        logger.warning("Digest of {day} not sent again: {error}; it stays {status}", day=str(day), error=str(exc),
                       status=status)
        raise DeliveryError(exc.message, kind=exc.kind, hint=f"the digest of {day} stays {status}") from None
    if exc.kind == "unconfirmed":
        store.mark_digest(db, day, "unconfirmed", now, error=str(exc))
        logger.warning("Digest of {day} unconfirmed: {error}; to send it again, run: {command}",
                       day=str(day), error=str(exc), command=_resend(settings, day))
    elif exc.kind == "stopped":  # it was not sent: the next cycle sends it, no backoff
        store.mark_digest(db, day, "pending", now, error=str(exc))
        logger.info("Digest of {day} not sent: {error}", day=str(day), error=str(exc))
    else:
        retry = now + min(RETRY_FIRST * 2 ** (attempts - 1), RETRY_MAX)
        store.mark_digest(db, day, "failed", now, error=str(exc), retry_at=retry)
        logger.warning("Digest of {day} not sent ({attempts} tries), retrying at {retry:%H:%M}: {error}",
                       day=str(day), attempts=attempts, retry=retry, error=str(exc))

def resend_command(day: dt.date, config: Path | None = None) -> str:
    """The command that sends the digest of `day` again (naming `config`, the --config given)."""
    option = f" --config {shlex.quote(str(config))}" if config else ""
    return f"storywatch{option} digest --date {day:%Y-%m-%d} --send --resend"


def _resend(settings: Settings, day: dt.date) -> str:
    """The resend command for a log line: with the config file the worker read (absolute, as a
    service's working folder is not the reader's)."""
    return resend_command(day, settings.source.resolve() if settings.source else None)


def scheduled_digest(db: Database, settings: Settings, now: dt.datetime, *,
                     stop: threading.Event | None = None) -> DigestOutcome | None:
    """The daily job, and the check every cycle: write today's digest once it is due, then email
    the digests waiting to be sent whose (re)try time has come.

    A digest left "sending" by a worker that died once the message may have been handed over is
    never sent again on its own: it may have arrived, and a digest must not be sent twice. Unsent
    ones (one whose sender died before handing it over included) are retried. `stop` set
    cuts a send short and sends no more.
    """
    for day, status in store.mark_interrupted_digests(db, now).items():
        if status == "unconfirmed":
            logger.warning("Digest of {day} unconfirmed: the worker stopped while sending it, after handing the message "
                           "over, so it may or may not have arrived; it is not sent again by itself. To send it again: "
                           "{command}",
                           day=str(day), command=_resend(settings, day))
        else:
            logger.info("Digest of {day} not sent: the worker stopped before handing it over; it is sent again",
                        day=str(day))
    due, outcome = due_digest(db, settings, now), None
    if due.to_write:
        outcome = write_digest(db, settings, due.period, initial=due.initial)
        record_digest(db, settings, outcome, now)
    if settings.email.enabled:
        with store.patiently(db):  # even when stopping: a digest the mail server accepted must be recorded sent
            _send_pending(db, settings, now, stop)
    return outcome


def _send_pending(db: Database, settings: Settings, now: dt.datetime, stop: threading.Event | None) -> None:
    zone = digest.zone_of(settings.digest.timezone)
    for row in store.digests_to_retry(db, now):
        if stop is not None and stop.is_set():
            return
        data = collect(db, settings, _recorded_period(row, zone), initial=row["period_start"] == to_iso(digest.EPOCH))
        try:
            send_digest(db, settings, data, now, stop=stop)
        except StorywatchError:
            pass  # recorded on the digest row and logged; retried later


def write_atom_feeds(db: Database, settings: Settings, now: dt.datetime) -> list[Path]:
    """Each storyline's timeline as an Atom feed beside the digests (the [digest] atom setting);
    a file is only rewritten when its feed changed. Returns the files written."""
    written = []
    for storyline in store.active_storylines(db):
        path = settings.digest.output_dir / f"{storyline.id}.atom"
        text = atom.storyline_feed(storyline, store.storyline_timeline(db, storyline.id), now)
        if not _holds(path, text):
            deliver.write_atomically(path, text)
            written.append(path)
    return written


def _holds(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        return False
