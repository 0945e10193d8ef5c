"""`python -m bench.oneshot ARGS…` runs `storywatch ARGS…` as a user would, except that the
benchmark farm's made-up host names (*.bench) resolve to 127.0.0.1, so no query leaves the machine."""

from __future__ import annotations

import socket
from typing import Any

_getaddrinfo = socket.getaddrinfo


def _farm_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(host, str) and host.endswith(".bench"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


if __name__ == "__main__":
    socket.getaddrinfo = _farm_getaddrinfo
    from worker.cli import main

    main()
