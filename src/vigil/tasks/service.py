"""``TaskService``: task ingestion with cache invalidation, and the cached reports.

The HTTP router and ``Vigil`` both go through it, so the answers, the validation of
parameters and the cache are the same for both. Blocking: call from a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import orjson

from vigil.core.errors import InvalidInput, Problem
from vigil.core.timeutil import now_ms
from vigil.storage.task_store import TaskBatch, TaskScope, TaskStore
from vigil.tasks import reports
from vigil.tasks.cache import Entry, ReportCache
from vigil.tasks.events import MAX_NAME, parse_tasks, version_problem

# on_cache(kind, hit)
CacheListener = Callable[[str, bool], None]


@dataclass(frozen=True, slots=True)
class Limits:
    max_period_h: int = 168
    max_results: int = 50
    default_results: int = 10
    retention_ms: int = 0  # oldest accepted start, relative to now (0 = any)


def scope_of(namespace: str | None, task_name: str | None, version: str | None) -> TaskScope:
    """Validated filters (empty strings mean no filter)."""
    for field, value in (("namespace", namespace), ("task_name", task_name)):
        if value is not None and len(value) > MAX_NAME:
            raise InvalidInput(Problem(f"longer than {MAX_NAME} characters", field=field))
    if version and (reason := version_problem(version)):
        raise InvalidInput(Problem(reason, field="version"))
    return TaskScope(namespace or None, task_name or None, version or None)


class TaskService:
    def __init__(self, store: TaskStore, cache: ReportCache, limits: Limits, *,
                 clock: Callable[[], int] = now_ms,
                 on_cache: CacheListener | None = None) -> None:
        self.store = store
        self.cache = cache
        self.limits = limits
        self._clock = clock
        self._on_cache = on_cache
        store.listeners.append(self._committed)

    def _committed(self, tenant: str, batch: TaskBatch) -> None:
        # On the writer thread, before the writers hear back: once a write is
        # acknowledged, no answer cached before it is served.
        self.cache.invalidate(tenant, batch.ended_scopes)

    # ------------------------------------------------------------------ ingest
    def parse(self, events: Iterable[Any]) -> TaskBatch:
        horizon = self._clock() - self.limits.retention_ms if self.limits.retention_ms else None
        return parse_tasks(events, min_ms=horizon)

    def submit(self, tenant: str, batch: TaskBatch) -> Future[int]:
        """Commit ``batch``; the commit drops the cached answers it makes stale."""
        return self.store.submit(tenant, batch)

    def record(self, tenant: str, events: Iterable[Any]) -> int:
        """Validate and store events durably; returns how many executions."""
        return self.submit(tenant, self.parse(events)).result()

    # ------------------------------------------------------------------ reports
    def period(self, raw: int | None) -> int:
        if raw is None:
            return min(24, self.limits.max_period_h)
        if not 1 <= raw <= self.limits.max_period_h:
            raise InvalidInput(Problem(
                f"period must be a whole number of hours from 1 to {self.limits.max_period_h},"
                f" got {raw}", field="period"))
        return raw

    def limit(self, raw: int | None) -> int:
        if raw is None:
            return min(self.limits.default_results, self.limits.max_results)
        if not 1 <= raw <= self.limits.max_results:
            raise InvalidInput(Problem(
                f"limit must be from 1 to {self.limits.max_results}, got {raw}", field="limit"))
        return raw

    def cached(self, tenant: str, kind: str, scope: TaskScope, params: tuple[object, ...] = (),
               ) -> Entry | None:
        """The cached answer, if any, without computing (never blocks: safe on the event
        loop). ``params``: ``()`` for performance, ``(period, limit)`` for bottlenecks."""
        entry = self.cache.get((tenant, kind, scope, params))
        if entry is not None and self._on_cache is not None:
            self._on_cache(kind, True)
        return entry

    def _cached(self, tenant: str, kind: str, scope: TaskScope, params: tuple[object, ...],
                compute: Callable[[int], dict[str, Any]]) -> tuple[Entry, bool]:
        key = (tenant, kind, scope, params)
        entry = self.cache.get(key)
        if self._on_cache is not None:
            self._on_cache(kind, entry is not None)
        if entry is not None:
            return entry, True
        generation = self.cache.generation
        body = orjson.dumps(compute(self._clock()))
        return self.cache.put(key, body, generation), False

    def performance(self, tenant: str, scope: TaskScope) -> tuple[Entry, bool]:
        """The performance report as JSON bytes, and whether it came from the cache."""
        return self._cached(tenant, "performance", scope, (), lambda now: reports.performance(
            self.store, tenant, scope, now))

    def bottlenecks(self, tenant: str, scope: TaskScope, period_h: int | None = None,
                    limit: int | None = None) -> tuple[Entry, bool]:
        p, n = self.period(period_h), self.limit(limit)
        return self._cached(tenant, "bottlenecks", scope, (p, n), lambda now: reports.bottlenecks(
            self.store, tenant, scope, now, p, n))
