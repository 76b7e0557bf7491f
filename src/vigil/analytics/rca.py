"""Root-cause analysis: which label values explain a change in an aggregate.

The aggregate (mean, sum, a quantile …) is computed over a set of series in a baseline
window and in an anomaly window. A label value's *contribution* is the share of the
change that disappears when the series carrying it are left out — a leave-one-out
attribution that works for non-additive aggregates such as p95, where per-series
deltas do not add up. Values are ranked by contribution; a value whose removal
*increases* the change gets a negative contribution (it damped the anomaly).

Which other metrics to search is ranked (:func:`rank_related`): those whose series share
the most labels with the anomalous series come first, so a tenant with many metrics
still finds the ones that matter.

Other series "moved with it" when their own change between the two windows is large
relative to their baseline variability (a robust z-score).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Aggregate = Callable[[FloatArray], float]

AGGREGATES: dict[str, Aggregate] = {
    "mean": lambda v: float(np.mean(v)),
    "sum": lambda v: float(np.sum(v)),
    "max": lambda v: float(np.max(v)),
    "min": lambda v: float(np.min(v)),
    "p50": lambda v: float(np.quantile(v, 0.5)),
    "p95": lambda v: float(np.quantile(v, 0.95)),
    "p99": lambda v: float(np.quantile(v, 0.99)),
}


@dataclass(frozen=True, slots=True)
class Contribution:
    label: str
    value: str
    series: int
    contribution: float  # share of the change explained, 1.0 = all of it
    baseline: float  # the aggregate of these series alone, in each window
    anomaly: float

    def as_dict(self) -> dict[str, object]:
        return {"label": self.label, "value": self.value, "series": self.series,
                "contribution": round(self.contribution, 6), "baseline": self.baseline,
                "anomaly": self.anomaly}


@dataclass(frozen=True, slots=True)
class Mover:
    index: int  # position in the input
    labels: Mapping[str, str]
    change: float
    z: float

    def as_dict(self) -> dict[str, object]:
        return {"labels": dict(self.labels), "change": self.change, "z": round(self.z, 3)}


@dataclass(frozen=True, slots=True)
class RootCause:
    aggregate: str
    baseline: float
    anomaly: float
    change: float
    contributions: list[Contribution]
    movers: list[Mover]

    def as_dict(self) -> dict[str, object]:
        return {"aggregate": self.aggregate, "baseline": self.baseline,
                "anomaly": self.anomaly, "change": self.change,
                "contributions": [c.as_dict() for c in self.contributions],
                "movers": [m.as_dict() for m in self.movers]}


def _pooled(windows: Sequence[FloatArray], keep: npt.NDArray[np.bool_]) -> FloatArray:
    parts = [w[~np.isnan(w)] for w, k in zip(windows, keep, strict=True) if k]
    return np.concatenate(parts) if parts else np.empty(0)


def explain(
    labels: Sequence[Mapping[str, str]],
    baseline: Sequence[FloatArray],
    anomaly: Sequence[FloatArray],
    aggregate: str = "mean",
    *,
    top: int = 10,
    min_z: float = 3.0,
) -> RootCause:
    """Rank label values by their contribution to the change of ``aggregate``.

    ``labels[i]``, ``baseline[i]`` and ``anomaly[i]`` describe series i: its labels and
    its values in the baseline and in the anomaly window (NaN = missing).

    >>> r = explain([{"host": "a"}, {"host": "b"}],
    ...             [np.array([1.0, 1.0]), np.array([1.0, 1.0])],
    ...             [np.array([1.0, 1.0]), np.array([9.0, 9.0])])
    >>> (r.contributions[0].value, r.contributions[0].contribution)
    ('b', 1.0)
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}")
    if not (len(labels) == len(baseline) == len(anomaly)):
        raise AssertionError("BUG: labels and windows differ in length")
    agg = AGGREGATES[aggregate]
    n = len(labels)
    everyone = np.ones(n, bool)

    def change_without(mask: npt.NDArray[np.bool_]) -> float | None:
        b, a = _pooled(baseline, mask), _pooled(anomaly, mask)
        return agg(a) - agg(b) if len(a) and len(b) else None

    all_b, all_a = _pooled(baseline, everyone), _pooled(anomaly, everyone)
    if not len(all_b) or not len(all_a):
        return RootCause(aggregate, float("nan"), float("nan"), 0.0, [], [])
    base_value, anomaly_value = agg(all_b), agg(all_a)
    change = anomaly_value - base_value
    contributions = []
    values_by_label: dict[tuple[str, str], npt.NDArray[np.bool_]] = {}
    for i, lab in enumerate(labels):
        for k, v in lab.items():
            values_by_label.setdefault((k, v), np.zeros(n, bool))[i] = True
    for (k, v), members in values_by_label.items():
        if members.all():
            continue  # a label every series shares explains nothing by itself
        rest = change_without(~members)
        explained = 1.0 if rest is None else (change - rest) / change if change else 0.0
        own_b, own_a = _pooled(baseline, members), _pooled(anomaly, members)
        contributions.append(Contribution(
            k, v, int(members.sum()), float(explained),
            agg(own_b) if len(own_b) else float("nan"),
            agg(own_a) if len(own_a) else float("nan")))
    contributions.sort(key=lambda c: (-c.contribution, c.label, c.value))
    return RootCause(aggregate, base_value, anomaly_value, change, contributions[:top],
                     movers(labels, baseline, anomaly, top=top, min_z=min_z))


