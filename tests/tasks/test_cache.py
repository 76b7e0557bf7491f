"""The report cache: hits, expiry (injected clock), scoped invalidation by new ended
executions, and no stale answer cached across a commit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tasks.events_gen import NOW
from vigil.storage.duckdb_store import DuckDBStore
from vigil.storage.task_store import TaskScope, TaskStore
from vigil.tasks.cache import ReportCache
from vigil.tasks.service import Limits, TaskService


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """A settable clock (epoch ms) shared by the cache and the service."""
    return Clock()


@pytest.fixture
def service(tmp_path: Path, clock: Clock) -> Iterator[TaskService]:
    """A task service (90 s / 120 s TTLs) over a fresh store, counting hits and misses."""
    store = DuckDBStore(tmp_path / "t.duckdb")
    svc = TaskService(TaskStore(store),
                      ReportCache({"performance": 90, "bottlenecks": 120}, clock=clock),
                      Limits(), clock=clock, on_cache=lambda kind, hit: seen.append((kind, hit)))
    seen: list[tuple[str, bool]] = []
    svc.seen = seen  # type: ignore[attr-defined]
    yield svc
    svc.store.close()
    store.close()


def _event(ns: str, task: str, status: str = "completed", version: str = "1.0",
           i: int = 0) -> dict[str, Any]:
    return {"namespace": ns, "task_name": task, "version": version, "task_id": f"{ns}{task}{i}",
            "status": status, "started_at": NOW - 60_000, "finished_at": NOW - 1_000}


def test_hit_then_expiry(service: TaskService, clock: Clock) -> None:
    scope = TaskScope()
    first, hit1 = service.performance("t", scope)
    again, hit2 = service.performance("t", scope)
    assert (hit1, hit2) == (False, True)
    assert again.etag == first.etag
    assert again.max_age_s(clock.now) == 90
    clock.now += 89_000
    assert service.performance("t", scope)[1] is True
    assert service.performance("t", scope)[0].max_age_s(clock.now) == 1
    clock.now += 1_000
    assert service.performance("t", scope)[1] is False
    _, b1 = service.bottlenecks("t", scope, 24, 10)
    clock.now += 119_000
    _, b2 = service.bottlenecks("t", scope, 24, 10)
    clock.now += 1_000
    _, b3 = service.bottlenecks("t", scope, 24, 10)
    assert (b1, b2, b3) == (False, True, False)
    assert service.seen[:3] == [  # type: ignore[attr-defined]
        ("performance", False), ("performance", True), ("performance", True)]


def test_keys_separate_scope_parameters_and_tenant(service: TaskService) -> None:
    service.bottlenecks("t", TaskScope("shop"), 24, 10)
    assert service.bottlenecks("t", TaskScope("shop"), 24, 10)[1]
    assert not service.bottlenecks("t", TaskScope("shop"), 48, 10)[1]
    assert not service.bottlenecks("t", TaskScope("shop"), 24, 5)[1]
    assert not service.bottlenecks("u", TaskScope("shop"), 24, 10)[1]
    assert not service.performance("t", TaskScope("shop"))[1]


SCOPES = [TaskScope(), TaskScope("shop"), TaskScope("shop", "order"), TaskScope("etl"),
          TaskScope("shop", "refund"), TaskScope(None, "order"), TaskScope("shop", None, "1.0"),
          TaskScope("shop", None, "2.0")]


@pytest.mark.parametrize(("status", "stale"), [
    ("completed", {TaskScope(), TaskScope("shop"), TaskScope("shop", "order"),
                   TaskScope(None, "order"), TaskScope("shop", None, "1.0")}),
    ("failed", {TaskScope(), TaskScope("shop"), TaskScope("shop", "order"),
                TaskScope(None, "order"), TaskScope("shop", None, "1.0")}),
    ("running", set()),
])
def test_new_ended_execution_invalidates_only_its_scopes(
        service: TaskService, status: str, stale: set[TaskScope]) -> None:
    for scope in SCOPES:
        service.performance("t", scope)
        service.bottlenecks("t", scope, 24, 10)
    service.performance("u", TaskScope())
    service.record("t", [_event("shop", "order", status)])
    for scope in SCOPES:
        assert service.performance("t", scope)[1] is (scope not in stale), scope
        assert service.bottlenecks("t", scope, 24, 10)[1] is (scope not in stale), scope
    assert service.performance("u", TaskScope())[1] is True  # another tenant's answer stays


def test_fresh_answer_after_invalidation(service: TaskService) -> None:
    before, _ = service.performance("t", TaskScope("shop"))
    service.record("t", [_event("shop", "order")])
    after, hit = service.performance("t", TaskScope("shop"))
    assert not hit and after.etag != before.etag
    assert b'"total_tasks":1' in after.body


def test_answer_computed_across_a_commit_is_not_cached(clock: Clock) -> None:
    cache = ReportCache({"performance": 90}, clock=clock)
    key = ("t", "performance", TaskScope(), ())
    generation = cache.generation
    cache.invalidate("t", [("shop", "order", "1.0")])  # a commit landed meanwhile
    cache.put(key, b"{}", generation)
    assert cache.get(key) is None
    cache.put(key, b"{}", cache.generation)
    assert cache.get(key) is not None


def test_zero_ttl_disables_caching(clock: Clock) -> None:
    cache = ReportCache({"performance": 0}, clock=clock)
    key = ("t", "performance", TaskScope(), ())
    cache.put(key, b"{}", cache.generation)
    assert cache.get(key) is None and len(cache) == 0
