"""Task events: what is accepted, how it is stored, and each way a batch is rejected."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from vigil.core.errors import InvalidInput
from vigil.tasks.events import parse_document, parse_tasks

GOOD: dict[str, Any] = {
    "namespace": "shop", "task_name": "order", "version": "2.1.0", "task_id": "a1",
    "status": "completed", "started_at": "2027-01-15T08:00:00Z",
    "finished_at": 1_800_000_002_000,
    "steps": [{"step_name": "pay", "status": "completed", "attempts": 2, "duration_ms": 900,
               "timeout_s": 30, "error_type": "NetworkTimeoutError",
               "error_message": "timed out"}],
}


def test_good_event_columns() -> None:
    event = {**GOOD, "started_at": 1_800_000_000_000}
    batch = parse_tasks([event, {**event, "task_id": "a2", "status": "running",
                                 "finished_at": None, "steps": []}])
    runs = batch.runs.to_pylist()
    assert runs[0]["duration_ms"] == 2000.0 and runs[0]["ts"] == 1_800_000_002_000
    assert runs[0]["retried"] is True and runs[0]["step_count"] == 1
    assert runs[1]["duration_ms"] is None and runs[1]["ts"] == 1_800_000_000_000
    assert batch.steps.to_pylist()[0]["attempts"] == 2
    assert batch.ended_scopes == frozenset({("shop", "order", "2.1.0")})


def test_rfc3339_and_default_version() -> None:
    event = {k: v for k, v in GOOD.items() if k not in ("version", "finished_at")}
    run = parse_tasks([{**event, "started_at": "2027-01-15T08:00:00Z"}]).runs.to_pylist()[0]
    assert run["started_ms"] == int(datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp() * 1000)
    assert run["version"] == "0"


@pytest.mark.parametrize(("change", "field"), [
    ({"namespace": ""}, "tasks[1].namespace"),
    ({"task_name": 3}, "tasks[1].task_name"),
    ({"task_id": None}, "tasks[1].task_id"),
    ({"version": "latest"}, "tasks[1].version"),
    ({"status": "done"}, "tasks[1].status"),
    ({"started_at": None}, "tasks[1].started_at"),
    ({"started_at": "yesterday"}, "tasks[1].started_at"),
    ({"started_at": True}, "tasks[1].started_at"),
    ({"finished_at": 1}, "tasks[1].finished_at"),
    ({"duration_ms": -1}, "tasks[1].duration_ms"),
    ({"duration_ms": "slow"}, "tasks[1].duration_ms"),
    ({"colour": "red"}, "tasks[1].colour"),
    ({"steps": {}}, "tasks[1].steps"),
    ({"steps": ["x"]}, "tasks[1].steps[0]"),
    ({"steps": [{"status": "completed"}]}, "tasks[1].steps[0].step_name"),
    ({"steps": [{"step_name": "a", "status": "ok"}]}, "tasks[1].steps[0].status"),
    ({"steps": [{"step_name": "a", "status": "failed", "attempts": 0}]},
     "tasks[1].steps[0].attempts"),
    ({"steps": [{"step_name": "a", "status": "failed", "timeout_s": 0}]},
     "tasks[1].steps[0].timeout_s"),
    ({"steps": [{"step_name": "a", "status": "failed", "error_type": ""}]},
     "tasks[1].steps[0].error_type"),
    ({"steps": [{"step_name": "a", "status": "failed", "error_message": "x" * 5000}]},
     "tasks[1].steps[0].error_message"),
    ({"steps": [{"step_name": "a", "status": "failed", "retries": 1}]},
     "tasks[1].steps[0].retries"),
])
def test_bad_field_rejects_the_batch_naming_it(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_tasks([GOOD, {**GOOD, **change}])
    assert err.value.problems[0].field == field


def test_every_bad_event_is_named() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_tasks([{**GOOD, "status": "x"}, GOOD, {**GOOD, "namespace": None}])
    assert [p.field for p in err.value.problems] == ["tasks[0].status", "tasks[2].namespace"]


def test_older_than_retention() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_tasks([{**GOOD, "started_at": 1_000}], min_ms=2_000)
    assert err.value.problems[0].field == "tasks[0].started_at"


@pytest.mark.parametrize("doc", [[], {"task": []}, {"tasks": {}}, {"tasks": [], "x": 1}])
def test_document_shape(doc: Any) -> None:
    with pytest.raises(InvalidInput):
        parse_document(doc)
