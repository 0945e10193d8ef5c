"""Stop signals: SIGTERM and SIGINT end a command's work cleanly (the daemon, `run --once`,
`poll`, `backfill`, `digest --send`). Apart from the scheduler, so that a one-shot command does
not import it."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    from worker.pipeline import Runtime


class StopSignals:
    """SIGTERM and SIGINT set every event given (main thread only); `signum` is the first one
    received, None while none has come."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events
        self.signum: int | None = None
        self._before = {signum: signal.signal(signum, self._stop) for signum in (signal.SIGTERM, signal.SIGINT)}

    def restore(self) -> None:
        """The handlers from before, for a command that handles the signals for a while only."""
        for signum, handler in self._before.items():
            signal.signal(signum, handler)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        logger.info("Stopping on {signal}: finishing the writes in flight", signal=signal.Signals(signum).name)
        for event in self.events:
            event.set()


def handle_stop_signals(rt: Runtime) -> StopSignals:
    """SIGTERM/SIGINT: stop starting work and cut in-flight fetches short (main thread only)."""
    return StopSignals(rt.stop, rt.fetcher.abort)
