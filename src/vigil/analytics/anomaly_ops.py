"""Elementwise operations and ring refreshes for the detectors' step (private to
:mod:`.anomaly`): :class:`ScalarOps` for one series in Python floats, :class:`BatchOps`
for a known run of one series, :class:`ArrayOps` for one time step across many series.

Each implements the same arithmetic in the same order, so all give bit-identical results.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np

from vigil.analytics.anomaly_refresh import keep_period, robust_stats, season_period
from vigil.analytics.anomaly_state import (
    C_F,
    C_FP,
    C_PER,
    C_Q,
    C_QP,
    C_RHI,
    C_RLO,
    C_RMED,
    C_U,
    Consts,
    FloatArray,
    Params,
    V,
    period_due,
)
from vigil.core.types import Float64Array, Int64Array


class Ops(Protocol):
    """What :meth:`Engine.step` needs: elementwise operations and the rings' refreshes."""

    p: Params

    @property
    def where(self) -> Callable[[V, V, V], V]: ...
    @property
    def minimum(self) -> Callable[[V, V], V]: ...
    @property
    def maximum(self) -> Callable[[V, V], V]: ...
    @property
    def sqrt(self) -> Callable[[V], V]: ...
    def evidence(self, c: Consts, cols: list[V], ks: tuple[int, ...], us: list[V],
                 learning: V) -> list[V]: ...
    def comp_at(self, n: V, back: V) -> V: ...
    def write(self, n: V, value: V, comp: V | None) -> None: ...
    def robust(self, cols: list[V], due: V, n: V) -> None: ...
    def period(self, cols: list[V], due: V, n: V) -> None: ...
    def common(self, n: V) -> V: ...


class ScalarOps:
    """Operations on Python floats, and the rings of one series (1-D, maybe views)."""

    minimum: Callable[[V, V], V] = staticmethod(min)
    maximum: Callable[[V, V], V] = staticmethod(max)
    sqrt: Callable[[V], V] = staticmethod(math.sqrt)

    @staticmethod
    def where(c: V, a: V, b: V) -> V:
        return a if c else b

    @staticmethod
    def evidence(c: Consts, cols: list[V], ks: tuple[int, ...], us: list[V],
                 learning: V) -> list[V]:
        return [_evidence_scalar(c, cols, k, u, learning) for k, u in zip(ks, us, strict=True)]

    def __init__(self, p: Params, raw: Float64Array, comp: FloatArray) -> None:
        self.p = p
        self.raw = raw
        self.comp = comp
        self.ring_len = len(raw)

    @staticmethod
    def common(n: V) -> V:
        return n

    def comp_at(self, n: V, back: V) -> V:
        return float(self.comp[int(n - back) % self.ring_len])

    def write(self, n: V, value: V, comp: V | None) -> None:
        i = int(n) % self.ring_len
        self.raw[i] = value
        if comp is not None:
            self.comp[i] = comp

    def window(self, n: V, width: int) -> Float64Array:
        pos = int(n) - width + np.arange(width)
        win = self.raw[pos % self.ring_len]
        win[pos < 0] = np.nan
        return win[None, :]

    def robust(self, cols: list[V], due: V, n: V) -> None:
        if due:
            med, lo, hi = robust_stats(self.window(n, self.p.robust_window))
            cols[C_RMED], cols[C_RLO], cols[C_RHI] = float(med[0]), float(lo[0]), float(hi[0])

    def period(self, cols: list[V], due: V, n: V) -> None:
        if due:
            p = self.p
            win = self.window(n, min(int(n), self.ring_len))
            ps = season_period(win, p.max_period, p.season_min_period)
            found, misfit, y = ps.period, ps.misfit, ps.y
            current = np.array([int(cols[C_PER])])
            per = keep_period(y, current, found, misfit, p.max_period, p.season_min_period)
            cols[C_PER] = float(per[0])


