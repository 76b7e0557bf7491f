"""The performance and bottleneck reports (the JSON of ``/api/v1/analytics/performance``
and ``/api/v1/analytics/bottlenecks``), built from the task store's grouped rows.

System health score (0–100, docs/tasks.md), over the last 24 h of the scope:

    score = 100 × (0.6 × completion + 0.2 × retries + 0.2 × latency)

* completion = completed / ended executions (1 when none ended);
* retries = 1 − retried / all executions (1 when there are none);
* latency = min(1, avg duration over 24 h / avg duration over the last hour): 1 while
  the last hour is no slower than the day, 0.5 when it runs twice as slow (1 when
  either is unknown).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vigil.storage.task_store import HISTOGRAM_LE_MS, Row, TaskScope, TaskStore
from vigil.tasks.recommendations import StepFigures, TaskFigures, recommend

HOUR_MS = 3_600_000
WINDOWS: tuple[tuple[str, int], ...] = (("1h", HOUR_MS), ("4h", 4 * HOUR_MS),
                                        ("24h", 24 * HOUR_MS))
WEIGHTS = {"completion": 0.6, "retries": 0.2, "latency": 0.2}


def scope_dict(scope: TaskScope) -> dict[str, str]:
    return {k: v for k, v in (("namespace", scope.namespace), ("task_name", scope.task_name),
                              ("version", scope.version)) if v is not None}


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


def health_score(completion_rate: float | None, retried: int, total: int,
                 avg_24h_ms: float | None, avg_1h_ms: float | None) -> float:
    completion = 1.0 if completion_rate is None else completion_rate
    retries = 1.0 - retried / total if total else 1.0
    latency = (min(1.0, avg_24h_ms / avg_1h_ms)
               if avg_24h_ms is not None and avg_1h_ms else 1.0)
    score = 100 * (WEIGHTS["completion"] * completion + WEIGHTS["retries"] * retries
                   + WEIGHTS["latency"] * latency)
    return round(score, 1)


def performance(store: TaskStore, tenant: str, scope: TaskScope,
                now_ms: int) -> dict[str, Any]:
    row = store.performance(tenant, scope, now_ms, [w for _, w in WINDOWS])
    total, completed, failed, retried = (int(x) for x in row[:4])
    trends: dict[str, dict[str, Any]] = {}
    for i, (label, _) in enumerate(WINDOWS):
        ended, done, avg = row[4 + 3 * i: 7 + 3 * i]
        trends[label] = {"completion_rate": int(done) / int(ended) if ended else None,
                         "avg_duration_ms": _f(avg), "executions": int(ended)}
    q: Sequence[float] | None = row[-1]
    day, hour = trends["24h"], trends["1h"]
    return {
        "system_health_score": health_score(day["completion_rate"], retried, total,
                                            day["avg_duration_ms"], hour["avg_duration_ms"]),
        "performance_trends": trends,
        "task_statistics": {"total_tasks": total, "completed": completed, "failed": failed,
                            "retried": retried},
        "processing_times": {f"p{p}": _f(v)
                             for p, v in zip((50, 95, 99), q or (None,) * 3, strict=True)},
        "scope": scope_dict(scope),
    }


def _by_avg(item: dict[str, Any]) -> tuple[bool, float, str, str, str]:
    avg = item["avg_duration_ms"]
    return (avg is None, -(avg or 0.0), item["namespace"], item["task_name"],
            item.get("step_name", ""))


def bottlenecks(store: TaskStore, tenant: str, scope: TaskScope, now_ms: int,
                period_h: int, limit: int) -> dict[str, Any]:
    period_ms = period_h * HOUR_MS
    start = now_ms - period_ms
    bucket_ms = HOUR_MS if period_h <= 48 else 24 * HOUR_MS
    # Four independent scans, side by side on the store's reader threads.
    task_rows = store.read_async(store.task_groups, tenant, scope, start - period_ms, start,
                                 now_ms)
    step_rows = store.read_async(store.step_groups, tenant, scope, start, now_ms)
    error_rows = store.read_async(store.step_errors, tenant, scope, start, now_ms, bucket_ms)
    dist_row = store.read_async(store.distribution, tenant, scope, start, now_ms)
    errors = error_rows.result()
    top_error = _top_errors(errors)
    tasks = [TaskFigures(str(r[0]), str(r[1]), int(r[2]), int(r[3]), _f(r[4]), _f(r[5]),
                         int(r[6]), int(r[7])) for r in task_rows.result()]
    steps = [StepFigures(str(r[0]), str(r[1]), str(r[2]), int(r[3]), _f(r[4]), _f(r[5]),
                         int(r[6]), _f(r[7]), top_error.get((r[0], r[1], r[2])))
             for r in step_rows.result()]
    slowest_tasks = sorted(({
        "namespace": t.namespace, "task_name": t.task_name,
        "avg_duration_ms": t.avg_duration_ms, "p95_duration_ms": t.p95_duration_ms,
        "execution_count": t.executions, "failure_rate": t.failure_rate,
    } for t in tasks if t.executions), key=_by_avg)[:limit]
    slowest_steps = sorted(({
        "namespace": s.namespace, "task_name": s.task_name, "step_name": s.step_name,
        "avg_duration_ms": s.avg_duration_ms, "p95_duration_ms": s.p95_duration_ms,
        "execution_count": s.executions, "retry_rate": s.retry_rate, "timeout_s": s.timeout_s,
    } for s in steps), key=_by_avg)[:limit]
    return {
        "analysis_period": f"{period_h} hour" + ("" if period_h == 1 else "s"),
        "scope": scope_dict(scope),
        "slowest_tasks": slowest_tasks,
        "slowest_steps": slowest_steps,
        "error_patterns": _error_patterns(errors, bucket_ms)[:limit],
        "distribution": _distribution(dist_row.result()),
        "recommendations": recommend(tasks, steps),
    }


def _top_errors(rows: list[Row]) -> dict[tuple[str, str, str], str]:
    """The most frequent error type of each step (ties: alphabetically first)."""
    counts: dict[tuple[str, str, str], dict[str, int]] = {}
    for error_type, _, ns, task, step, count in rows:
        by_type = counts.setdefault((ns, task, step), {})
        by_type[error_type] = by_type.get(error_type, 0) + int(count)
    return {k: min(v, key=lambda e: (-v[e], e)) for k, v in counts.items()}


def _error_patterns(rows: list[Row], bucket_ms: int) -> list[dict[str, Any]]:
    """Per error type: frequency, affected steps and counts per time bucket (an hour up to
    two days, then a day) — the dashboard's error patterns over time."""
    by_type: dict[str, dict[str, Any]] = {}
    for error_type, bucket, _, _, step, count in rows:
        p = by_type.setdefault(str(error_type), {"error_type": str(error_type), "frequency": 0,
                                                 "affected_steps": set(), "timeline": {}})
        p["frequency"] += int(count)
        p["affected_steps"].add(step)
        p["timeline"][int(bucket)] = p["timeline"].get(int(bucket), 0) + int(count)
    out = []
    for p in by_type.values():
        p["affected_steps"] = sorted(p["affected_steps"])
        p["timeline"] = [[t, c] for t, c in sorted(p["timeline"].items())]
        p["bucket_ms"] = bucket_ms
        out.append(p)
    out.sort(key=lambda p: (-p["frequency"], p["error_type"]))
    return out


def _distribution(row: Sequence[Any]) -> dict[str, Any]:
    count, lo, mean, hi, q = row[:5]
    cumulative = [int(c) for c in row[5:]]
    edges = [*cumulative, int(count)]
    buckets = [{"le_ms": le, "count": n - prev} for le, n, prev in zip(
        [*HISTOGRAM_LE_MS, None], edges, [0, *edges[:-1]], strict=True)]
    qs = q or (None,) * 4
    return {
        "count": int(count), "min_ms": _f(lo), "mean_ms": _f(mean), "max_ms": _f(hi),
        **{f"p{p}": _f(v) for p, v in zip((50, 90, 95, 99), qs, strict=True)},
        "histogram": buckets,
    }
