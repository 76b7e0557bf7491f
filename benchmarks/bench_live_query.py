#!/usr/bin/env python3
"""A dashboard's query under live ingestion: the fresh tail against the whole range.

In-process (``vigil.app.build`` on a temporary data directory, real DuckDB store): the
last ``--hours`` of ``--series`` series (``cpu_usage`` with labels ``host``, a point
every 10 s) are written and rolled up; then, ``--reps`` times, a batch of samples
stamped now is committed (as live ingestion does between two refreshes) and the
overview's query is run — ``start`` = now − ``--range-hours`` in seconds (so not on a
step edge), step 5m, ``fn=avg``, each series — once through the engine with its cache
(the older steps from the cache, the fresh tail computed) and once computed whole
(``nocache``). Prints the median and p95 of each and checks the answers are equal.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_live_query.py [--series 100] [--reps 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from vigil.app import build
from vigil.config import load
from vigil.core.types import SampleBatch, SeriesKey, SeriesMeta
from vigil.query.model import Query


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=100)
    ap.add_argument("--hours", type=float, default=8.0, help="history written before")
    ap.add_argument("--range-hours", type=float, default=6.0, help="the query's range")
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--align", action="store_true", help="start on the 5m grid")
    a = ap.parse_args()
    metas = [SeriesMeta(SeriesKey.of("cpu_usage", {"host": f"h{i:04d}"}))
             for i in range(a.series)]
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load(env={"VIGIL_DATA_DIR": tmp, "VIGIL_RETENTION_RAW": "0"})
        c = build(settings, start_maintenance=False)
        try:
            now = int(time.time() * 1000)
            ts = np.arange(now - int(a.hours * 3_600_000), now, 10_000, dtype=np.int64)
            for lo in range(0, len(ts), 360):  # an hour of points per batch
                t = ts[lo:lo + 360]
                c.store.submit("default", SampleBatch(
                    metas, np.tile(np.arange(a.series, dtype=np.int32), len(t)),
                    np.repeat(t, a.series), rng.normal(50, 10, len(t) * a.series))).result()
            c.store.refresh_rollups(now)
            print(f"{a.series} series x {len(ts):,} points written; "
                  f"query: last {a.range_hours:g} h, step 5m, avg, each series")
            cut: list[float] = []
            whole: list[float] = []
            for _ in range(a.reps):
                t_now = int(time.time() * 1000)
                c.store.submit("default", SampleBatch(
                    metas, np.arange(a.series, dtype=np.int32),
                    np.full(a.series, t_now, np.int64), rng.normal(50, 10, a.series))).result()
                start_s = t_now / 1000 - a.range_hours * 3600
                if a.align:
                    start_s = start_s // 300 * 300
                q = Query.from_params({"name": "cpu_usage", "step": "5m", "fn": "avg",
                                       "start": str(start_s)}, t_now)
                t0 = time.perf_counter()
                got = c.engine.run("default", q)
                t1 = time.perf_counter()
                want = c.engine.run("default", q, use_cache=False)
                t2 = time.perf_counter()
                cut.append((t1 - t0) * 1000)
                whole.append((t2 - t1) * 1000)
                for x, y in zip(got.series, want.series, strict=True):
                    # equal but for the order DuckDB adds floats in, which varies run to run
                    assert x.labels == y.labels and x.t_ms.tolist() == y.t_ms.tolist()
                    assert np.allclose(x.values, y.values, rtol=1e-12, atol=0)
            assert c.engine.cache is not None
            print(f"tier {got.tier}; cache: {c.engine.cache.stats()['hits']:.0f} hits of the "
                  "older steps")
            for name, v in (("fresh tail (cache)", cut), ("whole range (nocache)", whole)):
                print(f"{name:<22} median {statistics.median(v):7.2f} ms   "
                      f"p95 {sorted(v)[int(0.95 * (len(v) - 1))]:7.2f} ms")
        finally:
            c.close()


if __name__ == "__main__":
    main()
