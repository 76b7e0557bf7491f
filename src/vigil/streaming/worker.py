"""The fan-out process: every live-stream WebSocket, away from the ingesting process.

10,000 dashboards updated once a second are 10,000 socket writes a second, each a
loopback syscall made with the GIL held, plus keep-alive pings and the connections' state:
in the process that ingests they took 25–30 % of its throughput. So the server accepts a
WebSocket (authenticating it if the upgrade request carries a credential), hands the
socket to this process (``Relay``, ``SCM_RIGHTS``) and forgets it. Here the ``Hub`` runs
on an event loop of its own, fed over the channel with committed batches (store series
ids, columns; a series' key the first time it is seen), alert events and dashboard
snapshots, and each connection speaks the WebSocket protocol with websockets' sans-I/O
``ServerProtocol``, already open.

Run by the server as ``python -m vigil.streaming.worker FD OPTIONS_JSON``; it exits when
told to or when the server goes away (the channel closes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import orjson
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from vigil.core.errors import InvalidInput
from vigil.core.logs import setup_logging
from vigil.core.types import SampleBatch, SeriesKey, SeriesMeta
from vigil.streaming.channel import Message, Receiver, Sender, encode
from vigil.streaming.hub import Client, Hub
from vigil.streaming.protocol import handle

log = logging.getLogger("vigil.stream")
CLOSE_TIMEOUT_S = 5.0
AUTH_TIMEOUT_S = 10.0
REPORT_S = 1.0  # stats to the server, dashboard snapshots asked for
# Ingestion comes first: when the cores are busy, the scheduler prefers the server's
# threads to live updates (which coalesce when late; samples must not wait).
NICE = 10


@dataclass(frozen=True)
class Options:
    client_buffer_bytes: int = 256 * 1024
    slow_after_s: float = 10.0
    ping_interval_s: float = 20.0
    max_message_bytes: int = 1 << 20
    log_level: str = "info"
    log_format: str = "text"


def text_frame(payload: bytes) -> bytes:
    """A server's text frame: final, unmasked, no extension (RFC 6455 §5.2). Written here
    rather than with websockets' ``Frame.serialize`` (generic: 3.3 µs against 0.7 µs a
    frame), since this runs once per client and update."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + payload


class _Keys(Sequence[SeriesMeta]):
    """A batch's series, looked up by store id only when the hub asks (new ids only)."""

    def __init__(self, known: dict[int, SeriesMeta], ids: np.ndarray[Any, Any]) -> None:
        self._known, self._ids = known, ids

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, j: Any) -> Any:
        return self._known[int(self._ids[j])]


