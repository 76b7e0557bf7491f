"""The Hub: live updates from committed batches and alert events to subscribed clients.

Everything runs on the server's event loop. The pipeline listener (the writer thread) and
the bus hand work over with ``call_soon_threadsafe``, bounded by a count of batches in
flight (beyond it a batch is skipped for streaming and counted), so ingestion never waits.
Subscriptions are grouped by selector: a batch is matched once per distinct series and
selector, however many clients share the selector. Each client has a bounded outbound
queue; when it is full the client's updates are coalesced to the latest point per series,
and a client that stays full is disconnected with a reason.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vigil.core.matchers import Matcher
from vigil.core.types import Int32Array, SampleBatch, SeriesKey

Selector = tuple[str, tuple[Matcher, ...]]  # metric name, label matchers
MAX_BUFFERED_POINTS = 1000  # per series and subscription, before coalescing
QUEUE_MESSAGES = 256  # outbound messages a client may have waiting
SLOW_AFTER_S = 10.0  # a client whose queue stays full this long is disconnected


@dataclass(eq=False)  # identity: kept in sets
class Subscription:
    id: str
    selectors: list[Selector]
    every_s: float
    due: float = 0.0  # monotonic time of the next update
    points: dict[SeriesKey, list[list[int | float]]] = field(default_factory=dict)


@dataclass(eq=False)  # identity: kept in sets
class Client:
    tenant: str
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_MESSAGES))
    subs: dict[str, Subscription] = field(default_factory=dict)
    alerts: bool = False
    dashboard_every_s: float = 0.0
    dashboard_due: float = 0.0
    full_since: float = 0.0  # when its queue was first found full (0: not full)
    coalescing: bool = False
    closed_reason: str | None = None  # set with ``closed``: the endpoint closes the socket
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class HubStats:
    clients: int = 0
    messages: int = 0
    batches_dropped: int = 0
    coalesced: int = 0
    slow_disconnects: int = 0


class Hub:
    def __init__(self, dashboard: Callable[[str], Mapping[str, object]],
                 max_batches_in_flight: int = 64) -> None:
        self._dashboard = dashboard
        self._max_in_flight = max_batches_in_flight
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[Client] = set()
        self._by_selector: dict[tuple[str, Selector], set[tuple[Client, Subscription]]] = {}
        self._matches: dict[tuple[str, SeriesKey], list[Selector]] = {}
        self._ids = itertools.count(1)
        self.stats = HubStats()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ clients
    def connect(self, tenant: str) -> Client:
        """A new client of ``tenant``; call on the event loop (starts the flusher)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._flusher())
        c = Client(tenant)
        self._clients.add(c)
        self.stats.clients = len(self._clients)
        return c

    def disconnect(self, c: Client) -> None:
        for sub in list(c.subs.values()):
            self.unsubscribe(c, sub.id)
        self._clients.discard(c)
        self.stats.clients = len(self._clients)

    def subscribe(self, c: Client, selectors: list[Selector], every_s: float) -> str:
        sub = Subscription(f"s{next(self._ids)}", selectors, every_s,
                           time.monotonic() + every_s)
        c.subs[sub.id] = sub
        for sel in selectors:
            self._by_selector.setdefault((c.tenant, sel), set()).add((c, sub))
        self._matches.clear()  # a new selector may match series seen before
        return sub.id

    def unsubscribe(self, c: Client, sub_id: str) -> bool:
        sub = c.subs.pop(sub_id, None)
        if sub is None:
            return False
        for sel in sub.selectors:
            holders = self._by_selector.get((c.tenant, sel))
            if holders is not None:
                holders.discard((c, sub))
                if not holders:
                    del self._by_selector[(c.tenant, sel)]
        return True

    def send(self, c: Client, msg: dict[str, Any]) -> None:
        """Queue a message for ``c``; a full queue marks it slow (see ``_flusher``)."""
        try:
            c.queue.put_nowait(msg)
            self.stats.messages += 1
            c.full_since = 0.0
        except asyncio.QueueFull:
            if not c.full_since:
                c.full_since = time.monotonic()
            self.stats.coalesced += 1

    # ------------------------------------------------------------------ sources
    def offer(self, tenant: str, batch: SampleBatch, _ids: Int32Array) -> None:
        """The store's commit listener (writer thread): hand over to the loop, or skip."""
        loop = self._loop
        if loop is None or not self._by_selector:
            return
        if self._in_flight >= self._max_in_flight:
            self.stats.batches_dropped += 1
            return
        self._in_flight += 1
        loop.call_soon_threadsafe(self._ingest, tenant, batch)

    def alert_event(self, _topic: str, msg: Mapping[str, object]) -> None:
        """The bus subscriber for alert transitions (any thread)."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._alert, dict(msg))

    def _alert(self, msg: dict[str, Any]) -> None:
        out = {"type": msg["type"], "data": msg["data"]}
        for c in self._clients:
            if c.alerts and c.tenant == msg.get("tenant"):
                self.send(c, out)

    def _selectors_of(self, tenant: str, key: SeriesKey) -> list[Selector]:
        found = self._matches.get((tenant, key))
        if found is None:
            labels = key.label_dict()
            found = [sel for (t, sel) in self._by_selector if t == tenant
                     and sel[0] == key.name
                     and all(m.matches(labels.get(m.label)) for m in sel[1])]
            self._matches[(tenant, key)] = found
        return found

    def _ingest(self, tenant: str, batch: SampleBatch) -> None:
        self._in_flight -= 1
        wanted = [(j, sels) for j, m in enumerate(batch.series)
                  if (sels := self._selectors_of(tenant, m.key))]
        if not wanted:
            return
        order = np.argsort(batch.series_idx, kind="stable")
        idx = batch.series_idx[order]
        bounds = np.searchsorted(idx, np.arange(len(batch.series) + 1))
        for j, sels in wanted:
            rows = order[bounds[j]:bounds[j + 1]]
            if not len(rows):
                continue
            pts = [[t, v] for t, v in zip(batch.ts_ms[rows].tolist(),
                                          batch.value[rows].tolist(), strict=True)]
            key = batch.series[j].key
            for sel in sels:
                for _, sub in self._by_selector.get((tenant, sel), ()):
                    buf = sub.points.setdefault(key, [])
                    buf.extend(pts)
                    if len(buf) > MAX_BUFFERED_POINTS:
                        del buf[:-1]  # coalesce: the latest point only
                        self.stats.coalesced += 1

    # ------------------------------------------------------------------ flushing
    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            for c in list(self._clients):
                self._flush(c, now)

    def _flush(self, c: Client, now: float) -> None:
        if c.full_since and now - c.full_since > SLOW_AFTER_S:
            c.closed_reason = f"too slow: updates waited more than {SLOW_AFTER_S:g} s"
            self.stats.slow_disconnects += 1
            c.closed.set()
            self.disconnect(c)
            return
        if c.full_since and not c.coalescing:
            c.coalescing = True  # its updates are the latest points from now on
        for sub in c.subs.values():
            if now < sub.due or not sub.points:
                continue
            sub.due = now + sub.every_s
            if c.queue.full():
                for buf in sub.points.values():
                    del buf[:-1]
                continue
            series = [{"name": k.name, "labels": k.label_dict(), "points": pts}
                      for k, pts in sub.points.items()]
            sub.points = {}
            self.send(c, {"type": "metrics_update", "data": {"id": sub.id, "series": series}})
        if c.dashboard_every_s and now >= c.dashboard_due:
            c.dashboard_due = now + c.dashboard_every_s
            self.send(c, {"type": "dashboard_update", "data": dict(self._dashboard(c.tenant))})

    async def close(self) -> None:
        for c in list(self._clients):
            self.send(c, {"type": "system_notification",
                          "data": {"level": "warning", "message": "the server is shutting down"}})
        if self._task is not None:
            self._task.cancel()
