"""Runs a ``Query`` against a ``Store``: select series, plan the tier, aggregate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vigil.core.timeutil import now_ms
from vigil.core.types import Float64Array, Int64Array
from vigil.query import functions
from vigil.query.model import Query
from vigil.query.planner import plan
from vigil.storage.store import Selection, SeriesInfo, Store, Tier


@dataclass(frozen=True, slots=True)
class ResultSeries:
    labels: dict[str, str]
    t_ms: Int64Array
    values: Float64Array


@dataclass(frozen=True, slots=True)
class QueryResult:
    name: str
    tier: Tier
    series: list[ResultSeries]


class QueryEngine:
    def __init__(self, store: Store, clock: Callable[[], int] = now_ms) -> None:
        self._store = store
        self._clock = clock

    def run(self, tenant: str, query: Query) -> QueryResult:
        infos = self._store.find_series(tenant, query.name, query.matchers)
        tier = plan(query, self._clock())
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
        lookback = step * width
        p = self._store.raw(tenant, sel.series_ids, query.start_ms - lookback, query.end_ms)
        keys, ts, vals = functions.increase(p, sel, query.start_ms, step)
        if width > 1:
            t0 = query.start_ms // step * step
            n_steps = (query.end_ms - 1 - t0) // step + 1
            n_groups = int(sel.groups.max(initial=-1)) + 1
            grid = functions.dense(keys, ts, vals, n_groups, t0, step, n_steps, np.nan)
            keys, ts, vals = _sparse(functions.rolling(grid, width, "sum"), t0, step)
        return keys, ts, vals


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
