"""Recommendations with rationale, from per-task and per-step figures of a period.

Three rules, each needing at least ``MIN_EXECUTIONS`` executions so a handful of runs
never fires one:

* ``timeout_optimization`` — a step whose p95 duration reaches ``TIMEOUT_SHARE`` of its
  timeout: suggest ``ceil(1.5 × p95)`` seconds (room for the tail without hiding hangs);
* ``retry_reduction`` — a step where at least ``RETRY_RATE`` of executions needed more
  than one attempt;
* ``failure_rate_increase`` — a task whose failure rate rose by at least
  ``FAILURE_RISE`` (absolute) and to at least ``FAILURE_RATIO`` × the previous period's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_EXECUTIONS = 10
TIMEOUT_SHARE = 0.8
TIMEOUT_HEADROOM = 1.5
RETRY_RATE = 0.1
FAILURE_RISE = 0.05
FAILURE_RATIO = 1.5


@dataclass(frozen=True, slots=True)
class TaskFigures:
    namespace: str
    task_name: str
    executions: int
    failed: int
    avg_duration_ms: float | None
    p95_duration_ms: float | None
    prev_executions: int
    prev_failed: int

    @property
    def failure_rate(self) -> float:
        return self.failed / self.executions if self.executions else 0.0

    @property
    def prev_failure_rate(self) -> float:
        return self.prev_failed / self.prev_executions if self.prev_executions else 0.0


@dataclass(frozen=True, slots=True)
class StepFigures:
    namespace: str
    task_name: str
    step_name: str
    executions: int
    avg_duration_ms: float | None
    p95_duration_ms: float | None
    retried: int
    timeout_s: float | None
    top_error: str | None

    @property
    def retry_rate(self) -> float:
        return self.retried / self.executions if self.executions else 0.0


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def recommend(tasks: list[TaskFigures], steps: list[StepFigures]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for s in steps:
        if s.executions < MIN_EXECUTIONS:
            continue
        where = {"namespace": s.namespace, "task_name": s.task_name, "step": s.step_name}
        p95 = s.p95_duration_ms
        if s.timeout_s and p95 is not None and p95 >= TIMEOUT_SHARE * s.timeout_s * 1000:
            out.append({
                "type": "timeout_optimization", **where, "current_timeout": s.timeout_s,
                "suggested_timeout": math.ceil(TIMEOUT_HEADROOM * p95 / 1000),
                "rationale": f"95th percentile execution time is {p95 / 1000:.1f}s, "
                             f"{_pct(p95 / (s.timeout_s * 1000))} of the {s.timeout_s:g}s "
                             f"timeout, over {s.executions} executions",
            })
        if s.retry_rate >= RETRY_RATE:
            cause = f"; most common error: {s.top_error}" if s.top_error else ""
            out.append({
                "type": "retry_reduction", **where, "retry_rate": s.retry_rate,
                "rationale": f"{_pct(s.retry_rate)} of {s.executions} executions needed more "
                             f"than one attempt{cause}",
            })
    for t in tasks:
        if t.executions < MIN_EXECUTIONS or t.prev_executions < MIN_EXECUTIONS:
            continue
        cur, prev = t.failure_rate, t.prev_failure_rate
        if cur - prev >= FAILURE_RISE and cur >= FAILURE_RATIO * prev:
            out.append({
                "type": "failure_rate_increase", "namespace": t.namespace,
                "task_name": t.task_name, "failure_rate": cur, "previous_failure_rate": prev,
                "rationale": f"failure rate rose from {_pct(prev)} ({t.prev_executions} "
                             f"executions) in the previous period to {_pct(cur)} "
                             f"({t.executions} executions)",
            })
    return out
