"""The WebSocket stream end to end: a real server, a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import Server, make_settings
from vigil.app import build


def ws_url(server: Server) -> str:
    return server.url.replace("http://", "ws://") + "/api/v1/ws"


async def ask(ws: ClientConnection, msg: dict[str, Any] | str | bytes) -> dict[str, Any]:
    await ws.send(msg if isinstance(msg, (str, bytes)) else json.dumps(msg))
    return await recv(ws)


async def recv(ws: ClientConnection, kind: str | None = None, timeout_s: float = 10.0
               ) -> dict[str, Any]:
    """The next message (of ``kind``, skipping others)."""
    deadline = time.monotonic() + timeout_s
    while True:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(
            ws.recv(), max(0.01, deadline - time.monotonic())))
        if kind is None or msg["type"] == kind:
            return msg


def write(server: Server, lines: str, headers: dict[str, str] | None = None) -> None:
    r = httpx.post(server.url + "/write?precision=s", content=lines, headers=headers or {})
    assert r.status_code == 204, r.text


def test_subscribe_updates_alerts_dashboard_and_ping(server: Server) -> None:
    server.components.alerting.start()  # the fixture builds without background threads

    async def run() -> None:
        async with connect(ws_url(server)) as ws:
            assert await ask(ws, {"type": "ping", "data": {"n": 7}}) == {
                "type": "pong", "data": {"n": 7}}
            sub = await ask(ws, {"type": "subscribe", "data": {
                "metrics": [{"name": "cpu_usage", "match": ["host=~a|b"]}],
                "updateFrequency": 0.2}})
            assert sub["type"] == "subscribed" and sub["data"]["updateFrequency"] == 0.2
            assert (await ask(ws, {"type": "subscribe_alerts"}))["type"] == "subscribed_alerts"
            await ws.send(json.dumps({"type": "getDashboardStream",
                                      "data": {"updateFrequency": 0.5}}))
            with httpx.Client(base_url=server.url) as h:
                h.post("/api/v1/channels", json={"name": "ops", "type": "websocket"})
                h.post("/api/v1/rules", json={"name": "hot", "metric": "cpu_usage",
                                              "channels": ["ops"], "condition": {
                                                  "type": "threshold", "op": ">",
                                                  "threshold": 90}})
            now = int(time.time())
            await asyncio.to_thread(write, server, f"cpu,host=a usage=95 {now}\n"
                                    f"cpu,host=c usage=1 {now}\nmem,host=a used=3 {now}")
            got: dict[str, dict[str, Any]] = {}
            while not {"metrics_update", "alert_triggered"} <= set(got) or \
                    got.get("dashboard_update", {}).get("data", {}).get("firing_alerts") != 1:
                msg = await recv(ws)
                got[msg["type"]] = msg
            update = got["metrics_update"]
            assert update["data"]["id"] == sub["data"]["id"]
            assert update["data"]["series"] == [{"name": "cpu_usage", "labels": {"host": "a"},
                                                 "points": [[now * 1000, 95.0]]}]
            assert got["alert_triggered"]["data"]["labels"]["host"] == "a"
            assert got["dashboard_update"]["data"]["series"] == 3
            assert (await ask(ws, {"type": "unsubscribe", "data": {}}))["data"]["ids"] == [
                sub["data"]["id"]]
            await ws.send(json.dumps({"type": "stopDashboardStream"}))

    asyncio.run(run())


@pytest.mark.parametrize(("msg", "field"), [
    ("not json", "message"),
    ({"data": {}}, "type"),
    ({"type": "shout"}, "type"),
    ({"type": "subscribe", "data": {"metrics": []}}, "data.metrics"),
    ({"type": "subscribe", "data": {"metrics": [{"match": []}]}}, "data.metrics[0].name"),
    ({"type": "subscribe", "data": {"metrics": [{"name": "x", "match": "a=b"}]}},
     "data.metrics[0].match"),
    ({"type": "subscribe", "data": {"metrics": [{"name": "x", "match": ["a"]}]}},
     "data.metrics[0].match[0]"),
    ({"type": "subscribe", "data": {"metrics": [{"name": "x"}], "updateFrequency": 0}},
     "data.updateFrequency"),
    ({"type": "getDashboardStream", "data": {"updateFrequency": "fast"}},
     "data.updateFrequency"),
    ({"type": "unsubscribe", "data": {"id": "s999"}}, "data.id"),
])
def test_a_bad_message_gets_an_error_and_the_connection_stays(server: Server, msg: Any,
                                                              field: str) -> None:
    async def run() -> None:
        async with connect(ws_url(server)) as ws:
            err = await ask(ws, msg)
            assert err["type"] == "error" and err["data"]["field"] == field
            assert err["data"]["message"]
            assert (await ask(ws, {"type": "ping"}))["type"] == "pong"

    asyncio.run(run())


def test_many_clients_share_a_selector(server: Server) -> None:
    async def run() -> None:
        clients = [await connect(ws_url(server)) for _ in range(50)]
        try:
            for ws in clients:
                await ask(ws, {"type": "subscribe", "data": {
                    "metrics": [{"name": "load_avg"}], "updateFrequency": 0.1}})
            await asyncio.to_thread(write, server, f"load,host=a avg=1.5 {int(time.time())}")
            got = await asyncio.gather(*(recv(ws, "metrics_update") for ws in clients))
            assert {g["data"]["series"][0]["points"][0][1] for g in got} == {1.5}
        finally:
            for ws in clients:
                await ws.close()

    asyncio.run(run())


@pytest.mark.parametrize("compression", [False, True])
def test_updates_reach_the_client_with_or_without_compression(tmp_path: Path,
                                                              compression: bool) -> None:
    """The fan-out process takes over whatever the server's handshake negotiated: plain
    frames, or permessage-deflate (the client offers it; the setting decides)."""
    c = build(make_settings(tmp_path, stream_compression=compression), start_maintenance=False)
    try:
        with Server(c) as server:
            async def run() -> None:
                async with connect(ws_url(server)) as ws:
                    assert bool(ws.protocol.extensions) is compression
                    await ask(ws, {"type": "subscribe", "data": {
                        "metrics": [{"name": "load_avg"}], "updateFrequency": 0.1}})
                    line = f"load,host=a avg=2.5 {int(time.time())}"
                    await asyncio.to_thread(write, server, line)
                    u = await recv(ws, "metrics_update")
                    assert u["data"]["series"][0]["points"][0][1] == 2.5
                    await ask(ws, {"type": "ping", "data": {"n": 1}})  # and it reads them

            asyncio.run(run())
    finally:
        c.close()


def _raw_ws(port: int, rcvbuf: int) -> socket.socket:
    """A bare WebSocket connection with a tiny receive buffer, that reads only when told."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head
    return s


