"""The WebSocket authenticates as HTTP does, and carries only its tenant's data."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.api.test_ws import ask, recv, write, ws_url
from tests.conftest import Server
from tests.security.conftest import AUDIENCE, ISSUER, SECRET, bearer


def test_the_socket_authenticates_and_sees_only_its_tenant(secure_server: Server) -> None:
    async def run() -> None:
        url = ws_url(secure_server)
        with pytest.raises(ConnectionClosed) as refused:  # no credential: closed 1008
            async with connect(url) as ws:
                await ws.send(json.dumps({"type": "ping"}))
                await ws.recv()
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 1008
        viewer = bearer("acme", "viewer")["Authorization"].removeprefix("Bearer ")
        async with connect(url) as ws:  # the token as the first message
            await ws.send(json.dumps({"type": "auth", "token": viewer}))
            await ask(ws, {"type": "subscribe", "data": {"metrics": [{"name": "cpu_usage"}],
                                                         "updateFrequency": 0.1}})
            now = int(time.time())
            await asyncio.to_thread(write, secure_server, f"cpu,host=g usage=1 {now}",
                                    bearer("globex", "editor"))
            await asyncio.to_thread(write, secure_server, f"cpu,host=a usage=2 {now}",
                                    bearer("acme", "editor"))
            update = await recv(ws, "metrics_update")
            assert [s["labels"] for s in update["data"]["series"]] == [{"host": "a"}]

    asyncio.run(run())


def test_a_credential_without_metrics_read_is_refused(secure_server: Server) -> None:
    now = int(time.time())
    alerts_only = jwt.encode({"sub": "pager", "tenant": "acme", "scope": "alerts:read",
                              "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300},
                             SECRET, algorithm="HS256")

    async def run() -> None:
        url = ws_url(secure_server)
        with pytest.raises(InvalidStatus) as refused:  # in the upgrade request: no handshake
            async with connect(url, additional_headers={
                    "Authorization": f"Bearer {alerts_only}"}):
                pass
        assert refused.value.response.status_code == 403
        with pytest.raises(ConnectionClosed) as closed:  # as the first message: 1008
            async with connect(url) as ws:
                await ws.send(json.dumps({"type": "auth", "token": alerts_only}))
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert "metrics:read" in closed.value.rcvd.reason

    asyncio.run(run())
