"""Workflow analytics at scale: latency of /api/v1/analytics/{performance,bottlenecks}.

Run: .venv/bin/python benchmarks/bench_tasks.py [--tasks 10000000] [--days 30]
         [--dir /tmp/vigil-bench-tasks] [--uncached 30] [--cached 1000] [--skip-load]

1. Bulk-loads ``--tasks`` executions (about 5 steps each) spread over ``--days`` days
   ending now, generated as columns by ``vigil.demo_tasks`` and committed through the
   task store's columnar group-commit path, a day per batch.
2. Starts ``vigil serve`` on that store twice, as a separate process: once with the
   report caches off (every request computes: uncached), once with the default TTLs
   (one warm-up request, then cached), and times requests over HTTP from this process
   (a keep-alive connection), global and filtered, printing median and p99.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from vigil import config, demo_tasks
from vigil.app import build
from vigil.core.timeutil import now_ms

DAY_MS = 86_400_000
QUERIES = (
    ("performance  global", "/api/v1/analytics/performance", {}),
    ("performance  filtered", "/api/v1/analytics/performance",
     {"namespace": "ecommerce", "task_name": "process_order"}),
    ("bottlenecks  global", "/api/v1/analytics/bottlenecks", {}),
    ("bottlenecks  filtered", "/api/v1/analytics/bottlenecks",
     {"namespace": "data_pipeline", "version": "3.1.0", "period": "24"}),
)


def load(data_dir: Path, tasks: int, days: int) -> None:
    settings = config.load(env={}, overrides={"data_dir": str(data_dir), "retention_raw": 0})
    c = build(settings, start_maintenance=False)
    end = now_ms()
    start = end - days * DAY_MS
    per_hour = tasks / (days * 24)
    total_runs = total_steps = 0
    gen_s = commit_s = 0.0
    t_all = time.perf_counter()
    try:
        for lo in range(start, end, DAY_MS):
            t0 = time.perf_counter()
            batch = demo_tasks.generate("default", lo, min(lo + DAY_MS, end), per_hour,
                                        now_ms=end)
            t1 = time.perf_counter()
            c.tasks.submit("default", batch).result()
            t2 = time.perf_counter()
            gen_s += t1 - t0
            commit_s += t2 - t1
            total_runs += len(batch)
            total_steps += batch.steps.num_rows
            print(f"  loaded {total_runs:>11,} executions {total_steps:>12,} steps "
                  f"({time.perf_counter() - t_all:6.1f} s)", flush=True)
    finally:
        c.close()
    size = (data_dir / "vigil.duckdb").stat().st_size
    print(f"load: {total_runs:,} executions, {total_steps:,} steps in "
          f"{time.perf_counter() - t_all:.1f} s (generate {gen_s:.1f} s, commit {commit_s:.1f} s"
          f", {total_runs / commit_s:,.0f} executions/s committed); file {size / 2**30:.2f} GiB")


def _serve(data_dir: Path, port: int, cache: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VIGIL_DATA_DIR": str(data_dir), "VIGIL_PORT": str(port),
           "VIGIL_RETENTION_RAW": "0", "VIGIL_LOG_LEVEL": "warning",
           # one client asks thousands of times a second: lift the per-address limit
           "VIGIL_RATE_QUERY_PER_S": "1e9", "VIGIL_RATE_QUERY_BURST": "1e9"}
    if not cache:
        env.update(VIGIL_TASKS_PERFORMANCE_CACHE_TTL="0", VIGIL_TASKS_BOTTLENECKS_CACHE_TTL="0")
    proc = subprocess.Popen([sys.executable, "-m", "vigil", "serve"], env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def _measure(url: str, repeats: int, warm: int) -> list[tuple[str, float, float, int]]:
    out = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for label, path, params in QUERIES:
            for _ in range(warm):
                client.get(path, params=params).raise_for_status()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                r = client.get(path, params=params)
                times.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
            times.sort()
            p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
            out.append((label, statistics.median(times), p99, len(r.content)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/vigil-bench-tasks"))
    ap.add_argument("--uncached", type=int, default=30)
    ap.add_argument("--cached", type=int, default=1000)
    ap.add_argument("--port", type=int, default=9481)
    ap.add_argument("--skip-load", action="store_true", help="reuse the store in --dir")
    args = ap.parse_args()
    if not args.skip_load:
        shutil.rmtree(args.dir, ignore_errors=True)
        load(args.dir, args.tasks, args.days)
    for cache, repeats, warm in ((False, args.uncached, 2), (True, args.cached, 1)):
        proc = _serve(args.dir, args.port, cache)
        try:
            rows = _measure(f"http://127.0.0.1:{args.port}", repeats, warm)
        finally:
            proc.terminate()
            proc.wait(60)
        print(f"\n{'cached' if cache else 'uncached'} ({repeats} requests each, over HTTP)")
        print(f"{'endpoint':24} {'median ms':>10} {'p99 ms':>10} {'bytes':>8}")
        for label, med, p99, size in rows:
            print(f"{label:24} {med:10.2f} {p99:10.2f} {size:8d}")


if __name__ == "__main__":
    main()
