"""The alert store: documents, alerts and events, each confined to its tenant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil.storage.alert_store import DuckDBAlertStore
from vigil.storage.duckdb_store import DuckDBStore


def alert(i: str, state: str = "triggered", updated: int = 1) -> dict[str, object]:
    return {"id": i, "rule_id": "r1", "rule": "cpu high", "fingerprint": f"fp{i}",
            "state": state, "severity": "high", "starts_ms": 1, "updated_ms": updated}


@pytest.fixture
def alerts(tmp_path: Path) -> Iterator[DuckDBAlertStore]:
    """An alert store on a fresh DuckDB file, tenant "a" holding one of everything."""
    store = DuckDBStore(tmp_path / "s.duckdb")
    s = DuckDBAlertStore(store.connection())
    s.put("a", "rule", "r1", {"id": "r1"})
    s.put_alert("a", alert("x"))
    s.append_event("a", "history", "x", 5, {"event": "triggered"})
    yield s
    store.close()


def test_documents_replace_and_delete(alerts: DuckDBAlertStore) -> None:
    alerts.put("a", "rule", "r1", {"id": "r1", "v": 2})
    assert alerts.docs("a", "rule") == [{"id": "r1", "v": 2}]
    assert alerts.delete("a", "rule", "r1") and not alerts.delete("a", "rule", "r1")


def test_alert_filters_and_order(alerts: DuckDBAlertStore) -> None:
    alerts.put_alert("a", alert("y", "resolved", updated=9))
    assert [d["id"] for d in alerts.alerts("a")] == ["y", "x"]
    assert [d["id"] for d in alerts.alerts("a", active=True)] == ["x"]
    assert [d["id"] for d in alerts.alerts("a", since_ms=5)] == ["y"]
    assert [d["id"] for d in alerts.alerts("a", rule="cpu high", limit=1)] == ["y"]
    assert alerts.alerts("a", severity="low") == []


def test_events_in_order(alerts: DuckDBAlertStore) -> None:
    alerts.append_event("a", "history", "x", 5, {"event": "acknowledged"})
    assert [e["event"] for e in alerts.events("a", "history", "x")] == [
        "triggered", "acknowledged"]
    assert [e["event"] for e in alerts.events("a", "history")] == [
        "acknowledged", "triggered"]


def test_another_tenant_sees_and_changes_nothing(alerts: DuckDBAlertStore) -> None:
    assert alerts.docs("b", "rule") == []
    assert not alerts.delete("b", "rule", "r1")
    assert alerts.alerts("b") == [] and alerts.alert("b", "x") is None
    assert alerts.events("b", "history", "x") == [] and alerts.events("b", "history") == []
    alerts.put_alert("b", alert("x", "resolved"))  # same id, other tenant
    alerts.put("b", "rule", "r1", {"id": "r1", "tenant": "b"})
    assert alerts.alert("a", "x") == alert("x")
    assert alerts.docs("a", "rule") == [{"id": "r1"}]
    assert alerts.tenants() == ["a", "b"]
