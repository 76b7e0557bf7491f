"""Every figure of both reports against a direct computation over the raw events, for
each filter combination."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.tasks.events_gen import HOUR, NOW, expected_bottlenecks, expected_performance, generate
from vigil.storage.duckdb_store import DuckDBStore
from vigil.storage.task_store import HISTOGRAM_LE_MS, TaskStore
from vigil.tasks.cache import ReportCache
from vigil.tasks.reports import health_score
from vigil.tasks.service import Limits, TaskService, scope_of

EVENTS = generate(3000)
SCOPES: list[dict[str, str]] = [
    {}, {"namespace": "shop"}, {"namespace": "etl"}, {"task_name": "process_order"},
    {"namespace": "shop", "task_name": "refund"}, {"version": "2.0.0"},
    {"namespace": "shop", "task_name": "process_order", "version": "1.0.0"},
    {"namespace": "nowhere"},
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TaskService]:
    """A task service over a fresh store holding ``EVENTS`` (tenant ``t``), clock at NOW,
    and a few events of another tenant that must never show."""
    path: Path = tmp_path_factory.mktemp("tasks") / "t.duckdb"
    store = DuckDBStore(path)
    svc = TaskService(TaskStore(store), ReportCache({"performance": 0, "bottlenecks": 0}),
                      Limits(), clock=lambda: NOW)
    svc.record("t", EVENTS)
    svc.record("other", generate(50, seed=99))
    yield svc
    svc.store.close()
    store.close()


def _perf(svc: TaskService, scope: dict[str, str]) -> dict[str, Any]:
    entry, _ = svc.performance("t", scope_of(**{k: scope.get(k) for k in
                                                ("namespace", "task_name", "version")}))
    return dict(orjson.loads(entry.body))


def _bottle(svc: TaskService, scope: dict[str, str], period: int, limit: int = 50
            ) -> dict[str, Any]:
    entry, _ = svc.bottlenecks("t", scope_of(**{k: scope.get(k) for k in
                                                ("namespace", "task_name", "version")}),
                               period, limit)
    return dict(orjson.loads(entry.body))


def _close(got: Any, want: Any) -> None:
    if isinstance(want, dict):
        for k, v in want.items():
            _close(got[k], v)
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9)
    else:
        assert got == want


@pytest.mark.parametrize("scope", SCOPES, ids=lambda s: ",".join(s.values()) or "global")
def test_performance_matches_direct_computation(service: TaskService,
                                                scope: dict[str, str]) -> None:
    got = _perf(service, scope)
    want = expected_performance(EVENTS, scope)
    _close(got, want)
    assert got["scope"] == scope
    t, trends = want["task_statistics"], want["performance_trends"]
    assert got["system_health_score"] == health_score(
        trends["24h"]["completion_rate"], t["retried"], t["total_tasks"],
        trends["24h"]["avg_duration_ms"], trends["1h"]["avg_duration_ms"])
    assert 0 <= got["system_health_score"] <= 100


@pytest.mark.parametrize("period", [24, 48])
@pytest.mark.parametrize("scope", SCOPES, ids=lambda s: ",".join(s.values()) or "global")
def test_bottlenecks_match_direct_computation(service: TaskService, scope: dict[str, str],
                                              period: int) -> None:
    got = _bottle(service, scope, period)
    want = expected_bottlenecks(EVENTS, scope, period)
    assert got["analysis_period"] == f"{period} hours"
    assert got["scope"] == scope
    assert len(got["slowest_tasks"]) == len(want["slowest_tasks"])
    for row in got["slowest_tasks"]:
        _close(row, want["slowest_tasks"][(row["namespace"], row["task_name"])])
    assert len(got["slowest_steps"]) == len(want["slowest_steps"])
    for row in got["slowest_steps"]:
        _close(row, want["slowest_steps"][(row["namespace"], row["task_name"],
                                           row["step_name"])])
    for key in ("slowest_tasks", "slowest_steps"):
        avgs = [r["avg_duration_ms"] for r in got[key]]
        assert avgs == sorted(avgs, reverse=True)
    assert {p["error_type"] for p in got["error_patterns"]} == set(want["error_patterns"])
    for p in got["error_patterns"]:
        _close(p, want["error_patterns"][p["error_type"]])
        assert p["bucket_ms"] == HOUR
    freqs = [p["frequency"] for p in got["error_patterns"]]
    assert freqs == sorted(freqs, reverse=True)
    durs = np.array(want["durations"])
    dist = got["distribution"]
    assert dist["count"] == len(durs)
    if len(durs):
        _close(dist, {"min_ms": float(durs.min()), "mean_ms": float(durs.mean()),
                      "max_ms": float(durs.max()),
                      **{f"p{p}": float(np.quantile(durs, p / 100)) for p in (50, 90, 95, 99)}})
    edges = np.array([*HISTOGRAM_LE_MS, np.inf])
    counts = np.bincount(np.searchsorted(edges, durs, side="left"), minlength=len(edges))
    assert [b["count"] for b in dist["histogram"]] == counts.tolist()
    assert [b["le_ms"] for b in dist["histogram"]] == [*HISTOGRAM_LE_MS, None]


def test_limit_keeps_the_slowest(service: TaskService) -> None:
    full = _bottle(service, {}, 24)
    top = _bottle(service, {}, 24, limit=2)
    assert top["slowest_tasks"] == full["slowest_tasks"][:2]
    assert top["slowest_steps"] == full["slowest_steps"][:2]
    assert top["error_patterns"] == full["error_patterns"][:2]


def test_long_period_buckets_errors_by_day(service: TaskService) -> None:
    got = _bottle(service, {}, 72)
    assert got["error_patterns"] and all(p["bucket_ms"] == 24 * HOUR
                                         for p in got["error_patterns"])
    for p in got["error_patterns"]:
        assert sum(c for _, c in p["timeline"]) == p["frequency"]


def test_other_tenant_and_empty_scope(service: TaskService) -> None:
    assert _perf(service, {"namespace": "nowhere"})["task_statistics"]["total_tasks"] == 0
    empty = _perf(service, {"namespace": "nowhere"})
    assert empty["system_health_score"] == 100.0
    assert empty["processing_times"] == {"p50": None, "p95": None, "p99": None}
    entry, _ = service.performance("nobody", scope_of(None, None, None))
    assert orjson.loads(entry.body)["task_statistics"]["total_tasks"] == 0


@pytest.mark.parametrize(("args", "score"), [
    ((None, 0, 0, None, None), 100.0),
    ((1.0, 0, 10, 100.0, 100.0), 100.0),
    ((0.5, 0, 10, 100.0, 100.0), 70.0),
    ((1.0, 5, 10, 100.0, 100.0), 90.0),
    ((1.0, 0, 10, 100.0, 200.0), 90.0),
    ((0.0, 10, 10, 100.0, 1e9), 0.0),
])
def test_health_score_formula(args: tuple[Any, ...], score: float) -> None:
    assert health_score(*args) == pytest.approx(score, abs=0.05)