class Connection(asyncio.Protocol):
    """One WebSocket, open since the server's handshake; also the hub's ``Outbox``."""

    def __init__(self, fanout: Fanout, cid: int, tenant: str | None,
                 tenant_header: str | None, deflate: dict[str, Any] | None) -> None:
        self._fanout, self.cid, self.tenant = fanout, cid, tenant
        self._tenant_header = tenant_header  # X-Vigil-Tenant, for a first-message token
        o = fanout.options
        self._proto = ServerProtocol(state=State.OPEN, max_size=o.max_message_bytes)
        if deflate:  # negotiated in the server's handshake: nothing compressed yet
            self._proto.extensions = [PerMessageDeflate(**deflate,
                                                        compress_settings={"memLevel": 5})]
        self._max = o.client_buffer_bytes
        self._transport: asyncio.Transport | None = None
        self.client: Client | None = None
        self._parts: list[bytes] = []  # a fragmented text message so far
        self._binary = False  # within a binary message (its fragments are skipped)
        self._asked = False  # the token went to the server for checking
        self._pending: list[bytes] = []  # messages after ``auth``, until it is checked
        self._awaiting_pong = False
        self._timers: list[asyncio.TimerHandle] = []  # one-shot: auth, close
        self._pinger: asyncio.TimerHandle | None = None
        self._watch: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ Outbox
    def full(self) -> bool:
        t = self._transport
        return t is not None and t.get_write_buffer_size() > self._max

    def put(self, payload: bytes) -> bool:
        t = self._transport
        if t is None or t.is_closing() or self._proto.state is not State.OPEN:
            return True  # leaving: connection_lost disconnects it
        if self.full():
            return False
        if self._proto.extensions:
            self._proto.send_text(payload)
            self._write_out()
        else:
            t.write(text_frame(payload))
        return True

    # ------------------------------------------------------------------ asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        loop = asyncio.get_running_loop()
        self._pinger = loop.call_later(self._fanout.options.ping_interval_s, self._ping)
        if self.tenant is not None:
            self._join(self.tenant)
        else:
            self._timers.append(loop.call_later(AUTH_TIMEOUT_S, self._auth_timeout))

    def data_received(self, data: bytes) -> None:
        self._proto.receive_data(data)
        for frame in self._proto.events_received():
            if not isinstance(frame, Frame):
                continue
            if frame.opcode is Opcode.BINARY or (frame.opcode is Opcode.CONT and self._binary):
                self._binary = not frame.fin
                if frame.fin:
                    self._reply({"type": "error", "data": {
                        "message": "messages are JSON text", "field": "message"}})
            elif frame.opcode in (Opcode.TEXT, Opcode.CONT):
                self._parts.append(bytes(frame.data))
                if frame.fin:
                    raw, self._parts = b"".join(self._parts), []
                    self._message(raw)
            elif frame.opcode is Opcode.PONG:
                self._awaiting_pong = False
        self._write_out()

    def eof_received(self) -> bool | None:
        self._proto.receive_eof()
        self._write_out()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        for h in [*self._timers, *([self._pinger] if self._pinger else [])]:
            h.cancel()
        if self._watch is not None:
            self._watch.cancel()
        if self.client is not None:
            self._fanout.hub.disconnect(self.client)
        self._fanout.conns.pop(self.cid, None)

    # ------------------------------------------------------------------ protocol
    def _write_out(self) -> None:
        t = self._transport
        if t is None:
            return
        for data in self._proto.data_to_send():
            if data:
                t.write(data)
            else:  # the close handshake is done: end the TCP connection
                t.close()
        if self._proto.state is State.CLOSED and not t.is_closing():
            t.close()

    def close(self, code: int, reason: str) -> None:
        if self._proto.state is State.OPEN:
            self._proto.send_close(code, reason[:120])
            self._write_out()
        t = self._transport
        if t is not None:  # a client that does not read never answers the close
            self._timers.append(asyncio.get_running_loop().call_later(
                CLOSE_TIMEOUT_S, t.abort))

    def _ping(self) -> None:
        if self._awaiting_pong:
            self.close(1011, "keepalive ping timeout")
            return
        self._awaiting_pong = True
        if self._proto.state is State.OPEN:
            self._proto.send_ping(b"vigil")
            self._write_out()
        self._pinger = asyncio.get_running_loop().call_later(
            self._fanout.options.ping_interval_s, self._ping)

    def _message(self, raw: bytes) -> None:
        if self.client is None:
            if self._asked:
                self._pending.append(raw)
            else:
                self._authenticate(raw)
            return
        try:
            reply = handle(self._fanout.hub, self.client, orjson.loads(raw))
        except orjson.JSONDecodeError as err:
            reply = {"type": "error", "data": {"message": f"not JSON: {err}",
                                               "field": "message"}}
        except InvalidInput as err:
            p = err.problems[0]
            reply = {"type": "error", "data": {"message": p.reason, "field": p.field}}
        told = self._fanout.tell_wants(feeds_only=True)  # a new feed: unmute first
        if reply is None:
            return
        if told is None:
            self._reply(reply)
        else:
            self._fanout.after_ack(told, lambda: self._reply(reply))

    def _reply(self, msg: dict[str, Any]) -> None:
        if self.client is not None:
            self._fanout.hub.send(self.client, msg)
        else:
            self.put(orjson.dumps(msg))

    # ------------------------------------------------------------------ auth
    def _authenticate(self, raw: bytes) -> None:
        """The first message must be ``{"type": "auth", "token": ...}``; the server
        checks the token (its keys and signing secrets stay there)."""
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            msg = None
        token = msg.get("token") if isinstance(msg, dict) else None
        if not isinstance(msg, dict) or msg.get("type") != "auth" or not isinstance(token, str):
            self.close(1008, 'send {"type": "auth", "token": ...} first')
            return
        self._asked = True
        self._fanout.ask_auth(self.cid, token, self._tenant_header)

    def authenticated(self, tenant: str | None, error: str | None) -> None:
        pending, self._pending = self._pending, []
        if tenant is None:
            self.close(1008, error or "unauthorized")
            return
        self.tenant = tenant
        self._join(tenant)
        for raw in pending:
            self._message(raw)
        self._write_out()

    def _auth_timeout(self) -> None:
        if self.client is None:
            self.close(1008, 'send {"type": "auth", "token": ...} first')

    def _join(self, tenant: str) -> None:
        self.client = self._fanout.hub.connect(tenant, self)
        self._fanout.tell_wants(feeds_only=True)
        self._watch = asyncio.get_running_loop().create_task(self._closed(self.client))

    async def _closed(self, c: Client) -> None:
        await c.closed.wait()  # the hub dropped it (too slow)
        self.close(1008, c.closed_reason or "closed")


