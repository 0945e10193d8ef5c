"""A real SMTP server on 127.0.0.1 (aiosmtpd) for email tests: it keeps what it receives."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.feedserver import free_port


# RFC 5322 section 3.6.4: msg-id = "<" id-left "@" id-right ">", id-left = dot-atom-text,
# id-right = dot-atom-text / no-fold-literal (no comments, no folding whitespace).
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
DOT_ATOM_TEXT = rf"{ATEXT}+(?:\.{ATEXT}+)*"
MSG_ID = re.compile(rf"<{DOT_ATOM_TEXT}@(?:{DOT_ATOM_TEXT}|\[[\x21-\x5a\x5e-\x7e]*\])>")


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class Handler:
    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    offer_login: bool = True  # False: EHLO lists no AUTH, as a server that takes no login

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        return responses if self.offer_login else [r for r in responses if not r.startswith("250-AUTH")]

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 Message accepted"


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class SMTPServer:
    """An SMTP server on 127.0.0.1: plain, STARTTLS or implicit TLS, with or without a login
    (`login_over_tls_only`: offered only once the connection is encrypted)."""

    def __init__(self, *, login: tuple[str, str] | None = None, tls: str = "none", cert: tuple[Path, Path] | None = None,
                 login_over_tls_only: bool = False):
        self.handler = Handler()
        self.port = free_port()
        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port}
        if login:
            kwargs |= {"authenticator": _authenticator(*login), "auth_require_tls": login_over_tls_only}
        if tls != "none":
            assert cert is not None
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*cert)
            kwargs |= {"ssl_context": context} if tls == "tls" else {"tls_context": context, "require_starttls": True}
        self.controller = Controller(self.handler, **kwargs)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class HangingServer:
    """An SMTP server on 127.0.0.1 that talks until `stage`, then goes silent, the connection kept
    open (as a stuck server or a dead network path does): "greeting" (it never says hello), a
    command it never answers ("EHLO", "MAIL", "RCPT", "DATA": before its go-ahead, so no message
    was sent), or "message" (it takes the whole message, final dot included, and never confirms
    it: the message may have arrived). Plain SMTP, no STARTTLS, no login. `stalled` is set once
    it went silent; `message` holds what it took.

    `drip`: instead of going silent, it answers at its stage with a reply that never ends, one
    continuation line (`250-x`) every `drip` seconds, so that no read ever waits long enough
    for the client's timeout (a server dripping its reply, slowly and for ever)."""

    STAGES = ("greeting", "EHLO", "MAIL", "RCPT", "DATA", "message")

    def __init__(self, stage: str, *, drip: float | None = None) -> None:
        assert stage in self.STAGES, stage
        self.stage, self.drip = stage, drip
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.stalled = threading.Event()
        self.message = b""
        self._closed = threading.Event()
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            self._connections.append(conn)
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        lines = conn.makefile("rb")
        try:
            if self.stage == "greeting":
                return self._stall(conn)
            conn.sendall(b"220 hang.example ESMTP\r\n")
            for line in lines:
                command = line.split(b" ", 1)[0].strip().upper().decode(errors="replace")
                if command == self.stage:
                    return self._stall(conn)
                if command == "EHLO":
                    conn.sendall(b"250-hang.example\r\n250 8BITMIME\r\n")
                elif command == "DATA":
                    conn.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    while (chunk := lines.readline()) not in (b".\r\n", b""):
                        self.message += chunk
                    if self.stage == "message":
                        return self._stall(conn)
                    conn.sendall(b"250 OK\r\n")
                elif command == "QUIT":
                    conn.sendall(b"221 Bye\r\n")
                    return None
                else:
                    conn.sendall(b"250 OK\r\n")
        except OSError:
            pass  # the client went away
        return None

    def _stall(self, conn: socket.socket) -> None:
        self.stalled.set()
        if self.drip is None:
            self._closed.wait()
            return
        while not self._closed.wait(self.drip):  # OSError once the client cut the connection
            conn.sendall(b"250-x\r\n")

    def __enter__(self) -> HangingServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self.listener.close()
        for conn in self._connections:
            conn.close()


def _authenticator(user: str, password: str) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == password
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself

    return check
