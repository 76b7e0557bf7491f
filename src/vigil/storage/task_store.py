"""Task executions and their steps: the workflow-analytics tables (migration 3).

A sibling of ``DuckDBStore`` on the same database file: writes go through a group-commit
``WriteBuffer`` of their own (one writer cursor, one thread), reads use a cursor per
thread. Every figure is computed set-wise in SQL; Python only sees one row per group.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from vigil.core.errors import StoreUnavailable
from vigil.storage.duckdb_store import DuckDBStore
from vigil.storage.write_buffer import WriteBuffer

log = logging.getLogger(__name__)
T = TypeVar("T")

# Column order of the batch tables is the column order of the tables, minus ``tenant``.
RUN_SCHEMA = pa.schema([
    ("namespace", pa.string()), ("task_name", pa.string()), ("version", pa.string()),
    ("task_id", pa.string()), ("status", pa.string()), ("started_ms", pa.int64()),
    ("finished_ms", pa.int64()), ("ts", pa.int64()), ("duration_ms", pa.float64()),
    ("retried", pa.bool_()), ("step_count", pa.int32()),
])
STEP_SCHEMA = pa.schema([
    ("namespace", pa.string()), ("task_name", pa.string()), ("version", pa.string()),
    ("task_id", pa.string()), ("ts", pa.int64()), ("step_name", pa.string()),
    ("status", pa.string()), ("attempts", pa.int32()), ("duration_ms", pa.float64()),
    ("timeout_s", pa.float64()), ("error_type", pa.string()), ("error_message", pa.string()),
])
_KEY_MATCH = ("k.tenant = ? AND k.namespace = b.namespace AND k.task_name = b.task_name "
              "AND k.step_name = b.step_name")
# Ids for the batch's (namespace, task_name, step_name) not seen before (set-based).
_NEW_STEP_KEYS = f"""INSERT INTO task_step_keys
    SELECT (SELECT coalesce(max(id), 0) FROM task_step_keys) + row_number() OVER (), ?,
        namespace, task_name, step_name
    FROM (SELECT DISTINCT namespace, task_name, step_name FROM _task_batch) b
    WHERE NOT EXISTS (SELECT 1 FROM task_step_keys k WHERE {_KEY_MATCH})"""
# An execution has ended (and counts in rates and durations) in one of these states.
ENDED = ("completed", "failed", "retried")
_ENDED_SQL = "status IN ('completed', 'failed', 'retried')"
# Upper bounds (ms) of the duration histogram; the last bucket is everything above.
HISTOGRAM_LE_MS = (100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000)


@dataclass(frozen=True, slots=True)
class TaskBatch:
    """Validated task executions as two Arrow tables (``RUN_SCHEMA``, ``STEP_SCHEMA``).

    ``ended_scopes``: the (namespace, task_name, version) of executions that completed,
    failed or were retried, for cache invalidation after the commit.
    """

    runs: pa.Table
    steps: pa.Table
    ended_scopes: frozenset[tuple[str, str, str]]

    def __len__(self) -> int:
        return int(self.runs.num_rows)


@dataclass(frozen=True, slots=True)
class TaskScope:
    """Filters of a report; ``None`` means any."""

    namespace: str | None = None
    task_name: str | None = None
    version: str | None = None

    def where(self) -> tuple[str, list[object]]:
        sql, args = [], []
        for col in ("namespace", "task_name", "version"):
            value = getattr(self, col)
            if value is not None:
                sql.append(f" AND {col} = ?")
                args.append(value)
        return "".join(sql), args


Row = tuple[Any, ...]
_Item = tuple[str, TaskBatch]
# Called on the writer thread after a commit, before the writers are answered.
CommitListener = Callable[[str, TaskBatch], None]


class TaskStore:
    def __init__(self, store: DuckDBStore) -> None:
        self._store = store
        self._write_cur = store.connection()
        self._local = threading.local()
        self._closed = False
        self.listeners: list[CommitListener] = []
        # Reads a report runs side by side; long-lived, so each keeps its cursor.
        self._readers = ThreadPoolExecutor(4, thread_name_prefix="vigil-task-reader")
        self._writer: WriteBuffer[_Item] = WriteBuffer(
            self._commit, lambda it: len(it[1]) + it[1].steps.num_rows,
            name="vigil-task-writer")

    # ------------------------------------------------------------------ writes
    def submit(self, tenant: str, batch: TaskBatch) -> Future[int]:
        """Queue ``batch`` for the next group commit; the future resolves to the number
        of executions once they are durable (or to the error: then nothing is stored)."""
        if self._closed:
            raise StoreUnavailable("the task store is closed")
        return self._writer.submit((tenant, batch))

    def _commit(self, items: Sequence[_Item]) -> list[int | BaseException]:
        con = self._write_cur
        con.execute("BEGIN")
        try:
            for tenant, batch in items:
                for table, name in ((batch.runs, "task_runs"), (batch.steps, "task_steps")):
                    if table.num_rows == 0:
                        continue
                    con.register("_task_batch", table)
                    try:
                        cols = ", ".join(table.column_names)
                        if name == "task_runs":
                            con.execute(f"INSERT INTO task_runs (tenant, {cols}) "
                                        f"SELECT ?, {cols} FROM _task_batch", [tenant])
                        else:
                            con.execute(_NEW_STEP_KEYS, [tenant, tenant])
                            b_cols = ", ".join(f"b.{c}" for c in table.column_names)
                            con.execute(f"INSERT INTO task_steps (tenant, {cols}, step_key) "
                                        f"SELECT ?, {b_cols}, k.id FROM _task_batch b "
                                        f"JOIN task_step_keys k ON {_KEY_MATCH}",
                                        [tenant, tenant])
                    finally:
                        con.unregister("_task_batch")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        for tenant, batch in items:
            for listener in self.listeners:
                try:
                    listener(tenant, batch)
                except Exception:
                    log.exception("task commit listener failed")
        return [len(batch) for _, batch in items]

    @property
    def queued(self) -> int:
        return self._writer.depth

    def close(self) -> None:
        """Commit what is queued and stop the writer (before the DuckDBStore closes)."""
        if not self._closed:
            self._closed = True
            self._writer.close()
            self._readers.shutdown()

    # ------------------------------------------------------------------ reads
    def read_async(self, read: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``read(*args)`` (a method of this store) on a reader thread, so a report's
        independent queries run side by side."""
        return self._readers.submit(read, *args)

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._local.cur = self._store.connection()
        return cur

    def _rows(self, sql: str, args: list[object]) -> list[Row]:
        if self._closed:
            raise StoreUnavailable("the task store is closed")
        try:
            return [tuple(r) for r in self._cursor().execute(sql, args).fetchall()]
        except duckdb.ConnectionException as err:
            raise StoreUnavailable(f"task store unavailable: {err}") from err

    def count(self, tenant: str) -> tuple[int, int]:
        """(executions, steps) stored for ``tenant``."""
        [(runs,)] = self._rows("SELECT count(*) FROM task_runs WHERE tenant = ?", [tenant])
        [(steps,)] = self._rows("SELECT count(*) FROM task_steps WHERE tenant = ?", [tenant])
        return int(runs), int(steps)

    def performance(self, tenant: str, scope: TaskScope, now_ms: int,
                    windows_ms: Sequence[int]) -> Row:
        """One row: total, completed, failed, retried over the longest window; then per
        window (ended, completed, avg duration); then p50, p95, p99 over the longest."""
        where, args = scope.where()
        longest = max(windows_ms)
        per_window = ", ".join(
            f"count(*) FILTER (WHERE {_ENDED_SQL} AND ts > {now_ms - w}), "
            f"count(*) FILTER (WHERE status = 'completed' AND ts > {now_ms - w}), "
            f"avg(duration_ms) FILTER (WHERE {_ENDED_SQL} AND ts > {now_ms - w})"
            for w in windows_ms)
        sql = f"""SELECT count(*), count(*) FILTER (WHERE status = 'completed'),
            count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE retried),
            {per_window},
            quantile_cont(duration_ms, [0.5, 0.95, 0.99]) FILTER (WHERE {_ENDED_SQL})
            FROM task_runs WHERE tenant = ? AND ts > ? AND ts <= ?{where}"""
        [row] = self._rows(sql, [tenant, now_ms - longest, now_ms, *args])
        return row

    def task_groups(self, tenant: str, scope: TaskScope, start_ms: int, mid_ms: int,
                    end_ms: int) -> list[Row]:
        """Per (namespace, task_name) over ``(mid, end]``: ended executions, failed,
        avg and p95 duration; then ended and failed over the previous ``(start, mid]``."""
        where, args = scope.where()
        now = f"ts > {mid_ms}"
        sql = f"""SELECT namespace, task_name,
            count(*) FILTER (WHERE {now}), count(*) FILTER (WHERE {now} AND status = 'failed'),
            avg(duration_ms) FILTER (WHERE {now}),
            quantile_cont(duration_ms, 0.95) FILTER (WHERE {now}),
            count(*) FILTER (WHERE NOT {now}),
            count(*) FILTER (WHERE NOT {now} AND status = 'failed')
            FROM task_runs WHERE tenant = ? AND ts > ? AND ts <= ? AND {_ENDED_SQL}{where}
            GROUP BY namespace, task_name"""
        return self._rows(sql, [tenant, start_ms, end_ms, *args])

    def step_groups(self, tenant: str, scope: TaskScope, start_ms: int,
                    end_ms: int) -> list[Row]:
        """Per (namespace, task_name, step_name) over ``(start, end]``: executions, avg
        and p95 duration, executions with attempts > 1, largest timeout_s."""
        where, args = scope.where()
        sql = f"""SELECT any_value(namespace), any_value(task_name), any_value(step_name),
            count(*), avg(duration_ms), quantile_cont(duration_ms, 0.95),
            count(*) FILTER (WHERE attempts > 1), max(timeout_s)
            FROM task_steps WHERE tenant = ? AND ts > ? AND ts <= ?{where}
            GROUP BY step_key"""
        return self._rows(sql, [tenant, start_ms, end_ms, *args])

    def step_errors(self, tenant: str, scope: TaskScope, start_ms: int, end_ms: int,
                    bucket_ms: int) -> list[Row]:
        """Per (error_type, time bucket, namespace, task_name, step_name): step executions
        with that error over ``(start, end]`` (errors are few, so are these rows)."""
        where, args = scope.where()
        sql = f"""SELECT error_type, ts // {bucket_ms} * {bucket_ms} AS b, namespace,
            task_name, step_name, count(*)
            FROM task_steps WHERE tenant = ? AND ts > ? AND ts <= ?
              AND error_type IS NOT NULL{where}
            GROUP BY error_type, b, namespace, task_name, step_name"""
        return self._rows(sql, [tenant, start_ms, end_ms, *args])

    def distribution(self, tenant: str, scope: TaskScope, start_ms: int,
                     end_ms: int) -> Row:
        """Durations of ended executions over ``(start, end]``: count, min, mean, max,
        [p50, p90, p95, p99], then the count at or below each ``HISTOGRAM_LE_MS``."""
        where, args = scope.where()
        le = ", ".join(f"count(*) FILTER (WHERE duration_ms <= {b})" for b in HISTOGRAM_LE_MS)
        sql = f"""SELECT count(duration_ms), min(duration_ms), avg(duration_ms),
            max(duration_ms), quantile_cont(duration_ms, [0.5, 0.9, 0.95, 0.99]), {le}
            FROM task_runs WHERE tenant = ? AND ts > ? AND ts <= ? AND {_ENDED_SQL}{where}"""
        [row] = self._rows(sql, [tenant, start_ms, end_ms, *args])
        return row
