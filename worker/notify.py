"""systemd's notify protocol (`Type=notify`), in the few lines it takes.

systemd passes the address of a Unix datagram socket in $NOTIFY_SOCKET (a path, or an abstract
name written with a leading '@'); each message is one datagram of `KEY=value` lines. The worker
sends READY=1 once the store is open and the scheduler runs, WATCHDOG=1 from its polling loop,
STATUS=… after each cycle and STOPPING=1 on shutdown. Without $NOTIFY_SOCKET (a terminal, cron,
tests) every call does nothing; a message that cannot be sent is logged, never raised.
"""

from __future__ import annotations

import os
import socket

from loguru import logger


def notify(*lines: str) -> bool:
    """Send `lines` ("READY=1", "STATUS=…") as one datagram; False when there is no socket."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    if address[0] == "@":  # abstract namespace: a leading NUL byte instead of '@'
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(lines).encode("utf-8"), address)
    except OSError as exc:
        logger.warning("Cannot notify systemd ({lines}): {error}", lines=", ".join(lines), error=str(exc))
        return False
    return True


def ready(status: str = "") -> bool:
    return notify("READY=1", *([f"STATUS={status}"] if status else []))


def stopping() -> bool:
    return notify("STOPPING=1")


def status(text: str) -> bool:
    return notify(f"STATUS={text}")


def watchdog() -> bool:
    """The worker is alive and making progress (only sent when systemd's watchdog is on)."""
    return notify("WATCHDOG=1") if watchdog_interval() is not None else False


def watchdog_interval() -> float | None:
    """Seconds between two WATCHDOG=1 pings, half of WatchdogSec=; None when it is off.

    systemd sets $WATCHDOG_USEC (and $WATCHDOG_PID: the process it watches, when set).
    """
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2e6
