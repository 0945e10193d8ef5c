"""`python -m bench.reader_peer DB URLS_FILE WORKERS`: reader, a peer feed reader, updates the
farm's feeds once (cold), as bench_poll's peer. Prints one JSON line: the seconds update_feeds
took and the process's peak RSS. Run with an interpreter that has reader installed
($STORYWATCH_BENCH_READER, else this one if it can import reader); the farm's *.bench names
resolve to 127.0.0.1 as in bench.oneshot."""

from __future__ import annotations

import json
import resource
import socket
import sys
import time
from pathlib import Path

from bench.oneshot import _farm_getaddrinfo


def main(db: str, urls_file: str, workers: int) -> None:
    from reader import make_reader  # type: ignore[import-not-found]

    socket.getaddrinfo = _farm_getaddrinfo
    reader = make_reader(db)
    for url in Path(urls_file).read_text(encoding="utf-8").split():
        reader.add_feed(url)
    started = time.perf_counter()
    reader.update_feeds(workers=workers)
    seconds = time.perf_counter() - started
    entries = reader.get_entry_counts().total
    print(json.dumps({"seconds": seconds, "entries": entries,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
