"""The Hub: live updates from committed batches and alert events to subscribed clients.

Everything runs on one event loop: the fan-out process's (``vigil.streaming.worker``),
which the server feeds committed batches and alert events.

The cost must not grow with the number of clients where it need not: subscriptions of a
tenant with the same selectors and update frequency share a **feed**. A committed batch
maps to the feeds that want each series with one numpy look-up (``SeriesCodes``, by the
store's series ids), its points are buffered once per feed, and at each update a feed's
message is encoded once — only the subscription id differs per client. A feed's updates
come every ``updateFrequency`` at a phase of its own (a multiple of the tick), so feeds
spread their sends over the period rather than all sending in one burst: with 10,000
clients a burst of a second's messages would delay the last clients, and every ingest
request behind them, by the whole burst.

Each client writes to an ``Outbox`` (its connection) that
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import orjson

from vigil.core.matchers import Matcher, MatcherIndex
from vigil.core.series_codes import SeriesCodes
from vigil.core.types import (
    Float64Array,
    Int32Array,
    Int64Array,
    SampleBatch,
    SeriesKey,
    SeriesMeta,
)

Selector = tuple[str, tuple[Matcher, ...]]  # metric name, label matchers
Point = list[int | float]  # [epoch_ms, value]
MAX_BUFFERED_POINTS = 1000  # per series and feed between updates, before coalescing
MAX_FEED_ROWS = 100_000  # rows a feed holds as columns before making them points
_LATE_S = 0.0005  # the flusher wakes this after a tick, so that float error never skips it
SLOW_AFTER_S = 10.0  # a client whose outbox stays full this long is disconnected
TICK_S = 0.05  # how often due updates are looked for; the step of feeds' phases


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
    phase: float  # updates come at multiples of every_s plus this
    due: float  # monotonic time of the next update
    slot: int  # index in the hub's feed table
    subs: set[Subscription] = field(default_factory=set)
    # Since the last update: committed rows as they came (columns, one chunk a batch),
    # turned into points per series only when an update is built.
    chunks: list[_Chunk] = field(default_factory=list)
    rows: int = 0
    points: dict[SeriesKey, list[Point]] = field(default_factory=dict)
    latest: dict[SeriesKey, Point] = field(default_factory=dict)  # for coalesced updates

    def next_due(self, now: float) -> float:
        """The first update time after ``now``."""
        return (math.floor((now - self.phase) / self.every_s) + 1) * self.every_s + self.phase

    def add(self, chunk: _Chunk) -> None:
        self.chunks.append(chunk)
        self.rows += len(chunk.ts)
        if self.rows > MAX_FEED_ROWS:
            self.take_points()

    def take_points(self) -> dict[SeriesKey, list[Point]]:
        """The points since the last update, per series (at most MAX_BUFFERED_POINTS
        each, then only the latest); they are left in ``points`` until the next update."""
        points = self.points
        for c in self.chunks:
            # Keys once per series of the chunk, not per point (``series`` may look each
            # up by store id).
            keys = {j: c.series[j].key for j in np.unique(c.j).tolist()}
            for j, t, v in zip(c.j.tolist(), c.ts.tolist(), c.value.tolist(), strict=True):
                key = keys[j]
                buf = points.get(key)
                if buf is None:
                    points[key] = [[t, v]]
                else:
                    buf.append([t, v])
                    if len(buf) > MAX_BUFFERED_POINTS:
                        del buf[:-1]  # coalesce: the latest point only
        self.chunks, self.rows = [], 0
        for key, buf in points.items():
            self.latest[key] = buf[-1]
        return points

    def wants(self, tenant: str, key: SeriesKey) -> bool:
        if tenant != self.tenant:
            return False
        labels = key.label_dict()
        return any(name == key.name and all(m.matches(labels.get(m.label)) for m in ms)
                   for name, ms in self.selectors)


@dataclass(frozen=True, slots=True)
class _Chunk:
    series: Sequence[SeriesMeta]  # the batch's series; ``j`` indexes them
    j: Int32Array
    ts: Int64Array
    value: Float64Array


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
    slow_disconnects: int = 0


def metrics_update(sub_id: str, body: bytes, coalesced: bool = False) -> bytes:
    """A ``metrics_update`` message around an encoded series list (shared by a feed's
    subscriptions: only the id differs)."""
    flag = b',"coalesced":true' if coalesced else b""
    return (b'{"type":"metrics_update","data":{"id":"' + sub_id.encode() + b'"' + flag
            + b',"series":' + body + b"}}")


class Hub:
    def __init__(self, dashboard: Callable[[str], Mapping[str, object] | None], *,
                 slow_after_s: float = SLOW_AFTER_S,
                 tick_s: float | None = TICK_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``dashboard(tenant)``: what a ``dashboard_update`` says (None: not known yet).
        ``tick_s``: how often ``flush`` runs on the loop (None: the caller runs it)."""
        self._dashboard = dashboard
        self._clock = clock
        self._tick_s = tick_s
        self._slow_after_s = slow_after_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._clients: set[Client] = set()
        self._full: set[Client] = set()  # clients whose outbox refused a message
        self._dashboards: set[Client] = set()
        self._feeds: dict[tuple[str, tuple[Selector, ...], float], Feed] = {}
        self._slots: list[Feed | None] = []  # feed table: slot -> feed
        self._index: dict[tuple[str, str], MatcherIndex[Feed]] = {}  # (tenant, metric)
        # Which feeds want a series: a code per store id, naming a set of feed slots,
        # kept flat with offsets (CSR) so a batch maps to (row, feed) pairs with numpy.
        self._codes = SeriesCodes()
        self._generation = 0  # of the feed set
        self._feed_sets: list[tuple[int, ...]] = [()]
        self._set_code: dict[tuple[int, ...], int] = {(): 0}
        self._csr: tuple[Int64Array, Int64Array, Int64Array] | None = None  # flat, off, len
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
            slot = next((i for i, f in enumerate(self._slots) if f is None), len(self._slots))
            # Consecutive slots take consecutive phases: feeds spread evenly over the period.
            phase = slot % max(1, round(every_s / TICK_S)) * TICK_S % every_s
            feed = self._feeds[key] = Feed(c.tenant, key[1], every_s, phase, 0.0, slot)
            feed.due = feed.next_due(self._clock())
            if slot == len(self._slots):
                self._slots.append(feed)
            self._slots[slot] = feed
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
            self._slots[feed.slot] = None
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
    def alert(self, msg: Mapping[str, Any]) -> None:
        """An alert transition, to the tenant's clients that asked for alerts."""
        payload = orjson.dumps({"type": msg["type"], "data": msg["data"]})
        for c in list(self._clients):
            if c.alerts and c.tenant == msg.get("tenant"):
                self._put(c, payload)

    @property
    def wants_version(self) -> tuple[int, int]:
        """(series looked up, feeds changed): changes whenever ``unwanted`` may have —
        the second part when a feed came or went, after which any series may be wanted."""
        return self._codes.version, self._generation

    def unwanted(self) -> npt.NDArray[np.bool_] | None:
        """Store ids (by index) of series known to be wanted by no feed; None: no feed
        wants anything."""
        return self._codes.having(0) if self._feeds else None

    def dashboard_tenants(self) -> set[str]:
        """The tenants some client watches the dashboard of."""
        return {c.tenant for c in self._dashboards}

    def _feeds_changed(self) -> None:
        self._generation += 1
        self._codes.clear()
        self._feed_sets, self._set_code, self._csr = [()], {(): 0}, None
        self.stats.feeds = len(self._feeds)

    def _code(self, tenant: str, key: SeriesKey) -> int:
        """The code of the set of feeds that want a series not looked up before."""
        index = self._index.get((tenant, key.name))
        slots = () if index is None else tuple(sorted(
            {f.slot for f in index.candidates(key.labels) if f.wants(tenant, key)}))
        code = self._set_code.get(slots)
        if code is None:
            code = self._set_code[slots] = len(self._feed_sets)
            self._feed_sets.append(slots)
            self._csr = None
        return code

    def _table(self) -> tuple[Int64Array, Int64Array, Int64Array]:
        if self._csr is None:
            lens = np.fromiter((len(s) for s in self._feed_sets), np.int64,
                               len(self._feed_sets))
            flat = np.fromiter((f for s in self._feed_sets for f in s), np.int64, int(lens.sum()))
            self._csr = (flat, np.cumsum(lens) - lens, lens)
        return self._csr

    def ingest(self, tenant: str, batch: SampleBatch, series_ids: Int32Array) -> None:
        """A committed batch (``series_ids``: the store's id of each of ``batch.series``).
        Each feed gets the rows of the series it wants, as columns: numpy per batch, Python
        per feed (not per series or point)."""
        if not self._feeds:
            return
        codes = self._codes.codes(batch, series_ids, lambda key: self._code(tenant, key))
        if not codes.any():
            return
        flat, off, lens = self._table()
        code = codes[batch.series_idx]
        n = lens[code]  # feeds per row
        rows = np.flatnonzero(n)
        n = n[rows]
        # Each row once per feed that wants it (CSR expansion), grouped by feed.
        row = np.repeat(rows, n)
        within = np.arange(len(row)) - np.repeat(np.cumsum(n) - n, n)
        slot = flat[np.repeat(off[code[rows]], n) + within]
        order = np.argsort(slot, kind="stable")  # rows stay in time order within a feed
        slot, row = slot[order], row[order]
        cuts = np.flatnonzero(slot[1:] != slot[:-1]) + 1
        j, ts, val = batch.series_idx[row], batch.ts_ms[row], batch.value[row]
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(row)], strict=True):
            feed = self._slots[int(slot[a])]
            if feed is not None:
                feed.add(_Chunk(batch.series, j[a:b], ts[a:b], val[a:b]))

    # ------------------------------------------------------------------ flushing
    async def _flusher(self, tick_s: float) -> None:
        while True:  # woken just after each multiple of the tick, when phases fall due
            await asyncio.sleep(tick_s - self._clock() % tick_s + _LATE_S)
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
                feed.due = feed.next_due(now)
                self._update(feed)
        boards: dict[str, bytes | None] = {}
        for c in list(self._dashboards):
            if now >= c.dashboard_due:
                if c.tenant not in boards:
                    board = self._dashboard(c.tenant)
                    boards[c.tenant] = None if board is None else orjson.dumps(
                        {"type": "dashboard_update", "data": dict(board)})
                payload = boards[c.tenant]
                if payload is not None:  # else not known yet: the next tick
                    c.dashboard_due = now + c.dashboard_every_s
                    self._put(c, payload)

    def _update(self, feed: Feed) -> None:
        points = feed.take_points()
        body = orjson.dumps(_series(points)) if points else None
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
