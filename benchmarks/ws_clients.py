#!/usr/bin/env python3
"""Many WebSocket clients in one process, for benchmarks/bench_ws.py.

Each client is a bare asyncio protocol on its own connection: the HTTP upgrade, one
``subscribe`` message, then it reads frames and, for every ``metrics_update``, the delay
from the newest point's timestamp (stamped by the server when it parsed the sample, just
before the commit) to now. A full WebSocket library per connection would cost more CPU
than the server's side of the fan-out, on the same two cores; this parses only what the
benchmark needs (unmasked server frames, pings, close).

Driven over stdin/stdout by the benchmark, a line each way::

    ← READY <connected>      all clients connected and subscribed
    → START                  reset the counters
    → STOP                   ← one JSON line of results, then exit

Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import struct
import sys
import time
from array import array
from typing import Any

import orjson

HOST = "127.0.0.1"
_ZERO_MASK = b"\x00\x00\x00\x00"  # a valid masking key; XOR with it leaves the payload


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame (RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + _ZERO_MASK + payload


class Stats:
    def __init__(self) -> None:
        self.reset()
        self.connected = 0
        self.closed: dict[str, int] = {}

    def reset(self) -> None:
        self.messages = 0
        self.updates = 0
        self.bytes = 0
        self.points = 0
        self.coalesced = 0
        self.delays = array("d")


class Client(asyncio.Protocol):
    def __init__(self, stats: Stats, subscribe: bytes, ready: asyncio.Future[None],
                 count_only: bool) -> None:
        self.stats, self.subscribe, self.ready = stats, subscribe, ready
        self.count_only = count_only
        self.buf = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET /api/v1/ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"lost before subscribing: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:end]).split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                self.ready.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            del buf[: end + 4]
            self.upgraded = True
            assert self.transport is not None
            self.transport.write(client_frame(self.subscribe))
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            size, at = b1 & 0x7F, pos + 2
            if size == 126:
                if n - at < 2:
                    break
                size, at = struct.unpack_from("!H", buf, at)[0], at + 2
            elif size == 127:
                if n - at < 8:
                    break
                size, at = struct.unpack_from("!Q", buf, at)[0], at + 8
            if n - at < size:
                break
            self.frame(b0 & 0x0F, bytes(buf[at: at + size]))
            pos = at + size
        del buf[:pos]

    def frame(self, opcode: int, payload: bytes) -> None:
        st = self.stats
        if opcode == 0x1 or opcode == 0x2:
            st.messages += 1
            st.bytes += len(payload)
            if self.count_only and self.ready.done():
                return  # the throughput phase: what arrives, not when
            msg = orjson.loads(payload)
            kind = msg.get("type")
            if kind == "metrics_update":
                st.updates += 1
                data = msg["data"]
                st.coalesced += bool(data.get("coalesced"))
                newest = 0
                for s in data["series"]:
                    pts = s["points"]
                    st.points += len(pts)
                    newest = max(newest, pts[-1][0])
                st.delays.append(time.time() * 1e3 - newest)
            elif kind == "subscribed" and not self.ready.done():
                self.ready.set_result(None)
        elif opcode == 0x9 and self.transport is not None:  # ping → pong
            self.transport.write(client_frame(payload, 0xA))
        elif opcode == 0x8:
            code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
            reason = f"{code} {payload[2:].decode(errors='replace')}"
            st.closed[reason] = st.closed.get(reason, 0) + 1


async def run(a: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stats = Stats()
    gate = asyncio.Semaphore(a.connect_concurrency)

    async def one(i: int) -> None:
        sel = (a.offset + i) % a.selectors
        sub = orjson.dumps({"type": "subscribe", "data": {
            "metrics": [{"name": "bench_value", "match": [f"shard=s{sel:04d}"]}],
            "updateFrequency": a.every}})
        async with gate:
            ready: asyncio.Future[None] = loop.create_future()
            await loop.create_connection(lambda: Client(stats, sub, ready, a.count_only),
                                         HOST, a.port)
            await asyncio.wait_for(ready, 60)
            stats.connected += 1

    await asyncio.gather(*(one(i) for i in range(a.clients)))
    print(f"READY {stats.connected}", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    t0 = cpu0 = 0.0
    while line := (await reader.readline()).decode().strip():
        if line == "START":
            stats.reset()
            t0, cpu0 = time.perf_counter(), _cpu_s()
        elif line == "STOP":
            break
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {
        "connected": stats.connected, "wall_s": wall, "messages": stats.messages,
        "updates": stats.updates, "bytes": stats.bytes, "points": stats.points,
        "coalesced": stats.coalesced, "closed": stats.closed,
        "cpu_s": _cpu_s() - cpu0, "delays_ms": stats.delays.tolist()}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--offset", type=int, default=0, help="first client's selector index")
    ap.add_argument("--selectors", type=int, default=100,
                    help="distinct selectors (shard=s0000..) the clients spread over")
    ap.add_argument("--every", type=float, default=1.0, help="updateFrequency, seconds")
    ap.add_argument("--connect-concurrency", type=int, default=200)
    ap.add_argument("--count-only", action="store_true",
                    help="after subscribing, count messages without parsing them")
    a = ap.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(a))
    else:
        uvloop.run(run(a))


if __name__ == "__main__":
    main()
