"""Deliver: digest files written atomically, and digest emails sent over SMTP.

The only module that sends mail. A file is written to a temporary name in the same folder,
flushed to disk, then renamed over the target, so a reader (or a crash) never sees half a
digest. An email is one multipart/alternative message (plain text + HTML) sent with STARTTLS,
implicit TLS or neither, logging in when a username is set; every failure becomes one
DeliveryError whose `kind` says what went wrong (connect, timeout, tls, auth, refused).
`[email] timeout` bounds each exchange with the server, and a send as a whole has a deadline
(`send_deadline`: SEND_DEADLINE_EXCHANGES times it), so a server that drips its replies a line
at a time cannot hold a send (and the worker's digest job) for ever.

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
import threading
import time
from typing import Any
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

from worker.config import EmailSettings
from worker.errors import DeliveryError


def write_atomically(path: Path, text: str, *, make_folder: bool = True) -> None:
    """Replace `path` with `text` in one step: readers see the old file or the new one, whole.
    A symlink stays a link (its target is replaced); a FIFO or a device (/dev/stdout) is
    written to, as a shell's redirection would, since renaming over it would destroy it.
    `make_folder`: create the missing folders (a digest folder), else a missing one is an error."""
    try:
        special = path.exists() and not path.is_file() and not path.is_dir()  # through links: /dev/stdout
    except OSError as exc:  # a name too long
        raise DeliveryError(f"cannot write {path}: {exc.strerror}", kind="file") from None
    if special:
        _write_through(path, text)
        return
    try:
        path = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise DeliveryError(f"cannot write {path}: a symbolic link that loops", kind="file") from None
    short = os.fsencode(path.name)[:200].decode(errors="ignore")  # a name may be 255 bytes long
    temporary = path.with_name(f".{short}.{os.getpid()}.tmp")
    try:
        if make_folder:
            path.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            _keep_mode(path, handle.fileno())
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass  # nothing was written (the folder itself could not be made)
        raise DeliveryError(f"cannot write {path}: {exc.strerror}", kind="file") from None
    _sync_folder(path.parent)


def _keep_mode(path: Path, descriptor: int) -> None:
    """The file replaced keeps its permissions (a chmod 600 export holding a feed's login)."""
    try:
        os.fchmod(descriptor, path.stat().st_mode & 0o777)  # not setuid, setgid or sticky
    except FileNotFoundError:
        pass  # a new file: the umask's permissions


def _write_through(path: Path, text: str) -> None:
    try:
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
    except OSError as exc:
        raise DeliveryError(f"cannot write {path}: {exc.strerror}", kind="file") from None


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


SEND_DEADLINE_EXCHANGES = 4  # a whole send is allowed this many times [email] timeout


def send_deadline(email: EmailSettings) -> float:
    """Seconds a whole send may take, from connecting to the server's last reply: a fixed number
    of exchanges' worth (2 minutes with the default timeout of 30 s). A healthy server needs a
    fraction of it; one that keeps every exchange just under the timeout, or drips a reply line
    by line, is cut off."""
    return SEND_DEADLINE_EXCHANGES * email.timeout


def send_message(
    email: EmailSettings, message: EmailMessage, recipients: Sequence[str] | None = None, *,
    stop: threading.Event | None = None, handing_over: Callable[[], None] | None = None,
) -> None:
    """Send one message to the SMTP server of `email`; raises DeliveryError.

    `stop` set (SIGTERM, Ctrl-C) cuts the connection at once instead of after the timeout: the
    error's kind is "stopped" when the message was not handed over yet (it was not sent), else
    "unconfirmed". `handing_over` runs after the server's go-ahead to DATA, just before the
    message goes out: until then the server cannot have it; from then on it may.

    A send that takes longer than `send_deadline` in all is cut off the same way: kind "timeout"
    when the message was not handed over yet (not sent: retried later), else "unconfirmed"."""
    where = f"{email.smtp_host}:{email.smtp_port}"
    limit = send_deadline(email)
    deadline = time.monotonic() + limit
    if stop is not None and stop.is_set():
        raise DeliveryError(f"sending through {where} was stopped before it began: it was not sent", kind="stopped")
    context = ssl.create_default_context(cafile=str(email.ca_file) if email.ca_file else None)
    smtp = _client(email, context)
    data = _HandOver(smtp, handing_over)
    smtp.data = data  # type: ignore[method-assign]
    watch = _Watch(smtp, stop, deadline)
    try:
        with smtp:
            _open(smtp, email, context)
            refused = smtp.send_message(message, to_addrs=list(recipients or email.to))
    except (smtplib.SMTPException, OSError) as exc:  # smtplib's errors are OSErrors too
        raise _failure(exc, email, limit, watch.cut, data.handed_over) from None
    finally:
        watch.close()
    if refused:
        raise DeliveryError(f"the SMTP server refused some recipients: {', '.join(sorted(refused))}", kind="refused")




class _HandOver:
    """smtplib's DATA in its two steps, so that `handing_over` runs between them: `handed_over`
    from then on (the server may have the message)."""

    def __init__(self, smtp: smtplib.SMTP, handing_over: Callable[[], None] | None) -> None:
        self.smtp, self.handing_over, self.handed_over = smtp, handing_over, False

    def __call__(self, msg: Any) -> tuple[int, bytes]:
        code, reply = self.smtp.docmd("DATA")
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        if self.handing_over:
            self.handing_over()
        self.handed_over = True
        self.smtp.send(_dot_stuffed(msg))
        return self.smtp.getreply()

def _failure(exc: OSError, email: EmailSettings, limit: float, cut: str | None, handed_over: bool) -> DeliveryError:
    """What a failed send means, in the order it is decided: the server's refusals, a send cut
    short (by the deadline or a stop), then the connection's failures. Once the message was
    handed over, a send that ends without the server's word is "unconfirmed": a digest is sent at
    most once, so that is never retried by itself."""
    where = f"{email.smtp_host}:{email.smtp_port}"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return DeliveryError(f"the SMTP server {where} rejected the login for {email.username}: {_reply(exc)}",
                             kind="auth", hint=f"check [email] username, and the password in {_password_source(email)}")
    if isinstance(exc, (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError)):
        return DeliveryError(f"the SMTP server refused the message: {_reply(exc)}", kind="refused")
    if cut == "deadline":
        took = f"the SMTP server {where} took longer than {limit:g} s for the whole send"
        if handed_over:  # as a server that never confirms: it may have arrived
            return DeliveryError(f"{took}, and did not confirm the message: it may have arrived", kind="unconfirmed")
        return DeliveryError(took, kind="timeout")  # not sent: retried with backoff
    if cut:
        if handed_over:
            return DeliveryError(f"sending through {where} was stopped after the message was handed over, before the "
                                 "server confirmed it: it may have arrived", kind="unconfirmed")
        return DeliveryError(f"sending through {where} was stopped before the message was handed over: it was not sent",
                             kind="stopped")
    if handed_over and isinstance(exc, (TimeoutError, socket.timeout, smtplib.SMTPServerDisconnected, ConnectionError)):
        # The server had the message and did not say whether it took it: it may have arrived.
        return DeliveryError(f"the SMTP server {where} did not confirm the message: it may have arrived",
                             kind="unconfirmed")
    timed_out = isinstance(exc, (TimeoutError, socket.timeout)) or (  # smtplib's way of saying "timed out" too
        isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, (TimeoutError, socket.timeout)))
    if timed_out:
        return DeliveryError(f"the SMTP server {where} did not answer in time", kind="timeout")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return DeliveryError(f"the SMTP server {where} closed the connection", kind="connect")
    if isinstance(exc, ssl.SSLError):
        return DeliveryError(f"TLS with {where} failed: {exc}", kind="tls")
    return DeliveryError(f"cannot send through {where}: {exc}", kind="connect")

