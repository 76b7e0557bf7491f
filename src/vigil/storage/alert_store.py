"""Alerting state in the embedded store: rules, channels, silences, alerts, history.

A sibling of ``DuckDBStore`` on the same database file (its own cursor), so alert state
is as durable as samples and survives a restart. Object writes (a rule change) are one
autocommitted statement each. Alert transitions and their history go through ``submit``:
a writer thread commits everything queued in one transaction, in the order submitted, so
the evaluator hands them over and goes on notifying (a commit can wait behind the
sample writer's). Every method is confined to ``tenant``. Thread-safe.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import duckdb

from vigil.storage.write_buffer import WriteBuffer

Doc = dict[str, Any]
# (kind, ref, ts_ms, doc) of one event
Event = tuple[str, str, int, Doc]
_Writes = tuple[str, list[Doc], list[Event]]


class DuckDBAlertStore:
    def __init__(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self._cur = cursor
        self._lock = threading.Lock()
        self._writer: WriteBuffer[_Writes] = WriteBuffer(
            self._commit, lambda w: len(w[1]) + len(w[2]), name="vigil-alert-state")

    def submit(self, tenant: str, alerts: list[Doc], events: list[Event]) -> Future[int]:
        """Queue alert documents (replacing the stored ones) and events for the next
        commit, after everything submitted before; resolves once durable."""
        return self._writer.submit((tenant, alerts, events))

    def close(self) -> None:
        """Commit what is queued; stop the writer thread."""
        self._writer.close()

    def _commit(self, items: Sequence[_Writes]) -> list[int | BaseException]:
        alerts = [(t, d["id"], d["rule_id"], d["fingerprint"], d["state"], d["severity"],
                   d["starts_ms"], d["updated_ms"], json.dumps(d))
                  for t, docs, _ in items for d in docs]
        events = [(t, kind, ref, ts, json.dumps(doc))
                  for t, _, evs in items for kind, ref, ts, doc in evs]
        with self._lock:
            cur = self._cur
            cur.execute("BEGIN")
            try:
                # Later versions of an alert come later in the list: the last one stays.
                for row in alerts:
                    cur.execute("INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                row)
                if events:
                    cur.executemany("INSERT INTO alert_events VALUES (?, ?, ?, ?, ?)", events)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return [len(docs) + len(evs) for _, docs, evs in items]

    def _rows(self, sql: str, params: list[object]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._cur.execute(sql, params).fetchall()

    def tenants(self) -> list[str]:
        rows = self._rows("SELECT tenant FROM alert_objects UNION SELECT tenant FROM alerts "
                          "WHERE state <> 'resolved'", [])
        return sorted(r[0] for r in rows)

    # ------------------------------------------------------------------ objects
    def put(self, tenant: str, kind: str, id: str, doc: Doc) -> None:
        self._rows("INSERT OR REPLACE INTO alert_objects VALUES (?, ?, ?, ?, ?)",
                   [tenant, kind, id, json.dumps(doc), int(time.time() * 1000)])

    def delete(self, tenant: str, kind: str, id: str) -> bool:
        [(n,)] = self._rows("DELETE FROM alert_objects WHERE tenant = ? AND kind = ? AND id = ?",
                            [tenant, kind, id])
        return bool(n)

    def docs(self, tenant: str, kind: str) -> list[Doc]:
        rows = self._rows("SELECT doc FROM alert_objects WHERE tenant = ? AND kind = ? "
                          "ORDER BY id", [tenant, kind])
        return [json.loads(r[0]) for r in rows]

    # ------------------------------------------------------------------ alerts
    def alert(self, tenant: str, alert_id: str) -> Doc | None:
        rows = self._rows("SELECT doc FROM alerts WHERE tenant = ? AND id = ?",
                          [tenant, alert_id])
        return json.loads(rows[0][0]) if rows else None

    def alerts(self, tenant: str, *, state: str | None = None, severity: str | None = None,
               rule: str | None = None, since_ms: int | None = None, active: bool = False,
               limit: int = 1000) -> list[Doc]:
        """Newest first; ``since_ms``: changed at or after; ``rule``: id or name."""
        where: list[str] = ["tenant = ?"]
        params: list[object] = [tenant]
        for col, value in (("state", state), ("severity", severity)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        if rule is not None:
            where.append("(rule_id = ? OR json_extract_string(doc, '$.rule') = ?)")
            params += [rule, rule]
        if since_ms is not None:
            where.append("updated_ms >= ?")
            params.append(since_ms)
        if active:
            where.append("state <> 'resolved'")
        rows = self._rows(f"SELECT doc FROM alerts WHERE {' AND '.join(where)} "
                          "ORDER BY updated_ms DESC, id LIMIT ?", [*params, limit])
        return [json.loads(r[0]) for r in rows]

    # ------------------------------------------------------------------ events
    def append_event(self, tenant: str, kind: str, ref: str, ts_ms: int, doc: Doc) -> None:
        self._rows("INSERT INTO alert_events VALUES (?, ?, ?, ?, ?)",
                   [tenant, kind, ref, ts_ms, json.dumps(doc)])

    def events(self, tenant: str, kind: str, ref: str | None = None, limit: int = 1000
               ) -> list[Doc]:
        """Oldest first (in the order written) for one ``ref``; newest first otherwise."""
        if ref is not None:
            rows = self._rows("SELECT doc FROM alert_events WHERE tenant = ? AND kind = ? "
                              "AND ref = ? ORDER BY ts_ms, rowid LIMIT ?",
                              [tenant, kind, ref, limit])
        else:
            rows = self._rows("SELECT doc FROM alert_events WHERE tenant = ? AND kind = ? "
                              "ORDER BY ts_ms DESC, rowid DESC LIMIT ?", [tenant, kind, limit])
        return [json.loads(r[0]) for r in rows]
