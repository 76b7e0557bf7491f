"""Real receivers for notification tests: an HTTP server and an SMTP server on loopback."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.conftest import free_port


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Records every POST. ``script[path]`` is the list of statuses to answer in turn
    (then 200); ``gates[path]`` makes that path wait until the event is set."""

    requests: list[Request] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    gates: dict[str, threading.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path = self.path.split("?")[0]
                gate = receiver.gates.get(path)
                if gate is not None:
                    gate.wait(30)
                with receiver.lock:
                    receiver.requests.append(Request(self.path, dict(self.headers), body))
                    statuses = receiver.script.get(path)
                    status = statuses.pop(0) if statuses else 200
                self.send_response(status)
                out = b"ok" if status < 400 else b"receiver says no"
                if status == 429:
                    self.send_header("Retry-After", "7")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()

    def on(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.split("?")[0] == path]

    def close(self) -> None:
        for g in self.gates.values():
            g.set()
        self.server.shutdown()
        self.server.server_close()


class _Handler:
    def __init__(self, sink: SmtpReceiver) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: SMTPServer, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session,
                          envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        self.sink.logged_in.append(bool(session.authenticated))
        self.sink.messages.append(
            (envelope.mail_from or "", list(envelope.rcpt_tos), message_from_bytes(content)))
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """An aiosmtpd server on a free loopback port recording (from, to, message) and, in
    ``logged_in``, whether the client authenticated. With ``logins``, AUTH is offered
    and checked against it. With ``ca`` (a test CA), the server has a certificate for
    127.0.0.1 and requires STARTTLS, or speaks TLS from the start if ``implicit_tls``."""

    def __init__(self, logins: dict[str, str] | None = None, *, ca: trustme.CA | None = None,
                 implicit_tls: bool = False) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        self.logged_in: list[bool] = []
        self.port = free_port()
        auth: Callable[..., AuthResult] | None = None
        if logins is not None:
            def auth(server: SMTPServer, session: Session, envelope: Envelope,
                     mechanism: str, data: object) -> AuthResult:
                ok = isinstance(data, LoginPassword) and logins.get(
                    data.login.decode()) == data.password.decode()
                return AuthResult(success=ok, handled=False)
        tls: dict[str, Any] = {"auth_require_tls": False}
        if ca is not None:
            server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
            # aiosmtpd does not count implicit TLS as TLS for AUTH: allow AUTH there.
            tls = ({"ssl_context": server_ctx, "auth_require_tls": False} if implicit_tls else
                   {"tls_context": server_ctx, "require_starttls": True})
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                     authenticator=auth, **tls)
        self.controller.start()

    def wait_for(self, count: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self.controller.stop()