class BatchOps(ScalarOps):
    """:class:`ScalarOps` for a run of known samples of one series: the refreshes depend on
    the values only, so they are computed for all refresh points of the run at once.

    ``values`` are the run's valid samples, which get the valid indices ``n0``, ``n0 + 1``,
    ...; ``history`` the (up to ``ring_len``) valid samples before them, in time order.
    """

    def __init__(self, p: Params, raw: Float64Array, comp: FloatArray, n0: int,
                 history: Float64Array, values: Float64Array, robust: bool,
                 periods: bool) -> None:
        super().__init__(p, raw, comp)
        ext = np.concatenate([history, values])
        base = n0 - len(history)  # the valid index of ext[0]
        end = n0 + len(values)
        every, w = p.robust_every, p.robust_window
        ns = np.arange(max(n0 + (-n0) % every, every), end if robust else 0, every)
        padded = np.concatenate([np.full(w, np.nan), ext])  # padded[i + w] = ext[i]
        windows = np.lib.stride_tricks.sliding_window_view(padded, w)
        stats = [robust_stats(windows[ns[lo : lo + 4096] - base])
                 for lo in range(0, len(ns), 4096)]
        self.rob = {int(n): (float(a), float(b), float(c)) for part, st in zip(
            (ns[lo : lo + 4096] for lo in range(0, len(ns), 4096)), stats, strict=True)
            for n, a, b, c in zip(part, *st, strict=True)}
        self.per_at: dict[int, tuple[int, float]] = {}
        groups: dict[int, list[int]] = {}
        at = np.arange(n0, end if periods else n0)
        for n in at[period_due(at, p)].tolist():
            groups.setdefault(min(n, p.season_ring), []).append(n)
        for c, group in groups.items():
            for lo in range(0, len(group), 256):
                part = group[lo : lo + 256]
                win = np.stack([ext[n - c - base : n - base] for n in part])
                ps = season_period(win, p.max_period, p.season_min_period)
                found, misfit = ps.period, ps.misfit
                self.per_at.update({n: (int(f), float(d)) for n, f, d in zip(
                    part, found, misfit, strict=True)})

    def robust(self, cols: list[V], due: V, n: V) -> None:
        if due:
            cols[C_RMED], cols[C_RLO], cols[C_RHI] = self.rob[int(n)]

    def period(self, cols: list[V], due: V, n: V) -> None:
        if due:
            found, misfit = self.per_at[int(n)]
            current = int(cols[C_PER])
            if current and found:  # the rare case that needs the window again
                p = self.p
                win = self.window(n, min(int(n), self.ring_len))
                y = season_period(win, p.max_period, p.season_min_period).y
                found = int(keep_period(y, np.array([current]), np.array([found]),
                                        np.array([misfit]), p.max_period,
                                        p.season_min_period)[0])
            cols[C_PER] = float(found)


class ArrayOps:
    """Operations on columns (one sample of each of ``rows``), and the rings (L x S)."""

    where: Callable[[V, V, V], V] = staticmethod(np.where)
    minimum: Callable[[V, V], V] = staticmethod(np.minimum)
    maximum: Callable[[V, V], V] = staticmethod(np.maximum)
    sqrt: Callable[[V], V] = staticmethod(np.sqrt)

    def evidence(self, c: Consts, cols: list[V], ks: tuple[int, ...], us: list[V],
                 learning: V) -> list[V]:
        return _evidence_array(c, self.block, ks, us, learning)

    def __init__(self, p: Params, raw: Float64Array, comp: FloatArray, rows: Int64Array,
                 span: slice | None, block: Float64Array) -> None:
        self.p = p
        self.block = block  # the state of ``rows`` (N_COLS x m); ``cols`` are its rows
        self.raw = raw
        self.comp = comp
        self.rows = rows
        self.span = span  # rows as a slice when they are consecutive
        self.ring_len = raw.shape[0]
        self._pos: tuple[V, Int64Array | int] | None = None

    def _at(self, n: V) -> Int64Array | int:
        if self._pos is None or self._pos[0] is not n:
            pos = n.astype(np.int64) % self.ring_len
            self._pos = (n, int(pos[0]) if self.span is not None and bool(
                (pos == pos[0]).all()) else pos)
        return self._pos[1]

    def comp_at(self, n: V, back: V) -> V:
        pos = (n - back).astype(np.int64) % self.ring_len
        return self.comp[pos, self.rows].astype(np.float64)  # float32 storage

    def write(self, n: V, value: V, comp: V | None) -> None:
        pos = self._at(n)
        if isinstance(pos, int):
            assert self.span is not None
            self.raw[pos, self.span] = value
            if comp is not None:
                self.comp[pos, self.span] = comp
        else:
            self.raw[pos, self.rows] = value
            if comp is not None:
                self.comp[pos, self.rows] = comp

    def window(self, sel: Int64Array, n: V, width: int) -> Float64Array:
        """The last ``width`` values of the series ``rows[sel]`` (m x width, C order)."""
        ids = self.rows[sel]
        first = int(n[0])
        if bool((n == first).all()):  # the ingest path's common case: all at one count
            pos = first - width + np.arange(width)
            if consecutive(ids):
                block = self.raw[pos % self.ring_len, int(ids[0]) : int(ids[-1]) + 1]
            else:
                block = self.raw[np.ix_(pos % self.ring_len, ids)]
            win = np.ascontiguousarray(block.T)
            win[:, pos < 0] = np.nan
            return win
        pos = n.astype(np.int64)[:, None] - width + np.arange(width)
        gathered: Float64Array = self.raw[pos % self.ring_len, ids[:, None]]
        gathered[pos < 0] = np.nan
        return gathered

    def common(self, n: V) -> V:
        """``n`` as one float when every series is at the same count (the ingest path's
        common case: the schedules are then decided once), else ``n``."""
        first = n[0]
        return float(first) if bool((n == first).all()) else n

    def _due(self, due: V) -> Int64Array:
        if isinstance(due, bool):
            return np.arange(len(self.rows)) if due else np.empty(0, np.int64)
        return np.flatnonzero(due)

    def robust(self, cols: list[V], due: V, n: V) -> None:
        sel = self._due(due)
        if sel.size:
            stats = robust_stats(self.window(sel, n[sel], self.p.robust_window))
            for col, a in zip((C_RMED, C_RLO, C_RHI), stats, strict=True):
                cols[col][sel] = a

    def period(self, cols: list[V], due: V, n: V) -> None:
        p = self.p
        sel = self._due(due)
        if not len(sel):
            return
        count = np.minimum(n[sel], self.ring_len).astype(np.int64)
        for c in np.unique(count):  # rows of one length together, in bounded chunks
            group = sel[count == c]
            for lo in range(0, len(group), 1024):
                part = group[lo : lo + 1024]
                win = self.window(part, n[part], int(c))
                ps = season_period(win, p.max_period, p.season_min_period)
                found, misfit, y = ps.period, ps.misfit, ps.y
                current = cols[C_PER][part].astype(np.int64)
                cols[C_PER][part] = keep_period(y, current, found, misfit, p.max_period,
                                                p.season_min_period)




