"""The digest by email, exactly once, against a real SMTP server on 127.0.0.1 (aiosmtpd).

Failures (connection refused, a server that never answers, a rejected login) leave the digest
'failed' with its error and a retry time that backs off; a later retry sends it once. A send cut
short by a killed process leaves it 'sending', which becomes 'unconfirmed' and is never sent again
by itself; `status`, `health` and the metrics say so, with the command that sends it again. Every
send of a day's digest carries one Message-ID, the same on a resend, another for every other day
and every other store. No traffic leaves 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_string, policy
from email.utils import format_datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from worker import digest, report, store
from worker.digest import daily, deliver
from worker.cli import cli
from worker.clock import to_iso, utc_now
from worker.store.connection import STOPPING_LOCK_WAIT
from worker.config import Settings, load_settings
from tests.conftest import PROJECT, Cli
from tests.digeststore import DAY, END, Built, build, write_config
from tests.feedserver import FeedServer, Reply, free_port, rss
from tests.smtpserver import MSG_ID, HangingServer, SMTPServer, self_signed

T0 = END + dt.timedelta(minutes=1)  # the worker's digest job, a minute after 07:00 Berlin
PASSWORD_ENV = "STORYWATCH_TEST_DIGEST_PASSWORD"


def minutes(n: float) -> dt.timedelta:
    return dt.timedelta(minutes=n)


def row(db: object, day: dt.date = DAY) -> dict[str, object]:
    found = store.digest_row(db, day)  # type: ignore[arg-type]
    assert found is not None
    return found


def reload(built: Built, **config: object) -> Settings:
    """The config file rewritten (the operator fixed it) and read again, as the worker would."""
    return load_settings(write_config(built.config.parent, **config))


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.connected = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(conn)
            self.connected.set()

    def close(self) -> None:
        self.listener.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def sending(built: Built, *args: str) -> subprocess.Popen[str]:
    """`storywatch digest --send --date 2026-11-23` (and `args`) as a real process."""
    return subprocess.Popen([sys.executable, "-m", "worker", "--config", str(built.config), "digest", "--send",
                             "--date", "2026-11-23", *args], cwd=PROJECT, env={**os.environ},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stopped(process: subprocess.Popen[str], server: HangingServer, signum: int) -> tuple[float, str]:
    """Once `server` went silent, send `signum` to `process`: how long it took to end, and what
    it wrote to stderr."""
    try:
        assert server.stalled.wait(60), "the sending process never reached the stage"
        started = time.monotonic()
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
        return time.monotonic() - started, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def killed_while_sending(built: Built, server: HangingServer, *args: str) -> None:
    """What a sender killed mid-send leaves in the store: a real process sends the digest of DAY,
    the server goes silent at its stage, and the process is killed (SIGKILL)."""
    sender = sending(built, *args)
    try:
        assert server.stalled.wait(60), "the sending process never reached the stage"
    finally:
        sender.kill()
        sender.communicate(timeout=30)
    assert row(built.db)["status"] == "sending"


def record(built: Built) -> None:
    """Write the day's digest and record it, to be sent."""
    daily.record_digest(built.db, built.settings, daily.write_digest(built.db, built.settings, built.period), T0)


def record_cycle(built: Built) -> None:
    """A polling cycle that just finished: `health` then judges the digests alone."""
    finished = utc_now()
    store.record_cycle(built.db, finished, finished, 1.5, interval=60.0, feeds=5, new_items=2, followups=0, errors=0)


def returned(call: Callable[[], object]) -> None:
    """Run `call` in a thread of its own: it must return (a generous minute: a send's deadline
    in these tests is 4 s), else the test fails instead of hanging."""
    runner = threading.Thread(target=call, daemon=True)
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), "the send never ended"


@pytest.fixture
def handed_over() -> Iterator[HangingServer]:
    """A server that takes the whole message and never confirms it: a sender killed then leaves a
    digest that may have arrived."""
    with HangingServer("message") as server:
        yield server


# ── one message, exactly once ─────────────────────────────────────────────────────────────


