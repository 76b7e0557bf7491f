"""The server's end of the fan-out process (``vigil.streaming.worker``).

The process starts with the first WebSocket and is started again, after a crash, with
the next one. The server hands it each accepted WebSocket (the socket itself) and feeds
it what the hub needs: committed batches (the store's series ids and columns; a series'
key the first time the process could need it), alert events, and the dashboard snapshots
it asks for. It answers with its statistics, which ``stats`` keeps for ``/metrics``, and
with first-message tokens to check (keys and signing secrets stay in the server).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from vigil.core.types import Int32Array, SampleBatch
from vigil.streaming.channel import Message, Receiver, Sender, encode
from vigil.streaming.hub import HubStats
from vigil.streaming.worker import Options

log = logging.getLogger("vigil.stream")

# Checks a first-message token (and the upgrade request's X-Vigil-Tenant, if any): the
# tenant, or raises with the reason.
Verify = Callable[[str, str | None], Awaitable[str]]


class Relay:
    def __init__(self, dashboard: Callable[[str], Mapping[str, object]],
                 options: Options = Options()) -> None:
        self._dashboard = dashboard
        self._options = options
        self._lock = threading.Lock()  # the writer thread's batches vs a restart
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._sender: Sender | None = None
        self._known = np.zeros(0, np.bool_)  # store ids whose key the process has
        self._verify: Verify | None = None  # the API's, given with the first hand-over
        self._ids = itertools.count(1)
        self._reported: dict[str, int] = vars(HubStats())
        self._dropped = 0
        self._forwarded = 0
        # Series no feed wants, by store id (their rows are not sent); None: no feed at
        # all. Until the process says, everything is sent.
        self._mute: npt.NDArray[np.bool_] | None = np.zeros(0, np.bool_)

    @property
    def pid(self) -> int | None:
        """The fan-out process's, while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def stats(self) -> dict[str, int]:
        """The process's last report, and the batches the hand-over dropped."""
        sender = self._sender
        return {**self._reported, "samples_forwarded": self._forwarded,
                "batches_dropped": self._dropped + (sender.dropped if sender else 0)}

    # ------------------------------------------------------------------ sources
    def offer(self, tenant: str, batch: SampleBatch, series_ids: Int32Array) -> None:
        """The store's commit listener (writer thread): queue the batch, or drop it."""
        if self._sender is None:
            return
        with self._lock:
            sender, mute = self._sender, self._mute
            if sender is None or mute is None:
                return
            muted = np.zeros(len(series_ids), np.bool_)
            inside = series_ids < len(mute)
            muted[inside] = mute[series_ids[inside]]
            idx, ts, value = batch.series_idx, batch.ts_ms, batch.value
            if muted.any():
                rows = ~muted[idx]
                if not rows.any():
                    return
                idx, ts, value = idx[rows], ts[rows], value[rows]
            top = int(series_ids.max(initial=-1)) + 1
            if top > len(self._known):
                known = np.zeros(max(top, 2 * len(self._known)), np.bool_)
                known[: len(self._known)] = self._known
                self._known = known
            new = np.flatnonzero(~self._known[series_ids] & ~muted)
            keys = [[int(series_ids[j]), batch.series[j].key.name, batch.series[j].key.labels]
                    for j in new.tolist()]
            frame = encode("batch", {"tenant": tenant, "new": keys},
                           [series_ids, idx, ts, value])
            if sender.send(frame, droppable=True):
                self._known[series_ids[new]] = True
                self._forwarded += len(ts)

    def alert_event(self, _topic: str, msg: Mapping[str, object]) -> None:
        """The bus subscriber for alert transitions (any thread)."""
        sender = self._sender
        if sender is not None:
            sender.send(encode("alert", dict(msg)))

    # ------------------------------------------------------------------ connections
    def handoff(self, fd: int, tenant: str | None, tenant_header: str | None,
                deflate: dict[str, Any] | None, verify: Verify) -> None:
        """Give the process an accepted WebSocket (``fd``: a duplicate of its socket,
        closed here) of ``tenant``, or of a client still to send its token (None), which
        ``verify`` will check with ``tenant_header``."""
        sender = self._start()
        self._verify = verify
        sender.send(encode("conn", {"cid": next(self._ids), "tenant": tenant,
                                    "tenant_header": tenant_header, "deflate": deflate,
                                    "fd": 1}), [fd])

    def _start(self) -> Sender:
        if self._sender is not None and self._proc is not None and self._proc.poll() is None:
            return self._sender
        if self._sock is not None:  # it died, and its end of the channel was not read yet
            self._on_eof(self._sock)
        if self._proc is not None:  # gone, or going: reap it
            try:
                self._proc.wait(1)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        opts = orjson.dumps(dataclasses.asdict(self._options)).decode()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "vigil.streaming.worker", str(theirs.fileno()), opts],
            pass_fds=[theirs.fileno()])
        theirs.close()
        ours.setblocking(True)
        receiver = Receiver(ours, self._on_message, lambda: self._on_eof(ours))
        asyncio.get_running_loop().add_reader(ours.fileno(), receiver.read)
        with self._lock:
            self._sock, self._sender = ours, Sender(ours)
            self._known = np.zeros(0, np.bool_)
            self._mute = np.zeros(0, np.bool_)
        log.info("stream: fan-out process %d started", self._proc.pid)
        return self._sender

    def _on_eof(self, sock: socket.socket) -> None:
        """The process on the other end of ``sock`` is gone (it crashed, or was told to
        stop); a channel already replaced by a new process's is only closed."""
        if sock.fileno() < 0:
            return
        asyncio.get_running_loop().remove_reader(sock.fileno())
        with self._lock:
            current = sock is self._sock
            sender = self._sender if current else None
            if current:
                self._sock = self._sender = None
        if not current:
            sock.close()
            return
        if sender is not None:
            self._dropped += sender.dropped
            sender.close()
        sock.close()
        self._reported = vars(HubStats())
        code = self._proc.poll() if self._proc is not None else None
        if code not in (None, 0):
            log.error("stream: the fan-out process exited with %s; its clients were "
                      "disconnected; it starts again with the next one", code)

    def _on_message(self, msg: Message, _fds: list[int]) -> None:
        kind, head, cols = msg
        sender = self._sender
        if sender is None:
            return
        if kind == "mute":
            mute = None if head["all"] else np.unpackbits(cols[0], count=head["n"]).astype(
                np.bool_)
            with self._lock:
                self._mute = mute
            sender.send(encode("muted", {"seq": head["seq"]}))
        elif kind == "report":
            self._reported = {k: int(v) for k, v in head["stats"].items()}
            if head["boards"]:
                sender.send(encode("boards", {t: dict(self._dashboard(t))
                                              for t in head["boards"]}))
        elif kind == "auth":
            verify = self._verify
            if verify is not None:
                asyncio.get_running_loop().create_task(
                    self._check(head["cid"], verify(head["token"], head.get("tenant_header"))))

    async def _check(self, cid: int, verified: Awaitable[str]) -> None:
        try:
            answer: dict[str, Any] = {"cid": cid, "tenant": await verified}
        except Exception as err:  # the reason goes to the client in the close frame
            answer = {"cid": cid, "error": str(err) or "unauthorized"}
        sender = self._sender
        if sender is not None:
            sender.send(encode("auth", answer))

    async def close(self) -> None:
        """Tell clients the server is going, close them, and stop the process."""
        proc, sender = self._proc, self._sender
        if proc is None or sender is None:
            return
        sender.send(encode("close", {}))
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), 10)
        except TimeoutError:
            proc.kill()
        if self._sock is not None:
            self._on_eof(self._sock)
