"""The anomaly detectors' arithmetic, written once for one series and for many.

Private to :mod:`vigil.analytics.anomaly`, which holds the public contract.
:meth:`Engine.step` scores one valid sample per series against the state built from the
samples before it, then learns it. It runs on Python floats (one series, :class:`ScalarOps`)
and on numpy columns (one time step across many series, :class:`ArrayOps`). The step only
adds, subtracts, multiplies, divides, takes square roots, absolute values, minima, maxima
and comparisons — each rounded the same way by IEEE 754 in Python and in numpy — and the
periodic refreshes run the same row-wise numpy code (:mod:`.anomaly_refresh`) on every
path, so one series, many series and a batch give bit-identical scores.

State of a series: ``N_COLS`` floats (``C_*``), plus for ``robust`` a ring of its last
``robust_window`` valid values and for ``seasonal`` (and the ensemble) rings of its last
``season_ring`` values and seasonal components.
"""

from __future__ import annotations

import math
from typing import Any

from vigil.analytics.anomaly_ops import Ops
from vigil.analytics.anomaly_state import (
    C_ED,
    C_EM,
    C_MOVE,
    C_N,
    C_PER,
    C_PREV,
    C_Q,
    C_QP,
    C_RES,
    C_RHI,
    C_RLO,
    C_RMED,
    C_SD,
    C_SL,
    C_ZMU,
    C_ZVAR,
    GAUSS_MEANDEV,
    MEMBERS,
    N_COLS,
    Consts,
    Params,
    V,
    period_due,
)


def to_score(d: V) -> V:
    """Evidence ``d`` >= 0 as a score in [0, 1): ``d**2 / (1 + d**2)``, 0.5 at d = 1."""
    return 1.0 - 1.0 / (1.0 + d * d)


