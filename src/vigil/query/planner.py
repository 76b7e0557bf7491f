"""Which storage tier answers a query, coarsest first.

A rollup tier is chosen only when its buckets tile every step bucket of the query, so
count, sum, min, max, avg and last are exactly what raw samples give. ``quantile`` from a
rollup tier comes from the merged sketches: within 1 % relative error of the exact
(lower-rank) quantile. Over ranges up to ``EXACT_QUANTILE_MAX_RANGE_MS`` raw samples are
few enough that the exact, interpolated quantile is as cheap as merging sketches, so
those read raw; ``tier=raw`` forces it for any range.
"""

from __future__ import annotations

from vigil.core.errors import InvalidInput, Problem
from vigil.query.model import Query
from vigil.storage.store import TIER_MS, Tier

_COARSEST_FIRST: tuple[Tier, ...] = ("1d", "1h", "5m")
EXACT_QUANTILE_MAX_RANGE_MS = 6 * 3_600_000


def fits(tier: Tier, query: Query, now_ms: int) -> bool:
    """A rollup tier answers exactly when every step bucket is a union of its buckets:
    step, start and end fall on its bucket edges. An end at or after the present counts
    as aligned, since no samples lie beyond now: one after ``now_ms``, or the present
    when the query was made (``end_now``: the plan comes a moment later, and the bucket
    holding the end is still being filled, so it is read from raw samples up to the
    end)."""
    if tier == "raw":
        return True
    if query.fn in ("rate", "increase"):
        return False  # counter resets need raw samples
    w = TIER_MS[tier]
    return (
        query.step_ms % w == 0
        and query.start_ms % w == 0
        and (query.end_ms % w == 0 or query.end_now or query.end_ms >= now_ms)
    )


def plan(query: Query, now_ms: int) -> Tier:
    if query.tier is not None:
        if not fits(query.tier, query, now_ms):
            raise InvalidInput(Problem(
                f"tier {query.tier} cannot answer this query exactly: step, start and end "
                f"must be multiples of {query.tier} (and fn not rate/increase)", field="tier"))
        return query.tier
    if query.fn == "quantile" and query.end_ms - query.start_ms <= EXACT_QUANTILE_MAX_RANGE_MS:
        return "raw"
    return next((t for t in _COARSEST_FIRST if fits(t, query, now_ms)), "raw")
