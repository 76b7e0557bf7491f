"""Demo data: deterministic, realistic shapes, and the live generator writes."""

from __future__ import annotations

import threading
import time

import numpy as np

from vigil import demo
from vigil.app import Components
from vigil.demo_runner import start_demo


def test_generate_is_deterministic_and_counters_only_rise() -> None:
    a = demo.generate("acme", 0, 6 * 3_600_000, 60_000)
    b = demo.generate("acme", 0, 6 * 3_600_000, 60_000)
    assert np.array_equal(a.value, b.value) and len(a) == len(b) > 0
    for i, meta in enumerate(a.series):
        v = a.value[a.series_idx == i]
        if meta.type == "counter":
            assert np.all(np.diff(v) >= 0), meta.key
        assert np.all(v >= 0)
    # chunks generated separately join up: counters continue across them
    first = demo.generate("acme", 0, 3_600_000, 60_000)
    second = demo.generate("acme", 3_600_000, 7_200_000, 60_000)
    i = next(j for j, m in enumerate(first.series) if m.type == "counter")
    assert first.value[first.series_idx == i][-1] <= second.value[second.series_idx == i][0]


def test_live_generator_backfills_then_writes(components: Components) -> None:
    stop = threading.Event()
    thread = start_demo(components, stop)
    deadline = time.monotonic() + 30
    while not components.store.find_series("default", "cpu_usage_percent"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stop.set()
    thread.join(10)
    metrics = {m.name for m in components.store.metric_names("default")}
    assert {"cpu_usage_percent", "http_requests_total", "orders_total"} <= metrics
    assert components.store.stats()["committed_samples"] > 10_000
