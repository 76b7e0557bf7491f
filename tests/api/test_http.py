"""End to end over real HTTP: ingestion, errors, queries, discovery, operations."""

from __future__ import annotations

import csv as csvlib
import gzip
import io
import time

import httpx
import pyarrow.parquet as pq
import pytest

from tests.conftest import Server

NOW_S = int(time.time())
T_NS = (NOW_S - 600) * 1_000_000_000  # ten minutes ago
LINES = "\n".join(
    f"cpu,host=h{h},region=eu usage_user={10 * h + i}.5,usage_system={i}i {T_NS + i * 10**10}"
    for h in range(3) for i in range(6)
)


def count(http: httpx.Client, name: str) -> float:
    doc = http.get("/api/v1/query", params={"name": name, "fn": "count", "group_by": "",
                                            "start": NOW_S - 7200, "end": NOW_S + 60,
                                            "step": "1d"}).json()
    return sum(p[1] for s in doc["series"] for p in s["points"])


def test_line_protocol_v1_v2_gzip_and_precisions(http: httpx.Client) -> None:
    r = http.post("/write", params={"db": "telegraf"}, content=LINES.encode())
    assert r.status_code == 204, r.text
    assert count(http, "cpu_usage_user") == 18
    assert count(http, "cpu_usage_system") == 18
    s = NOW_S - 300
    body = gzip.compress(f"mem,host=h1 used=1,free=2 {s}\n".encode())
    r = http.post("/api/v2/write", params={"bucket": "b", "org": "o", "precision": "s"},
                  content=body, headers={"Content-Encoding": "gzip",
                                         "Content-Type": "text/plain; charset=utf-8"})
    assert r.status_code == 204, r.text
    latest = http.get("/api/v1/metrics/mem_used/latest").json()
    assert latest["series"] == [{"labels": {"host": "h1"}, "timestamp": s * 1000, "value": 1.0}]


def test_bad_line_is_rejected_whole_and_named(http: httpx.Client) -> None:
    body = f"cpu,host=a usage=1 {T_NS}\ncpu,host=a usage=oops {T_NS}\n"
    r = http.post("/write", content=body.encode())
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["errors"][0]["line"] == 2
    assert count(http, "cpu_usage") == 0  # nothing of the batch was stored


