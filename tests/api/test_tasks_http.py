"""Workflow analytics over real HTTP: ingest, both reports, caching headers, 304, errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.tasks.events_gen import expected_bottlenecks, expected_performance, generate
from vigil.core.timeutil import now_ms

PERF = "/api/v1/analytics/performance"
BOTTLENECKS = "/api/v1/analytics/bottlenecks"
EVENTS_URL = "/api/v1/tasks/events"


def _post(http: httpx.Client, events: list[dict[str, Any]]) -> httpx.Response:
    return http.post(EVENTS_URL, json={"tasks": events})


def _counts(server: Server) -> tuple[int, int]:
    return server.components.tasks.store.count("default")


def test_ingest_then_reports_match(http: httpx.Client, server: Server) -> None:
    now = now_ms()
    events = generate(600, now=now)
    r = _post(http, events)
    assert r.status_code == 204, r.text
    assert _counts(server)[0] == 600
    perf = http.get(PERF, params={"namespace": "shop"}).json()
    want = expected_performance(events, {"namespace": "shop"}, now=now_ms())
    # Only the 24 h window edge can differ by the time between the two clocks; the
    # generator keeps executions away from now, so the figures agree exactly.
    assert perf["task_statistics"] == want["task_statistics"]
    assert set(perf) >= {"system_health_score", "performance_trends", "task_statistics",
                         "processing_times"}
    got = http.get(BOTTLENECKS, params={"namespace": "etl", "period": 24, "limit": 50}).json()
    want_b = expected_bottlenecks(events, {"namespace": "etl"}, 24, now=now_ms())
    assert got["scope"] == {"namespace": "etl"}
    assert got["analysis_period"] == "24 hours"
    assert {(t["namespace"], t["task_name"]) for t in got["slowest_tasks"]} == set(
        want_b["slowest_tasks"])
    assert {p["error_type"]: p["frequency"] for p in got["error_patterns"]} == {
        k: v["frequency"] for k, v in want_b["error_patterns"].items()}
    assert [r["type"] for r in got["recommendations"]] == ["retry_reduction"]
    assert set(got) == {"analysis_period", "scope", "slowest_tasks", "slowest_steps",
                        "error_patterns", "distribution", "recommendations"}


def test_cache_headers_etag_304_and_counters(http: httpx.Client) -> None:
    first = http.get(PERF)
    assert first.headers["cache-control"] == "max-age=90"
    etag = first.headers["etag"]
    second = http.get(PERF)
    assert second.headers["etag"] == etag and second.content == first.content
    not_modified = http.get(PERF, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert http.get(PERF, headers={"If-None-Match": '"other"'}).status_code == 200
    b = http.get(BOTTLENECKS, params={"namespace": "shop"})
    assert b.headers["cache-control"] == "max-age=120"
    assert http.get(BOTTLENECKS, params={"namespace": "shop"},
                    headers={"If-None-Match": b.headers["etag"]}).status_code == 304
    metrics = http.get("/metrics").text
    assert 'vigil_task_cache_hits_total{report="performance"} 3.0' in metrics
    assert 'vigil_task_cache_misses_total{report="performance"} 1.0' in metrics
    assert 'vigil_task_cache_misses_total{report="bottlenecks"} 1.0' in metrics
    assert 'vigil_task_cache_hits_total{report="bottlenecks"} 1.0' in metrics


def test_new_completion_changes_the_scoped_answer(http: httpx.Client) -> None:
    now = now_ms()
    shop = http.get(PERF, params={"namespace": "shop"})
    etl = http.get(PERF, params={"namespace": "etl"})
    event = {"namespace": "shop", "task_name": "order", "task_id": "x1",
             "status": "completed", "started_at": now - 2000, "finished_at": now - 1000}
    assert _post(http, [event]).status_code == 204
    shop2 = http.get(PERF, params={"namespace": "shop"},
                     headers={"If-None-Match": shop.headers["etag"]})
    assert shop2.status_code == 200 and shop2.json()["task_statistics"]["completed"] == 1
    etl2 = http.get(PERF, params={"namespace": "etl"},
                    headers={"If-None-Match": etl.headers["etag"]})
    assert etl2.status_code == 304  # another namespace's answer stays cached


@pytest.mark.parametrize(("path", "params", "field"), [
    (BOTTLENECKS, {"period": "-1"}, "period"),
    (BOTTLENECKS, {"period": "0"}, "period"),
    (BOTTLENECKS, {"period": "169"}, "period"),
    (BOTTLENECKS, {"period": "two"}, "period"),
    (BOTTLENECKS, {"limit": "0"}, "limit"),
    (BOTTLENECKS, {"limit": "51"}, "limit"),
    (BOTTLENECKS, {"version": "latest"}, "version"),
    (PERF, {"version": "1.x"}, "version"),
    (BOTTLENECKS, {"namespace": "n" * 300}, "namespace"),
])
def test_bad_parameters_get_400_naming_them(http: httpx.Client, path: str,
                                            params: dict[str, str], field: str) -> None:
    r = http.get(path, params=params)
    assert r.status_code == 400
    body = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert body["errors"][0]["field"] == field
    assert body["errors"][0]["reason"]


def test_bad_batch_is_rejected_whole(http: httpx.Client, server: Server) -> None:
    now = now_ms()
    good = {"namespace": "n", "task_name": "t", "task_id": "a", "status": "completed",
            "started_at": now - 10, "finished_at": now}
    r = _post(http, [good, {**good, "task_id": "b", "status": "finished"}])
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "tasks[1].status"
    assert _counts(server) == (0, 0)


@pytest.mark.parametrize(("body", "headers", "status"), [
    (b"{not json", {"content-type": "application/json"}, 400),
    (b'{"samples": []}', {"content-type": "application/json"}, 400),
    (b'{"tasks": []}', {"content-type": "text/plain"}, 415),
])
def test_bad_bodies(http: httpx.Client, server: Server, body: bytes,
                    headers: dict[str, str], status: int) -> None:
    assert http.post(EVENTS_URL, content=body, headers=headers).status_code == status
    assert _counts(server) == (0, 0)


def test_older_than_retention_is_rejected(tmp_path: Any) -> None:
    from tests.conftest import make_settings
    from vigil.app import build

    c = build(make_settings(tmp_path, retention_raw="1d"), start_maintenance=False)
    try:
        with Server(c) as s, httpx.Client(base_url=s.url) as client:
            old = {"namespace": "n", "task_name": "t", "task_id": "a", "status": "completed",
                   "started_at": now_ms() - 3 * 86_400_000}
            r = client.post(EVENTS_URL, json={"tasks": [old]})
            assert r.status_code == 400
            assert r.json()["errors"][0]["field"] == "tasks[0].started_at"
    finally:
        c.close()