class Engine:
    """One method: which members it runs, their parameters, and the step."""

    def __init__(self, method: str, params: Params, period: int | None) -> None:
        self.method = method
        self.p = params
        self.period = period
        members = MEMBERS if method == "ensemble" else (method,)
        self.use = tuple(m in members for m in MEMBERS)
        self.members = tuple(k for k, used in enumerate(self.use) if used)
        self.seasonal = self.use[2]
        self.ring_len = (params.season_ring if self.seasonal
                         else params.robust_window if self.use[1] else 0)
        b = params.persist_alpha
        self.k = Consts(
            alpha=b, clip=params.persist_clip,
            gain=math.sqrt((2.0 - b) / b),  # 1 / sd of the EW mean of N(0, 1)
            q0=params.tail_q0, up=1.0 + params.tail_eta * (1.0 - params.tail_tau),
            down=1.0 - params.tail_eta * params.tail_tau, z0=params.z0, width=params.width)

    def initial_state(self) -> list[float]:
        st = [0.0] * N_COLS
        for c in C_Q + C_QP:
            st[c] = self.p.tail_q0
        if self.period is not None:
            st[C_PER] = float(self.period)
        return st

    def step(self, cols: list[V], x: V, o: Ops) -> V:
        """Score ``x`` against the state (the samples before it), then learn ``x``."""
        p = self.p
        n = cols[C_N]
        nn = o.common(n)  # for the schedules: one number when all series agree
        a_init = 1.0 / (n + 1.0)  # running averages until the EW memory is reached
        learning = n < p.warmup
        dx = abs(x - cols[C_PREV])
        res, move = cols[C_RES], cols[C_MOVE]
        moved = dx > 0
        res_term = p.res_floor * res * o.minimum(1.0, 10.0 * move) + p.abs_floor

        def floor(level: V) -> V:  # sigma is never below this
            return p.rel_floor * abs(level) + res_term

        us: list[V] = []  # the used members' standardised residuals, in MEMBERS order
        if self.use[0]:
            mu, var = cols[C_ZMU], cols[C_ZVAR]
            a = o.maximum(p.zscore_alpha, a_init)
            r = x - mu
            us.append(r / o.maximum(o.sqrt(var), floor(mu)))
            cols[C_ZMU] = mu + a * r
            cols[C_ZVAR] = (1.0 - a) * (var + a * r * r)
        if self.use[1]:
            o.robust(cols, ((nn % p.robust_every) == 0) & (nn > 0), n)
            med = cols[C_RMED]
            r = x - med
            sig = o.where(r >= 0, cols[C_RHI], cols[C_RLO])
            us.append(r / o.maximum(sig, floor(med)))
        if self.seasonal:
            if self.period is None:
                o.period(cols, period_due(nn, p), n)
            us.append(self._seasonal(cols, x, o, n, learning, a_init, floor))
        elif self.use[1]:
            o.write(n, x, None)
        if self.use[3]:
            em, ed = cols[C_EM], cols[C_ED]
            a = o.maximum(p.ewma_alpha, a_init)
            r = x - em
            sig = o.maximum(GAUSS_MEANDEV * ed, floor(em))
            us.append(r / sig)
            bound = o.where(learning, math.inf, p.clip * sig)
            c = o.minimum(o.maximum(r, -bound), bound)
            cols[C_EM] = em + a * c
            cols[C_ED] = ed + a * (abs(c) - ed)
        cols[C_RES] = o.where(moved & ((res == 0) | (dx < res)), dx, res)
        cols[C_MOVE] = move + o.maximum(0.01, a_init) * (moved - move)
        cols[C_PREV] = x
        cols[C_N] = n + 1.0
        evidence = self._evidence(cols, us, learning, o)
        d = evidence[0] if len(evidence) == 1 else combine(evidence, cols[C_PER] > 0, p, o)
        return o.where(learning | (d != d), 0.0, to_score(d))  # d != d: NaN after overflow

    def _seasonal(self, cols: list[V], x: V, o: Ops, n: V, learning: V, a_init: V,
                  floor: Any) -> V:
        """Standardised residual after the level and the median seasonal component of the
        last three periods (fewer while they are not yet seen; none without a period)."""
        p = self.p
        per = cols[C_PER]
        s1, s2, s3 = o.comp_at(n, per), o.comp_at(n, 2.0 * per), o.comp_at(n, 3.0 * per)
        med3 = o.maximum(o.minimum(s1, s2), o.minimum(o.maximum(s1, s2), s3))
        season = o.where(n >= 3.0 * per, med3, o.where(n >= 2.0 * per, 0.5 * (s1 + s2), s1))
        season = o.where((per > 0) & (n >= per), season, 0.0)
        level, dev = cols[C_SL], cols[C_SD]
        r = x - level - season
        sig = o.maximum(GAUSS_MEANDEV * dev, floor(level))
        u = r / sig
        bound = o.where(learning, math.inf, p.clip * sig)
        c = o.minimum(o.maximum(r, -bound), bound)
        level = level + o.maximum(p.level_alpha, a_init) * c
        cols[C_SL] = level
        cols[C_SD] = dev + o.maximum(p.dev_alpha, a_init) * (abs(c) - dev)
        e = x - level - season
        gamma = o.where(n >= 3.0 * per, p.season_gamma, 1.0)
        o.write(n, x, season + gamma * o.minimum(o.maximum(e, -bound), bound))
        return u

    def _evidence(self, cols: list[V], us: list[V], learning: V, o: Ops) -> list[V]:
        """Evidence ``d`` >= 0 of each used member from its standardised residual: the
        larger of |u| and the EW mean of the recent (clipped) residuals in its own
        sigmas (persistence: a lasting shift of a few sigmas counts like one big spike),
        each in units of this series' own tail, less ``z0[k]``, over ``width``.

        The tail: z is multiplied by q0 / q, where q tracks the (1 - tail_tau) quantile of
        z by stochastic approximation (multiplicative steps, never below q0, frozen while
        learning). A run of exceedances counts once, so a lasting anomaly teaches it
        little, while a series with frequent bursts soon needs bigger ones.
        """
        return o.evidence(self.k, cols, self.members, us, learning)


def combine(evidence: list[V], seasonal: V, p: Params, o: Ops) -> V:
    """The ensemble's evidence (members in MEMBERS order): the largest member's, over
    ``ensemble_div``; the robust member's only while no seasonal period is known.

    Each member is calibrated to its own tail on each series, so their evidence shares
    one scale and the most confident member speaks. The members watch different things
    (a long-run level, a local median, the seasonal pattern, a fast band), so together
    they find more than any one of them. A window median is no baseline for a series
    with a daily pattern (it alarms at every daily rise), so once the seasonal member has
    a period the robust member is left out.
    """
    z, robust, season, ewma = evidence
    best = o.maximum(o.maximum(z, season), ewma)
    best = o.maximum(best, o.where(seasonal, 0.0, robust))
    return best * (1.0 / p.ensemble_div)
