"""Anomaly scores in [0, 1] for metric series: batch, streaming, and many series at once.

Methods (``METHODS``; the default is ``"ensemble"``). Each standardises the residual of a
baseline (``z``, in sigmas):

- ``zscore``: against an exponentially weighted mean and standard deviation with a long
  memory (~330 samples): slow drifts and shifts stand out, wandering series are forgiven.
- ``robust``: against the median of the last 128 values (recomputed every 16), in sigmas
  from the MAD and, per side, the 10 % / 90 % quantiles, so a bursty side gets a wider band.
- ``seasonal``: against a level plus the median seasonal component of the last three
  periods. The period (4..341 samples) is searched by autocorrelation in the last 1,024
  values every 128 samples while they fill, every 1,024 afterwards, or fixed by ``period``;
  without one this is a slow robust level.
- ``ewma``: adaptive thresholds, bands around a fast EW mean (~20 samples) whose width
  follows the EW mean absolute residual.
- ``ensemble``: all four; the most confident member speaks, except that the window median
  is left out once a seasonal period is known. On the labelled corpus of
  ``benchmarks/anomaly_corpus.py`` it beats every member on F1 and on early detection.

Contract shared by every method:

- Scores are float64 in [0, 1]. Each member's ``z`` is the larger of |residual| and the
  EW mean of the last ~7 residuals (so a lasting shift of a few sigmas counts like one big
  spike), divided by how heavy this series' tail has been (the tracked 99.8 % quantile of
  ``z`` over that of a normal, at least 1), then mapped smoothly:
  ``d = max(0, z - z0) / 2``, ``score = d**2 / (1 + d**2)`` — 0 below ``z0``
  (2.2 .. 2.9), 0.5 at ``z0 + 2``. 0.5 is the alarm threshold the benchmark picks.
- Causal: the score of a sample depends only on it and the samples before it: a prefix
  scores the same alone as within a longer series. :func:`score` equals
  :meth:`Detector.update` sample by sample and :class:`StreamingScorer` however the
  samples are batched, bit for bit.
- Warm-up: the first ``Params.warmup`` = 64 valid samples of a series score 0.
- Adaptation: every baseline forgets. After a lasting level shift the alarm ends within
  ~150 samples (the ensemble; ``robust`` and ``ewma`` ~20) and sensitivity returns; a
  changed seasonal pattern is learnt in two to three periods.
- NaN / ±inf score 0 and are skipped: the state is as if they were absent. Timestamps
  are not needed: the detectors work in sample order, so give a missing sample as NaN.
  Feed counters as rates. Magnitudes beyond ~1e150 overflow the variances.
- State per series is constant: 34 floats, plus a ring of the last 128 values
  (``robust``) or of the last 1,024 values (float64) and seasonal components (float32)
  (``seasonal``, ``ensemble``): ~12.3 KiB per series for the ensemble, 272 bytes for
  ``zscore`` / ``ewma`` (see :attr:`StreamingScorer.state_bytes_per_series`).

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> x = 10 + rng.normal(size=300)
>>> x[200] = 25.0
>>> s = score(x)
>>> bool(s[200] > 0.9), bool((np.delete(s, 200) < 0.5).all())
(True, True)
>>> d = Detector("robust")
>>> [d.update(v) for v in [1.0, 2.0, float("nan")]]
[0.0, 0.0, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from vigil.analytics.anomaly_engine import Engine
from vigil.analytics.anomaly_ops import ArrayOps, BatchOps, ScalarOps, consecutive
from vigil.analytics.anomaly_state import C_N, N_COLS, Params
from vigil.core.errors import InvalidInput, Problem
from vigil.core.types import Float64Array, Int64Array

METHODS: tuple[str, ...] = ("zscore", "robust", "seasonal", "ewma", "ensemble")
DEFAULT_METHOD = "ensemble"
# Below this many series per time step the per-series loop beats the numpy one.
_MIN_VECTOR_WIDTH = 16

__all__ = ["DEFAULT_METHOD", "METHODS", "Detector", "Params", "StreamingScorer", "score"]


def _engine(method: str, period: int | None, params: Params | None) -> Engine:
    if method not in METHODS:
        raise InvalidInput(Problem(f"unknown method {method!r}: use one of "
                                   f"{', '.join(METHODS)}", field="method"))
    p = params or Params()
    if period is not None and not 2 <= period <= p.season_ring // 3:
        raise InvalidInput(Problem(f"must be within [2, {p.season_ring // 3}] samples",
                                   field="period"))
    return Engine(method, p, period)


class Detector:
    """Scores one series, one sample at a time, in O(1) state.

    >>> d = Detector("zscore")
    >>> scores = [d.update(float(v % 3)) for v in range(100)]
    >>> max(scores[:64]), max(scores) < 0.5, d.update(40.0) > 0.9
    (0.0, True, True)
    """

    def __init__(self, method: str = DEFAULT_METHOD, *, period: int | None = None,
                 params: Params | None = None) -> None:
        self._engine = _engine(method, period, params)
        self._state = self._engine.initial_state()
        ring = self._engine.ring_len
        self._ops = ScalarOps(self._engine.p, np.zeros(ring),
                              np.zeros(ring if self._engine.seasonal else 0, np.float32))

    @property
    def method(self) -> str:
        return self._engine.method

    def update(self, value: float) -> float:
        """The score of ``value`` (the next sample), then ``value`` is learnt."""
        x = float(value)
        if not math.isfinite(x):
            return 0.0
        return float(self._engine.step(self._state, x, self._ops))

    def update_many(self, values: npt.ArrayLike) -> Float64Array:
        """The scores of the next samples, as :meth:`update` for each in turn (faster:
        the periodic recomputations of the run are done together)."""
        x = np.asarray(values, dtype=np.float64).ravel()
        ok = np.isfinite(x)
        valid = x[ok]
        ops = self._ops
        ring = len(ops.raw)
        if ring and len(valid) > 64:
            n0 = int(self._state[C_N])
            pos = np.arange(n0 - min(n0, ring), n0) % ring
            e = self._engine
            ops = BatchOps(e.p, ops.raw, ops.comp, n0, ops.raw[pos], valid, e.use[1],
                           e.seasonal and e.period is None)
        state, step = self._state, self._engine.step
        out = np.zeros(len(x))
        out[ok] = [step(state, v, ops) for v in valid.tolist()]
        return out


class StreamingScorer:
    """Scores many series at once from columns, in O(1) state per series.

    ``update_batch(series_idx, values)`` takes samples of any series in time order per
    series (samples of different series may interleave freely) and returns their
    scores; a series index is any int >= 0 and state grows to the largest one seen.
    Samples are processed one time step across all series per numpy pass, so the cost is
    per batch and per step, not per sample; a series with many samples in one batch and
    few companions runs through the per-sample path instead. The result equals a
    :class:`Detector` per series. Keep series indices dense (state is an array indexed by
    them); not thread-safe: one scorer per thread or a lock.

    >>> s = StreamingScorer("ewma")
    >>> out = s.update_batch(np.array([0, 1, 0, 1]), np.array([1.0, 5.0, 1.0, 5.0]))
    >>> out.tolist(), s.n_series
    ([0.0, 0.0, 0.0, 0.0], 2)
    """

    def __init__(self, method: str = DEFAULT_METHOD, *, period: int | None = None,
                 params: Params | None = None, n_series: int = 0) -> None:
        self._engine = _engine(method, period, params)
        self._n = 0
        self._state = np.empty((N_COLS, 0))  # one column per series
        self._raw = np.empty((self._engine.ring_len, 0))  # one ring column per series
        self._comp = np.empty((self._engine.ring_len if self._engine.seasonal else 0, 0),
                              np.float32)
        self._grow(n_series)

    @property
    def method(self) -> str:
        return self._engine.method

    @property
    def n_series(self) -> int:
        return self._n

    @property
    def state_bytes_per_series(self) -> int:
        """Bytes of state per series: the state columns plus the rings."""
        return (N_COLS + len(self._raw)) * 8 + len(self._comp) * 4

    def _grow(self, n: int) -> None:
        if n <= self._n:
            return
        cap = self._state.shape[1]
        if n > cap:
            cap = max(n, 2 * cap, 64)
            state = np.tile(np.array(self._engine.initial_state())[:, None], (1, cap))
            raw = np.zeros((len(self._raw), cap))
            comp = np.zeros((len(self._comp), cap), np.float32)
            state[:, : self._n] = self._state[:, : self._n]
            raw[:, : self._n] = self._raw[:, : self._n]
            comp[:, : self._n] = self._comp[:, : self._n]
            self._state, self._raw, self._comp = state, raw, comp
        self._n = n

    def reset(self, series_idx: npt.ArrayLike) -> None:
        """Forget the given series: they start again with a warm-up."""
        idx = np.asarray(series_idx).astype(np.int64, copy=False).ravel()
        idx = idx[(idx >= 0) & (idx < self._n)]
        self._state[:, idx] = np.array(self._engine.initial_state())[:, None]
        self._raw[:, idx] = 0.0
        self._comp[:, idx] = 0.0

    def update_batch(self, series_idx: npt.ArrayLike, values: npt.ArrayLike) -> Float64Array:
        """Scores of ``values[i]`` for series ``series_idx[i]``; same length as values."""
        idx = np.asarray(series_idx).astype(np.int64, copy=False).ravel()
        x = np.asarray(values, dtype=np.float64).ravel()
        if idx.shape != x.shape:
            raise InvalidInput(Problem("series_idx and values differ in length",
                                       field="series_idx"))
        out = np.zeros(len(x))
        if not len(x):
            return out
        if idx.min() < 0:
            raise InvalidInput(Problem("series indices must be >= 0", field="series_idx"))
        self._grow(int(idx.max()) + 1)
        pos = np.flatnonzero(np.isfinite(x))
        vi, vx = idx[pos], x[pos]
        if len(vi) == 0:
            return out
        if np.bincount(vi).max() <= 1:
            out[pos] = self._step_rows(vi, vx)
            return out
        # The k-th sample of each series in this batch belongs to time step k.
        order = np.argsort(vi, kind="stable")
        sv = vi[order]
        starts = np.flatnonzero(np.r_[True, sv[1:] != sv[:-1]])
        rank = np.empty(len(sv), np.int64)
        rank[order] = np.arange(len(sv)) - np.repeat(starts, np.diff(np.r_[starts, len(sv)]))
        width = np.bincount(rank)  # series per step, non-increasing
        wide = int(np.searchsorted(-width, -_MIN_VECTOR_WIDTH, side="right"))
        by_step = np.argsort(rank, kind="stable")
        bounds = np.r_[0, np.cumsum(width)]
        for k in range(wide):
            sel = by_step[bounds[k] : bounds[k + 1]]
            out[pos[sel]] = self._step_rows(vi[sel], vx[sel])
        if wide < len(width):  # the few series with the most samples: one at a time
            rest = by_step[bounds[wide] :]
            rest = rest[np.lexsort((rank[rest], vi[rest]))]
            step = self._engine.step
            for row, chunk in _runs(vi[rest], rest):
                state = self._state[:, row].tolist()
                ops = ScalarOps(self._engine.p, self._raw[:, row], self._comp[:, row])
                for i, v in zip(chunk.tolist(), vx[chunk].tolist(), strict=True):
                    out[pos[i]] = step(state, v, ops)
                self._state[:, row] = state
        return out

    def _step_rows(self, rows: Int64Array, xs: Float64Array) -> Float64Array:
        """One time step: one sample for each of ``rows`` (distinct)."""
        span = None
        if consecutive(rows):
            span = slice(int(rows[0]), int(rows[-1]) + 1)
            block = self._state[:, span]  # a view: columns are updated in place
        else:
            block = self._state[:, rows]
        cols = list(block)
        ops = ArrayOps(self._engine.p, self._raw, self._comp, rows, span, block)
        with np.errstate(all="ignore"):  # magnitudes past ~1e150 overflow; scored 0
            scores = self._engine.step(cols, xs, ops)
        if span is None:
            self._state[:, rows] = np.stack(cols)
        else:
            for j, col in enumerate(cols):
                if col is not block[j]:
                    block[j] = col
        return np.asarray(scores, dtype=np.float64)


def _runs(keys: Int64Array, items: Int64Array) -> list[tuple[int, Int64Array]]:
    """(key, items) for each run of equal consecutive keys."""
    cut = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    return [(int(k[0]), it) for k, it in zip(np.split(keys, cut), np.split(items, cut),
                                             strict=True)]


def score(values: npt.ArrayLike, method: str = DEFAULT_METHOD, *,
          timestamps_ms: Int64Array | Sequence[int] | None = None,
          period: int | None = None, params: Params | None = None) -> Float64Array:
    """Causal anomaly scores in [0, 1] of one series, one per value (NaN scores 0).

    Equal to feeding a fresh :class:`Detector` the values in order. ``timestamps_ms``
    (int64 epoch ms, non-decreasing), when given, is only checked: the detectors work
    in sample order, so a missing sample is best given as NaN. ``period`` fixes the
    seasonal period in samples instead of searching for it.

    >>> score([1.0, 2.0, 3.0], "zscore").tolist()
    [0.0, 0.0, 0.0]
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if timestamps_ms is not None:
        ts = np.asarray(timestamps_ms, dtype=np.int64).ravel()
        if len(ts) != len(x):
            raise InvalidInput(Problem("timestamps and values differ in length",
                                       field="timestamps_ms"))
        if len(ts) > 1 and bool((np.diff(ts) < 0).any()):
            raise InvalidInput(Problem("timestamps must not decrease", field="timestamps_ms"))
    return Detector(method, period=period, params=params).update_many(x)
