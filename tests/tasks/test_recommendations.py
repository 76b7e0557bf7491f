"""Recommendations fire on the planted slow step, flaky step and rising task, and on
nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.tasks.events_gen import FLAKY_STEP, NOW, RISING_TASK, SLOW_STEP, generate
from vigil.storage.duckdb_store import DuckDBStore
from vigil.storage.task_store import TaskStore
from vigil.tasks.cache import ReportCache
from vigil.tasks.recommendations import StepFigures, TaskFigures, recommend
from vigil.tasks.service import Limits, TaskService, scope_of


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TaskService]:
    """A task service holding 3000 generated executions with the planted problems."""
    store = DuckDBStore(Path(tmp_path_factory.mktemp("rec")) / "t.duckdb")
    svc = TaskService(TaskStore(store), ReportCache({"performance": 0, "bottlenecks": 0}),
                      Limits(), clock=lambda: NOW)
    svc.record("t", generate(3000))
    yield svc
    svc.store.close()
    store.close()


def _fired(svc: TaskService, **scope: str) -> list[dict[str, Any]]:
    entry, _ = svc.bottlenecks("t", scope_of(scope.get("namespace"), scope.get("task_name"),
                                             scope.get("version")), 24, 10)
    recs: list[dict[str, Any]] = orjson.loads(entry.body)["recommendations"]
    return recs


def _keys(recs: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    return {(r["type"], r["namespace"], r["task_name"], *([r["step"]] if "step" in r else []))
            for r in recs}


def test_planted_problems_fire_and_clean_steps_do_not(service: TaskService) -> None:
    recs = _fired(service)
    assert _keys(recs) == {
        ("timeout_optimization", *SLOW_STEP),
        ("retry_reduction", *FLAKY_STEP),
        ("failure_rate_increase", *RISING_TASK),
    }
    by_type = {r["type"]: r for r in recs}
    timeout = by_type["timeout_optimization"]
    assert timeout["current_timeout"] == 10
    assert timeout["suggested_timeout"] > 10
    assert "95th percentile" in timeout["rationale"]
    assert by_type["retry_reduction"]["retry_rate"] > 0.25
    assert "ConnectionResetError" in by_type["retry_reduction"]["rationale"]
    rise = by_type["failure_rate_increase"]
    assert rise["failure_rate"] > rise["previous_failure_rate"] + 0.05


@pytest.mark.parametrize(("scope", "expected"), [
    ({"namespace": "etl"}, {("retry_reduction", *FLAKY_STEP)}),
    ({"namespace": "shop", "task_name": "refund"}, {("failure_rate_increase", *RISING_TASK)}),
    ({"task_name": "process_order", "version": "2.0.0"}, {("timeout_optimization", *SLOW_STEP)}),
])
def test_recommendations_follow_the_scope(service: TaskService, scope: dict[str, str],
                                          expected: set[tuple[str, ...]]) -> None:
    assert _keys(_fired(service, **scope)) == expected


def _step(**kw: Any) -> StepFigures:
    base: dict[str, Any] = {"namespace": "n", "task_name": "t", "step_name": "s",
                            "executions": 100, "avg_duration_ms": 100.0,
                            "p95_duration_ms": 200.0, "retried": 0, "timeout_s": 30.0,
                            "top_error": None}
    return StepFigures(**{**base, **kw})


@pytest.mark.parametrize(("step", "types"), [
    (_step(), []),
    (_step(p95_duration_ms=24_000.0), ["timeout_optimization"]),
    (_step(p95_duration_ms=23_900.0), []),
    (_step(p95_duration_ms=29_000.0, executions=9), []),  # too few executions
    (_step(p95_duration_ms=29_000.0, timeout_s=None), []),  # no timeout known
    (_step(retried=10), ["retry_reduction"]),
    (_step(retried=9), []),
])
def test_step_rules(step: StepFigures, types: list[str]) -> None:
    assert [r["type"] for r in recommend([], [step])] == types


@pytest.mark.parametrize(("failed", "prev_failed", "fires"), [
    (10, 0, True), (4, 0, False), (20, 14, False), (30, 10, True), (2, 2, False),
])
def test_failure_rise_rule(failed: int, prev_failed: int, fires: bool) -> None:
    task = TaskFigures("n", "t", 100, failed, 1.0, 1.0, 100, prev_failed)
    assert bool(recommend([task], [])) == fires
