"""Generated task events (the JSON shape of ``POST /api/v1/tasks/events``) and the
figures the reports must give, computed directly from them in plain Python + numpy."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import numpy as np

HOUR = 3_600_000
NOW = 1_800_000_000_000
ENDED = ("completed", "failed", "retried")
# (namespace, task_name, versions, steps); each step: (name, typical ms, timeout s)
TASKS: tuple[tuple[str, str, tuple[str, ...], tuple[tuple[str, float, float], ...]], ...] = (
    ("shop", "process_order", ("1.0.0", "2.0.0"),
     (("validate", 80, 30), ("charge", 8_800, 10), ("notify", 150, 30))),
    ("shop", "refund", ("1.0.0",), (("lookup", 120, 30), ("credit", 400, 30))),
    ("etl", "daily_load", ("3.1",), (("fetch", 900, 60), ("transform", 1_500, 120),
                                     ("store", 600, 60))),
)
SLOW_STEP = ("shop", "process_order", "charge")
FLAKY_STEP = ("etl", "daily_load", "fetch")
RISING_TASK = ("shop", "refund")


def generate(n: int, seed: int = 7, now: int = NOW, span_h: int = 60) -> list[dict[str, Any]]:
    """``n`` executions over the ``span_h`` hours before ``now``: a slow step (p95 near
    its timeout), a flaky step (a third retried), a task failing more lately; others clean."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ns, name, versions, steps = TASKS[i % len(TASKS)]
        started = now - rng.randrange(1, span_h * HOUR)
        recent = started > now - 24 * HOUR
        fail_p = 0.3 if (ns, name) == RISING_TASK and recent else 0.02
        roll = rng.random()
        status = ("running" if roll < 0.03 else "pending" if roll < 0.05 else
                  "retried" if roll < 0.07 else "failed" if roll < 0.07 + fail_p else "completed")
        ended = status in ENDED
        event_steps = []
        for step_name, typical, timeout in steps:
            attempts = 1
            error = None
            if (ns, name, step_name) == FLAKY_STEP and rng.random() < 0.35:
                attempts, error = 2, "ConnectionResetError"
            elif rng.random() < 0.01:
                attempts, error = 2, "TransientError"
            if (ns, name, step_name) == SLOW_STEP:
                dur = min(typical * rng.uniform(0.85, 1.1), timeout * 1000.0)
            else:
                dur = typical * rng.uniform(0.5, 1.5)
            if status == "failed" and step_name == steps[-1][0]:
                error = "NetworkTimeoutError" if rng.random() < 0.5 else "ValueError"
            step: dict[str, Any] = {"step_name": step_name, "status": "completed",
                                    "attempts": attempts, "timeout_s": timeout}
            if ended:
                step["duration_ms"] = round(dur, 3)
            if error:
                step["error_type"] = error
            event_steps.append(step)
        event: dict[str, Any] = {
            "namespace": ns, "task_name": name, "version": versions[i % len(versions)],
            "task_id": f"{seed}-{i}", "status": status, "started_at": started,
            "steps": event_steps}
        if ended:
            total = sum(s["duration_ms"] for s in event_steps)
            event["finished_at"] = started + int(total)
            if i % 5 == 0:
                event["duration_ms"] = total + 3.5  # given explicitly, wins over the times
        out.append(event)
    return out


def _ts(e: dict[str, Any]) -> int:
    return int(e.get("finished_at") or e["started_at"])


def _duration(e: dict[str, Any]) -> float | None:
    if e.get("duration_ms") is not None:
        return float(e["duration_ms"])
    if e.get("finished_at") is not None:
        return float(e["finished_at"] - e["started_at"])
    return None


def _in(e: dict[str, Any], scope: dict[str, str], lo: int, hi: int) -> bool:
    return all(e[k] == v for k, v in scope.items()) and lo < _ts(e) <= hi


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _q(xs: list[float], q: float) -> float | None:
    return float(np.quantile(np.array(xs), q)) if xs else None


def expected_performance(events: list[dict[str, Any]], scope: dict[str, str],
                         now: int = NOW) -> dict[str, Any]:
    day = [e for e in events if _in(e, scope, now - 24 * HOUR, now)]
    trends = {}
    for label, hours in (("1h", 1), ("4h", 4), ("24h", 24)):
        ended = [e for e in day if e["status"] in ENDED and _ts(e) > now - hours * HOUR]
        done = sum(e["status"] == "completed" for e in ended)
        durs = [d for e in ended if (d := _duration(e)) is not None]
        trends[label] = {"completion_rate": done / len(ended) if ended else None,
                         "avg_duration_ms": _mean(durs), "executions": len(ended)}
    retried = sum(e["status"] == "retried" or any(s["attempts"] > 1 for s in e["steps"])
                  for e in day)
    durs = [d for e in day if e["status"] in ENDED and (d := _duration(e)) is not None]
    return {
        "performance_trends": trends,
        "task_statistics": {"total_tasks": len(day),
                            "completed": sum(e["status"] == "completed" for e in day),
                            "failed": sum(e["status"] == "failed" for e in day),
                            "retried": retried},
        "processing_times": {f"p{p}": _q(durs, p / 100) for p in (50, 95, 99)},
    }


def expected_bottlenecks(events: list[dict[str, Any]], scope: dict[str, str], period_h: int,
                         now: int = NOW) -> dict[str, Any]:
    lo = now - period_h * HOUR
    cur = [e for e in events if _in(e, scope, lo, now)]
    tasks: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in cur:
        if e["status"] in ENDED:
            tasks[(e["namespace"], e["task_name"])].append(e)
    slowest_tasks = []
    for (ns, name), es in tasks.items():
        durs = [d for e in es if (d := _duration(e)) is not None]
        slowest_tasks.append({
            "namespace": ns, "task_name": name, "avg_duration_ms": _mean(durs),
            "p95_duration_ms": _q(durs, 0.95), "execution_count": len(es),
            "failure_rate": sum(e["status"] == "failed" for e in es) / len(es)})
    steps: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    errors: dict[str, dict[str, Any]] = {}
    for e in cur:
        for s in e["steps"]:
            steps[(e["namespace"], e["task_name"], s["step_name"])].append(s)
            if s.get("error_type"):
                p = errors.setdefault(s["error_type"], {"frequency": 0, "steps": set(),
                                                        "timeline": defaultdict(int)})
                p["frequency"] += 1
                p["steps"].add(s["step_name"])
                p["timeline"][_ts(e) // HOUR * HOUR] += 1
    slowest_steps = []
    for (ns, name, step), ss in steps.items():
        durs = [s["duration_ms"] for s in ss if s.get("duration_ms") is not None]
        slowest_steps.append({
            "namespace": ns, "task_name": name, "step_name": step,
            "avg_duration_ms": _mean(durs), "p95_duration_ms": _q(durs, 0.95),
            "execution_count": len(ss),
            "retry_rate": sum(s["attempts"] > 1 for s in ss) / len(ss),
            "timeout_s": max(s["timeout_s"] for s in ss)})
    ended_durs = [d for e in cur if e["status"] in ENDED and (d := _duration(e)) is not None]
    return {
        "slowest_tasks": {(t["namespace"], t["task_name"]): t for t in slowest_tasks},
        "slowest_steps": {(s["namespace"], s["task_name"], s["step_name"]): s
                          for s in slowest_steps},
        "error_patterns": {k: {"frequency": v["frequency"], "affected_steps": sorted(v["steps"]),
                               "timeline": sorted([t, c] for t, c in v["timeline"].items())}
                           for k, v in errors.items()},
        "durations": ended_durs,
    }
