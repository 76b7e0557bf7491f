"""Realistic demo metrics: a few services × hosts with daily seasonality, noise and
occasional incidents. Generated as columns (no per-sample Python), deterministically from
a seed, so ``vigil seed`` and ``vigil demo`` produce the same shapes every time.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from vigil.core.types import Category, MetricType, SampleBatch, SeriesKey, SeriesMeta

DAY_MS = 86_400_000
TENANTS = ("default", "acme", "globex", "initech", "umbrella")
SERVICES = {"api": 3, "checkout": 2, "search": 2, "worker": 2}


@dataclass(frozen=True, slots=True)
class _Metric:
    name: str
    type: MetricType
    category: Category
    base: float
    daily: float  # amplitude of the daily cycle, as a fraction of base
    noise: float  # standard deviation, as a fraction of base
    incident: float  # factor during incidents


_METRICS = (
    _Metric("http_requests_total", "counter", "performance", 40.0, 0.6, 0.0, 1.0),
    _Metric("http_request_duration_p95_ms", "gauge", "performance", 120.0, 0.25, 0.08, 6.0),
    _Metric("cpu_usage_percent", "gauge", "system", 35.0, 0.45, 0.06, 2.4),
    _Metric("memory_used_bytes", "gauge", "system", 2.5e9, 0.1, 0.01, 1.3),
    _Metric("queue_depth", "gauge", "performance", 20.0, 0.5, 0.2, 10.0),
    _Metric("orders_total", "counter", "business", 2.0, 0.8, 0.0, 1.0),
)


def series_for(tenant: str) -> list[tuple[SeriesMeta, _Metric, int]]:
    """Every demo series of ``tenant`` with its metric shape and a stable seed."""
    out = []
    for service, hosts in SERVICES.items():
        for h in range(hosts):
            labels = {"service": service, "host": f"{service}-{h + 1}", "region": "eu-west-1"
                      if h % 2 else "us-east-1"}
            for m in _METRICS:
                if m.name == "orders_total" and service != "checkout":
                    continue
                if m.name == "queue_depth" and service != "worker":
                    continue
                seed = zlib.crc32(f"{tenant}/{m.name}/{service}/{h}".encode())
                out.append((SeriesMeta(SeriesKey.of(m.name, labels), m.type, m.category), m,
                            seed))
    return out


def _incidents(t_ms: np.ndarray, seed: int) -> np.ndarray:
    """1.0 during an incident (about two 20-minute incidents a day), else 0.0."""
    slot = t_ms // 1_200_000  # 20-minute slots
    rng = (slot * 2654435761 + seed) % 1000
    return (rng < 28).astype(np.float64)


def generate(tenant: str, start_ms: int, end_ms: int, interval_ms: int) -> SampleBatch:
    """Samples of every demo series of ``tenant`` at ``interval_ms`` in ``[start, end)``."""
    t = np.arange(start_ms // interval_ms * interval_ms, end_ms, interval_ms, dtype=np.int64)
    t = t[t >= start_ms]
    defs = series_for(tenant)
    phase = 2 * math.pi * ((t % DAY_MS) / DAY_MS) - math.pi / 2  # low at night, peak at noon
    tenant_seed = sum(map(ord, tenant))
    incident = _incidents(t, tenant_seed)
    values = []
    for i, (_, m, seed) in enumerate(defs):
        rng = np.random.default_rng([seed, start_ms // interval_ms])
        if m.type == "counter":
            # The closed-form integral of the seasonal rate, so counters are continuous
            # across separately generated chunks.
            secs = t / 1000.0
            omega = 2 * math.pi / 86_400
            total = m.base * (secs - m.daily * np.cos(omega * secs + math.pi / 2) / omega)
            values.append(np.maximum(np.floor(total * (1 + 0.05 * (seed % 7))), 0.0))
            continue
        v = m.base * (1 + m.daily * np.sin(phase)) * (1 + m.noise * rng.standard_normal(len(t)))
        v *= 1 + (m.incident - 1) * incident * ((seed + i) % 3 == 0)
        if m.name == "cpu_usage_percent":
            v = np.clip(v, 0, 100)
        values.append(np.maximum(v, 0))
    n = len(t)
    return SampleBatch(
        [d for d, _, _ in defs],
        np.repeat(np.arange(len(defs), dtype=np.int32), n),
        np.tile(t, len(defs)),
        np.concatenate(values) if values else np.empty(0),
    )
