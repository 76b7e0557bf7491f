"""Alerting state in the embedded store: rules, channels, silences, alerts, history.

A sibling of ``DuckDBStore`` on the same database file (its own cursor), so alert state
is as durable as samples and survives a restart. Writes are small and rare (a rule
change, an alert transition); each is one autocommitted statement. Every method is
confined to ``tenant``. Thread-safe (one lock around the cursor).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import duckdb

Doc = dict[str, Any]


class DuckDBAlertStore:
    def __init__(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self._cur = cursor
        self._lock = threading.Lock()

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
    def put_alert(self, tenant: str, doc: Doc) -> None:
        self._rows("INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [tenant, doc["id"], doc["rule_id"], doc["fingerprint"], doc["state"],
                    doc["severity"], doc["starts_ms"], doc["updated_ms"], json.dumps(doc)])

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