def _client(email: EmailSettings, context: ssl.SSLContext) -> smtplib.SMTP:
    """An SMTP client for the server of `email`, not connected yet: its socket is there for the
    stop watch from the first byte (a server that never greets is cut short too)."""
    smtp = (smtplib.SMTP_SSL(timeout=email.timeout, context=context) if email.security == "tls"
            else smtplib.SMTP(timeout=email.timeout))
    smtp._host = email.smtp_host  # type: ignore[attr-defined]  # TLS checks the certificate's name against it
    return smtp


def _open(smtp: smtplib.SMTP, email: EmailSettings, context: ssl.SSLContext) -> None:
    """Connect, upgrade to TLS (STARTTLS) and log in as `email` says; a server that does not offer
    what [email] asks for gets one sentence saying what to change (smtplib's own text, glued to
    ours, read "does not support STARTTLS extension not supported by server")."""
    where = f"{email.smtp_host}:{email.smtp_port}"
    code, reply = smtp.connect(email.smtp_host, email.smtp_port)
    if code != 220:
        raise smtplib.SMTPConnectError(code, reply)
    if email.security == "starttls":
        smtp.ehlo()
        if not smtp.has_extn("starttls"):
            raise DeliveryError(f'the SMTP server {where} does not offer STARTTLS: in [email], set security = "tls" if it '
                                'expects TLS from the start (usually port 465), or security = "none" to send unencrypted '
                                "(only to a server on this machine or a network you trust)", kind="tls")
        smtp.starttls(context=context)
    if email.username:
        smtp.ehlo_or_helo_if_needed()
        if not smtp.has_extn("auth"):
            change = ('set security = "starttls" or "tls" (most servers offer a login over TLS only), or remove username '
                      "if the server needs no login" if email.security == "none" else
                      "remove username if the server needs no login, or set smtp_port to its submission port (usually "
                      '587, or 465 with security = "tls")')
            raise DeliveryError(f"the SMTP server {where} offers no login (AUTH) but [email] username is set: in [email], "
                                f"{change}", kind="auth")
        smtp.login(email.username, email.password or "")


