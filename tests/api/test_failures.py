"""When the store fails or is not ready, requests get 503 and nothing is acknowledged."""

from __future__ import annotations

import httpx

from tests.conftest import Server
from vigil.storage.migrations import LATEST

LINE = b"m v=1"


def test_write_after_a_failed_commit_is_503_and_unacknowledged(server: Server) -> None:
    store = server.components.store
    store._maint.execute("ALTER TABLE samples RENAME TO samples_gone")  # a real DB failure
    with httpx.Client(base_url=server.url) as http:
        r = http.post("/write", content=LINE)
        assert r.status_code == 503
        assert r.json()["type"] == "store-unavailable"
        assert "commit failed" in r.json()["detail"]
        store._maint.execute("ALTER TABLE samples_gone RENAME TO samples")
        assert http.post("/write", content=LINE).status_code == 204  # recovers
        assert 'vigil_batches_rejected_total{protocol="influx",reason="StoreUnavailable"} 1.0' \
            in http.get("/metrics").text


def test_ready_is_503_when_migrations_are_behind(server: Server) -> None:
    server.components.store._maint.execute("UPDATE schema_migrations SET version = 0")
    with httpx.Client(base_url=server.url) as http:
        r = http.get("/ready")
        assert r.status_code == 503
        assert f"migrations: at 0, need {LATEST}" in r.json()["detail"]
        assert http.get("/health").status_code == 200  # alive, just not ready


def test_closed_store_refuses_writes(server: Server) -> None:
    server.components.store.close()
    with httpx.Client(base_url=server.url) as http:
        r = http.post("/write", content=LINE)
        assert r.status_code == 503
        assert http.get("/ready").status_code == 503
