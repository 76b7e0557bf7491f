"""Root-cause analysis finds the label values behind a change, for additive and
non-additive aggregates, and the series that moved with it."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.analytics.rca import AGGREGATES, explain, movers, rank_related

RNG = np.random.default_rng(11)


def fleet(bad: set[tuple[str, str]], shift: float) -> tuple[
        list[dict[str, str]], list[np.ndarray], list[np.ndarray]]:
    """12 series (3 regions × 4 hosts); series carrying a label in ``bad`` shift."""
    labels, base, anom = [], [], []
    for r in ("eu", "us", "ap"):
        for h in range(4):
            lab = {"region": r, "host": f"{r}-{h}"}
            labels.append(lab)
            base.append(100 + RNG.normal(0, 2, 60))
            hit = any(lab.get(k) == v for k, v in bad)
            anom.append(100 + RNG.normal(0, 2, 60) + (shift if hit else 0))
    return labels, base, anom


@pytest.mark.parametrize("aggregate", ["mean", "sum", "p95", "p99", "max"])
def test_the_region_behind_the_change_ranks_first(aggregate: str) -> None:
    labels, base, anom = fleet({("region", "us")}, shift=80)
    r = explain(labels, base, anom, aggregate)
    assert r.change > 0
    top = r.contributions[0]
    assert (top.label, top.value) == ("region", "us")
    assert top.contribution > 0.6
    others = [c for c in r.contributions if c.label == "region" and c.value != "us"]
    assert all(c.contribution < 0.2 for c in others)


def test_a_single_host_is_found_among_its_region() -> None:
    labels, base, anom = fleet({("host", "eu-2")}, shift=200)
    r = explain(labels, base, anom, "p99")
    assert (r.contributions[0].label, r.contributions[0].value) == ("host", "eu-2")
    assert [m.labels["host"] for m in r.movers] == ["eu-2"]


def test_no_change_means_no_movers_and_small_contributions() -> None:
    labels, base, anom = fleet(set(), shift=0)
    r = explain(labels, base, anom, "mean")
    assert r.movers == []
    assert abs(r.change) < 2


def test_missing_values_and_empty_windows() -> None:
    labels = [{"h": "a"}, {"h": "b"}]
    base = [np.array([1.0, np.nan]), np.array([np.nan, np.nan])]
    anom = [np.array([np.nan, 5.0]), np.array([3.0, 3.0])]
    r = explain(labels, base, anom)
    assert r.baseline == 1.0 and r.anomaly == pytest.approx(11 / 3)
    empty = explain(labels, [np.array([np.nan])] * 2, anom)
    assert empty.contributions == [] and np.isnan(empty.baseline)
    assert movers(labels, base, anom) == []  # one baseline point is not enough


def test_bad_aggregate() -> None:
    with pytest.raises(ValueError, match="aggregate must be one of"):
        explain([], [], [], "median")
    assert set(AGGREGATES) >= {"mean", "p95"}


ANOMALOUS = [{"host": "b", "region": "eu", "service": "api"}]


@pytest.mark.parametrize(("carriers", "limit", "expected"), [
    # label overlap first: the late name sharing more labels wins
    ([("a", {"host": "b"}), ("z", {"host": "b", "region": "eu"})], 20, ["z", "a"]),
    # then how many series carry the value
    ([("a", {"host": "b"}), ("m", {"host": "b"}), ("m", {"host": "b", "disk": "1"})], 20,
     ["m", "a"]),
    # then the name; the anomalous metric itself is left out
    ([("c", {"host": "b"}), ("b", {"host": "b"}), ("lat", {"host": "b"})], 20, ["b", "c"]),
    # 25 metrics, the relevant one last alphabetically, a limit of 20
    ([(f"m{i:02d}", {"host": "b"}) for i in range(25)]
     + [("zz", {"host": "b", "region": "eu", "service": "api"})], 20,
     ["zz"] + [f"m{i:02d}" for i in range(19)]),
    ([], 20, []),
])
def test_rank_related(carriers: list[tuple[str, dict[str, str]]], limit: int,
                      expected: list[str]) -> None:
    assert rank_related(carriers, ANOMALOUS, exclude="lat", limit=limit) == expected