def movers(
    labels: Sequence[Mapping[str, str]],
    baseline: Sequence[FloatArray],
    anomaly: Sequence[FloatArray],
    *,
    top: int = 10,
    min_z: float = 3.0,
) -> list[Mover]:
    """Series whose mean moved by at least ``min_z`` robust standard deviations of their
    own baseline (median absolute deviation, scaled to σ), largest first."""
    out = []
    for i, (b, a) in enumerate(zip(baseline, anomaly, strict=True)):
        b, a = b[~np.isnan(b)], a[~np.isnan(a)]
        if len(b) < 2 or not len(a):
            continue
        med = float(np.median(b))
        sigma = 1.4826 * float(np.median(np.abs(b - med))) or float(np.std(b)) or 1e-12
        delta = float(np.mean(a)) - med
        z = delta / sigma
        if abs(z) >= min_z:
            out.append(Mover(i, labels[i], delta, z))
    out.sort(key=lambda m: -abs(m.z))
    return out[:top]


def rank_related(carriers: Sequence[tuple[str, Mapping[str, str]]],
                 anomalous: Sequence[Mapping[str, str]], *, exclude: str = "",
                 limit: int = 20) -> list[str]:
    """Up to ``limit`` metric names from ``carriers`` (name and labels of each series that
    carries the label value behind an anomaly), most related first: by label overlap
    (the share of the anomalous series' label pairs that the metric's carrying series
    also have), then by how many of its series carry the value, then by name.
    ``exclude`` (the anomalous metric itself) is left out.

    >>> rank_related([("a_disk", {"region": "us"}), ("z_cpu", {"region": "us", "host": "h1"})],
    ...              [{"region": "us", "host": "h1"}])
    ['z_cpu', 'a_disk']
    """
    wanted = {pair for labels in anomalous for pair in labels.items()}
    pairs: dict[str, set[tuple[str, str]]] = {}
    count: dict[str, int] = {}
    for name, labels in carriers:
        if name == exclude:
            continue
        pairs.setdefault(name, set()).update(labels.items())
        count[name] = count.get(name, 0) + 1

    def key(name: str) -> tuple[float, int, str]:
        overlap = len(pairs[name] & wanted) / len(wanted) if wanted else 0.0
        return (-overlap, -count[name], name)

    return sorted(count, key=key)[:limit]
