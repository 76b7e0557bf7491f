"""Messages between the server and its fan-out process, over a local stream socket.

A message is a kind, a JSON head and numpy columns, framed by length; a socket (a
WebSocket being handed over) can travel with one as ``SCM_RIGHTS``. Sending never waits:
``Sender`` queues (bounded) and a thread of its own writes, so the store's writer thread
can hand over a committed batch in microseconds, and a batch that finds the queue full is
dropped for streaming and counted — ingestion never waits for clients.
"""

from __future__ import annotations

import array
import collections
import logging
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import orjson

log = logging.getLogger(__name__)

_HEAD = struct.Struct("!II")  # whole frame length, head length
MAX_FDS = 64  # sockets one read can carry
Message = tuple[str, dict[str, Any], list[np.ndarray[Any, Any]]]


def encode(kind: str, head: dict[str, Any], columns: Sequence[np.ndarray[Any, Any]] = ()) -> bytes:
    meta = orjson.dumps({"k": kind, "h": head,
                         "c": [[c.dtype.str, len(c)] for c in columns]})
    parts = [meta, *(np.ascontiguousarray(c).tobytes() for c in columns)]
    body = b"".join(parts)
    return _HEAD.pack(len(body), len(meta)) + body


class Decoder:
    """Frames from a byte stream, as they complete."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[Message]:
        self._buf += data
        while len(self._buf) >= _HEAD.size:
            total, meta_len = _HEAD.unpack_from(self._buf)
            end = _HEAD.size + total
            if len(self._buf) < end:
                return
            body = bytes(self._buf[_HEAD.size:end])
            del self._buf[:end]
            meta = orjson.loads(body[:meta_len])
            columns, at = [], meta_len
            for dtype, n in meta["c"]:
                col = np.frombuffer(body, np.dtype(dtype), n, at)
                columns.append(col)
                at += col.nbytes
            yield meta["k"], meta["h"], columns


class Sender:
    """Queues frames for one socket and writes them from a thread of its own."""

    def __init__(self, sock: socket.socket, max_queued: int = 256) -> None:
        self._sock = sock
        self._max = max_queued
        self._queue: collections.deque[tuple[bytes, list[int]]] = collections.deque()
        self._ready = threading.Condition()
        self._closed = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="vigil-stream-channel",
                                        daemon=True)
        self._thread.start()

    def send(self, frame: bytes, fds: Sequence[int] = (), *, droppable: bool = False) -> bool:
        """Queue ``frame`` (with ``fds``, closed here once sent); False if dropped."""
        with self._ready:
            if self._closed or (droppable and len(self._queue) >= self._max):
                self.dropped += droppable
                return False
            self._queue.append((frame, list(fds)))
            self._ready.notify()
        return True

    def close(self) -> None:
        """Stop after what is queued has been written."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    return
                frame, fds = self._queue.popleft()
            try:
                self._write(frame, fds)
            except OSError as err:  # the other side is gone: its reader notices
                log.debug("stream channel: %s", err)
                with self._ready:
                    self._closed = True
                    for _, unsent in self._queue:
                        fds += unsent
                    self._queue.clear()
                return
            finally:
                for fd in fds:  # ours were duplicates: the other side has its own now
                    socket.close(fd)

    def _write(self, frame: bytes, fds: list[int]) -> None:
        """All of ``frame`` (the event loop on the other side of this socket may have made
        it non-blocking: wait for room rather than fail)."""
        view = memoryview(frame)
        while view:
            try:
                if fds:  # the sockets travel with the frame's first bytes
                    n = self._sock.sendmsg([view], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                     array.array("i", fds))])
                    fds = []
                else:
                    n = self._sock.send(view)
            except (BlockingIOError, InterruptedError):
                select.select([], [self._sock], [], 1.0)
                continue
            view = view[n:]


class Receiver:
    """Reads frames and the sockets that come with them; call ``read`` when readable."""

    def __init__(self, sock: socket.socket, on_message: Callable[[Message, list[int]], None],
                 on_eof: Callable[[], None]) -> None:
        self._sock, self._on_message, self._on_eof = sock, on_message, on_eof
        self._decoder = Decoder()
        self._fds: collections.deque[int] = collections.deque()

    def read(self) -> None:
        try:
            data, anc, _flags, _addr = self._sock.recvmsg(
                1 << 20, socket.CMSG_SPACE(MAX_FDS * 4))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                self._fds.extend(fds)
        if not data:
            self._on_eof()
            return
        for msg in self._decoder.feed(data):
            # A frame carries at most one socket, sent with its first bytes: by the time
            # the frame is complete, its socket has arrived.
            taken = [self._fds.popleft()] if msg[1].get("fd") and self._fds else []
            self._on_message(msg, taken)