def test_the_scheduled_digest_is_emailed_once_as_text_and_html(tmp_path: Path) -> None:
    with SMTPServer() as server:
        built = build(tmp_path, smtp_port=server.port)
        outcome = daily.scheduled_digest(built.db, built.settings, T0)
        assert outcome is not None
        (got,) = server.received
        assert got.sender == "digest@storywatch.example"
        assert got.recipients == ["reader@example.org", "editor@example.org"]
        msg = got.message
        assert msg["Subject"] == "[storywatch] 2026-11-23: 3 follow-ups in 2 storylines, 1 found later, 8 new items"
        assert msg["From"] == "Storywatch <digest@storywatch.example>"
        assert msg["To"] == "reader@example.org, editor@example.org"
        assert msg["Date"] == "Mon, 23 Nov 2026 06:01:00 +0000" == format_datetime(T0)
        assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@storywatch.example>")
        assert msg["Auto-Submitted"] == "auto-generated"
        assert msg.get_content_type() == "multipart/alternative"
        parts = list(msg.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        assert all(p.get_content_charset() == "utf-8" for p in parts)
        plain, html = (p.get_content().replace("\r\n", "\n") for p in parts)  # lines end in CRLF on the wire
        # The same content in both parts: the text form of the digest and the HTML file as written.
        assert plain == digest.render_text(outcome.data)
        assert html == outcome.files[1].read_text(encoding="utf-8")
        for url in ("https://koreawire.example/closing", "https://pyongyangtimes.example/treaty",
                    "https://koreawire.example/other-4"):
            assert f"<{url}>" in plain and f'<a href="{url}" rel="noopener noreferrer nofollow">' in html
        assert plain.startswith("Digest for Monday 23 November 2026\n") and "<h1>Digest for Monday 23 November 2026</h1>" in html
        sent = row(built.db)
        assert (sent["status"], sent["attempts"], sent["error"], sent["next_attempt_at"]) == ("sent", 1, None, None)
        assert sent["sent_at"] == "2026-11-23T06:01:00Z"
        assert json.loads(str(sent["recipients"])) == ["reader@example.org", "editor@example.org"]

        # The job runs again every tick: nothing more is sent.
        assert daily.scheduled_digest(built.db, built.settings, T0 + minutes(1)) is None
        assert daily.scheduled_digest(built.db, built.settings, T0 + minutes(30)) is None
        # A restart: a new process, a new connection, the same store.
        built.db.conn.close()
        db = store.open_store(built.settings.storage.path)
        settings = load_settings(built.config)
        assert daily.scheduled_digest(db, settings, T0 + minutes(90)) is None
        assert len(server.received) == 1
        # The next day's digest starts where this one ended, and is sent once too.
        tomorrow = daily.scheduled_digest(db, settings, T0 + dt.timedelta(days=1))
        assert tomorrow is not None and tomorrow.data.period.start == T0
        assert daily.scheduled_digest(db, settings, T0 + dt.timedelta(days=1, minutes=1)) is None
        assert [r.message["Subject"] for r in server.received] == [
            "[storywatch] 2026-11-23: 3 follow-ups in 2 storylines, 1 found later, 8 new items",
            "[storywatch] 2026-11-24: nothing new",
        ]


def test_a_sent_digest_is_only_sent_again_with_resend(tmp_path: Path) -> None:
    with SMTPServer() as server:
        built = build(tmp_path, smtp_port=server.port)
        daily.scheduled_digest(built.db, built.settings, T0)
        assert len(server.received) == 1
        run = Cli(built.config)
        refused = run("digest", "--send", "--date", "2026-11-23", ok=False)
        assert refused.exit_code == 1
        assert "Error: the digest of 2026-11-23 was already sent (add --resend to send it again)\n" in refused.output
        assert len(server.received) == 1
        misuse = run("digest", "--resend", "--date", "2026-11-23", ok=False)
        assert misuse.exit_code == 2 and "--resend goes with --send" in misuse.output
        resent = run("digest", "--send", "--resend", "--date", "2026-11-23")
        assert resent.stdout.endswith("Sent to reader@example.org, editor@example.org\n")
        assert len(server.received) == 2
        assert server.received[1].message["Subject"] == server.received[0].message["Subject"]
        assert (row(built.db)["status"], row(built.db)["attempts"]) == ("sent", 2)


def test_a_day_without_a_recorded_digest_cannot_be_sent(tmp_path: Path) -> None:
    with SMTPServer() as server:
        built = build(tmp_path, smtp_port=server.port)
        result = Cli(built.config)("digest", "--send", "--date", "2026-11-20", ok=False)
    assert result.exit_code == 1 and "Error: there is no digest of 2026-11-20 to send" in result.output
    assert server.received == []


def test_format_email_prints_the_whole_message(tmp_path: Path) -> None:
    built = build(tmp_path, smtp_port=free_port())
    record(built)
    printed = Cli(built.config)("digest", "--date", "2026-11-23", "--format", "email").stdout
    msg = message_from_string(printed, policy=policy.default)
    assert msg["Subject"] == "[storywatch] 2026-11-23: 3 follow-ups in 2 storylines, 1 found later, 8 new items"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert row(built.db)["status"] == "pending"  # printing is not sending


# ── failures, retries with backoff, and the one successful send ───────────────────────────


def test_connection_refused_is_retried_with_backoff_then_sent_once(tmp_path: Path) -> None:
    server = SMTPServer()  # its port is chosen, nothing listens on it yet
    built = build(tmp_path, smtp_port=server.port)
    assert daily.scheduled_digest(built.db, built.settings, T0) is not None  # written, recorded, not sent
    failed = row(built.db)
    assert failed["status"] == "failed" and failed["attempts"] == 1
    assert failed["error"] == f"cannot send through 127.0.0.1:{server.port}: [Errno 111] Connection refused"
    assert failed["next_attempt_at"] == "2026-11-23T06:06:00Z"  # 5 minutes
    assert built.settings.digest.output_dir.joinpath("2026-11-23.md").exists()  # a failed send loses no file
    shown = report.render_status(store.status(built.db, Path("sw.db"), T0), "x", T0)
    assert (f"(failed: cannot send through 127.0.0.1:{server.port}: [Errno 111] Connection refused; "
            "next attempt 2026-11-23 06:06 UTC)") in shown

    daily.scheduled_digest(built.db, built.settings, T0 + minutes(4))  # not yet time
    assert row(built.db)["attempts"] == 1
    daily.scheduled_digest(built.db, built.settings, T0 + minutes(5))  # retried, still refused
    assert (row(built.db)["attempts"], row(built.db)["next_attempt_at"]) == (2, "2026-11-23T06:16:00Z")  # 10 more

    with server:
        daily.scheduled_digest(built.db, built.settings, T0 + minutes(14))
        assert server.received == []
        daily.scheduled_digest(built.db, built.settings, T0 + minutes(15))
        assert len(server.received) == 1
        daily.scheduled_digest(built.db, built.settings, T0 + minutes(16))
        daily.scheduled_digest(built.db, built.settings, T0 + minutes(120))
    assert len(server.received) == 1
    sent = row(built.db)
    assert (sent["status"], sent["attempts"], sent["error"], sent["next_attempt_at"], sent["sent_at"]) == (
        "sent", 3, None, None, "2026-11-23T06:16:00Z")


def test_the_backoff_doubles_up_to_six_hours(tmp_path: Path) -> None:
    built = build(tmp_path, smtp_port=free_port())
    now = T0
    daily.scheduled_digest(built.db, built.settings, now)
    waits = []
    for _ in range(8):
        retry = dt.datetime.fromisoformat(str(row(built.db)["next_attempt_at"]))
        waits.append((retry - now) / minutes(1))
        now = retry
        daily.scheduled_digest(built.db, built.settings, now)
    assert waits == [5, 10, 20, 40, 80, 160, 320, 360]
    assert row(built.db)["attempts"] == 9 and row(built.db)["status"] == "failed"


def test_a_server_that_never_answers_times_out_and_is_retried(tmp_path: Path, silent: SilentServer) -> None:
    built = build(tmp_path, smtp_port=silent.port)
    daily.scheduled_digest(built.db, built.settings, T0)
    failed = row(built.db)
    assert (failed["status"], failed["attempts"], failed["next_attempt_at"]) == ("failed", 1, "2026-11-23T06:06:00Z")
    assert failed["error"] == f"the SMTP server 127.0.0.1:{silent.port} did not answer in time"
    with SMTPServer() as server:
        settings = reload(built, smtp_port=server.port)  # the operator points it at a working server
        daily.scheduled_digest(built.db, settings, T0 + minutes(3))
        assert server.received == []  # the retry waits for its time
        daily.scheduled_digest(built.db, settings, T0 + minutes(5))
        daily.scheduled_digest(built.db, settings, T0 + minutes(6))
    assert len(server.received) == 1 and row(built.db)["status"] == "sent" and row(built.db)["attempts"] == 2


def test_a_rejected_login_is_retried_and_sent_once_the_password_is_fixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    login = f'username = "digest"\npassword_env = "{PASSWORD_ENV}"\n'
    with SMTPServer(login=("digest", "s3cret")) as server:
        monkeypatch.setenv(PASSWORD_ENV, "wrong")
        built = build(tmp_path, smtp_port=server.port, email=login)
        daily.scheduled_digest(built.db, built.settings, T0)
        failed = row(built.db)
        assert (failed["status"], failed["attempts"], failed["next_attempt_at"]) == ("failed", 1, "2026-11-23T06:06:00Z")
        assert str(failed["error"]).startswith(f"the SMTP server 127.0.0.1:{server.port} rejected the login for digest: 535 ")
        assert "wrong" not in str(failed["error"])  # the password is never recorded
        monkeypatch.setenv(PASSWORD_ENV, "s3cret")
        settings = reload(built, smtp_port=server.port, email=login)
        daily.scheduled_digest(built.db, settings, T0 + minutes(6))
        daily.scheduled_digest(built.db, settings, T0 + minutes(7))
    assert len(server.received) == 1 and server.received[0].recipients == ["reader@example.org", "editor@example.org"]
    assert (row(built.db)["status"], row(built.db)["attempts"], row(built.db)["error"]) == ("sent", 2, None)


def test_a_failed_digest_can_be_sent_by_hand_before_its_retry_time(tmp_path: Path) -> None:
    server = SMTPServer()
    built = build(tmp_path, smtp_port=server.port)
    daily.scheduled_digest(built.db, built.settings, T0)
    assert row(built.db)["status"] == "failed"
    with server:
        result = Cli(built.config)("digest", "--send", "--date", "2026-11-23")
        assert "Sent to reader@example.org, editor@example.org" in result.stdout
        daily.scheduled_digest(built.db, built.settings, T0 + minutes(10))  # its retry time: nothing left to do
    assert len(server.received) == 1 and row(built.db)["status"] == "sent"


# ── a send cut short ──────────────────────────────────────────────────────────────────────


def test_a_send_killed_midway_becomes_unconfirmed_and_is_not_resent(tmp_path: Path, handed_over: HangingServer) -> None:
    built = build(tmp_path, smtp_port=handed_over.port, timeout=60)
    record(built)
    assert row(built.db)["status"] == "pending"
    killed_while_sending(built, handed_over)

    with SMTPServer() as server:
        settings = reload(built, smtp_port=server.port)
        daily.scheduled_digest(built.db, settings, T0 + minutes(10))
        interrupted = row(built.db)
        assert interrupted["status"] == "unconfirmed"
        assert interrupted["error"] == ("the worker stopped after handing the message over, before the server confirmed "
                                        "it: it may have arrived; send again with --resend")
        for later in (minutes(20), minutes(600), dt.timedelta(days=1, minutes=-30)):
            daily.scheduled_digest(built.db, settings, T0 + later)
        assert server.received == [] and row(built.db)["status"] == "unconfirmed"
        run = Cli(built.config)
        refused = run("digest", "--send", "--date", "2026-11-23", ok=False)
        assert refused.exit_code == 1 and ("the digest of 2026-11-23 may have been sent (its sending was cut "
                                           "short before the server confirmed it) (add --resend to send it again)") in refused.output
        assert server.received == []
        run("digest", "--send", "--resend", "--date", "2026-11-23")
    assert len(server.received) == 1 and row(built.db)["status"] == "sent"


STOPPED = ("sending through 127.0.0.1:{port} was stopped before the message was handed over: it was not sent")


@pytest.mark.parametrize(("signum", "stage"), [
    (signal.SIGTERM, "greeting"), (signal.SIGINT, "EHLO"), (signal.SIGTERM, "DATA"), (signal.SIGINT, "RCPT"),
])
def test_a_signal_stops_a_hanging_send_at_once_and_the_digest_is_sent_later(
    tmp_path: Path, signum: int, stage: str
) -> None:
    """The server stalls before the message went out (the SMTP timeout is a minute): SIGTERM or
    Ctrl-C ends `digest --send` within a couple of seconds, and the digest, certainly not sent,
    waits to be sent at the next cycle, as usual."""
    with HangingServer(stage) as hanging:
        built = build(tmp_path, smtp_port=hanging.port, timeout=60)
        record(built)
        process = sending(built)
        took, stderr = stopped(process, hanging, signum)
    assert took < 3, f"stopped after {took:.1f} s"
    assert process.returncode == (143 if signum == signal.SIGTERM else 130), stderr
    assert hanging.message == b""
    why = STOPPED.format(port=hanging.port)
    assert f"Stopped: {why}\n" in stderr
    left = row(built.db)
    assert (left["status"], left["attempts"], left["error"], left["next_attempt_at"]) == ("pending", 1, why, None)
    assert f"(pending: {why})" in Cli(built.config)("status").output
    with SMTPServer() as server:
        daily.scheduled_digest(built.db, reload(built, smtp_port=server.port), T0 + minutes(10))
        daily.scheduled_digest(built.db, reload(built, smtp_port=server.port), T0 + minutes(20))
    assert len(server.received) == 1
    assert (row(built.db)["status"], row(built.db)["attempts"], row(built.db)["error"]) == ("sent", 2, None)


def test_a_signal_after_the_message_was_handed_over_stops_the_send_at_once_as_unconfirmed(tmp_path: Path) -> None:
    """The server took the whole message and never confirms it: SIGTERM ends the send at once,
    and the digest, which may have arrived, is unconfirmed: never sent again by itself."""
    with HangingServer("message") as hanging:
        built = build(tmp_path, smtp_port=hanging.port, timeout=60)
        record(built)
        process = sending(built)
        took, stderr = stopped(process, hanging, signal.SIGTERM)
    assert took < 3 and process.returncode == 143, (took, process.returncode)
    assert b"Subject: [storywatch] 2026-11-23: " in hanging.message
    why = (f"sending through 127.0.0.1:{hanging.port} was stopped after the message was handed over, before the server "
           "confirmed it: it may have arrived")
    assert f"Stopped: {why}\n" in stderr
    assert (row(built.db)["status"], row(built.db)["error"]) == ("unconfirmed", why)
    with SMTPServer() as server:
        daily.scheduled_digest(built.db, reload(built, smtp_port=server.port), T0 + minutes(10))
    assert server.received == [] and row(built.db)["status"] == "unconfirmed"


def test_sigterm_stops_the_worker_at_once_while_its_digest_send_hangs(tmp_path: Path) -> None:
    """`storywatch run` sends its first digest to a server that stalls at DATA: SIGTERM stops the
    worker within a couple of seconds (not after the minute of its SMTP timeout), exit status 0,
    and the digest waits to be sent."""
    with HangingServer("DATA") as hanging, FeedServer() as feeds:
        feeds.routes["/f"] = Reply(body=rss([("a", "A story", "<p>A story.</p>")]))  # a feed that answers:
        config = write_config(tmp_path, smtp_port=hanging.port, timeout=60)  # the first digest is due at once
        config.write_text(config.read_text() + f'\n[[feeds]]\nurl = "{feeds.url("/f")}"\n')
        worker = subprocess.Popen([sys.executable, "-m", "worker", "--config", str(config), "run"], cwd=PROJECT,
                                  env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        took, stderr = stopped(worker, hanging, signal.SIGTERM)
    assert took < 3, f"stopped after {took:.1f} s"
    assert worker.returncode == 0, stderr
    with sqlite3.connect(tmp_path / "sw.db") as conn:
        (status, error), = conn.execute("SELECT status, error FROM digests").fetchall()
    assert (status, error) == ("pending", STOPPED.format(port=hanging.port))


def test_a_server_dripping_its_ehlo_reply_is_cut_off_at_the_send_deadline_and_retried_later(tmp_path: Path) -> None:
    """The server answers EHLO with a reply that never ends, a `250-x` line every 0.2 s, each
    well within the 1 s timeout: the send ends at its deadline (4 times the timeout), and the
    digest, which was certainly not sent, fails and is retried with backoff, as a timeout is."""
    with HangingServer("EHLO", drip=0.2) as dripping:
        built = build(tmp_path, smtp_port=dripping.port, timeout=1)
        db = store.open_store(built.settings.storage.path, shared=True)  # used by the sending thread
        returned(lambda: daily.scheduled_digest(db, built.settings, T0))
        db.conn.close()
        assert dripping.stalled.is_set() and dripping.message == b""
    assert deliver.send_deadline(built.settings.email) == 4
    why = f"the SMTP server 127.0.0.1:{dripping.port} took longer than 4 s for the whole send"
    failed = row(built.db)
    assert (failed["status"], failed["attempts"], failed["error"], failed["next_attempt_at"]) == (
        "failed", 1, why, "2026-11-23T06:06:00Z")
    with SMTPServer() as server:
        settings = reload(built, smtp_port=server.port)  # the operator points it at a working server
        daily.scheduled_digest(built.db, settings, T0 + minutes(3))
        assert server.received == []  # the retry waits for its time
        daily.scheduled_digest(built.db, settings, T0 + minutes(5))
        daily.scheduled_digest(built.db, settings, T0 + minutes(6))
    assert len(server.received) == 1
    assert (row(built.db)["status"], row(built.db)["attempts"], row(built.db)["error"]) == ("sent", 2, None)


def test_a_server_dripping_its_reply_after_the_message_makes_digest_send_end_at_the_deadline_unconfirmed(
    tmp_path: Path
) -> None:
    """The server takes the whole message, then drips a reply that never ends: `digest --send`
    ends at the send's deadline (exit status 1) and the digest, which may have arrived, is
    unconfirmed: never sent again by itself."""
    with HangingServer("message", drip=0.2) as dripping:
        built = build(tmp_path, smtp_port=dripping.port, timeout=1)
        record(built)
        process = sending(built)
        try:
            _, stderr = process.communicate(timeout=60)  # generous: the deadline is 4 s
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(30)
        assert b"Subject: [storywatch] 2026-11-23: " in dripping.message
    why = (f"the SMTP server 127.0.0.1:{dripping.port} took longer than 4 s for the whole send, and did not confirm "
           "the message: it may have arrived")
    assert process.returncode == 1 and f"Error: {why}\n" in stderr, stderr
    assert (row(built.db)["status"], row(built.db)["error"], row(built.db)["next_attempt_at"]) == ("unconfirmed", why, None)
    with SMTPServer() as server:
        settings = reload(built, smtp_port=server.port)
        for later in (minutes(10), minutes(600)):
            daily.scheduled_digest(built.db, settings, T0 + later)
    assert server.received == [] and row(built.db)["status"] == "unconfirmed"


@pytest.mark.parametrize("stage", ["greeting", "EHLO", "MAIL", "DATA", "message"])
def test_a_sender_killed_before_handing_the_message_over_leaves_it_to_send_after_it_unconfirmed(
    tmp_path: Path, stage: str
) -> None:
    """SIGKILL leaves no time to record anything: the send's phase, written to the store before
    the message goes out ("data"), tells a digest that was certainly not sent (sent again at the
    next cycle) from one that may have arrived (unconfirmed, never sent again by itself)."""
    with HangingServer(stage) as hanging:
        built = build(tmp_path, smtp_port=hanging.port, timeout=60)
        record(built)
        killed_while_sending(built, hanging)
    handed = stage == "message"
    assert row(built.db)["send_phase"] == ("data" if handed else "connecting")
    assert bool(hanging.message) == handed
    # Not marked by a worker yet: status and the metrics already say what it is.
    run = Cli(built.config)
    status, metrics = run("status").output, run("metrics").output
    if handed:
        assert f"(unconfirmed: {store.INTERRUPTED})" in status
        assert "Unconfirmed  digest of 2026-11-23" in status
    else:
        assert ("(pending: the worker stopped before the message was handed over to the SMTP server: it was not sent)"
                in status) and "Unconfirmed" not in status
    assert f'storywatch_digests{{status="unconfirmed"}} {int(handed)}\n' in metrics
    assert f'storywatch_digests{{status="pending"}} {int(not handed)}\n' in metrics
    with SMTPServer() as server:
        settings = reload(built, smtp_port=server.port)
        for later in (10, 20, 600):
            daily.scheduled_digest(built.db, settings, T0 + minutes(later))
    if handed:
        assert server.received == []
        assert (row(built.db)["status"], row(built.db)["error"]) == ("unconfirmed", store.INTERRUPTED)
    else:
        assert len(server.received) == 1
        assert (row(built.db)["status"], row(built.db)["attempts"], row(built.db)["error"]) == ("sent", 2, None)


def test_a_digest_whose_sender_was_killed_before_handing_it_over_is_sent_by_hand_without_resend(tmp_path: Path) -> None:
    with HangingServer("DATA") as hanging:
        built = build(tmp_path, smtp_port=hanging.port, timeout=60)
        record(built)
        killed_while_sending(built, hanging)
    with SMTPServer() as server:
        reload(built, smtp_port=server.port)
        sent = Cli(built.config)("digest", "--send", "--date", "2026-11-23")  # no worker marked it yet
    assert sent.stdout.endswith("Sent to reader@example.org, editor@example.org\n") and len(server.received) == 1
    assert (row(built.db)["status"], row(built.db)["attempts"]) == ("sent", 2)


def test_a_send_left_without_a_phase_by_an_older_version_is_unconfirmed(tmp_path: Path) -> None:
    """A digest left "sending" before the store recorded send phases may have been handed over."""
    built = build(tmp_path, smtp_port=free_port())
    record(built)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    with store.transaction(built.db):
        built.db.execute("UPDATE digests SET status = 'sending', sender_pid = ?, sending_at = ?, send_phase = NULL "
                         "WHERE day = ?", [gone.pid, to_iso(T0), DAY.isoformat()])
    assert store.unconfirmed_digests(built.db, T0 + minutes(1)) == [DAY]
    assert store.mark_interrupted_digests(built.db, T0 + minutes(1)) == {DAY: "unconfirmed"}
    assert (row(built.db)["status"], row(built.db)["error"]) == ("unconfirmed", store.INTERRUPTED)


def test_a_digest_another_live_process_is_sending_is_neither_sent_again_nor_called_interrupted(tmp_path: Path) -> None:
    with SMTPServer() as server:
        built = build(tmp_path, smtp_port=server.port)
        record(built)
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            # Another process claimed it a moment ago and is still talking to the server (the CLI
            # below runs on the real clock).
            claimed = dt.datetime.now(dt.timezone.utc)
            with store.transaction(built.db):
                built.db.execute("UPDATE digests SET status = 'sending', sender_pid = ?, sending_at = ?",
                                 [other.pid, to_iso(claimed)])
            assert not store.claim_digest(built.db, DAY, claimed + minutes(1), resend=True)
            daily.scheduled_digest(built.db, built.settings, T0 + minutes(1))
            assert row(built.db)["status"] == "sending"
            refused = Cli(built.config)("digest", "--send", "--date", "2026-11-23", ok=False)
            assert f"the digest of 2026-11-23 is being sent right now (by process {other.pid})" in refused.output
            assert "Unconfirmed" not in Cli(built.config)("status").output  # it is being sent: no false alarm
            assert 'storywatch_digests{status="unconfirmed"} 0\n' in Cli(built.config)("metrics").output
            # Past the lease, a live pid is taken for a reused one: the sender is gone.
            assert store.digest_sender(built.db, DAY, claimed + store.SENDING_LEASE + minutes(1)) is None
        finally:
            other.kill()
            other.wait(30)
        daily.scheduled_digest(built.db, built.settings, T0 + minutes(2))  # the sender has stopped
        assert row(built.db)["status"] == "unconfirmed" and server.received == []


def test_of_two_senders_racing_for_one_digest_only_one_claims_it(tmp_path: Path) -> None:
    built = build(tmp_path, smtp_port=free_port())
    record(built)
    assert store.claim_digest(built.db, DAY, T0, resend=False)
    assert not store.claim_digest(built.db, DAY, T0, resend=False)  # "sending": a resend only
    assert (row(built.db)["status"], row(built.db)["attempts"], row(built.db)["sender_pid"]) == ("sending", 1, os.getpid())


def test_status_health_and_metrics_say_a_digest_is_unconfirmed_and_what_to_run_until_it_is_resent(
    tmp_path: Path, handed_over: HangingServer
) -> None:
    built = build(tmp_path, smtp_port=handed_over.port, timeout=60)
    record(built)
    killed_while_sending(built, handed_over)  # not yet marked by a worker: still 'sending', its sender gone
    finished = utc_now()  # the worker polls on: only the digest is wrong
    store.record_cycle(built.db, finished, finished, 1.5, interval=60.0, feeds=5, new_items=2, followups=0, errors=0)
    run = Cli(built.config)
    command = f"storywatch --config {shlex.quote(str(built.config))} digest --date 2026-11-23 --send --resend"
    why = ("its sending was cut short after the message was handed over, before the server confirmed it, so it may or "
           f"may not have arrived; to send it again, run: {command}")

    def shows_it_unconfirmed() -> None:
        status = run("status").output
        assert f"\nUnconfirmed  digest of 2026-11-23: {why}\n" in status
        assert f"(unconfirmed: {store.INTERRUPTED})" in status
        health = run("health", "--max-age", "7d", ok=False)
        assert health.exit_code == 1
        first, second = health.output.splitlines()
        assert first == f"unhealthy: the digest of 2026-11-23 is unconfirmed: {why}"
        assert second.startswith("the last polling cycle finished ") and second.endswith(": 5 feeds, 2 new items, 0 failed")
        metrics = run("metrics").output
        assert 'storywatch_digests{status="unconfirmed"} 1\n' in metrics
        assert 'storywatch_digests{status="sending"} 0\n' in metrics

    shows_it_unconfirmed()
    with SMTPServer() as server:
        settings = reload(built, smtp_port=server.port)
        daily.scheduled_digest(built.db, settings, T0 + minutes(10))  # the worker marks it: never sent by itself
        assert row(built.db)["status"] == "unconfirmed" and server.received == []
        shows_it_unconfirmed()
        resent = CliRunner().invoke(cli, shlex.split(command)[1:], catch_exceptions=False)  # the command as printed
        assert resent.exit_code == 0, resent.output
    (got,) = server.received
    assert got.message["Message-ID"] == daily.digest_message_id(built.db, settings, DAY)
    assert row(built.db)["status"] == "sent"
    assert "Unconfirmed" not in run("status").output
    assert run("health", "--max-age", "7d").output.startswith("healthy: the last polling cycle finished ")
    metrics = run("metrics").output
    assert 'storywatch_digests{status="unconfirmed"} 0\n' in metrics and 'storywatch_digests{status="sent"} 1\n' in metrics


# ── a resend that fails ───────────────────────────────────────────────────────────────────


def test_a_failed_resend_of_a_sent_digest_keeps_it_sent_with_the_resends_error(tmp_path: Path) -> None:
    with SMTPServer() as server:
        built = build(tmp_path, smtp_port=server.port)
        daily.scheduled_digest(built.db, built.settings, T0)
    assert len(server.received) == 1 and row(built.db)["status"] == "sent"
    record_cycle(built)
    run = Cli(built.config)
    failed = run("digest", "--send", "--resend", "--date", "2026-11-23", ok=False)  # the server is gone
    why = f"cannot send through 127.0.0.1:{server.port}: [Errno 111] Connection refused"
    assert failed.exit_code == 1
    assert f"Error: {why} (the digest of 2026-11-23 stays sent)\n" in failed.output
    kept = row(built.db)
    assert (kept["status"], kept["sent_at"], kept["error"], kept["next_attempt_at"], kept["resend_error"]) == (
        "sent", "2026-11-23T06:01:00Z", None, None, why)
    assert json.loads(str(kept["recipients"])) == ["reader@example.org", "editor@example.org"]
    assert f"(sent; the last resend failed: {why})" in run("status").output
    assert run("health", "--max-age", "7d").output.startswith("healthy: ")
    metrics = run("metrics").output
    assert 'storywatch_digests{status="sent"} 1\n' in metrics and 'storywatch_digests{status="failed"} 0\n' in metrics
    with SMTPServer() as again:
        settings = reload(built, smtp_port=again.port)
        for hours in (1, 6, 12):  # the worker does not send it again by itself: it was sent
            daily.scheduled_digest(built.db, settings, T0 + dt.timedelta(hours=hours))
        assert again.received == []
        run("digest", "--send", "--resend", "--date", "2026-11-23")
    assert len(again.received) == 1
    assert (row(built.db)["status"], row(built.db)["resend_error"]) == ("sent", None)


def test_a_failed_resend_of_an_unconfirmed_digest_keeps_it_unconfirmed_with_the_resends_error(
    tmp_path: Path, handed_over: HangingServer
) -> None:
    built = build(tmp_path, smtp_port=handed_over.port, timeout=60)
    record(built)
    killed_while_sending(built, handed_over)
    record_cycle(built)
    port = free_port()
    reload(built, smtp_port=port)  # nothing listens there
    run = Cli(built.config)
    failed = run("digest", "--send", "--resend", "--date", "2026-11-23", ok=False)
    why = f"cannot send through 127.0.0.1:{port}: [Errno 111] Connection refused"
    assert f"Error: {why} (the digest of 2026-11-23 stays unconfirmed)\n" in failed.output
    kept = row(built.db)
    assert (kept["status"], kept["error"], kept["resend_error"]) == ("unconfirmed", store.INTERRUPTED, why)
    status = run("status").output
    assert f"(unconfirmed: {store.INTERRUPTED}; the last resend failed: {why})" in status
    assert "Unconfirmed  digest of 2026-11-23: " in status
    health = run("health", "--max-age", "7d", ok=False)
    assert health.exit_code == 1 and health.output.startswith("unhealthy: the digest of 2026-11-23 is unconfirmed: ")
    with SMTPServer() as server:
        daily.scheduled_digest(built.db, reload(built, smtp_port=server.port), T0 + minutes(30))
    assert server.received == [] and row(built.db)["status"] == "unconfirmed"


@pytest.mark.parametrize(("stage", "copy"), [
    ("EHLO", store.RESEND_NOT_HANDED_OVER), ("message", store.RESEND_INTERRUPTED),
])
def test_a_resend_killed_midway_leaves_the_digest_sent(tmp_path: Path, stage: str, copy: str) -> None:
    with SMTPServer() as server:
        built = build(tmp_path, smtp_port=server.port, timeout=60)
        daily.scheduled_digest(built.db, built.settings, T0)
    with HangingServer(stage) as hanging:
        reload(built, smtp_port=hanging.port, timeout=60)
        killed_while_sending(built, hanging, "--resend")
    assert f"(sent; the last resend failed: {copy})" in Cli(built.config)("status").output
    assert store.unconfirmed_digests(built.db, T0 + minutes(10)) == []
    daily.scheduled_digest(built.db, built.settings, T0 + minutes(10))
    kept = row(built.db)
    assert (kept["status"], kept["sent_at"], kept["resend_error"], kept["resend_of"]) == (
        "sent", "2026-11-23T06:01:00Z", copy, None)
    assert len(server.received) == 1


# ── what a user reads when the server does not offer what [email] asks for ────────────────


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("certs"))


def send_error(built: Built) -> str:
    """The error line `storywatch digest --send` prints (and the digest records)."""
    result = Cli(built.config)("digest", "--send", "--date", "2026-11-23", ok=False)
    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert line == f"Error: {row(built.db)['error']}" and row(built.db)["status"] == "failed"
    return line


def test_a_server_without_starttls_gets_one_clear_sentence(tmp_path: Path) -> None:
    with SMTPServer() as server:
        built = build(tmp_path, smtp_port=server.port, security="starttls")
        record(built)
        assert send_error(built) == (
            f"Error: the SMTP server 127.0.0.1:{server.port} does not offer STARTTLS: in [email], set security = \"tls\" "
            "if it expects TLS from the start (usually port 465), or security = \"none\" to send unencrypted (only to a "
            "server on this machine or a network you trust)")
    assert server.received == []


def test_a_server_without_a_login_gets_one_clear_sentence_when_a_username_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cert: tuple[Path, Path]
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    login = f'username = "digest"\npassword_env = "{PASSWORD_ENV}"\n'
    with SMTPServer(login=("digest", "s3cret"), login_over_tls_only=True) as server:
        (tmp_path / "plain").mkdir()
        built = build(tmp_path / "plain", smtp_port=server.port, email=login)
        record(built)
        assert send_error(built) == (
            f"Error: the SMTP server 127.0.0.1:{server.port} offers no login (AUTH) but [email] username is set: in "
            "[email], set security = \"starttls\" or \"tls\" (most servers offer a login over TLS only), or remove "
            "username if the server needs no login")
    with SMTPServer(tls="starttls", cert=cert) as server:
        server.handler.offer_login = False  # it takes no login at all
        (tmp_path / "tls").mkdir()
        built = build(tmp_path / "tls", smtp_port=server.port, security="starttls",
                      email=login + f'ca_file = "{cert[0]}"\n')
        record(built)
        assert send_error(built) == (
            f"Error: the SMTP server 127.0.0.1:{server.port} offers no login (AUTH) but [email] username is set: in "
            "[email], remove username if the server needs no login, or set smtp_port to its submission port (usually "
            "587, or 465 with security = \"tls\")")
    assert server.received == []


def test_a_rejected_login_names_the_user_the_servers_reply_and_where_the_password_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    with SMTPServer(login=("digest", "s3cret")) as server:
        built = build(tmp_path, smtp_port=server.port, email=f'username = "digest"\npassword_env = "{PASSWORD_ENV}"\n')
        record(built)
        assert send_error(built) == (
            f"Error: the SMTP server 127.0.0.1:{server.port} rejected the login for digest: 535 5.7.8 Authentication "
            f"credentials invalid (check [email] username, and the password in environment variable {PASSWORD_ENV})")
    assert server.received == []


# ── one Message-ID a digest ───────────────────────────────────────────────────────────────


def test_a_digest_and_its_resend_carry_one_well_formed_message_id(tmp_path: Path) -> None:
    with SMTPServer() as server:
        built = build(tmp_path, smtp_port=server.port)
        daily.scheduled_digest(built.db, built.settings, T0)
        run = Cli(built.config)
        run("digest", "--send", "--resend", "--date", "2026-11-23")
        printed = message_from_string(run("digest", "--date", "2026-11-23", "--format", "email").stdout,
                                      policy=policy.default)
    first, again = (r.message for r in server.received)
    assert len(first.get_all("Message-ID")) == 1
    message_id = first["Message-ID"]
    assert MSG_ID.fullmatch(message_id), message_id
    assert message_id.startswith("<digest.2026-11-23.") and message_id.endswith("@storywatch.example>")  # the sender's domain
    assert again["Message-ID"] == message_id == printed["Message-ID"]
    assert again["Subject"] == first["Subject"]


def test_a_preview_printed_as_email_never_carries_the_real_digests_message_id(tmp_path: Path) -> None:
    """A preview mailed on by hand (`| sendmail -t`) must not make mail systems that de-duplicate
    by Message-ID drop the real digest of that day, sent later with other content."""
    built = build(tmp_path, smtp_port=free_port())
    real = daily.digest_message_id(built.db, built.settings, DAY)
    print_it = Cli(built.config)
    previews = [message_from_string(print_it("digest", "--date", "2026-11-23", "--format", "email").stdout,
                                    policy=policy.default)["Message-ID"] for _ in range(2)]
    assert real not in previews and previews[0] != previews[1] and all(MSG_ID.fullmatch(i) for i in previews)
    record(built)
    recorded = message_from_string(print_it("digest", "--date", "2026-11-23", "--format", "email").stdout,
                                   policy=policy.default)
    assert recorded["Message-ID"] == real


def test_the_workers_unconfirmed_log_names_its_config_file(
    tmp_path: Path, handed_over: HangingServer, log_records: list[dict[str, object]]
) -> None:
    """The service runs in another folder, maybe with another config than the reader's default:
    the command it logs must send this digest, from anywhere."""
    built = build(tmp_path, smtp_port=handed_over.port, timeout=60)
    record(built)
    killed_while_sending(built, handed_over)
    daily.scheduled_digest(built.db, built.settings, T0 + minutes(10))
    (logged,) = [r for r in log_records if r["message"].startswith("Digest of 2026-11-23 unconfirmed")]
    config = shlex.quote(str(built.config.resolve()))
    assert logged["command"] == f"storywatch --config {config} digest --date 2026-11-23 --send --resend"


def test_message_ids_differ_between_days_and_between_stores(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "theirs").mkdir()
    with SMTPServer() as server:
        mine = build(tmp_path / "mine", smtp_port=server.port)
        theirs = build(tmp_path / "theirs", smtp_port=server.port)  # the same world, another store
        daily.scheduled_digest(mine.db, mine.settings, T0)
        daily.scheduled_digest(mine.db, mine.settings, T0 + dt.timedelta(days=1))
        daily.scheduled_digest(theirs.db, theirs.settings, T0)
    ids = [r.message["Message-ID"] for r in server.received]
    assert [r.message["Subject"][:23] for r in server.received] == [
        "[storywatch] 2026-11-23", "[storywatch] 2026-11-24", "[storywatch] 2026-11-23"]
    assert all(MSG_ID.fullmatch(i) for i in ids), ids
    assert len(set(ids)) == 3
    # Each is the one its store gives that day (not a random one), and a day names its digest:
    # the same day in two stores differs only by what each store derives.
    tomorrow = DAY + dt.timedelta(days=1)
    assert ids == [daily.digest_message_id(mine.db, mine.settings, DAY),
                   daily.digest_message_id(mine.db, mine.settings, tomorrow),
                   daily.digest_message_id(theirs.db, theirs.settings, DAY)]
    assert ids[0].startswith("<digest.2026-11-23.") and ids[2].startswith("<digest.2026-11-23.")
    assert ids[1].startswith("<digest.2026-11-24.")


def test_a_message_the_server_took_but_never_confirmed_is_unconfirmed_not_retried(tmp_path: Path) -> None:
    """The server receives the whole message, then does not answer before the timeout: it may
    have arrived, so the digest is "unconfirmed" and no later cycle sends it again (at most once)."""
    with SMTPServer() as server:
        real = server.handler.handle_DATA

        async def slow_data(*args: object) -> str:
            import asyncio
            await asyncio.sleep(4)  # longer than the 2 s timeout of the test config
            return await real(*args)  # type: ignore[arg-type]

        server.handler.handle_DATA = slow_data  # type: ignore[method-assign]
        built = build(tmp_path, smtp_port=server.port)
        daily.scheduled_digest(built.db, built.settings, T0)
        assert row(built.db)["status"] == "unconfirmed"
        server.handler.handle_DATA = real  # type: ignore[method-assign]
        for hours in (1, 6, 12):  # later cycles: no retry of a message that may have arrived
            daily.scheduled_digest(built.db, built.settings, T0 + dt.timedelta(hours=hours))
        assert row(built.db)["status"] == "unconfirmed"
    assert len(server.received) <= 1


def test_a_digest_the_server_accepted_is_recorded_sent_though_the_worker_stops_while_another_process_writes(
        tmp_path: Path) -> None:
    """A stopping worker gives up waiting for the store's write lock after a few seconds
    (store.STOPPING_LOCK_WAIT), but not to record a digest the mail server accepted: it cannot be
    sent again without a duplicate, and left "sending" it would be "unconfirmed"."""
    with SMTPServer() as server:
        built = build(tmp_path, smtp_port=server.port, timeout=60)
        record(built)
        stop = threading.Event()
        store.give_up_waiting_when(built.db, stop)  # as the worker's runtime does
        real = server.handler.handle_DATA
        other = sqlite3.connect(built.settings.storage.path, isolation_level=None, check_same_thread=False)

        async def accepted_while_another_process_writes(*args: object) -> str:
            other.execute("BEGIN IMMEDIATE")
            threading.Timer(0.5, stop.set).start()  # the worker is told to stop
            threading.Timer(STOPPING_LOCK_WAIT + 2.5, other.rollback).start()
            return await real(*args)  # type: ignore[arg-type]

        server.handler.handle_DATA = accepted_while_another_process_writes  # type: ignore[method-assign]
        try:
            daily.scheduled_digest(built.db, built.settings, T0, stop=stop)
        finally:
            time.sleep(0.1)
            other.close()
        assert row(built.db)["status"] == "sent" and len(server.received) == 1


def test_a_digest_printed_as_email_without_email_settings_has_no_empty_headers(tmp_path: Path) -> None:
    built = build(tmp_path)  # email off: no sender, no recipients
    printed = Cli(built.config)("digest", "--date", "2026-11-23", "--format", "email").stdout
    headers = printed.split("\n\n", 1)[0]
    assert not re.search(r"^(From|To):", headers, re.M), headers
    message = message_from_string(printed, policy=policy.default)
    assert message["Subject"] and MSG_ID.fullmatch(message["Message-ID"])
