"""State layout and tuning of the anomaly detectors (private to :mod:`.anomaly`).

A series' state is ``N_COLS`` floats, addressed by the ``C_*`` columns; a column holds a
``float`` for one series or a ``Float64Array`` for many (``V``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

# A state column: ``float`` for one series, ``Float64Array`` for many. The step is written
# once for both, so it is typed loosely here and held to account by the parity tests.
V = Any
FloatArray = npt.NDArray[np.floating[Any]]  # a ring: float64 values, float32 components

MEMBERS = ("zscore", "robust", "seasonal", "ewma")

C_N = 0  # valid samples seen so far
C_PREV = 1  # the previous valid value
C_RES = 2  # resolution: smallest non-zero |change| seen (0 = none yet)
C_MOVE = 3  # EW frequency of non-zero changes
C_ZMU, C_ZVAR = 4, 5  # zscore: EW mean and variance
C_EM, C_ED = 6, 7  # ewma: EW mean and EW mean |residual|, learnt from clipped residuals
C_RMED, C_RLO, C_RHI = 8, 9, 10  # robust: window median, lower and upper sigma
C_PER, C_SL, C_SD = 11, 12, 13  # seasonal: period (0 = none), level, EW mean |residual|
# per member, in MEMBERS order: EW mean of the clipped standardised residual; the tracked
# tail quantile of |u| and of the persistence statistic; "the last sample exceeded it"
C_U = (14, 15, 16, 17)
C_Q = (18, 19, 20, 21)
C_QP = (22, 23, 24, 25)
C_F = (26, 27, 28, 29)
C_FP = (30, 31, 32, 33)
N_COLS = 34

GAUSS_MEANDEV = 1.2533  # sigma / mean |deviation| for a normal distribution


@dataclass(frozen=True, slots=True)
class Params:
    """Tuning of the detectors. Time constants are in samples of the series.

    The defaults were chosen on the labelled corpus of ``benchmarks/anomaly_corpus.py``
    (several seeds, many noise shapes); ``benchmarks/bench_anomaly.py`` scores them.
    """

    warmup: int = 64  # scores are 0 for the first ``warmup`` valid samples
    zscore_alpha: float = 0.003  # zscore: EW mean / variance, ~330-sample memory
    ewma_alpha: float = 0.05  # ewma: EW band, ~20-sample memory
    clip: float = 4.0  # residuals beyond clip sigmas are learnt as clip sigmas
    robust_window: int = 128  # robust: median / quantiles of the last this-many values ...
    robust_every: int = 16  # ... recomputed every this-many samples
    season_ring: int = 1024  # seasonal: values kept; periods up to season_ring // 3
    season_min_period: int = 4
    season_every: int = 128  # period search every this-many samples while the ring
    # fills, every 8x that afterwards
    season_gamma: float = 0.5  # weight of a new seasonal component against the old ones
    level_alpha: float = 0.005  # seasonal: EW level
    dev_alpha: float = 0.005  # seasonal: EW mean |residual|
    persist_alpha: float = 0.25  # persistence: EW mean of the last ~7 residuals ...
    persist_clip: float = 5.0  # ... each clipped to this many sigmas
    tail_q0: float = 3.09  # tail: z is scaled by q0 / q, q the tracked quantile of z ...
    tail_tau: float = 0.002  # ... at 1 - tail_tau (q0 = that quantile of |N(0, 1)|) ...
    tail_eta: float = 0.1  # ... moved by this relative step per exceedance run
    rel_floor: float = 1e-6  # sigma >= rel_floor * |level| + abs_floor ...
    abs_floor: float = 1e-12
    res_floor: float = 0.5  # ... + res_floor * resolution, for quantised series
    # calibrated z (sigmas) -> evidence d = max(0, z - z0[member]) / width (MEMBERS order);
    # score = d^2 / (1 + d^2), so 0.5 at z = z0 + width
    z0: tuple[float, float, float, float] = (2.2, 2.9, 2.9, 2.9)
    width: float = 2.0
    ensemble_div: float = 1.25  # the ensemble's evidence: the members' largest / this

    @property
    def max_period(self) -> int:
        return self.season_ring // 3


def period_due(n: V, p: Params) -> V:
    """Whether the period is searched before sample ``n`` (0-based valid index)."""
    return ((n % p.season_every) == 0) & (n > 0) & (
        (n <= p.season_ring) | ((n % (8 * p.season_every)) == 0))


@dataclass(frozen=True, slots=True)
class Consts:
    """Constants of the evidence step, computed once (the same floats everywhere)."""

    alpha: float
    clip: float
    gain: float
    q0: float
    up: float
    down: float
    z0: tuple[float, float, float, float]
    width: float
