"""Demo task executions: deterministic, valid, and the planted problems are found."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson
import pyarrow.compute as pc

from vigil import demo_tasks
from vigil.app import Components
from vigil.demo_runner import start_demo
from vigil.storage.duckdb_store import DuckDBStore
from vigil.storage.task_store import TaskScope, TaskStore
from vigil.tasks.cache import ReportCache
from vigil.tasks.events import STEP_STATUSES, TASK_STATUSES, VERSION_RE
from vigil.tasks.service import Limits, TaskService

NOW = 1_800_000_000_000
DAY = 86_400_000


def test_deterministic_and_well_formed() -> None:
    a = demo_tasks.generate("acme", NOW - DAY, NOW, 500)
    b = demo_tasks.generate("acme", NOW - DAY, NOW, 500)
    assert a.runs.equals(b.runs) and a.steps.equals(b.steps)
    assert 10_000 < len(a) < 14_000 and a.steps.num_rows > 4 * len(a)
    assert set(a.runs.column("status").to_pylist()) <= set(TASK_STATUSES)
    assert set(a.steps.column("status").to_pylist()) <= set(STEP_STATUSES)
    assert all(VERSION_RE.match(v) for v in set(a.runs.column("version").to_pylist()))
    ended = pc.is_in(a.runs.column("status"), value_set=pc.cast(
        ["completed", "failed", "retried"], "string"))
    assert pc.all(pc.equal(pc.is_valid(a.runs.column("duration_ms")), ended)).as_py()
    # every step row belongs to an execution and carries its time
    ts = dict(zip(a.runs.column("task_id").to_pylist(), a.runs.column("ts").to_pylist(),
                  strict=True))
    steps = a.steps.select(["task_id", "ts"]).to_pylist()
    assert all(ts[s["task_id"]] == s["ts"] for s in steps[:5000])
    assert not demo_tasks.generate("acme", NOW - DAY, NOW, 500, in_flight=False).runs.column(
        "finished_ms").null_count


def test_planted_problems_found(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "t.duckdb")
    svc = TaskService(TaskStore(store), ReportCache({"performance": 0, "bottlenecks": 0}),
                      Limits(), clock=lambda: NOW)
    try:
        svc.submit("t", demo_tasks.generate("t", NOW - 2 * DAY, NOW, 400)).result()
        entry, _ = svc.bottlenecks("t", TaskScope(), 24, 10)
        recs = {(r["type"], r["task_name"], r.get("step")) for r in
                orjson.loads(entry.body)["recommendations"]}
        assert recs == {
            ("timeout_optimization", "process_order", "payment_processing"),
            ("retry_reduction", "customer_analytics", "extract"),
            ("failure_rate_increase", "daily_rollup", None),
        }
    finally:
        svc.store.close()
        store.close()


def test_live_demo_writes_task_history(components: Components) -> None:
    stop = threading.Event()
    thread = start_demo(components, stop)
    deadline = time.monotonic() + 60
    while components.tasks.store.count("default")[0] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stop.set()
    thread.join(30)
    runs, steps = components.tasks.store.count("default")
    assert runs > 5_000 and steps > 4 * runs