@pytest.mark.parametrize(("path", "headers", "body", "status", "kind"), [
    ("/write", {"Content-Type": "application/json"}, b"x", 415, "unsupported-media-type"),
    ("/write", {"Content-Encoding": "br"}, b"x", 415, "unsupported-media-type"),
    ("/write", {"Content-Encoding": "gzip"}, b"not gzip", 400, "invalid-input"),
    ("/write?precision=m", {}, b"m v=1", 400, "invalid-input"),
    ("/api/v1/metrics", {"Content-Type": "text/plain"}, b"{}", 415, "unsupported-media-type"),
    ("/api/v1/metrics", {}, b"{}", 415, "unsupported-media-type"),
    ("/api/v1/metrics", {"Content-Type": "application/json"}, b"{nope", 400, "invalid-input"),
    ("/api/v1/metrics", {"Content-Type": "application/json"}, b'{"samples": [{"name": "m"}]}',
     400, "invalid-input"),
])
def test_ingest_error_paths(http: httpx.Client, path: str, headers: dict[str, str],
                            body: bytes, status: int, kind: str) -> None:
    r = http.post(path, content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["type"] == kind
    assert r.json()["detail"]


def test_too_large_bodies_get_413(server: Server) -> None:
    object.__setattr__(server.components.settings, "max_body_bytes", 1000)
    with httpx.Client(base_url=server.url) as http:
        assert http.post("/write", content=b"x" * 2000).status_code == 413
        bomb = gzip.compress(b"m v=1\n" * 10_000)  # small on the wire, large inflated
        r = http.post("/write", content=bomb, headers={"Content-Encoding": "gzip"})
        assert r.status_code == 413


def test_json_samples_and_series_limit(server: Server) -> None:
    object.__setattr__(server.components.store, "max_series_per_tenant", 3)
    with httpx.Client(base_url=server.url) as http:
        samples = [{"name": "jobs", "value": i, "labels": {"q": str(i)},
                    "timestamp": (NOW_S - 60) * 1000} for i in range(3)]
        assert http.post("/api/v1/metrics", json={"samples": samples}).status_code == 204
        r = http.post("/api/v1/metrics", json={"samples": [
            {"name": "jobs", "value": 1, "labels": {"q": "0"}},
            {"name": "jobs", "value": 1, "labels": {"q": "new"}}]})
        assert r.status_code == 422
        assert "limit of 3 series" in r.json()["detail"]
        assert count(http, "jobs") == 3
        ok = http.post("/api/v1/metrics", json={"samples": [
            {"name": "jobs", "value": 1, "labels": {"q": "0"}}]})
        assert ok.status_code == 204
        card = http.get("/api/v1/cardinality").json()
        assert card["series"] == 3 and card["limit"] == 3
        assert card["metrics"] == [{"name": "jobs", "series": 3}]


def test_query_formats_and_discovery(http: httpx.Client) -> None:
    assert http.post("/write", content=LINES.encode()).status_code == 204
    params = {"name": "cpu_usage_user", "match": ["host=~h[01]"], "start": NOW_S - 900,
              "end": NOW_S, "step": "1m", "fn": "max"}
    doc = http.get("/api/v1/query", params=params).json()
    assert doc["tier"] == "raw"
    assert [s["labels"]["host"] for s in doc["series"]] == ["h0", "h1"]
    assert max(p[1] for p in doc["series"][1]["points"]) == 15.5
    posted = http.post("/api/v1/query", json=params).json()
    assert posted == doc
    csv = http.get("/api/v1/query", params={**params, "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    rows = list(csvlib.reader(io.StringIO(csv.text)))
    assert rows[0] == ["name", "host", "region", "timestamp", "value"]
    assert len(rows) - 1 == sum(len(s["points"]) for s in doc["series"])
    assert rows[1][0] == "cpu_usage_user" and rows[1][3].endswith("Z")
    table = pq.read_table(io.BytesIO(http.get("/api/v1/query",
                                              params={**params, "format": "parquet"}).content))
    assert table.num_rows == sum(len(s["points"]) for s in doc["series"])
    agg = http.get("/api/v1/metrics/cpu_usage_user/aggregated",
                   params={k: v for k, v in params.items() if k != "name"}).json()
    assert agg["series"] == doc["series"]
    names = {m["name"] for m in http.get("/api/v1/metrics").json()["metrics"]}
    assert names == {"cpu_usage_user", "cpu_usage_system"}
    assert http.get("/api/v1/metrics", params={"category": "business"}).json()["metrics"] == []
    assert http.get("/api/v1/labels").json()["labels"] == ["host", "region"]
    assert http.get("/api/v1/labels/host/values",
                    params={"name": "cpu_usage_user"}).json()["values"] == ["h0", "h1", "h2"]


@pytest.mark.parametrize(("method", "path", "params", "status"), [
    ("GET", "/api/v1/query", {"fn": "avg"}, 400),
    ("GET", "/api/v1/query", {"name": "m", "format": "xml"}, 400),
    ("GET", "/api/v1/query", {"name": "m", "match": "bad"}, 400),
    ("GET", "/api/v1/metrics/nothing/latest", {}, 404),
    ("GET", "/api/v1/cardinality", {"limit": "0"}, 400),
    ("GET", "/api/v1/cardinality", {"limit": "x"}, 400),
    ("POST", "/api/v1/rollups/trigger", {"start": "0"}, 400),
    ("POST", "/api/v1/rollups/trigger", {"start": "10", "end": "5"}, 400),
    ("GET", "/nowhere", {}, 404),
])
def test_query_error_paths(http: httpx.Client, method: str, path: str,
                           params: dict[str, str], status: int) -> None:
    r = http.request(method, path, params=params)
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_query_post_error_paths(http: httpx.Client) -> None:
    assert http.post("/api/v1/query", content=b"{", headers={
        "Content-Type": "application/json"}).status_code == 400
    assert http.post("/api/v1/query", json=[1]).status_code == 400
    assert http.post("/api/v1/query", content=b"name=m").status_code == 415


def test_operations_endpoints(http: httpx.Client) -> None:
    assert http.get("/health").json() == {"status": "ok"}
    assert http.get("/ready").json()["status"] == "ready"
    assert http.post("/write", content=LINES.encode()).status_code == 204
    metrics = http.get("/metrics").text
    assert 'vigil_samples_ingested_total{protocol="influx"} 36.0' in metrics
    assert "vigil_store_commits_total" in metrics
    status = http.get("/api/v1/status").json()
    assert status["store"]["committed_samples"] == 36
    assert status["stream"]["pid"] is None and status["stream"]["clients"] == 0  # no client yet
    rollups = http.get("/api/v1/rollups/status").json()
    assert rollups["tiers"]["5m"]["stale_buckets"] > 0
    trig = http.post("/api/v1/rollups/trigger").json()
    assert trig["rebuilt_buckets"] >= 1  # the closed 5m bucket of the data above
    assert http.get("/api/v1/rollups/status").json()["tiers"]["5m"]["stale_buckets"] < (
        rollups["tiers"]["5m"]["stale_buckets"])
    rebuilt = http.post("/api/v1/rollups/trigger",
                        params={"start": NOW_S - 3600, "end": NOW_S}).json()
    assert rebuilt["marked_buckets"] >= 1
    assert "/api/v1/query" in http.get("/openapi.json").json()["paths"]
    assert http.get("/docs").status_code == 200
