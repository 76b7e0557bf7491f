"""Task events (``POST /api/v1/tasks/events``, ``Vigil.record_task``) → ``TaskBatch``.

One event is one task execution with its steps (SPEC.md §1). Every event is validated
before anything is built, so a bad batch is rejected whole with problems naming
``tasks[i].field`` (or ``tasks[i].steps[j].field``). Times are epoch milliseconds or
RFC 3339 strings. Events are append-only: send one per execution, when it ends (a
``running`` or ``pending`` event counts as such in ``total_tasks``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pyarrow as pa

from vigil.core.errors import InvalidInput, Problem
from vigil.core.timeutil import parse_time_ms
from vigil.storage.task_store import ENDED, RUN_SCHEMA, STEP_SCHEMA, TaskBatch

MAX_PROBLEMS = 10
MAX_NAME = 256
MAX_MESSAGE = 4096
TASK_STATUSES = ("completed", "failed", "retried", "running", "pending")
STEP_STATUSES = (*TASK_STATUSES, "skipped")
DEFAULT_VERSION = "0"
# 1, 1.2, 1.2.3, v2.1.0, 1.2.3-rc.1, 1.2.3+build.5 (semantic-version-like).
VERSION_RE = re.compile(r"^v?\d+(\.\d+){0,3}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_TASK_FIELDS = frozenset({"namespace", "task_name", "version", "task_id", "status",
                          "started_at", "finished_at", "duration_ms", "steps"})
_STEP_FIELDS = frozenset({"step_name", "status", "attempts", "duration_ms", "timeout_s",
                          "error_type", "error_message"})


def version_problem(value: str) -> str | None:
    if VERSION_RE.match(value):
        return None
    return f"unknown version format {value!r}: use e.g. 1, 1.2, 2.1.0, v2.1.0-rc.1"


def parse_document(doc: Any, *, min_ms: int | None = None) -> TaskBatch:
    """The decoded request body → batch; the body must be ``{"tasks": [...]}``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("tasks"), list):
        raise InvalidInput(Problem('expected an object {"tasks": [...]}', field="tasks"))
    unknown = set(doc) - {"tasks"}
    if unknown:
        raise InvalidInput(Problem("unknown field; allowed: tasks", field=sorted(unknown)[0]))
    return parse_tasks(doc["tasks"], min_ms=min_ms)


def parse_tasks(items: Iterable[Any], *, min_ms: int | None = None) -> TaskBatch:
    """Validate every event, then build the columns. ``min_ms``: the oldest accepted
    start (the raw retention horizon)."""
    runs: dict[str, list[Any]] = {f.name: [] for f in RUN_SCHEMA}
    steps: dict[str, list[Any]] = {f.name: [] for f in STEP_SCHEMA}
    problems: list[Problem] = []
    scopes: set[tuple[str, str, str]] = set()
    for i, item in enumerate(items):
        try:
            run, run_steps = _task(item, f"tasks[{i}]", min_ms)
        except InvalidInput as err:
            problems.extend(err.problems)
            if len(problems) >= MAX_PROBLEMS:
                break
            continue
        for k, v in run.items():
            runs[k].append(v)
        for step in run_steps:
            for k, v in step.items():
                steps[k].append(v)
        if run["status"] in ENDED:
            scopes.add((run["namespace"], run["task_name"], run["version"]))
    if problems:
        raise InvalidInput(problems[:MAX_PROBLEMS])
    return TaskBatch(pa.table(runs, schema=RUN_SCHEMA), pa.table(steps, schema=STEP_SCHEMA),
                     frozenset(scopes))


def _bad(where: str, field: str, reason: str) -> InvalidInput:
    return InvalidInput(Problem(reason, field=f"{where}.{field}" if field else where))


def _name(item: Mapping[str, Any], field: str, where: str, default: str | None = None) -> str:
    value = item.get(field, default)
    if not isinstance(value, str) or not value.strip():
        raise _bad(where, field, "required: a non-empty string")
    if len(value) > MAX_NAME:
        raise _bad(where, field, f"longer than {MAX_NAME} characters")
    return value


