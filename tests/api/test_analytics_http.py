"""The analytics faces over real HTTP, on data written through the API."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

NOW_S = int(time.time()) // 60 * 60
START = NOW_S - 2 * 3600  # two hours: a baseline hour, then an anomaly hour


def lines(rng: np.random.Generator) -> bytes:
    """p95 latency of 6 hosts in 2 regions, every 10 s; region us slows down in hour 2."""
    out = []
    for region in ("eu", "us"):
        for h in range(3):
            for i in range(720):
                t = START + i * 10
                slow = region == "us" and i >= 360
                v = 120 + rng.normal(0, 5) + (300 if slow else 0)
                out.append(f"latency,region={region},host={region}-{h} p95_ms={v:.2f} "
                           f"{t * 10**9}")
                busy = 30 + rng.normal(0, 2) + (40 if slow and h == 1 else 0)
                out.append(f"cpu,region={region},host={region}-{h} busy={busy:.2f} {t * 10**9}")
    return "\n".join(out).encode()


@pytest.fixture
def loaded(http: httpx.Client) -> httpx.Client:
    """The server with two hours of latency data."""
    assert http.post("/write", content=lines(np.random.default_rng(3))).status_code == 204
    return http


def test_root_cause_names_the_region(loaded: httpx.Client) -> None:
    r = loaded.get("/api/v1/analytics/root-cause", params={
        "name": "latency_p95_ms", "start": START + 3600, "end": START + 7200, "step": "1m",
        "aggregate": "p95"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["baseline_window"] == {"start": START * 1000, "end": (START + 3600) * 1000}
    assert doc["change"] > 200
    top = doc["contributions"][0]
    assert (top["label"], top["value"]) == ("region", "us")
    assert {m["labels"]["region"] for m in doc["movers"]} == {"us"}
    # what else moved where the change is: host us-1's CPU, among region=us
    assert doc["related_match"] == "region=us"
    assert [(m["name"], m["labels"]["host"]) for m in doc["related"]] == [("cpu_busy", "us-1")]


@pytest.mark.parametrize(("params", "field"), [
    ({"aggregate": "median"}, "aggregate"),
    ({"top": "0"}, "top"),
    ({"top": "many"}, "top"),
    ({"baseline_start": str(START + 3600), "baseline_end": str(START)}, "baseline_start"),
    ({"name": ""}, "name"),
    ({"related": "500"}, "related"),
])
def test_root_cause_errors(loaded: httpx.Client, params: dict[str, str], field: str) -> None:
    base = {"name": "latency_p95_ms", "start": START + 3600, "end": START + 7200}
    r = loaded.get("/api/v1/analytics/root-cause", params={**base, **params})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == field


HOUR2 = {"name": "latency_p95_ms", "start": START, "end": START + 7200, "step": "1m"}


def test_stats_trends_anomalies(loaded: httpx.Client) -> None:
    stats = loaded.get("/api/v1/analytics/stats", params={**HOUR2, "percentiles": "50,99",
                                                          "match": "host=eu-0"}).json()
    [s] = stats["series"]
    assert s["summary"]["count"] == 120 and 100 < s["summary"]["mean"] < 140
    assert set(s["percentiles"]) == {"count", "p50", "p99"}
    trends = loaded.get("/api/v1/analytics/trends", params={**HOUR2, "match": "host=us-0"})
    doc = trends.json()["series"][0]
    assert doc["change_points"]["change_points"], doc["change_points"]
    assert doc["trend"]["direction"] == "increasing"
    anomalies = loaded.get("/api/v1/analytics/anomalies",
                           params={**HOUR2, "match": "host=us-0", "threshold": "0.5"}).json()
    [a] = anomalies["series"]
    assert len(a["points"]) == 120
    assert a["anomalies"] and a["anomalies"][0]["t_ms"] >= (START + 3600) * 1000


def test_correlations_health_insights(loaded: httpx.Client) -> None:
    corr = loaded.get("/api/v1/analytics/correlations",
                      params={**HOUR2, "min_strength": "0.8", "max_lag": "3"}).json()
    assert len(corr["matrix"]["labels"]) == 6
    us = {p["a"].split("host=")[1][:2] + p["b"].split("host=")[1][:2] for p in corr["pairs"]}
    assert us == {"usus"}  # the three slowed-down hosts move together, nothing else
    assert "lagged" in corr["pairs"][0]
    h = loaded.get("/api/v1/analytics/health", params=HOUR2).json()
    assert 0 <= h["score"] <= 100 and h["series"] == 6
    found = loaded.get("/api/v1/analytics/insights", params=HOUR2).json()["insights"]
    assert {i["type"] for i in found} >= {"trend", "correlation"}
    assert all(set(i) >= {"type", "severity", "confidence", "evidence", "affected"}
               for i in found)


def test_forecast_and_capacity(loaded: httpx.Client) -> None:
    f = loaded.get("/api/v1/analytics/forecast",
                   params={**HOUR2, "match": "host=eu-0", "horizon": "10"}).json()
    fc = f["series"][0]["forecast"]
    assert len(fc["values"]) == 10
    assert all(lo <= hi for lo, hi in zip(fc["lower"], fc["upper"], strict=True))
    cap = loaded.get("/api/v1/analytics/capacity",
                     params={**HOUR2, "match": "host=eu-0", "threshold": "1000"}).json()
    assert cap["series"][0]["capacity"]["probability"] < 0.5


@pytest.mark.parametrize(("path", "params", "field"), [
    ("stats", {"percentiles": "50,120"}, "percentiles"),
    ("stats", {"bins": "0"}, "bins"),
    ("anomalies", {"method": "magic"}, "method"),
    ("forecast", {"horizon": "0"}, "horizon"),
    ("forecast", {"interval": "1.5"}, "interval"),
    ("capacity", {}, "threshold"),
    ("capacity", {"threshold": "1", "direction": "sideways"}, "direction"),
    ("correlations", {"method": "kendall"}, "method"),
    ("correlations", {"max_lag": "-1"}, "max_lag"),
    ("health", {"recent": "0"}, "recent"),
    ("insights", {"threshold": "high"}, "threshold"),
    ("trends", {"step": "soon"}, "step"),
])
def test_analytics_error_paths(loaded: httpx.Client, path: str, params: dict[str, str],
                               field: str) -> None:
    r = loaded.get(f"/api/v1/analytics/{path}", params={**HOUR2, **params})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == field
