"""The Hub: live updates from committed batches and alert events to subscribed clients.

Everything runs on the server's event loop. The store's commit listener (the writer
thread) and the bus hand work over with ``call_soon_threadsafe``, bounded by a count of
batches in flight (beyond it a batch is skipped for streaming and counted), so ingestion
never waits.

The cost must not grow with the number of clients where it need not: subscriptions of a
tenant with the same selectors and update frequency share a **feed**. A committed batch
maps to the feeds that want each series with one numpy look-up (``SeriesCodes``, by the
store's series ids), its points are buffered once per feed, and at each update a feed's
message is encoded once — only the subscription id differs per client. Updates are
aligned to multiples of their frequency, so all 1-second feeds go out in the same tick.

Each client writes to an ``Outbox`` (the socket, as the API layer provides it) that
refuses a message while the client's unsent bytes are over its bound. A subscription
that missed an update that way gets, once there is room, a coalesced update (the latest
point of each series, ``"coalesced": true``) instead of what it missed; a client whose
outbox stays full for ``slow_after_s`` is disconnected with a reason.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import orjson

from vigil.core.matchers import Matcher, MatcherIndex
from vigil.core.series_codes import SeriesCodes
from vigil.core.types import Int32Array, SampleBatch, SeriesKey

Selector = tuple[str, tuple[Matcher, ...]]  # metric name, label matchers
Point = list[int | float]  # [epoch_ms, value]
MAX_BUFFERED_POINTS = 1000  # per series and feed between updates, before coalescing
SLOW_AFTER_S = 10.0  # a client whose outbox stays full this long is disconnected
TICK_S = 0.05  # how often due updates are looked for


class Outbox(Protocol):
    """Where a client's messages go: its socket, as seen from the hub."""

    def put(self, payload: bytes) -> bool:
        """Send one encoded JSON message, or refuse it (False) while the client is full."""
        ...

    def full(self) -> bool:
        ...


@dataclass(eq=False)  # identity: kept in sets
class Feed:
    """The points of the series some selectors match, for every subscription of a tenant
    with those selectors and that update frequency."""

    tenant: str
    selectors: tuple[Selector, ...]
    every_s: float
    due: float  # monotonic time of the next update
    subs: set[Subscription] = field(default_factory=set)
    points: dict[SeriesKey, list[Point]] = field(default_factory=dict)  # since the last update
    latest: dict[SeriesKey, Point] = field(default_factory=dict)  # for coalesced updates

    def wants(self, tenant: str, key: SeriesKey) -> bool:
        if tenant != self.tenant:
            return False
        labels = key.label_dict()
        return any(name == key.name and all(m.matches(labels.get(m.label)) for m in ms)
                   for name, ms in self.selectors)


@dataclass(eq=False)
class Subscription:
    id: str
    client: Client
    feed: Feed
    behind: bool = False  # missed an update: gets the latest points next


@dataclass(eq=False)
class Client:
    tenant: str
    outbox: Outbox
    subs: dict[str, Subscription] = field(default_factory=dict)
    alerts: bool = False
    dashboard_every_s: float = 0.0
    dashboard_due: float = 0.0
    full_since: float = 0.0  # when its outbox first refused a message (0: it did not)
    closed_reason: str | None = None  # set with ``closed``: the endpoint closes the socket
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class HubStats:
    clients: int = 0
    feeds: int = 0
    messages: int = 0
    bytes: int = 0
    refused: int = 0  # messages a full outbox refused
    coalesced: int = 0  # updates sent as the latest points instead of all of them
    batches_dropped: int = 0
    slow_disconnects: int = 0


def metrics_update(sub_id: str, body: bytes, coalesced: bool = False) -> bytes:
    """A ``metrics_update`` message around an encoded series list (shared by a feed's
    subscriptions: only the id differs)."""
    flag = b',"coalesced":true' if coalesced else b""
    return (b'{"type":"metrics_update","data":{"id":"' + sub_id.encode() + b'"' + flag
            + b',"series":' + body + b"}}")


