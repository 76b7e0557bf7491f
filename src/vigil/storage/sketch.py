"""A DDSketch-style log-bucketed quantile sketch, shared by SQL and numpy.

A value ``v`` falls in bucket ``k = ceil(log_gamma |v|)`` with ``gamma = (1+a)/(1-a)``;
every bucket's representative ``2 gamma^k / (gamma + 1)`` is within relative error
``a`` of every value in it, so any quantile read off merged buckets is within ``a`` of
the exact lower-rank quantile. Sketches merge by adding counts per key, which is what
makes them mergeable across series and across time. Keys are shifted so that their
order is the order of the values: negative values get negative keys, |v| < MIN_VALUE
gets key 0.

>>> v = np.array([0.5, 42.0, -3.0])
>>> bool(np.all(np.abs(representative(key_of(v)) / v - 1) <= RELATIVE_ERROR))
True
"""

from __future__ import annotations

import math

import numpy as np

from vigil.core.types import Float64Array, Int64Array

RELATIVE_ERROR = 0.01
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
INV_LN_GAMMA = 1.0 / math.log(GAMMA)
MIN_VALUE = 1e-9
# ceil(log_gamma(MIN_VALUE)) is about -1036; the offset keeps every non-zero key away from 0.
OFFSET = 1100


def key_sql(col: str) -> str:
    """SQL expression giving the INTEGER sketch key of the DOUBLE column ``col``."""
    mag = f"CAST(ceil(ln(abs({col})) * {INV_LN_GAMMA!r}) AS INTEGER) + {OFFSET}"
    return (
        f"(CASE WHEN abs({col}) < {MIN_VALUE!r} THEN 0 "
        f"WHEN {col} > 0 THEN {mag} ELSE -({mag}) END)"
    )


def key_of(values: Float64Array) -> Int64Array:
    """The same keys as ``key_sql``, vectorised in numpy."""
    mag = np.abs(values)
    with np.errstate(divide="ignore"):
        k = np.ceil(np.log(np.maximum(mag, MIN_VALUE)) * INV_LN_GAMMA).astype(np.int64) + OFFSET
    return np.where(mag < MIN_VALUE, 0, np.where(values > 0, k, -k))


def representative(keys: Int64Array) -> Float64Array:
    """The value a key stands for (within RELATIVE_ERROR of everything in its bucket)."""
    k = np.abs(keys).astype(np.float64) - OFFSET
    mag = 2.0 * np.power(GAMMA, k) / (GAMMA + 1.0)
    return np.where(keys == 0, 0.0, np.sign(keys) * mag)