def consecutive(ids: Int64Array) -> bool:
    return bool(ids[-1] - ids[0] == len(ids) - 1 and (np.diff(ids) == 1).all())


def _evidence_scalar(c: Consts, cols: list[V], k: int, u: V, learning: V) -> V:
    """Member ``k``'s evidence; see :meth:`Engine._evidence`."""
    ub = cols[C_U[k]]
    ub = ub + c.alpha * (min(max(u, -c.clip), c.clip) - ub)
    cols[C_U[k]] = ub
    best = 0.0
    for z, col, flag in ((abs(u), C_Q[k], C_F[k]), (abs(ub) * c.gain, C_QP[k], C_FP[k])):
        q = cols[col]
        best = max(best, z * (c.q0 / q))
        if z > q:
            if not learning and not cols[flag] > 0:
                cols[col] = max(q * c.up, c.q0)
            cols[flag] = 1.0
        else:
            if not learning:
                cols[col] = max(q * c.down, c.q0)
            cols[flag] = 0.0
    return max((best - c.z0[k]) / c.width, 0.0)


def _evidence_array(c: Consts, block: Float64Array, ks: tuple[int, ...], us: list[V],
                    learning: V) -> list[V]:
    """:func:`_evidence_scalar` for members ``ks`` (consecutive) of many series at once:
    their state rows are consecutive in ``block``, so each operation covers them all."""
    k0, n = ks[0], len(ks)
    u = np.stack(us)
    ub_rows = block[C_U[k0] : C_U[k0] + n]
    ub = ub_rows + c.alpha * (np.minimum(np.maximum(u, -c.clip), c.clip) - ub_rows)
    ub_rows[...] = ub
    best: V = 0.0
    for z, qs, fs in ((np.abs(u), C_Q, C_F), (np.abs(ub) * c.gain, C_QP, C_FP)):
        q = block[qs[k0] : qs[k0] + n]
        flag = block[fs[k0] : fs[k0] + n]
        best = np.maximum(best, z * (c.q0 / q))
        over = z > q
        new = np.where(over, np.where(flag > 0, q, q * c.up), q * c.down)
        q[...] = np.where(learning, q, np.maximum(new, c.q0))
        flag[...] = np.where(over, 1.0, 0.0)
    z0 = np.array(c.z0[k0 : k0 + n])[:, None]
    return list(np.maximum((best - z0) / c.width, 0.0))
