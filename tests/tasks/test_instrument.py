"""The instrumentation helper: a task and its steps timed and recorded, errors typed."""

from __future__ import annotations

from typing import Any

import pytest

from vigil.tasks.events import parse_tasks
from vigil.tasks.instrument import run_step, step, track


class Sink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, events: list[dict[str, Any]]) -> None:
        parse_tasks(events)  # what it sends is a valid event
        self.events.extend(events)


def test_context_manager_records_steps_retries_and_success() -> None:
    sink = Sink()
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("reset")
        return "ok"

    with track(sink, namespace="etl", task_name="load", version="1.2") as task:
        with step("extract", timeout_s=30):
            pass
        assert run_step("fetch", flaky, retries=3) == "ok"
    assert task.steps == sink.events[0]["steps"]
    [event] = sink.events
    assert event["status"] == "completed" and event["version"] == "1.2"
    assert event["finished_at"] >= event["started_at"] and event["duration_ms"] >= 0
    extract, fetch = event["steps"]
    assert extract["step_name"] == "extract" and extract["timeout_s"] == 30
    assert fetch["attempts"] == 3 and fetch["error_type"] == "ConnectionError"
    assert fetch["status"] == "completed"


def test_decorator_records_failure_and_reraises() -> None:
    sink = Sink()

    @track(sink, namespace="billing", task_name="invoice")
    def job() -> None:
        with step("load"):
            pass
        run_step("charge", lambda: 1 / 0, retries=1)

    with pytest.raises(ZeroDivisionError):
        job()
    [event] = sink.events
    assert event["status"] == "failed"
    charge = event["steps"][1]
    assert charge["status"] == "failed" and charge["attempts"] == 2
    assert charge["error_type"] == "ZeroDivisionError"
    with pytest.raises(ZeroDivisionError):
        job()  # reusable: a second run is a second event
    assert len(sink.events) == 2 and sink.events[1]["task_id"] != event["task_id"]


def test_a_failing_sink_never_breaks_the_job() -> None:
    def broken(_: list[dict[str, Any]]) -> None:
        raise OSError("down")

    with track(broken, namespace="n", task_name="t"):
        pass


def test_step_outside_a_task() -> None:
    with pytest.raises(RuntimeError, match="inside a track"), step("x"):
        pass
