"""Logging: one configured stream, plain or JSON, with stdlib loggers routed into it."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pytest
from loguru import logger

from worker.log import configure_logging


def test_plain_lines_without_colour_when_not_a_terminal() -> None:
    out = io.StringIO()
    configure_logging("INFO", stream=out)
    logger.info("Feed not modified: {url}", url="https://example.org/feed")
    logger.debug("hidden at INFO")
    assert out.getvalue() == "INFO    Feed not modified: https://example.org/feed\n"


def test_json_lines_carry_named_fields() -> None:
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    logger.warning("Feed failed: {url}", url="https://example.org/feed", status=503)
    record = json.loads(out.getvalue())["record"]
    assert record["message"] == "Feed failed: https://example.org/feed"
    assert record["level"]["name"] == "WARNING"
    assert record["extra"] == {"url": "https://example.org/feed", "status": 503}


def test_stdlib_logging_is_routed_into_the_same_stream() -> None:
    out = io.StringIO()
    configure_logging("INFO", stream=out)
    logging.getLogger("apscheduler.scheduler").warning("Run time of job was missed by %s", "0:05:00")
    assert "WARNING apscheduler.scheduler: Run time of job was missed by 0:05:00" in out.getvalue()


def test_reconfiguring_replaces_only_our_own_sink(log_records: list[dict[str, object]]) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", stream=first)
    configure_logging("INFO", stream=second)
    logger.info("Cycle finished: {feeds} feeds", feeds=3)
    assert first.getvalue() == "" and "Cycle finished: 3 feeds" in second.getvalue()
    assert {"level": "INFO", "message": "Cycle finished: 3 feeds", "feeds": 3} in log_records


def test_lines_to_the_journal_carry_their_syslog_priority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # systemd names the journal stream it gave stderr in $JOURNAL_STREAM ("device:inode").
    with (tmp_path / "journal").open("w+") as out:
        info = os.fstat(out.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        configure_logging("INFO", stream=out)
        logger.info("Cycle finished: {summary}", summary="3 feeds")
        logger.warning("Feed failed: {url}", url="https://example.org/feed")
        monkeypatch.setenv("JOURNAL_STREAM", "1:2")  # another stream: plain lines
        configure_logging("INFO", stream=out)
        logger.error("Cannot store")
        out.seek(0)
        assert out.read() == ("<6>INFO    Cycle finished: 3 feeds\n<4>WARNING Feed failed: https://example.org/feed\n"
                              "ERROR   Cannot store\n")
