"""Runs a ``Query`` against a ``Store``: select series, plan the tier, aggregate; answers
repeated queries from the ``QueryCache`` when it is given one.

A range that reaches into the present (a dashboard's "last 6 hours") is dropped from the
cache by every commit, so under live ingestion it would be computed whole each time.
Such a query is cut at step edges instead: the steps older than ``FRESH_MS`` are kept in
the cache under their own range, which commits near now do not touch, and only the
fresh tail (and a first, partial step) is computed each time, as VictoriaMetrics does.
Every step bucket lies in one part and all parts read the planned tier, so the answer
equals the one computed whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from vigil.core.timeutil import now_ms
from vigil.core.types import Float64Array, Int64Array
from vigil.query import functions
from vigil.query.cache import QueryCache
from vigil.query.model import Query
from vigil.query.planner import plan
from vigil.storage.store import TIER_MS, Selection, SeriesInfo, Store, Tier


@dataclass(frozen=True, slots=True)
class ResultSeries:
    labels: dict[str, str]
    t_ms: Int64Array
    values: Float64Array


@dataclass(frozen=True, slots=True)
class QueryResult:
    """An answer. One from the cache is shared by every caller that gets it: its arrays
    are read-only, and nothing may change its series list."""

    name: str
    tier: Tier
    series: list[ResultSeries]
    # Renderings of this result by the edge (its JSON body), made once per result: a
    # cached answer is not serialised again on every hit.
    rendered: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)


# An answer depends on the query and on the tier it is read from: the planner's choice
# moves with the clock when the range ends near now.
CacheKey = tuple[Query, Tier]
# The newest part of a range, where commits land: computed every time, never cached on
# its own (a sample may still arrive for it).
FRESH_MS = 5 * 60_000
# A start off the step grid costs a third statement (its partial step), about what a
# few hours of raw samples of 100 series cost to read: below this many cached hours the
# whole range is computed instead (docs/benchmarks.md, "A dashboard's query under live
# ingestion").
UNALIGNED_MIN_CACHED_MS = 12 * 3_600_000


class QueryEngine:
    def __init__(self, store: Store, clock: Callable[[], int] = now_ms,
                 cache: QueryCache[QueryResult] | None = None) -> None:
        self._store = store
        self._clock = clock
        self.cache = cache

    def cached(self, tenant: str, query: Query) -> QueryResult | None:
        """The cached answer, if there is one; never reads the store (so it may run on
        the event loop before ``run`` is handed to a thread)."""
        if self.cache is None:
            return None
        return self.cache.get(tenant, (query, plan(query, self._clock())))

    def run(self, tenant: str, query: Query, *, use_cache: bool = True) -> QueryResult:
        """The answer; from the cache, or computed (and kept) when ``use_cache``."""
        tier = plan(query, self._clock())
        cache = self.cache if use_cache else None
        if cache is None:
            return self._compute(tenant, query, tier)
        key: CacheKey = (query, tier)
        hit = cache.get(tenant, key)
        if hit is not None:
            return hit
        ticket = cache.ticket()  # before the first read of the store
        cut = fresh_cut(query, self._clock())
        result = _read_only(self._compute(tenant, query, tier) if cut is None
                            else self._with_fresh_tail(tenant, query, tier, cache, *cut))
        cache.put(tenant, key, result, reads(query, tier), _nbytes(result), ticket)
        return result

    def _with_fresh_tail(self, tenant: str, query: Query, tier: Tier,
                         cache: QueryCache[QueryResult], a: int, b: int) -> QueryResult:
        """The answer to ``query`` as three parts (see ``fresh_cut``): the steps in
        ``[a, b)`` from the cache or kept there, the rest computed."""
        middle = replace(query, start_ms=a, end_ms=b)
        key: CacheKey = (middle, tier)
        kept = cache.get(tenant, key)
        if kept is None:
            ticket = cache.ticket()
            kept = _read_only(self._compute(tenant, middle, tier))
            cache.put(tenant, key, kept, reads(middle, tier), _nbytes(kept), ticket)
        infos = self._store.find_series(tenant, query.name, query.matchers)
        parts = [kept, self._compute(tenant, replace(query, start_ms=b), tier, infos)]
        if query.start_ms < a:
            parts.insert(0, self._compute(tenant, replace(query, end_ms=a), tier, infos))
        # Each label set's points, part after part, in the order an answer computed whole
        # lists its series.
        by_labels: dict[tuple[tuple[str, str], ...], list[ResultSeries]] = {}
        for part in parts:
            for s in part.series:
                by_labels.setdefault(tuple(sorted(s.labels.items())), []).append(s)
        labels, _ = _group(infos, query.group_by)
        series = []
        for lab in labels:
            got = by_labels.pop(tuple(sorted(lab.items())), None)
            if got:
                series.append(ResultSeries(lab, np.concatenate([s.t_ms for s in got]),
                                           np.concatenate([s.values for s in got])))
        return QueryResult(query.name, tier, series)

    def _compute(self, tenant: str, query: Query, tier: Tier,
                 infos: list[SeriesInfo] | None = None) -> QueryResult:
        """The answer read from ``tier``, over ``infos`` (the matching series, looked up
        when not given)."""
        if infos is None:
            infos = self._store.find_series(tenant, query.name, query.matchers)
        labels, sel = _group(infos, query.group_by)
        if not infos:
            return QueryResult(query.name, tier, [])
        step = query.step_ms
        t0 = query.start_ms // step * step
        n_steps = (query.end_ms - 1 - t0) // step + 1
        width = -(-query.window_ms // step) if query.window_ms else 1
        if query.fn in ("rate", "increase"):
            keys, ts, vals = self._increase(tenant, query, sel, width)
            if query.fn == "rate":
                vals = vals / (step * width / 1000.0)
        elif query.fn == "quantile":
            assert query.q is not None
            p = self._store.quantiles(
                tenant, tier, sel, query.start_ms, query.end_ms, step, query.q)
            keys, ts, vals = p.key, p.t_ms, p.value
        else:
            b = self._store.buckets(tenant, tier, sel, query.start_ms, query.end_ms, step)
            if width > 1:
                grid = functions.windowed(b, query.fn, len(labels), t0, step, n_steps, width)
                keys, ts, vals = _sparse(grid, t0, step)
            else:
                keys, ts, vals = b.group, b.t_ms, functions.finish(b, query.fn)
        series = []
        bounds = np.searchsorted(keys, np.arange(len(labels) + 1))
        for g, lab in enumerate(labels):
            lo, hi = bounds[g], bounds[g + 1]
            if hi > lo:
                series.append(ResultSeries(lab, ts[lo:hi], vals[lo:hi]))
        return QueryResult(query.name, tier, series)

    def _increase(self, tenant: str, query: Query, sel: Selection, width: int) -> tuple[
            np.ndarray, np.ndarray, np.ndarray]:
        step = query.step_ms
        lookback = _lookback_ms(query)
        p = self._store.raw(tenant, sel.series_ids, query.start_ms - lookback, query.end_ms)
        keys, ts, vals = functions.increase(p, sel, query.start_ms, step)
        if width > 1:
            t0 = query.start_ms // step * step
            n_steps = (query.end_ms - 1 - t0) // step + 1
            n_groups = int(sel.groups.max(initial=-1)) + 1
            grid = functions.dense(keys, ts, vals, n_groups, t0, step, n_steps, np.nan)
            keys, ts, vals = _sparse(functions.rolling(grid, width, "sum"), t0, step)
        return keys, ts, vals


def _lookback_ms(query: Query) -> int:
    """How far before ``start_ms`` rate and increase read raw samples (the base of the
    first delta of each window)."""
    width = -(-query.window_ms // query.step_ms) if query.window_ms else 1
    return query.step_ms * width


def fresh_cut(query: Query, now_ms: int) -> tuple[int, int] | None:
    """Step edges ``(a, b)`` cutting a range that reaches into the last ``FRESH_MS`` into
    a first, partial step ``[start, a)`` (none when start is on the grid), a middle
    ``[a, b)`` worth keeping on its own and the fresh tail ``[b, end)``; None when there
    is no such middle, when it is too short to pay for a partial first step, or when a
    step's value depends on samples outside its bucket (rate, increase, windows)."""
    if query.fn in ("rate", "increase") or query.window_ms:
        return None
    step = query.step_ms
    a = -(-query.start_ms // step) * step
    b = (now_ms - FRESH_MS) // step * step
    if a != query.start_ms and b - a < UNALIGNED_MIN_CACHED_MS:
        return None
    return (a, b) if a < b < query.end_ms else None


def reads(query: Query, tier: Tier) -> tuple[int, int]:
    """The time range ``[lo, hi)`` (ms) of stored samples the answer from ``tier``
    depends on: the cache drops the answer when a sample in it changes."""
    lo, hi = query.start_ms, query.end_ms
    if query.fn in ("rate", "increase"):
        lo -= _lookback_ms(query)
    if tier != "raw":
        # Rollup rows cover whole buckets: the last one read may reach past end_ms
        # (the planner takes an end in the future as aligned).
        w = TIER_MS[tier]
        lo, hi = lo // w * w, -(-hi // w) * w
    return lo, hi


def _read_only(result: QueryResult) -> QueryResult:
    for s in result.series:
        s.t_ms.flags.writeable = False
        s.values.flags.writeable = False
    return result


def _nbytes(result: QueryResult) -> int:
    """Approximate memory of a cached answer: its arrays, labels, and its JSON body
    (≈ 32 bytes a point) once rendered."""
    n = 256
    for s in result.series:
        n += 160 + s.t_ms.nbytes + s.values.nbytes + 32 * len(s.t_ms)
        n += sum(100 + len(k) + len(v) for k, v in s.labels.items())
    return n


def _group(
    infos: list[SeriesInfo], group_by: tuple[str, ...] | None
) -> tuple[list[dict[str, str]], Selection]:
    """Output label sets and the group of each series (groups in first-seen order)."""
    if group_by is None:
        ordered = sorted(infos, key=lambda i: i.key.labels)
        return [i.key.label_dict() for i in ordered], Selection.each([i.id for i in ordered])
    index: dict[tuple[str, ...], int] = {}
    labels: list[dict[str, str]] = []
    groups = []
    for info in sorted(infos, key=lambda i: i.key.labels):
        d = info.key.label_dict()
        k = tuple(d.get(g, "") for g in group_by)
        if k not in index:
            index[k] = len(labels)
            labels.append({g: v for g, v in zip(group_by, k, strict=True) if v})
        groups.append(index[k])
    return labels, Selection(np.array([i.id for i in sorted(infos, key=lambda i: i.key.labels)],
                                      np.int32), np.array(groups, np.int32))


def _sparse(grid: Float64Array, t0: int, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g, s = np.nonzero(~np.isnan(grid))
    return g.astype(np.int32), (t0 + s.astype(np.int64) * step), grid[g, s]
