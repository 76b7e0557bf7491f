"""The embedded API: record_task, track_task and both reports through ``Vigil``."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.app import Vigil
from vigil.core.errors import InvalidInput
from vigil.core.timeutil import now_ms
from vigil.tasks.instrument import step


def test_record_track_and_report(tmp_path: Path) -> None:
    with Vigil(tmp_path) as v:
        now = now_ms()
        v.record_task("shop", "order", "o1", "failed", now - 5_000, version="2.0.0",
                      finished_at=now - 1_000,
                      steps=[{"step_name": "pay", "status": "failed", "attempts": 3,
                              "duration_ms": 4_000, "timeout_s": 5,
                              "error_type": "NetworkTimeoutError"}])

        @v.track_task("shop", "order", version="2.0.0")
        def job() -> None:
            with step("pack"):
                pass

        job()
        perf = v.performance(namespace="shop")
        assert perf["task_statistics"] == {"total_tasks": 2, "completed": 1, "failed": 1,
                                           "retried": 1}
        assert perf["scope"] == {"namespace": "shop"}
        b = v.bottlenecks(version="2.0.0", period=1)
        assert b["scope"] == {"version": "2.0.0"} and b["analysis_period"] == "1 hour"
        assert b["error_patterns"][0]["affected_steps"] == ["pay"]
        assert {s["step_name"] for s in b["slowest_steps"]} == {"pay", "pack"}
        with pytest.raises(InvalidInput, match="period"):
            v.bottlenecks(period=-1)
        with pytest.raises(InvalidInput) as err:
            v.record_task("shop", "order", "o2", "done", now)
        assert err.value.problems[0].field == "tasks[0].status"