class Hub:
    def __init__(self, dashboard: Callable[[str], Mapping[str, object]], *,
                 max_batches_in_flight: int = 64, slow_after_s: float = SLOW_AFTER_S,
                 tick_s: float | None = TICK_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``tick_s``: how often ``flush`` runs on the loop (None: the caller runs it)."""
        self._dashboard = dashboard
        self._clock = clock
        self._tick_s = tick_s
        self._max_in_flight = max_batches_in_flight
        self._slow_after_s = slow_after_s
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._clients: set[Client] = set()
        self._full: set[Client] = set()  # clients whose outbox refused a message
        self._dashboards: set[Client] = set()
        self._feeds: dict[tuple[str, tuple[Selector, ...], float], Feed] = {}
        self._index: dict[tuple[str, str], MatcherIndex[Feed]] = {}  # (tenant, metric)
        # Which feeds want a series: a code per store id, naming a tuple of feeds.
        self._codes = SeriesCodes()
        self._feed_sets: list[tuple[Feed, ...]] = [()]
        self._set_code: dict[tuple[Feed, ...], int] = {(): 0}
        self._ids = itertools.count(1)
        self.stats = HubStats()

    # ------------------------------------------------------------------ clients
    @property
    def clients(self) -> tuple[Client, ...]:
        return tuple(self._clients)

    def connect(self, tenant: str, outbox: Outbox) -> Client:
        """A new client of ``tenant``; call on the event loop (starts the flusher)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            if self._tick_s is not None:
                self._task = self._loop.create_task(self._flusher(self._tick_s))
        c = Client(tenant, outbox)
        self._clients.add(c)
        self.stats.clients = len(self._clients)
        return c

    def disconnect(self, c: Client) -> None:
        for sub_id in list(c.subs):
            self.unsubscribe(c, sub_id)
        self._clients.discard(c)
        self._full.discard(c)
        self._dashboards.discard(c)
        self.stats.clients = len(self._clients)

    def subscribe(self, c: Client, selectors: list[Selector], every_s: float) -> str:
        key = (c.tenant, tuple(selectors), every_s)
        feed = self._feeds.get(key)
        if feed is None:
            now = self._clock()
            feed = self._feeds[key] = Feed(c.tenant, key[1], every_s,
                                           (math.floor(now / every_s) + 1) * every_s)
            for name, ms in feed.selectors:
                self._index.setdefault((c.tenant, name), MatcherIndex()).add(feed, ms)
            self._feeds_changed()
        sub = Subscription(f"s{next(self._ids)}", c, feed)
        feed.subs.add(sub)
        c.subs[sub.id] = sub
        return sub.id

    def unsubscribe(self, c: Client, sub_id: str) -> bool:
        sub = c.subs.pop(sub_id, None)
        if sub is None:
            return False
        feed = sub.feed
        feed.subs.discard(sub)
        if not feed.subs:
            del self._feeds[(feed.tenant, feed.selectors, feed.every_s)]
            for name, ms in feed.selectors:
                index = self._index[(feed.tenant, name)]
                index.remove(feed, ms)
                if not index:
                    del self._index[(feed.tenant, name)]
            self._feeds_changed()
        return True

    def watch_dashboard(self, c: Client, every_s: float) -> None:
        """A ``dashboard_update`` every ``every_s`` seconds from now (0: stop)."""
        c.dashboard_every_s, c.dashboard_due = every_s, 0.0
        (self._dashboards.add if every_s else self._dashboards.discard)(c)

    def send(self, c: Client, msg: Mapping[str, Any]) -> None:
        """Send ``msg`` to ``c`` (a full client misses it, and is marked slow)."""
        self._put(c, orjson.dumps(msg))

    def _put(self, c: Client, payload: bytes) -> bool:
        if c.outbox.put(payload):
            self.stats.messages += 1
            self.stats.bytes += len(payload)
            return True
        self.stats.refused += 1
        if not c.full_since:
            c.full_since = self._clock()
            self._full.add(c)
        return False

    # ------------------------------------------------------------------ sources
    def offer(self, tenant: str, batch: SampleBatch, series_ids: Int32Array) -> None:
        """The store's commit listener (writer thread): hand over to the loop, or skip."""
        loop = self._loop
        if loop is None or not self._feeds:
            return
        if self._in_flight >= self._max_in_flight:
            self.stats.batches_dropped += 1
            return
        self._in_flight += 1
        loop.call_soon_threadsafe(self._ingest, tenant, batch, series_ids)

    def alert_event(self, _topic: str, msg: Mapping[str, object]) -> None:
        """The bus subscriber for alert transitions (any thread)."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._alert, dict(msg))

    def _alert(self, msg: dict[str, Any]) -> None:
        payload = orjson.dumps({"type": msg["type"], "data": msg["data"]})
        for c in list(self._clients):
            if c.alerts and c.tenant == msg.get("tenant"):
                self._put(c, payload)

    def _feeds_changed(self) -> None:
        self._codes.clear()
        self._feed_sets, self._set_code = [()], {(): 0}
        self.stats.feeds = len(self._feeds)

    def _code(self, tenant: str, key: SeriesKey) -> int:
        """The code of the tuple of feeds that want a series not looked up before."""
        index = self._index.get((tenant, key.name))
        feeds = () if index is None else tuple(
            f for f in dict.fromkeys(index.candidates(key.labels)) if f.wants(tenant, key))
        code = self._set_code.get(feeds)
        if code is None:
            code = self._set_code[feeds] = len(self._feed_sets)
            self._feed_sets.append(feeds)
        return code

    def _ingest(self, tenant: str, batch: SampleBatch, series_ids: Int32Array) -> None:
        self._in_flight -= 1
        codes = self._codes.codes(batch, series_ids, lambda key: self._code(tenant, key))
        wanted = np.flatnonzero(codes)
        if not len(wanted):
            return
        # The batch's rows of wanted series, grouped by series (time order kept).
        rows = np.flatnonzero(codes[batch.series_idx] > 0)
        rows = rows[np.argsort(batch.series_idx[rows], kind="stable")]
        idx = batch.series_idx[rows]
        bounds = [*np.searchsorted(idx, wanted, side="left").tolist(), len(rows)]
        ts, val = batch.ts_ms[rows].tolist(), batch.value[rows].tolist()
        for n, j in enumerate(wanted.tolist()):
            a, b = bounds[n], bounds[n + 1]
            if a == b:
                continue
            pts: list[Point] = [[t, v] for t, v in zip(ts[a:b], val[a:b], strict=True)]
            key = batch.series[j].key
            for feed in self._feed_sets[codes[j]]:
                buf = feed.points.setdefault(key, [])
                buf.extend(pts)
                if len(buf) > MAX_BUFFERED_POINTS:
                    del buf[:-1]  # coalesce: the latest point only
                feed.latest[key] = pts[-1]

    # ------------------------------------------------------------------ flushing
    async def _flusher(self, tick_s: float) -> None:
        while True:
            await asyncio.sleep(tick_s)
            self.flush()

    def flush(self) -> None:
        """Send what is due: feed updates, dashboards; drop slow clients."""
        now = self._clock()
        for c in list(self._full):
            if not c.outbox.full():
                c.full_since = 0.0
                self._full.discard(c)
            elif now - c.full_since > self._slow_after_s:
                self._drop_slow(c)
        for feed in list(self._feeds.values()):
            if now >= feed.due:
                feed.due = (math.floor(now / feed.every_s) + 1) * feed.every_s
                self._update(feed)
        boards: dict[str, bytes] = {}
        for c in list(self._dashboards):
            if now >= c.dashboard_due:
                c.dashboard_due = now + c.dashboard_every_s
                if c.tenant not in boards:
                    boards[c.tenant] = orjson.dumps({
                        "type": "dashboard_update", "data": dict(self._dashboard(c.tenant))})
                self._put(c, boards[c.tenant])

    def _update(self, feed: Feed) -> None:
        body = orjson.dumps(_series(feed.points)) if feed.points else None
        latest: bytes | None = None
        feed.points = {}
        for sub in list(feed.subs):
            if sub.behind:
                if latest is None:
                    latest = orjson.dumps(_series({k: [p] for k, p in feed.latest.items()}))
                if self._put(sub.client, metrics_update(sub.id, latest, coalesced=True)):
                    sub.behind = False
                    self.stats.coalesced += 1
            elif body is not None and not self._put(sub.client, metrics_update(sub.id, body)):
                sub.behind = True

    def _drop_slow(self, c: Client) -> None:
        c.closed_reason = f"too slow: updates waited more than {self._slow_after_s:g} s"
        self.stats.slow_disconnects += 1
        c.closed.set()
        self.disconnect(c)

    async def close(self) -> None:
        self._broadcast({"type": "system_notification",
                         "data": {"level": "warning", "message": "the server is shutting down"}})
        if self._task is not None:
            self._task.cancel()

    def _broadcast(self, msg: Mapping[str, Any]) -> None:
        payload = orjson.dumps(msg)
        for c in list(self._clients):
            self._put(c, payload)


def _series(points: Mapping[SeriesKey, list[Point]]) -> list[dict[str, Any]]:
    return [{"name": k.name, "labels": k.label_dict(), "points": pts}
            for k, pts in points.items()]
