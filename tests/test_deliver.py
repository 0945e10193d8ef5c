"""Delivery: atomic files, and email through a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import socket
import threading
from pathlib import Path

import pytest

from worker.config import EmailSettings
from worker.digest.deliver import (FALLBACK_DOMAIN, build_message, message_domain, send_deadline, send_message, stable_message_id,
                            write_atomically)
from worker.errors import DeliveryError
from tests.conftest import NOW
from tests.feedserver import free_port
from tests.smtpserver import MSG_ID, HangingServer, SMTPServer, self_signed


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("certs"))


def email(port: int, **changes: object) -> EmailSettings:
    base = EmailSettings(enabled=True, smtp_host="127.0.0.1", smtp_port=port, security="none",
                         from_addr="watch@storywatch.example", to=("me@example.org", "you@example.org"), timeout=5)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def message(settings: EmailSettings) -> object:
    return build_message(settings, subject="[storywatch] 3 follow-ups", text="Plain digest",
                         html="<p>HTML <b>digest</b></p>", date=NOW)


def test_a_multipart_digest_reaches_the_server_intact() -> None:
    with SMTPServer() as server:
        settings = email(server.port)
        send_message(settings, message(settings))  # type: ignore[arg-type]
    (got,) = server.received
    assert got.sender == "watch@storywatch.example" and got.recipients == ["me@example.org", "you@example.org"]
    msg = got.message
    assert msg["Subject"] == "[storywatch] 3 follow-ups" and msg["To"] == "me@example.org, you@example.org"
    assert msg["Date"] == "Mon, 23 Nov 2026 12:00:00 +0000" and msg["Message-ID"].endswith("@storywatch.example>")
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain.get_content().strip() == "Plain digest" and "<b>digest</b>" in html.get_content()


@pytest.mark.parametrize(("sender", "domain"), [
    ("Storywatch <digest@Storywatch.Example>", "storywatch.example"),
    ("digest@mail.storywatch.example", "mail.storywatch.example"),
    ("digest@bücher.example", "xn--bcher-kva.example"),
    ("", FALLBACK_DOMAIN),  # no sender configured (email off: `digest --format email`)
    ("digest@[192.0.2.1]", FALLBACK_DOMAIN),  # an address literal
    ("digest@-bad-.example", FALLBACK_DOMAIN),
    ("not an address", FALLBACK_DOMAIN),
])
def test_the_message_id_domain_is_the_senders_else_a_reserved_one(sender: str, domain: str) -> None:
    assert message_domain(sender) == domain
    message_id = stable_message_id("0" * 32, "digest.2026-11-23", sender)
    assert MSG_ID.fullmatch(message_id) and message_id.endswith(f"@{domain}>")
    settings = email(free_port(), from_addr=sender or "x")
    assert MSG_ID.fullmatch(build_message(settings, subject="s", text="t", html="h", date=NOW)["Message-ID"])


def test_a_stable_message_id_depends_on_the_key_and_the_name_only() -> None:
    one = stable_message_id("a" * 32, "digest.2026-11-23", "digest@storywatch.example")
    assert one == stable_message_id("a" * 32, "digest.2026-11-23", "Another Name <digest@storywatch.example>")
    assert one != stable_message_id("b" * 32, "digest.2026-11-23", "digest@storywatch.example")
    assert one != stable_message_id("a" * 32, "digest.2026-11-24", "digest@storywatch.example")
    assert "a" * 8 not in one  # the key itself is not shown


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_and_login(cert: tuple[Path, Path], security: str) -> None:
    with SMTPServer(login=("digest", "s3cret"), tls=security, cert=cert) as server:
        settings = email(server.port, security=security, username="digest", password="s3cret", ca_file=cert[0])
        send_message(settings, message(settings))  # type: ignore[arg-type]
    assert len(server.received) == 1


def test_an_untrusted_certificate_is_a_tls_error(cert: tuple[Path, Path]) -> None:
    with SMTPServer(tls="starttls", cert=cert) as server:
        settings = email(server.port, security="starttls")  # the system CAs do not know this one
        with pytest.raises(DeliveryError, match="TLS") as err:
            send_message(settings, message(settings))  # type: ignore[arg-type]
    assert err.value.kind == "tls" and server.received == []


def test_a_rejected_login_is_an_auth_error() -> None:
    with SMTPServer(login=("digest", "s3cret")) as server:
        settings = email(server.port, username="digest", password="wrong")
        with pytest.raises(DeliveryError, match="rejected the login for digest: 535") as err:
            send_message(settings, message(settings))  # type: ignore[arg-type]
    assert err.value.kind == "auth" and server.received == []


def test_a_refused_recipient_is_a_refused_error() -> None:
    with SMTPServer() as server:
        server.handler.refuse = {"me@example.org", "you@example.org"}
        settings = email(server.port)
        with pytest.raises(DeliveryError, match="refused the message: me@example.org: 550") as err:
            send_message(settings, message(settings))  # type: ignore[arg-type]
    assert err.value.kind == "refused"


def test_no_server_is_a_connect_error() -> None:
    settings = email(free_port())
    with pytest.raises(DeliveryError, match="cannot send through 127.0.0.1") as err:
        send_message(settings, message(settings))  # type: ignore[arg-type]
    assert err.value.kind == "connect"


def test_a_server_that_never_answers_is_a_timeout() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    settings = email(listener.getsockname()[1], timeout=1)
    with pytest.raises(DeliveryError, match="did not answer in time") as err:
        send_message(settings, message(settings))  # type: ignore[arg-type]
    assert err.value.kind == "timeout"
    listener.close()


@pytest.mark.parametrize(("stage", "kind", "after"), [
    ("greeting", "timeout", ""),
    ("EHLO", "timeout", ""),
    ("RCPT", "timeout", ""),
    ("message", "unconfirmed", ", and did not confirm the message: it may have arrived"),
])
def test_a_server_dripping_its_reply_is_cut_off_at_the_send_deadline(stage: str, kind: str, after: str) -> None:
    """The server answers at `stage` with a reply that never ends, a `250-x` line every 0.2 s:
    no read waits as long as the timeout (0.5 s), but the whole send has a deadline (4 times
    it), and the send ends there; after the message went out, it may have arrived."""
    with HangingServer(stage, drip=0.2) as dripping:
        settings = email(dripping.port, timeout=0.5)
        errors: list[DeliveryError] = []

        def send() -> None:
            try:
                send_message(settings, message(settings))  # type: ignore[arg-type]
            except DeliveryError as exc:
                errors.append(exc)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        sender.join(60)  # generous: the deadline is 2 s
        assert not sender.is_alive(), "the send never ended"
        assert dripping.stalled.is_set()
    assert send_deadline(settings) == 2
    (err,) = errors
    assert err.kind == kind
    assert err.message == f"the SMTP server 127.0.0.1:{dripping.port} took longer than 2 s for the whole send{after}"
    assert (b"Subject: [storywatch] 3 follow-ups" in dripping.message) == (stage == "message")


def test_files_are_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "digests" / "2026-11-23.md"
    write_atomically(target, "first\n")
    write_atomically(target, "second\n")
    assert target.read_text() == "second\n"
    assert [p.name for p in target.parent.iterdir()] == ["2026-11-23.md"]  # no temporary left behind
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DeliveryError, match="cannot write") as err:
        write_atomically(blocker / "d.md", "x")
    assert err.value.kind == "file"