class Fanout:
    def __init__(self, sock: socket.socket, options: Options) -> None:
        self.options = options
        self.hub = Hub(self._board, slow_after_s=options.slow_after_s)
        self.conns: dict[int, Connection] = {}
        self._known: dict[int, SeriesMeta] = {}
        self._boards: dict[str, dict[str, Any]] = {}
        self._sock = sock
        self._sender = Sender(sock)
        self._receiver = Receiver(sock, self._on_message, self._on_eof)
        self._done = asyncio.Event()
        self._told = (-1, -1)  # the wants (``Hub.wants_version``) the server last heard of
        self._told_seq = 0
        self._acked_seq = 0
        self._after_ack: list[tuple[int, Callable[[], None]]] = []

    def tell_wants(self, feeds_only: bool = False) -> int | None:
        """Tell the server which series no feed wants, so that it does not send their
        rows: after a change of feeds at once (``feeds_only``: a new feed may want
        anything), else with the reports. The number of what was told, if anything was."""
        version = self.hub.wants_version
        if version[1] == self._told[1] and (feeds_only or version[0] == self._told[0]):
            return None
        self._told = version
        self._told_seq += 1
        unwanted = self.hub.unwanted()
        head: dict[str, Any] = {"seq": self._told_seq, "all": unwanted is None}
        self._sender.send(encode("mute", head) if unwanted is None else encode(
            "mute", {**head, "n": len(unwanted)}, [np.packbits(unwanted)]))
        return self._told_seq

    def after_ack(self, seq: int, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the server has applied what was told as ``seq``: a client told
        "subscribed" can count on every point committed from then on."""
        if seq <= self._acked_seq:
            fn()
        else:
            self._after_ack.append((seq, fn))

    def _board(self, tenant: str) -> dict[str, Any] | None:
        return self._boards.get(tenant)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._sock.setblocking(False)
        loop.add_reader(self._sock.fileno(), self._receiver.read)
        reporter = loop.create_task(self._report())
        await self._done.wait()
        reporter.cancel()
        loop.remove_reader(self._sock.fileno())
        await self.hub.close()
        for conn in list(self.conns.values()):
            conn.close(1001, "the server is shutting down")
        await asyncio.sleep(0.2)  # let the close frames out
        self._sender.close()

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(REPORT_S)
            self.tell_wants()
            self._sender.send(encode("report", {"stats": vars(self.hub.stats),
                                                "boards": sorted(self.hub.dashboard_tenants())}))

    def ask_auth(self, cid: int, token: str, tenant_header: str | None) -> None:
        self._sender.send(encode("auth", {"cid": cid, "token": token,
                                          "tenant_header": tenant_header}))

    def _on_eof(self) -> None:
        self._done.set()

    def _on_message(self, msg: Message, fds: list[int]) -> None:
        kind, head, cols = msg
        if kind == "batch":
            for sid, name, labels in head["new"]:
                self._known[sid] = SeriesMeta(SeriesKey(name, tuple(map(tuple, labels))))
            ids, idx, ts, value = cols
            self.hub.ingest(head["tenant"], SampleBatch(_Keys(self._known, ids), idx, ts, value),
                            ids)
        elif kind == "conn":
            self._adopt(head, fds)
        elif kind == "alert":
            self.hub.alert(head)
        elif kind == "boards":
            self._boards.update(head)
        elif kind == "auth":
            conn = self.conns.get(head["cid"])
            if conn is not None:
                conn.authenticated(head.get("tenant"), head.get("error"))
        elif kind == "muted":
            self._acked_seq = max(self._acked_seq, head["seq"])
            due = [fn for seq, fn in self._after_ack if seq <= self._acked_seq]
            self._after_ack = [(q, fn) for q, fn in self._after_ack if q > self._acked_seq]
            for fn in due:
                fn()
        elif kind == "close":
            self._done.set()

    def _adopt(self, head: dict[str, Any], fds: list[int]) -> None:
        if not fds:
            log.error("stream: a connection came without its socket")
            return
        sock = socket.socket(fileno=fds[0])
        conn = Connection(self, head["cid"], head.get("tenant"), head.get("tenant_header"),
                          head.get("deflate"))
        self.conns[conn.cid] = conn
        loop = asyncio.get_running_loop()
        task = loop.create_task(loop.connect_accepted_socket(lambda: conn, sock))
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("stream: could not adopt a connection: %s", task.exception())


def main(argv: Sequence[str] = sys.argv[1:]) -> None:
    fd, options = int(argv[0]), Options(**orjson.loads(argv[1]))
    os.nice(NICE)
    setup_logging(options.log_level, options.log_format)
    sock = socket.socket(fileno=fd)

    async def run() -> None:
        await Fanout(sock, options).run()

    try:
        import uvloop
    except ImportError:
        asyncio.run(run())
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run())


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
