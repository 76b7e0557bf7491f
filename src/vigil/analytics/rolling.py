"""Rolling windows over a series: mean, std and quantiles over a trailing window of
points or of time, and the exponentially weighted moving average. Causal: each value
uses only the samples up to it."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vigil.analytics.stats import (
    as_percents,
    as_timestamps,
    as_values,
    json_floats,
    json_ints,
    percent_key,
    require_positive,
)
from vigil.core.errors import InvalidInput, Problem
from vigil.core.types import Float64Array, Int64Array

# Rolling windows are gathered into (rows x window) chunks of at most this many values,
# small enough to stay in cache.
_GATHER_CHUNK_ELEMENTS = 1 << 16
# The EWMA runs in log-weight space; a block spans at most this many e-folds of decay so
# exp() of a weight stays far from float64 overflow (e^709).
_EWMA_BLOCK_EFOLDS = 300.0


@dataclass(frozen=True, slots=True)
class RollingStats:
    """Statistics of the trailing window that ends at (and includes) each sample."""

    timestamps_ms: Int64Array | None
    count: Int64Array  # finite values in each window
    mean: Float64Array  # NaN where count < min_points
    std: Float64Array  # ddof=1; NaN where count < max(min_points, 2)
    percents: tuple[float, ...]
    percentiles: Float64Array  # shape (len(percents), n)

    def as_dict(self) -> dict[str, object]:
        return {"timestamps_ms": json_ints(self.timestamps_ms),
                "count": json_ints(self.count), "mean": json_floats(self.mean),
                "std": json_floats(self.std),
                "percentiles": {percent_key(p): json_floats(row)
                                for p, row in zip(self.percents, self.percentiles, strict=True)}}


def rolling(values: npt.ArrayLike, *, window_points: int | None = None,
            window_ms: int | None = None, timestamps_ms: npt.ArrayLike | None = None,
            percents: Sequence[float] = (), min_points: int = 1) -> RollingStats:
    """Trailing-window count, mean, standard deviation and percentiles at each sample.

    Exactly one window: ``window_points`` (the last N samples, NaN ones included in the N
    but not in ``count``) or ``window_ms`` with ``timestamps_ms`` (samples with
    ``t_i - window_ms < t <= t_i``). The window is causal: the value at ``i`` uses only
    samples up to ``i``. Windows holding fewer than ``min_points`` finite values are NaN.

    Each window is computed exactly (two-pass), not from running sums: running sums of
    squares lose every digit on a counter around 1e9 whose window variance is small.
    Cost is O(n x samples per window).

    >>> r = rolling([1.0, 2.0, 3.0, float("nan"), 5.0], window_points=2)
    >>> r.mean.tolist(), r.count.tolist()
    ([1.0, 1.5, 2.5, 3.0, 5.0], [1, 2, 2, 1, 1])
    """
    x = as_values(values)
    n = len(x)
    ts = None if timestamps_ms is None else as_timestamps(timestamps_ms, n)
    ps = as_percents(percents)
    if min_points < 1:
        raise InvalidInput(Problem("must be at least 1", field="min_points"))
    stop = np.arange(1, n + 1)
    if (window_points is None) == (window_ms is None):
        raise InvalidInput(Problem("give exactly one of window_points and window_ms",
                                   field="window_points"))
    if window_ms is not None:
        require_positive(window_ms, "window_ms")
        if ts is None:
            raise InvalidInput(Problem("window_ms needs timestamps_ms", field="timestamps_ms"))
        start = np.searchsorted(ts, ts - window_ms, side="right")
    elif window_points is not None and window_points >= 1:
        start = np.maximum(stop - window_points, 0)
    else:
        raise InvalidInput(Problem("must be at least 1", field="window_points"))
    count = np.zeros(n, np.int64)
    mean, std, pct = np.full(n, math.nan), np.full(n, math.nan), np.full((len(ps), n), math.nan)
    width = int((stop - start).max()) if n else 0
    rows_per_chunk = max(1, _GATHER_CHUNK_ELEMENTS // max(width, 1))
    offsets = np.arange(width)
    # Missing samples and window padding both point at a trailing NaN sentinel.
    padded = np.append(np.where(np.isfinite(x), x, math.nan), math.nan)
    for lo in range(0, n, rows_per_chunk):
        hi = min(n, lo + rows_per_chunk)
        idx = start[lo:hi, None] + offsets
        window = padded[np.where(idx < stop[lo:hi, None], idx, n)]
        ok = np.isfinite(window)
        c = ok.sum(axis=1)
        used = c >= min_points
        window_z = np.where(ok, window, 0.0)
        # Divisors clamped to 1 so empty rows raise no warning; they are masked below.
        m = window_z.sum(axis=1) / np.maximum(c, 1)
        window_z -= m[:, None]
        window_z *= ok
        var = np.einsum("ij,ij->i", window_z, window_z) / np.maximum(c - 1, 1)
        count[lo:hi] = c
        mean[lo:hi] = np.where(used, m, math.nan)
        std[lo:hi] = np.where(used & (c > 1), np.sqrt(var), math.nan)
        if ps:
            pct[:, lo:hi] = np.where(used, _row_percentiles(window, c, ps), math.nan)
    return RollingStats(ts, count, mean, std, ps, pct)


def _row_percentiles(rows: Float64Array, counts: Int64Array,
                     percents: tuple[float, ...]) -> Float64Array:
    """numpy's linear percentiles of the finite values of each row, shape (percents, rows).

    np.nanpercentile falls back to a Python loop over rows that contain NaN; sorting NaN
    to the end and interpolating by each row's own count keeps it vectorised.
    """
    ordered = np.sort(np.where(np.isfinite(rows), rows, np.inf), axis=1)
    last = np.maximum(counts - 1, 0)[None, :]
    position = np.asarray(percents)[:, None] / 100.0 * last
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, last)
    frac = position - below
    low = np.take_along_axis(ordered, below.T, axis=1).T
    high = np.take_along_axis(ordered, above.T, axis=1).T
    with np.errstate(invalid="ignore"):  # inf - inf in empty rows, masked by the caller
        return np.where(frac == 0.0, low, low + (high - low) * frac)


@dataclass(frozen=True, slots=True)
class EwmaSeries:
    timestamps_ms: Int64Array | None
    values: Float64Array  # the smoothed value at each sample; NaN before the first finite one
    alpha: float | None  # per-sample smoothing factor, when decay is by sample count
    halflife_ms: float | None  # when decay is by elapsed time

    def as_dict(self) -> dict[str, object]:
        return {"timestamps_ms": json_ints(self.timestamps_ms), "values": json_floats(self.values),
                "alpha": self.alpha, "halflife_ms": self.halflife_ms}


def ewma(values: npt.ArrayLike, *, alpha: float | None = None, halflife_ms: float | None = None,
         timestamps_ms: npt.ArrayLike | None = None) -> EwmaSeries:
    """Exponentially weighted moving average, as the normalised weighted mean of all
    finite samples so far (pandas ``adjust=True``): no start-up bias toward 0 or x[0].

    Exactly one decay: ``alpha`` in (0, 1], the weight kept per sample (weight of a sample
    k steps back is ``(1 - alpha)**k``), or ``halflife_ms`` with ``timestamps_ms`` (weight
    halves per half-life of elapsed time, so irregular sampling is handled). NaN samples
    get no weight; the output there carries the average so far.

    >>> ewma([1.0, float("nan"), 3.0], alpha=0.5).values.tolist()
    [1.0, 1.0, 2.6]
    """
    x = as_values(values)
    n = len(x)
    ts = None if timestamps_ms is None else as_timestamps(timestamps_ms, n)
    if (alpha is None) == (halflife_ms is None):
        raise InvalidInput(Problem("give exactly one of alpha and halflife_ms", field="alpha"))
    if alpha is not None:
        if not (0.0 < alpha <= 1.0):
            raise InvalidInput(Problem("must be in (0, 1]", field="alpha"))
        # Decay in e-folds per sample; alpha == 1 keeps no memory (the last finite value).
        efolds = None if alpha == 1.0 else np.arange(n, dtype=np.float64) * -math.log1p(-alpha)
    else:
        assert halflife_ms is not None
        require_positive(halflife_ms, "halflife_ms")
        if ts is None:
            raise InvalidInput(Problem("halflife_ms needs timestamps_ms", field="timestamps_ms"))
        efolds = (ts - ts[0]).astype(np.float64) * (math.log(2.0) / halflife_ms) if n else None
    # A NaN sample scales every weight by the same factor, so the average there is the
    # one at the previous finite sample: smooth the finite samples, then carry forward.
    used = np.flatnonzero(np.isfinite(x))
    if efolds is None or len(used) == 0:  # alpha == 1 (no memory), or nothing finite
        smoothed = x[used]
    else:
        smoothed = _ewma_log_space(x[used], efolds[used])
    last_used = np.searchsorted(used, np.arange(n), side="right") - 1
    out = np.full(n, math.nan)
    out[last_used >= 0] = smoothed[last_used[last_used >= 0]]
    return EwmaSeries(ts, out, alpha, halflife_ms)


def _ewma_log_space(x: Float64Array, efolds: Float64Array) -> Float64Array:
    """out[i] = sum_k w_k x_k / sum_k w_k over k <= i, w_k = exp(efolds[k] - efolds[i]).

    Vectorised with cumulative sums of exp(efolds[k] - ref); ``ref`` is reset per block so
    the exponent stays below ``_EWMA_BLOCK_EFOLDS``. The loop is over blocks, not samples.
    """
    n = len(x)
    out = np.empty(n)
    block = np.floor((efolds - efolds[0]) / _EWMA_BLOCK_EFOLDS)
    bounds = [0, *(np.flatnonzero(np.diff(block)) + 1).tolist(), n]
    carry_num = carry_den = 0.0
    carry_at = float(efolds[0])
    for a, b in itertools.pairwise(bounds):
        ref = float(efolds[a])
        weight = np.exp(efolds[a:b] - ref)
        decay_carry = math.exp(carry_at - ref)  # underflows to 0 after a long gap: fine
        back = np.exp(ref - efolds[a:b])
        num = (np.cumsum(weight * x[a:b]) + carry_num * decay_carry) * back
        den = (np.cumsum(weight) + carry_den * decay_carry) * back  # >= back > 0
        out[a:b] = num / den
        carry_num, carry_den, carry_at = float(num[-1]), float(den[-1]), float(efolds[b - 1])
    return out
