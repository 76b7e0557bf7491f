"""Instrumentation for Python job code: time a task and its steps, record the outcome.

``track`` is a context manager and a decorator; inside it, ``step`` times one step (a
context manager) and ``run_step`` calls a function with retries, counting attempts::

    @track(v.record_tasks, namespace="billing", task_name="invoice", version="1.2.0")
    def invoice() -> None:
        with step("load", timeout_s=30):
            ...
        run_step("charge", charge_card, retries=2, timeout_s=10)

On exit one event (SPEC.md §1 shape) goes to ``sink`` as a one-element list: status
``completed``, or ``failed`` with the exception's type on the step it escaped from. The
exception is re-raised; a failing sink is logged, never raised into the job.
"""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ContextDecorator, contextmanager
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
Sink = Callable[[list[dict[str, Any]]], object]

_current: contextvars.ContextVar[track | None] = contextvars.ContextVar(
    "vigil_task", default=None)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class track(ContextDecorator):  # lower case: used as a decorator
    def __init__(self, sink: Sink, *, namespace: str, task_name: str, version: str = "0",
                 task_id: str | None = None) -> None:
        self.sink = sink
        self.namespace, self.task_name, self.version = namespace, task_name, version
        self._task_id = task_id
        self.steps: list[dict[str, Any]] = []
        self._token: contextvars.Token[track | None] | None = None
        self._started_ms = 0
        self._t0 = 0.0

    def __enter__(self) -> track:
        self.steps = []
        self._started_ms = _now_ms()
        self._t0 = time.perf_counter()
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        assert self._token is not None, "BUG: exit without enter"
        _current.reset(self._token)
        duration_ms = (time.perf_counter() - self._t0) * 1000
        event = {
            "namespace": self.namespace, "task_name": self.task_name, "version": self.version,
            "task_id": self._task_id or uuid.uuid4().hex,
            "status": "completed" if exc is None else "failed",
            "started_at": self._started_ms,
            "finished_at": self._started_ms + int(duration_ms),
            "duration_ms": duration_ms, "steps": self.steps,
        }
        try:
            self.sink([event])
        except Exception:
            log.exception("recording a task event failed", extra={"task": self.task_name})


def _task() -> track:
    t = _current.get()
    if t is None:
        raise RuntimeError("step() and run_step() must run inside a track() task")
    return t


@contextmanager
def step(step_name: str, *, timeout_s: float | None = None,
         attempts: int = 1) -> Iterator[dict[str, Any]]:
    """Time one step of the current task; an exception marks it failed and propagates."""
    task = _task()
    record: dict[str, Any] = {"step_name": step_name, "status": "completed",
                              "attempts": attempts, "timeout_s": timeout_s}
    t0 = time.perf_counter()
    try:
        yield record
    except BaseException as err:
        record.update(status="failed", error_type=type(err).__name__,
                      error_message=str(err)[:4096])
        raise
    finally:
        record["duration_ms"] = (time.perf_counter() - t0) * 1000
        task.steps.append(record)


def run_step(step_name: str, fn: Callable[[], T], *, retries: int = 0,
             timeout_s: float | None = None,
             retry_on: tuple[type[Exception], ...] = (Exception,)) -> T:
    """Call ``fn`` up to ``retries + 1`` times as one step; records the attempts used,
    and the last error's type when a retry was needed or every attempt failed."""
    with step(step_name, timeout_s=timeout_s) as record:
        for attempt in range(1, retries + 2):
            record["attempts"] = attempt
            try:
                return fn()
            except retry_on as err:
                record.update(error_type=type(err).__name__, error_message=str(err)[:4096])
                if attempt > retries:
                    raise
    raise AssertionError("BUG: run_step loop ended without returning or raising")
