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


@pytest.mark.parametrize(("params", "field"), [
    ({"aggregate": "median"}, "aggregate"),
    ({"top": "0"}, "top"),
    ({"top": "many"}, "top"),
    ({"baseline_start": str(START + 3600), "baseline_end": str(START)}, "baseline_start"),
    ({"name": ""}, "name"),
])
def test_root_cause_errors(loaded: httpx.Client, params: dict[str, str], field: str) -> None:
    base = {"name": "latency_p95_ms", "start": START + 3600, "end": START + 7200}
    r = loaded.get("/api/v1/analytics/root-cause", params={**base, **params})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == field
