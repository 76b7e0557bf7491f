"""Realistic demo task executions, generated as columns (numpy → Arrow, no per-row Python).

Several namespaces, tasks and versions; steps with retries, timeouts and typed errors,
and three things for the bottleneck report to find: a slow step whose p95 nears its
timeout (``ecommerce/process_order/payment_processing``), a flaky step retried about a
third of the time (``data_pipeline/customer_analytics/extract``) and a task failing more
in the last day than before (``data_pipeline/daily_rollup``). Deterministic per
(tenant, start): ``vigil seed``, ``vigil demo`` and the benchmark share it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil.storage.task_store import RUN_SCHEMA, STEP_SCHEMA, TaskBatch

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class _Step:
    name: str
    typical_ms: float
    timeout_s: float
    retry_p: float = 0.01
    error: str = "TransientError"
    slow: bool = False  # duration spread up to just under the timeout


@dataclass(frozen=True, slots=True)
class _Task:
    namespace: str
    name: str
    versions: tuple[str, ...]
    weight: float
    fail_p: float
    steps: tuple[_Step, ...]
    recent_fail_p: float | None = None  # failure probability over the last day


CATALOGUE = (
    _Task("ecommerce", "process_order", ("1.4.0", "2.0.0"), 0.35, 0.01, (
        _Step("validate_cart", 60, 10), _Step("fraud_check", 300, 10),
        _Step("inventory_check", 250, 10), _Step("reserve_stock", 180, 10),
        _Step("payment_processing", 18_000, 30, error="NetworkTimeoutError", slow=True),
        _Step("ship", 400, 60), _Step("send_confirmation", 200, 30))),
    _Task("ecommerce", "refund", ("1.0.0",), 0.1, 0.01, (
        _Step("lookup", 120, 10), _Step("credit", 600, 30, error="PaymentGatewayError"),
        _Step("notify", 150, 30))),
    _Task("data_pipeline", "customer_analytics", ("3.1.0",), 0.15, 0.02, (
        _Step("extract", 4_000, 120, retry_p=0.32, error="ConnectionResetError"),
        _Step("validate", 800, 60), _Step("transform", 9_000, 300), _Step("load", 3_000, 120),
        _Step("publish", 500, 60))),
    _Task("data_pipeline", "daily_rollup", ("1.0.0", "1.1.0"), 0.1, 0.01, (
        _Step("scan", 2_000, 120), _Step("aggregate", 5_000, 300),
        _Step("write", 1_500, 120, error="DiskFullError"), _Step("compact", 1_000, 120)),
        recent_fail_p=0.12),
    _Task("notifications", "send_digest", ("0.9.2",), 0.3, 0.005, (
        _Step("select_recipients", 200, 10), _Step("render", 150, 10),
        _Step("deliver", 500, 30, retry_p=0.02, error="SMTPTimeoutError"),
        _Step("track", 50, 10))),
)
STATUSES = ("completed", "failed", "retried", "running", "pending")


def _strings(index: np.ndarray, names: list[str]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(index.astype(np.int32)),
                                          pa.array(names, pa.string())).cast(pa.string())


def generate(tenant: str, start_ms: int, end_ms: int, per_hour: float,
             now_ms: int | None = None, *, in_flight: bool = True) -> TaskBatch:
    """About ``per_hour`` executions an hour started in ``[start, end)``. With
    ``in_flight``, those started in the last five minutes before ``now_ms`` (default
    ``end``) may still be running or pending; otherwise every execution has ended."""
    now = end_ms if now_ms is None else now_ms
    rng = np.random.default_rng([zlib.crc32(tenant.encode()), start_ms])
    n = int(rng.poisson(max(per_hour * (end_ms - start_ms) / 3_600_000, 0.0)))
    weights = np.array([t.weight for t in CATALOGUE])
    kind = rng.choice(len(CATALOGUE), size=n, p=weights / weights.sum())
    started = np.sort(rng.integers(start_ms, max(end_ms, start_ms + 1), size=n))
    kind = kind[np.argsort(rng.random(n))]  # kinds independent of the sorted times
    fail_p = np.array([t.fail_p for t in CATALOGUE])[kind]
    recent = started >= now - DAY_MS
    for i, t in enumerate(CATALOGUE):
        if t.recent_fail_p is not None:
            fail_p[(kind == i) & recent] = t.recent_fail_p
    roll = rng.random(n)
    status = np.where(roll < fail_p, 1, np.where(roll < fail_p + 0.02, 2, 0))
    young = (started > now - 300_000) & in_flight
    status[young & (rng.random(n) < 0.5)] = 3
    status[young & (status == 3) & (rng.random(n) < 0.3)] = 4
    ended = status < 3

    total_ms = np.zeros(n)
    retried = status == 2
    step_parts: list[dict[str, np.ndarray]] = []
    step_names: list[str] = []
    errors: list[str] = []
    for i, t in enumerate(CATALOGUE):
        rows = np.flatnonzero(kind == i)
        for j, s in enumerate(t.steps):
            m = len(rows)
            if s.slow:
                dur = s.timeout_s * 1000 * rng.uniform(0.45, 0.97, m)
            else:
                dur = np.minimum(s.typical_ms * rng.lognormal(0.0, 0.35, m), s.timeout_s * 1000)
            attempts = 1 + (rng.random(m) < s.retry_p).astype(np.int32)
            retried[rows[attempts > 1]] = True
            last = j == len(t.steps) - 1
            failed_here = (status[rows] == 1) & last
            has_error = (attempts > 1) | failed_here
            total_ms[rows] += dur
            if s.error not in errors:
                errors.append(s.error)
            step_names.append(s.name)
            step_parts.append({
                "task": rows, "name": np.full(m, len(step_names) - 1),
                "status": np.where(failed_here, 1, np.where(ended[rows], 0, 3)),
                "attempts": attempts, "duration_ms": dur, "timeout_s": np.full(m, s.timeout_s),
                "error": np.where(has_error, errors.index(s.error), -1),
            })
    finished = np.where(ended, started + total_ms.astype(np.int64), -1)
    ts = np.where(ended, finished, started)
    ns_names = sorted({t.namespace for t in CATALOGUE})
    versions = sorted({v for t in CATALOGUE for v in t.versions})
    ns_idx = np.array([ns_names.index(t.namespace) for t in CATALOGUE])[kind]
    version_of = np.array([[versions.index(t.versions[k % len(t.versions)]) for k in range(2)]
                           for t in CATALOGUE])
    ver_idx = version_of[kind, rng.integers(0, 2, n)]
    seq = np.arange(n)
    task_ids = pc.binary_join_element_wise(
        f"{tenant}-{start_ms}-", pa.array(seq).cast(pa.string()), "")
    runs = pa.table({
        "namespace": _strings(ns_idx, ns_names),
        "task_name": _strings(kind, [t.name for t in CATALOGUE]),
        "version": _strings(ver_idx, versions),
        "task_id": task_ids,
        "status": _strings(status, list(STATUSES)),
        "started_ms": pa.array(started, pa.int64()),
        "finished_ms": pa.array(finished, pa.int64(), mask=~ended),
        "ts": pa.array(ts, pa.int64()),
        "duration_ms": pa.array(total_ms, pa.float64(), mask=~ended),
        "retried": pa.array(retried),
        "step_count": pa.array(np.array([len(t.steps) for t in CATALOGUE])[kind], pa.int32()),
    }, schema=RUN_SCHEMA)
    cat = {k: np.concatenate([p[k] for p in step_parts]) if step_parts else np.empty(0)
           for k in ("task", "name", "status", "attempts", "duration_ms", "timeout_s", "error")}
    task = cat["task"].astype(np.int64)
    order = np.argsort(ts[task], kind="stable")  # time order helps the zone maps
    task = task[order]
    cat = {k: v[order] for k, v in cat.items()}
    err = cat["error"].astype(np.int64)
    steps = pa.table({
        "namespace": runs.column("namespace").take(task),
        "task_name": runs.column("task_name").take(task),
        "version": runs.column("version").take(task),
        "task_id": runs.column("task_id").take(task),
        "ts": pa.array(ts[task], pa.int64()),
        "step_name": _strings(cat["name"], step_names),
        "status": _strings(cat["status"], list(STATUSES)),
        "attempts": pa.array(cat["attempts"].astype(np.int32)),
        "duration_ms": pa.array(cat["duration_ms"].astype(np.float64), mask=~ended[task]),
        "timeout_s": pa.array(cat["timeout_s"].astype(np.float64)),
        "error_type": pa.DictionaryArray.from_arrays(
            pa.array(np.maximum(err, 0).astype(np.int32), mask=err < 0),
            pa.array(errors or [""], pa.string())).cast(pa.string()),
        "error_message": pa.nulls(len(task), pa.string()),
    }, schema=STEP_SCHEMA)
    code = np.unique((kind[ended] * len(versions) + ver_idx[ended]).astype(np.int64))
    scopes = frozenset((CATALOGUE[int(c) // len(versions)].namespace,
                        CATALOGUE[int(c) // len(versions)].name, versions[int(c) % len(versions)])
                       for c in code)
    return TaskBatch(runs, steps, scopes)
