"""A backfill's progress line and its summary."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TextIO

from loguru import logger

from worker.models import plural

if TYPE_CHECKING:
    from worker.backfill import Step as BackfillStep
    from worker.backfill import Summary as BackfillSummary


class Progress:
    """Backfill progress: a bar with counts, rate and ETA on a terminal, else a log line every
    few seconds (journald and pipes get no carriage returns)."""

    EVERY = 5.0  # seconds between log lines

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.terminal = stream.isatty()
        self.phase = ""
        self.started = self.last = time.monotonic()
        self.width = 0  # of the line on the terminal, to blank what a shorter one leaves

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.terminal and self.phase:
            self.stream.write("\n")
            self.stream.flush()

    def update(self, step: BackfillStep) -> None:
        now = time.monotonic()
        if step.phase != self.phase:  # a phase's clock starts with its first step (at zero)
            if self.terminal and self.phase:
                self.stream.write("\n")
            self.phase, self.started, self.last, self.width = step.phase, now, 0.0, 0
        if not self.terminal and now - self.last < self.EVERY and step.done < step.total:
            return
        self.last = now
        line = progress_line(step, now - self.started)
        if self.terminal:
            self.stream.write("\r" + line.ljust(self.width))
            self.stream.flush()
            self.width = len(line)
        else:
            logger.info("Backfill: {line}", line=line)


def progress_line(step: BackfillStep, seconds: float) -> str:
    """The bar, the counts (the summary's numbers: sources read and failed, entries; items, those
    already stored), then the rate and the time left once something is done to tell them by."""
    width = 30
    filled = min(int(width * step.done / step.total), width) if step.total else width
    if step.phase == "read":
        counts = f"{step.read:,}/{step.total:,} sources read"
        counts += f", {step.failed:,} failed" if step.failed else ""
        counts += f", {plural(step.entries, 'entry', 'entries')}"
        count, unit = step.entries, "entries"
    else:
        counts = f"{step.done:,}/{step.total:,} items loaded"
        counts += f", {step.already_stored:,} already stored" if step.already_stored else ""
        count, unit = step.done, "items"
    line = f"[{'#' * filled}{'.' * (width - filled)}] {counts}"
    if seconds > 0 and count > 0:
        line += f", {count / seconds:,.0f} {unit}/s"
    if seconds > 0 and 0 < step.done < step.total:  # the rest at the pace so far
        line += f", ETA {_duration(seconds * (step.total - step.done) / step.done)}"
    return line


def _duration(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour."""
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def render_backfill(summary: BackfillSummary, dry_run: bool) -> str:
    lines = [f"{'Dry run: ' if dry_run else ''}{plural(summary.sources_read, 'source')} read, {plural(summary.entries, 'entry', 'entries')} "
             f"in {summary.seconds:.1f} s"]
    if not dry_run:
        lines += [f"  new items        {summary.items_new:,}",
                  f"  exact copies     {summary.exact_copies:,}",
                  f"  near-duplicates  {summary.near_duplicates:,}",
                  f"  revisions        {summary.revisions:,}",
                  f"  already stored   {summary.already_stored:,}"]
    if summary.outside_period:
        lines.append(f"  outside the period  {summary.outside_period:,}")
    if summary.followups:
        lines.append("Follow-ups: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.followups.items())))
    if summary.interrupted:
        lines += _interrupted_backfill(summary, dry_run)
    if summary.sources_failed:
        lines.append(f"Failed ({len(summary.sources_failed)}):")
        lines += [f"  {source}: {why}" for source, why in sorted(summary.sources_failed.items())]
    if summary.warnings:
        lines.append(f"Warnings ({len(summary.warnings)}):")
        lines += [f"  {w}" for w in summary.warnings[:20]]
        if len(summary.warnings) > 20:
            lines.append(f"  … and {len(summary.warnings) - 20} more (--json lists all)")
    return "\n".join(lines)


def _interrupted_backfill(summary: BackfillSummary, dry_run: bool) -> list[str]:
    """What a stopped backfill left undone, and how to finish it."""
    unread = len(summary.sources_not_read)
    left = [f"{unread} source{'' if unread == 1 else 's'} not read"]
    if not dry_run:
        left.insert(0, f"{summary.items_not_stored:,} items not stored")
    lines = [f"Interrupted: {', '.join(left)} (run the same command again to load the rest)"]
    if unread:
        lines.append(f"Not read ({unread}):")
        lines += [f"  {source}" for source in sorted(summary.sources_not_read)]
    return lines
