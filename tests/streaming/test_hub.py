"""The hub's fan-out logic on its own: feeds, alignment, coalescing, slow clients.

The outbox here is a list with a byte bound (the real ones, over a socket, are tested
end to end in tests/api/test_ws.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson
import pytest

from tests.conftest import batch_of
from vigil.core.matchers import Matcher
from vigil.core.types import SeriesKey
from vigil.streaming.hub import Hub, Selector


class ListOutbox:
    def __init__(self, max_bytes: int = 1 << 20) -> None:
        self.sent: list[dict[str, Any]] = []
        self.max_bytes, self.held = max_bytes, 0

    def full(self) -> bool:
        return self.held > self.max_bytes

    def put(self, payload: bytes) -> bool:
        if self.full():
            return False
        self.held += len(payload)
        self.sent.append(orjson.loads(payload))
        return True

    def drain(self) -> list[dict[str, Any]]:
        out, self.sent, self.held = self.sent, [], 0
        return out


LATER = 1e9  # a monotonic time at which every update is due
_ids: dict[tuple[str, SeriesKey], int] = {}


def commit(hub: Hub, tenant: str, rows: list[tuple[str, dict[str, str], int, float]]) -> None:
    """What the store does after a commit: the batch and its series' ids."""
    b = batch_of(rows)
    ids = np.array([_ids.setdefault((tenant, m.key), len(_ids) + 1) for m in b.series],
                   np.int32)
    hub.ingest(tenant, b, ids)


def sel(name: str, *match: str) -> Selector:
    return (name, tuple(Matcher.parse(m) for m in match))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.25

    def __call__(self) -> float:
        return self.now


def run(body: Callable[[Hub, Clock], Awaitable[None]]) -> None:
    async def main() -> None:
        clock = Clock()
        hub = Hub(lambda tenant: {"tenant": tenant}, slow_after_s=5.0, tick_s=None, clock=clock)
        await body(hub, clock)
        await hub.close()

    asyncio.run(main())


async def settle() -> None:
    await asyncio.sleep(0)


def flush(hub: Hub, clock: Clock, at: float) -> None:
    clock.now = at
    hub.flush()


def updates(box: ListOutbox) -> list[dict[str, Any]]:
    return [m["data"] for m in box.drain() if m["type"] == "metrics_update"]


def test_subscriptions_with_the_same_selectors_share_one_feed() -> None:
    async def body(hub: Hub, clock: Clock) -> None:
        boxes = [ListOutbox() for _ in range(3)]
        clients = [hub.connect("t", b) for b in boxes]
        ids = [hub.subscribe(c, [sel("cpu", "host=a")], 1.0) for c in clients[:2]]
        ids.append(hub.subscribe(clients[2], [sel("cpu", "host=b")], 1.0))
        assert hub.stats.feeds == 2
        commit(hub, "t", [("cpu", {"host": "a"}, 1000, 1.0), ("cpu", {"host": "b"}, 1000, 2.0),
                          ("cpu", {"host": "a"}, 2000, 3.0), ("mem", {"host": "a"}, 1000, 9.0)])
        await settle()
        flush(hub, clock, LATER)
        got = [updates(b) for b in boxes]
        assert [[u["id"] for u in g] for g in got] == [[ids[0]], [ids[1]], [ids[2]]]
        assert got[0][0]["series"] == got[1][0]["series"] == [
            {"name": "cpu", "labels": {"host": "a"}, "points": [[1000, 1.0], [2000, 3.0]]}]
        assert got[2][0]["series"][0]["points"] == [[1000, 2.0]]
        hub.unsubscribe(clients[0], ids[0])
        assert hub.stats.feeds == 2
        hub.unsubscribe(clients[1], ids[1])
        assert hub.stats.feeds == 1

    run(body)


def test_a_new_subscription_matches_series_seen_before() -> None:
    async def body(hub: Hub, clock: Clock) -> None:
        box_a, box_b = ListOutbox(), ListOutbox()
        a, b = hub.connect("t", box_a), hub.connect("t", box_b)
        hub.subscribe(a, [sel("cpu", "host=a")], 1.0)
        commit(hub, "t", [("cpu", {"host": "a"}, 1000, 1.0), ("cpu", {"host": "b"}, 1000, 2.0)])
        await settle()
        hub.subscribe(b, [sel("cpu", "host=~a|b")], 1.0)  # both series are known by id now
        commit(hub, "t", [("cpu", {"host": "a"}, 2000, 3.0), ("cpu", {"host": "b"}, 2000, 4.0)])
        await settle()
        flush(hub, clock, LATER)
        pts = {s["labels"]["host"]: s["points"] for s in updates(box_b)[0]["series"]}
        assert pts == {"a": [[2000, 3.0]], "b": [[2000, 4.0]]}
        assert [s["points"] for s in updates(box_a)[0]["series"]] == [[[1000, 1.0], [2000, 3.0]]]

    run(body)


