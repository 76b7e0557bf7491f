"""Vectorised functions over what the store returns: finishing partial aggregates,
rolling windows, and counter increase/rate."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from vigil.core.types import Float64Array, Int32Array, Int64Array
from vigil.storage.store import Buckets, Points, Selection


def finish(b: Buckets, fn: str) -> Float64Array:
    """The value of ``fn`` from merged partial aggregates."""
    if fn == "avg":
        return b.sum / b.count
    if fn == "sum":
        return b.sum
    if fn == "min":
        return b.min
    if fn == "max":
        return b.max
    if fn == "count":
        return b.count.astype(np.float64)
    if fn == "last":
        return b.last
    raise AssertionError(f"BUG: {fn} is not a bucket function")


def dense(
    keys: Int32Array, t_ms: Int64Array, values: Float64Array, n_keys: int, t0: int, step: int,
    n_steps: int, fill: float,
) -> Float64Array:
    """Scatter (key, t, value) onto a (n_keys, n_steps) grid starting at ``t0``."""
    grid = np.full((n_keys, n_steps), fill, np.float64)
    grid[keys, (t_ms - t0) // step] = values
    return grid


def rolling(grid: Float64Array, width: int, how: str) -> Float64Array:
    """Trailing window of ``width`` steps along axis 1 (NaN = no data)."""
    if width <= 1:
        return grid
    padded = np.concatenate([np.full((grid.shape[0], width - 1), np.nan), grid], axis=1)
    win = sliding_window_view(padded, width, axis=1)
    with np.errstate(all="ignore"):
        if how == "sum":
            return np.where(np.isnan(win).all(axis=2), np.nan, np.nansum(win, axis=2))
        if how in ("min", "max"):
            reduced: Float64Array = (np.fmin if how == "min" else np.fmax).reduce(win, axis=2)
            return reduced
        if how == "last":
            idx = np.where(np.isnan(win), -1, np.arange(width)).max(axis=2)
            out = np.take_along_axis(win, np.maximum(idx, 0)[..., None], axis=2)[..., 0]
            return np.where(idx < 0, np.nan, out)
    raise AssertionError(f"BUG: no rolling {how}")


def windowed(b: Buckets, fn: str, n_groups: int, t0: int, step: int, n_steps: int,
             width: int) -> Float64Array:
    """``fn`` over a trailing window of ``width`` buckets, on a dense grid."""

    def g(col: Float64Array | Int64Array) -> Float64Array:
        return dense(b.group, b.t_ms, col.astype(np.float64), n_groups, t0, step, n_steps,
                     np.nan)

    count = rolling(g(b.count), width, "sum")
    if fn == "count":
        return count
    if fn in ("sum", "avg"):
        total = rolling(g(b.sum), width, "sum")
        return total if fn == "sum" else total / count
    if fn in ("min", "max"):
        return rolling(g(getattr(b, fn)), width, fn)
    if fn == "last":
        return rolling(g(b.last), width, "last")
    raise AssertionError(f"BUG: no windowed {fn}")


def increase(
    p: Points, sel: Selection, start_ms: int, step_ms: int
) -> tuple[Int32Array, Int64Array, Float64Array]:
    """Counter increase per (group, bucket) from raw samples sorted by series and time.

    A drop is a counter reset: the new value is the increase since the reset, as in
    Prometheus. Each delta belongs to the bucket of its later sample; samples before
    ``start_ms`` only serve as the base of the first delta.
    """
    if len(p.value) < 2:
        return np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64)
    delta = np.diff(p.value)
    delta = np.where(delta < 0, p.value[1:], delta)
    later_t = p.t_ms[1:]
    keep = (p.key[1:] == p.key[:-1]) & (later_t >= start_ms)
    sids = p.key[1:][keep]
    group_of = np.zeros(int(sel.series_ids.max(initial=0)) + 1, np.int64)
    group_of[sel.series_ids] = sel.groups
    grp = group_of[sids]
    bucket = later_t[keep] // step_ms * step_ms
    pairs, inverse = np.unique(np.stack([grp, bucket]), axis=1, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=delta[keep], minlength=pairs.shape[1])
    return pairs[0].astype(np.int32), pairs[1].astype(np.int64), sums.astype(np.float64)