def _client_frame(payload: bytes) -> bytes:
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload  # zero mask


def _close_reason(s: socket.socket, timeout_s: float) -> str:
    """Read frames until the server's close frame; its code and reason."""
    s.settimeout(timeout_s)
    buf = b""
    while True:
        chunk = s.recv(1 << 20)
        assert chunk, "connection ended without a close frame"
        buf += chunk
        while len(buf) >= 2:
            n, at = buf[1] & 0x7F, 2
            if n == 126:
                n, at = struct.unpack_from("!H", buf, 2)[0], 4
            elif n == 127:
                n, at = struct.unpack_from("!Q", buf, 2)[0], 10
            if len(buf) < at + n:
                break
            if buf[0] & 0x0F == 0x8:
                code = struct.unpack_from("!H", buf, at)[0]
                return f"{code} {buf[at + 2:at + n].decode()}"
            buf = buf[at + n:]


def test_a_client_that_stops_reading_is_disconnected_and_ingestion_goes_on(
        tmp_path: Path) -> None:
    c = build(make_settings(tmp_path, stream_client_buffer_bytes=1000, stream_slow_after="1s",
                            retention_raw=0), start_maintenance=False)
    try:
        with Server(c) as server, httpx.Client(base_url=server.url) as h:
            s = _raw_ws(server.port, rcvbuf=4096)
            s.sendall(_client_frame(json.dumps({"type": "subscribe", "data": {
                "metrics": [{"name": "big_v"}], "updateFrequency": 0.1}}).encode()))
            body = "".join(f"big,i={i:05d} v={i}\n" for i in range(5000))  # ~350 kB an update
            written = 0
            deadline = time.monotonic() + 60
            while c.stream.stats["slow_disconnects"] == 0:  # reported once a second
                assert time.monotonic() < deadline, c.stream.stats
                r = h.post("/write", content=body)
                assert r.status_code == 204, r.text  # the slow client never holds it up
                written += 5000
                time.sleep(0.05)
            assert _close_reason(s, 10).startswith("1008 too slow")
            s.close()
            stats = c.stream.stats
            assert stats["refused"] > 0 and stats["clients"] == 0
            metrics = h.get("/metrics").text
            assert "vigil_stream_slow_disconnects_total 1.0" in metrics
            n = h.get("/api/v1/query", params={"name": "big_v", "fn": "count",
                                               "group_by": "", "start": 0}).json()
            assert sum(p[1] for p in n["series"][0]["points"]) == written
    finally:
        c.close()


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_text_frames_parse_as_the_websocket_library_reads_them(size: int) -> None:
    from websockets.frames import Frame, Opcode
    from websockets.streams import StreamReader

    from vigil.streaming.worker import text_frame

    payload = b"x" * size
    reader = StreamReader()
    reader.feed_data(text_frame(payload))
    parse = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parse)
    except StopIteration as done:
        frame = done.value
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.TEXT, True, payload)