def _password_source(email: EmailSettings) -> str:
    """Where the password was read from (the variable first, as the config does): never the password."""
    if email.password_env and email.password_env in os.environ:
        return f"environment variable {email.password_env}"
    return f"file {email.password_file}" if email.password_file else "[email] password_env or password_file"


def _dot_stuffed(msg: bytes) -> bytes:
    """A message as DATA sends it (RFC 5321 4.5.2): a dot that starts a line doubled, then CRLF . CRLF."""
    body = re.sub(rb"(?m)^\.", b"..", msg)
    return body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n"


class _Watch:
    """Cuts the connection of `smtp` once `stop` is set or `deadline` (a time.monotonic() value)
    has passed. smtplib waits for each reply up to its timeout and cannot be interrupted
    otherwise, so a stopped worker would hang that long, and a server that keeps sending a reply
    line by line (each read well within the timeout) would hold the send for ever."""

    def __init__(self, smtp: smtplib.SMTP, stop: threading.Event | None, deadline: float) -> None:
        self.cut: str | None = None  # "stop" or "deadline", read after the send failed: the cut made it fail
        self._done = threading.Event()
        threading.Thread(target=self._watch, args=(smtp, stop, deadline), name="smtp-watch", daemon=True).start()

    def _watch(self, smtp: smtplib.SMTP, stop: threading.Event | None, deadline: float) -> None:
        while not self._done.wait(0.05):
            why = ("stop" if stop is not None and stop.is_set() else
                   "deadline" if time.monotonic() >= deadline else None)
            if why and (sock := smtp.sock) is not None:  # no socket yet: connecting (bounded by the timeout)
                self.cut = why
                try:  # the plain socket's shutdown: a blocked read or write returns at once
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass  # closed already
                return

    def close(self) -> None:
        self._done.set()


def _reply(exc: Exception) -> str:
    code = getattr(exc, "smtp_code", None)
    text = getattr(exc, "smtp_error", b"")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{rcpt}: {c} {t.decode(errors='replace')}" for rcpt, (c, t) in exc.recipients.items())
    message = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    return f"{code} {message}".strip() if code else str(exc)
