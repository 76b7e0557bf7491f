"""The WebSocket stream end to end: a real server, a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import Server


def ws_url(server: Server) -> str:
    return server.url.replace("http://", "ws://") + "/api/v1/ws"


async def ask(ws: ClientConnection, msg: dict[str, Any] | str) -> dict[str, Any]:
    await ws.send(msg if isinstance(msg, str) else json.dumps(msg))
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