def test_tenants_see_only_their_own_series() -> None:
    async def body(hub: Hub, clock: Clock) -> None:
        mine, theirs = ListOutbox(), ListOutbox()
        hub.subscribe(hub.connect("t1", mine), [sel("cpu")], 1.0)
        hub.subscribe(hub.connect("t2", theirs), [sel("cpu")], 1.0)
        commit(hub, "t1", [("cpu", {"host": "a"}, 1000, 1.0)])
        await settle()
        flush(hub, clock, LATER)
        assert len(updates(mine)) == 1
        assert updates(theirs) == []

    run(body)


def test_updates_come_at_their_frequency_and_feeds_spread_their_phases() -> None:
    async def body(hub: Hub, clock: Clock) -> None:
        box = ListOutbox()
        c = hub.connect("t", box)
        others = [hub.subscribe(c, [sel(f"m{i}")], 2.0) for i in range(3)]
        hub.subscribe(c, [sel("cpu")], 2.0)
        phases = sorted({s.feed.phase for s in c.subs.values()})
        assert phases == pytest.approx([0.0, 0.05, 0.1, 0.15])  # one tick apart
        for sub_id in others:
            hub.unsubscribe(c, sub_id)
        commit(hub, "t", [("cpu", {}, 1000, 1.0)])
        await settle()
        (feed,) = {s.feed for s in c.subs.values()}
        assert feed.due % 2.0 == pytest.approx(feed.phase)
        flush(hub, clock, feed.due - 0.01)
        assert updates(box) == []
        due = feed.due
        flush(hub, clock, due)
        assert len(updates(box)) == 1 and feed.due == due + 2.0
        flush(hub, clock, due + 1.0)  # nothing new, nothing due
        assert box.drain() == []

    run(body)


def test_a_full_client_gets_the_latest_points_then_is_dropped_if_it_stays_full() -> None:
    async def body(hub: Hub, clock: Clock) -> None:
        box = ListOutbox(max_bytes=10)
        c = hub.connect("t", box)
        hub.subscribe(c, [sel("cpu")], 1.0)
        (feed,) = {s.feed for s in c.subs.values()}
        t0 = feed.due
        for t in range(3):  # three updates; the first fills the outbox
            commit(hub, "t", [("cpu", {"host": "a"}, 1000 * t + 1, float(t)),
                              ("cpu", {"host": "a"}, 1000 * t + 2, float(t) + 0.5)])
            await settle()
            flush(hub, clock, t0 + t)
        assert len(box.sent) == 1 and hub.stats.refused == 2
        box.drain()  # the client read: room again
        flush(hub, clock, t0 + 4)
        (u,) = updates(box)
        assert u["coalesced"] is True
        assert u["series"][0]["points"] == [[2002, 2.5]]  # the latest point only
        commit(hub, "t", [("cpu", {"host": "a"}, 5000, 5.0)])
        await settle()
        flush(hub, clock, t0 + 5)
        (u,) = updates(box)
        assert "coalesced" not in u and u["series"][0]["points"] == [[5000, 5.0]]
        # Full again, and it stays full past slow_after_s (5 s): dropped with a reason.
        box.held = 100
        hub.send(c, {"type": "pong", "data": {}})
        flush(hub, clock, t0 + 6)
        assert not c.closed.is_set()
        flush(hub, clock, t0 + 6 + 10)
        assert c.closed.is_set() and c.closed_reason and "too slow" in c.closed_reason
        assert hub.stats.slow_disconnects == 1 and hub.stats.clients == 0

    run(body)


def test_dashboards_are_built_once_per_tenant_and_tick() -> None:
    async def body(hub: Hub, clock: Clock) -> None:
        built: list[str] = []

        def board(tenant: str) -> dict[str, str]:
            built.append(tenant)
            return {"tenant": tenant}

        hub._dashboard = board
        boxes = [ListOutbox() for _ in range(3)]
        for box, tenant in zip(boxes, ["t1", "t1", "t2"], strict=True):
            hub.watch_dashboard(hub.connect(tenant, box), 5.0)
        flush(hub, clock, 10.0)
        assert sorted(built) == ["t1", "t2"]
        assert [b.drain()[0]["data"]["tenant"] for b in boxes] == ["t1", "t1", "t2"]

    run(body)


def test_a_dashboard_not_known_yet_is_sent_once_it_is() -> None:
    async def body(_: Hub, clock: Clock) -> None:
        boards: dict[str, dict[str, str]] = {}
        hub = Hub(boards.get, tick_s=None, clock=clock)
        box = ListOutbox()
        hub.watch_dashboard(hub.connect("t", box), 5.0)
        assert hub.dashboard_tenants() == {"t"}
        flush(hub, clock, 10.0)
        assert box.drain() == []
        boards["t"] = {"health": "ok"}
        flush(hub, clock, 10.05)
        assert box.drain() == [{"type": "dashboard_update", "data": {"health": "ok"}}]
        flush(hub, clock, 11.0)  # next due at 15.05
        assert box.drain() == []

    run(body)
