"""Deliver: digest files written atomically, and digest emails sent over SMTP.

The only module that sends mail. A file is written to a temporary name in the same folder,
flushed to disk, then renamed over the target, so a reader (or a crash) never sees half a
digest. An email is one multipart/alternative message (plain text + HTML) sent with STARTTLS,
implicit TLS or neither, logging in when a username is set; every failure becomes one
DeliveryError whose `kind` says what went wrong (connect, timeout, tls, auth, refused).

A digest's Message-ID is stable (`stable_message_id`): every send of one digest, a resend
included, carries the same one, so mail systems that have the message already can tell the
copy for what it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import smtplib
import socket
import ssl
from typing import Any
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

from worker.config import EmailSettings
from worker.errors import DeliveryError


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step: readers see the old file or the new one, whole."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass  # nothing was written (the folder itself could not be made)
        raise DeliveryError(f"cannot write {path}: {exc.strerror}", kind="file") from None
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (where the system allows opening a folder)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


FALLBACK_DOMAIN = "storywatch.invalid"  # reserved (RFC 2606): no real host's Message-IDs end in it
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")


def message_domain(sender: str) -> str:
    """The domain of a Message-ID: the sender's ("Name <a@Example.org>" → example.org, in
    ASCII), else FALLBACK_DOMAIN (no sender, an address literal, a name IDNA refuses)."""
    _, at, domain = parseaddr(sender)[1].rpartition("@")
    try:
        domain = domain.lower().encode("idna").decode("ascii")
    except UnicodeError:
        return FALLBACK_DOMAIN
    return domain if at and _HOST.fullmatch(domain) else FALLBACK_DOMAIN


def stable_message_id(key: str, name: str, sender: str) -> str:
    """`<NAME.TOKEN@DOMAIN>` (RFC 5322 msg-id; NAME a dot-atom such as "digest.2024-01-28"):
    TOKEN is the HMAC-SHA256 of NAME under `key` (the store's secret), cut to 96 bits. One key
    and name always give the same id; another key gives another, and without the key nobody can
    foretell the next one (and slip in a message with it that would make the real one look like
    a copy)."""
    token = hmac.new(key.encode(), name.encode(), hashlib.sha256).hexdigest()[:24]
    return f"<{name}.{token}@{message_domain(sender)}>"


def build_message(
    email: EmailSettings, *, subject: str, text: str, html: str, date: dt.datetime, message_id: str | None = None
) -> EmailMessage:
    """A multipart/alternative digest: the plain text first, the HTML as the richer part.
    Without `message_id`, a new random one."""
    message = EmailMessage()
    message["Subject"] = subject
    if email.from_addr:  # unset when email is off and the digest is only printed as an email
        message["From"] = email.from_addr
    if email.to:
        message["To"] = ", ".join(email.to)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id or make_msgid(domain=message_domain(email.from_addr))
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def send_message(email: EmailSettings, message: EmailMessage, recipients: Sequence[str] | None = None) -> None:
    """Send one message to the SMTP server of `email`; raises DeliveryError."""
    context = ssl.create_default_context(cafile=str(email.ca_file) if email.ca_file else None)
    handed_over = False
    try:
        with _connect(email, context) as smtp:
            if email.username:
                smtp.login(email.username, email.password or "")
            data = smtp.data

            def tracked_data(msg: Any) -> tuple[int, bytes]:
                nonlocal handed_over
                handed_over = True  # from here on the server may have the message
                return data(msg)

            smtp.data = tracked_data  # type: ignore[method-assign]
            refused = smtp.send_message(message, to_addrs=list(recipients or email.to))
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"the SMTP server rejected the login for {email.username}: {_reply(exc)}", kind="auth") from None
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        raise DeliveryError(f"the SMTP server refused the message: {_reply(exc)}", kind="refused") from None
    except (TimeoutError, socket.timeout, smtplib.SMTPServerDisconnected, ConnectionError) if handed_over else ():
        # The server had the message and did not say whether it took it: it may have arrived.
        # A digest is sent at most once, so this is "unconfirmed", never retried by itself.
        raise DeliveryError(f"the SMTP server {email.smtp_host}:{email.smtp_port} did not confirm the message: "
                            "it may have arrived", kind="unconfirmed") from None
    except (TimeoutError, socket.timeout):
        raise DeliveryError(f"the SMTP server {email.smtp_host}:{email.smtp_port} did not answer in time", kind="timeout") from None
    except smtplib.SMTPServerDisconnected as exc:
        if isinstance(exc.__context__, (TimeoutError, socket.timeout)):  # smtplib's way of saying "timed out"
            raise DeliveryError(f"the SMTP server {email.smtp_host}:{email.smtp_port} did not answer in time",
                                kind="timeout") from None
        raise DeliveryError(f"the SMTP server {email.smtp_host}:{email.smtp_port} closed the connection", kind="connect") from None
    except ssl.SSLError as exc:
        raise DeliveryError(f"TLS with {email.smtp_host}:{email.smtp_port} failed: {exc}", kind="tls") from None
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(f"the SMTP server does not support {exc}", kind="tls") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"cannot send through {email.smtp_host}:{email.smtp_port}: {exc}", kind="connect") from None
    if refused:
        raise DeliveryError(f"the SMTP server refused some recipients: {', '.join(sorted(refused))}", kind="refused")


def _connect(email: EmailSettings, context: ssl.SSLContext) -> smtplib.SMTP:
    if email.security == "tls":
        return smtplib.SMTP_SSL(email.smtp_host, email.smtp_port, timeout=email.timeout, context=context)
    smtp = smtplib.SMTP(email.smtp_host, email.smtp_port, timeout=email.timeout)
    if email.security == "starttls":
        try:
            smtp.starttls(context=context)
        except BaseException:
            smtp.close()
            raise
    return smtp


def _reply(exc: Exception) -> str:
    code = getattr(exc, "smtp_code", None)
    text = getattr(exc, "smtp_error", b"")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{rcpt}: {c} {t.decode(errors='replace')}" for rcpt, (c, t) in exc.recipients.items())
    message = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    return f"{code} {message}".strip() if code else str(exc)