def _time(value: Any, where: str, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _bad(where, field, "must be epoch milliseconds or an RFC 3339 string")
    if isinstance(value, (int, float)) and math.isfinite(value):
        t = int(value)
    elif isinstance(value, datetime):
        t = int(value.timestamp() * 1000)
    elif isinstance(value, str):
        t = parse_time_ms(value, f"{where}.{field}")
    else:
        raise _bad(where, field, "must be epoch milliseconds or an RFC 3339 string")
    if t < 0:
        raise _bad(where, field, "must not be before 1970")
    return t


def _number(item: Mapping[str, Any], field: str, where: str, *, positive: bool) -> float | None:
    value = item.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value) or value < 0 or (positive and value == 0):
        raise _bad(where, field, "must be a number > 0" if positive else "must be a number >= 0")
    return float(value)


def _task(item: Any, where: str, min_ms: int | None) -> tuple[dict[str, Any],
                                                               list[dict[str, Any]]]:
    if not isinstance(item, Mapping):
        raise _bad(where, "", "each task must be an object")
    unknown = set(item) - _TASK_FIELDS
    if unknown:
        raise _bad(where, sorted(unknown)[0],
                   f"unknown field; allowed: {', '.join(sorted(_TASK_FIELDS))}")
    namespace = _name(item, "namespace", where)
    task_name = _name(item, "task_name", where)
    version = _name(item, "version", where, DEFAULT_VERSION)
    if reason := version_problem(version):
        raise _bad(where, "version", reason)
    task_id = _name(item, "task_id", where)
    status = item.get("status")
    if status not in TASK_STATUSES:
        raise _bad(where, "status", f"must be one of {', '.join(TASK_STATUSES)}")
    started = _time(item.get("started_at"), where, "started_at")
    if started is None:
        raise _bad(where, "started_at", "required: epoch milliseconds or RFC 3339")
    if min_ms is not None and started < min_ms:
        raise _bad(where, "started_at", "older than the raw retention")
    finished = _time(item.get("finished_at"), where, "finished_at")
    if finished is not None and finished < started:
        raise _bad(where, "finished_at", "must not be before started_at")
    duration = _number(item, "duration_ms", where, positive=False)
    if duration is None and finished is not None:
        duration = float(finished - started)
    raw_steps = item.get("steps")
    raw_steps = [] if raw_steps is None else raw_steps
    if not isinstance(raw_steps, list):
        raise _bad(where, "steps", "must be a list of objects")
    ts = finished if finished is not None else started
    steps = [_step(s, f"{where}.steps[{j}]") for j, s in enumerate(raw_steps)]
    scope = {"namespace": namespace, "task_name": task_name, "version": version,
             "task_id": task_id, "ts": ts}
    retried = status == "retried" or any(s["attempts"] > 1 for s in steps)
    run = {**scope, "status": status, "started_ms": started, "finished_ms": finished,
           "duration_ms": duration, "retried": retried, "step_count": len(steps)}
    return run, [{**scope, **s} for s in steps]


def _step(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise _bad(where, "", "each step must be an object")
    unknown = set(item) - _STEP_FIELDS
    if unknown:
        raise _bad(where, sorted(unknown)[0],
                   f"unknown field; allowed: {', '.join(sorted(_STEP_FIELDS))}")
    step_name = _name(item, "step_name", where)
    status = item.get("status")
    if status not in STEP_STATUSES:
        raise _bad(where, "status", f"must be one of {', '.join(STEP_STATUSES)}")
    attempts = item.get("attempts", 1)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not (
            1 <= attempts <= 1_000_000):
        raise _bad(where, "attempts", "must be an integer >= 1")
    error_type = item.get("error_type")
    if error_type is not None:
        error_type = _name(item, "error_type", where)
    message = item.get("error_message")
    if message is not None and (not isinstance(message, str) or len(message) > MAX_MESSAGE):
        raise _bad(where, "error_message", f"must be a string of at most {MAX_MESSAGE} "
                   "characters")
    return {"step_name": step_name, "status": status, "attempts": attempts,
            "duration_ms": _number(item, "duration_ms", where, positive=False),
            "timeout_s": _number(item, "timeout_s", where, positive=True),
            "error_type": error_type, "error_message": message}