def test_the_fan_out_process_starts_again_after_a_crash(server: Server) -> None:
    from websockets.exceptions import ConnectionClosed

    async def subscribed() -> ClientConnection:
        ws = await connect(ws_url(server))
        await ask(ws, {"type": "subscribe", "data": {
            "metrics": [{"name": "load_avg"}], "updateFrequency": 0.1}})
        return ws

    async def run() -> None:
        ws = await subscribed()
        pid = server.components.stream.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ConnectionClosed):  # its clients are cut off ...
            await recv(ws, timeout_s=10)
        # (the next client may come before or after the server has read the end of the
        # dead process's channel: either way it starts a new one)
        ws = await subscribed()  # ... and the next one starts it again
        assert server.components.stream.pid not in (None, pid)
        status = await asyncio.to_thread(httpx.get, server.url + "/api/v1/status")
        assert status.json()["stream"]["pid"] == server.components.stream.pid
        await asyncio.to_thread(write, server, f"load,host=a avg=4.5 {int(time.time())}")
        u = await recv(ws, "metrics_update")
        assert u["data"]["series"][0]["points"][0][1] == 4.5
        await ws.close()

    asyncio.run(run())


def test_clients_hear_of_a_shutdown_and_are_closed(tmp_path: Path) -> None:
    c = build(make_settings(tmp_path), start_maintenance=False)
    try:
        with Server(c) as server:
            async def run() -> None:
                async with connect(ws_url(server)) as ws:
                    assert (await ask(ws, {"type": "ping"}))["type"] == "pong"
                    pid = c.stream.pid
                    await c.stream.close()
                    note = await recv(ws, "system_notification")
                    assert "shutting down" in note["data"]["message"]
                    await ws.wait_closed()
                    assert ws.close_code == 1001
                    assert pid is not None and c.stream.pid is None

            asyncio.run(run())
    finally:
        c.close()


def test_a_binary_message_gets_an_error(server: Server) -> None:
    async def run() -> None:
        async with connect(ws_url(server)) as ws:
            err = await ask(ws, b"\x00\x01")
            assert err["type"] == "error" and err["data"]["field"] == "message"
            await ws.send([b"\x00", b"\x01"])  # fragmented: one error for the message
            assert (await recv(ws))["type"] == "error"
            await ws.send(['{"type": ', '"ping"}'])  # a fragmented text message is read whole
            assert (await recv(ws))["type"] == "pong"

    asyncio.run(run())


def test_only_rows_some_feed_wants_go_to_the_fan_out_process(server: Server) -> None:
    stream = server.components.stream

    async def forwarded_after(lines: str) -> int:
        before = stream.stats["samples_forwarded"]
        await asyncio.to_thread(write, server, lines)
        return stream.stats["samples_forwarded"] - before

    async def run() -> None:
        now = int(time.time())
        noise = "".join(f"disk,host=h{i} used={i} {now}\n" for i in range(200))
        async with connect(ws_url(server)) as ws:
            await asyncio.sleep(0.3)  # no feed yet: nothing is wanted
            assert await forwarded_after(noise) == 0
            await ask(ws, {"type": "subscribe", "data": {
                "metrics": [{"name": "load_avg"}], "updateFrequency": 0.1}})
            # A new feed may want anything: everything goes until the process has
            # looked at the series, then only what it wants.
            deadline = time.monotonic() + 10
            while await forwarded_after(noise) > 0:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.3)
            assert await forwarded_after(f"load,host=a avg=1 {now}\n{noise}") == 1
            assert (await recv(ws, "metrics_update"))["data"]["series"][0]["name"] == "load_avg"
            await ask(ws, {"type": "subscribe", "data": {  # disk is wanted now: "subscribed"
                "metrics": [{"name": "disk_used"}], "updateFrequency": 0.1}})  # means sent
            await asyncio.to_thread(write, server, f"disk,host=h1 used=42 {now + 1}")
            u = await recv(ws, "metrics_update")
            while u["data"]["series"][0]["name"] != "disk_used":
                u = await recv(ws, "metrics_update")
            assert u["data"]["series"][0]["points"][-1][1] == 42

    asyncio.run(run())


def test_a_client_that_does_not_answer_pings_is_closed(tmp_path: Path) -> None:
    c = build(make_settings(tmp_path, stream_ping_interval="0.3s"), start_maintenance=False)
    try:
        with Server(c) as server:
            s = _raw_ws(server.port, rcvbuf=1 << 16)  # reads, but never answers a ping
            assert _close_reason(s, 10) == "1011 keepalive ping timeout"
            s.close()

            async def answering() -> None:  # the library answers pings: it stays
                async with connect(ws_url(server)) as ws:
                    await asyncio.sleep(1.2)
                    assert (await ask(ws, {"type": "ping"}))["type"] == "pong"

            asyncio.run(answering())
    finally:
        c.close()
